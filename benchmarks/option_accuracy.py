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
"""

from __future__ import annotations

import argparse

from harness.report.inputs import load_inputs
from harness.report.tables import group_cells, paired_difference

# Where an option's run may differ from the exact one: the option itself, and where it was written.
OPTION_KEYS = {"cache", "dtype", "out"}


def read_run(path: str):
    return load_inputs([path]).runs[0]


def check_same_grid(exact, option, name: str) -> None:
    a, b = exact.manifest["config"], option.manifest["config"]
    differs = sorted(k for k in a.keys() | b.keys() if k not in OPTION_KEYS and a.get(k) != b.get(k))
    if differs:
        raise SystemExit(f"{name}: {option.dir} is not the grid of {exact.dir}: it differs in {', '.join(differs)}")


def compare(exact_dir: str, options: dict[str, str]) -> list[dict]:
    """One row per (option, cell of the exact run): the option's samples paired with the exact ones, and
    how many completions are identical to the exact ones."""
    exact = read_run(exact_dir)
    exact_cells = group_cells(exact.records)
    rows = []
    for name, path in options.items():
        run = read_run(path)
        check_same_grid(exact, run, name)
        for cell, records in group_cells(run.records).items():
            base = {r.example_id: r for r in exact_cells.get(cell, [])}
            paired = [(base[r.example_id], r) for r in records if r.example_id in base]
            if paired:
                same = sum(a.completion == b.completion for a, b in paired)
                rows.append({"option": name, "task": cell.task, "sampler": cell.sampler, "steps": cell.steps,
                             "block_length": cell.block_length, "identical": same,
                             **paired_difference([(a.correct, b.correct) for a, b in paired])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exact", help="the exact run (float32, --cache none)")
    parser.add_argument("options", nargs="+", metavar="NAME=RUN", help="an option's run of the same grid")
    args = parser.parse_args()
    options = dict(item.split("=", 1) for item in args.options)
    print("| option | task | sampler | Lb | steps | n | identical | exact acc % | option acc % | diff [95% CI] "
          "| only exact / only option | McNemar p |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in compare(args.exact, options):
        print(f"| {r['option']} | {r['task']} | {r['sampler']} | {r['block_length']} | {r['steps']} | {r['pairs']} | {r['identical']} "
              f"| {100 * r['baseline_accuracy']:.1f} | {100 * r['accuracy']:.1f} | {100 * r['difference']:+.1f} "
              f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] | {r['only_baseline']} / {r['only_sampler']} "
              f"| {r['mcnemar_p']:.3g} |")


if __name__ == "__main__":
    main()
