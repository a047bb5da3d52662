"""Training a CoDD PC on a frozen backbone (DESIGN.md 4.2; the paper's Eq. 7).

For a training sequence (chat prompt + target padded with EOS to the gen length, as the
embedded model was trained) draw t ~ U(0, 1), mask every solution token with probability t,
run the frozen backbone once and split the solution into W-token windows. Each window gives
log-probabilities log q_t and its true tokens x0, and the PC maximises the conditional
log-likelihood of the masked tokens under the product,

    log p^(x0 | xt) = log p_w(x0) + sum_t log q_t(x0_t) - log Z
                    = log_evidence(log q, x0) - log_evidence(log q, xt),

per masked token, with Adam on the HMM's logits. The factorized baseline's CLL of the same
window is sum log q_t(x0_t) over its masked positions.

The backbone's outputs are computed once and cached, compressed to each position's `top_k`
log-probabilities with the remaining mass spread evenly over the other tokens (exact when
top_k >= V; for a trained model the tail carries little mass, and the cache of a math
window shrinks from V to 2 top_k numbers per position). Windows that lie wholly in the EOS
padding after the first EOS are left out: they are many and trivial.

Training stops early when the held-out CLL has not improved for `patience` epochs and keeps
the best epoch's parameters (the prototype's HMMs overfit). A checkpoint after every epoch
(parameters, optimiser, shuffling generator, best so far) lets an interrupted run continue
to exactly the result of an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from codd.hmm import HMM
from harness.engine.decoding import window_logits
from harness.errors import HarnessError
from harness.stats import bootstrap_interval
from harness.training.checkpoint import load_checkpoint, save_checkpoint
from harness.training.pairs import Pair, collate

CHECKPOINT = "pc_checkpoint.pt"
WINDOW_CACHE = "pc_cache.pt"
RATIOS = tuple(round(0.1 * i, 1) for i in range(1, 11))


@dataclass
class WindowSet:
    """Cached evidence of W-token windows: true tokens [n, W], which positions were masked
    [n, W], and the backbone's log-probabilities as top-k ids and values [n, W, k] plus the
    log-probability of every other token [n, W]."""

    tokens: torch.Tensor
    masked: torch.Tensor
    top_ids: torch.Tensor
    top_log_q: torch.Tensor
    log_tail: torch.Tensor
    vocab_size: int

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log_q [b, W, V] rebuilt from the cache, tokens [b, W], masked [b, W])."""
        log_q = self.log_tail[index].unsqueeze(-1).expand(-1, -1, self.vocab_size).clone()
        log_q.scatter_(-1, self.top_ids[index].long(), self.top_log_q[index])
        return log_q, self.tokens[index], self.masked[index]

    def masked_tokens(self) -> int:
        return int(self.masked.sum())

    @staticmethod
    def concatenate(parts: list["WindowSet"], vocab_size: int) -> "WindowSet":
        fields = ("tokens", "masked", "top_ids", "top_log_q", "log_tail")
        return WindowSet(*(torch.cat([getattr(p, f) for p in parts]) for f in fields), vocab_size=vocab_size)


def _compress(log_q: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    k = min(top_k, log_q.shape[-1])
    values, ids = log_q.topk(k, dim=-1)
    rest = log_q.shape[-1] - k
    tail_mass = (1 - values.exp().sum(-1)).clamp_min(0)
    # Floored at the smallest normal float: a backbone sure of its top k leaves no tail mass, and a log of 0
    # there made the PC's gradients NaN (the scratchpad countdown model, whose top 64 hold all the mass).
    log_tail = (tail_mass / rest).clamp_min(torch.finfo(tail_mass.dtype).tiny).log() if rest \
        else torch.full_like(tail_mass, -math.inf)
    return ids.int(), values, log_tail


@torch.no_grad()
def cache_windows(backbone, pairs: list[Pair], width: int, masks: Callable[[int, torch.Generator], torch.Tensor],
                  generator: torch.Generator, top_k: int, batch_size: int = 16) -> WindowSet:
    """The windows of `pairs` under the frozen backbone. `masks(length, generator)` draws which
    of a solution's `length` tokens are masked ([length] bool); a window needs a masked token
    and a start no later than the solution's first EOS to be kept."""
    parts = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        ids, attention, response = collate(chunk, backbone.pad_id)
        length = len(chunk[0].response)
        masked = torch.stack([masks(length, generator) for _ in chunk])
        x = ids.clone()
        x[:, -length:] = x[:, -length:].masked_fill(masked, backbone.mask_id)
        x, attention = x.to(backbone.device), attention.to(backbone.device)
        prompt_tokens = attention & ~response.to(backbone.device)
        log_q = window_logits(backbone, x, attention, prompt_tokens, x.shape[1] - length, length, 0.0)
        log_q = log_q.log_softmax(-1).cpu()
        tokens = ids[:, -length:]
        solution_end = torch.where((tokens == backbone.eos_id).any(1), (tokens == backbone.eos_id).int().argmax(1),
                                   torch.full((len(chunk),), length))
        windows = length // width
        starts = torch.arange(windows) * width
        keep = (starts.unsqueeze(0) <= solution_end.unsqueeze(1)) & masked.view(-1, windows, width).any(-1)
        top_ids, top_log_q, log_tail = _compress(log_q.view(-1, windows, width, log_q.shape[-1])[keep], top_k)
        parts.append(WindowSet(tokens.view(-1, windows, width)[keep], masked.view(-1, windows, width)[keep],
                               top_ids, top_log_q, log_tail, backbone.vocab_size))
    return WindowSet.concatenate(parts, backbone.vocab_size)


def random_masks(length: int, generator: torch.Generator) -> torch.Tensor:
    """Training masks: t ~ U(0, 1), each token masked with probability t."""
    t = torch.rand((), generator=generator)
    return torch.rand(length, generator=generator) < t


def ratio_masks(ratio: float, width: int) -> Callable[[int, torch.Generator], torch.Tensor]:
    """Validation masks: in every W-token window exactly max(1, round(ratio W)) random positions."""
    count = max(1, round(ratio * width))

    def draw(length: int, generator: torch.Generator) -> torch.Tensor:
        order = torch.rand(length // width, width, generator=generator).argsort(-1)
        return (order < count).reshape(length)
    return draw


def conditional_log_likelihood(hmm: HMM, log_q: torch.Tensor, tokens: torch.Tensor,
                               masked: torch.Tensor) -> torch.Tensor:
    """log p^(x0_masked | x0_observed) under the product, per window [b]."""
    return hmm.log_evidence(log_q, tokens) - hmm.log_evidence(log_q, tokens.masked_fill(masked, -1))


def factorized_log_likelihood(log_q: torch.Tensor, tokens: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """sum over masked positions of log q_t(x0_t), per window [b]."""
    return (log_q.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) * masked).sum(-1)


@torch.no_grad()
def evaluate(hmm: HMM, windows: WindowSet, batch_size: int = 64, interval: bool = False) -> dict:
    """Mean CLL per masked token (nats) of the PC product and of the factorized baseline; with
    `interval`, also the 95% bootstrap interval over windows of their difference (PC - factorized)."""
    pc, factorized = [], []
    for start in range(0, len(windows), batch_size):
        log_q, tokens, masked = windows.batch(torch.arange(start, min(start + batch_size, len(windows))))
        pc.append(conditional_log_likelihood(hmm, log_q, tokens, masked).double())
        factorized.append(factorized_log_likelihood(log_q, tokens, masked).double())
    pc, factorized = torch.cat(pc).numpy(), torch.cat(factorized).numpy()
    count = windows.masked_tokens()
    scores = {"pc": pc.sum() / count, "factorized": factorized.sum() / count, "windows": len(windows),
              "masked_tokens": count}
    if interval:
        masked = windows.masked.sum(-1).double().numpy()
        low, high = bootstrap_interval((pc - factorized, masked), lambda d, m: d.sum(-1) / m.sum(-1))
        scores["difference_ci95"] = [low, high]
    return scores


def choose_gamma(curve: list[dict]) -> float:
    """The largest mask ratio up to which the PC is nowhere significantly worse than factorized (the 95%
    interval of its CLL difference lies below 0 at no measured ratio up to it), 0 if it is worse already
    at the smallest: the PC is applied while the ratio is at most gamma. A loss within noise keeps it on."""
    gamma = 0.0
    for point in sorted(curve, key=lambda p: p["ratio"]):
        if point["difference_ci95"][1] < 0:
            break
        gamma = point["ratio"]
    return gamma


@dataclass(frozen=True)
class PCPreset:
    states: int
    window: int
    epochs: int
    batch_size: int
    lr: float
    patience: int
    top_k: int
    train_pairs: int
    val_pairs: int


# The settings each shipped PC (codd/assets/<family>) was trained with: train-pc's defaults.
PRESETS = {
    "names": PCPreset(states=32, window=2, epochs=30, batch_size=256, lr=0.03, patience=3, top_k=64,
                      train_pairs=10000, val_pairs=1000),
    "sudoku": PCPreset(states=256, window=16, epochs=20, batch_size=64, lr=0.02, patience=2, top_k=32,
                       train_pairs=20000, val_pairs=1000),
    "countdown": PCPreset(states=256, window=64, epochs=20, batch_size=64, lr=0.02, patience=2, top_k=64,
                          train_pairs=20000, val_pairs=1000),
    "math": PCPreset(states=128, window=32, epochs=8, batch_size=32, lr=0.02, patience=2, top_k=64,
                     train_pairs=1500, val_pairs=150),
}


@dataclass(frozen=True)
class PCTrainConfig:
    states: int
    window: int
    epochs: int          # at most; early stopping usually ends sooner
    batch_size: int
    lr: float
    patience: int        # epochs without a better held-out CLL before stopping
    seed: int
    top_k: int
    init_scale: float = 0.5


@dataclass
class PCTrainState:
    """Everything a run needs to continue exactly where it stopped."""

    hmm: HMM
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    best: dict
    epoch: int = 0
    steps: int = 0
    windows_seen: int = 0
    best_epoch: int = 0
    best_val: float = -math.inf
    wall_seconds: float = 0.0
    history: list = field(default_factory=list)

    def save(self, path: Path, config: PCTrainConfig) -> None:
        save_checkpoint({"hmm": self.hmm.state_dict(), "optimizer": self.optimizer.state_dict(),
                         "generator": self.generator.get_state(), **{name: getattr(self, name) for name in _COUNTERS},
                         "config": asdict(config)}, path)

    def load(self, path: Path, config: PCTrainConfig) -> None:
        saved = load_checkpoint(path, {"config": asdict(config)})
        self.hmm.load_state_dict(saved["hmm"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.generator.set_state(saved["generator"])
        for name in _COUNTERS:
            setattr(self, name, saved[name])


_COUNTERS = ("best", "epoch", "steps", "windows_seen", "best_epoch", "best_val", "wall_seconds", "history")


def initial_hmm(config: PCTrainConfig, vocab_size: int) -> HMM:
    """Logits ~ N(0, init_scale^2): close to a uniform prior, so the product starts near the
    factorized baseline, with enough noise to tell the states apart."""
    generator = torch.Generator().manual_seed(config.seed)
    return HMM.random(config.states, vocab_size, generator=generator, window=config.window, scale=config.init_scale)


def train_pc(config: PCTrainConfig, train: WindowSet, val: WindowSet, out: Path,
             on_epoch: Callable[[PCTrainState], None] | None = None) -> PCTrainState:
    """Train from scratch, or from `out/pc_checkpoint.pt` when a run with the same settings left
    one; returns the state with the best held-out epoch's parameters loaded."""
    hmm = initial_hmm(config, train.vocab_size)
    optimizer = torch.optim.Adam(hmm.parameters(), lr=config.lr)
    state = PCTrainState(hmm, optimizer, torch.Generator().manual_seed(config.seed), best=copy.deepcopy(hmm.state_dict()))
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT
    if checkpoint.is_file():
        state.load(checkpoint, config)
    while state.epoch < config.epochs and state.epoch - state.best_epoch < config.patience:
        started = time.perf_counter()
        order = torch.randperm(len(train), generator=state.generator)
        for index in order.split(config.batch_size):
            log_q, tokens, masked = train.batch(index)
            loss = -conditional_log_likelihood(hmm, log_q, tokens, masked).sum() / masked.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state.steps += 1
            state.windows_seen += len(index)
        state.epoch += 1
        scores = evaluate(hmm, val)
        state.history.append({"epoch": state.epoch, "val_pc": scores["pc"], "val_factorized": scores["factorized"]})
        if scores["pc"] > state.best_val:
            state.best_val, state.best_epoch = scores["pc"], state.epoch
            state.best = copy.deepcopy(hmm.state_dict())
        state.wall_seconds += time.perf_counter() - started
        state.save(checkpoint, config)
        if on_epoch is not None:
            on_epoch(state)
    hmm.load_state_dict(state.best)
    return state


def flops_per_window(config: PCTrainConfig, vocab_size: int, masked_per_window: float) -> float:
    """Forward + backward (x3) of the two evidence passes of one window: the soft-evidence
    product over masked positions (2 V N per position) and the forward recursions (2 W N^2 each)."""
    n = config.states
    return 3 * (2 * masked_per_window * vocab_size * n + 2 * 2 * config.window * n * n)


def cached_window_sets(out: Path, backbone, pairs: Callable[[], list[Pair]], settings: dict
                       ) -> tuple[dict[str, WindowSet], float]:
    """Train, held-out and per-ratio windows of `pairs()` and the seconds they took, computed once per output
    folder (resuming reuses them). `settings` identifies the data (e.g. family and model) and holds its split:
    `window`, `top_k`, `val_pairs` held-out sequences, at most `train_pairs` training ones, `seed`."""
    path = out / WINDOW_CACHE
    if path.is_file():
        cache = load_checkpoint(path)
        if cache["key"] != settings:
            raise HarnessError(f"{path} was computed with other settings; re-run with the same options or use a new --out")
        return {name: WindowSet(**sets) for name, sets in cache["sets"].items()}, cache["seconds"]
    started = time.perf_counter()
    window, top_k, seed, held_out = settings["window"], settings["top_k"], settings["seed"], settings["val_pairs"]
    pairs = pairs()
    random.Random(seed).shuffle(pairs)
    val_pairs, train_pairs = pairs[:held_out], pairs[held_out:held_out + settings["train_pairs"]]
    if not train_pairs:
        raise HarnessError(f"only {len(pairs)} {settings['family']} sequences: nothing left for training after "
                           f"--val-pairs {held_out}")
    # Longest first, so that each forward batch holds sequences of similar length.
    train_pairs.sort(key=lambda p: -len(p.prompt))
    sets = {"train": cache_windows(backbone, train_pairs, window, random_masks, torch.Generator().manual_seed(seed),
                                   top_k),
            "val": cache_windows(backbone, val_pairs, window, random_masks, torch.Generator().manual_seed(seed + 1),
                                 top_k)}
    for ratio in RATIOS:  # the same generator seed for every ratio: nested masks
        sets[f"ratio {ratio}"] = cache_windows(backbone, val_pairs, window, ratio_masks(ratio, window),
                                               torch.Generator().manual_seed(seed + 2), top_k)
    seconds = time.perf_counter() - started
    save_checkpoint({"key": settings, "seconds": seconds, "sets": {name: vars(s) for name, s in sets.items()}}, path)
    return sets, seconds
