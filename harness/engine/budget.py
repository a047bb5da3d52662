"""Step budgets: `--steps` (absolute) or `--tokens-per-step` (relative to a task's gen length)."""

from __future__ import annotations

from harness.errors import HarnessError


def budget_steps(task: str, gen_length: int, steps: list[int] | None,
                 tokens_per_step: list[int] | None) -> list[int]:
    """The step counts to run `task` at. Whether each fits the block schedule is
    checked by DecodeConfig.validate; here only the tokens-per-step conversion."""
    if steps:
        return list(steps)
    result = []
    for k in tokens_per_step:
        if gen_length % k:
            divisors = [d for d in range(1, gen_length + 1) if gen_length % d == 0]
            raise HarnessError(f"task {task}: --tokens-per-step {k} does not divide its gen length "
                               f"{gen_length}; valid values: {', '.join(map(str, divisors))}")
        result.append(gen_length // k)
    return result
