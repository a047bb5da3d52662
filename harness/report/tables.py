"""The report's tables, computed from sample records: accuracy with 95% intervals, paired
differences to the factorized baseline, and latency with the overhead over that baseline.

The baseline of a cell is the `factorized` cell with everything else equal (model, protocol,
task, generation setup, remasking rule, step budget); the runner gave both the same
per-example random streams, so they are compared pair by pair on their common examples.
"""

from __future__ import annotations

from harness.report.published import published_for
from harness.stats import mcnemar_exact, paired_bootstrap_interval, wilson_interval
from harness.store import Cell, Record, group_by_cell
from tasks import Score, get_task

BASELINE = "factorized"
CEILING = "sequential"


def sampler_rank(spec: str) -> tuple:
    """Baseline first, the sequential ceiling last, the rest by name."""
    name = spec.partition(":")[0]
    return (name != BASELINE, name == CEILING, spec)


def group_cells(records: list[Record]) -> dict[Cell, list[Record]]:
    """Records by cell, cells in display order (task, model, protocol, remasking, sampler, steps), each
    cell's records by example id."""
    def order(cell: Cell):
        return (cell.task, cell.model, cell.protocol, cell.remasking, sampler_rank(cell.sampler), cell.steps, str(cell))

    cells = group_by_cell(records)
    return {cell: cells[cell] for cell in sorted(cells, key=order)}


def baseline_of(cell: Cell) -> Cell:
    return cell._replace(sampler=BASELINE)


def ceilings(cells: dict[Cell, list[Record]]) -> dict[tuple, dict]:
    """The sequential cells, by everything but sampler and steps (sequential has one budget):
    example id -> correct."""
    return {_without_budget(cell): {r.example_id: r.correct for r in records}
            for cell, records in cells.items() if cell.sampler == CEILING}


def _without_budget(cell: Cell) -> tuple:
    return cell._replace(sampler=None, steps=None)


def gap_closed(triples: list[tuple[bool, bool, bool]]) -> float | None:
    """(sampler - factorized) / (sequential - factorized) correct counts over (factorized,
    sampler, sequential) results of the same examples: the fraction of the factorization gap
    a sampler closes; None without a positive gap."""
    base, mine, ceiling = (sum(t[i] for t in triples) for i in range(3))
    return (mine - base) / (ceiling - base) if ceiling > base else None


def accuracy_rows(cells: dict[Cell, list[Record]]) -> list[dict]:
    rows = []
    for cell, records in cells.items():
        info = cell._asdict()
        n, correct = len(records), sum(r.correct for r in records)
        low, high = wilson_interval(correct, n)
        scores = [Score(r.correct, r.extracted, r.details) for r in records]
        published = published_for("accuracy", info)
        rows.append({**info, "n": n, "correct": correct, "accuracy": correct / n, "ci_low": low, "ci_high": high,
                     "metrics": get_task(cell.task).summarize(scores),
                     "published": published["value"] / 100 if published else None,
                     "published_source": f"{published['source']}, {published['where']}" if published else None})
    return rows


def paired_rows(cells: dict[Cell, list[Record]]) -> list[dict]:
    """Every non-baseline cell against its baseline on the examples both decoded, and the
    fraction of the gap to the sequential ceiling it closes where the ceiling was run."""
    rows, ceiling_of = [], ceilings(cells)
    for cell, records in cells.items():
        baseline = {r.example_id: r.correct for r in cells.get(baseline_of(cell), [])}
        if cell.sampler == BASELINE or not baseline:
            continue
        pairs = [(baseline[r.example_id], r.correct) for r in records if r.example_id in baseline]
        if not pairs:
            continue
        ceiling = ceiling_of.get(_without_budget(cell), {}) if cell.sampler != CEILING else {}
        closed = gap_closed([(baseline[r.example_id], r.correct, ceiling[r.example_id])
                             for r in records if r.example_id in baseline and r.example_id in ceiling])
        rows.append({**cell._asdict(), **paired_difference(pairs), "gap_closed": closed})
    return rows


def paired_difference(pairs: list[tuple[bool, bool]]) -> dict:
    """(baseline correct, other correct) of each example -> both accuracies, the difference with its
    95% paired bootstrap interval, the discordant counts and the exact McNemar p-value."""
    base, mine = ([float(p[i]) for p in pairs] for i in (0, 1))
    only_mine = sum(m and not b for b, m in pairs)
    only_base = sum(b and not m for b, m in pairs)
    low, high = paired_bootstrap_interval(mine, base)
    return {"pairs": len(pairs), "baseline_accuracy": sum(base) / len(pairs), "accuracy": sum(mine) / len(pairs),
            "difference": (sum(mine) - sum(base)) / len(pairs), "ci_low": low, "ci_high": high,
            "only_sampler": only_mine, "only_baseline": only_base, "mcnemar_p": mcnemar_exact(only_mine, only_base)}


def latency_rows(cells: dict[Cell, list[Record]]) -> list[dict]:
    """Seconds per sample and backbone calls per sample; overhead against the baseline's seconds."""
    rows = []
    for cell, records in cells.items():
        info = cell._asdict()
        seconds = sum(r.seconds for r in records) / len(records)
        baseline = cells.get(baseline_of(cell))
        overhead = None
        if baseline and cell.sampler != BASELINE:
            base_seconds = sum(r.seconds for r in baseline) / len(baseline)
            overhead = 100 * (seconds / base_seconds - 1) if base_seconds > 0 else None
        published = published_for("seconds_per_sample", info)
        rows.append({**info, "n": len(records), "seconds": seconds,
                     "nfe": sum(r.nfe for r in records) / len(records), "overhead_pct": overhead,
                     "published_seconds": published["value"] if published else None,
                     "published_source": f"{published['source']}, {published['where']}" if published else None})
    return rows
