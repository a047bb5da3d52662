"""The answer rule: strict reads only what a completion marks as its final answer, flexible (the
default) also the task's fallback; runs record the rule in the manifest and every sample."""

import json

import pytest

from harness.cli import main
from tasks.base import Example
from tasks.gsm8k import GSM8K
from tasks.math500 import MATH500


def example(reference):
    return Example(id="x", question="q", reference=reference)


CASES = [
    # (task, completion, reference, strict verdict, flexible verdict)
    # A marked answer is read alike by both rules.
    (GSM8K(), "She makes 9 * 2 = $18.\n#### 18", "18", True, True),
    (GSM8K(), "So she has \\boxed{18} dollars.", "18", True, True),
    # "She has 12 apples" with an empty, placeholder or cut-off box: the completion never marks 12
    # as its answer (strict: no answer), but 12 is the last number it wrote (flexible: correct).
    (GSM8K(), "She has 12 apples. \\boxed{}", "12", False, True),
    (GSM8K(), "She has 12 apples. \\boxed{x}", "12", False, True),
    (GSM8K(), "She has 12 apples, so \\boxed{12", "12", False, True),
    (GSM8K(), "She has 12 apples.", "12", False, True),
    # MATH: a box is the marked answer; Minerva's sentence is the flexible fallback.
    (MATH500(), "so $x = \\boxed{24}$", "24", True, True),
    (MATH500(), "Final Answer: The final answer is $24$. I hope it is correct.", "24", False, True),
]


@pytest.mark.parametrize("task, completion, reference, strict, flexible", CASES)
def test_strict_reads_only_the_marked_answer(task, completion, reference, strict, flexible):
    assert task.score(completion, example(reference), "strict").correct is strict
    assert task.score(completion, example(reference), "flexible").correct is flexible
    assert task.score(completion, example(reference)).correct is flexible  # flexible is the default


def test_a_run_records_its_answer_rule(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--tasks", "names", "--samplers", "factorized", "--tokens-per-step", "2", "--limit", "2",
                 "--answer-rule", "strict", "--out", str(out), "--quiet", "--no-report"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["answer_rule"] == manifest["answer_rule"] == "strict"
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert records and all(r["answer_rule"] == "strict" for r in records)
    assert json.loads((out / "summary.json").read_text())["answer_rule"] == "strict"
