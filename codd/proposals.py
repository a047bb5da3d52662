"""CoDD's proposals: the backbone's per-token distributions times an HMM over a window
(DESIGN.md 4.2), as hooks of the decoding engine (harness.engine.decoding.Proposal).

The evidence of position t is log q_t = log_softmax(logits_t) / tau. Dividing the
log-probabilities rather than the logits changes log q_t only by a per-position constant,
which the product's normaliser absorbs: the product distribution, and so every proposal
below, is the same under either reading of "divided by tau".

How the product proposes tokens is one of three rules (the spec's `proposal=`):

* Latent (the paper's): a hidden path z from its posterior, then logits log q_t + log beta[z_t];
  the engine's candidate and confidence rules run on them.
* Marginal (ours): the exact posterior marginals of the product; the engine's greedy
  candidates and confidences come from them.
* AnyOrder (`ao`): positions are ranked by the exact marginals, then the chosen ones are drawn
  one at a time from their exact conditionals (`recommit`), at the decoding temperature.

The PC is active in a row only while the window's mask ratio is at most gamma (gamma = 1:
always, gamma = 0: never); elsewhere the backbone's own logits pass through unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from codd.hmm import HMM
from harness.engine.decoding import DecodeConfig, Proposal, draw_candidates
from harness.registry import Registry


@dataclass(frozen=True)
class Product:
    """The product of an HMM and the backbone's distributions over a window, and the rule that draws from it."""

    hmm: HMM
    rule: ProposalRule
    gamma: float
    tau: float
    mask_id: int
    temperature: float   # the decoding temperature (AO draws its tokens itself)

    def evidence(self, logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log_q [b, W, V], observed [b, W]: token id where decoded, -1 where masked)."""
        return logits.log_softmax(-1) / self.tau, tokens.masked_fill(tokens == self.mask_id, -1)

    def active_rows(self, tokens: torch.Tensor) -> torch.Tensor:
        """Indices of the rows whose window has a mask ratio of at most gamma."""
        ratio = (tokens == self.mask_id).double().mean(1)
        return (ratio <= self.gamma).nonzero().squeeze(1)

    def draw_in_order(self, log_q: torch.Tensor, observed: torch.Tensor, order: torch.Tensor,
                      generators: list[torch.Generator]) -> torch.Tensor:
        """The window's ids [b, W] after drawing the positions of `order` (-1 = none) one at a
        time from their exact conditionals; mask_id where still masked."""
        drawn = self.hmm.sample_any_order(log_q, observed, order, generators, self.temperature)
        return drawn.masked_fill(drawn < 0, self.mask_id)


def _select(generators: list[torch.Generator], rows: torch.Tensor) -> list[torch.Generator]:
    return [generators[r] for r in rows.tolist()]


class BlockProposal(Proposal):
    """Block diffusion: the product over the current block replaces the backbone's logits."""

    def __init__(self, product: Product):
        self.product = product

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor,
                 generators: list[torch.Generator]) -> torch.Tensor:
        rows = self.product.active_rows(tokens)
        if rows.numel() == 0:
            return logits
        log_q, observed = self.product.evidence(logits[rows], tokens[rows])
        proposed = logits.clone()
        proposed[rows] = self.product.rule.logits(self.product.hmm, log_q, observed,
                                                  _select(generators, rows)).to(logits.dtype)
        return proposed


class BlockAnyOrder(BlockProposal):
    """Block diffusion with the AO proposal: the engine ranks positions by the exact marginals,
    then the chosen ones are redrawn one at a time, most confident first."""

    def recommit(self, logits: torch.Tensor, tokens: torch.Tensor, committed: torch.Tensor, order: torch.Tensor,
                 generators: list[torch.Generator]) -> torch.Tensor:
        rows = self.product.active_rows(tokens)
        if rows.numel() == 0:
            return committed
        log_q, observed = self.product.evidence(logits[rows], tokens[rows])
        committed = committed.clone()
        committed[rows] = self.product.draw_in_order(log_q, observed, order[rows], _select(generators, rows))
        return committed


class ProposalRule(ABC):
    """How the product proposes tokens: the spec's `proposal=`."""

    name: str
    block: type[BlockProposal] = BlockProposal  # block diffusion's hook: the engine draws from the proposal logits

    @abstractmethod
    def logits(self, hmm: HMM, log_q: torch.Tensor, observed: torch.Tensor,
               generators: list[torch.Generator]) -> torch.Tensor:
        """Proposal logits [b, W, V] of the product given the evidence."""

    def draw(self, product: Product, log_q: torch.Tensor, observed: torch.Tensor, order: torch.Tensor,
             chosen: torch.Tensor, config: DecodeConfig, generators: list[torch.Generator]) -> torch.Tensor:
        """Tokens for the `chosen` positions [n, W] of windows laid over them (full diffusion), `order`
        ranking them most confident first (-1 after the last)."""
        proposal = self.logits(product.hmm, log_q, observed, generators)
        return draw_candidates(proposal[chosen], chosen.sum(1).tolist(), config, generators)[0]


class Latent(ProposalRule):
    """The paper's proposal: a hidden path from its posterior (forward filtering, backward sampling),
    then every position independently given it: exact ancestral sampling of the product."""

    name = "latent"

    def logits(self, hmm: HMM, log_q: torch.Tensor, observed: torch.Tensor,
               generators: list[torch.Generator]) -> torch.Tensor:
        return hmm.latent_proposal_logits(log_q, hmm.sample_hidden(log_q, observed, generators))


class Marginal(ProposalRule):
    """Ours: the exact posterior marginals of the product, from one forward-backward pass (no sampling noise)."""

    name = "marginal"

    def logits(self, hmm: HMM, log_q: torch.Tensor, observed: torch.Tensor,
               generators: list[torch.Generator]) -> torch.Tensor:
        return hmm.token_marginals(log_q, observed)


class AnyOrder(Marginal):
    """Positions ranked by the exact marginals, the chosen ones drawn one at a time from their exact
    conditionals: more PC work per step, the same backbone calls."""

    name = "ao"
    block = BlockAnyOrder

    def draw(self, product: Product, log_q: torch.Tensor, observed: torch.Tensor, order: torch.Tensor,
             chosen: torch.Tensor, config: DecodeConfig, generators: list[torch.Generator]) -> torch.Tensor:
        return product.draw_in_order(log_q, observed, order, generators)[chosen]


PROPOSALS: Registry[type[ProposalRule]] = Registry("codd proposal", "proposals")
for _rule in (Latent, Marginal, AnyOrder):
    PROPOSALS.register(_rule)
