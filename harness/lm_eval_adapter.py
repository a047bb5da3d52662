"""An lm-evaluation-harness model, `codd-bench`, that decodes with our backbones and samplers.

lm-eval finds models through its registry, which only sees modules that were imported, so run it
through this module (it registers the model, then hands the command line to lm-eval):

    python -m harness.lm_eval_adapter --model codd-bench \\
        --model_args model=llada-8b-instruct,sampler=codd,steps=256 --tasks minerva_math500,gsm8k \\
        --apply_chat_template --include_path harness/lm_eval_tasks

Model args: `model` (as `run --model`; default embedded), `family` (which embedded model; default
math), `sampler` (a spec; `;` separates its options, as `,` separates model args; per task as in
`run`, so `codd` without `pc=` gets the authors' circuit for minerva_math500 and gsm8k on LLaDA or
Dream), `steps`, `gen_length` (default 512 and `block_length` 32: the CoDD protocol), `remasking`,
`temperature` (defaults: the model's), `seed`, `batch_size`, `device` (default: the GPU if there is
one, else the CPU; lm-eval's own default is cuda:0), `dtype`, `trust_remote_code`.

Only `generate_until` is served: a masked diffusion model has no left-to-right likelihood, so
lm-eval's loglikelihood tasks get a clear error (harness/gap.py measures likelihoods our way).
"""

from __future__ import annotations

import hashlib
import sys

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from harness.backbones import load_backbone, resolve_device
from harness.engine.decoding import DecodeConfig
from harness.engine.sampler import Sampler, get_sampler
from harness.errors import HarnessError
from harness.runner import row_seed

# Our task configs (harness/lm_eval_tasks/) by the name of the harness task they evaluate.
LM_EVAL_TASKS = {"minerva_math500": "math500", "gsm8k": "gsm8k"}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@register_model("codd-bench")
class CoddBenchLM(LM):
    def __init__(self, model: str = "embedded", family: str = "math", sampler: str = "factorized",
                 steps: int = 256, gen_length: int = 512, block_length: int = 32, remasking: str | None = None,
                 temperature: float | None = None, seed: int = 0, batch_size: int | str = 8, device: str | None = None,
                 dtype: str | None = None, trust_remote_code: bool = False, **unused):
        super().__init__()
        self.backbone = load_backbone(model, family, dtype, resolve_device(device or default_device()),
                                      str(trust_remote_code).lower() == "true")
        self.sampler = get_sampler(sampler.replace(";", ","))
        self._task_samplers: dict[str | None, Sampler] = {}
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

    def sampler_for(self, task_name: str | None) -> Sampler:
        """The sampler for requests of the lm-eval task `task_name`, resolved and checked once."""
        if task_name not in self._task_samplers:
            sampler = self.sampler.for_task(LM_EVAL_TASKS.get(task_name, task_name), self.backbone)
            sampler.check(self.backbone)
            self._task_samplers[task_name] = sampler
        return self._task_samplers[task_name]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Each request's context decoded by its task's sampler in `steps` steps, cut at its first stop
        string; batches hold one task's requests."""
        by_task: dict[str | None, list[int]] = {}
        for index, request in enumerate(requests):
            by_task.setdefault(request.task_name, []).append(index)
        outputs = [""] * len(requests)
        for task_name, indices in by_task.items():
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start:start + self.batch_size]
                texts = self.complete([requests[i].args[0] for i in batch], task_name)
                for i, text in zip(batch, texts):
                    outputs[i] = self._cut(text, requests[i].args[1].get("until"))
        return outputs

    def complete(self, contexts: list[str], task_name: str | None = None) -> list[str]:
        """Completions of already-formatted prompt strings (the same seed per prompt as in any batch)."""
        tokenizer = self.backbone.tokenizer
        ids, mask = self.backbone.left_pad([tokenizer(c, add_special_tokens=False).input_ids for c in contexts])
        generators = [torch.Generator(device=self.backbone.device).manual_seed(
            row_seed(self.seed, "lm-eval", hashlib.sha256(c.encode()).hexdigest())) for c in contexts]
        tokens = self.sampler_for(task_name).generate(self.backbone, ids, mask, self.config, generators).tokens
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


def main(argv: list[str]) -> int:
    """lm-eval's CLI on `argv`, with the device this machine has unless --device is given, and our
    input errors as one line and exit code 2."""
    from lm_eval.__main__ import cli_evaluate
    if not any(arg == "--device" or arg.startswith("--device=") for arg in argv):
        argv = [*argv, "--device", default_device()]
    sys.argv = [sys.argv[0], *argv]
    try:
        cli_evaluate()
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
