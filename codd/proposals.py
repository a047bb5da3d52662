"""CoDD's proposals: the backbone's per-token distributions times an HMM over a window
(DESIGN.md 4.2), as hooks of the decoding engine (harness.engine.decoding.Proposal).

The evidence of position t is log q_t = log_softmax(logits_t) / tau. Dividing the
log-probabilities rather than the logits changes log q_t only by a per-position constant,
which the product's normaliser absorbs: the product distribution, and so every proposal
below, is the same under either reading of "divided by tau".

* latent (the paper's): a hidden path z from its posterior, then logits log q_t + log beta[z_t];
  the engine's candidate and confidence rules run on them.
* marginal (ours): the exact posterior marginals of the product; the engine's greedy
  candidates and confidences come from them.
* ao: positions are ranked by the exact marginals, then the chosen ones are drawn one at a
  time from their exact conditionals (`recommit`), at the decoding temperature.

The PC is active in a row only while the window's mask ratio is at most gamma (gamma = 1:
always, gamma = 0: never); elsewhere the backbone's own logits pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from codd.hmm import HMM

PROPOSALS = ("latent", "marginal", "ao")


@dataclass(frozen=True)
class Product:
    """The product of an HMM and the backbone's distributions over a window, and how to draw from it."""

    hmm: HMM
    kind: str            # one of PROPOSALS
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

    def logits(self, log_q: torch.Tensor, observed: torch.Tensor,
               generators: list[torch.Generator]) -> torch.Tensor:
        """Proposal logits [b, W, V]: latent-variable logits, or the exact marginals (marginal, ao)."""
        if self.kind == "latent":
            return self.hmm.latent_proposal_logits(log_q, self.hmm.sample_hidden(log_q, observed, generators))
        return self.hmm.token_marginals(log_q, observed)

    def draw_in_order(self, log_q: torch.Tensor, observed: torch.Tensor, order: torch.Tensor,
                      generators: list[torch.Generator]) -> torch.Tensor:
        """The window's ids [b, W] after drawing the positions of `order` (-1 = none) one at a
        time from their exact conditionals; mask_id where still masked."""
        drawn = self.hmm.sample_any_order(log_q, observed, order, generators, self.temperature)
        return drawn.masked_fill(drawn < 0, self.mask_id)


def _select(generators: list[torch.Generator], rows: torch.Tensor) -> list[torch.Generator]:
    return [generators[r] for r in rows.tolist()]


class BlockProposal:
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
        proposed[rows] = self.product.logits(log_q, observed, _select(generators, rows)).to(logits.dtype)
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
