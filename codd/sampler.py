"""The `codd` sampler: the decoding engine with an HMM circuit multiplied into the backbone's
per-token distributions (DESIGN.md 4.2).

Spec options: `proposal` (latent, the paper's and the default; marginal; ao), `gamma`
(apply the PC while the window's mask ratio is at most gamma), `tau` (PC temperature on the
backbone's log-probabilities), `pc` (a pyjuice .jpc file, a saved PC directory or a hub id) and
`emission` (float32, exact and the default, or bfloat16: the HMM's soft-evidence product in bfloat16,
codd.hmm.HMM.emission_dtype); what is left out, codd/choice.py chooses (the task's released circuit or
the backbone's shipped PC, and the gamma and tau recorded with it). Block diffusion applies the product to the current block; full diffusion to windows
of the PC's width laid over the positions the baseline rule picks (codd/windows.py).
"""

from __future__ import annotations

from numbers import Real

import torch

from codd import locate_pc
from codd.choice import ChosenPC, PCSpec, pin, resolve, shipped_pcs
from codd.proposals import PROPOSALS, Product
from codd.windows import WindowedProposal
from harness.engine.decoding import DecodeConfig, Generation, generate
from harness.engine.sampler import Sampler, register_sampler
from harness.errors import HarnessError

# The dtype of the PC's soft-evidence product; float32 means the circuit's own (exact).
EMISSION_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


def _check_number(name: str, value, low: float, high: float, low_open: bool) -> float:
    inside = isinstance(value, Real) and not isinstance(value, bool) and (
        (value > low if low_open else value >= low) and value <= high)
    if not inside:
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise HarnessError(f"codd option {name} must be a number in {bounds}, got {value!r}")
    return float(value)


@register_sampler
class CoDD(Sampler):
    name = "codd"
    description = ("CoDD: the backbone's per-token distributions times an HMM circuit over the block "
                   "(options: proposal=latent|marginal|ao, gamma, tau, pc=PATH, emission=float32|bfloat16)")

    def __init__(self, proposal: str = "latent", gamma: float | None = None, tau: float | None = None,
                 pc: str | None = None, emission: str = "float32"):
        if emission not in EMISSION_DTYPES:
            raise HarnessError(f"codd option emission must be one of {', '.join(EMISSION_DTYPES)}, got {emission!r}")
        given = {"proposal": proposal, "gamma": gamma, "tau": tau, "pc": pc, "emission": emission}
        defaults = {"proposal": "latent", "emission": "float32"}
        super().__init__(**{k: v for k, v in given.items() if v is not None and defaults.get(k) != v})
        self.emission = emission
        self.proposal, self.rule = proposal, PROPOSALS.get(proposal)()
        self.pc_spec = PCSpec(
            None if pc is None else str(pc),
            None if gamma is None else _check_number("gamma", gamma, 0.0, 1.0, low_open=False),
            None if tau is None else _check_number("tau", tau, 0.0, float("inf"), low_open=True))
        if pc is not None:
            locate_pc(pc)  # a bad path fails when the spec is read
        self._chosen: dict[str, ChosenPC] = {}

    def chosen(self, backbone) -> ChosenPC:
        """The PC, gamma and tau this sampler decodes `backbone` with (codd/choice.py), read once."""
        if backbone.name not in self._chosen:
            chosen = resolve(self.pc_spec, backbone)
            chosen.hmm.emission_dtype = EMISSION_DTYPES[self.emission]  # this sampler's own copy of the circuit
            self._chosen[backbone.name] = chosen
        return self._chosen[backbone.name]

    def applies_to(self, backbone) -> bool:
        return self.pc_spec.pc is not None or backbone.name in shipped_pcs()

    def for_task(self, task: str, backbone) -> "CoDD":
        """Without `pc=`, a LLaDA or Dream backbone gets the authors' circuit for the task, named in the spec."""
        spec = pin(self.pc_spec, backbone, task)
        return self if spec == self.pc_spec else CoDD(self.proposal, spec.gamma, spec.tau, spec.pc, self.emission)

    def check(self, backbone) -> None:
        self.chosen(backbone)

    def generate(self, backbone, prompt_ids, attention_mask, config: DecodeConfig, generators) -> Generation:
        chosen = self.chosen(backbone)
        product = Product(chosen.hmm, self.rule, chosen.gamma, chosen.tau, backbone.mask_id, config.temperature)
        proposal = WindowedProposal(product, config, chosen.hmm.window) if config.mode == "full" else self.rule.block(product)
        return generate(backbone, prompt_ids, attention_mask, config, generators, proposal)
