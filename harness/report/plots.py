"""The report's figures (matplotlib, Agg): accuracy against steps per task (paper Fig. 3 left),
the perplexity-gap curve (paper Fig. 1) and training compute. Each is written as PNG and SVG;
colours are the Okabe-Ito palette (colour-blind safe) with one colour per sampler everywhere."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SAMPLER_COLOURS = {"factorized": "#0072B2", "codd": "#D55E00", "diffu-grpo": "#009E73", "sequential": "#000000"}
OTHER_COLOURS = ("#CC79A7", "#E69F00", "#56B4E9", "#999999", "#F0E442")
REMASKING_STYLES = {"low_confidence": "-", "margin": "--", "entropy": ":", "random": "-.", "topprob": (0, (1, 1))}
KIND_COLOURS = {"model": "#999999", "pc": SAMPLER_COLOURS["codd"], "rl": SAMPLER_COLOURS["diffu-grpo"]}
KIND_LABELS = {"model": "backbone", "pc": "CoDD PC", "rl": "diffu-GRPO"}
GAP_COLOURS = {"sequential": "#000000", "factorized": "#0072B2", "codd": "#D55E00"}
STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.color": "#e5e5e5", "grid.linewidth": 0.6, "axes.axisbelow": True, "figure.dpi": 100,
    "svg.fonttype": "path", "svg.hashsalt": "codd-bench", "font.family": "DejaVu Sans",
}


def colour(spec: str, others: dict[str, str]) -> str:
    name = spec.partition(":")[0]
    if spec == name and name in SAMPLER_COLOURS:
        return SAMPLER_COLOURS[name]
    return others.setdefault(spec, OTHER_COLOURS[len(others) % len(OTHER_COLOURS)])


def save(fig, stem: Path) -> dict[str, bytes]:
    """Write `stem.png` and `stem.svg`; returns their bytes (the HTML embeds them)."""
    out = {}
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=200, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        out[fmt] = buffer.getvalue()
        stem.with_suffix(f".{fmt}").write_bytes(out[fmt])
    plt.close(fig)
    return out


def accuracy_figure(task: str, rows: list[dict]):
    """Accuracy (%) against step budget for one task, 95% Wilson intervals as error bars; budget-free
    samplers (the sequential ceiling) as a horizontal band."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.6, 3.1))
        by_line: dict[tuple, list[dict]] = {}
        for r in rows:
            by_line.setdefault((r["model"], r["sampler"], r["remasking"]), []).append(r)
        several = {field: len({key[i] for key in by_line}) > 1 for i, field in enumerate(("model", "sampler", "remasking"))}
        budgets = sorted({r["steps"] for r in rows if r["sampler"].partition(":")[0] != "sequential"})
        others: dict[str, str] = {}
        for (model, sampler, remasking), line in by_line.items():
            line = sorted(line, key=lambda r: r["steps"])
            label = " · ".join(part for part, show in ((sampler, True), (remasking, several["remasking"]),
                                                        (model, several["model"])) if show)
            style = dict(color=colour(sampler, others), linestyle=REMASKING_STYLES.get(remasking, "-"))
            acc = [100 * r["accuracy"] for r in line]
            # Clamped: at 0/n or n/n the interval's end equals the estimate up to rounding.
            low = [max(0.0, 100 * (r["accuracy"] - r["ci_low"])) for r in line]
            high = [max(0.0, 100 * (r["ci_high"] - r["accuracy"])) for r in line]
            if sampler.partition(":")[0] == "sequential" and budgets:
                ax.axhline(acc[0], lw=1.2, label=f"{label} (ceiling, {line[0]['steps']} steps)", **style)
                ax.axhspan(100 * line[0]["ci_low"], 100 * line[0]["ci_high"], color=style["color"], alpha=0.08, lw=0)
                continue
            ax.errorbar([r["steps"] for r in line], acc, yerr=[low, high], marker="o", ms=4, lw=1.5, capsize=2.5,
                        elinewidth=0.9, label=label, **style)
        if budgets:
            ax.set_xscale("log", base=2)
            ax.set_xticks(budgets, [str(b) for b in budgets])
            ax.minorticks_off()
        ax.set_xlabel(f"diffusion steps (gen length {rows[0]['gen_length']})")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.set_title(task)
        ax.legend(frameon=False, loc="best")
        return fig


def gap_figure(gap: dict):
    """Perplexity per masked token against mask ratio (the gap between factorized and sequential
    shaded), and the fraction of that gap CoDD closes with its 95% bootstrap interval."""
    rows = gap["rows"]
    ratios = [r["ratio"] for r in rows]
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.1), gridspec_kw={"width_ratios": [1.25, 1]})
        ppl = {m: [r["perplexity"][m] for r in rows] for m in ("sequential", "factorized", "codd")}
        left.fill_between(ratios, ppl["sequential"], ppl["factorized"], color=GAP_COLOURS["factorized"], alpha=0.13,
                          lw=0, label="misspecification gap")
        for method, label in (("factorized", "factorized (one call)"), ("codd", "CoDD product (one call)"),
                              ("sequential", "sequential (chain rule)")):
            left.plot(ratios, ppl[method], marker="o", ms=3.5, lw=1.6, color=GAP_COLOURS[method], label=label,
                      linestyle="--" if method == "sequential" else "-")
        left.set_xlabel("mask ratio within the window")
        left.set_ylabel("perplexity per masked token")
        left.set_title(f"{gap['task']}: {gap['solutions']} held-out solutions, W = {gap['width']}")
        left.legend(frameon=False)
        closed = [(r["ratio"], 100 * r["fraction_closed"], [100 * c for c in r["fraction_closed_ci95"]])
                  for r in rows if r["fraction_closed"] is not None]
        # Where the gap is tiny the fraction can be huge. The axis shows [-50, 150] % unless most
        # points lie above (then up to 600 %); a point beyond it sits on the edge with its value.
        values = sorted(y for _, y, _ in closed)
        bottom = -50
        top = 150 if not values or values[len(values) // 2] <= 150 else min(600, 1.15 * values[-1])
        for x, y, (low, high) in closed:
            shown = min(max(y, bottom), top)
            if shown != y:
                right.plot([x], [shown], marker="^" if y > top else "v", ms=5, color=GAP_COLOURS["codd"], clip_on=False)
                right.annotate(f"{y:.0f}%", (x, shown), textcoords="offset points", xytext=(0, -12 if y > top else 6),
                               ha="center", fontsize=7, color=GAP_COLOURS["codd"])
        inside = [(x, y, ci) for x, y, ci in closed if bottom <= y <= top]
        if inside:
            x, y, ci = zip(*inside)
            right.errorbar(x, y, yerr=[[v - c[0] for v, c in zip(y, ci)], [c[1] - v for v, c in zip(y, ci)]],
                           color=GAP_COLOURS["codd"], marker="o", ms=3.5, lw=1.6, capsize=2.5, elinewidth=0.9)
        right.set_ylim(bottom, top)
        right.axhline(0, color=GAP_COLOURS["factorized"], lw=0.9)
        right.axhline(100, color=GAP_COLOURS["sequential"], lw=0.9, linestyle="--")
        for level, text in ((0, "factorized"), (100, "sequential")):
            right.annotate(text, (1, level), xycoords=("axes fraction", "data"), xytext=(-2, 2),
                           textcoords="offset points", ha="right", va="bottom", fontsize=7, color="#555555")
        right.set_xlim(left.get_xlim())
        right.set_xticks(ratios)
        right.set_xlabel("mask ratio within the window")
        right.set_ylabel("gap closed by CoDD (%)")
        right.set_title("fraction of the gap closed (95% bootstrap CI)")
        fig.tight_layout()
        return fig


def compute_figure(records: list[dict], published: list[dict]):
    """Device-hours of each training run on one log axis: ours (measured) above, the published
    figures below and labelled as such; every bar names its device."""
    ours = [(f"{KIND_LABELS.get(r['kind'], r['kind'])}: {r['task']}", r["kind"], r["device_hours"],
             f"{r['device_count']} × {r['device_type']}", False) for r in records]
    theirs = [(f"{KIND_LABELS.get(e['kind'], e['kind'])} (published{', lower bound' if e['bound'] == 'lower' else ''})",
               e["kind"], e["value"], e["device_type"], e["bound"] == "lower") for e in published]
    groups = [(title, bars) for title, bars in (("measured on this install", ours),
                                                ("published: CoDD paper, Fig. 3", theirs)) if bars]
    values = [bar[2] for _, bars in groups for bar in bars if bar[2] > 0] or [1.0]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(groups), 1, sharex=True, squeeze=False,
                                 figsize=(7.0, 0.9 + 0.34 * sum(len(b) + 1.2 for _, b in groups)),
                                 gridspec_kw={"height_ratios": [len(b) + 0.4 for _, b in groups]})
        for ax, (title, bars) in zip(axes[:, 0], groups):
            labels, kinds, hours, devices, lower = zip(*bars)
            y = range(len(bars))
            ax.barh(y, hours, color=[KIND_COLOURS.get(k, "#999999") for k in kinds], height=0.62)
            ax.set_yticks(list(y), labels)
            ax.invert_yaxis()
            ax.grid(axis="y", visible=False)
            for i, (h, device, bound) in enumerate(zip(hours, devices, lower)):
                ax.text(h * 1.2, i, f"{'≥ ' if bound else ''}{h:.3g} h · {device}", va="center", fontsize=7.5,
                        color="#333333")
            ax.set_title(title, loc="left", fontsize=9)
        ax = axes[-1, 0]
        ax.set_xscale("log")
        ax.set_xlim(10 ** (math.floor(math.log10(min(values))) - 1), 10 ** (math.ceil(math.log10(max(values))) + 1))
        ax.set_xlabel("device-hours (log scale)")
        fig.tight_layout()
        return fig


def validation_figure(curves: dict[str, list[tuple[float, float]]]):
    """Validation loss against training device-hours, one line per model (stages chained)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 3.2))
        others: dict[str, str] = {}
        for label, points in curves.items():
            hours, losses = zip(*points)
            ax.plot(hours, losses, marker="o", markersize=3, color=colour(label, others), label=label)
        ax.set_xlabel("device-hours of training")
        ax.set_ylabel("held-out SFT loss")
        ax.legend(frameon=False)
        fig.tight_layout()
        return fig
