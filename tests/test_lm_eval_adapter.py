"""The lm-eval model `codd-bench`: its contract on the embedded names model (small, sampled at T > 0),
and lm-eval's own CLI end to end on the math model with our local-file task configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.registry import get_model

from harness.errors import HarnessError
from harness.lm_eval_adapter import CoddBenchLM


@pytest.fixture(scope="module")
def lm() -> CoddBenchLM:
    return CoddBenchLM(family="names", steps=4, gen_length=8, block_length=8, temperature=1.0, batch_size=3)


def request(context: str, until: list[str], idx: int = 0) -> Instance:
    return Instance(request_type="generate_until", doc={}, arguments=(context, {"until": until}), idx=idx)


def test_registered_under_its_name():
    assert get_model("codd-bench") is CoddBenchLM


def test_a_completion_does_not_depend_on_its_batch(lm):
    """Each prompt has its own random stream: alone or third in a batch, the same text."""
    contexts = [lm.apply_chat_template([{"role": "user", "content": f"Name a city {i}"}]) for i in range(3)]
    together = lm.generate_until([request(c, []) for c in contexts])
    alone = lm.generate_until([request(contexts[2], [])])
    assert together[2] == alone[0]


def test_stop_strings_cut_the_completion(lm):
    context = lm.apply_chat_template([{"role": "user", "content": "Name a city"}])
    full = lm.complete([context])[0]
    assert len(full) >= 2, full
    stop = full[1:]
    assert lm.generate_until([request(context, [stop])]) == [full[: full.index(stop)]]


def test_chat_template_is_the_backbones(lm):
    assert lm.apply_chat_template([{"role": "user", "content": "hi"}]) == "<|user|>hi<|assistant|>"


def test_loglikelihood_is_refused_clearly(lm):
    with pytest.raises(HarnessError, match="generate_until tasks only"):
        lm.loglikelihood([])


def test_lm_eval_cli_runs_both_tasks_offline_and_scores_agree_with_ours(data_dir, tmp_path):
    """lm-eval's own CLI, our model and the local-file task configs, no network, no --device (lm-eval
    would pass cuda:0; we pass the device there is): both tasks are scored by lm-eval, and our scorers
    give the same verdict on every logged completion."""
    repo = Path(__file__).parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HARNESS_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "harness.lm_eval_adapter", "--model", "codd-bench",
               "--model_args", "steps=8,gen_length=64", "--tasks", "minerva_math500,gsm8k",
               "--include_path", "harness/lm_eval_tasks", "--apply_chat_template", "--limit", "2",
               "--output_path", str(tmp_path), "--log_samples"]
    subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True)
    results = json.loads(next(tmp_path.rglob("results_*.json")).read_text())["results"]
    assert "math_verify,none" in results["minerva_math500"]
    assert "exact_match,flexible-extract" in results["gsm8k"]
    agreement = subprocess.run([sys.executable, "benchmarks/lm_eval_agreement.py", str(tmp_path)], cwd=repo, env=env,
                               check=True, capture_output=True, text=True).stdout
    assert agreement.splitlines() == ["minerva_math500: 2/2 agree (100.0%)", "gsm8k: 2/2 agree (100.0%)"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_missing_gpu_is_one_line_and_exit_2(data_dir, tmp_path):
    repo = Path(__file__).parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HARNESS_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "-m", "harness.lm_eval_adapter", "--model", "codd-bench", "--model_args",
                           "family=names", "--device", "cuda:0", "--tasks", "gsm8k", "--include_path",
                           "harness/lm_eval_tasks", "--limit", "1", "--output_path", str(tmp_path / "out")],
                          cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == ("error: device 'cuda:0' requested but CUDA is not available on this "
                                            "machine; use --device cpu")
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_codd_without_pc_gets_the_authors_circuit_per_task(tmp_path, monkeypatch):
    """sampler=codd on a LLaDA checkpoint: minerva_math500 requests decode with il18/llada-math-pc and
    gsm8k requests with il18/llada-gsm-pc, as `run` resolves them (offline, from stand-ins in the cache)."""
    from test_real_backends import JPC_V300, _cached_repo, _offline_cache, make_checkpoint
    assert JPC_V300.is_file(), f"pyjuice fixture {JPC_V300} missing (../shared/fixtures)"
    for repo in ("il18/llada-math-pc", "il18/llada-gsm-pc"):
        _cached_repo(tmp_path / "hub", repo, {"pc.jpc": JPC_V300})
    _offline_cache(monkeypatch, tmp_path / "hub")
    checkpoint = make_checkpoint(tmp_path / "llada", "llada")
    lm = CoddBenchLM(model=str(checkpoint), sampler="codd", trust_remote_code="true", steps=4, gen_length=16,
                     block_length=16)
    assert lm.backbone.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    requests = [Instance(request_type="generate_until", doc={}, arguments=("Q: 1+1?", {"until": []}), idx=0,
                         metadata=(task, i, 1)) for i, task in enumerate(["gsm8k", "minerva_math500", "gsm8k"])]
    assert len(lm.generate_until(requests)) == 3
    assert lm.sampler_for("minerva_math500").spec == "codd:pc=il18/llada-math-pc"
    assert lm.sampler_for("gsm8k").spec == "codd:pc=il18/llada-gsm-pc"
