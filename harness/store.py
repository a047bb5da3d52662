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
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import NamedTuple

from harness.errors import HarnessError
from tasks.answer_rule import FLEXIBLE

SHARD_GLOB = "samples.rank*-of-*.jsonl"


class Cell(NamedTuple):
    """Everything that defines a result but the example: samples of one cell are results of one
    experiment, whichever run made them (a run's summary, a check baseline and a report pool by it)."""

    model: str
    protocol: str
    task: str
    mode: str
    gen_length: int
    block_length: int
    temperature: float
    sampler: str
    remasking: str
    steps: int

    def key_of(self, example_id: str) -> tuple:
        """The key of this cell's sample of `example_id`."""
        return (*self, example_id)


@dataclass(frozen=True)
class Record:
    """One generated sample: its cell and what decoding the cell's example gave. samples.jsonl holds
    one per line, as a flat JSON object (the cell's fields beside the others)."""

    cell: Cell
    example_id: str
    seed: int
    row_seed: int       # the example's own random stream (harness.runner.row_seed)
    completion: str
    extracted: str | None
    correct: bool
    details: dict       # the task's per-sample metrics (e.g. sudoku cell accuracy)
    reference: str
    nfe: int            # backbone forward passes
    seconds: float      # the batch's decoding time divided by its size
    # Recorded since these settings exist; a record written before them has their defaults.
    top_p: float | None = None
    top_k: int | None = None
    reference_precision: bool = False
    answer_rule: str = FLEXIBLE
    cache: str = "none"

    def key(self) -> tuple:
        """What makes a sample unique: its cell and example."""
        return self.cell.key_of(self.example_id)

    @classmethod
    def from_json(cls, data: dict) -> Record:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        names = [*Cell._fields, *(f.name for f in fields(cls)[1:])]
        required = [*Cell._fields, *(f.name for f in fields(cls)[1:] if f.default is MISSING)]
        missing, unknown = [n for n in required if n not in data], sorted(set(data) - set(names))
        if missing or unknown:
            raise ValueError("; ".join(([f"record lacks {', '.join(missing)}"] if missing else [])
                                       + ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])))
        cell = Cell(**{n: data[n] for n in Cell._fields})
        return cls(cell, **{n: data[n] for n in names[len(Cell._fields):] if n in data})

    def to_json(self) -> dict:
        return {**self.cell._asdict(), **{f.name: getattr(self, f.name) for f in fields(self)[1:]}}


def group_by_cell(records: Iterable[Record]) -> dict[Cell, list[Record]]:
    """Records by cell, in order of first appearance, each cell's records by example id."""
    cells: dict[Cell, list[Record]] = {}
    for record in records:
        cells.setdefault(record.cell, []).append(record)
    return {cell: sorted(group, key=lambda r: r.example_id) for cell, group in cells.items()}


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

    def read(self, writing: bool = False) -> list[Record]:
        """Every record. A line that does not parse is a malformed record, unless `writing` (a run still
        appends to the log) and it is the unfinished last one: a write in progress, not a record yet."""
        if not self.path.exists():
            return []
        records = []
        for lineno, line in enumerate(self.path.read_bytes().splitlines(keepends=True), 1):
            if writing and not line.endswith(b"\n"):
                break
            try:
                records.append(Record.from_json(json.loads(line.decode("utf-8"))))
            except (UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError) as err:
                raise HarnessError(f"{self.path}:{lineno}: malformed record ({err})") from None
        return records

    def check_unique(self) -> None:
        """Refuse a log that holds a sample twice: its counts and intervals would be wrong."""
        seen = set()
        for lineno, record in enumerate(self.read(), 1):
            if record.key() in seen:
                cell = record.cell
                raise HarnessError(f"{self.path}:{lineno} repeats sample {cell.task} {record.example_id} "
                                   f"({cell.sampler}, {cell.remasking}, {cell.steps} steps); nothing was changed: "
                                   f"re-run with --dedupe to keep the first copy of each sample")
            seen.add(record.key())

    def append(self, records: list[Record]) -> None:
        """Append a batch durably: one write, flush, fsync. A full disk leaves at most a torn last line."""
        try:
            with open(self.path, "a") as f:
                f.write(_lines(records))
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            err.filename = err.filename or str(self.path)  # a failed write() names no file
            raise

    def replace(self, records: list[Record]) -> None:
        """Swap in a whole new content durably: a crash leaves either the old file or the new one."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(_lines(records))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)


def _lines(records: list[Record]) -> str:
    return "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in records)


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
            stored = json.loads(self.manifest_path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise HarnessError(f"{self.manifest_path} is not valid JSON ({err}); use another --out") from None
        if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
            raise HarnessError(f"{self.manifest_path} is not a run manifest (no config); use another --out")
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

    def records(self, writing: bool = False) -> list[Record]:
        """Every record this process can see: the merged samples and its own shard (see RecordLog.read)."""
        return self.samples.read(writing) + (self.log.read(writing) if self.log is not self.samples else [])

    def append(self, records: list[Record]) -> None:
        self.log.append(records)

    def merge_shards(self, order: Callable[[Record], object] | None = None) -> None:
        """Fold every shard into samples.jsonl, one record per key (the first seen wins), sorted by `order`
        (else samples.jsonl's records, then each shard's in file order), then delete the shards.

        Only call it when no process writes a shard any more: after the final barrier, or when resharding.
        """
        shards = sorted(self.dir.glob(SHARD_GLOB))
        if not shards:
            return
        merged: dict[tuple, Record] = {}
        for log in [self.samples, *map(RecordLog, shards)]:
            log.cut_torn_tail()
            for record in log.read():
                merged.setdefault(record.key(), record)
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
                if record.key() not in seen:
                    seen.add(record.key())
                    kept.append(record)
            if len(kept) < len(records):
                log.replace(kept)
                print(f"{log.path}: dropped {len(records) - len(kept)} repeated sample(s)", file=sys.stderr)

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.summary_path, summary)


def _processes(n: int) -> str:
    return "1 process" if n == 1 else f"{n} processes"
