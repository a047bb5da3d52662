"""The paired accuracy cost of an approximate option (a KV cache, bfloat16): each option's run
against an exact run of the same grid (same tasks, samplers, budgets, examples and seed, so
every sample draws the same per-example random stream), example by example, with the report's
paired statistics (harness.report.tables.paired_difference: the 95% paired bootstrap interval
of the difference and the exact McNemar test on the discordant pairs).

`python -m harness report` cannot do this: it pools runs into cells, and a cell does not
include the cache or the dtype, so it refuses the same sample in two runs. Make the runs, e.g.

    python -m harness run --tasks sudoku4-open,names,sudoku4 --samplers factorized,codd --limit 500 --out E
    python -m harness run ... --cache prefix --out P        (and --cache dual, --dtype bfloat16)

then

    python benchmarks/option_accuracy.py E prefix=P dual=D bf16=B     (a Markdown table)

A sampler's own option pairs the same way: runs of `--samplers codd` (E) and `codd:emission=bfloat16` (H),
`python benchmarks/option_accuracy.py E emission=H --sampler-option emission`.

Given `gap` results instead (`python -m harness gap ... --out G32` and `--dtype bfloat16 --out G16`,
same --task, --limit and --seed), it prints the paired NLL difference per mask ratio and method:

    python benchmarks/option_accuracy.py G32 bf16=G16
"""

from __future__ import annotations

import argparse

from pathlib import Path

import numpy as np

from harness.report.inputs import GAP_FILE, load_inputs
from harness.report.tables import group_cells, paired_difference
from harness.stats import paired_bootstrap_interval

# Where an option's run may differ from the exact one: the option itself, and where it was written.
OPTION_KEYS = {"cache", "dtype", "out"}


def read_run(path: str):
    return load_inputs([path]).runs[0]


def without_option(spec: str, key: str | None) -> str:
    """A sampler spec without its option `key` (`codd:emission=bfloat16` -> `codd`)."""
    name, _, options = spec.partition(":")
    kept = [o for o in options.split(",") if o and o.split("=", 1)[0] != key]
    return name + (":" + ",".join(kept) if kept else "")


def check_same_grid(exact, option, name: str, sampler_option: str | None = None) -> None:
    a, b = ({**run.manifest["config"], "samplers": [without_option(s, sampler_option) for s in run.manifest["config"]["samplers"]]}
            for run in (exact, option))
    differs = sorted(k for k in a.keys() | b.keys() if k not in OPTION_KEYS and a.get(k) != b.get(k))
    if differs:
        raise SystemExit(f"{name}: {option.dir} is not the grid of {exact.dir}: it differs in {', '.join(differs)}")


def compare(exact_dir: str, options: dict[str, str], sampler_option: str | None = None) -> list[dict]:
    """One row per (option, cell of the exact run): the option's samples paired with the exact ones, and
    how many completions are identical to the exact ones. With `sampler_option` the option is one of the
    sampler spec's (`emission`): a cell pairs with the exact cell whose sampler lacks it."""
    exact = read_run(exact_dir)
    exact_cells = group_cells(exact.records)
    rows = []
    for name, path in options.items():
        run = read_run(path)
        check_same_grid(exact, run, name, sampler_option)
        for cell, records in group_cells(run.records).items():
            base = {r.example_id: r for r in exact_cells.get(cell._replace(sampler=without_option(cell.sampler, sampler_option)), [])}
            paired = [(base[r.example_id], r) for r in records if r.example_id in base]
            if paired:
                same = sum(a.completion == b.completion for a, b in paired)
                rows.append({"option": name, "task": cell.task, "sampler": cell.sampler, "steps": cell.steps,
                             "block_length": cell.block_length, "identical": same,
                             **paired_difference([(a.correct, b.correct) for a, b in paired])})
    return rows


def compare_gaps(exact_dir: str, options: dict[str, str]) -> list[dict]:
    """For `gap` results of the same solutions, windows and masks (same --task, --limit, --seed): per
    option, mask ratio and method, the mean NLL per masked token of each and their paired difference."""
    exact = load_inputs([exact_dir]).gaps[0]
    rows = []
    for name, path in options.items():
        option = load_inputs([path]).gaps[0]
        if option["per_example"]["example_ids"] != exact["per_example"]["example_ids"] or option["seed"] != exact["seed"]:
            raise SystemExit(f"{name}: {path} measured other solutions or masks than {exact_dir}")
        base, mine = (np.asarray(g["per_example"]["nll_per_token"]) for g in (exact, option))  # [example, ratio, method]
        for r, ratio in enumerate(row["ratio"] for row in exact["rows"]):
            for m, method in enumerate(exact["methods"]):
                low, high = paired_bootstrap_interval(mine[:, r, m], base[:, r, m])
                rows.append({"option": name, "ratio": ratio, "method": method, "n": len(base),
                             "exact": base[:, r, m].mean(), "with_option": mine[:, r, m].mean(),
                             "difference": (mine[:, r, m] - base[:, r, m]).mean(), "ci_low": low, "ci_high": high})
    return rows


def print_accuracy(exact: str, options: dict[str, str], sampler_option: str | None) -> None:
    print("| option | task | sampler | Lb | steps | n | identical | exact acc % | option acc % | diff [95% CI] "
          "| only exact / only option | McNemar p |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in compare(exact, options, sampler_option):
        print(f"| {r['option']} | {r['task']} | {r['sampler']} | {r['block_length']} | {r['steps']} | {r['pairs']} "
              f"| {r['identical']} | {100 * r['baseline_accuracy']:.1f} | {100 * r['accuracy']:.1f} "
              f"| {100 * r['difference']:+.1f} [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] "
              f"| {r['only_baseline']} / {r['only_sampler']} | {r['mcnemar_p']:.3g} |")


def print_gaps(exact: str, options: dict[str, str]) -> None:
    print("| option | mask ratio | method | n | exact NLL | option NLL | diff, nats/token [95% CI] |")
    print("|---|---:|---|---:|---:|---:|---|")
    for r in compare_gaps(exact, options):
        print(f"| {r['option']} | {r['ratio']} | {r['method']} | {r['n']} | {r['exact']:.4f} | {r['with_option']:.4f} "
              f"| {r['difference']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exact", help="the exact run (float32, --cache none), or an exact gap result")
    parser.add_argument("options", nargs="+", metavar="NAME=RUN", help="an option's run of the same grid (or gap)")
    parser.add_argument("--sampler-option", metavar="KEY", help="the option is the samplers' KEY (e.g. emission): "
                        "pair `codd:KEY=...` with the exact run's `codd`")
    args = parser.parse_args()
    options = dict(item.split("=", 1) for item in args.options)
    gaps = (Path(args.exact) / GAP_FILE).is_file()
    if gaps:
        print_gaps(args.exact, options)
    else:
        print_accuracy(args.exact, options, args.sampler_option)


if __name__ == "__main__":
    main()
