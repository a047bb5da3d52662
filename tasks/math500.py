"""MATH500: the 500-problem MATH test subset of "Let's Verify Step by Step" (Lightman et al., 2023)."""

from __future__ import annotations

from pathlib import Path

from tasks import register
from tasks.answer_math import equivalent, extract_math_answer
from tasks.answer_rule import FLEXIBLE
from tasks.base import CORRECT_MATH_REWARD, FORMAT_BONUS, Example, Score, Task
from tasks.boxed import last_boxed
from tasks.data import read_records
from tasks.timeout import call_with_timeout


@register
class MATH500(Task):
    name = "math500"
    description = "MATH500 competition math; correct iff the boxed answer is equivalent to the gold (math_verify)"
    family = "math"
    gen_length = 256
    likelihood_view = True
    block_length = 32
    # The CoDD authors' prompt (DESIGN.md 4.4), "boxed{ANSWER}" without a backslash as they wrote it.
    system_prompt = ("You are a helpful assistant. Justify your final answer by first explaining your "
                     "step-by-step derivation or reasoning. Conclude by presenting the final answer in the "
                     "format: boxed{ANSWER}.")
    # Seconds one answer's equivalence check may take before it counts as incorrect.
    score_timeout: float = 5.0

    def load(self, split: str = "test", limit: int | None = None,
             data_dir: str | Path | None = None) -> list[Example]:
        self.check_load_args(split, limit)
        if split == "test":
            records = read_records("math500/test.jsonl", ("problem", "solution", "answer", "unique_id"), data_dir)
            return [_example(r, r["answer"], r.get("subject"), r.get("level")) for r in records[:limit]]
        # MATH train has no answer field: its gold is the last boxed expression of the solution
        # (empty for the one original record whose box is empty, train/number_theory/7115).
        records = read_records("math/train.jsonl", ("problem", "solution", "unique_id"), data_dir)
        return [_example(r, last_boxed(r["solution"]) or "", r.get("type"), r.get("level")) for r in records[:limit]]

    def score(self, completion: str, ex: Example, rule: str = FLEXIBLE) -> Score:
        extracted, source = extract_math_answer(completion, rule)
        correct = extracted is not None and call_with_timeout(
            equivalent, ex.reference, extracted, seconds=self.score_timeout, default=False)
        return Score(correct=correct, extracted=extracted, details={"answer_from": source})

    def reward(self, completion: str, ex: Example) -> float:
        """d1's: 2.0 if correct, plus 0.5 for a `\\boxed{}` answer."""
        boxed = last_boxed(completion) is not None
        return CORRECT_MATH_REWARD * self.score(completion, ex).correct + FORMAT_BONUS * boxed


def _example(record: dict, answer: str, subject: str | None, level) -> Example:
    return Example(id=record["unique_id"], question=record["problem"], reference=answer,
                   solution=record["solution"], meta={"subject": subject, "level": level})
