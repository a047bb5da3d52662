"""The likelihood view of a run: every text task's gold solutions measured at each budget's tokens per
step, with the run's PC, in summary.json, the printed table and the report; `--no-likelihood` skips it."""

import json

import pytest
import torch

from codd import HMM, load_pc, save_pc
from harness.backbones import load_backbone
from harness.cli import main as cli
from harness.gap import Layout, measure_gap
from harness.report.build import build_report
from tasks import get_task

# gen length 64: of the first 4 GSM8K test solutions, two fit (47 and 39 tokens), one is longer than 64
# and one shorter than a 32-token window.
RUN = ["run", "--tasks", "gsm8k", "--gen-length", "64", "--limit", "4", "--no-report", "--quiet"]


@pytest.fixture(scope="module")
def pc(tmp_path_factory):
    vocab = load_backbone("embedded", "math").vocab_size
    return save_pc(HMM.random(4, vocab, torch.Generator().manual_seed(0)), tmp_path_factory.mktemp("pc") / "pc",
                   tau=0.5)


def test_a_run_measures_its_text_tasks_at_each_budget_with_its_own_pc(tmp_path, pc, data_dir, capsys):
    out = tmp_path / "run"
    assert cli(RUN + ["--samplers", f"factorized,codd:pc={pc}", "--steps", "32,16", "--data-dir", str(data_dir),
                      "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    [view] = json.loads((out / "summary.json").read_text())["likelihood"]
    assert (view["task"], view["pc"], view["tau"], view["width"]) == ("gsm8k", str(pc), 0.5, 32)
    assert (view["solutions"], view["skipped"]) == (2, 2)
    # 64 tokens in 32 steps commit 2 per step, the last step of a block draws 2 of its 32 at once.
    assert view["budgets"] == [{"steps": 32, "tokens_per_step": 2.0, "ratio": 2 / 32},
                               {"steps": 16, "tokens_per_step": 4.0, "ratio": 4 / 32}]
    # What `harness gap` measures on the same solutions, laid out as the run laid them out.
    task, backbone = get_task("gsm8k"), load_backbone("embedded", "math")
    direct = measure_gap(task, backbone, load_pc(pc).freeze(), task.load(limit=4, data_dir=data_dir), 32,
                         [2 / 32, 4 / 32], tau=0.5, seed=0, layout=Layout(task.prompt, 64))
    assert view["rows"] == json.loads(json.dumps(direct["rows"]))
    assert view["per_example"] == direct["per_example"]
    assert "Likelihood of the gold solutions" in printed and "| gsm8k | 32 | 2 | 0.0625 | 2 |" in printed

    page = build_report([out], tmp_path / "report").read_text()
    assert "likelihood-table-1" in page and str(pc) in page
    assert len((tmp_path / "report" / "likelihood.csv").read_text().splitlines()) == 1 + 2


def test_without_codd_the_default_pc_is_used_and_no_likelihood_skips_it(tmp_path, data_dir):
    for out, extra in ((tmp_path / "default", []), (tmp_path / "none", ["--no-likelihood"])):
        assert cli(RUN + ["--samplers", "factorized", "--steps", "16", "--limit", "2", "--data-dir", str(data_dir),
                          "--out", str(out), *extra]) == 0
    [view] = json.loads((tmp_path / "default" / "summary.json").read_text())["likelihood"]
    assert view["pc"].endswith("codd/assets/math") and view["budgets"][0]["ratio"] == 4 / 32
    assert "likelihood" not in json.loads((tmp_path / "none" / "summary.json").read_text())
