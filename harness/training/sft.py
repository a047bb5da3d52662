"""LLaDA's supervised fine-tuning objective and the resumable CPU training loop.

Objective (LLaDA, Nie et al. 2025, SFT form): for a pair (prompt p0, response r0) draw
t ~ U(eps, 1), mask every response token independently with probability t (the prompt is
never masked) and minimise

    - E_t [ 1/t * sum_{i in response, masked} log p_theta(r0_i | p0, r_t) ] / |response|

Responses are padded with EOS up to their task's generation length, exactly the layout the
decoder sees ([prompt | gen_length masks]), so the model learns to emit EOS where decoding
will ask for it and the engine's early stop can fire. Shorter padding would save compute
(a math answer fills ~110 of its 256 tokens) but a bidirectional model sees where the
sequence ends: it would learn answer lengths relative to an end that decoding puts elsewhere.

Block layout (optional, `block_share`): semi-autoregressive decoding only ever shows the model one
state shape, a clean prefix, the current block partly masked and every later block fully masked,
which independent masking at any t almost never draws. A share of the sequences can be drawn in
that shape instead (BD3-LM, Arriola et al. 2025, trains only on it): a block k among those holding
the target or its first EOS, its tokens masked with probability t, everything after it masked, and
the loss on the block's masked tokens, weighted 1/t per block token.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.backbones.transformer import MaskedDiffusionTransformer, TransformerConfig
from harness.training.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from harness.training.pairs import Pair, collate

EPS = 1e-3


@dataclass(frozen=True)
class ModelPreset:
    """Model size and training settings of one family's embedded model."""

    steps: int
    batch_size: int
    lr: float
    layers: int
    heads: int
    dim: int
    grid: bool = False  # row/column/box embeddings for the sudoku grids
    precision: str = "float32"
    block_share: float = 0.0  # share of sequences drawn in the block layout (module docstring)


# The settings each shipped model (harness/assets/embedded/<family>) was trained with: train's defaults.
MODEL_PRESETS = {
    "names": ModelPreset(steps=1200, batch_size=64, lr=3e-3, layers=2, heads=2, dim=64),
    "sudoku": ModelPreset(steps=800, batch_size=64, lr=2e-3, layers=4, heads=4, dim=128, grid=True),
    "countdown": ModelPreset(steps=6000, batch_size=32, lr=2e-3, layers=4, heads=4, dim=128),  # stage 1 of 2 (README)
    "math": ModelPreset(steps=1000, batch_size=32, lr=1e-3, layers=6, heads=5, dim=320, precision="bfloat16"),
}


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int
    lr: float
    seed: int
    checkpoint_every: int = 100
    warmup_steps: int = 50
    # bfloat16 autocast of the matrix products (master weights and optimizer stay float32): on a CPU
    # with AVX512-BF16 a training step of the math model runs 2.4x faster than in float32.
    autocast_bf16: bool = False
    # The exported model a continued run starts from (`train --init-from`); None = random initialisation.
    init_from: str | None = None
    # Which run of a model this is (0: from scratch, 1: its first continuation, ...): it seeds the batch and
    # mask draws, so a continued run does not replay the batches of the runs before it (the held-out split
    # stays the seed's own).
    stage: int = 0
    # The share of sequences drawn in the decoder's block layout, and the block length (module docstring).
    block_share: float = 0.0
    block_length: int = 32


@dataclass(frozen=True)
class BlockLayout:
    """Draw `share` of a batch's sequences in the block layout of blocks of `length` tokens ending in `eos_id`."""

    share: float
    length: int
    eos_id: int


def sft_loss(model: MaskedDiffusionTransformer, ids: torch.Tensor, attention_mask: torch.Tensor,
             response_mask: torch.Tensor, mask_id: int, generator: torch.Generator,
             blocks: BlockLayout | None = None) -> torch.Tensor:
    """The LLaDA SFT loss of a batch (module docstring), averaged over its sequences; with `blocks`, that share
    of the sequences in the block layout."""
    # Drawn on the CPU generator whatever the device, so a run draws the same masks on a GPU as on the CPU.
    t = (EPS + (1 - EPS) * torch.rand((ids.shape[0], 1), generator=generator)).to(ids.device)
    drawn = response_mask & (torch.rand(ids.shape, generator=generator).to(ids.device) < t)
    masked, scored, scored_length = drawn, drawn, response_mask.sum(1, keepdim=True)
    if blocks is not None and blocks.share > 0:
        masked, scored, scored_length = _block_layout(drawn, response_mask, ids, blocks, scored_length, generator)
    hidden = model.hidden(torch.where(masked, mask_id, ids), attention_mask)
    nll = F.cross_entropy(model.lm_head(hidden[scored]), ids[scored], reduction="none")
    weight = (1 / (t * scored_length)).expand_as(ids)[scored]
    return (nll * weight).sum() / ids.shape[0]


def _block_layout(drawn: torch.Tensor, response_mask: torch.Tensor, ids: torch.Tensor, blocks: BlockLayout,
                  response_length: torch.Tensor, generator: torch.Generator):
    """(masked, scored, scored length) of a batch whose rows are redrawn in the block layout with probability
    `blocks.share`; `drawn` is each position's independent mask draw at its row's t."""
    rows = ids.shape[0]
    in_layout = (torch.rand((rows, 1), generator=generator) < blocks.share).to(ids.device)
    offset = response_mask.cumsum(1) - 1  # position within the response; -1 in the prompt
    first_eos = torch.where(response_mask & (ids == blocks.eos_id), offset, response_length).min(1, keepdim=True).values
    candidates = torch.minimum(first_eos // blocks.length + 1, (response_length - 1) // blocks.length + 1)
    block = (torch.rand((rows, 1), generator=generator).to(ids.device) * candidates).long()
    start = block * blocks.length
    in_block = (offset >= start) & (offset < start + blocks.length)
    masked = torch.where(in_layout, (drawn & in_block) | (offset >= start + blocks.length), drawn)
    scored = torch.where(in_layout, drawn & in_block, drawn)
    length = torch.where(in_layout, torch.full_like(response_length, blocks.length), response_length)
    return masked, scored, length


@torch.no_grad()
def validation_loss(model, pairs: list[Pair], batch_size: int, mask_id: int, pad_id: int) -> float:
    """The SFT loss on held-out pairs with a fixed masking seed, so successive evaluations compare."""
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        batch = (tensor.to(device) for tensor in collate(chunk, pad_id))
        total += sft_loss(model, *batch, mask_id, generator).item() * len(chunk)
    return total / len(pairs)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped."""

    model: MaskedDiffusionTransformer
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    tokens: int = 0
    wall_seconds: float = 0.0
    val_loss: float | None = None
    # One point per validation: step, tokens, wall_seconds, val_loss (the loss-vs-compute curve).
    curve: list[dict] = field(default_factory=list)

    def save(self, path: Path, config: TrainConfig) -> None:
        save_checkpoint({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                         "generator": self.generator.get_state(), **{name: getattr(self, name) for name in _COUNTERS},
                         **self._settings(config)}, path)

    def load(self, path: Path, config: TrainConfig) -> None:
        saved = load_checkpoint(path, self._settings(config))
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.generator.set_state(saved["generator"])
        for name in _COUNTERS:
            setattr(self, name, saved[name])

    def _settings(self, config: TrainConfig) -> dict[str, dict]:
        return {"train_config": asdict(config), "model_config": self.model.config.to_dict()}


_COUNTERS = ("step", "tokens", "wall_seconds", "val_loss", "curve")


def _draw_seed(config: TrainConfig) -> int:
    """The seed of the batch and mask draws: the run's own seed from scratch, one of its stage's after."""
    if config.stage == 0:
        return config.seed
    return int.from_bytes(hashlib.sha256(f"{config.seed}/{config.stage}".encode()).digest()[:4], "little")


def train(model_config: TransformerConfig, config: TrainConfig, train_pairs: list[Pair], val_pairs: list[Pair],
          out: Path, mask_id: int, pad_id: int,
          on_step: Callable[[TrainState, float], None] | None = None,
          max_seconds: float | None = None, init_weights: dict | None = None,
          device: torch.device | str = "cpu", eos_id: int | None = None) -> TrainState:
    """Train from scratch (or from `init_weights`, the state dict of `config.init_from`), or from
    `out/checkpoint.pt` when a run with the same settings left one.

    Checkpoints every `config.checkpoint_every` steps and at the end (with the validation
    loss). Batches are drawn with replacement from one seeded generator whose state is
    checkpointed, so an interrupted and resumed run ends with the same weights as an
    uninterrupted one. `on_step(state, loss)` runs after every step (progress display).
    With `max_seconds`, the call checkpoints and stops after the first step past that much wall
    time (`state.step < config.steps` then): long runs go in chunks that each fit one command.
    `device` is not a setting of the run: a checkpoint written on one device resumes on another.
    `eos_id` marks where targets end, for `config.block_share` > 0 (the validation loss stays LLaDA's).
    """
    if config.block_share > 0 and eos_id is None:
        raise ValueError("a block layout share needs the EOS id")
    blocks = BlockLayout(config.block_share, config.block_length, eos_id) if config.block_share > 0 else None
    torch.manual_seed(config.seed)
    device = torch.device(device)
    model = MaskedDiffusionTransformer(model_config)
    if init_weights is not None:
        model.load_state_dict(init_weights)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95))
    state = TrainState(model, optimizer, torch.Generator().manual_seed(_draw_seed(config)))
    Path(out).mkdir(parents=True, exist_ok=True)
    checkpoint = Path(out) / CHECKPOINT
    if checkpoint.is_file():
        state.load(checkpoint, config)
    call_started = time.perf_counter()
    model.train()
    while state.step < config.steps:
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(state.step, config)
        picks = torch.randint(len(train_pairs), (config.batch_size,), generator=state.generator)
        ids, attention, response = (tensor.to(device)
                                    for tensor in collate([train_pairs[i] for i in picks.tolist()], pad_id))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.autocast_bf16):
            loss = sft_loss(model, ids, attention, response, mask_id, state.generator, blocks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state.step += 1
        state.tokens += int(attention.sum())
        checkpointing = state.step == config.steps or state.step % config.checkpoint_every == 0
        if checkpointing:
            model.eval()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.autocast_bf16):
                state.val_loss = validation_loss(model, val_pairs, config.batch_size, mask_id, pad_id)
            model.train()
        state.wall_seconds += time.perf_counter() - started
        if checkpointing:
            state.curve.append({"step": state.step, "tokens": state.tokens, "wall_seconds": state.wall_seconds,
                                "val_loss": state.val_loss})
        out_of_time = max_seconds is not None and time.perf_counter() - call_started > max_seconds
        if checkpointing or out_of_time:
            state.save(checkpoint, config)
        if on_step is not None:
            on_step(state, loss.item())
        if out_of_time:
            break
    model.to("cpu").eval()  # exported and decoded on the CPU
    return state
