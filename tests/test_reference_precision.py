"""bfloat16 exactness: with --reference-precision the engine commits what the reference loops commit
when the model runs in bfloat16 (as on a GPU), where they compute confidences without upcasting.

The loops below re-state, from reading them, Dream's `_sample` / `sample_tokens` (generation_utils.py,
greedy, entropy ordering, top-p and top-k) and the CoDD authors' LLaDA loop (llada_generate.py,
greedy, margin and entropy confidences from the softmax of the bfloat16 logits). One change: their
torch.topk leaves the order among equal confidences unspecified, so the re-statements take the
leftmost, as the engine does (with bfloat16 confidences, ties are common).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.backbones import load_backbone
from harness.engine.decoding import DecodeConfig, generate
from test_real_backends import make_checkpoint

GEN_LENGTH = 16


def _commit_order(confidence: torch.Tensor, count: int) -> torch.Tensor:
    return confidence.argsort(descending=True, stable=True)[:count]


def dream_generate(logits_of, prompt, steps, top_p, top_k, mask_id, eps=1e-3):
    x = F.pad(prompt, (0, GEN_LENGTH), value=mask_id)
    timesteps = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        mask_index = x == mask_id
        logits = logits_of(x)
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)[mask_index]
        sorted_logits, order = torch.sort(logits, descending=True)
        beyond = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1) > top_p
        beyond[..., 1:] = beyond[..., :-1].clone()
        beyond[..., 0] = False
        logits = logits.masked_fill(torch.zeros_like(beyond).scatter(-1, order, beyond), torch.finfo(logits.dtype).min)
        logits = logits.masked_fill(logits < torch.topk(logits, top_k)[0][..., -1:], torch.finfo(logits.dtype).min)
        probs = torch.softmax(logits, dim=-1)
        x0 = probs.max(dim=-1).indices
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
        masks = mask_index.sum()
        count = int(masks * (1 - timesteps[i + 1] / timesteps[i])) if i < steps - 1 else int(masks)
        if count > 0:
            chosen = torch.full_like(x0, mask_id)
            picked = _commit_order(confidence, count)
            chosen[picked] = x0[picked]
            x[mask_index] = chosen
    return x[:, prompt.shape[1]:]


def codd_llada_generate(logits_of, prompt, steps, block_length, remasking, mask_id):
    x = F.pad(prompt, (0, GEN_LENGTH), value=mask_id)
    blocks = GEN_LENGTH // block_length
    for block in range(blocks):
        start = prompt.shape[1] + block * block_length
        end = start + block_length
        masks = int((x[:, start:end] == mask_id).sum())
        per_block = steps // blocks
        counts = [masks // per_block + (i < masks % per_block) for i in range(per_block)]
        for count in counts:
            mask_index = x == mask_id
            logits = logits_of(x)
            x0 = torch.argmax(logits, dim=-1)
            probs = torch.softmax(logits, dim=-1)
            if remasking == "margin":
                top = torch.topk(probs, k=2, dim=-1).values
                confidence = top[..., 0] - top[..., 1]
            else:
                confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
            confidence[:, end:] = -torch.inf
            confidence = torch.where(mask_index, confidence, -torch.inf)
            if count > 0:
                picked = _commit_order(confidence[0], count)
                x[0, picked] = x0[0, picked]
    return x[:, prompt.shape[1]:]


@pytest.fixture(scope="module")
def bf16_backbones(tmp_path_factory):
    """The tiny checkpoints in bfloat16. Like trained models they never predict the mask token (Dream's
    loop recounts masks every step, so a committed mask token would shift its schedule)."""
    root = tmp_path_factory.mktemp("bf16")
    backbones = {family: load_backbone(str(make_checkpoint(root / family, family, seed=3)), "math", "bfloat16",
                                       trust_remote_code=True) for family in ("llada", "dream")}
    heads = {"llada": backbones["llada"].model.model.transformer["ff_out"], "dream": backbones["dream"].model.lm_head}
    for family, head in heads.items():
        head.bias.data[backbones[family].mask_id] = -1e4
    return backbones


def _prompts(count: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(3, 262, (1, int(torch.randint(2, 7, (1,), generator=g))), generator=g) for _ in range(count)]


def _ours(backbone, prompt, config):
    return generate(backbone, prompt, torch.ones_like(prompt, dtype=torch.bool), config,
                    [torch.Generator().manual_seed(0)]).tokens


@pytest.mark.parametrize("steps", [4, 8, 16])
def test_dream_in_bfloat16_commits_what_dreams_loop_commits(bf16_backbones, steps):
    backbone = bf16_backbones["dream"]
    config = DecodeConfig(gen_length=GEN_LENGTH, steps=steps, mode="full", temperature=0.0, remasking="entropy",
                          top_p=0.95, top_k=50, early_stop=False, reference_precision=True)
    for prompt in _prompts(4):
        reference = dream_generate(backbone.logits, prompt, steps, 0.95, 50, backbone.mask_id)
        assert torch.equal(_ours(backbone, prompt, config), reference)


@pytest.mark.parametrize("remasking", ["margin", "entropy"])
@pytest.mark.parametrize("steps,block_length", [(4, 16), (8, 8), (16, 4)])
def test_llada_in_bfloat16_commits_what_the_codd_authors_loop_commits(bf16_backbones, remasking, steps,
                                                                       block_length):
    backbone = bf16_backbones["llada"]
    config = DecodeConfig(gen_length=GEN_LENGTH, steps=steps, block_length=block_length, temperature=0.0,
                          remasking=remasking, early_stop=False, reference_precision=True)
    for prompt in _prompts(4):
        reference = codd_llada_generate(backbone.logits, prompt, steps, block_length, remasking, backbone.mask_id)
        assert torch.equal(_ours(backbone, prompt, config), reference)


def test_float64_confidences_can_commit_otherwise(bf16_backbones):
    """Why the switch exists: upcast confidences break the ties and roundings that bfloat16 makes, so
    the default decoding parts from the reference on some prompts."""
    backbone = bf16_backbones["llada"]
    config = DecodeConfig(gen_length=GEN_LENGTH, steps=8, block_length=16, temperature=0.0, remasking="entropy",
                          early_stop=False)
    assert any(not torch.equal(_ours(backbone, prompt, config),
                               codd_llada_generate(backbone.logits, prompt, 8, 16, "entropy", backbone.mask_id))
               for prompt in _prompts(16))
