"""An lm-evaluation-harness model, `codd-bench`, that decodes with our backbones and samplers.

lm-eval finds models through its registry, which only sees modules that were imported, so run it
through this module (it registers the model, then hands the command line to lm-eval):

    python -m harness.lm_eval_adapter --model codd-bench \\
        --model_args model=llada-8b-instruct,sampler=codd,steps=256 --tasks minerva_math500,gsm8k \\
        --apply_chat_template --include_path harness/lm_eval_tasks

Model args: `model` (as `run --model`; default embedded), `family` (which embedded model; default
math), `sampler` (a spec; `;` separates its options, as `,` separates model args), `steps`,
`gen_length` (default 512 and `block_length` 32: the CoDD protocol), `remasking`, `temperature`
(defaults: the model's), `seed`, `batch_size`, `device`, `dtype`, `trust_remote_code`.

Only `generate_until` is served: a masked diffusion model has no left-to-right likelihood, so
lm-eval's loglikelihood tasks get a clear error (harness/gap.py measures likelihoods our way).
"""

from __future__ import annotations

import hashlib

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from harness.backbones import load_backbone, resolve_device
from harness.engine.decoding import DecodeConfig
from harness.engine.sampler import get_sampler
from harness.errors import HarnessError
from harness.runner import row_seed


@register_model("codd-bench")
class CoddBenchLM(LM):
    def __init__(self, model: str = "embedded", family: str = "math", sampler: str = "factorized",
                 steps: int = 256, gen_length: int = 512, block_length: int = 32, remasking: str | None = None,
                 temperature: float | None = None, seed: int = 0, batch_size: int | str = 8, device: str | None = None,
                 dtype: str | None = None, trust_remote_code: bool = False, **unused):
        super().__init__()
        self.backbone = load_backbone(model, family, dtype, resolve_device(device or "cpu"),
                                      str(trust_remote_code).lower() == "true")
        self.sampler = get_sampler(sampler.replace(";", ","))
        self.sampler.check(self.backbone)
        defaults = self.backbone.defaults
        self.config = DecodeConfig(
            gen_length=int(gen_length), steps=int(steps), block_length=int(block_length), mode=defaults.mode,
            temperature=float(defaults.temperature if temperature is None else temperature),
            remasking=remasking or defaults.remasking, top_p=defaults.top_p, top_k=defaults.top_k)
        self.config.validate()
        self.seed = int(seed)
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 8  # "auto" is not ours to size

    @property
    def tokenizer_name(self) -> str:
        return self.backbone.name.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.backbone.tokenizer.chat_template

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.backbone.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                           add_generation_prompt=add_generation_prompt)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Each request's context decoded by the sampler in `steps` steps, cut at its first stop string."""
        outputs = []
        for start in range(0, len(requests), self.batch_size):
            batch = [request.args for request in requests[start:start + self.batch_size]]
            outputs += [self._cut(text, kwargs.get("until")) for text, (_, kwargs) in
                        zip(self.complete([context for context, _ in batch]), batch)]
        return outputs

    def complete(self, contexts: list[str]) -> list[str]:
        """Completions of already-formatted prompt strings (the same seed per prompt as in any batch)."""
        tokenizer = self.backbone.tokenizer
        ids, mask = self.backbone.left_pad([tokenizer(c, add_special_tokens=False).input_ids for c in contexts])
        generators = [torch.Generator(device=self.backbone.device).manual_seed(
            row_seed(self.seed, "lm-eval", hashlib.sha256(c.encode()).hexdigest())) for c in contexts]
        tokens = self.sampler.generate(self.backbone, ids, mask, self.config, generators).tokens
        return [self.backbone.decode(row.tolist()) for row in tokens]

    @staticmethod
    def _cut(text: str, until) -> str:
        for stop in ([until] if isinstance(until, str) else until or []):
            if stop:
                text = text.split(stop)[0]
        return text

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise HarnessError("codd-bench serves generate_until tasks only: a masked diffusion model has no "
                           "left-to-right loglikelihood (use `python -m harness gap` for likelihoods)")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        self.loglikelihood(requests)


if __name__ == "__main__":
    from lm_eval.__main__ import cli_evaluate
    cli_evaluate()
