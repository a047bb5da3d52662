"""The diffu-GRPO training loop (d1, Zhao et al. 2025; DESIGN.md section 4.3), resumable on CPU.

Each step draws `prompts_per_step` prompts, samples a group of `group_size` completions for
each with the current policy through the harness's own decoding engine (block diffusion,
low_confidence, temperature > 0), rewards them and centres the rewards within each group.
Then `inner_updates` (mu) gradient steps reuse those rollouts, each with a fresh random
prompt mask shared by the current, old (the policy that sampled the rollouts) and reference
(the base network, adapter disabled) log-probability estimates.

Every random draw of step s comes from a generator seeded by (seed, s), and checkpoints hold
the adapter, the optimizer and the counters, so a resumed run continues exactly where an
uninterrupted one would have been.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from peft import PeftModel
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from baselines.grpo.adapter import add_lora, lora_targets, network
from baselines.grpo.loss import LossTerms, group_advantages, grpo_loss, masked_input, token_logps
from harness.engine.decoding import DecodeConfig, generate
from harness.errors import HarnessError
from harness.training.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint

RESUMABLE_CHANGES = ("steps", "checkpoint_every")


@dataclass(frozen=True)
class GRPOConfig:
    """d1's published settings are the defaults (LoRA r 128 / alpha 64, lr 3e-6, G 6, beta 0.04,
    clip 0.5, p_mask 0.15); mu is 12 for GSM8K/MATH and 8 for Countdown/Sudoku."""

    steps: int
    prompts_per_step: int = 4
    group_size: int = 6
    inner_updates: int = 8
    lr: float = 3e-6
    beta: float = 0.04
    clip_eps: float = 0.5
    p_mask: float = 0.15
    lora_rank: int = 128
    lora_alpha: float = 64.0
    seed: int = 0
    checkpoint_every: int = 10


# d1's settings scaled to the embedded model (the shipped adapters'): LoRA rank and learning rate for a
# 128-wide network, fewer inner updates and more prompts per step so that a run takes minutes.
EMBEDDED_PRESET = dict(lora_rank=16, lora_alpha=32.0, lr=2e-3, prompts_per_step=8, group_size=6, inner_updates=2)


@dataclass
class GRPOTrainState:
    policy: PeftModel
    optimizer: torch.optim.Optimizer
    step: int = 0
    rollouts: int = 0
    tokens: int = 0              # completion tokens sampled
    forward_tokens: int = 0      # tokens through the network without a backward pass (rollouts, old, reference)
    backward_tokens: int = 0     # tokens through the network with a backward pass (policy updates)
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0     # this process's CPU time: on a shared machine, wall time also counts the waiting
    mean_rewards: list[float] = field(default_factory=list)   # per step, of the rollouts

    def save(self, path: Path, config: GRPOConfig) -> None:
        save_checkpoint({"adapter": get_peft_model_state_dict(self.policy), "optimizer": self.optimizer.state_dict(),
                         "config": asdict(config), **{name: getattr(self, name) for name in _COUNTERS}}, path)

    def load(self, path: Path, config: GRPOConfig) -> None:
        """Continue a run with the same settings; the step count may change (step s's draws depend
        on s only and the learning rate is constant, so a longer run extends a shorter one)."""
        saved = load_checkpoint(path, {"config": asdict(config)}, resumable=RESUMABLE_CHANGES)
        set_peft_model_state_dict(self.policy, saved["adapter"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if saved["step"] > config.steps:
            raise HarnessError(f"{path} is already at step {saved['step']}, beyond the {config.steps} steps asked for")
        for name in _COUNTERS:
            setattr(self, name, saved[name])


_COUNTERS = ("step", "rollouts", "tokens", "forward_tokens", "backward_tokens", "wall_seconds", "cpu_seconds",
             "mean_rewards")


def completion_logps(backbone, inputs: torch.Tensor, attention: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probabilities [B, L] of the completion `targets` (the last L positions) from one forward
    pass of the backbone's network, with its adapter as it stands, on `inputs`; Dream-style networks
    predict position j at j - 1."""
    logits = backbone.forward(inputs, attention)
    width, shift = targets.shape[1], int(backbone.shifted_logits)
    return token_logps(logits[:, logits.shape[1] - width - shift: logits.shape[1] - shift], targets)


def counted_tokens(completions: torch.Tensor, eos_id: int) -> torch.Tensor:
    """The positions [B, L] the loss counts: up to and including the first EOS (the rest is padding)."""
    is_eos = completions == eos_id
    return (is_eos.long().cumsum(1) - is_eos.long()) == 0


def train(backbone, prompts: list[list[int]], reward: Callable[[int, list[int]], float], config: GRPOConfig,
          decode: DecodeConfig, out: str | Path,
          on_step: Callable[[GRPOTrainState, LossTerms], None] | None = None) -> GRPOTrainState:
    """Train a LoRA adapter on `backbone`'s network (modified in place: it carries the adapter
    afterwards) and save it to `out` (peft layout). `reward(i, completion_ids)` scores a
    completion of prompts[i]. Resumes from `out/checkpoint.pt` when a run with the same settings
    left one. `on_step(state, last_inner_loss_terms)` runs after every step (progress display)."""
    if decode.temperature <= 0:
        raise HarnessError("diffu-GRPO rollouts need a temperature > 0: a group of greedy completions is one completion")
    if config.group_size < 2:
        raise HarnessError(f"group size must be at least 2 (advantages are centred in the group), got {config.group_size}")
    torch.manual_seed(config.seed)  # the LoRA initialisation
    policy = add_lora(network(backbone), config.lora_rank, config.lora_alpha, lora_targets(backbone))
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=config.lr)
    state = GRPOTrainState(policy, optimizer)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT
    if checkpoint.is_file():
        state.load(checkpoint, config)
    device = backbone.device
    while state.step < config.steps:
        started, cpu_started = time.perf_counter(), time.process_time()
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + state.step)
        picks = torch.randint(len(prompts), (config.prompts_per_step,), generator=g).repeat_interleave(config.group_size)
        ids, prompt_mask = backbone.left_pad([prompts[i] for i in picks.tolist()])
        row_generators = [torch.Generator(device=device).manual_seed(int(s))
                          for s in torch.randint(2**62, (len(picks),), generator=g)]
        generation = generate(backbone, ids, prompt_mask, decode, row_generators)
        completions = generation.tokens
        rewards = torch.tensor([reward(i, row) for i, row in zip(picks.tolist(), completions.tolist())])
        advantages = group_advantages(rewards, config.group_size).to(device)

        sequence = torch.cat([ids, completions], 1)
        attention = torch.cat([prompt_mask, torch.ones_like(completions, dtype=torch.bool)], 1)
        completion = torch.cat([torch.zeros_like(prompt_mask), torch.ones_like(completions, dtype=torch.bool)], 1)
        counted = counted_tokens(completions, backbone.eos_id)
        mask_generator = torch.Generator(device=device).manual_seed(int(torch.randint(2**62, (1,), generator=g)))
        inputs = [masked_input(sequence, attention & ~completion, completion, backbone.mask_id, config.p_mask,
                               mask_generator) for _ in range(config.inner_updates)]
        with torch.no_grad():
            old = [completion_logps(backbone, x, attention, completions) for x in inputs]
            with policy.disable_adapter():
                ref = [completion_logps(backbone, x, attention, completions) for x in inputs]
        for x, old_logps, ref_logps in zip(inputs, old, ref):
            logps = completion_logps(backbone, x, attention, completions)
            terms = grpo_loss(logps, old_logps, ref_logps, advantages, counted, config.clip_eps, config.beta)
            optimizer.zero_grad(set_to_none=True)
            terms.loss.backward()
            optimizer.step()

        tokens = sequence.numel()
        state.step += 1
        state.rollouts += len(picks)
        state.tokens += completions.numel()
        state.forward_tokens += sum(generation.nfe) * sequence.shape[1] + 2 * config.inner_updates * tokens
        state.backward_tokens += config.inner_updates * tokens
        state.mean_rewards.append(float(rewards.mean()))
        state.wall_seconds += time.perf_counter() - started
        state.cpu_seconds += time.process_time() - cpu_started
        if state.step == config.steps or state.step % config.checkpoint_every == 0:
            state.save(checkpoint, config)
        if on_step is not None:
            on_step(state, terms)
    policy.save_pretrained(str(out))
    return state


def flops_estimate(state: GRPOTrainState, params: int) -> float:
    """2 FLOPs per parameter per token forward, 6 forward + backward (frozen base weights still
    pass gradients back, so the backward pass costs about what full training's does)."""
    return 2.0 * params * state.forward_tokens + 6.0 * params * state.backward_tokens
