"""Dynamic windowing for full diffusion (Dream; the CoDD paper's Algorithm 2).

Full diffusion has no block: any masked position of the whole generation may be decoded
at a step. The baseline rule picks the positions from the backbone's own logits; those
positions are then covered with W-token windows and the HMM product over each window
draws their tokens. The cover is greedy from the left, each window starting at the first
chosen position not yet covered: the fewest windows of width W that cover the set, with
disjoint clusters in separate windows. A window reaching past the generation's end is
padded with neutral evidence (log q = 0 on a masked position sums the HMM out there, which
leaves the distribution over the real positions exactly that of a shorter window).
"""

from __future__ import annotations

import bisect

import torch

from codd.proposals import Product
from harness.engine.decoding import DecodeConfig, Proposal


def cover(positions: list[int], width: int) -> list[int]:
    """Start offsets of the fewest windows of `width` that cover the sorted `positions`."""
    starts: list[int] = []
    for position in positions:
        if not starts or position >= starts[-1] + width:
            starts.append(position)
    return starts


class WindowedProposal(Proposal):
    """Full diffusion: the baseline rule chooses the positions (the engine's logits pass through
    unchanged), then `recommit` draws the chosen tokens from the product over windows around them."""

    def __init__(self, product: Product, config: DecodeConfig, width: int):
        self.product, self.config, self.width = product, config, width

    def recommit(self, logits: torch.Tensor, tokens: torch.Tensor, committed: torch.Tensor, order: torch.Tensor,
                 generators: list[torch.Generator]) -> torch.Tensor:
        length, width, device = tokens.shape[1], self.width, tokens.device
        rows, starts, picks = [], [], []  # picks: (window, rank in window, offset in window)
        for row in self.product.active_rows(tokens).tolist():
            ranked = [p for p in order[row].tolist() if p >= 0]  # most confident first
            row_starts = cover(sorted(ranked), width)
            ranks = [0] * len(row_starts)
            for position in ranked:
                k = bisect.bisect_right(row_starts, position) - 1
                picks.append((len(starts) + k, ranks[k], position - row_starts[k]))
                ranks[k] += 1
            rows += [row] * len(row_starts)
            starts += row_starts
        if not rows:
            return committed
        window, rank, offset = torch.tensor(picks, device=device).T
        local_order = torch.full((len(rows), width), -1, dtype=torch.long, device=device)
        local_order[window, rank] = offset
        chosen = torch.zeros((len(rows), width), dtype=torch.bool, device=device)
        chosen[window, offset] = True

        row_index = torch.tensor(rows, device=device)
        positions = torch.tensor(starts, device=device).unsqueeze(1) + torch.arange(width, device=device)
        inside = positions < length
        positions = positions.clamp_max(length - 1)
        log_q, observed = self.product.evidence(logits, tokens)
        log_q = log_q[row_index.unsqueeze(1), positions].masked_fill(~inside.unsqueeze(-1), 0.0)
        observed = observed[row_index.unsqueeze(1), positions].masked_fill(~inside, -1)
        window_generators = [generators[r] for r in rows]

        drawn = self.product.rule.draw(self.product, log_q, observed, local_order, chosen, self.config,
                                       window_generators)
        committed = committed.clone()
        committed[row_index.unsqueeze(1).expand_as(chosen)[chosen], positions[chosen]] = drawn
        return committed
