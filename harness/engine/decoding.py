"""The decoding engine: masked diffusion from a prompt to a completion in a fixed number of steps.

State `x = [prompt | L masks]` (DESIGN.md section 4.1). Each step runs the
backbone once, turns the logits of the window being decoded into proposal
logits (the `proposal` hook: identity for factorized decoding, an HMM product
for CoDD), picks a candidate for every masked position and commits the most
confident ones under the remasking rule. Two schedules:

* `block` (LLaDA): blocks of `block_length` left to right, the steps split
  evenly between them; the reference is `generate.py` of ML-GSAI/LLaDA, which
  this engine reproduces token for token at temperature 0 (and, given the same
  uniform draws, at any temperature).
* `full` (Dream): one window over the whole generation, timesteps
  `linspace(1, eps, steps + 1)`.

Precision: by default candidates and confidences are computed in float64 from the backbone's
logits (an exact upcast). The references compute some of them in the model's dtype (bfloat16
on a GPU): Dream's sample_tokens all of them, the CoDD authors' LLaDA loop its margin and
entropy confidences (low_confidence it upcasts to float64, like LLaDA's generate.py). Rounded
confidences can reorder positions, so `reference_precision` computes each rule in the dtype its
reference uses, guidance included. Ties among equal confidences go to the leftmost position;
the references' torch.topk leaves their order unspecified (it differs between CPU and CUDA).

Beyond the references: every row draws its randomness from its own
generator (a row's output does not depend on its batch), a row that commits
nothing in a step skips the forward pass, and with `early_stop` a row is done
once it commits an EOS with nothing masked before it. Optionally (`cache`, approximate)
Fast-dLLM's prefix or dual KV cache cuts the work of a block's later steps (engine/cache.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.engine.cache import CACHE_MODES, BlockCache, check_cache
from harness.engine.remasking import RANDOM, REMASKING_RULES
from harness.errors import HarnessError

MODES = ("block", "full")


@dataclass(frozen=True)
class DecodeConfig:
    gen_length: int
    steps: int
    block_length: int = 32
    mode: str = "block"            # "block" (LLaDA semi-autoregressive) or "full" (Dream)
    temperature: float = 0.0
    remasking: str = "low_confidence"
    cfg_scale: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    eps: float = 1e-3              # full diffusion's final timestep
    early_stop: bool = True        # stop a row once an EOS is committed and every position before it is unmasked
    reference_precision: bool = False  # confidences in the dtype the reference loop uses (module docstring)
    cache: str = "none"            # approximate KV cache for block diffusion: none, prefix or dual (engine/cache.py)

    def validate(self) -> None:
        """Raise a one-line HarnessError naming the first setting that cannot work."""
        if self.mode not in MODES:
            raise HarnessError(f"unknown decoding mode {self.mode!r}; valid modes: {', '.join(MODES)}")
        REMASKING_RULES.get(self.remasking)  # an unknown rule: a HarnessError listing the valid ones
        if self.gen_length <= 0:
            raise HarnessError(f"gen length must be positive, got {self.gen_length}")
        if not 0 < self.steps <= self.gen_length:
            raise HarnessError(f"steps must be between 1 and the gen length {self.gen_length}, got {self.steps}")
        if self.mode == "block":
            if self.block_length <= 0 or self.gen_length % self.block_length:
                raise HarnessError(f"gen length {self.gen_length} is not a multiple of block length "
                                   f"{self.block_length}")
            blocks = self.gen_length // self.block_length
            if self.steps % blocks:
                raise HarnessError(f"steps {self.steps} must be a multiple of the {blocks} blocks "
                                   f"(gen length {self.gen_length} / block length {self.block_length})")
        if self.temperature < 0:
            raise HarnessError(f"temperature must be >= 0, got {self.temperature}")
        if self.cfg_scale < 0:
            raise HarnessError(f"cfg scale must be >= 0, got {self.cfg_scale}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise HarnessError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 1:
            raise HarnessError(f"top-k must be >= 1 (0 on the command line: no top-k filter), got {self.top_k}")
        if not 0 < self.eps < 1:
            raise HarnessError(f"eps must be in (0, 1), got {self.eps}")
        if self.cache not in CACHE_MODES:
            raise HarnessError(f"unknown cache mode {self.cache!r}; valid modes: {', '.join(CACHE_MODES)}")
        if self.cache != "none" and self.mode != "block":
            raise HarnessError(f"--cache {self.cache} works with block diffusion only, not {self.mode} diffusion")


@dataclass
class Generation:
    tokens: torch.Tensor     # [B, gen_length] generated ids (after early stop, the rest filled with EOS)
    nfe: list[int]           # backbone forward passes each row took part in (CFG counts 2 per step)


class Proposal:
    """Turns the backbone's logits over a window into proposal logits over the same window.
    Factorized decoding is the identity (and passes no proposal at all); CoDD multiplies in an
    HMM circuit.

    `recommit(logits, tokens, committed, order, generators)` runs once the remasking rule has
    chosen the positions: it gets the backbone's logits, the window before and after the step
    and `order` [B, W], the chosen positions most confident first (-1 after each row's last),
    and returns the window to keep: by default the engine's own commit. CoDD redraws the
    chosen tokens one at a time (any-order proposal) or from HMM windows laid over them (full
    diffusion)."""

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor,
                 generators: list[torch.Generator]) -> torch.Tensor:
        """logits [B, W, V] float32 and the window's current ids [B, W] (mask_id where masked),
        one generator per row -> proposal logits [B, W, V]."""
        return logits

    def recommit(self, logits: torch.Tensor, tokens: torch.Tensor, committed: torch.Tensor, order: torch.Tensor,
                 generators: list[torch.Generator]) -> torch.Tensor:
        return committed


def block_schedule(masks: torch.Tensor, steps: int) -> torch.Tensor:
    """Tokens to commit [B, steps] in a block holding `masks` [B] masks: M // s per step, one
    more in the first M % s steps (LLaDA's linear schedule, exact in integers)."""
    extra = torch.arange(steps, device=masks.device) < (masks % steps).unsqueeze(1)
    return (masks // steps).unsqueeze(1) + extra.long()


def full_schedule(masks: torch.Tensor, steps: int, eps: float) -> torch.Tensor:
    """Tokens to commit [B, steps] under Dream's schedule: with M masks left at step i,
    int(M (1 - t[i+1] / t[i])) for t = linspace(1, eps, steps + 1), all the rest at the last
    step. Float32, as Dream computes it, so that the floors agree."""
    t = torch.linspace(1, eps, steps + 1)
    left, counts = masks.clone(), []
    for i in range(steps - 1):
        counts.append((left.float() * (1 - t[i + 1] / t[i])).long())
        left = left - counts[-1]
    return torch.stack([*counts, left], dim=1)


def _windows(config: DecodeConfig, prompt_width: int) -> list[tuple[int, int, int]]:
    """(start, width, steps) of each window, decoded one after the other."""
    if config.mode == "full":
        return [(prompt_width, config.gen_length, config.steps)]
    blocks = config.gen_length // config.block_length
    return [(prompt_width + b * config.block_length, config.block_length, config.steps // blocks)
            for b in range(blocks)]


def window_logits(backbone, x: torch.Tensor, attention: torch.Tensor, prompt_tokens: torch.Tensor,
                   start: int, width: int, cfg_scale: float, cache: BlockCache | None = None,
                   rows: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [b, width, V] predicting the window's tokens, in the backbone's dtype. Dream-style
    backbones predict position j at j - 1; classifier-free guidance contrasts with the prompt masked out.
    With a `cache`, `rows` [b] names the rows of x (distinct ints, e.g. their indices in the batch)."""
    shift = int(backbone.shifted_logits)

    def run(ids, mask, keys):
        if cache is None:
            return backbone.logits_at(ids, mask, slice(start - shift, start - shift + width))
        return cache.logits(ids, mask, keys, start - shift, width)

    if cfg_scale <= 0:
        return run(x, attention, rows)
    unconditional = x.masked_fill(prompt_tokens, backbone.mask_id)
    keys = None if rows is None else torch.cat([2 * rows, 2 * rows + 1])
    cond, un = run(torch.cat([x, unconditional]), torch.cat([attention, attention]), keys).chunk(2)
    return un + (cfg_scale + 1) * (cond - un)


def _scoring_dtype(logits: torch.Tensor, config: DecodeConfig) -> torch.dtype:
    """float64, or under reference_precision the dtype the remasking rule's reference computes in:
    LLaDA's low_confidence upcasts to float64, Dream and the CoDD authors' other rules do not."""
    upcast = not config.reference_precision or (config.mode == "block" and config.remasking == "low_confidence")
    return torch.float64 if upcast else logits.dtype


def _position_uniforms(per_row: list[int], generators: list[torch.Generator], *shape: int,
              device: torch.device) -> torch.Tensor:
    """U(0, 1) draws [sum(per_row), *shape] in float64, each row's from its own generator."""
    draws = torch.empty(sum(per_row), *shape, dtype=torch.float64, device=device)
    for row_draws, g in zip(draws.split(per_row), generators):
        torch.rand(row_draws.shape, generator=g, dtype=torch.float64, device=device, out=row_draws)
    return draws


def _nucleus(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Dream's top-p filter: a token stays while the probability ranked above it is at most
    top_p (so the top token always stays). Ranks only as many tokens as that needs: sorting
    the whole vocabulary at every masked position is the slow part."""
    probs = scores.softmax(-1)
    k = min(64, probs.shape[-1])
    while True:
        top, order = probs.topk(k, dim=-1)
        if k == probs.shape[-1] or (top.sum(-1) > top_p).all():
            break  # every token below the k-th has more than top_p ranked above it
        k = min(4 * k, probs.shape[-1])
    # The mass ranked above each token, as a shifted running sum (what Dream rounds in bfloat16).
    above = torch.cat([torch.zeros_like(top[..., :1]), top.cumsum(-1)[..., :-1]], -1)
    kept = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, above <= top_p)
    return scores.masked_fill(~kept, -torch.inf)


def filter_logits(scores: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Nucleus, then top-k filtering (Dream's order): excluded tokens get -inf."""
    if top_p is not None and top_p < 1:
        scores = _nucleus(scores, top_p)
    if top_k is not None:
        kth = scores.topk(min(top_k, scores.shape[-1]), dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, -torch.inf)
    return scores


def draw_candidates(logits: torch.Tensor, per_row: list[int], config: DecodeConfig,
                    generators: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """A candidate for each of n positions [n, V] (grouped by row, `per_row` of row b drawn from
    generators[b]) under the config's temperature and filters: (candidates [n], the float64
    scores [n, V] the confidence rules read)."""
    # Dream tempers before filtering and reads confidences off the tempered distribution; LLaDA off the raw one.
    tempered = config.mode == "full" and config.temperature > 0
    scores = logits.to(_scoring_dtype(logits, config))
    if tempered:
        scores = scores / config.temperature
    scores = filter_logits(scores, config.top_k, config.top_p)
    if config.temperature > 0:
        # Gumbel-max in float64: argmax exp(l) / (-log U)^T, taken in log space.
        uniforms = _position_uniforms(per_row, generators, scores.shape[-1], device=scores.device)
        log_gumbel = uniforms.log_().neg_().log_()
        candidates = scores.double().sub(log_gumbel, alpha=1.0 if tempered else config.temperature).argmax(-1)
    elif config.reference_precision and config.mode == "full":
        candidates = scores.softmax(-1).argmax(-1)  # Dream's greedy pick: the first largest rounded probability
    else:
        candidates = scores.argmax(-1)
    return candidates, scores


def _commit(tokens: torch.Tensor, logits: torch.Tensor, counts: torch.Tensor, config: DecodeConfig,
            generators: list[torch.Generator], mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The window's tokens [b, W] after one step, in each row the `counts` most confident
    masked positions taking their candidate, and those positions most confident first [b, W]
    (-1 after each row's last). Work is done on the masked positions only."""
    masked = tokens == mask_id
    per_row = masked.sum(1).tolist()
    candidates, scores = draw_candidates(logits[masked], per_row, config, generators)
    if config.remasking == RANDOM:
        confidence = _position_uniforms(per_row, generators, device=scores.device)
    else:
        confidence = REMASKING_RULES.get(config.remasking)(scores.softmax(-1), candidates)
    window_confidence = torch.full(masked.shape, -torch.inf, dtype=torch.float64, device=tokens.device)
    window_confidence[masked] = confidence.double()  # exact: every dtype used fits in float64
    # Highest confidence first; a stable sort breaks exact ties towards the left.
    order = window_confidence.argsort(dim=1, descending=True, stable=True)
    ranks_kept = torch.arange(masked.shape[1], device=tokens.device) < counts.unsqueeze(1)
    chosen = torch.zeros_like(masked).scatter(1, order, ranks_kept)
    proposed = tokens.masked_scatter(masked, candidates)
    return torch.where(chosen, proposed, tokens), order.masked_fill(~ranks_kept, -1)


def _before_first_eos(generated: torch.Tensor, eos_id: int) -> torch.Tensor:
    return (generated == eos_id).cumsum(1) == 0


def _done(generated: torch.Tensor, eos_id: int, mask_id: int) -> torch.Tensor:
    """Rows [b] holding an EOS with no mask before it: nothing still to decode can change their completion."""
    masked_before_eos = (generated == mask_id) & _before_first_eos(generated, eos_id)
    return (generated == eos_id).any(1) & ~masked_before_eos.any(1)


@torch.no_grad()
def generate(backbone, prompt_ids: torch.Tensor, attention_mask: torch.Tensor, config: DecodeConfig,
             generators: list[torch.Generator], proposal: Proposal | None = None) -> Generation:
    """Decode a left-padded batch of prompts [B, P] (attention_mask False at padding).
    `generators` gives each row its own random stream; `proposal` None = factorized decoding."""
    config.validate()
    check_cache(config.cache, backbone)
    batch, prompt_width = prompt_ids.shape
    if len(generators) != batch or prompt_width == 0:
        raise ValueError(f"need a non-empty prompt and one generator per row: {batch} rows, "
                         f"{prompt_width} prompt columns, {len(generators)} generators")
    device, mask_id = prompt_ids.device, backbone.mask_id
    x = torch.cat([prompt_ids, torch.full((batch, config.gen_length), mask_id, device=device)], dim=1)
    prompt_tokens = torch.cat([attention_mask.bool(), torch.zeros_like(x[:, prompt_width:], dtype=torch.bool)], 1)
    attention = torch.cat([attention_mask.bool(), torch.ones_like(x[:, prompt_width:], dtype=torch.bool)], 1)
    calls_per_step = 2 if config.cfg_scale > 0 else 1
    nfe = torch.zeros(batch, dtype=torch.long)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)

    cache = None if config.cache == "none" else BlockCache(backbone, config.cache)
    for start, width, steps in _windows(config, prompt_width):
        window = slice(start, start + width)
        masks = (x[:, window] == mask_id).sum(1)
        schedule = (full_schedule(masks, steps, config.eps) if config.mode == "full"
                    else block_schedule(masks, steps))
        for step in range(steps):
            rows = (~finished & (schedule[:, step] > 0)).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            logits = window_logits(backbone, x[rows], attention[rows], prompt_tokens[rows], start, width,
                                    config.cfg_scale, cache, rows)
            nfe[rows.cpu()] += calls_per_step
            row_generators = [generators[r] for r in rows.tolist()]
            tokens = x[rows, window]
            proposed = logits if proposal is None else proposal(logits.float(), tokens, row_generators)
            committed, order = _commit(tokens, proposed, schedule[rows, step], config, row_generators, mask_id)
            if proposal is not None:
                committed = proposal.recommit(logits.float(), tokens, committed, order, row_generators)
            x[rows, window] = committed
            if config.early_stop:
                finished[rows] = _done(x[rows, prompt_width:], backbone.eos_id, mask_id)

    generated = x[:, prompt_width:]
    if config.early_stop:
        after_eos = finished.unsqueeze(1) & ~_before_first_eos(generated, backbone.eos_id)
        generated = generated.masked_fill(after_eos, backbone.eos_id)
    return Generation(tokens=generated, nfe=nfe.tolist())
