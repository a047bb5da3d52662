"""The report: paired statistics against exact enumeration, tables from hand-made records, the
published-number matching rule on records the runner wrote, the written files, and `run` writing its report."""

import csv
import itertools
import json
import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from harness.backbones.hf import ALIASES
from harness.cli import main as cli
from harness.errors import HarnessError
from harness.protocols import PROTOCOLS
from harness.report.build import build_report
from harness.report.inputs import load_inputs
from harness.report.published import method, published_entries
from harness.report.qualitative import diff_segments
from harness.report.tables import accuracy_rows, group_cells, latency_rows, paired_rows
from harness.stats import mcnemar_exact, paired_bootstrap_interval, wilson_interval
from harness.store import RunStore
from records import make_record


def _binomial_tail(k: int, n: int) -> Fraction:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly."""
    return Fraction(sum(math.comb(n, i) for i in range(k, n + 1)), 2 ** n)


def test_mcnemar_equals_the_exact_binomial_on_discordant_pairs():
    for only_a, only_b in itertools.product(range(0, 13), repeat=2):
        n = only_a + only_b
        if n == 0:
            assert mcnemar_exact(only_a, only_b) == 1.0
            continue
        greater = _binomial_tail(only_a, n)
        less = _binomial_tail(only_b, n)
        assert mcnemar_exact(only_a, only_b, "greater") == pytest.approx(float(greater), rel=1e-9)
        assert mcnemar_exact(only_a, only_b, "less") == pytest.approx(float(less), rel=1e-9)
        assert mcnemar_exact(only_a, only_b) == pytest.approx(min(1.0, float(2 * min(greater, less))), rel=1e-9)
    with pytest.raises(ValueError):
        mcnemar_exact(1, 2, "bigger")


def test_paired_bootstrap_matches_the_enumerated_bootstrap_distribution():
    a = np.array([1, 0, 1, 1, 0, 1])
    b = np.array([0, 0, 1, 0, 1, 0])
    n = len(a)
    # Every resample of the n pairs, equally likely: the exact bootstrap law of mean(a) - mean(b).
    diffs = sorted(Fraction(int(sum(a[list(i)] - b[list(i)])), n) for i in itertools.product(range(n), repeat=n))
    def quantile(q):  # the percentile method's endpoints: where the CDF crosses q
        return float(diffs[math.ceil(q * len(diffs)) - 1])
    cdf = np.searchsorted(np.array(diffs, dtype=float), np.array(diffs, dtype=float), side="right") / len(diffs)
    assert not np.any(np.abs(cdf - 0.025) < 0.004) and not np.any(np.abs(cdf - 0.975) < 0.004)  # no ambiguous atom
    low, high = paired_bootstrap_interval(a, b, resamples=40_000, seed=1)
    assert (low, high) == pytest.approx((quantile(0.025), quantile(0.975)), abs=1e-9)
    # Pairing matters: equal columns have no spread at all.
    assert paired_bootstrap_interval(a, a) == (0.0, 0.0)


def _record(example_id, sampler, steps, correct, completion="x", seconds=0.01, nfe=4, task="sudoku4", **setup):
    return make_record(example_id=example_id, sampler=sampler, steps=steps, correct=correct, completion=completion,
                       extracted=completion, seconds=seconds, nfe=nfe, task=task,
                       details={"cell_accuracy": 1.0 if correct else 0.5}, **setup)


def _write_run(directory, records, config=None):
    store = RunStore(directory)
    store.open({"config": config or {"tasks": sorted({r.cell.task for r in records}), "seed": 0, "split": "test"},
                "command": "test", "environment": {}})
    store.append(records)
    return directory


def _paired_records():
    """10 examples: the baseline right on 0-4, codd right on 2-8 (wins 5, 6, 7, 8; losses 0, 1)."""
    records = []
    for i in range(10):
        eid = f"e{i}"
        records.append(_record(eid, "factorized", 4, i < 5, completion=f"1 2 3 {i}", seconds=0.10, nfe=4))
        records.append(_record(eid, "codd:gamma=0.5", 4, 2 <= i <= 8, completion=f"1 2 9 {i}", seconds=0.12, nfe=4))
    return records


def test_tables_from_hand_made_records():
    cells = group_cells(_paired_records())
    accuracy = accuracy_rows(cells)
    assert [r["sampler"] for r in accuracy] == ["factorized", "codd:gamma=0.5"]
    base, codd = accuracy
    assert (base["n"], base["correct"], codd["correct"]) == (10, 5, 7)
    assert (base["ci_low"], base["ci_high"]) == wilson_interval(5, 10)
    assert base["metrics"] == {"cell_accuracy": pytest.approx(0.75)}
    (paired,) = paired_rows(cells)
    assert (paired["pairs"], paired["only_sampler"], paired["only_baseline"]) == (10, 4, 2)
    assert paired["difference"] == pytest.approx(0.2)
    assert paired["mcnemar_p"] == pytest.approx(mcnemar_exact(4, 2))
    assert paired["ci_low"] < 0.2 < paired["ci_high"]
    latency = {r["sampler"]: r for r in latency_rows(cells)}
    assert latency["factorized"]["overhead_pct"] is None
    assert latency["codd:gamma=0.5"]["overhead_pct"] == pytest.approx(20.0)
    assert latency["codd:gamma=0.5"]["nfe"] == 4


def test_pairs_only_with_the_baseline_of_the_same_setup():
    records = _paired_records()
    # Another remasking rule and another budget have no factorized cell of their own: no pairs.
    records += [_record("e0", "codd", 4, True, remasking="margin"), _record("e0", "codd", 8, True)]
    rows = paired_rows(group_cells(records))
    assert [(r["sampler"], r["remasking"], r["steps"]) for r in rows] == [("codd:gamma=0.5", "low_confidence", 4)]


def test_published_methods_and_protocols_are_ones_a_run_records():
    assert method("codd:gamma=0.5,tau=0.2") == "codd"
    assert method("codd:proposal=latent,tau=0.2") == "codd"
    assert method("codd:tau=0.2,proposal=ao") == "codd:proposal=ao"
    entries = [e for e in published_entries() if e["metric"] != "device_hours"]
    assert len(entries) > 50
    assert {e["protocol"] for e in entries} <= set(PROTOCOLS)
    assert {e["model"] for e in entries} <= set(ALIASES)


@pytest.fixture(scope="module")
def codd_protocol_records(tmp_path_factory, data_dir) -> list[dict]:
    """Records the runner writes for math500 under --protocol codd (embedded model, one problem)."""
    out = tmp_path_factory.mktemp("codd-protocol") / "run"
    assert cli(["run", "--tasks", "math500", "--protocol", "codd", "--steps", "64", "--limit", "1",
                "--samplers", "factorized,codd:tau=0.2,gamma=0.5,codd:proposal=ao", "--remasking", "low_confidence",
                "--data-dir", str(data_dir), "--out", str(out), "--no-report", "--quiet"]) == 0
    return RunStore(out).records()


def test_published_numbers_sit_beside_the_runners_records_of_the_same_setup(codd_protocol_records):
    # The same records as LLaDA-8B's would be: only the model differs (an 8B model cannot run here).
    llada = [replace(r, cell=r.cell._replace(model="llada-8b-instruct")) for r in codd_protocol_records]
    accuracy = {r["sampler"]: r for r in accuracy_rows(group_cells(llada))}
    assert accuracy["codd:gamma=0.5,tau=0.2"]["published"] == pytest.approx(0.158)
    assert accuracy["factorized"]["published"] == pytest.approx(0.126)
    assert accuracy["codd:proposal=ao"]["published"] is None  # Table 3 has CoDD+AO's latency, Table 1 no accuracy
    latency = {r["sampler"]: r for r in latency_rows(group_cells(llada))}
    assert latency["codd:proposal=ao"]["published_seconds"] == pytest.approx(3.63)
    assert all(r["published"] is None for r in accuracy_rows(group_cells(codd_protocol_records)))  # embedded
    native = accuracy_rows(group_cells([replace(r, cell=r.cell._replace(protocol="native")) for r in llada]))
    assert all(r["published"] is None for r in native)  # protocols never mix


def test_diff_segments_mark_only_what_differs():
    base, other = diff_segments("New York is big", "San York is big")
    assert [t for t, d in base if d] == ["New"] and [t for t, d in other if d] == ["San"]
    assert "".join(t for t, _ in base) == "New York is big"


def test_report_is_self_contained_and_writes_tables_and_figures(tmp_path):
    records = _paired_records()
    records[1] = replace(records[1], completion="<script>alert(1)</script>")  # completions are untrusted text
    run = _write_run(tmp_path / "run", records)
    page = build_report([run], tmp_path / "report")
    html = page.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert html.count('<img src="data:image/svg+xml;base64,') >= 2  # accuracy plot and compute plot at least
    with open(tmp_path / "report" / "accuracy.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["sampler"], r["correct"]) for r in rows] == [("factorized", "5"), ("codd:gamma=0.5", "7")]
    assert "| codd:gamma=0.5 |" in (tmp_path / "report" / "paired.md").read_text()
    for stem in ("accuracy-sudoku4",):
        for ext in ("png", "svg"):
            assert (tmp_path / "report" / "figures" / f"{stem}.{ext}").stat().st_size > 1000
    # Qualitative pairs: both directions, the differing spans marked.
    assert html.count('class="pair"') == 4 and "<mark>" in html


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(HarnessError, match="neither a run directory"):
        load_inputs([tmp_path])
    first = _write_run(tmp_path / "a", _paired_records())
    second = _write_run(tmp_path / "b", _paired_records()[:2])
    with pytest.raises(HarnessError, match="report them separately"):
        load_inputs([first, second])
    broken = _write_run(tmp_path / "c", [])
    (broken / "samples.jsonl").write_text('{"task": "sudoku4"}\n')
    with pytest.raises(HarnessError, match="samples.jsonl:1: malformed record \\(record lacks model"):
        load_inputs([broken])
    assert cli(["report", str(tmp_path / "nowhere")]) == 2


def test_run_writes_its_report_unless_told_not_to(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--tasks", "names", "--samplers", "factorized", "--tokens-per-step", "1,2", "--limit", "24", "--quiet"]
    assert cli(args + ["--out", "results/with"]) == 0
    page = tmp_path / "reports" / "with" / "index.html"
    assert page.is_file()
    summary = json.loads((tmp_path / "results" / "with" / "summary.json").read_text())
    accuracy = {(c["steps"]): c["accuracy"] for c in summary["cells"]}
    for steps, value in accuracy.items():
        assert f"{100 * value:.1f}" in page.read_text()
    assert cli(args + ["--out", "results/without", "--no-report"]) == 0
    assert not (tmp_path / "reports" / "without").exists()
