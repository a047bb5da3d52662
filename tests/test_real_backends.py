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

# One bidirectional transformer layer in each family's own layout, so that LoRA targets, adapters and
# call signatures meet what the authors' code has (module names from LLaDA's modeling_llada.py and
# Dream's Qwen2-style modeling_dream.py):
# * LLaDA: model.transformer.{wte, blocks.N.{q_proj, k_proj, v_proj, attn_out, ff_proj, up_proj,
#   ff_out}, ff_out}; forward(input_ids, input_embeddings=None, attention_mask=None, ...) takes a 2-D
#   padding mask by keyword only; logits are `embedding_size` wide when the config pads it.
# * Dream: model.{embed_tokens, layers.N.self_attn.{q,k,v,o}_proj, layers.N.mlp.{gate,up,down}_proj}
#   and lm_head; forward(input_ids, attention_mask=None, position_ids=None) takes only a pairwise
#   [B, 1, T, T] mask.
# The config classes default mask_token_id as the real ones do (50256, 151666), so a config.json
# that omits it still yields an id.
MODELING = '''
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

FAMILY = "MODEL_TYPE"


class TinyConfig(PretrainedConfig):
    model_type = FAMILY

    def __init__(self, vocab_size=300, embedding_size=None, hidden_size=32, max_positions=512,
                 mask_token_id=50256 if FAMILY == "llada" else 151666, **kwargs):
        self.vocab_size, self.embedding_size, self.hidden_size = vocab_size, embedding_size, hidden_size
        self.max_positions, self.mask_token_id = max_positions, mask_token_id
        super().__init__(**kwargs)


def attend(q, k, v, keep):
    scores = q @ k.transpose(1, 2) / q.shape[-1] ** 0.5
    return scores.masked_fill(~keep, -1e9).softmax(-1) @ v


class LLaDABlock(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.attn_out = (nn.Linear(h, h) for _ in range(4))
        self.ff_proj, self.up_proj, self.ff_out = nn.Linear(h, 2 * h), nn.Linear(h, 2 * h), nn.Linear(2 * h, h)

    def forward(self, x, keep):
        x = x + self.attn_out(attend(self.q_proj(x), self.k_proj(x), self.v_proj(x), keep))
        return x + self.ff_out(F.silu(self.ff_proj(x)) * self.up_proj(x))


class DreamAttention(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(h, h) for _ in range(4))

    def forward(self, x, keep):
        return self.o_proj(attend(self.q_proj(x), self.k_proj(x), self.v_proj(x), keep))


class DreamMLP(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = nn.Linear(h, 2 * h), nn.Linear(h, 2 * h), nn.Linear(2 * h, h)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DreamLayer(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.self_attn, self.mlp = DreamAttention(h), DreamMLP(h)

    def forward(self, x, keep):
        x = x + self.self_attn(x, keep)
        return x + self.mlp(x)


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        h, width = config.hidden_size, config.embedding_size or config.vocab_size
        self.position = nn.Embedding(config.max_positions, h)
        if FAMILY == "llada":
            self.model = nn.Module()
            self.model.transformer = nn.ModuleDict({"wte": nn.Embedding(width, h), "blocks": nn.ModuleList(
                [LLaDABlock(h)]), "ff_out": nn.Linear(h, width)})
        else:
            self.model = nn.Module()
            self.model.embed_tokens, self.model.layers = nn.Embedding(width, h), nn.ModuleList([DreamLayer(h)])
            self.lm_head = nn.Linear(h, width)

    def _run(self, input_ids, keep, position_ids):
        if FAMILY == "llada":
            parts = self.model.transformer
            embed, layers, head = parts["wte"], parts["blocks"], parts["ff_out"]
        else:
            embed, layers, head = self.model.embed_tokens, self.model.layers, self.lm_head
        x = embed(input_ids) + self.position(position_ids)
        for layer in layers:
            x = layer(x, keep)
        return MaskedLMOutput(logits=head(x))

    if FAMILY == "llada":
        def forward(self, input_ids, input_embeddings=None, attention_mask=None, **kwargs):
            if input_embeddings is not None:
                raise ValueError("this tiny LLaDA takes token ids only")
            real = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
            positions = (real.cumsum(-1) - 1).clamp(min=0)  # counted from the first real token, as RoPE sees it
            return self._run(input_ids, real.bool()[:, None, :], positions)
    else:
        def forward(self, input_ids, attention_mask=None, position_ids=None, **kwargs):
            if attention_mask is not None and attention_mask.dim() != 4:
                raise ValueError(f"Dream expects a [B, 1, T, T] attention mask, got {tuple(attention_mask.shape)}")
            if position_ids is None:
                position_ids = torch.arange(input_ids.shape[1]).expand_as(input_ids)
            keep = torch.ones(1, 1, 1, dtype=torch.bool) if attention_mask is None else attention_mask[:, 0].bool()
            return self._run(input_ids, keep, position_ids)
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


def make_checkpoint(directory: Path, model_type: str, mask_token_id: int | None = 0, seed: int = 0,
                    embedding_size: int | None = None) -> Path:
    """A random checkpoint directory of `model_type` ("llada" or "dream") loadable with trust_remote_code;
    `mask_token_id` None leaves the id out of config.json; `embedding_size` pads the embeddings and logits."""
    directory.mkdir(parents=True)
    modeling = MODELING.replace("MODEL_TYPE", model_type)
    (directory / "modeling_tiny.py").write_text(modeling)
    tokenizer = _tokenizer(directory)
    config = {"model_type": model_type, "architectures": ["TinyModel"], "vocab_size": VOCAB, "hidden_size": 32,
              "max_positions": 512, "eos_token_id": tokenizer.eos_token_id,
              "pad_token_id": tokenizer.pad_token_id, "torch_dtype": "float32",
              "auto_map": {"AutoConfig": "modeling_tiny.TinyConfig", "AutoModel": "modeling_tiny.TinyModel"}}
    if mask_token_id is not None:
        config["mask_token_id"] = mask_token_id
    if embedding_size is not None:
        config["embedding_size"] = embedding_size
    (directory / "config.json").write_text(json.dumps(config))
    code = {}
    exec(compile(modeling, "modeling_tiny.py", "exec"), code)
    torch.manual_seed(seed)
    network = code["TinyModel"](code["TinyConfig"](**config))
    # Unit-variance embeddings and activations (weights scaled by 1/sqrt(fan-in)): logits of a few units.
    save_file({name: torch.randn(w.shape) / (w.shape[1] ** 0.5 if w.dim() == 2 and "embed" not in name
                                              and "wte" not in name and "position" not in name else 1)
               for name, w in network.state_dict().items()}, directory / "model.safetensors")
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
def adapters(checkpoints, tmp_path_factory) -> dict[str, Path]:
    """Per family, a tiny diffu-GRPO-style LoRA adapter (peft layout, as d1's) on the family's
    attention and MLP projections, with nonzero weights so that merging it changes the model."""
    from transformers import AutoModel
    from baselines.grpo.adapter import LORA_TARGETS, add_lora
    made = {}
    for family, checkpoint in checkpoints.items():
        network = AutoModel.from_pretrained(str(checkpoint), trust_remote_code=True)
        lora = add_lora(network, rank=2, alpha=4, targets=LORA_TARGETS[family])
        torch.manual_seed(1)
        for name, weight in lora.named_parameters():
            if "lora_B" in name:
                weight.data.normal_()
        made[family] = tmp_path_factory.mktemp("adapter") / f"tiny-{family}-lora"
        lora.save_pretrained(made[family])
    return made


def run_cli(*args: str, cwd: Path, command: str = "run") -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(cwd / "hf-home"),
           "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "harness", command, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_cli_runs_factorized_codd_and_diffu_grpo_offline(family, checkpoints, saved_pc, adapters, tmp_path):
    """The whole `run` command on a tiny remote-code checkpoint, with factorized decoding, CoDD with a
    PC in our format, CoDD with a pyjuice .jpc and diffu-GRPO with a LoRA adapter; each sample is
    decoded and recorded."""
    assert JPC_V300.is_file(), f"pyjuice fixture {JPC_V300} missing (../shared/fixtures)"
    out = tmp_path / "run"
    done = run_cli("--tasks", "sudoku4", "--model", str(checkpoints[family]), "--trust-remote-code",
                   "--samplers", f"factorized,codd:pc={saved_pc},codd:pc={JPC_V300},diffu-grpo:adapter={adapters[family]}", "--tokens-per-step", "4",
                   "--limit", "2", "--device", "cpu", "--out", str(out), "--quiet", "--no-report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = records(out)
    assert len(rows) == 4 * 2
    assert {r["sampler"] for r in rows} == {"factorized", f"codd:pc={saved_pc}", f"codd:pc={JPC_V300}",
                                            f"diffu-grpo:adapter={adapters[family]}"}
    expected_mode = {"llada": "block", "dream": "full"}[family]
    assert all(r["mode"] == expected_mode and r["protocol"] == "native" and r["steps"] == 4 for r in rows)
    assert all(1 <= r["nfe"] <= 4 for r in rows)


def test_loaded_backbone_follows_its_family(checkpoints):
    """Family defaults and ids come from the checkpoint: Dream is shifted full diffusion at T 0.2."""
    llada = load_backbone(str(checkpoints["llada"]), "math", trust_remote_code=True)
    dream = load_backbone(str(checkpoints["dream"]), "math", trust_remote_code=True)
    assert (llada.defaults.mode, llada.defaults.temperature, llada.shifted_logits) == ("block", 0.0, False)
    assert (dream.defaults.mode, dream.defaults.temperature, dream.defaults.top_p, dream.defaults.top_k,
            dream.shifted_logits) == ("full", 0.2, 0.95, 50, True)
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
    assert torch.allclose(backbone.logits(ids, mask)[0, -3:], alone[0], atol=1e-4)


def test_remote_code_needs_consent(checkpoints):
    with pytest.raises(HarnessError, match="--trust-remote-code"):
        load_backbone(str(checkpoints["llada"]), "math")


def test_missing_or_inconsistent_mask_id_is_refused(tmp_path):
    """A config.json without mask_token_id is refused, although the config class would fill in its own
    default (50256 here, as LLaDA's does)."""
    with pytest.raises(HarnessError, match="config.json of .* declares no mask_token_id"):
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
    assert cells[0].sampler.chosen(cells[0].backbone).hmm.num_states == 48


def test_uncached_released_pc_offline_is_a_clear_error(tmp_path, monkeypatch):
    from codd import load_pc
    _offline_cache(monkeypatch, tmp_path / "empty")
    with pytest.raises(HarnessError, match="PC il18/llada-math-pc is not in the Hugging Face cache"):
        load_pc("il18/llada-math-pc")


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_train_rl_then_decode_with_its_adapter(family, checkpoints, tmp_path):
    """train-rl on a remote-code checkpoint: LoRA on the family's seven projections of every layer
    (never LLaDA's output head, also called ff_out), the attention mask reaching the network, an
    adapter that `run` then decodes with."""
    from peft.utils import load_peft_weights
    adapter = tmp_path / "grpo"
    trained = run_cli("--task", "sudoku4", "--model", str(checkpoints[family]), "--trust-remote-code", "--device", "cpu",
                      "--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--inner-updates", "1",
                      "--lora-rank", "2", "--lora-alpha", "4", "--limit", "4", "--tokens-per-step", "4",
                      "--out", str(adapter), "--quiet", cwd=tmp_path, command="train-rl")
    assert trained.returncode == 0, trained.stderr
    modules = {key.removeprefix("base_model.model.").rsplit(".lora_", 1)[0] for key in load_peft_weights(str(adapter))}
    expected = {"llada": {f"model.transformer.blocks.0.{name}" for name in
                          ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out")},
                "dream": {f"model.layers.0.self_attn.{n}_proj" for n in "qkvo"}
                | {f"model.layers.0.mlp.{n}_proj" for n in ("gate", "up", "down")}}[family]
    assert modules == expected
    compute = json.loads((adapter / "compute.json").read_text())
    assert compute["kind"] == "rl" and compute["steps"] == 2 and "--trust-remote-code" in compute["command"]
    out = tmp_path / "run"
    done = run_cli("--tasks", "sudoku4", "--model", str(checkpoints[family]), "--trust-remote-code",
                   "--samplers", f"diffu-grpo:adapter={adapter}", "--tokens-per-step", "4", "--limit", "2",
                   "--device", "cpu", "--out", str(out), "--quiet", "--no-report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [r["sampler"] for r in records(out)] == [f"diffu-grpo:adapter={adapter}"] * 2


def test_an_adapter_for_another_network_is_refused(checkpoints, adapters, tmp_path):
    """A Dream adapter on LLaDA shares some module names (q_proj, ...) but not their paths: refused in
    one line, nothing written (peft alone would only warn and decode as the base model)."""
    out = tmp_path / "run"
    done = run_cli("--tasks", "sudoku4", "--model", str(checkpoints["llada"]), "--trust-remote-code",
                   "--samplers", f"diffu-grpo:adapter={adapters['dream']}", "--tokens-per-step", "4", "--limit", "1",
                   "--device", "cpu", "--out", str(out), "--quiet", "--no-report", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "does not fit backbone" in done.stderr
    assert "7 of the 7 modules it adapts are not in its network, e.g. model.layers.0.mlp.down_proj" in done.stderr
    assert not out.exists()


def test_a_pc_must_span_the_padded_embedding_width(tmp_path):
    """LLaDA-style configs may pad embedding_size beyond vocab_size; the logits, and so the PC's
    emission table, span the padded width: a PC sized to vocab_size is refused before decoding, one
    of the padded width decodes."""
    from harness.runner import RunOptions, plan
    padded = make_checkpoint(tmp_path / "padded", "llada", embedding_size=VOCAB + 4)
    assert load_backbone(str(padded), "sudoku", trust_remote_code=True).vocab_size == VOCAB + 4
    narrow, wide = (save_pc(HMM.random(8, v, torch.Generator().manual_seed(0), window=16), tmp_path / f"pc{v}")
                    for v in (VOCAB, VOCAB + 4))
    options = dict(tasks=("sudoku4",), model=str(padded), trust_remote_code=True, limit=1)
    with pytest.raises(HarnessError, match=f"vocabulary of {VOCAB} tokens but backbone .* has {VOCAB + 4} "
                                           r"\(the width of its logits, padded embeddings included\)"):
        plan(RunOptions(samplers=(f"codd:pc={narrow}",), **options))
    out = tmp_path / "run"
    done = run_cli("--tasks", "sudoku4", "--model", str(padded), "--trust-remote-code", "--samplers",
                   f"codd:pc={wide}", "--tokens-per-step", "4", "--limit", "1", "--device", "cpu", "--out", str(out),
                   "--quiet", "--no-report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(records(out)) == 1


def test_default_samplers_offline_leave_out_an_uncached_released_pc(checkpoints, tmp_path, data_dir):
    """`run` without --samplers on a LLaDA checkpoint for gsm8k, offline, with the authors' PC not in
    the cache: codd is left out with a one-line note, the rest runs."""
    out = tmp_path / "run"
    done = run_cli("--tasks", "gsm8k", "--model", str(checkpoints["llada"]), "--trust-remote-code", "--gen-length",
                   "16", "--block-length", "16", "--tokens-per-step", "4", "--limit", "1", "--device", "cpu",
                   "--data-dir", str(data_dir), "--out", str(out), "--quiet", "--no-report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: codd left out for gsm8k: PC il18/llada-gsm-pc is not in the Hugging Face cache and "
                     "HF_HUB_OFFLINE is set; download it first (huggingface-cli download il18/llada-gsm-pc) or "
                     "pass a local path"]
    assert {r["sampler"] for r in records(out)} == {"factorized"}


def test_sampling_filters_are_options_recorded_per_sample(checkpoints, tmp_path):
    """Dream runs at its authors' T 0.2, top-p 0.95 and top-k 50 unless told otherwise; --top-k 0 and
    --top-p 1 switch the filters off; every record names the values it was decoded with (and the
    confidences' precision)."""
    def run(*options):
        out = tmp_path / f"run{len(options)}"
        done = run_cli("--tasks", "sudoku4", "--model", str(checkpoints["dream"]), "--trust-remote-code", "--samplers",
                       "factorized", "--tokens-per-step", "4", "--limit", "1", "--device", "cpu", "--out", str(out),
                       "--quiet", "--no-report", *options, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return {k: records(out)[0][k] for k in ("temperature", "top_p", "top_k", "reference_precision")}
    assert run() == {"temperature": 0.2, "top_p": 0.95, "top_k": 50, "reference_precision": False}
    assert run("--top-k", "0", "--top-p", "1", "--temperature", "0.7", "--reference-precision") == {
        "temperature": 0.7, "top_p": 1.0, "top_k": None, "reference_precision": True}


def test_top_k_reaches_the_decoder(checkpoints):
    """At T 1, top-k 1 leaves one candidate per position: two random streams decode the same tokens,
    which they do not without the filter."""
    from harness.runner import RunOptions, plan
    def decode(top_k):
        cell = plan(RunOptions(tasks=("sudoku4",), model=str(checkpoints["llada"]), trust_remote_code=True,
                               temperature=1.0, top_k=top_k, tokens_per_step=(4,), limit=1))[0]
        ids, mask = cell.backbone.left_pad([cell.backbone.encode_chat(cell.task.prompt(cell.examples[0]))])
        return [cell.sampler.generate(cell.backbone, ids, mask, cell.config, [torch.Generator().manual_seed(seed)])
                .tokens.tolist() for seed in (1, 2)]
    first, second = decode(1)
    assert first == second
    first, second = decode(0)
    assert first != second
