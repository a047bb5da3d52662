"""A run interrupted (SIGKILL at any moment, Ctrl-C, a full disk) and re-run with the same --out ends
as if never interrupted: nothing lost, nothing duplicated, the same records."""

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ARGS = ["-m", "harness", "run", "--tasks", "sudoku4-open,names", "--samplers", "factorized",
        "--tokens-per-step", "1,2", "--limit", "48", "--batch-size", "8", "--temperature", "1.0", "--quiet"]


def _launch(out: Path, args: list[str] = ARGS, preexec_fn=None) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, *args, "--out", str(out)], env=env, preexec_fn=preexec_fn,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _records(out: Path) -> dict:
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    keyed = {(r["task"], r["example_id"], r["sampler"], r["remasking"], r["steps"]):
             {k: v for k, v in r.items() if k != "seconds"} for r in records}
    assert len(keyed) == len(records), "duplicate records"
    return keyed


def _summary(out: Path) -> list:
    cells = json.loads((out / "summary.json").read_text())["cells"]
    # Wall-clock time is a measurement of the machine, not a result: everything else must match.
    return [{k: v for k, v in c.items() if k != "mean_seconds"} for c in cells]


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert _launch(full).wait(timeout=600) == 0

    proc = _launch(killed)
    deadline = time.time() + 300
    while _lines(killed / "samples.jsonl") < 40 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = _lines(killed / "samples.jsonl")
    assert 0 < interrupted_at < len(_records(full))
    assert not (killed / "summary.json").exists()

    assert _launch(killed).wait(timeout=600) == 0
    assert _records(killed) == _records(full)
    assert _summary(killed) == _summary(full)


def _names_run(limit: int) -> list[str]:
    """A run of the tiny names model: about 50 records a second on one thread, so the tests that signal it
    mid-way size it to outlast a poller descheduled on a busy machine."""
    return ["-m", "harness", "run", "--tasks", "names", "--samplers", "factorized", "--tokens-per-step", "1,2",
            "--limit", str(limit), "--batch-size", "4", "--temperature", "1.0", "--quiet", "--no-report"]


SMALL = _names_run(40)


def test_sigkill_at_random_moments_over_relaunches_loses_and_duplicates_nothing(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    # 400 records: with 80, a poller descheduled for a few hundred milliseconds saw the run finish first.
    many = _names_run(200)
    assert _launch(full, many).wait(timeout=600) == 0
    total = len(_records(full))
    rng = random.Random(14)
    kills = 0
    for attempt in range(8):
        before = _lines(killed / "samples.jsonl")
        if before >= total:
            break
        proc = _launch(killed, many)
        # The first kill lands during start-up (before any record); the others after a random number
        # of new records and a random few milliseconds more: mid-batch, mid-write or between writes.
        target = before + (0 if attempt == 0 else rng.randint(1, max(1, (total - before) // 3)))
        deadline = time.time() + 300
        while _lines(killed / "samples.jsonl") < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02) if attempt else rng.uniform(0, 2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 4, "the run finished before it was killed often enough; make it longer"
    assert _launch(killed, many).wait(timeout=600) == 0
    lines = (killed / "samples.jsonl").read_text().splitlines()
    assert len(lines) == total, "records lost or duplicated"
    assert _records(killed) == _records(full)
    assert _summary(killed) == _summary(full)


def _terminal_job() -> None:
    """Run the child as a terminal's foreground job: its own process group, SIGINT at its default. A test
    session launched in the background of a non-interactive shell inherits SIGINT ignored, and a Python
    started with SIGINT ignored never raises KeyboardInterrupt: Ctrl-C could not reach the run at all."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_is_one_line_and_resumable(tmp_path):
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    # Long enough that a poller descheduled on a busy machine still signals a run mid-way, not one
    # already exiting (a SIGINT in atexit handlers leaves exit code 0).
    longer = _names_run(1000)
    assert _launch(full, longer).wait(timeout=600) == 0
    proc = _launch(stopped, longer, preexec_fn=_terminal_job)
    deadline = time.time() + 300
    while _lines(stopped / "samples.jsonl") < 8 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the run finished before Ctrl-C; make it longer"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to the whole foreground group
    err = proc.stderr.read().decode()
    assert proc.wait() == 130
    assert err.strip().splitlines() == ["interrupted; re-run the same command to resume"], err
    assert not (stopped / "summary.json").exists()
    assert _launch(stopped, longer).wait(timeout=600) == 0
    assert _records(stopped) == _records(full)


def test_a_full_disk_is_one_line_and_resumable(tmp_path):
    """A file-size limit (RLIMIT_FSIZE: writes past it fail with EFBIG, as on a full disk) that the
    manifest fits under and the samples outgrow; with room again, the same command finishes the run."""
    full, cramped = tmp_path / "full", tmp_path / "cramped"
    assert _launch(full, SMALL).wait(timeout=600) == 0
    limit = (full / "manifest.json").stat().st_size + 4000
    proc = _launch(cramped, SMALL, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    err = proc.stderr.read().decode()
    assert proc.wait() == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "samples.jsonl: File too large" in err
    assert json.loads((cramped / "manifest.json").read_text())["config"]["limit"] == 40
    assert not (cramped / "summary.json").exists()
    assert _launch(cramped, SMALL).wait(timeout=600) == 0
    assert _records(cramped) == _records(full)
