"""How the report's tables read as text: their columns, number formats, and the CSV and
Markdown files written beside the HTML (the CSV keeps every field at full precision)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Column:
    header: str
    text: Callable[[dict], str]
    context: bool = False              # setup, not result: the HTML states it once when all rows share it


def percent(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def interval(low: float, high: float, signed: bool = False) -> str:
    return f"[{percent(low, signed)}, {percent(high, signed)}]"


def p_value(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def metrics_text(metrics: dict) -> str:
    """Task metrics beyond accuracy, the overall ones only (per-category ones stay in the CSV)."""
    return ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in metrics.items() if "/" not in k)


def _field(name: str, header: str | None = None, context: bool = False) -> Column:
    return Column(header or name.replace("_", " "), lambda r: "" if r[name] is None else str(r[name]), context)


_METHODS = ("sequential", "factorized", "codd")
_SETUP = [_field("model", context=True), _field("protocol", context=True), _field("mode", context=True),
          _field("gen_length", "gen length", context=True), _field("block_length", "block", context=True),
          _field("temperature", "T", context=True)]
_CELL = [_field("task"), *_SETUP, _field("sampler"), _field("remasking", context=True), _field("steps"),
         Column("tokens/step", lambda r: f"{r['gen_length'] / r['steps']:g}")]

ACCURACY = [
    *_CELL, _field("n"),
    Column("accuracy %", lambda r: percent(r["accuracy"])),
    Column("95% CI (Wilson)", lambda r: interval(r["ci_low"], r["ci_high"])),
    Column("task metrics", lambda r: metrics_text(r["metrics"])),
    Column("published %", lambda r: percent(r["published"])),
    Column("published source", lambda r: r["published_source"] or ""),
]
PAIRED = [
    *_CELL, _field("pairs"),
    Column("accuracy %: factorized → sampler", lambda r: f"{percent(r['baseline_accuracy'])} → {percent(r['accuracy'])}"),
    Column("Δ (pp)", lambda r: percent(r["difference"], signed=True)),
    Column("95% CI of Δ", lambda r: interval(r["ci_low"], r["ci_high"], signed=True)),
    Column("wins / losses", lambda r: f"{r['only_sampler']} / {r['only_baseline']}"),
    Column("McNemar p", lambda r: p_value(r["mcnemar_p"])),
    Column("gap closed %", lambda r: "" if r["gap_closed"] is None else percent(r["gap_closed"])),
]
LATENCY = [
    *_CELL, _field("n"),
    Column("s/sample", lambda r: f"{r['seconds']:.3f}"),
    Column("NFE", lambda r: f"{r['nfe']:.1f}"),
    Column("overhead", lambda r: "" if r["overhead_pct"] is None else f"{r['overhead_pct']:+.1f}%"),
    Column("published s/sample", lambda r: "" if r["published_seconds"] is None else f"{r['published_seconds']:.2f}"),
    Column("published source", lambda r: r["published_source"] or ""),
]

GAP = [
    _field("task"), _field("ratio", "mask ratio"), _field("masked_tokens", "masked tokens"),
    Column("NLL: sequential / factorized / CoDD", lambda r: " / ".join(f"{r['nll'][m]:.3f}" for m in _METHODS)),
    Column("perplexity: sequential / factorized / CoDD",
           lambda r: " / ".join(f"{r['perplexity'][m]:.3f}" for m in _METHODS)),
    Column("gap, nats [95% CI]", lambda r: f"{r['gap_nll']:.3f}" + (
        "" if r["gap_low"] is None else f" [{r['gap_low']:.3f}, {r['gap_high']:.3f}]")),
    Column("closed by CoDD % [95% CI]", lambda r: "" if r["fraction_closed"] is None else
           f"{percent(r['fraction_closed'])} {interval(r['ci_low'], r['ci_high'])}"),
]
# A run's likelihood view (harness/likelihood.py): one gap row per budget, its ratio = tokens per step / W.
LIKELIHOOD = [_field("task"), _field("steps"), _field("solutions"), *GAP[1:]]
COMPUTE = [
    _field("kind"), _field("task"), Column("device", lambda r: f"{r['device_count']} × {r['device_type']}"),
    Column("device-hours", lambda r: f"{r['device_hours']:.3g}"),
    Column("steps", lambda r: str(r.get("steps", ""))),
    Column("tokens", lambda r: f"{r['tokens']:,}" if r.get("tokens") else ""),
    Column("trainable params", lambda r: f"{r['trainable_params']:,}" if r.get("trainable_params") else ""),
    Column("command", lambda r: r.get("command") or ""),
]


def shown_columns(rows: list[dict], columns: list[Column]) -> tuple[list[Column], list[tuple[str, str]]]:
    """The columns worth a reader's eye: setup columns every row shares are lifted out as
    (header, value) pairs; columns empty in every row (no published number matched) dropped."""
    shown, shared = [], []
    for column in columns:
        values = {column.text(r) for r in rows}
        if column.context and len(values) == 1:
            shared.append((column.header, values.pop()))
        elif values != {""}:
            shown.append(column)
    return shown, shared


def markdown(rows: list[dict], columns: list[Column]) -> str:
    columns, shared = shown_columns(rows, columns)
    lines = [", ".join(f"{h}: {v}" for h, v in shared), ""] if shared else []
    lines.append("| " + " | ".join(c.header for c in columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines += ["| " + " | ".join(c.text(r).replace("|", "\\|") for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _flat(row: dict) -> dict:
    """A row for CSV: a nested dict's entries become `<field>:<name>` fields."""
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update({f"{key}:{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def write_table(rows: list[dict], columns: list[Column], directory: Path, stem: str) -> None:
    """`stem.csv` (every field of every row, full precision) and `stem.md` (what the HTML shows)."""
    flat = [_flat(r) for r in rows]
    fields = list(dict.fromkeys(k for r in flat for k in r))
    with (directory / f"{stem}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(flat)
    (directory / f"{stem}.md").write_text(markdown(rows, columns))
