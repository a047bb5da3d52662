"""What a report reads: run directories (manifest + samples) and perplexity-gap results.

Records of several runs are pooled into cells (harness.store.Cell: everything that
defines a result), so one report can put runs of different samplers side by side; the same
sample appearing in two runs is ambiguous and refused.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.run_lock import lock_holder
from harness.store import Record, RunStore

GAP_FILE = "gap.json"


@dataclass
class Run:
    dir: Path
    manifest: dict
    records: list[Record]
    in_progress: str | None = None  # the holder of the run's lock ("pid N on HOST") while it still runs
    likelihood: list[dict] = field(default_factory=list)  # the summary's likelihood view (harness/likelihood.py)


@dataclass
class ReportInputs:
    runs: list[Run]
    gaps: list[dict]

    @property
    def records(self) -> list[Record]:
        return [r for run in self.runs for r in run.records]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HarnessError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"cannot read {path}: not a JSON object")
    return data


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
        summary = _read_json(store.summary_path) if store.summary_path.is_file() and holder is None else {}
        run = Run(path, _read_json(store.manifest_path), store.records(writing=holder is not None), holder,
                  summary.get("likelihood", []))
        if holder:
            print(f"note: {path} is a run still in progress ({holder}); reading the {len(run.records)} samples "
                  f"finished so far", file=sys.stderr)
        for record in run.records:
            if seen.setdefault(record.key(), path) != path:
                raise HarnessError(f"{seen[record.key()]} and {path} both hold {record.cell.task} example "
                                   f"{record.example_id} for {record.cell.sampler} at {record.cell.steps} steps; "
                                   f"report them separately")
        runs.append(run)
    if not runs and not gaps:
        raise HarnessError("nothing to report: give at least one run directory or gap result")
    return ReportInputs(runs, gaps)
