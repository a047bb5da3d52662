"""The resumable state of a training run on disk. Every trainer (embedded model, CoDD circuit, diffu-GRPO
adapter) keeps its whole state in one file in its output folder, so re-running the same command continues
exactly where a kill, or a --max-minutes chunk, stopped it. Written atomically (a kill mid-write leaves the
previous file intact), read back with a corrupt file reported as the user's to remove, and refused when
it was written with other settings. Read onto the CPU: a run checkpointed on a GPU resumes anywhere, each
trainer moving what it loads onto its own device."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from harness.errors import HarnessError

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(state: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, settings: dict[str, dict] | None = None, resumable: tuple[str, ...] = ()) -> dict:
    """The state saved at `path`. With `settings`, refused unless it was written with them: each key of the
    state named there holds the dict it was saved with, and only the fields in `resumable` may differ."""
    try:
        state = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as err:  # a truncated or foreign file fails inside torch in many ways; all mean the same here
        raise HarnessError(f"{path} is corrupt ({type(err).__name__}); delete it to start over, "
                           "or use a new --out") from None
    if not isinstance(state, dict):
        raise HarnessError(f"{path} is not a checkpoint of this harness; delete it to start over, or use a new --out")
    for key, expected in (settings or {}).items():
        saved = state.get(key) if isinstance(state.get(key), dict) else {}
        changed = sorted(k for k in expected if k not in resumable and saved.get(k) != expected[k])
        if changed:
            raise HarnessError(f"{path} was written with other settings (differ: {', '.join(changed)}); "
                               "re-run with the same options or use a new --out")
    return state
