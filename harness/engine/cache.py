"""Fast-dLLM's approximate KV cache for block diffusion (`--cache prefix|dual`).

At a block's first step the backbone runs the whole sequence, exactly as without a cache,
and keeps every layer's keys and values. The block's other steps run only a live span, the
block and everything after it (`prefix`) or the block alone (`dual`), against the kept keys
and values of every other position. A bidirectional model's earlier positions attend to the
block, which has changed since, so those kept values are stale: the logits are approximate
(Fast-dLLM reports a small accuracy cost for a large speed-up), except at each block's first
step, which is the uncached step.
"""

from __future__ import annotations

import torch

from harness.errors import HarnessError

CACHE_MODES = ("none", "prefix", "dual")


def check_cache(mode: str, backbone) -> None:
    """A HarnessError unless `backbone` can decode with cache `mode` (one of CACHE_MODES)."""
    if mode != "none" and not backbone.supports_cache:
        raise HarnessError(f"--cache {mode}: backbone {backbone.name} has no KV cache API (only the embedded "
                           f"models have one); use --cache none")


class BlockCache:
    """The keys and values kept at the current block's first step, per row. Rows are named by `keys`
    (any distinct ints: the engine's row indices, guidance adds a second set), so a row's logits
    never depend on which rows share its batch."""

    def __init__(self, backbone, mode: str):
        self.backbone, self.mode = backbone, mode
        self.start: int | None = None
        self.held = torch.empty(0, dtype=torch.long)
        self.frozen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def logits(self, ids: torch.Tensor, attention: torch.Tensor, keys: torch.Tensor, start: int,
               width: int) -> torch.Tensor:
        """Logits [b, width, V] read at positions start .. start + width of ids [b, T]."""
        known = keys.cpu()[:, None] == self.held[None, :]
        if start != self.start or not bool(known.any(1).all()):
            # A new block (or a row not seen in it): the exact pass, kept for the block's other steps.
            logits, self.frozen = self.backbone.logits_recording(ids, attention)
            self.start, self.held = start, keys.cpu()
            return logits[:, start:start + width]
        live = slice(start, ids.shape[1] if self.mode == "prefix" else start + width)
        slot = known.long().argmax(1).to(ids.device)
        frozen = [(k[slot], v[slot]) for k, v in self.frozen]
        return self.backbone.logits_live(ids, attention, frozen, live)[:, :width]
