"""`python -m harness gap`: the perplexity-gap curve of a backbone and a CoDD PC (paper Fig. 1)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from codd.choice import PCSpec, resolve
from harness import environment
from harness.backbones import load_backbone
from harness.commands.arguments import add_data_dir, positive_float, positive_int
from harness.gap import measure_gap, table_rows
from harness.report import formatting
from harness.store import write_json_atomic
from tasks import get_task


def add_parser(commands) -> None:
    p = commands.add_parser(
        "gap", help="perplexity gap of factorized vs sequential decoding, and what CoDD closes (paper Fig. 1)",
        description="For held-out solutions, mask a W-token window at ratios 0.1..0.9 and measure the NLL per masked "
                    "token of the true tokens under the chain rule (sequential), one factorized call, and the CoDD "
                    "product from that same call. Writes gap.json, gap.csv, gap.md, gap.png and gap.svg.",
        epilog="example: python -m harness gap --task gsm8k --pc path/to/pc --limit 200")
    p.add_argument("--task", default="gsm8k", help="task whose solutions are measured (default gsm8k)")
    p.add_argument("--split", default="test", help="split of held-out solutions (default test)")
    p.add_argument("--limit", type=positive_int, default=200, help="first N solutions (default 200)")
    p.add_argument("--pc", default=None, help="the CoDD PC: a pyjuice .jpc file, a directory written by save_pc or a "
                                              "hub id (default: as `run` chooses for the task, the PC shipped for "
                                              "the backbone on the embedded model)")
    p.add_argument("--tau", type=positive_float, default=None,
                   help="PC temperature: the backbone's log-probs are divided by it (default: the PC's own, as in run)")
    p.add_argument("--window", type=positive_int, default=None,
                   help="window width W in tokens (default: the PC's own, 32 for the paper's text PCs)")
    p.add_argument("--model", default="embedded", help="backbone (default: embedded)")
    p.add_argument("--dtype", default="float32", help="backbone compute dtype: float32 or bfloat16")
    p.add_argument("--seed", type=int, default=0, help="seed of the windows and masks (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="sequences per backbone call (default 32)")
    add_data_dir(p)
    p.add_argument("--out", default=None, help="output directory (default results/<timestamp>-gap-<task>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    examples = task.load(split=args.split, limit=args.limit, data_dir=args.data_dir)
    backbone = load_backbone(args.model, task.family, args.dtype)
    chosen = resolve(PCSpec(pc=args.pc, tau=args.tau), backbone, task.name)
    out = Path(args.out or f"results/{datetime.now():%Y%m%d-%H%M%S}-gap-{task.name}")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tqdm(total=len(examples), disable=args.quiet, unit="solution", desc=f"gap {task.name}") as bar:
        result = measure_gap(task, backbone, chosen.hmm, examples, width=args.window or chosen.hmm.window, tau=chosen.tau,
                             seed=args.seed, batch_size=args.batch_size, progress=bar.update)
    result.update(model=args.model, pc=chosen.source, split=args.split, command=" ".join(sys.argv),
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  seconds=round(time.perf_counter() - start, 1), environment=environment.describe())
    from harness.report import plots  # imported on use: matplotlib costs seconds at start-up

    write_json_atomic(out / "gap.json", result)
    rows = table_rows(result)
    formatting.write_table(rows, formatting.GAP, out, "gap")
    plots.save(plots.gap_figure(result), out / "gap")
    print(formatting.markdown(rows, formatting.GAP))
    print(f"{out}  ({result['solutions']} solutions, {result['skipped']} skipped, {result['seconds']:.0f} s)")
    return 0
