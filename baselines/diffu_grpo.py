"""The `diffu-grpo` sampler: factorized decoding on the backbone with a diffu-GRPO LoRA adapter
merged in (DESIGN.md section 4.3).

`diffu-grpo:adapter=PATH` takes any peft LoRA adapter directory for the backbone's network
(one written by `python -m harness train-rl`, or a d1 adapter for a LLaDA-like backbone);
without it, the adapter shipped for the backbone (baselines/assets/<family>/).
"""

from __future__ import annotations

from baselines.grpo.adapter import adapted, default_adapter_path, shipped_adapters
from harness.engine.decoding import DecodeConfig, Generation, generate
from harness.engine.sampler import Sampler, register_sampler


@register_sampler
class DiffuGRPO(Sampler):
    name = "diffu-grpo"
    description = "factorized decoding on the backbone plus a diffu-GRPO LoRA adapter (option: adapter=PATH)"

    def __init__(self, adapter: str | None = None):
        super().__init__(**({} if adapter is None else {"adapter": adapter}))
        self.adapter = None if adapter is None else str(adapter)
        self._tuned = {}

    def applies_to(self, backbone) -> bool:
        return self.adapter is not None or backbone.name in shipped_adapters()

    def tuned(self, backbone):
        """`backbone` with the adapter merged in, built once per backbone."""
        if backbone.name not in self._tuned:
            self._tuned[backbone.name] = adapted(backbone, self.adapter or default_adapter_path(backbone.name))
        return self._tuned[backbone.name]

    def check(self, backbone) -> None:
        self.tuned(backbone)

    def generate(self, backbone, prompt_ids, attention_mask, config: DecodeConfig, generators) -> Generation:
        return generate(self.tuned(backbone), prompt_ids, attention_mask, config, generators)
