"""Resumable training: every trainer (embedded model, CoDD circuit, diffu-GRPO adapter) keeps its whole
state in one checkpoint file in its output folder, so re-running the same command continues exactly
where a kill, or a --max-minutes chunk, stopped it."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from harness.errors import HarnessError

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(path: Path, contents: dict) -> None:
    """Write atomically: a kill during the write leaves the previous checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(contents, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, settings: dict[str, dict], resumable: tuple[str, ...] = ()) -> dict:
    """The checkpoint at `path`, refused unless it was written with these `settings` (each key of the
    checkpoint named there holds the dict it was saved with; fields in `resumable` may differ)."""
    saved = torch.load(path, weights_only=False)
    for key, expected in settings.items():
        changed = sorted(k for k in expected if k not in resumable and saved[key].get(k) != expected[k])
        if changed:
            raise HarnessError(f"{path} was written with other settings (differ: {', '.join(changed)}); "
                               "re-run with the same options or use a new --out")
    return saved
