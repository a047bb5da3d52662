"""The results store of one run directory (DESIGN.md section 3).

`manifest.json` holds the configuration and environment, `samples.jsonl` one
record per generated sample, `summary.json` the aggregates. Records are
appended to a `RecordLog`: each batch is written with one write, flushed and
fsynced, so a killed run leaves at most a torn last line, which reopening cuts.

A run launched as W > 1 processes (see harness/distributed.py) is sharded:
each rank appends to its own `samples.rank{R}-of-{W}.jsonl`, and rank 0 merges
the shards into samples.jsonl at the end. A run directory keeps the world size
it was made with (a single process is W = 1, no shard files); another world
size is refused unless asked to reshard, which folds every finished record
into samples.jsonl first so the new ranks can split what is left.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError

SHARD_GLOB = "samples.rank*-of-*.jsonl"


def record_key(record: dict) -> tuple:
    """What makes a sample unique within a run."""
    return (record["task"], record["example_id"], record["sampler"], record["remasking"], record["steps"])


def shard_name(rank: int, world_size: int) -> str:
    return f"samples.rank{rank}-of-{world_size}.jsonl"


def write_json_atomic(path: Path, data) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RecordLog:
    """An append-only JSON-lines file of records that survives being killed mid-write."""

    def __init__(self, path: Path):
        self.path = path

    def cut_torn_tail(self) -> None:
        """Drop a last line that a kill interrupted mid-write (only its writer may be gone, never running)."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(end)

    def read(self) -> list[dict]:
        """Every whole record; an unfinished last line (a write in progress, or torn by a kill) is not one yet."""
        if not self.path.exists():
            return []
        records = []
        with open(self.path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.endswith("\n"):
                    break
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise HarnessError(f"{self.path}:{lineno}: malformed record ({err})") from None
        return records

    def check_unique(self) -> None:
        """Refuse a log that holds a sample twice: its counts and intervals would be wrong."""
        seen = set()
        for lineno, record in enumerate(self.read(), 1):
            key = record_key(record)
            if key in seen:
                raise HarnessError(f"{self.path}:{lineno} repeats sample {_describe(key)}; nothing was changed: "
                                   f"re-run with --dedupe to keep the first copy of each sample")
            seen.add(key)

    def append(self, records: list[dict]) -> None:
        """Append a batch durably: one write, flush, fsync."""
        with open(self.path, "a") as f:
            f.write(_lines(records))
            f.flush()
            os.fsync(f.fileno())

    def replace(self, records: list[dict]) -> None:
        """Swap in a whole new content durably: a crash leaves either the old file or the new one."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(_lines(records))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)


def _describe(key: tuple) -> str:
    task, example_id, sampler, remasking, steps = key
    return f"{task} {example_id} ({sampler}, {remasking}, {steps} steps)"


def _lines(records: list[dict]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)


class RunStore:
    """A run directory as seen by one process: rank `rank` of `world_size` (a single process: 0 of 1)."""

    def __init__(self, out: str | Path, rank: int = 0, world_size: int = 1):
        self.dir = Path(out)
        self.world_size = world_size
        self.manifest_path = self.dir / "manifest.json"
        self.samples_path = self.dir / "samples.jsonl"
        self.summary_path = self.dir / "summary.json"
        self.samples = RecordLog(self.samples_path)
        # Where this process appends: its own shard when sharded, so no two processes write one file.
        self.log = RecordLog(self.dir / shard_name(rank, world_size)) if world_size > 1 else self.samples

    def open(self, manifest: dict, reshard: bool = False, dedupe: bool = False) -> None:
        """Create the run directory, or reopen it to resume if its configuration and world size match.

        With `reshard`, a directory made with another world size is taken over: its shards are merged
        into samples.jsonl (keeping every finished record) and the manifest takes this launch's world.
        A log holding a sample twice is refused, or with `dedupe` rewritten with the first copy of each.
        Under torchrun, rank 0 opens first: the others then find the directory it prepared.
        """
        if not self.manifest_path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.manifest_path, manifest)
            return
        try:
            stored = json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise HarnessError(f"{self.manifest_path} is not valid JSON ({err}); use another --out") from None
        if stored.get("config") != manifest["config"]:
            changed = sorted(k for k in set(stored.get("config", {})) | set(manifest["config"])
                             if stored.get("config", {}).get(k) != manifest["config"].get(k))
            raise HarnessError(f"{self.dir} holds a run with a different configuration "
                               f"({', '.join(changed)} differ); use another --out to start a new run")
        stored_size = stored.get("world", {}).get("size", 1)
        if stored_size != self.world_size:
            if not reshard:
                raise HarnessError(f"{self.dir} was run by {_processes(stored_size)}, this launch has "
                                   f"{_processes(self.world_size)}; relaunch with {stored_size}, or add --reshard "
                                   f"to split the unfinished work across {self.world_size}")
            self.merge_shards()
            write_json_atomic(self.manifest_path, {**stored, "world": manifest["world"]})
        self.samples.cut_torn_tail()  # left by a killed single-process run
        self.log.cut_torn_tail()
        if dedupe:
            self.dedupe()
        for log in dict.fromkeys([self.samples, self.log]):  # one log when not sharded
            log.check_unique()

    def records(self) -> list[dict]:
        """Every record this process can see: the merged samples and its own shard."""
        return self.samples.read() + (self.log.read() if self.log is not self.samples else [])

    def append(self, records: list[dict]) -> None:
        self.log.append(records)

    def merge_shards(self, order: Callable[[dict], object] | None = None) -> None:
        """Fold every shard into samples.jsonl, one record per key (the first seen wins), sorted by `order`
        (else samples.jsonl's records, then each shard's in file order), then delete the shards.

        Only call it when no process writes a shard any more: after the final barrier, or when resharding.
        """
        shards = sorted(self.dir.glob(SHARD_GLOB))
        if not shards:
            return
        merged: dict[tuple, dict] = {}
        for log in [self.samples, *map(RecordLog, shards)]:
            log.cut_torn_tail()
            for record in log.read():
                merged.setdefault(record_key(record), record)
        records = list(merged.values())
        self.samples.replace(sorted(records, key=order) if order else records)
        for shard in shards:  # a kill before this point leaves shards whose records the next merge drops as seen
            shard.unlink()

    def dedupe(self) -> None:
        """Keep the first copy of each sample, reading samples.jsonl and then the shards; rewrite only what changes."""
        seen = set()
        for log in [self.samples, *map(RecordLog, sorted(self.dir.glob(SHARD_GLOB)))]:
            records, kept = log.read(), []
            for record in records:
                if record_key(record) not in seen:
                    seen.add(record_key(record))
                    kept.append(record)
            if len(kept) < len(records):
                log.replace(kept)
                print(f"{log.path}: dropped {len(records) - len(kept)} repeated sample(s)", file=sys.stderr)

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.summary_path, summary)


def _processes(n: int) -> str:
    return "1 process" if n == 1 else f"{n} processes"
