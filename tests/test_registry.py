"""One registry helper for every kind of named thing: names are taken once, unknown names list the valid
ones, and a task and a sampler from outside the core plug into `run` without touching it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.registry import Registry


def test_a_name_is_taken_once_and_an_unknown_one_lists_the_valid_ones():
    things = Registry("thing")
    things.add("b", 2)
    things.add("a", 1)
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        things.add("a", 3)
    assert things.get("a") == 1 and things.names() == ["b", "a"] and Registry("x", sort=True).names() == []
    with pytest.raises(HarnessError, match="unknown thing 'c'; valid things: b, a"):
        things.get("c")


def test_a_plugged_in_task_and_sampler_run_through_run(tmp_path):
    out = tmp_path / "run"
    # A fresh process imports the plug-in module, as its package would be imported; this one stays clean.
    code = ("import sys, plugin_example; from harness.cli import main; "
            f"sys.exit(main(['run', '--tasks', 'test-cities', '--samplers', 'test-greedy,factorized', "
            f"'--tokens-per-step', '1', '--limit', '3', '--out', {str(out)!r}, '--no-report', '--quiet']))")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parent))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted({(r["task"], r["sampler"]) for r in records}) == [("test-cities", "factorized"),
                                                                    ("test-cities", "test-greedy")]
    greedy = [r for r in records if r["sampler"] == "test-greedy"]
    assert len(greedy) == 3 and len({r["completion"] for r in greedy}) == 1  # one prompt, decoded greedily
    assert all(r["correct"] for r in greedy)  # the names model's most likely city is a city
