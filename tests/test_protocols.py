"""Protocols: d1's test items, prompts and scoring; the CoDD setup's lengths; the protocol in every record."""

from __future__ import annotations

import csv
import json

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.protocols import D1_MATH, get_protocol
from harness.runner import RunOptions, plan
from tasks import get_task
from tasks.sudoku_grid import count_completions


@pytest.fixture
def d1_puzzles(data_dir) -> dict[str, str]:
    with (data_dir / "d1" / "sudoku4_test.csv").open() as rows:
        return {r["Puzzle"]: r["Solution"] for r in csv.DictReader(rows)}


def test_d1_sudoku_items_are_256_distinct_puzzles_of_d1s_file(data_dir, d1_puzzles):
    examples = get_protocol("d1").examples(get_task("sudoku4"), "test", None, str(data_dir))
    assert len(examples) == 256 == len({ex.meta["puzzle"] for ex in examples})
    assert all(d1_puzzles[ex.meta["puzzle"]] == ex.reference for ex in examples)
    again = get_protocol("d1").examples(get_task("sudoku4"), "test", 3, str(data_dir))
    assert [ex.id for ex in again] == [ex.id for ex in examples[:3]]


def test_d1_sudoku_scores_cells_against_the_listed_solution(data_dir):
    """A valid completion other than the listed one counts as wrong, as in d1's tables."""
    protocol, task = get_protocol("d1"), get_task("sudoku4")
    examples = protocol.examples(task, "test", None, str(data_dir))
    several = next(ex for ex in examples if count_completions(ex.meta["puzzle"]) > 1)
    listed = several.reference
    score = protocol.score(task, f"<reasoning>easy</reasoning>\n<answer>\n{listed}\n</answer>", several)
    assert score.correct and score.details["cell_accuracy"] == 1.0
    blanks = [i for i, d in enumerate(several.meta["puzzle"]) if d == "0"]
    wrong_cell = blanks[0]
    altered = listed[:wrong_cell] + ("1" if listed[wrong_cell] != "1" else "2") + listed[wrong_cell + 1:]
    score = protocol.score(task, f"<answer>{altered}</answer>", several)
    assert not score.correct and score.details["cell_accuracy"] == pytest.approx(1 - 1 / len(blanks))


def test_d1_countdown_items_prompt_and_boxed_answer(data_dir):
    protocol, task = get_protocol("d1"), get_task("countdown")
    examples = protocol.examples(task, "test", None, str(data_dir))
    first = json.loads((data_dir / "d1" / "countdown_cd3_test.jsonl").read_text().splitlines()[0])
    assert len(examples) == 256
    assert examples[0].meta == {"numbers": [int(n) for n in first["input"].split(",")], "target": int(first["output"])}
    numbers, target = examples[0].meta["numbers"], examples[0].meta["target"]
    messages = protocol.prompt(task, examples[0])
    assert [m["role"] for m in messages] == ["user"]
    assert messages[0]["content"].endswith(f"Numbers: {numbers}\nTarget: {target}")
    right = f"{numbers[0]}+{numbers[2]}-{numbers[1]}"  # 30+93-100 = 23
    assert protocol.score(task, f"<answer>\\boxed{{{right}}}</answer>", examples[0]).correct
    assert not protocol.score(task, f"<answer>\\boxed{{{numbers[0]}+{numbers[1]}}}</answer>", examples[0]).correct


def test_d1_math_prompt_in_the_user_turn(data_dir):
    ex = get_task("gsm8k").load(limit=1, data_dir=data_dir)[0]
    assert get_protocol("d1").prompt(get_task("gsm8k"), ex) == [
        {"role": "user", "content": D1_MATH + "\n\n" + ex.question}]
    assert get_protocol("native").prompt(get_task("gsm8k"), ex)[0]["role"] == "system"


def test_codd_protocol_lengths_and_tasks(data_dir):
    cells = plan(RunOptions(tasks=("gsm8k",), steps=(64,), limit=1, protocol="codd", data_dir=str(data_dir)))
    assert (cells[0].config.gen_length, cells[0].config.block_length, cells[0].config.steps) == (512, 32, 64)
    with pytest.raises(HarnessError, match="protocol codd does not define task sudoku4"):
        plan(RunOptions(tasks=("sudoku4",), protocol="codd"))


def test_d1_lengths_are_d1s_for_every_task(data_dir):
    """d1's eval.py: gen length 128 unless given, blocks of 32, steps = gen length / 2, the same for
    sudoku and countdown as for the math tasks (whose native blocks are 16 and 32)."""
    for gen_length, steps in ((None, 64), (256, 128), (512, 256)):
        cells = plan(RunOptions(tasks=("sudoku4", "countdown", "gsm8k"), gen_length=gen_length, limit=1,
                                protocol="d1", data_dir=str(data_dir)))
        assert {(c.config.gen_length, c.config.block_length, c.config.steps) for c in cells} == \
            {(gen_length or 128, 32, steps)}


def test_d1_budget_is_half_the_gen_length(data_dir):
    cells = plan(RunOptions(tasks=("gsm8k",), gen_length=128, limit=1, protocol="d1", data_dir=str(data_dir)))
    assert [c.config.steps for c in cells] == [64]
    with pytest.raises(HarnessError, match="fixes the budget"):
        plan(RunOptions(tasks=("gsm8k",), steps=(64,), protocol="d1", data_dir=str(data_dir)))


def test_every_record_and_the_manifest_name_the_protocol(data_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--tasks", "sudoku4", "--protocol", "d1", "--limit", "2", "--samplers", "factorized",
                 "--data-dir", str(data_dir), "--out", str(out), "--quiet", "--no-report"]) == 0
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 and {r["protocol"] for r in records} == {"d1"}
    assert all(r["example_id"].startswith("d1-sudoku4-") for r in records)
    assert json.loads((out / "manifest.json").read_text())["protocol"] == "d1"
    assert json.loads((out / "summary.json").read_text())["protocol"] == "d1"
