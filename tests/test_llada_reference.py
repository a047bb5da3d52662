"""Block decoding commits exactly what LLaDA's published algorithm commits (its re-statement:
tests/llada_reference.py)."""

import pytest
import torch
from llada_reference import llada_generate
from tiny_backbone import TinyBackbone

from harness.engine.decoding import DecodeConfig, generate


# (gen length, block length, steps): one token per step; blocks whose mask count the steps do
# not divide (8 masks in 3 steps: 3, 3, 2; 12 in 5: 3, 3, 2, 2, 2; 10 in 4); a single block.
SETTINGS = [(16, 16, 16), (24, 8, 9), (12, 12, 5), (40, 10, 16), (32, 32, 8)]


@pytest.mark.parametrize("gen_length,block_length,steps", SETTINGS)
@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
@pytest.mark.parametrize("temperature", [0.0, 0.7])
@pytest.mark.parametrize("cfg_scale", [0.0, 1.5])
def test_engine_commits_the_tokens_llada_commits(gen_length, block_length, steps, remasking, temperature,
                                                  cfg_scale):
    backbone = TinyBackbone(vocab_size=14, seed=gen_length + steps)
    config = DecodeConfig(gen_length=gen_length, steps=steps, block_length=block_length, mode="block",
                          temperature=temperature, remasking=remasking, cfg_scale=cfg_scale, early_stop=False)
    for seed in range(2):
        prompt = torch.randint(0, backbone.pad_id, (1, 3 + seed), generator=torch.Generator().manual_seed(seed))
        ours = generate(backbone, prompt, torch.ones_like(prompt, dtype=torch.bool), config,
                        [torch.Generator().manual_seed(seed)])
        reference = llada_generate(backbone.logits, prompt, steps, gen_length, block_length, temperature,
                                   cfg_scale, remasking, backbone.mask_id, torch.Generator().manual_seed(seed))
        assert torch.equal(ours.tokens, reference)
        assert ours.nfe == [steps * (2 if cfg_scale > 0 else 1)]
