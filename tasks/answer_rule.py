"""Which text of a completion counts as its final answer.

`strict`: only what the completion marks as final (GSM8K's `#### N`, a `\\boxed{}`), the
reading of d1's parsers and lm-eval's strict-match filter. `flexible` (the default): that,
else a task's fallback (GSM8K: the last number in the text, lm-eval's flexible-extract;
MATH: Minerva's "The final answer is X"). Tasks whose answer format has one reading
(sudoku grids, countdown equations, names) score both rules alike.
"""

STRICT, FLEXIBLE = "strict", "flexible"
ANSWER_RULES = (STRICT, FLEXIBLE)
