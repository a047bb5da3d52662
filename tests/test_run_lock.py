"""One run per run directory: a second `run` on a live --out is refused, a killed holder leaves no stale lock,
readers (report) see the run in progress without waiting, and a samples.jsonl that holds a sample twice is
refused, or repaired with --dedupe."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main as cli
from harness.errors import HarnessError
from harness.run_lock import RunLock, lock_holder

RUN = ["-m", "harness", "run", "--tasks", "names", "--samplers", "factorized", "--tokens-per-step", "1",
       "--temperature", "1.0", "--quiet", "--no-report"]


def _keys(out: Path) -> list[tuple]:
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return [(r["task"], r["example_id"], r["sampler"], r["remasking"], r["steps"]) for r in records]


def test_the_lock_names_its_holder_and_is_released_on_exit(tmp_path):
    with RunLock(tmp_path / "run"):
        assert lock_holder(tmp_path / "run") == f"pid {os.getpid()} on {socket.gethostname()}"
        with pytest.raises(HarnessError, match=f"run still in progress \\(pid {os.getpid()} on "):
            RunLock(tmp_path / "run").__enter__()
    assert lock_holder(tmp_path / "run") is None
    with RunLock(tmp_path / "run"):  # free again
        pass


def test_a_second_run_on_a_live_out_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path, capsys):
    out = tmp_path / "run"
    args = [sys.executable, *RUN, "--limit", "1000", "--batch-size", "1", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "samples.jsonl").exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    # Paused mid-run, it holds the lock however long the second run takes to start.
    first.send_signal(signal.SIGSTOP)
    assert first.poll() is None, "the first run finished before it could be paused; make it longer"

    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"error: {out} is in use by a run still in progress (pid {first.pid} on {socket.gethostname()}); "
        f"wait for it to finish or choose another --out"]
    # A report reads what is finished without waiting, and says the run goes on.
    assert cli(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert f"{out} is a run still in progress (pid {first.pid} on" in capsys.readouterr().err
    assert "in progress (pid" in (tmp_path / "report" / "index.html").read_text()

    first.send_signal(signal.SIGKILL)
    first.wait()
    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    keys = _keys(out)
    assert len(keys) == len(set(keys)) == 1000
    assert json.loads((out / "summary.json").read_text())["cells"][0]["n"] == 1000
    assert lock_holder(out) is None


def test_a_repeated_sample_is_refused_without_rewriting_and_dedupe_keeps_the_first_copy(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*RUN[2:], "--limit", "16", "--out", str(out)]  # in this process: `run ...`
    assert cli(args) == 0
    samples, summary = out / "samples.jsonl", out / "summary.json"
    original, original_summary = samples.read_bytes(), summary.read_bytes()
    first_line = original.splitlines(keepends=True)[3]  # any one
    with open(samples, "ab") as f:
        f.write(first_line)  # appended by hand
    capsys.readouterr()

    assert cli(args) == 2
    error = capsys.readouterr().err.strip().splitlines()
    repeated = json.loads(first_line)
    assert error == [f"error: {samples}:17 repeats sample names {repeated['example_id']} (factorized, "
                     f"low_confidence, {repeated['steps']} steps); "
                     f"nothing was changed: re-run with --dedupe to keep the first copy of each sample"]
    assert samples.read_bytes() == original + first_line
    assert summary.read_bytes() == original_summary

    assert cli([*args, "--dedupe"]) == 0
    assert samples.read_bytes() == original
    assert json.loads(summary.read_bytes()) == json.loads(original_summary)
