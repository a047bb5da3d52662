"""Training-compute records (DESIGN.md section 3: the `compute.json` every training run writes).

The report draws the ones shipped with the package (the embedded models, their CoDD PCs and
RL adapters) and any found in the directories it is given, e.g. a user's own adapter.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError

_ROOT = Path(__file__).resolve().parents[2]
# Where shipped training outputs live: the package's assets and the sampler packages.
SHIPPED = (_ROOT / "harness" / "assets", _ROOT / "codd", _ROOT / "baselines")
REQUIRED = ("kind", "task", "device_type", "device_count", "device_hours")


def read_compute_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise HarnessError(f"cannot read compute record {path}: {err}") from None
    missing = [f for f in REQUIRED if not isinstance(record, dict) or f not in record]
    if missing:
        raise HarnessError(f"compute record {path} lacks {', '.join(missing)}")
    return {**record, "path": str(path)}


def find_compute_records(directories=()) -> list[dict]:
    """Every compute.json under the shipped asset folders and `directories`, sorted by kind and task."""
    paths = sorted({p.resolve() for d in (*SHIPPED, *map(Path, directories)) if d.is_dir()
                    for p in d.rglob("compute.json")})
    return sorted((read_compute_record(p) for p in paths), key=lambda r: (r["kind"], str(r["task"]), r["path"]))


def validation_curve(record: dict) -> list[tuple[float, float]]:
    """(device-hours, validation loss) of a model's training, its stages chained: a run continued with
    `train --init-from` starts where the one it continued ended, so the curve is loss against total compute."""
    points, offset = [], 0.0
    for stage in record.get("stages", [record]):
        hours_per_second = stage["device_count"] / 3600
        points += [(offset + p["wall_seconds"] * hours_per_second, p["val_loss"]) for p in stage.get("val_curve", [])]
        offset += stage["device_hours"]
    return points
