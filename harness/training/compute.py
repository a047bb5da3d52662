"""The compute record every training run writes beside its output (DESIGN.md section 3).

The GPU-hour plots read these files, so the embedded model, the CoDD PCs and the RL
adapters all describe their cost with the same fields.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from harness import environment

KINDS = ("model", "pc", "rl")
# What a continued run adds up over its stages: the record of a model is the cost of the whole model.
TOTALS = ("wall_seconds", "device_hours", "steps", "tokens", "flops_estimate")


def write_compute_record(out_dir: str | Path, *, kind: str, task: str, wall_seconds: float, steps: int,
                         tokens: int, trainable_params: int, flops_estimate: float, command: str,
                         device: torch.device | str = "cpu", device_count: int = 1, previous: dict | None = None,
                         **extra) -> Path:
    """Write `out_dir/compute.json`; `extra` adds run-specific fields (e.g. `val_loss`). A run that continued
    the output of an earlier one (`previous`, its record) writes the totals of both, and each run as a stage."""
    if kind not in KINDS:
        raise ValueError(f"unknown compute kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    record = {
        "kind": kind,
        "task": task,
        "device_type": environment.device_type(device),
        "device_count": device_count,
        "wall_seconds": wall_seconds,
        "device_hours": wall_seconds * device_count / 3600,
        "steps": steps,
        "tokens": tokens,
        "trainable_params": trainable_params,
        "flops_estimate": flops_estimate,
        "command": command,
        "git_commit": environment.git_commit(),
        **extra,
    }
    if previous is not None:
        stages = previous.get("stages", [previous]) + [record]
        record = {**record, **{name: sum(stage[name] for stage in stages) for name in TOTALS}, "stages": stages}
    path = Path(out_dir) / "compute.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
