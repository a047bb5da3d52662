"""The `codd` sampler: the decoding engine with an HMM circuit multiplied into the backbone's
per-token distributions (DESIGN.md 4.2).

Spec options: `proposal` (latent, the paper's and the default; marginal; ao), `gamma`
(apply the PC while the window's mask ratio is at most gamma), `tau` (PC temperature on the
backbone's log-probabilities), `pc` (a pyjuice .jpc file or a saved PC directory; by
default the PC shipped for the backbone) and `emission` (float32, exact and the default, or
bfloat16: the HMM's soft-evidence product in bfloat16, codd.hmm.HMM.emission_dtype). gamma and
tau default to the values recorded with the PC. Block diffusion applies the product to the current block; full diffusion to windows
of the PC's width laid over the positions the baseline rule picks (codd/windows.py).
"""

from __future__ import annotations

from numbers import Real

import torch

from codd import load_pc
from codd.defaults import default_pc_path, default_settings, shipped_pcs
from codd.hmm import HMM
from codd.hub import author_pc
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
        self.gamma = None if gamma is None else _check_number("gamma", gamma, 0.0, 1.0, low_open=False)
        self.tau = None if tau is None else _check_number("tau", tau, 0.0, float("inf"), low_open=True)
        self.pc_path = None if pc is None else str(pc)
        self._given_pc = None if pc is None else load_pc(self.pc_path)  # a bad path fails when the spec is read
        self._pcs: dict[str, HMM] = {}

    def pc_for(self, backbone) -> HMM:
        """The PC this sampler uses with `backbone` (loaded once), checked against its vocabulary."""
        if backbone.name not in self._pcs:
            pc = self._given_pc if self._given_pc is not None else load_pc(default_pc_path(backbone.name))
            if pc.vocab_size != backbone.vocab_size:
                source = self.pc_path or default_pc_path(backbone.name)
                raise HarnessError(f"the CoDD PC {source} has a vocabulary of {pc.vocab_size} tokens but "
                                   f"backbone {backbone.name} has {backbone.vocab_size} (the width of its logits, "
                                   f"padded embeddings included)")
            pc = pc.freeze().to(backbone.device)
            pc.emission_dtype = EMISSION_DTYPES[self.emission]
            self._pcs[backbone.name] = pc
        return self._pcs[backbone.name]

    def applies_to(self, backbone) -> bool:
        return self._given_pc is not None or backbone.name in shipped_pcs()

    def for_task(self, task: str, backbone) -> "CoDD":
        """Without `pc=`, a LLaDA or Dream backbone gets the authors' circuit for the task (codd/hub.py)."""
        released = author_pc(backbone.architecture, task)
        if self.pc_path is not None or released is None:
            return self
        return CoDD(self.proposal, self.gamma, self.tau, released, self.emission)

    def check(self, backbone) -> None:
        self.pc_for(backbone)

    def settings(self, pc: HMM) -> tuple[float, float]:
        """(gamma, tau): the spec's, else the PC's recorded defaults."""
        gamma, tau = default_settings(pc.metadata)
        return (gamma if self.gamma is None else self.gamma), (tau if self.tau is None else self.tau)

    def generate(self, backbone, prompt_ids, attention_mask, config: DecodeConfig, generators) -> Generation:
        pc = self.pc_for(backbone)
        gamma, tau = self.settings(pc)
        product = Product(pc, self.rule, gamma, tau, backbone.mask_id, config.temperature)
        proposal = WindowedProposal(product, config, pc.window) if config.mode == "full" else self.rule.block(product)
        return generate(backbone, prompt_ids, attention_mask, config, generators, proposal)
