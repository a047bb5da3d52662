"""The resumable state of a training run on disk: written atomically (a kill mid-write leaves the
previous file intact), and read back with a corrupt file reported as the user's to remove."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from harness.errors import HarnessError


def save_checkpoint(state: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, weights_only=False)
    except Exception as err:  # a truncated or foreign file fails inside torch in many ways; all mean the same here
        raise HarnessError(f"{path} is corrupt ({type(err).__name__}); delete it to start over, "
                           "or use a new --out") from None
    if not isinstance(state, dict):
        raise HarnessError(f"{path} is not a checkpoint of this harness; delete it to start over, or use a new --out")
    return state
