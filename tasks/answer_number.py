"""GSM8K-style numeric final answers: extraction from a completion and numeric comparison.

The rule follows lm-eval's gsm8k filters: its strict `#### N`, else (ours) the last
boxed answer, else, under the flexible rule only, its "flexible-extract" (the last
number in the text). Unlike lm-eval, a number needs a digit (an ellipsis is not a
number), "5.0" equals "5", a Unicode minus is a sign, and a minus sign right after a
digit or word is subtraction or a hyphen ("5-3", "3-year-old"), not a sign. Fractions
(`1/5`, `\\frac{2}{3}`) and clock times (`7:00 pm`, in hours, as GSM8K writes time
answers) are read whole, as their value, never as their last digits; other colon forms
(a ratio `3:2`) are not a number, so they read as no answer. Unlike d1's parser,
negative answers keep their sign.
"""

from __future__ import annotations

import re
from fractions import Fraction

from tasks.answer_rule import FLEXIBLE
from tasks.boxed import last_boxed

# Sign, optional dollar sign, digits (with thousands separators only in groups of three), decimals.
# A match starts at its sign, dollar or first digit, so that a longer form starting at that digit wins.
_NUMBER = r"(?:(?<![\w)])-)?(?:\$\s?)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?"
_SIGNED = r"-?\s?\d+(?:\.\d+)?"
# What may be a final answer, alternatives in order of precedence at one position.
_ANSWER = "|".join((
    r"(?:(?<![\w)])-)?\\[dt]?frac\{\s*" + _SIGNED + r"\s*\}\{\s*" + _SIGNED + r"\s*\}",  # \frac{2}{3}
    r"\d+(?::\d+)+(?:\s?[ap]\.?m\b\.?)?",                                     # 7:00 pm, 3:2
    _NUMBER + r"\s?/\s?\d+(?:\.\d+)?(?![\d/])",                               # 1/5
    _NUMBER,
))
_ANSWER_RE = re.compile(_ANSWER, re.IGNORECASE)
_HASHES_RE = re.compile(r"####\s*(" + _ANSWER + ")", re.IGNORECASE)
_CLOCK = re.compile(r"(\d{1,2}):([0-5]\d)(?:\s?[ap]\.?m\b\.?)?", re.IGNORECASE)
_FRAC = re.compile(r"(-?)\\[dt]?frac\{(.*)\}\{(.*)\}")


def extract_number(completion: str, rule: str = FLEXIBLE) -> tuple[str | None, str | None]:
    """The final answer as a plain number string (no `,` `$` or spaces; sign kept; a fraction
    as `a/b`, a time as `H:MM`) and where it came from (`####`, `box`, `last number`);
    the answer is None when there is none or it is not a number."""
    completion = completion.replace("\u2212", "-")
    hashes = _HASHES_RE.search(completion)
    if hashes:
        return _as_number(hashes.group(1)), "####"
    boxed = last_boxed(completion)
    answers = _ANSWER_RE.findall(boxed or "")
    if answers:
        return _as_number(answers[-1]), "box"
    # An empty, placeholder (`\boxed{x}`) or unclosed box has no answer of its own.
    answers = _ANSWER_RE.findall(completion) if rule == FLEXIBLE else []
    if answers:
        return _as_number(answers[-1]), "last number"
    return None, None


def _as_number(text: str) -> str | None:
    """`text` as a plain number string, or None if it is not a number (a ratio `3:2`)."""
    text = plain_number(text)
    frac = _FRAC.fullmatch(text)
    if frac:
        text = f"{frac.group(1)}{frac.group(2)}/{frac.group(3)}".replace("--", "")
    if ":" in text:
        clock = _CLOCK.fullmatch(text)
        return f"{clock.group(1)}:{clock.group(2)}" if clock else None
    return text


def plain_number(text: str) -> str:
    """`text` without thousands separators, dollar signs and spaces ("$1,000" -> "1000")."""
    return re.sub(r"[,$\s]", "", text)


def value(number: str) -> Fraction | None:
    """The exact value of a plain number string: `-5`, `2.50`, `1/5`, `7:30` (hours); None for
    a zero denominator."""
    if ":" in number:
        hours, minutes = number.split(":")
        return Fraction(hours) + Fraction(minutes) / 60
    numerator, _, denominator = number.partition("/")
    if denominator and Fraction(denominator) == 0:
        return None
    return Fraction(numerator) / Fraction(denominator or 1)


def same_number(a: str, b: str) -> bool:
    """Whether two plain number strings have the same value ("5.0" and "5" do, so do "0.2" and "1/5")."""
    return value(a) is not None and value(a) == value(b)
