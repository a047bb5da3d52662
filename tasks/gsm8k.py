"""GSM8K: grade-school math word problems with a numeric final answer (Cobbe et al., 2021)."""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import HarnessError
from harness.stats import wilson_interval
from tasks import register
from tasks.answer_number import extract_number, plain_number, same_number
from tasks.answer_rule import FLEXIBLE
from tasks.base import CORRECT_MATH_REWARD, FORMAT_BONUS, Example, Score, Task
from tasks.data import read_records

_GOLD = re.compile(r"####\s*(-?[\d,]+(?:\.\d+)?)\s*$")
# Calculator annotations such as "<<16-3-4=9>>": scaffolding of the original data, not solution text.
_CALCULATOR = re.compile(r"<<.*?>>")
_ANSWER_LINE = re.compile(r"####\s*-?[\d,]*\d")  # anywhere, as d1 rewards its answer tags


@register
class GSM8K(Task):
    name = "gsm8k"
    description = "GSM8K grade-school math word problems; correct iff the final number equals the gold answer"
    family = "math"
    gen_length = 256
    likelihood_view = True
    block_length = 32
    system_prompt = "You are a helpful assistant."

    def load(self, split: str = "test", limit: int | None = None,
             data_dir: str | Path | None = None) -> list[Example]:
        self.check_load_args(split, limit)
        relpath = f"gsm8k/{split}.jsonl"
        records = read_records(relpath, ("question", "answer"), data_dir)[:limit]
        examples = []
        for i, record in enumerate(records):
            gold = _GOLD.search(record["answer"])
            if gold is None:
                raise HarnessError(f"{relpath} record {i + 1}: answer does not end with '#### <number>'")
            examples.append(Example(id=f"gsm8k-{split}-{i:05d}", question=record["question"],
                                    reference=plain_number(gold.group(1)),
                                    solution=_CALCULATOR.sub("", record["answer"])))
        return examples

    def score(self, completion: str, ex: Example, rule: str = FLEXIBLE) -> Score:
        extracted, source = extract_number(completion, rule)
        return Score(correct=extracted is not None and same_number(extracted, ex.reference), extracted=extracted,
                     details={"answer_from": source, "well_formed": well_formed(completion)})

    def reward(self, completion: str, ex: Example) -> float:
        """d1's: 2.0 if correct, plus 0.5 for a `#### N` answer line."""
        marked = bool(_ANSWER_LINE.search(completion))
        return CORRECT_MATH_REWARD * self.score(completion, ex).correct + FORMAT_BONUS * marked

    def summarize(self, scores: list[Score]) -> dict:
        """The share of well-formed solutions with its 95% Wilson interval: at small scale a model
        that cannot yet solve the problems still shows whether it writes solutions at all."""
        if not scores:
            return {}
        count = sum(s.details["well_formed"] for s in scores)
        low, high = wilson_interval(count, len(scores))
        return {"well_formed": count / len(scores), "well_formed/ci_low": low, "well_formed/ci_high": high}


def well_formed(completion: str) -> bool:
    """Whether `completion` is laid out as a GSM8K solution: its last line is `#### N`."""
    lines = completion.strip().splitlines()
    return bool(lines) and _GOLD.fullmatch(lines[-1].strip()) is not None
