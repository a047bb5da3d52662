"""Real-scale backends, exercised with tiny random checkpoints that load through the same
transformers `trust_remote_code` path as LLaDA-8B and Dream-7B: a modeling file written here,
an `auto_map` config, a byte-level tokenizer with a chat template, run offline through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from codd import HMM, save_pc
from harness.backbones import load_backbone, resolve_device
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
PYJUICE = Path(os.environ.get("HARNESS_DATA_DIR", REPO.parent / "shared" / "data")).resolve().parent / "fixtures" / "pyjuice_hmm"
JPC_V300 = PYJUICE / "ghmm_externprod_L16_H48_V300.jpc"  # window 16 = sudoku4's block
VOCAB = 300

# A bidirectional one-layer transformer with LLaDA's and Dream's call signature: a 2-D padding
# mask (LLaDA), or a pairwise [B, 1, T, T] mask with position ids (Dream).
MODELING = '''
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput


class TinyConfig(PretrainedConfig):
    model_type = "MODEL_TYPE"

    def __init__(self, vocab_size=300, hidden_size=32, max_positions=512, mask_token_id=None, **kwargs):
        self.vocab_size, self.hidden_size, self.max_positions = vocab_size, hidden_size, max_positions
        self.mask_token_id = mask_token_id
        super().__init__(**kwargs)


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        h = config.hidden_size
        self.embed = nn.Embedding(config.vocab_size, h)
        self.position = nn.Embedding(config.max_positions, h)
        self.qkv = nn.Linear(h, 3 * h)
        self.head = nn.Linear(h, config.vocab_size)

    def forward(self, input_ids, attention_mask=None, position_ids=None, **kwargs):
        if position_ids is None:  # counted from the first real token, as RoPE sees it
            real = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
            position_ids = (real.cumsum(-1) - 1).clamp(min=0)
        x = self.embed(input_ids) + self.position(position_ids)
        q, k, v = self.qkv(x).chunk(3, -1)
        scores = q @ k.transpose(1, 2) / q.shape[-1] ** 0.5
        if attention_mask is not None:
            keep = attention_mask.bool()
            keep = keep[:, 0] if keep.dim() == 4 else keep[:, None, :]
            scores = scores.masked_fill(~keep, -1e9)
        return MaskedLMOutput(logits=self.head(x + scores.softmax(-1) @ v))
'''


def _tokenizer(directory: Path):
    """A byte-level tokenizer (no merges, 262 tokens) with special tokens and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    special = ["<|mask|>", "<|eos|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([""], trainers.BpeTrainer(vocab_size=262, special_tokens=special, show_progress=False,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|eos|>", pad_token="<|pad|>",
                                        mask_token="<|mask|>", additional_special_tokens=special[3:])
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    tokenizer.save_pretrained(directory)
    return tokenizer


def make_checkpoint(directory: Path, model_type: str, mask_token_id: int | None = 0, seed: int = 0) -> Path:
    """A random checkpoint directory of `model_type` ("llada" or "dream") loadable with trust_remote_code."""
    directory.mkdir(parents=True)
    (directory / "modeling_tiny.py").write_text(MODELING.replace("MODEL_TYPE", model_type))
    tokenizer = _tokenizer(directory)
    config = {"model_type": model_type, "architectures": ["TinyModel"], "vocab_size": VOCAB, "hidden_size": 32,
              "max_positions": 512, "mask_token_id": mask_token_id, "eos_token_id": tokenizer.eos_token_id,
              "pad_token_id": tokenizer.pad_token_id, "torch_dtype": "float32",
              "auto_map": {"AutoConfig": "modeling_tiny.TinyConfig", "AutoModel": "modeling_tiny.TinyModel"}}
    (directory / "config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    shapes = {"embed.weight": (VOCAB, 32), "position.weight": (512, 32), "qkv.weight": (96, 32), "qkv.bias": (96,),
              "head.weight": (VOCAB, 32), "head.bias": (VOCAB,)}
    save_file({name: torch.randn(shape) for name, shape in shapes.items()}, directory / "model.safetensors")
    return directory


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {family: make_checkpoint(root / family, family) for family in ("llada", "dream")}


@pytest.fixture(scope="module")
def saved_pc(tmp_path_factory) -> Path:
    return save_pc(HMM.random(8, VOCAB, torch.Generator().manual_seed(0), window=16),
                   tmp_path_factory.mktemp("pc") / "tiny-pc")


@pytest.fixture(scope="module")
def adapter(checkpoints, tmp_path_factory) -> Path:
    """A tiny diffu-GRPO-style LoRA adapter (peft layout, as d1's) on the tiny network's qkv projection,
    with nonzero weights so that merging it changes the model."""
    from transformers import AutoModel
    from baselines.grpo.adapter import add_lora
    network = AutoModel.from_pretrained(str(checkpoints["llada"]), trust_remote_code=True)
    lora = add_lora(network, rank=2, alpha=4, targets=("qkv",))
    torch.manual_seed(1)
    for name, weight in lora.named_parameters():
        if "lora_B" in name:
            weight.data.normal_()
    path = tmp_path_factory.mktemp("adapter") / "tiny-lora"
    lora.save_pretrained(path)
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(cwd / "hf-home"),
           "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "harness", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_cli_runs_factorized_codd_and_diffu_grpo_offline(family, checkpoints, saved_pc, adapter, tmp_path):
    """The whole `run` command on a tiny remote-code checkpoint, with factorized decoding, CoDD with a
    PC in our format, CoDD with a pyjuice .jpc and diffu-GRPO with a LoRA adapter; each sample is
    decoded and recorded."""
    assert JPC_V300.is_file(), f"pyjuice fixture {JPC_V300} missing (../shared/fixtures)"
    out = tmp_path / "run"
    done = run_cli("--tasks", "sudoku4", "--model", str(checkpoints[family]), "--trust-remote-code",
                   "--samplers", f"factorized,codd:pc={saved_pc},codd:pc={JPC_V300},diffu-grpo:adapter={adapter}", "--tokens-per-step", "4",
                   "--limit", "2", "--device", "cpu", "--out", str(out), "--quiet", "--no-report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = records(out)
    assert len(rows) == 4 * 2
    assert {r["sampler"] for r in rows} == {"factorized", f"codd:pc={saved_pc}", f"codd:pc={JPC_V300}",
                                            f"diffu-grpo:adapter={adapter}"}
    expected_mode = {"llada": "block", "dream": "full"}[family]
    assert all(r["mode"] == expected_mode and r["protocol"] == "native" and r["steps"] == 4 for r in rows)
    assert all(1 <= r["nfe"] <= 4 for r in rows)


def test_loaded_backbone_follows_its_family(checkpoints):
    """Family defaults and ids come from the checkpoint: Dream is shifted full diffusion at T 0.2."""
    llada = load_backbone(str(checkpoints["llada"]), "math", trust_remote_code=True)
    dream = load_backbone(str(checkpoints["dream"]), "math", trust_remote_code=True)
    assert (llada.defaults.mode, llada.defaults.temperature, llada.shifted_logits) == ("block", 0.0, False)
    assert (dream.defaults.mode, dream.defaults.temperature, dream.defaults.top_p, dream.shifted_logits) == \
        ("full", 0.2, 0.95, True)
    assert (llada.mask_id, llada.eos_id, llada.pad_id, llada.vocab_size) == (0, 1, 2, VOCAB)
    assert llada.encode_chat([{"role": "user", "content": "hi"}])[-1] == llada.tokenizer.convert_tokens_to_ids(
        "<|assistant|>")


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_left_padding_does_not_change_a_row(family, checkpoints):
    """A padded row's logits equal the same prompt's logits alone: the padding mask (and Dream's
    position ids) reach the model."""
    backbone = load_backbone(str(checkpoints[family]), "math", trust_remote_code=True)
    short, long = [5, 6, 7], [8, 9, 10, 11, 12, 13]
    ids, mask = backbone.left_pad([short, long])
    alone = backbone.logits(torch.tensor([short]))
    assert torch.allclose(backbone.logits(ids, mask)[0, -3:], alone[0], atol=1e-5)


def test_remote_code_needs_consent(checkpoints):
    with pytest.raises(HarnessError, match="--trust-remote-code"):
        load_backbone(str(checkpoints["llada"]), "math")


def test_missing_or_inconsistent_mask_id_is_refused(tmp_path):
    with pytest.raises(HarnessError, match="declares no mask_token_id"):
        load_backbone(str(make_checkpoint(tmp_path / "none", "llada", mask_token_id=None)), "math",
                      trust_remote_code=True)
    with pytest.raises(HarnessError, match="mask_token_id 5 but the tokenizer's mask token is 0"):
        load_backbone(str(make_checkpoint(tmp_path / "five", "llada", mask_token_id=5)), "math",
                      trust_remote_code=True)


def _offline_cache(monkeypatch, cache: Path) -> None:
    """The hub cache at `cache`, offline (transformers reads both settings at import time)."""
    import huggingface_hub.constants
    import transformers.utils.hub
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(transformers.utils.hub, "_is_offline_mode", True)
    monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", str(cache))


def test_alias_refuses_a_checkpoint_with_other_ids(checkpoints, tmp_path, monkeypatch):
    """The alias llada-8b-instruct resolves to GSAI-ML/LLaDA-8B-Instruct in the HF cache; a cached
    copy whose ids are not the released ones (mask 126336, vocab 126464) is refused."""
    snapshot = tmp_path / "hub" / "models--GSAI-ML--LLaDA-8B-Instruct" / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoints["llada"], snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    _offline_cache(monkeypatch, tmp_path / "hub")
    with pytest.raises(HarnessError, match="not the released llada-8b-instruct.*expected llada, 126336, 126464"):
        load_backbone("llada-8b-instruct", "math")


def test_uncached_alias_offline_is_a_clear_error(tmp_path, monkeypatch):
    _offline_cache(monkeypatch, tmp_path / "empty")
    with pytest.raises(HarnessError, match="cannot load model 'Dream-org/Dream-v0-Instruct-7B'"):
        load_backbone("dream-7b-instruct", "math")


def test_transformers_5_is_refused(monkeypatch):
    import transformers
    monkeypatch.setattr(transformers, "__version__", "5.23.0")
    with pytest.raises(HarnessError, match="need transformers 4.57.x.*found 5.23.0"):
        load_backbone("llada-8b-instruct", "math")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(HarnessError, match="CUDA is not available"):
        resolve_device("cuda")


def _cached_repo(hub: Path, repo: str, files: dict[str, Path]) -> None:
    """A Hugging Face cache entry for `repo` holding `files` (name in the repo -> source)."""
    snapshot = hub / f"models--{repo.replace('/', '--')}" / "snapshots" / ("1" * 40)
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        shutil.copy(source, snapshot / name)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("1" * 40)


def test_released_pc_is_the_default_for_its_task_from_the_cache(checkpoints, tmp_path, monkeypatch, data_dir):
    """On a LLaDA-family backbone, `codd` without pc= gets the authors' gsm8k circuit, read offline
    from the HF cache (here a stand-in .jpc with the tiny vocabulary)."""
    from harness.runner import RunOptions, plan
    assert JPC_V300.is_file(), f"pyjuice fixture {JPC_V300} missing (../shared/fixtures)"
    _cached_repo(tmp_path / "hub", "il18/llada-gsm-pc", {"llada_gsm.jpc": JPC_V300})
    _offline_cache(monkeypatch, tmp_path / "hub")
    cells = plan(RunOptions(tasks=("gsm8k",), samplers=("codd:gamma=0.5",), model=str(checkpoints["llada"]),
                            trust_remote_code=True, gen_length=32, block_length=16, steps=(8,), limit=1,
                            data_dir=str(data_dir)))
    assert [c.sampler.spec for c in cells] == ["codd:gamma=0.5,pc=il18/llada-gsm-pc"]
    assert cells[0].sampler.pc_for(cells[0].backbone).num_states == 48


def test_uncached_released_pc_offline_is_a_clear_error(tmp_path, monkeypatch):
    from codd import load_pc
    _offline_cache(monkeypatch, tmp_path / "empty")
    with pytest.raises(HarnessError, match="PC il18/llada-math-pc is not in the Hugging Face cache"):
        load_pc("il18/llada-math-pc")
