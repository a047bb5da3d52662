"""Qualitative pairs: one example decoded by the factorized baseline and by another sampler
under the same budget and random stream, where exactly one of them is right, with the spans
where the two completions differ marked."""

from __future__ import annotations

import difflib
import re

from harness.report.tables import BASELINE, baseline_of
from harness.store import Cell, Record

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


def diff_segments(a: str, b: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Both texts cut into (text, differs) segments over a word-level diff."""
    ta, tb = _TOKENS.findall(a), _TOKENS.findall(b)
    sa, sb = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        sa.append(("".join(ta[i1:i2]), op != "equal"))
        sb.append(("".join(tb[j1:j2]), op != "equal"))
    return [s for s in sa if s[0]], [s for s in sb if s[0]]


def discordant_pairs(cells: dict[Cell, list[Record]], per_direction: int = 2, questions=None) -> list[dict]:
    """For every task and non-baseline sampler, up to `per_direction` examples the sampler got
    right and the baseline wrong, and as many the reverse; the smallest budgets first (where
    samplers differ most). `questions(task, example_id)` gives the problem text, if known."""
    chosen: dict[tuple, list[dict]] = {}
    for cell in sorted(cells, key=lambda c: c.steps):
        baseline = {r.example_id: r for r in cells.get(baseline_of(cell), [])}
        if cell.sampler == BASELINE or not baseline:
            continue
        for record in cells[cell]:
            base = baseline.get(record.example_id)
            if base is None or base.correct == record.correct:
                continue
            slot = chosen.setdefault((cell.task, cell.sampler, record.correct), [])
            if len(slot) >= per_direction:
                continue
            base_segments, other_segments = diff_segments(base.completion, record.completion)
            slot.append({**cell._asdict(), "example_id": record.example_id, "reference": record.reference,
                         "question": questions(cell.task, record.example_id) if questions else None,
                         "sampler_right": record.correct,
                         "baseline": {"segments": base_segments, "extracted": base.extracted,
                                      "correct": base.correct},
                         "other": {"segments": other_segments, "extracted": record.extracted,
                                   "correct": record.correct}})
    return [pair for key in sorted(chosen, key=lambda k: (k[0], k[1], not k[2])) for pair in chosen[key]]
