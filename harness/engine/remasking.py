"""Remasking rules: how confident the decoder is in each masked position's candidate.

Each step commits the most confident positions and leaves the rest masked
(DESIGN.md section 4.1). A rule reads the proposal distribution `probs`
[n, V] (float64, or the model's dtype under reference precision) and the chosen
`candidates` [n] and returns one confidence per position, higher = commit sooner. `random` ignores both: its confidences are
U(0, 1) draws, taken by the engine from each row's own generator.
"""

from __future__ import annotations

import torch

from harness.registry import Registry


def low_confidence(probs: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Probability of the candidate (LLaDA's default)."""
    return probs.gather(-1, candidates.unsqueeze(-1)).squeeze(-1)


def margin(probs: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 probability: small when two tokens compete for the position."""
    top = probs.topk(2, dim=-1).values
    return top[:, 0] - top[:, 1]


def entropy(probs: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Negative entropy, sum p log(p + 1e-10) (Dream's default, in Dream's own form, so that it rounds
    as Dream's does in bfloat16); 0 log 0 counts as 0."""
    return (probs * (probs + 1e-10).log()).sum(-1)


def topprob(probs: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """The largest probability, whichever token was sampled."""
    return probs.max(-1).values


RANDOM = "random"
# Rule name -> its confidence; `random` has none here (the engine draws it from each row's generator).
REMASKING_RULES: Registry = Registry("remasking rule")
for _rule in (low_confidence, margin, entropy, topprob):
    REMASKING_RULES.add(_rule.__name__, _rule)
REMASKING_RULES.add(RANDOM, None)
