"""The report's tables, computed from sample records: accuracy with 95% intervals, paired
differences to the factorized baseline, and latency with the overhead over that baseline.

The baseline of a cell is the `factorized` cell with everything else equal (model, protocol,
task, generation setup, remasking rule, step budget); the runner gave both the same
per-example random streams, so they are compared pair by pair on their common examples.
"""

from __future__ import annotations

from harness.report.inputs import CELL_FIELDS, cell_key
from harness.report.published import published_for
from harness.stats import mcnemar_exact, paired_bootstrap_interval, wilson_interval
from tasks import Score, get_task

BASELINE = "factorized"
CEILING = "sequential"


def sampler_rank(spec: str) -> tuple:
    """Baseline first, the sequential ceiling last, the rest by name."""
    name = spec.partition(":")[0]
    return (name != BASELINE, name == CEILING, spec)


def group_cells(records: list[dict]) -> dict[tuple, list[dict]]:
    """Records by cell, cells in display order (task, model, remasking, sampler, steps), each
    cell's records by example id."""
    cells: dict[tuple, list[dict]] = {}
    for record in records:
        cells.setdefault(cell_key(record), []).append(record)
    field = {name: i for i, name in enumerate(CELL_FIELDS)}

    def order(key):
        return (key[field["task"]], key[field["model"]], key[field["protocol"]], key[field["remasking"]],
                sampler_rank(key[field["sampler"]]), key[field["steps"]], str(key))

    return {key: sorted(cells[key], key=lambda r: r["example_id"]) for key in sorted(cells, key=order)}


def describe(key: tuple) -> dict:
    return dict(zip(CELL_FIELDS, key))


def baseline_of(key: tuple) -> tuple:
    info = describe(key)
    info["sampler"] = BASELINE
    return tuple(info.values())


def ceilings(cells: dict[tuple, list[dict]]) -> dict[tuple, dict]:
    """The sequential cells, by everything but sampler and steps (sequential has one budget):
    example id -> correct."""
    return {_without_budget(key): {r["example_id"]: r["correct"] for r in records}
            for key, records in cells.items() if describe(key)["sampler"] == CEILING}


def _without_budget(key: tuple) -> tuple:
    info = describe(key)
    return tuple(v for k, v in info.items() if k not in ("sampler", "steps"))


def gap_closed(triples: list[tuple[bool, bool, bool]]) -> float | None:
    """(sampler - factorized) / (sequential - factorized) correct counts over (factorized,
    sampler, sequential) results of the same examples: the fraction of the factorization gap
    a sampler closes; None without a positive gap."""
    base, mine, ceiling = (sum(t[i] for t in triples) for i in range(3))
    return (mine - base) / (ceiling - base) if ceiling > base else None


def accuracy_rows(cells: dict[tuple, list[dict]]) -> list[dict]:
    rows = []
    for key, records in cells.items():
        info = describe(key)
        n, correct = len(records), sum(r["correct"] for r in records)
        low, high = wilson_interval(correct, n)
        scores = [Score(r["correct"], r.get("extracted"), r.get("details") or {}) for r in records]
        published = published_for("accuracy", info)
        rows.append({**info, "n": n, "correct": correct, "accuracy": correct / n, "ci_low": low, "ci_high": high,
                     "metrics": get_task(info["task"]).summarize(scores),
                     "published": published["value"] / 100 if published else None,
                     "published_source": f"{published['source']}, {published['where']}" if published else None})
    return rows


def paired_rows(cells: dict[tuple, list[dict]]) -> list[dict]:
    """Every non-baseline cell against its baseline on the examples both decoded, and the
    fraction of the gap to the sequential ceiling it closes where the ceiling was run."""
    rows, ceiling_of = [], ceilings(cells)
    for key, records in cells.items():
        baseline = {r["example_id"]: r["correct"] for r in cells.get(baseline_of(key), [])}
        if describe(key)["sampler"] == BASELINE or not baseline:
            continue
        pairs = [(baseline[r["example_id"]], r["correct"]) for r in records if r["example_id"] in baseline]
        if not pairs:
            continue
        base, mine = ([float(p[i]) for p in pairs] for i in (0, 1))
        only_mine = sum(m and not b for b, m in pairs)
        only_base = sum(b and not m for b, m in pairs)
        low, high = paired_bootstrap_interval(mine, base)
        ceiling = ceiling_of.get(_without_budget(key), {}) if describe(key)["sampler"] != CEILING else {}
        closed = gap_closed([(baseline[r["example_id"]], r["correct"], ceiling[r["example_id"]])
                             for r in records if r["example_id"] in baseline and r["example_id"] in ceiling])
        rows.append({**describe(key), "pairs": len(pairs), "baseline_accuracy": sum(base) / len(pairs),
                     "accuracy": sum(mine) / len(pairs), "difference": (sum(mine) - sum(base)) / len(pairs),
                     "ci_low": low, "ci_high": high, "only_sampler": only_mine, "only_baseline": only_base,
                     "mcnemar_p": mcnemar_exact(only_mine, only_base), "gap_closed": closed})
    return rows


def latency_rows(cells: dict[tuple, list[dict]]) -> list[dict]:
    """Seconds per sample and backbone calls per sample; overhead against the baseline's seconds."""
    rows = []
    for key, records in cells.items():
        info = describe(key)
        seconds = sum(r["seconds"] for r in records) / len(records)
        baseline = cells.get(baseline_of(key))
        overhead = None
        if baseline and info["sampler"] != BASELINE:
            base_seconds = sum(r["seconds"] for r in baseline) / len(baseline)
            overhead = 100 * (seconds / base_seconds - 1) if base_seconds > 0 else None
        published = published_for("seconds_per_sample", info)
        rows.append({**info, "n": len(records), "seconds": seconds,
                     "nfe": sum(r["nfe"] for r in records) / len(records), "overhead_pct": overhead,
                     "published_seconds": published["value"] if published else None,
                     "published_source": f"{published['source']}, {published['where']}" if published else None})
    return rows
