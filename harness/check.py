"""Regression check: results of a pinned configuration against the baseline file that pins them.

A baseline file holds the run configuration (RunOptions' config) and, per cell, the hash of
every completion and whether it was correct. A cell is compared in one of two ways:

* exact: greedy (temperature 0) with a deterministic remasking rule, re-run with the pinned
  seed. Every completion must hash the same and every verdict must match; any change is
  a regression, however small.
* statistical: sampled cells, or any cell re-run under another seed. Only a drop in accuracy
  fails: one that is significant under a one-sided exact McNemar test on the examples both
  runs decoded (p < alpha), or larger than the absolute tolerance.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

from harness.engine.remasking import RANDOM
from harness.errors import HarnessError
from harness.runner import RunOptions
from harness.stats import mcnemar_exact
from harness.store import Cell, Record, group_by_cell

FORMAT = "codd-bench check baseline v1"
DEFAULT_ALPHA = 0.01
DEFAULT_TOLERANCE = 0.2


def completion_hash(completion: str) -> str:
    return hashlib.sha256(completion.encode()).hexdigest()[:16]


def pinned_id(cell: Cell) -> tuple:
    """How a baseline file names a cell (within one configuration the rest of the cell follows from these)."""
    return (cell.task, cell.sampler, cell.remasking, cell.steps)


def is_exact(temperature: float, remasking: str) -> bool:
    """Greedy candidates and a confidence that draws nothing: the seed cannot change the output."""
    return temperature == 0 and remasking != RANDOM


def expected_cells(records: list[Record]) -> list[dict]:
    """What a baseline pins per cell: accuracy and every sample's completion hash and verdict."""
    out = []
    for cell, group in sorted(group_by_cell(records).items(), key=lambda item: str(pinned_id(item[0]))):
        correct = sum(r.correct for r in group)
        out.append({"task": cell.task, "sampler": cell.sampler, "remasking": cell.remasking, "steps": cell.steps,
                    "temperature": cell.temperature, "exact": is_exact(cell.temperature, cell.remasking),
                    "n": len(group), "correct": correct, "accuracy": correct / len(group),
                    "samples": {r.example_id: f"{completion_hash(r.completion)} {int(r.correct)}" for r in group}})
    return out


def baseline_document(config: dict, records: list[Record], alpha: float, tolerance: float, about: str) -> dict:
    return {"format": FORMAT, "about": about, "options": config, "alpha": alpha, "tolerance": tolerance,
            "cells": expected_cells(records)}


def options_from_config(config: dict) -> RunOptions:
    """RunOptions from a stored config (lists back to tuples); unknown or missing keys are bad input."""
    known = {f.name for f in fields(RunOptions)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise HarnessError(f"unknown run option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    try:
        return RunOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    except TypeError as err:
        raise HarnessError(f"incomplete run options: {err}") from None


def load_baseline(path: str | Path) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise HarnessError(f"no baseline file {path}; create one with --update (and --run RUN_DIR for its "
                           f"configuration)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HarnessError(f"cannot read baseline {path}: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise HarnessError(f"{path} is not a check baseline (expected \"format\": \"{FORMAT}\")")
    for key, kind in (("options", dict), ("cells", list), ("alpha", (int, float)), ("tolerance", (int, float))):
        if not isinstance(doc.get(key), kind):
            raise HarnessError(f"baseline {path}: missing or malformed {key!r}")
    for cell in doc["cells"]:
        if not _is_cell(cell):
            raise HarnessError(f"baseline {path}: malformed cell {str(cell)[:80]}")
    options_from_config(doc["options"])
    return doc


def _is_cell(cell) -> bool:
    """Whether `cell` has what expected_cells writes: its keys, and "<hash> <0|1>" per sample."""
    return (isinstance(cell, dict) and {"task", "sampler", "remasking", "steps", "exact", "samples"} <= set(cell)
            and isinstance(cell["samples"], dict)
            and all(isinstance(v, str) and re.fullmatch(r"[0-9a-f]{16} [01]", v) for v in cell["samples"].values()))


@dataclass
class Verdict:
    cell: tuple
    exact: bool
    n: int
    baseline_accuracy: float
    accuracy: float | None
    changed: int           # completions whose hash differs
    lost: int              # right in the baseline, wrong now
    gained: int
    p_value: float | None  # one-sided McNemar, statistical cells only
    regression: bool
    reason: str


def _compare_cell(cell: dict, now: dict[str, Record], exact: bool, alpha: float, tolerance: float) -> Verdict:
    expected = {eid: (value.split()[0], value.split()[1] == "1") for eid, value in cell["samples"].items()}
    key = (cell["task"], cell["sampler"], cell["remasking"], cell["steps"])
    base_accuracy = sum(c for _, c in expected.values()) / len(expected)
    common = [eid for eid in expected if eid in now]
    if not common:
        return Verdict(key, exact, len(expected), base_accuracy, None, 0, 0, 0, None, True, "cell missing from the run")
    changed_ids = [e for e in common if completion_hash(now[e].completion) != expected[e][0]]
    changed = len(changed_ids)
    lost = sum(expected[e][1] and not now[e].correct for e in common)
    gained = sum(not expected[e][1] and now[e].correct for e in common)
    accuracy = sum(now[e].correct for e in common) / len(common)
    paired_base = sum(expected[e][1] for e in common) / len(common)
    missing = len(expected) - len(common)
    reasons = [f"{missing} of {len(expected)} examples missing"] if missing else []
    if exact:
        if changed:
            reasons.append(f"{changed} of {len(common)} completions changed (e.g. {', '.join(changed_ids[:3])})")
        if lost or gained:
            reasons.append(f"{lost} verdicts lost, {gained} gained")
        return Verdict(key, exact, len(common), paired_base, accuracy, changed, lost, gained, None, bool(reasons),
                       "; ".join(reasons))
    p = mcnemar_exact(lost, gained, alternative="greater")
    drop = paired_base - accuracy
    if p < alpha:
        reasons.append(f"significant drop (one-sided McNemar p = {p:.3g} < alpha {alpha})")
    if drop > tolerance:
        reasons.append(f"drop of {100 * drop:.1f} points exceeds the tolerance of {100 * tolerance:.1f}")
    return Verdict(key, exact, len(common), paired_base, accuracy, changed, lost, gained, p, bool(reasons),
                   "; ".join(reasons))


def compare(baseline: dict, records: list[Record], seed: int, alpha: float | None = None,
            tolerance: float | None = None) -> list[Verdict]:
    """A verdict per baseline cell. Exact cells stay exact only under the pinned seed."""
    alpha = baseline["alpha"] if alpha is None else alpha
    tolerance = baseline["tolerance"] if tolerance is None else tolerance
    same_seed = seed == baseline["options"].get("seed")
    by_cell = {pinned_id(cell): {r.example_id: r for r in group} for cell, group in group_by_cell(records).items()}
    return [_compare_cell(cell, by_cell.get((cell["task"], cell["sampler"], cell["remasking"], cell["steps"]), {}),
                          cell["exact"] and same_seed, alpha, tolerance)
            for cell in baseline["cells"]]


def format_verdicts(verdicts: list[Verdict]) -> str:
    """One line per cell, and under each regression what changed."""
    header = (f"{'task':<14}{'sampler':<22}{'remasking':<16}{'steps':>6}  {'mode':<12}{'n':>5}{'base %':>8}"
              f"{'now %':>8}{'changed':>9}{'lost/gained':>13}{'p':>8}  verdict")
    lines = [header, "-" * len(header)]
    for v in verdicts:
        task, sampler, remasking, steps = v.cell
        now = "-" if v.accuracy is None else f"{100 * v.accuracy:.1f}"
        p = "" if v.p_value is None else f"{v.p_value:.3g}"
        lines.append(f"{task:<14}{sampler:<22}{remasking:<16}{steps:>6}  {'exact' if v.exact else 'statistical':<12}"
                     f"{v.n:>5}{100 * v.baseline_accuracy:>8.1f}{now:>8}{v.changed:>9}{f'{v.lost}/{v.gained}':>13}"
                     f"{p:>8}  {'REGRESSION' if v.regression else 'ok'}")
        if v.regression:
            lines.append(f"{'':<14}-> {v.reason}")
    return "\n".join(lines)
