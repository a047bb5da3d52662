"""Data-parallel scaling on this machine, and the cost of merging shards.

1. One grid decoded by one process with P threads (1 rank x P threads) and by `torchrun --nproc-per-node P`
   (P ranks, each with the cores split between them: 1 thread each on a P-core machine), side by side:
   samples per second of the run phase (from opening the run directory to summary.json, as `run` prints
   it) and end to end (start-up and model loading included), and the ratio P ranks / 1 rank. One process
   with one thread is measured too, as the base both scale from.
2. Merging N synthetic records (half in each of two shards) into samples.jsonl, as rank 0 does at the end.

    python benchmarks/bench_distributed.py [--tasks names] [--limit 2000] [--processes 2] [--records 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.store import Record, RunStore

LAUNCHER_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def timed_run(launcher: list[str], run_args: list[str], out: Path, threads: int) -> dict:
    """Launch `run`, returning its samples, run-phase and end-to-end seconds, and its ranks' thread counts."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS} | {"OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([*launcher, "-m", "harness", "run", *run_args, "--out", str(out)], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(launcher)} failed:\n{done.stderr[-3000:]}")
    phase = float(re.search(rf"^{re.escape(str(out))}  \(([\d.]+) s\)$", done.stdout, re.M).group(1))
    world = json.loads((out / "manifest.json").read_text())["world"]
    batches = dict(sorted((int(rank), int(n)) for rank, n in
                          re.findall(r"rank (\d+)/\d+: \d+ samples in (\d+) batches", done.stderr)))
    return {"samples": (out / "samples.jsonl").read_text().count("\n"), "phase": phase, "wall": wall,
            "threads": [r["threads"] for r in world["ranks"]], "batches": batches}


def synthetic_record(i: int) -> Record:
    """A record shaped like the runner's, with a few hundred characters of completion."""
    return Record.from_json({
        "task": "gsm8k", "example_id": f"gsm8k-{i // 6}", "sampler": "factorized", "remasking": "low_confidence",
        "steps": 64 * (1 + i % 6), "seed": 0, "row_seed": i * 7919, "gen_length": 256, "block_length": 32,
        "mode": "block", "temperature": 0.0, "model": "embedded", "protocol": "native",
        "completion": f"Step by step: {i} apples plus {i % 13} apples. " * 8, "extracted": str(i),
        "correct": i % 3 == 0, "details": {}, "reference": str(i), "nfe": 64, "seconds": 0.123456})


def merge_seconds(count: int) -> tuple[float, float]:
    """Seconds to merge `count` records from two shards, and the size of the merged file in MB."""
    with tempfile.TemporaryDirectory() as out:
        ranks = [RunStore(out, rank, 2) for rank in (0, 1)]
        ranks[0].open({"config": {}, "world": {"size": 2}})
        records = [synthetic_record(i) for i in range(count)]
        for start in range(0, count, 16):  # appended batch by batch, alternating ranks, as a run does
            ranks[(start // 16) % 2].append(records[start:start + 16])
        position = {r.key(): i for i, r in enumerate(records)}
        start = time.perf_counter()
        ranks[0].merge_shards(order=lambda r: position[r.key()])
        seconds = time.perf_counter() - start
        assert len(ranks[0].records()) == count
        return seconds, ranks[0].samples_path.stat().st_size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="names")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--tokens-per-step", default="1,2")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()

    p = args.processes
    run_args = ["--tasks", args.tasks, "--samplers", "factorized", "--tokens-per-step", args.tokens_per_step,
                "--limit", str(args.limit), "--batch-size", str(args.batch_size), "--temperature", "1.0",
                "--quiet", "--no-report"]
    print(f"{os.cpu_count()} cores; {' '.join(run_args[:-2])}")
    with tempfile.TemporaryDirectory() as scratch:
        base = timed_run([sys.executable], run_args, Path(scratch) / "base", threads=1)
        one = timed_run([sys.executable], run_args, Path(scratch) / "one", threads=p)
        many = timed_run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(p)],
                         run_args, Path(scratch) / "many", threads=1)
    assert base["samples"] == one["samples"] == many["samples"]
    for r in (base, one, many):
        name = f"{len(r['threads'])} rank(s) x {r['threads'][0]} thread(s)"
        print(f"{name:<24} {r['samples'] / r['phase']:8.1f} samples/s run phase ({r['phase']:.1f} s), "
              f"{r['samples'] / r['wall']:8.1f} end to end ({r['wall']:.1f} s)")
    print(f"{p} ranks / 1 rank: {one['phase'] / many['phase']:.2f}x run phase, {one['wall'] / many['wall']:.2f}x "
          f"end to end; batches per rank {list(many['batches'].values())} (sha256 assignment)")

    seconds, megabytes = merge_seconds(args.records)
    print(f"merge of {args.records} records from 2 shards ({megabytes:.0f} MB): {seconds:.2f} s")


if __name__ == "__main__":
    main()
