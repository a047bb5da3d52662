"""Data-parallel runs: world detection, sharding, shard files and their merge, and real torchrun launches
(gloo on CPU) that must end exactly as one process does, killed rank or not."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.distributed import World, detect_world, shard_of
from harness.errors import HarnessError
from harness.store import Record, RunStore, shard_name
from records import make_record

# `torchrun` is this module's console script; --standalone picks a free port, so parallel test runs do not clash.
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
# names at temperature 1: every sample is a seeded draw, so matching one process is a strong check.
BATCH_SIZE = 4
RUN = ["-m", "harness", "run", "--tasks", "names", "--samplers", "factorized", "--tokens-per-step", "1,2",
       "--limit", "300", "--batch-size", str(BATCH_SIZE), "--temperature", "1.0", "--quiet", "--no-report"]
TOTAL = 2 * 300
LAUNCHER_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


# --- who runs what ---------------------------------------------------------------------------------------------

def test_without_launcher_variables_a_run_is_one_process():
    assert detect_world({}) == World()
    assert not World().sharded and World().is_main
    torchrun_one = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                    "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert detect_world(torchrun_one) == World()


def test_torchrun_variables_place_the_process():
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}
    world = detect_world(env)
    assert world == World(rank=3, size=4, local_rank=1, local_size=2)
    assert world.sharded and not world.is_main


@pytest.mark.parametrize("change, message", [
    ({"RANK": None}, "RANK is not"),
    ({"MASTER_PORT": None}, "MASTER_PORT not"),
    ({"RANK": "two"}, "malformed"),
    ({"RANK": "4"}, "inconsistent"),
    ({"LOCAL_RANK": "2"}, "inconsistent"),
])
def test_a_malformed_launch_environment_is_a_clear_error(change, message):
    env = {"WORLD_SIZE": "4", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "node0", "MASTER_PORT": "29500"} | change
    with pytest.raises(HarnessError, match=message):
        detect_world({name: value for name, value in env.items() if value is not None})


def test_shard_of_is_sha256_of_the_key_not_pythons_salted_hash():
    key = ("names", "factorized", "low_confidence", 2, 7)
    digest = hashlib.sha256(b"names\x00factorized\x00low_confidence\x002\x007").digest()
    for size in (2, 3, 8):
        assert shard_of(key, size) == int.from_bytes(digest[:8], "little") % size


def test_every_item_has_exactly_one_owner_and_ranks_get_similar_shares():
    keys = [("names", "factorized", "low_confidence", steps, index) for steps in (1, 2, 4) for index in range(400)]
    for size in (1, 2, 3, 5):
        owners = [[rank for rank in range(size) if World(rank, size).owns(key)] for key in keys]
        assert all(len(o) == 1 for o in owners)
        shares = Counter(o[0] for o in owners)
        assert sorted(shares) == list(range(size))
        assert max(shares.values()) < 1.2 * len(keys) / size


# --- shard files ---------------------------------------------------------------------------------------------------

def _record(i, **fields):
    return make_record(task="names", example_id=f"names-{i}", steps=2, correct=i % 2 == 0, **fields)


def _manifest(size):
    return {"config": {"tasks": ["names"]}, "world": {"size": size, "ranks": [{"rank": r} for r in range(size)]}}


def test_a_rank_appends_to_its_own_shard_and_cuts_its_torn_tail(tmp_path):
    store = RunStore(tmp_path, rank=1, world_size=2)
    store.open(_manifest(2))
    store.append([_record(0), _record(1)])
    shard = tmp_path / shard_name(1, 2)
    assert shard.name == "samples.rank1-of-2.jsonl"
    assert not store.samples_path.exists()
    with open(shard, "a") as f:
        f.write('{"task": "names", "exa')  # killed mid-write
    reopened = RunStore(tmp_path, rank=1, world_size=2)
    reopened.open(_manifest(2))
    assert [r.example_id for r in reopened.records()] == ["names-0", "names-1"]
    assert RunStore(tmp_path, rank=0, world_size=2).records() == []  # another rank's shard is not its business


def test_merge_keeps_one_record_per_key_in_the_given_order_and_removes_the_shards(tmp_path):
    RunStore(tmp_path, 0, 2).open(_manifest(2))
    RunStore(tmp_path, 0, 2).append([_record(3), _record(0)])
    RunStore(tmp_path, 1, 2).append([_record(2), _record(0, seconds=9.0), _record(1)])  # names-0 twice
    store = RunStore(tmp_path, 0, 2)
    store.merge_shards(order=lambda r: int(r.example_id.split("-")[1]))
    assert [r.example_id for r in store.samples.read()] == ["names-0", "names-1", "names-2", "names-3"]
    assert store.samples.read()[0].seconds != 9.0  # the first one seen is kept: rank 0's shard comes first
    assert not list(tmp_path.glob("samples.rank*"))
    assert not list(tmp_path.glob("*.tmp"))


def test_another_world_size_is_refused_unless_resharding_which_keeps_every_finished_record(tmp_path):
    RunStore(tmp_path, 0, 2).open(_manifest(2))
    RunStore(tmp_path, 0, 2).append([_record(0), _record(1)])
    with open(tmp_path / shard_name(1, 2), "a") as f:
        f.write(json.dumps(_record(2).to_json()) + '\n{"task": "na')  # rank 1 killed mid-write
    with pytest.raises(HarnessError, match="was run by 2 processes, this launch has 1 process.*--reshard"):
        RunStore(tmp_path).open(_manifest(1))
    with pytest.raises(HarnessError, match="was run by 2 processes, this launch has 3 processes"):
        RunStore(tmp_path, 0, 3).open(_manifest(3))

    resharded = RunStore(tmp_path, 0, 3)
    resharded.open(_manifest(3), reshard=True)
    assert sorted(r.example_id for r in resharded.records()) == ["names-0", "names-1", "names-2"]
    assert not list(tmp_path.glob(f"samples.rank*-of-2.jsonl"))
    assert json.loads((tmp_path / "manifest.json").read_text())["world"]["size"] == 3
    RunStore(tmp_path, 2, 3).open(_manifest(3))  # the other ranks of the new launch now find their world


def test_a_single_process_run_has_no_shards_and_can_be_taken_over_by_torchrun(tmp_path):
    single = RunStore(tmp_path)
    single.open(_manifest(1))
    single.append([_record(0)])
    assert single.log is single.samples and [p.name for p in tmp_path.glob("samples*")] == ["samples.jsonl"]
    with open(single.samples_path, "a") as f:
        f.write('{"task"')  # the single process was killed mid-write
    with pytest.raises(HarnessError, match="was run by 1 process, this launch has 2"):
        RunStore(tmp_path, 0, 2).open(_manifest(2))
    rank0 = RunStore(tmp_path, 0, 2)
    rank0.open(_manifest(2), reshard=True)
    assert [r.example_id for r in rank0.records()] == ["names-0"]


# --- real launches ---------------------------------------------------------------------------------------------

def _environment() -> dict:
    """The test's environment without any launcher variables of an enclosing job (a CI runner under Slurm)."""
    return {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS} | {"OMP_NUM_THREADS": "1"}


def _launch(out: Path, launcher: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*launcher, *RUN, "--out", str(out)], env=_environment(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> str:
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    return stderr


def _decoded(stderr: str) -> dict[int, int]:
    """Samples each rank says it decoded ("rank R/W: N samples in B batches to decode")."""
    return {int(rank): int(n) for rank, n in re.findall(r"rank (\d+)/2: (\d+) samples in \d+ batches", stderr)}


def _records(out: Path) -> dict:
    records = [Record.from_json(json.loads(line)) for line in (out / "samples.jsonl").read_text().splitlines()]
    keyed = {r.key(): {k: v for k, v in r.to_json().items() if k != "seconds"} for r in records}
    assert len(keyed) == len(records), "duplicate records"
    return keyed


def _summary(out: Path) -> dict:
    """summary.json without wall-clock time (a measurement of the machine, not a result)."""
    summary = json.loads((out / "summary.json").read_text())
    for cell in summary["cells"]:
        del cell["mean_seconds"]
    return summary


def _expected_summary(out: Path) -> dict:
    """`out`'s summary, its task metrics up to float rounding: the names task sums its TV distance in set
    order, which Python's per-process hash seed changes."""
    summary = _summary(out)
    for cell in summary["cells"]:
        cell["metrics"] = {k: pytest.approx(v, rel=1e-12, abs=1e-15) for k, v in cell["metrics"].items()}
    return summary


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    _finish(_launch(out, [sys.executable]))
    return out


def test_two_ranks_under_torchrun_match_one_process_and_decode_every_sample_once(one_process, tmp_path):
    out = tmp_path / "run"
    decoded = _decoded(_finish(_launch(out, TORCHRUN)))
    assert set(decoded) == {0, 1} and all(decoded.values()) and sum(decoded.values()) == TOTAL
    assert _records(out) == _records(one_process)
    assert (out / "samples.jsonl").read_text().count("\n") == TOTAL
    assert [json.loads(line)["example_id"] for line in (out / "samples.jsonl").read_text().splitlines()] == \
        [json.loads(line)["example_id"] for line in (one_process / "samples.jsonl").read_text().splitlines()]
    assert _summary(out) == _expected_summary(one_process)
    assert not list(out.glob("samples.rank*"))
    world = json.loads((out / "manifest.json").read_text())["world"]
    assert world["size"] == 2
    assert [(r["rank"], r["device"], r["threads"]) for r in world["ranks"]] == [(0, "cpu", 1), (1, "cpu", 1)]


def _worker_pid(out: Path, rank: int) -> int | None:
    """The pid of the torchrun worker of rank `rank` writing to `out`, found through /proc."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(out).encode() in cmdline and f"RANK={rank}".encode() in environ:  # torchrun itself has no RANK
            return int(proc.name)
    return None


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_rank_killed_mid_run_is_resumed_by_relaunching_with_no_sample_lost_or_repeated(one_process, tmp_path):
    out = tmp_path / "run"
    shard = out / shard_name(1, 2)
    launch = _launch(out, TORCHRUN)
    deadline = time.time() + 300
    victim = None
    while victim is None and launch.poll() is None and time.time() < deadline:  # found early, killed at once
        victim = _worker_pid(out, rank=1)
        time.sleep(0.05)
    while _lines(shard) < 8 and launch.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert victim is not None and launch.poll() is None, "the run finished before it could be killed"
    os.kill(victim, signal.SIGKILL)
    launch.communicate(timeout=120)
    assert launch.returncode != 0  # torchrun stopped rank 0 too
    assert not (out / "summary.json").exists()
    finished = sum(_lines(p) for p in out.glob("samples.rank*"))  # whole lines: a torn tail does not count
    assert 0 < finished < TOTAL

    decoded = _decoded(_finish(_launch(out, TORCHRUN)))
    # Every unfinished sample is decoded, and nothing else but the rest of at most one torn batch per rank.
    assert TOTAL - finished <= sum(decoded.values()) <= TOTAL - finished + 2 * (BATCH_SIZE - 1)
    assert _records(out) == _records(one_process)
    assert _summary(out) == _expected_summary(one_process)


def test_a_torchrun_launch_on_a_run_directory_in_use_fails_whole_and_writes_nothing(tmp_path):
    from harness.run_lock import RunLock
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):  # another run holds the directory
        launch = _launch(out, TORCHRUN)
        _, stderr = launch.communicate(timeout=600)
    assert launch.returncode != 0  # the launch fails as a whole; no rank is left waiting at a barrier
    assert f"{out} is in use by a run still in progress (pid {os.getpid()} on" in stderr
    assert not list(out.glob("samples*")) and not (out / "manifest.json").exists()
