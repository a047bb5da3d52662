"""Evaluation protocols: which prompts, lengths, test items and answer formats a run follows.

Papers evaluate differently, and numbers only compare within one protocol (DESIGN.md 4.4):

* `native`: our own tasks as they are (prompts, gen lengths, scorers, test sets).
* `codd`: the CoDD authors' setup (lm-eval, zero-shot, chat template, their system prompts,
  gen length 512, blocks of 32) for math500 and gsm8k. Our math500 and gsm8k already carry their
  system prompts, and our scorers follow lm-eval's (math_verify; flexible-extract).
* `d1`: d1's setup: its instruction and <reasoning>/<answer> format in the user turn, steps = L/2
  (2 tokens per step), gen length 128 and blocks of 32 for every task (the defaults of d1's
  eval/eval.py; its eval/run_eval.sh sweeps gen lengths 128, 256 and 512, all with blocks of 32:
  --gen-length picks one), d1's own sudoku and countdown test sets (sudoku: the 256 puzzles d1 draws
  with numpy seed 42, scored like d1 by cell accuracy against the one solution the file lists,
  although about a quarter of those puzzles have several solutions).

Every record and summary names its protocol.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.registry import Registry
from tasks import Example, Score, Task
from tasks.answer_rule import FLEXIBLE
from tasks.boxed import last_boxed
from tasks.countdown import Countdown
from tasks.data import ENV_VAR
from tasks.sudoku4 import Sudoku4, blank_cells

_FORMAT = "Respond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n{answer}\n</answer>"
D1_MATH = ("You are a math expert. You will be given a question to solve. Solve it step by step. "
           "Wrap the final answer in a \\boxed{}. \n" + _FORMAT.format(answer="\\boxed{...}"))
D1_COUNTDOWN = ("Using only the provided numbers, create an arithmetic expression that evaluates to exactly the "
                "provided target number. You may use the operations +, -, *, and / as needed, but each number must "
                "be used exactly once. Think step-by-step. After reasoning, provide only your final expression inside "
                "\\boxed{} tags without including an equals sign or the target number. For example: \\boxed{a + b * c}"
                + _FORMAT.format(answer="\\boxed{...}"))
D1_SUDOKU = ("Please solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string reading "
             "left-to-right, top-to-bottom, where '0' represents empty cells.\n\nRules:\n- Fill empty cells with "
             "digits 1-4\n- Each row must contain digits 1-4 exactly once\n- Each column must contain digits 1-4 "
             "exactly once\n- Each 2x2 box must contain digits 1-4 exactly once\n\nImportant: Your solution must be a "
             "COMPLETE 16-character string with only the digits 1-4, representing your final solved grid.\n\n"
             + _FORMAT.format(answer="[16-character solution string with no spaces or separators]"))
D1_SUDOKU_ITEMS, D1_SUDOKU_SEED = 256, 42
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass(frozen=True)
class TaskAdapter:
    """How a protocol presents and scores one task; what it leaves None stays the task's own."""

    instruction: str | None = None                                     # put before the question, in the user turn
    question: Callable[[Example], str] | None = None                   # the question's text (default: ex.question)
    test_set: Callable[[Task, str | None], list[Example]] | None = None  # (task, data dir) -> its own test items
    score: Callable[[Task, str, Example], Score] | None = None          # its own reading of a completion


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    tasks: tuple[str, ...] | None = None    # the tasks it defines; None = all
    gen_length: int | None = None           # None = the task's own
    block_length: int | None = None
    tokens_per_step: int | None = None      # the fixed budget it implies, if any
    adapters: dict[str, TaskAdapter] = field(default_factory=dict)  # task name -> how this protocol changes it

    def check(self, task: Task) -> None:
        if self.tasks is not None and task.name not in self.tasks:
            raise HarnessError(f"protocol {self.name} does not define task {task.name}; its tasks: "
                               f"{', '.join(self.tasks)}")

    def examples(self, task: Task, split: str, limit: int | None, data_dir: str | None) -> list[Example]:
        adapter = self.adapters.get(task.name)
        if adapter and adapter.test_set and split == "test":
            return adapter.test_set(task, data_dir)[:limit]
        return task.load(split=split, limit=limit, data_dir=data_dir)

    def prompt(self, task: Task, ex: Example) -> list[dict]:
        adapter = self.adapters.get(task.name)
        if adapter is None or adapter.instruction is None:
            return task.prompt(ex)
        question = adapter.question(ex) if adapter.question else ex.question
        return [{"role": "user", "content": adapter.instruction + "\n\n" + question}]

    def score(self, task: Task, completion: str, ex: Example, rule: str = FLEXIBLE) -> Score:
        adapter = self.adapters.get(task.name)
        if adapter and adapter.score:
            return adapter.score(task, completion, ex)
        return task.score(completion, ex, rule)


def _d1_answer(completion: str) -> str:
    """The text of d1's last <answer> tag, else the whole completion."""
    answer = _ANSWER.findall(completion)
    return answer[-1] if answer else completion


def _d1_countdown_question(ex: Example) -> str:
    return f"Numbers: {ex.meta['numbers']}\nTarget: {ex.meta['target']}"


def _d1_sudoku_question(ex: Example) -> str:
    return f"Solve the following Sudoku puzzle: {ex.meta['puzzle']}\n"


def _d1_countdown_score(task: Task, completion: str, ex: Example) -> Score:
    text = _d1_answer(completion)
    return task.score(last_boxed(text) or text, ex)


def _d1_sudoku_score(task: Task, completion: str, ex: Example) -> Score:
    """d1's reading: the first 16 digits of the answer, cell accuracy against the listed solution."""
    grid = "".join(re.findall(r"[0-9]", _d1_answer(completion)))[:16]
    blanks = blank_cells(ex.meta["puzzle"])
    right = sum(cell < len(grid) and grid[cell] == ex.reference[cell] for cell in blanks)
    return Score(correct=right == len(blanks), extracted=grid or None, details={"cell_accuracy": right / len(blanks)})


def _d1_file(name: str, data_dir: str | None) -> Path:
    for folder in (data_dir, os.environ.get(ENV_VAR)):
        if folder and (Path(folder) / "d1" / name).is_file():
            return Path(folder) / "d1" / name
    raise HarnessError(f"protocol d1 needs d1/{name}; provide its folder with --data-dir DIR or {ENV_VAR}=DIR")


def _d1_items(name: str, data_dir: str | None, parse) -> list:
    """`parse(text)` of d1's file `name`; any way the file is not d1's is one clear error."""
    path = _d1_file(name, data_dir)
    try:
        return parse(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise HarnessError(f"{path}: not d1's {name} ({type(err).__name__}: {err})") from None


def _sudoku_rows(text: str) -> list[tuple[str, str]]:
    rows = [(r["Puzzle"], r["Solution"]) for r in csv.DictReader(text.splitlines())]
    if len(rows) < D1_SUDOKU_ITEMS or not all(re.fullmatch(r"[0-4]{16}", p) and re.fullmatch(r"[1-4]{16}", s)
                                              for p, s in rows):
        raise ValueError(f"needs at least {D1_SUDOKU_ITEMS} rows of a 16-digit Puzzle and Solution")
    return rows


def _countdown_items(text: str) -> list[tuple[list[int], int]]:
    items = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [([int(n) for n in item["input"].split(",")], int(item["output"])) for item in items]


def _d1_sudoku(task: Sudoku4, data_dir: str | None) -> list[Example]:
    puzzles = _d1_items("sudoku4_test.csv", data_dir, _sudoku_rows)
    chosen = np.random.RandomState(D1_SUDOKU_SEED).choice(len(puzzles), D1_SUDOKU_ITEMS, replace=False)
    return [task.example(f"d1-sudoku4-{i:03d}", *puzzles[i]) for i in chosen]


def _d1_countdown(task: Countdown, data_dir: str | None) -> list[Example]:
    items = _d1_items("countdown_cd3_test.jsonl", data_dir, _countdown_items)
    return [task.example(f"d1-countdown-{i:03d}", numbers, target) for i, (numbers, target) in enumerate(items)]


PROTOCOLS: Registry[Protocol] = Registry("protocol")
for _protocol in (
    Protocol("native", "this project's prompts, gen lengths, scorers and test sets"),
    Protocol("codd", "the CoDD paper: zero-shot, chat template, the authors' system prompts, gen length 512, Lb 32",
             tasks=("math500", "gsm8k"), gen_length=512, block_length=32),
    Protocol("d1", "the d1 paper: its prompts and <answer> format, gen length 128 (d1 also reports 256, 512), Lb 32, "
                   "steps = gen length / 2, its sudoku/countdown test sets",
             tasks=("math500", "gsm8k", "sudoku4", "countdown"), gen_length=128, block_length=32, tokens_per_step=2,
             adapters={"math500": TaskAdapter(D1_MATH), "gsm8k": TaskAdapter(D1_MATH),
                       "countdown": TaskAdapter(D1_COUNTDOWN, _d1_countdown_question, _d1_countdown,
                                                _d1_countdown_score),
                       "sudoku4": TaskAdapter(D1_SUDOKU, _d1_sudoku_question, _d1_sudoku, _d1_sudoku_score)}),
):
    PROTOCOLS.register(_protocol)
get_protocol = PROTOCOLS.get
