"""CoDD against the RL baseline: accuracy per task and budget with paired McNemar tests, and the
training cost of the shipped CoDD PC against the shipped diffu-GRPO adapter of each family.

The paper claims CoDD matches diffu-GRPO at under 2% of its training cost; this prints what we
measure on the embedded models. Usage (run directories from `python -m harness run`, all with
the same --seed so that examples pair up):

    python benchmarks/compare_codd_rl.py results/A results/B ...
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from baselines.grpo.adapter import shipped_adapters
from codd.choice import shipped_pcs
from harness.stats import mcnemar_exact

PAIRS = (("diffu-grpo", "factorized"), ("codd", "factorized"), ("codd", "diffu-grpo"))


def load_records(run_dirs: list[str]) -> dict[tuple, dict[str, bool]]:
    """(task, sampler name, steps) -> {example_id: correct}."""
    cells: dict[tuple, dict[str, bool]] = defaultdict(dict)
    for run in run_dirs:
        for line in (Path(run) / "samples.jsonl").read_text().splitlines():
            r = json.loads(line)
            cells[(r["task"], r["sampler"].split(":")[0], r["steps"])][r["example_id"]] = bool(r["correct"])
    return cells


def accuracy_table(cells: dict[tuple, dict[str, bool]]) -> list[str]:
    lines = [f"{'task':<14}{'steps':>6}  {'sampler':<12}{'n':>5}{'acc %':>8}   paired McNemar (two-sided)"]
    for task, steps in sorted({(t, s) for t, _, s in cells}, key=lambda k: (k[0], -k[1])):
        for sampler in ("factorized", "diffu-grpo", "codd"):
            mine = cells.get((task, sampler, steps))
            if not mine:
                continue
            tests = []
            for a, b in PAIRS:
                other = cells.get((task, b, steps))
                if a != sampler or not other:
                    continue
                shared = mine.keys() & other.keys()
                only_a = sum(mine[e] and not other[e] for e in shared)
                only_b = sum(other[e] and not mine[e] for e in shared)
                diff = 100 * (only_a - only_b) / len(shared)
                tests.append(f"vs {b}: {diff:+.1f} pts ({only_a}/{only_b} discordant, p={mcnemar_exact(only_a, only_b):.2g})")
            accuracy = 100 * sum(mine.values()) / len(mine)
            lines.append(f"{task:<14}{steps:>6}  {sampler:<12}{len(mine):>5}{accuracy:>8.1f}   {'; '.join(tests)}")
    return lines


def cost_table() -> list[str]:
    lines = [f"{'backbone':<18}{'CoDD PC h':>11}{'RL adapter h':>14}{'PC / RL':>9}   (device-hours from compute.json; "
             "CPU seconds where recorded)"]
    pcs, adapters = shipped_pcs(), shipped_adapters()
    for backbone in sorted(pcs.keys() | adapters.keys()):
        records = [json.loads((d / "compute.json").read_text()) if d and (d / "compute.json").is_file() else None
                   for d in (pcs.get(backbone), adapters.get(backbone))]
        hours = [r["device_hours"] if r else None for r in records]
        ratio = f"{100 * hours[0] / hours[1]:.0f}%" if None not in hours else "-"
        cpu = ", ".join(f"{name} {r['cpu_seconds']:.0f} CPU s" for name, r in zip(("PC", "RL"), records)
                        if r and "cpu_seconds" in r)
        shown = [f"{h:.4f}" if h is not None else "-" for h in hours]
        lines.append(f"{backbone:<18}{shown[0]:>11}{shown[1]:>14}{ratio:>9}   {cpu}")
    return lines


def main(run_dirs: list[str]) -> int:
    print("\n".join(accuracy_table(load_records(run_dirs))))
    print()
    print("\n".join(cost_table()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
