"""Sequential decoding: one token per step, the model's own chain rule; the quality ceiling
of its parallel modes (DESIGN.md section 4.1)."""

from __future__ import annotations

from dataclasses import replace

from harness.engine.decoding import DecodeConfig, Generation, generate
from harness.engine.sampler import Sampler, register_sampler


@register_sampler
class Sequential(Sampler):
    name = "sequential"
    description = "one token per step (steps = gen length, block schedule): the ceiling of parallel decoding"
    uses_budget = False

    def __init__(self):  # no options: a spec such as `sequential:x=1` is an error, not silently ignored
        super().__init__()

    def generate(self, backbone, prompt_ids, attention_mask, config: DecodeConfig, generators) -> Generation:
        # Dream's full schedule does not commit exactly one token per step; one block over the whole
        # generation keeps its free order.
        block_length = config.block_length if config.mode == "block" else config.gen_length
        one_per_step = replace(config, steps=config.gen_length, mode="block", block_length=block_length)
        return generate(backbone, prompt_ids, attention_mask, one_per_step, generators)
