"""Factorized decoding: every masked position sampled independently from the backbone's own
per-token distribution, committed by the remasking rule (DESIGN.md section 4.1)."""

from __future__ import annotations

from harness.engine.decoding import DecodeConfig, Generation, generate
from harness.engine.sampler import Sampler, register_sampler


@register_sampler
class Factorized(Sampler):
    name = "factorized"
    description = "the backbone's own per-token distributions, unmasked by confidence within the step budget"

    def __init__(self):  # no options: a spec such as `factorized:x=1` is an error, not silently ignored
        super().__init__()

    def generate(self, backbone, prompt_ids, attention_mask, config: DecodeConfig, generators) -> Generation:
        return generate(backbone, prompt_ids, attention_mask, config, generators)
