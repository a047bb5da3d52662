"""`python -m harness check`: re-run a pinned configuration (or read a run) and compare it with
its baseline file; exit 1 on a regression, 0 otherwise, 2 on bad input."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from harness import environment
from harness.check import (DEFAULT_ALPHA, DEFAULT_TOLERANCE, baseline_document, compare, format_verdicts,
                           load_baseline, options_from_config)
from harness.commands.arguments import add_data_dir
from harness.errors import HarnessError
from harness.report.inputs import load_inputs
from harness.runner import RunOptions, manifest, plan, run
from harness.store import RunStore, write_json_atomic

ABOUT = ("Pinned results of `options`, compared by `python -m harness check`: exact cells (temperature 0, "
         "deterministic remasking) must reproduce every completion hash and verdict; the others fail only on a "
         "significant drop (one-sided McNemar, alpha) or a drop beyond `tolerance`. "
         "Rewrite on purpose with `check --baseline FILE --update`.")


def probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def add_parser(commands) -> None:
    p = commands.add_parser(
        "check", help="regression check of a pinned configuration against its baseline file",
        description="Re-run the configuration pinned in the baseline FILE (or read --run RUN_DIR) and compare: "
                    "greedy cells must reproduce every generation exactly; sampled cells fail only on a "
                    "statistically significant drop or one beyond the tolerance. Exit 1 on regression.",
        epilog="example: python -m harness check --baseline results/baselines/smoke.json")
    p.add_argument("--baseline", required=True, metavar="FILE", help="the baseline file (JSON)")
    p.add_argument("--run", default=None, metavar="RUN_DIR",
                   help="compare this finished run instead of re-running (its configuration must match FILE's)")
    p.add_argument("--seed", type=int, default=None,
                   help="re-run under another seed (every cell is then compared statistically)")
    p.add_argument("--alpha", type=probability, default=None,
                   help=f"significance level of the one-sided test (default: FILE's, {DEFAULT_ALPHA} for new files)")
    p.add_argument("--tolerance", type=float, default=None,
                   help=f"largest accepted accuracy drop, absolute (default: FILE's, {DEFAULT_TOLERANCE} for new files)")
    p.add_argument("--update", action="store_true", help="rewrite FILE from these results instead of comparing")
    add_data_dir(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def _read_run(run_dir: str, pinned: dict | None) -> tuple[dict, list[dict]]:
    """A finished run's configuration and records; its configuration must be the pinned one (seed aside)."""
    inputs = load_inputs([run_dir])
    if not inputs.runs:
        raise HarnessError(f"{run_dir} is not a run directory")
    # Both through RunOptions, so that options added since the baseline was pinned take their defaults.
    config = options_from_config(inputs.runs[0].manifest.get("config", {})).config()
    if pinned is not None:
        pinned = options_from_config(pinned).config()
        differ = sorted(k for k in config if k != "seed" and config[k] != pinned[k])
        if differ:
            raise HarnessError(f"{run_dir} was run with another configuration than the baseline "
                               f"({', '.join(differ)} differ)")
    return config, inputs.records


def _rerun(options: RunOptions, quiet: bool) -> list[dict]:
    """A fresh run of `options` (in a scratch directory: never resumed from older results); the check
    compares samples, so the likelihood view is left out."""
    options = dataclasses.replace(options, likelihood=False)
    cells = plan(options)
    with tempfile.TemporaryDirectory(prefix="harness-check-") as scratch:
        store = RunStore(scratch)
        store.open(manifest(options))
        run(options, store, cells, progress=not quiet)
        return store.records()


def main(args: argparse.Namespace) -> int:
    path = Path(args.baseline)
    if args.update and args.run:  # pinning a run's configuration anew: an old FILE only lends alpha and tolerance
        baseline = load_baseline(path) if path.exists() else None
        config, records = _read_run(args.run, None)
    else:
        baseline = load_baseline(path)
        if args.run:
            config, records = _read_run(args.run, baseline["options"])
        else:
            options = options_from_config(baseline["options"])
            options = dataclasses.replace(options, data_dir=args.data_dir,
                                          seed=options.seed if args.seed is None else args.seed)
            config, records = options.config(), _rerun(options, args.quiet)
    if args.update:
        alpha = args.alpha or (baseline["alpha"] if baseline else DEFAULT_ALPHA)
        tolerance = args.tolerance if args.tolerance is not None else (baseline["tolerance"] if baseline
                                                                      else DEFAULT_TOLERANCE)
        document = baseline_document(config, records, alpha, tolerance, ABOUT)
        document.update(created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        environment=environment.describe())
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, document)
        print(f"wrote {path}: {len(document['cells'])} cells, {len(records)} samples")
        return 0
    verdicts = compare(baseline, records, config["seed"], args.alpha, args.tolerance)
    print(format_verdicts(verdicts))
    regressions = sum(v.regression for v in verdicts)
    print(f"\n{regressions} regression(s) in {len(verdicts)} cells" if regressions else f"\nok: {len(verdicts)} cells")
    return 1 if regressions else 0
