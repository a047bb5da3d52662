"""Training sequences: a chat-templated prompt and its response, and their left-padded batches.

Shared by every trainer (the embedded model's SFT, the CoDD circuit on frozen logits, diffu-GRPO):
responses end where decoding puts them, at the right edge of a left-padded batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Pair:
    """One training sequence: chat-templated prompt ids and the response ids (target + EOS padding)."""

    prompt: tuple[int, ...]
    response: tuple[int, ...]


def make_pair(prompt: list[int], target: list[int], gen_length: int, eos_id: int) -> Pair | None:
    """The pair for `prompt` and `target` padded with EOS to `gen_length`; None if the target does not fit."""
    if len(target) > gen_length:
        return None
    return Pair(tuple(prompt), tuple(target) + (eos_id,) * (gen_length - len(target)))


def collate(pairs: list[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded (ids, attention_mask, response_mask), each [B, T]: every response ends at T,
    as at decoding time."""
    width = max(len(p.prompt) + len(p.response) for p in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(pairs), width), dtype=torch.bool)
    response = torch.zeros((len(pairs), width), dtype=torch.bool)
    for row, pair in enumerate(pairs):
        sequence = pair.prompt + pair.response
        ids[row, width - len(sequence):] = torch.tensor(sequence)
        attention[row, width - len(sequence):] = True
        response[row, width - len(pair.response):] = True
    return ids, attention, response
