"""`harness check` on the embedded `names` model: an unchanged tree passes, a deliberately
degraded sampler fails with a readable diff, a sampled configuration survives another seed."""

import json

import pytest

from baselines.factorized import Factorized
from harness.check import compare, completion_hash, expected_cells
from harness.cli import main as cli
from harness.engine.sampler import SAMPLERS
from records import make_record

RUN = ["run", "--tasks", "names", "--samplers", "factorized", "--tokens-per-step", "1,2", "--no-report", "--quiet"]


class SwapsTheWords(Factorized):
    """The factorized sampler with a bug: it writes its second token over its first."""

    def generate(self, backbone, prompt_ids, attention_mask, config, generators):
        generation = super().generate(backbone, prompt_ids, attention_mask, config, generators)
        generation.tokens[:, 0] = generation.tokens[:, 1]
        return generation


@pytest.fixture
def degraded(monkeypatch):
    """Registers the buggy sampler under the name `factorized` for the rest of the test."""
    return lambda: monkeypatch.setitem(SAMPLERS._items, "factorized", SwapsTheWords)


def _pin(tmp_path, extra):
    run_dir, baseline = tmp_path / "run", tmp_path / "baseline.json"
    assert cli(RUN + extra + ["--out", str(run_dir)]) == 0
    assert cli(["check", "--baseline", str(baseline), "--update", "--run", str(run_dir)]) == 0
    return baseline


def test_greedy_configuration_reproduces_exactly_and_catches_a_degraded_sampler(tmp_path, capsys, degraded):
    baseline = _pin(tmp_path, ["--limit", "32", "--temperature", "0"])
    doc = json.loads(baseline.read_text())
    assert [c["exact"] for c in doc["cells"]] == [True, True]
    assert doc["options"]["temperature"] == 0 and doc["options"]["limit"] == 32
    capsys.readouterr()

    assert cli(["check", "--baseline", str(baseline)]) == 0
    assert "ok: 2 cells" in capsys.readouterr().out

    degraded()
    assert cli(["check", "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert out.count("REGRESSION") == 2 and "completions changed" in out and "2 regression(s)" in out


def test_sampled_configuration_passes_another_seed_and_fails_a_real_drop(tmp_path, capsys, degraded):
    baseline = _pin(tmp_path, ["--limit", "300"])  # names decodes at temperature 1
    assert [c["exact"] for c in json.loads(baseline.read_text())["cells"]] == [False, False]
    capsys.readouterr()

    assert cli(["check", "--baseline", str(baseline), "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "statistical" in out and "REGRESSION" not in out

    degraded()
    assert cli(["check", "--baseline", str(baseline), "--seed", "7"]) == 1
    assert "significant drop" in capsys.readouterr().out


def test_compare_rules_on_hand_made_records():
    def records(verdicts, text="a"):
        return [make_record(task="t", sampler="s", steps=1, temperature=temperature, example_id=f"e{i:02d}",
                            completion=f"{text}{i}", correct=c) for i, c in enumerate(verdicts)]

    temperature = 0.0
    base = {"options": {"seed": 0}, "alpha": 0.05, "tolerance": 0.3, "cells": expected_cells(records([True] * 10))}
    (same,) = compare(base, records([True] * 10), seed=0)
    assert not same.regression and same.changed == 0
    (reworded,) = compare(base, records([True] * 10, text="b"), seed=0)  # same verdicts, other text
    assert reworded.regression and reworded.changed == 10
    (other_seed,) = compare(base, records([True] * 10, text="b"), seed=1)  # then only accuracy counts
    assert not other_seed.regression and not other_seed.exact
    assert base["cells"][0]["samples"]["e03"] == f"{completion_hash('a3')} 1"

    temperature = 1.0
    base["cells"] = expected_cells(records([True] * 10))
    (small_drop,) = compare(base, records([False] * 2 + [True] * 8), seed=0)   # p = 0.25, drop 0.2
    assert not small_drop.regression and small_drop.p_value == pytest.approx(0.25)
    (big_drop,) = compare(base, records([False] * 4 + [True] * 6), seed=0, alpha=0.01)  # p = 0.0625, drop 0.4
    assert big_drop.regression and "tolerance" in big_drop.reason and "significant" not in big_drop.reason
    (missing,) = compare(base, [], seed=0)
    assert missing.regression and missing.reason == "cell missing from the run"


def test_bad_input_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert cli(["check", "--baseline", str(bad)]) == 2
    assert cli(["check", "--baseline", str(tmp_path / "absent.json")]) == 2
    bad.write_text(json.dumps({"format": "codd-bench check baseline v1", "options": {"tasks": ["names"], "colour": 1},
                               "cells": [], "alpha": 0.01, "tolerance": 0.2}))
    assert cli(["check", "--baseline", str(bad)]) == 2
    assert "unknown run option(s) colour" in capsys.readouterr().err
    baseline = _pin(tmp_path, ["--limit", "8", "--temperature", "0"])
    other = tmp_path / "other"
    assert cli(RUN + ["--limit", "9", "--temperature", "0", "--out", str(other)]) == 0
    capsys.readouterr()
    assert cli(["check", "--baseline", str(baseline), "--run", str(other)]) == 2
    assert "limit differ" in capsys.readouterr().err
