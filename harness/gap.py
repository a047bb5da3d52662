"""The perplexity gap (paper Fig. 1, DESIGN.md section 4.5): how much of the joint over a
window does factorized denoising lose, and how much does CoDD's product win back?

A held-out solution is laid out as at decode time in block diffusion: the prompt, the
blocks before the window revealed, the window of W tokens with a fraction r of its
positions masked, everything after it masked (the target is padded with EOS to the gen
length, as in training). The NLL of the true tokens at the masked positions is measured
three ways:

* sequential: the chain rule, one backbone call per masked token, revealing the true
  tokens in the reverse of the order they were masked in (see below);
* factorized: one call with every position masked, the sum of per-position log-probs;
* codd: the same call's log-softmax / tau as virtual evidence of the PC, the log of the
  normalised product, log Z(everything observed) - log Z(masked positions unobserved).

The masks are nested across ratios: one random order of the window's positions per
solution, its first round(r W) masked at ratio r. So the curves differ by the ratio, not by
the draw, and one chain serves every ratio: revealing the most masked window's tokens last
masked first, the chain passes through the masked state of each smaller ratio, and the tail
of the chain from there is that ratio's chain rule. A random order is as valid as left to
right (the backbone is not a consistent joint, so every order gives a slightly different
number; a random one is the any-order estimate), and it costs max_r round(r W) calls per
solution instead of the sum over ratios (29 instead of 144 at W = 32).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from codd.choice import check_fits
from harness.backbones.base import Backbone
from harness.engine.decoding import window_logits
from harness.errors import HarnessError
from harness.stats import bootstrap_interval, paired_bootstrap_interval
from tasks import Example, Task

METHODS = ("sequential", "factorized", "codd")
RATIOS = tuple(round(0.1 * i, 1) for i in range(1, 10))


@dataclass(frozen=True)
class GapWindow:
    """One solution laid out for measurement: `ids` [T] with the window's true tokens at
    `start:start+width`, and `order`, the window offsets in the order they get masked."""

    example_id: str
    ids: torch.Tensor
    prompt_length: int
    start: int
    width: int
    order: tuple[int, ...]

    def masked_offsets(self, ratio: float) -> list[int]:
        """The window offsets masked at `ratio`, left to right."""
        return sorted(self.order[:masked_count(ratio, self.width)])


@dataclass(frozen=True)
class Layout:
    """How a run lays a solution out: the prompt it writes for an example (its protocol's) and its gen length."""

    prompt: Callable[[Example], list[dict]]
    gen_length: int


def masked_count(ratio: float, width: int) -> int:
    """Tokens masked at `ratio` in a window of `width` (at least one)."""
    return max(1, round(ratio * width))


def layout_window(task: Task, backbone: Backbone, ex: Example, width: int, rng: random.Random,
                  layout: Layout | None = None) -> GapWindow | None:
    """`ex`'s prompt and target as the decoder sees them, with a block-aligned window of
    `width` target tokens drawn at random; None when the target is shorter than a window
    or longer than the gen length (the decoder could not have produced it)."""
    layout = layout or Layout(task.prompt, task.gen_length)
    prompt = backbone.encode_chat(layout.prompt(ex))
    target = backbone.tokenizer(task.target(ex), add_special_tokens=False)["input_ids"]
    if len(target) < width or len(target) > layout.gen_length:
        return None
    answer = target + [backbone.eos_id] * (layout.gen_length - len(target))
    block = rng.randrange(len(target) // width)
    order = list(range(width))
    rng.shuffle(order)
    return GapWindow(ex.id, torch.tensor(prompt + answer), len(prompt), len(prompt) + block * width, width,
                     tuple(order))


@torch.no_grad()
def window_nll(backbone: Backbone, pc, window: GapWindow, ratios=RATIOS, tau: float = 1.0,
               batch_size: int = 32) -> np.ndarray:
    """Summed NLL (nats) of the true masked tokens [len(ratios), 3], columns in METHODS order."""
    ids, start, width, mask_id = window.ids, window.start, window.width, backbone.mask_id
    deepest = max(masked_count(ratio, width) for ratio in ratios)
    order = window.order[:deepest]
    # Chain state j: the first deepest - j positions of the masking order masked; its call scores
    # the next token to reveal, order[deepest - 1 - j]. Everything after the window stays masked.
    states = ids.expand(deepest, -1).clone()
    states[:, start + width:] = mask_id
    for j in range(deepest):
        states[j, [start + offset for offset in order[:deepest - j]]] = mask_id
    attention = torch.ones_like(states, dtype=torch.bool)
    prompt_tokens = torch.zeros_like(attention)
    prompt_tokens[:, :window.prompt_length] = True
    log_probs = torch.cat([
        window_logits(backbone, chunk, attention[:len(chunk)], prompt_tokens[:len(chunk)], start, width, 0.0)
        .log_softmax(-1) for chunk in states.split(batch_size)])  # [deepest, W, V]
    truth = ids[start:start + width]
    true_log_probs = log_probs.gather(-1, truth.expand(deepest, -1).unsqueeze(-1)).squeeze(-1).double()
    revealed = torch.tensor([order[deepest - 1 - j] for j in range(deepest)])
    chain = -true_log_probs[torch.arange(deepest), revealed]  # NLL of the token each call reveals

    nll = np.zeros((len(ratios), len(METHODS)))
    first_calls = []  # the state with exactly ratio r's positions masked
    for r, ratio in enumerate(ratios):
        first = deepest - masked_count(ratio, width)
        first_calls.append(first)
        nll[r, 0] = chain[first:].sum().item()
        nll[r, 1] = -true_log_probs[first, window.masked_offsets(ratio)].sum().item()
    # codd: each ratio's factorized call as the PC's evidence, batched over ratios.
    log_q = log_probs[first_calls] / tau
    observed = truth.expand(len(ratios), -1).clone()
    for r, ratio in enumerate(ratios):
        observed[r, window.masked_offsets(ratio)] = -1
    log_joint = pc.log_evidence(log_q, truth.expand(len(ratios), -1))
    log_normaliser = pc.log_evidence(log_q, observed)
    nll[:, 2] = (log_normaliser - log_joint).double().cpu().numpy()
    return nll


def measure_gap(task: Task, backbone: Backbone, pc, examples: list[Example], width: int = 32, ratios=RATIOS,
                tau: float = 1.0, seed: int = 0, batch_size: int = 32, progress=None,
                layout: Layout | None = None) -> dict:
    """The gap curve over `examples`: per ratio the mean NLL per masked token and perplexity
    of each method, the gap (factorized - sequential NLL), the fraction of it CoDD closes with
    a 95% bootstrap interval over solutions, plus every solution's own NLLs. `layout` is the
    task's own prompt and gen length unless given."""
    check_fits(pc, backbone)
    if tau <= 0:
        raise HarnessError(f"tau must be positive, got {tau}")
    per_example, ids, skipped = [], [], 0
    for ex in examples:
        # One random stream per solution: adding solutions never moves another's window.
        window = layout_window(task, backbone, ex, width, random.Random(f"{seed}\x00{task.name}\x00{ex.id}"), layout)
        if window is None:
            skipped += 1
        else:
            per_example.append(window_nll(backbone, pc, window, ratios, tau, batch_size))
            ids.append(ex.id)
        if progress is not None:
            progress()
    if not per_example:
        raise HarnessError(f"no {task.name} solution fits a {width}-token window within the gen length "
                           f"{(layout or task).gen_length}; nothing to measure")
    masked = np.array([masked_count(r, width) for r in ratios])
    nll = np.stack(per_example) / masked[None, :, None]  # [examples, ratios, methods] per masked token
    return {"task": task.name, "width": width, "tau": tau, "seed": seed, "methods": list(METHODS),
            "chain_rule_order": "random: the reverse of the masking order", "solutions": len(ids), "skipped": skipped,
            "rows": [_ratio_row(ratio, int(masked[r]), nll[:, r]) for r, ratio in enumerate(ratios)],
            "per_example": {"example_ids": ids, "nll_per_token": nll.round(6).tolist()}}


def _fraction_closed(sequential, factorized, codd):
    return (factorized.mean(-1) - codd.mean(-1)) / (factorized.mean(-1) - sequential.mean(-1))


def _ratio_row(ratio: float, masked: int, nll: np.ndarray) -> dict:
    """nll [examples, methods] per masked token at one ratio."""
    mean = nll.mean(0)
    sequential, factorized, codd = nll.T
    gap_interval = paired_bootstrap_interval(factorized, sequential) if len(nll) > 1 else None
    # A fraction of a gap that may be zero is a ratio of noise: only where the gap is significant.
    significant = gap_interval is not None and gap_interval[0] > 0
    closed = float(_fraction_closed(sequential, factorized, codd)) if significant else None
    interval = list(bootstrap_interval((sequential, factorized, codd), _fraction_closed)) if significant else None
    return {"ratio": ratio, "masked_tokens": masked,
            "nll": dict(zip(METHODS, mean.round(6).tolist())),
            "perplexity": dict(zip(METHODS, np.exp(mean).round(6).tolist())),
            "gap_nll": round(float(mean[1] - mean[0]), 6), "gap_nll_ci95": gap_interval and [round(v, 6) for v in gap_interval],
            "fraction_closed": closed, "fraction_closed_ci95": interval}


def table_rows(result: dict) -> list[dict]:
    """The curve as flat table rows (one per ratio), for CSV, Markdown and the report."""
    rows = []
    for row in result["rows"]:
        low, high = row["fraction_closed_ci95"] or (None, None)
        gap_low, gap_high = row["gap_nll_ci95"] or (None, None)
        flat = {k: v for k, v in row.items() if k not in ("fraction_closed_ci95", "gap_nll_ci95")}
        rows.append({"task": result["task"], **flat, "gap_low": gap_low, "gap_high": gap_high,
                     "ci_low": low, "ci_high": high})
    return rows
