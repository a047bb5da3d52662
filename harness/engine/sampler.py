"""Samplers: how a prompt becomes a completion within a step budget.

A sampler is named by a spec string, `name` or `name:key=value,key=value`
(e.g. `codd:proposal=ao,gamma=0.5`). Sampler classes register themselves with
`@register_sampler`; the built-in ones live in `baselines/` and `codd/`, plug-ins
that the registry imports on first use (harness/registry.py), so this module stays
upstream of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from harness.errors import HarnessError
from harness.registry import Registry


class Sampler(ABC):
    """Turns a batch of prompts into completions.

    `uses_budget` is False for samplers that ignore the step budget
    (`sequential`): the runner then runs them once per task, not per budget.
    `options` holds the spec's key=value pairs, already converted by `parse_options`.
    """

    name: str
    description: str
    uses_budget: bool = True

    def __init__(self, **options):
        self.options = options

    @property
    def spec(self) -> str:
        """The canonical spec string, as recorded in results."""
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))

    def applies_to(self, backbone) -> bool:
        """Whether a run without --samplers includes this sampler for `backbone`: False when
        nothing is shipped for it (e.g. diffu-grpo on a backbone without an adapter)."""
        return True

    def for_task(self, task: str, backbone) -> "Sampler":
        """The sampler to run on `task` with `backbone`: itself, unless a default depends on the task."""
        return self

    def check(self, backbone) -> None:
        """Raise a HarnessError if this sampler cannot decode with `backbone` (e.g. CoDD without a
        PC for it); the runner asks before anything is written. Most samplers decode with any."""

    @abstractmethod
    def generate(self, backbone, prompt_ids: torch.Tensor, attention_mask: torch.Tensor,
                 config, generators: list[torch.Generator]):
        """Decode a left-padded batch with `config` (a harness.engine.decoding.DecodeConfig);
        `generators` gives each row its own random stream. Returns a harness.engine.decoding.Generation."""


SAMPLERS: Registry[type[Sampler]] = Registry("sampler", sort=True, plugins=True)
register_sampler = SAMPLERS.register


def list_samplers() -> dict[str, str]:
    """Sampler names with their one-line descriptions."""
    return {name: cls.description for name, cls in SAMPLERS.items()}


def _parse_value(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def get_sampler(spec: str) -> Sampler:
    """Build a sampler from its spec string; unknown names or malformed options are a HarnessError."""
    name, _, opts = spec.partition(":")
    cls = SAMPLERS.get(name)
    options = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise HarnessError(f"malformed option {item!r} in sampler spec {spec!r}; expected key=value")
        options[key.strip()] = _parse_value(value.strip())
    try:
        return cls(**options)
    except TypeError as err:
        raise HarnessError(f"bad options for sampler {name!r}: {err}") from None
