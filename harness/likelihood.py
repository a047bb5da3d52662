"""The likelihood view of a run: on the gold solutions of each text task's examples, the NLL per
masked token under sequential, factorized and CoDD decoding at each budget's tokens per step.

Accuracy near 0 (a small model on GSM8K) says nothing about the factorization barrier; the
likelihood of the gold solutions does, at any scale. A budget that commits k tokens per step in
windows of W ends each block with a step that draws k masked tokens at once while the window's
other W - k are known: that is the perplexity gap (harness/gap.py) at mask ratio k / W. So each
budget is one ratio of the gap curve, measured on the examples the run decoded, laid out as the
run's protocol prompts them, with the run's PC: that of its first codd sampler, else the one
codd would get (codd/choice.py).
"""

from __future__ import annotations

import time
from functools import partial

from codd.choice import PCSpec, resolve
from codd.sampler import CoDD
from harness.errors import HarnessError
from harness.gap import Layout, measure_gap, table_rows


def likelihood_view(jobs: list, seed: int, progress=None) -> list[dict]:
    """One entry per text task of the run (tasks/base.py `likelihood_view`), in run order: the gap
    result (harness/gap.py) at its budgets' ratios with the budgets they stand for, or, where it
    cannot be measured, `not_measured` with the reason. `progress()` is called once per solution."""
    by_task: dict[str, list] = {}
    for job in jobs:
        if job.task.likelihood_view and job.sampler.uses_budget:
            by_task.setdefault(job.task.name, []).append(job)
    return [_measure(task_jobs, seed, progress) for task_jobs in by_task.values()]


def _measure(jobs: list, seed: int, progress) -> dict:
    first = jobs[0]
    task, backbone, gen_length = first.task, first.backbone, first.config.gen_length
    codd = next((job.sampler for job in jobs if isinstance(job.sampler, CoDD)), None)
    start = time.perf_counter()
    try:
        chosen = codd.chosen(backbone) if codd is not None else resolve(PCSpec(), backbone, task.name)
        width = chosen.hmm.window
        budgets = [{"steps": steps, "tokens_per_step": gen_length / steps,
                    "ratio": min(1.0, gen_length / steps / width)}
                   for steps in sorted({job.config.steps for job in jobs}, reverse=True)]
        result = measure_gap(task, backbone, chosen.hmm, first.examples, width,
                             sorted({b["ratio"] for b in budgets}), chosen.tau, seed, progress=progress,
                             layout=Layout(partial(first.protocol.prompt, task), gen_length))
    except HarnessError as err:  # no PC for this backbone, or no solution fits a window
        return {"task": task.name, "not_measured": str(err)}
    return {**result, "pc": chosen.source, "budgets": budgets, "seconds": round(time.perf_counter() - start, 2)}


def likelihood_rows(views: list[dict]) -> list[dict]:
    """The measured views as flat table rows, one per task and budget (formatting.LIKELIHOOD)."""
    rows = []
    for view in views:
        if "not_measured" in view:
            continue
        by_ratio = {row["ratio"]: row for row in table_rows(view)}
        rows += [{**by_ratio[budget["ratio"]], "steps": budget["steps"], "solutions": view["solutions"]}
                 for budget in view["budgets"]]
    return rows
