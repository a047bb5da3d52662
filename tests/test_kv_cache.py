"""Fast-dLLM's approximate KV cache (`--cache prefix|dual`) on tiny real transformers: exact
where it must be (no cache; each block's first step; a live pass over unchanged tokens), per-row,
recorded, and refused where a backbone has no cache."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_real_backends import make_checkpoint
from tiny_backbone import TinyBackbone

from harness.backbones.embedded import EmbeddedBackbone
from harness.backbones.transformer import MaskedDiffusionTransformer, TransformerConfig
from harness.engine.cache import BlockCache
from harness.engine.decoding import DecodeConfig, generate
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
VOCAB, PAD, EOS, MASK = 16, 13, 14, 15


def tiny(seed=0, grid=False):
    torch.manual_seed(seed)
    regions = [[16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]] if grid else []
    model = MaskedDiffusionTransformer(TransformerConfig(vocab_size=VOCAB, n_layer=2, n_head=2, d_model=16,
                                                         grid_regions=regions))
    return EmbeddedBackbone(model, SimpleNamespace(mask_token_id=MASK, eos_token_id=EOS, pad_token_id=PAD), "tiny")


def prompts(count, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, PAD, (int(torch.randint(2, 7, (1,), generator=g)),), generator=g).tolist()
            for _ in range(count)]


def decode(backbone, config, batch, seed=0):
    ids, mask = backbone.left_pad(prompts(batch, seed))
    return generate(backbone, ids, mask, config, [torch.Generator().manual_seed(i) for i in range(batch)])


@pytest.mark.parametrize("grid", [False, True])
def test_a_live_pass_over_unchanged_tokens_gives_the_full_pass_logits(grid):
    """Positions, padding and grid embeddings of the live span line up with the whole sequence's."""
    backbone = tiny(grid=grid)
    ids, mask = backbone.left_pad([p + [MASK] * 24 for p in prompts(3)])
    full, frozen = backbone.logits_recording(ids, mask)
    assert torch.equal(full, backbone.logits(ids, mask))
    for live in (slice(8, ids.shape[1]), slice(8, 16)):
        torch.testing.assert_close(backbone.logits_live(ids, mask, frozen, live), full[:, live])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_one_step_per_block_is_exact_under_either_cache(temperature):
    """Every step is then a block's first: the uncached pass."""
    backbone = tiny(1)
    config = DecodeConfig(gen_length=16, steps=2, block_length=8, temperature=temperature, early_stop=False)
    exact = decode(backbone, config, 4).tokens
    for cache in ("prefix", "dual"):
        assert torch.equal(decode(backbone, DecodeConfig(**{**config.__dict__, "cache": cache}), 4).tokens, exact)


def test_the_first_step_of_each_block_is_the_uncached_step():
    backbone = tiny(2)
    ids, mask = backbone.left_pad([p + [MASK] * 16 for p in prompts(2)])
    cache, keys = BlockCache(backbone, "prefix"), torch.arange(2)
    for start in (ids.shape[1] - 16, ids.shape[1] - 8):
        assert torch.equal(cache.logits(ids, mask, keys, start, 8), backbone.logits(ids, mask)[:, start:start + 8])
        ids[:, start] = 3  # a commit: the block's later steps reuse the stale keys and values
        later = cache.logits(ids, mask, keys, start, 8)
        assert not torch.allclose(later[:, 1:], backbone.logits(ids, mask)[:, start + 1:start + 8])


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_cached_decoding_is_per_row_and_costs_what_exact_decoding_costs_in_passes(cache):
    backbone = tiny(3)
    config = DecodeConfig(gen_length=16, steps=8, block_length=8, temperature=1.0, cfg_scale=1.0,
                          early_stop=False, cache=cache)
    together = decode(backbone, config, 4)
    for row in range(4):
        ids, mask = backbone.left_pad(prompts(4)[row:row + 1])
        alone = generate(backbone, ids, mask, config, [torch.Generator().manual_seed(row)])
        assert torch.equal(alone.tokens[0], together.tokens[row])
    assert together.nfe == [16] * 4  # CFG: two passes per step, cached or not


def test_a_backbone_without_a_cache_or_full_diffusion_is_refused():
    config = DecodeConfig(gen_length=8, steps=4, block_length=8, early_stop=False, cache="dual")
    tiny_hf_like = TinyBackbone(vocab_size=8)
    ids = torch.tensor([[0, 1]])
    with pytest.raises(HarnessError, match="no KV cache API"):
        generate(tiny_hf_like, ids, torch.ones_like(ids, dtype=torch.bool), config, [torch.Generator()])
    with pytest.raises(HarnessError, match="block diffusion only"):
        DecodeConfig(gen_length=8, steps=4, mode="full", cache="prefix").validate()


def _run(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(cwd / "hf-home"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "harness", "run", "--quiet", "--no-report", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_cache_mode_is_recorded_per_sample_and_in_the_manifest(tmp_path):
    out = tmp_path / "run"
    done = _run("--tasks", "sudoku4", "--samplers", "factorized,codd,diffu-grpo", "--tokens-per-step", "4",
                "--limit", "2", "--cache", "dual", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {r["sampler"] for r in records} == {"factorized", "codd", "diffu-grpo"}
    assert {r["cache"] for r in records} == {"dual"}
    assert json.loads((out / "manifest.json").read_text())["config"]["cache"] == "dual"


def test_a_transformers_backbone_refuses_the_cache_in_one_line(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "llada", "llada")
    out = tmp_path / "run"
    done = _run("--tasks", "sudoku4", "--model", str(checkpoint), "--trust-remote-code", "--samplers", "factorized",
                "--limit", "1", "--device", "cpu", "--cache", "prefix", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no KV cache API" in done.stderr
    assert not out.exists()
