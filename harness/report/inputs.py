"""What a report reads: run directories (manifest + samples) and perplexity-gap results.

Records of several runs are pooled into cells keyed by everything that defines a
result, so one report can put runs of different samplers side by side; the same
sample appearing in two runs is ambiguous and refused.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.run_lock import lock_holder
from harness.store import RunStore

GAP_FILE = "gap.json"
# What makes two records comparable results of one experiment (the report's cell).
CELL_FIELDS = ("model", "protocol", "task", "mode", "gen_length", "block_length", "temperature", "sampler", "remasking",
               "steps")
RECORD_FIELDS = CELL_FIELDS + ("example_id", "completion", "correct", "nfe", "seconds")


@dataclass
class Run:
    dir: Path
    manifest: dict
    records: list[dict]
    in_progress: str | None = None  # the holder of the run's lock ("pid N on HOST") while it still runs


@dataclass
class ReportInputs:
    runs: list[Run]
    gaps: list[dict]

    @property
    def records(self) -> list[dict]:
        return [r for run in self.runs for r in run.records]


def cell_key(record: dict) -> tuple:
    return tuple(record[f] for f in CELL_FIELDS)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise HarnessError(f"cannot read {path}: {err}") from None


def load_inputs(paths: list[str | Path]) -> ReportInputs:
    """Runs and gap results from `paths`; anything else is a HarnessError naming the path."""
    runs, gaps, seen = [], [], {}
    for path in map(Path, paths):
        if (path / GAP_FILE).is_file():
            gaps.append({**_read_json(path / GAP_FILE), "dir": str(path)})
            continue
        store = RunStore(path)
        if not store.manifest_path.is_file():
            raise HarnessError(f"{path} is neither a run directory (no manifest.json) nor a gap result "
                               f"(no {GAP_FILE})")
        holder = lock_holder(path)  # read what is finished, without waiting for the run
        run = Run(path, _read_json(store.manifest_path), store.records(), holder)
        if holder:
            print(f"note: {path} is a run still in progress ({holder}); reading the {len(run.records)} samples "
                  f"finished so far", file=sys.stderr)
        for number, record in enumerate(run.records, 1):
            missing = [f for f in RECORD_FIELDS if f not in record]
            if missing:
                raise HarnessError(f"{store.samples_path}:{number}: record lacks {', '.join(missing)}")
            key = cell_key(record) + (record["example_id"],)
            if seen.setdefault(key, path) != path:
                raise HarnessError(f"{seen[key]} and {path} both hold {record['task']} example "
                                   f"{record['example_id']} for {record['sampler']} at {record['steps']} steps; "
                                   f"report them separately")
        runs.append(run)
    if not runs and not gaps:
        raise HarnessError("nothing to report: give at least one run directory or gap result")
    return ReportInputs(runs, gaps)
