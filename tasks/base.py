"""What every task provides: examples, a prompt, a training target and a scorer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from tasks.answer_rule import FLEXIBLE


@dataclass(frozen=True)
class Example:
    """One problem. `reference` is the gold final answer; `solution` a full worked
    answer in the task's answer format when the data has one (a training target)."""

    id: str
    question: str
    reference: str
    solution: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """The verdict on one completion; `details` holds task-specific extras
    (e.g. sudoku cell accuracy) that summaries aggregate."""

    correct: bool
    extracted: str | None
    details: dict = field(default_factory=dict)


class Task(ABC):
    """A benchmark task. Subclasses set the class attributes and implement `load`
    and `score`; `prompt` and `target` have defaults that most tasks keep."""

    name: str
    description: str
    # Which embedded model serves this task: "math", "sudoku", "countdown" or "names".
    family: str
    # Default generation length (tokens) and block length on the embedded model.
    gen_length: int
    block_length: int = 32
    system_prompt: str | None = None
    # Sampling temperature the task is meant to be decoded at, when the model's
    # default (greedy for LLaDA) would hide what it measures (e.g. `names`).
    temperature: float | None = None
    splits: tuple[str, ...] = ("train", "test")
    # Gold solutions are worked text (GSM8K, MATH): `run` also measures their likelihood under each
    # sampler's per-step joint (harness/likelihood.py), which says something where accuracy is near 0.
    likelihood_view: bool = False

    @abstractmethod
    def load(self, split: str = "test", limit: int | None = None,
             data_dir: str | Path | None = None) -> list[Example]:
        """The examples of `split`, in a stable order, the first `limit` of them."""

    @abstractmethod
    def score(self, completion: str, ex: Example, rule: str = FLEXIBLE) -> Score:
        """Extract the final answer from `completion` by answer rule `rule` (tasks/answer_rule.py)
        and check it against `ex`."""

    def check_load_args(self, split: str, limit: int | None) -> None:
        """Reject a split this task lacks or a limit below one (both are the user's to fix)."""
        if split not in self.splits:
            raise HarnessError(f"unknown split {split!r} for task {self.name}; valid splits: {', '.join(self.splits)}")
        if limit is not None and limit <= 0:
            raise HarnessError(f"limit must be a positive number of examples, got {limit}")

    def prompt(self, ex: Example) -> list[dict]:
        """Chat messages for `ex` (system prompt first when the task has one)."""
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return messages + [{"role": "user", "content": ex.question}]

    def target(self, ex: Example) -> str:
        """The completion a perfect model writes for `ex` (used to train the embedded model)."""
        return ex.solution if ex.solution is not None else ex.reference

    def reward(self, completion: str, ex: Example) -> float:
        """The RL reward of `completion` (diffu-GRPO, DESIGN.md 4.3): 1.0 if correct, else 0.0, unless the
        task shapes it as d1 does."""
        return float(self.score(completion, ex).correct)

    def summarize(self, scores: list[Score]) -> dict:
        """Task-specific aggregate metrics beyond accuracy (none by default)."""
        return {}


# d1's math rewards: 2.0 for a correct answer plus 0.5 for the format's answer marker, which d1 rewards
# through its tags (d1's own checks miss minus signs and never see \boxed; ours do not).
CORRECT_MATH_REWARD = 2.0
FORMAT_BONUS = 0.5
