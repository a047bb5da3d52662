import json

import pytest

from harness.errors import HarnessError
from harness.store import RunStore
from records import make_record


def _record(i):
    return make_record(example_id=f"e{i}")


def test_append_and_reopen_cuts_a_torn_last_line(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open({"config": {"a": 1}})
    store.append([_record(0), _record(1)])
    with open(store.samples_path, "a") as f:
        f.write('{"task": "t", "exam')  # a kill in the middle of a write
    reopened = RunStore(tmp_path / "run")
    reopened.open({"config": {"a": 1}})
    assert [r.example_id for r in reopened.records()] == ["e0", "e1"]
    assert store.samples_path.read_text().endswith("\n")


def test_reopen_with_another_config_is_refused(tmp_path):
    RunStore(tmp_path / "run").open({"config": {"a": 1, "b": 2}})
    with pytest.raises(HarnessError, match="b differ"):
        RunStore(tmp_path / "run").open({"config": {"a": 1, "b": 3}})


def test_summary_is_written_atomically(tmp_path):
    store = RunStore(tmp_path / "run")
    store.open({"config": {}})
    store.write_summary({"cells": []})
    assert json.loads(store.summary_path.read_text()) == {"cells": []}
    assert not list(store.dir.glob("*.tmp"))


def test_a_records_key_is_its_cell_and_example():
    a = _record(0)
    assert a.key() == (*a.cell, "e0") == a.cell.key_of("e0")
    for change in ({"steps": 8}, {"sampler": "codd"}, {"model": "llada-8b-instruct"}, {"example_id": "e1"}):
        assert make_record(**{**a.to_json(), **change}).key() != a.key()
    assert make_record(seconds=9.0).key() == a.key()  # a measurement, not an identity
