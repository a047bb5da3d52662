"""MATH-style final answers: extraction from a completion, and equivalence to the gold answer.

Equivalence is math_verify's (the metric of lm-eval's `minerva_math500`), with a
normalised-string fallback for answers it cannot turn into one mathematical object
(words, unusual notation). `equivalent` can take unbounded time on pathological
input (`9^{9^{9^9}}`); callers run it under `tasks.timeout.call_with_timeout`.
"""

from __future__ import annotations

import re

from tasks.answer_rule import FLEXIBLE
from tasks.boxed import last_boxed

# Minerva's answer sentence: "Final Answer: The final answer is $X$. I hope it is correct."
_FINAL_ANSWER = re.compile(r"The final answer is:?\s*\$?(.*?)\$?\.?\s*(?:I hope it is correct|\n|$)", re.IGNORECASE)


def extract_math_answer(completion: str, rule: str = FLEXIBLE) -> tuple[str | None, str | None]:
    """The final answer and where it came from: the last boxed expression (`box`), else under the
    flexible rule the last Minerva "The final answer is X" (`final answer sentence`); else None, None."""
    boxed = last_boxed(completion)
    if boxed is not None:
        return boxed, "box"
    answers = _FINAL_ANSWER.findall(completion) if rule == FLEXIBLE else []
    if answers and answers[-1].strip():
        return answers[-1].strip(), "final answer sentence"
    return None, None


def equivalent(gold: str, pred: str) -> bool:
    """Whether answer `pred` means the same as gold answer `gold` (both bare LaTeX)."""
    from math_verify import parse, verify  # imported on use: it loads sympy, seconds at start-up

    gold, pred = _readable(gold), _readable(pred)
    # `$...$` makes math_verify read the whole string as one formula, as a boxed answer is.
    if verify(parse(f"${gold}$"), parse(f"${pred}$")):
        return True
    return normalise(gold) == normalise(pred) != ""


# A repeating decimal such as 0.1\overline{6}, which math_verify does not read (digit runs
# bounded: no answer needs more, and huge ones would cost time). The whole part starts where a
# digit run starts, so a long run is scanned once, not once per digit.
_REPEATING = re.compile(r"(?<!\d)(\d*)\.(\d{0,30})\\overline\{(\d{1,30})\}")
# A text command spaced from its brace (`\text {cm}`), which math_verify does not read as text.
_SPACED_TEXT = re.compile(r"\\(text|textbf|textrm|mbox|mathrm|mathbf)\s+\{")


def _readable(answer: str) -> str:
    """`answer` in spellings math_verify reads: text commands against their braces, repeating
    decimals as fractions."""
    return _repeating_as_fraction(_SPACED_TEXT.sub(r"\\\1{", answer))


def _repeating_as_fraction(answer: str) -> str:
    """`W.F\\overline{R}` as `(W+\\frac{FR-F}{10^|F| (10^|R|-1)})`, its exact value."""
    def fraction(match: re.Match) -> str:
        whole, fixed, repeat = match.groups()
        numerator = int(fixed + repeat) - int(fixed or 0)
        denominator = 10 ** len(fixed) * (10 ** len(repeat) - 1)
        return f"({whole or 0}+\\frac{{{numerator}}}{{{denominator}}})"
    return _REPEATING.sub(fraction, answer)


# Notation that never changes an answer's value: sizing, spacing, text wrappers, degrees, percent.
_NOISE = re.compile(r"\\left|\\right|\\[,;:! ]|\\displaystyle|\^\\circ|\^\{\\circ\}|\\%|%|\$|\s")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mbox|mathrm|mathbf)\{([^{}]*)\}")
_ASSIGNMENT = re.compile(r"^[A-Za-z]=")


def normalise(answer: str) -> str:
    """A canonical spelling of a LaTeX answer (as `_readable` gives it), for answers math_verify cannot parse."""
    answer = _TEXT_WRAPPER.sub(r"\1", answer)
    answer = answer.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    answer = _NOISE.sub("", answer).removesuffix(".")
    return _ASSIGNMENT.sub("", answer)
