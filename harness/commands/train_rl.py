"""`python -m harness train-rl`: train a diffu-GRPO LoRA adapter on a task's train split.

Prompts come from the train split of every task given (they must share a backbone and a
generation layout); rewards are the tasks' scorers shaped as d1 shapes them
(each task's `reward`). Options default to d1's settings, except on the embedded model,
whose presets (the shipped adapters' settings) suit a network 3000 times smaller trained
for minutes on a CPU. Re-running the same command with the same --out resumes.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path

import torch
from tqdm import tqdm

from baselines.grpo.adapter import network
from baselines.grpo.trainer import EMBEDDED_PRESET, GRPOConfig, flops_estimate, train
from harness.backbones import load_backbone, resolve_device
from harness.commands.arguments import add_data_dir, explicit_command, name_list, positive_int
from harness.engine.decoding import DecodeConfig
from harness.errors import HarnessError
from harness.training.checkpoint import CHECKPOINT
from harness.training.compute import write_compute_record
from tasks import get_task

# d1 samples rollouts at temperature 0.9 and two tokens per step (256 tokens in 128 steps).
ROLLOUT_TEMPERATURE = 0.9
TOKENS_PER_STEP = 2
OPTIONS = ("steps", "prompts_per_step", "group_size", "inner_updates", "lr", "beta", "clip_eps", "p_mask",
           "lora_rank", "lora_alpha", "seed", "checkpoint_every")


def add_parser(commands) -> None:
    p = commands.add_parser(
        "train-rl", help="train a diffu-GRPO LoRA adapter (the RL baseline)",
        description="Train a LoRA adapter on a backbone with diffu-GRPO (d1): group rollouts with the harness's "
                    "decoding engine, task-scorer rewards, clipped objective plus KL to the base model. Writes the "
                    "adapter (peft layout) and compute.json to --out; re-running with the same --out resumes.",
        epilog="example: python -m harness train-rl --task sudoku4,sudoku4-open --out runs/grpo-sudoku --steps 60")
    p.add_argument("--task", type=name_list, required=True,
                   help="task(s) whose train split gives the prompts, comma-separated (same backbone family)")
    p.add_argument("--out", required=True, help="output folder: adapter_config.json, adapter_model.safetensors, "
                                                 "compute.json")
    p.add_argument("--model", default="embedded", help="backbone (see `list`; default: embedded)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a --model directory or hub id other than the two aliases to run its own Python code")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the GPU if there is one, else the CPU)")
    p.add_argument("--dtype", default=None,
                   help="backbone dtype: float32 or bfloat16 (default: bfloat16 on CUDA, else float32); "
                        "the LoRA weights train in float32")
    p.add_argument("--steps", type=positive_int, required=True, help="rollout batches (each followed by mu updates)")
    p.add_argument("--prompts-per-step", type=positive_int, default=None, help="prompts per rollout batch")
    p.add_argument("--group-size", type=positive_int, default=None, help="completions per prompt, G (d1: 6)")
    p.add_argument("--inner-updates", type=positive_int, default=None, help="gradient steps per rollout batch, mu "
                                                                           "(d1: 8 sudoku/countdown, 12 math)")
    p.add_argument("--lr", type=float, default=None, help="AdamW learning rate (d1: 3e-6)")
    p.add_argument("--beta", type=float, default=None, help="KL coefficient (d1: 0.04)")
    p.add_argument("--clip-eps", type=float, default=None, help="ratio clipping epsilon (d1: 0.5)")
    p.add_argument("--p-mask", type=float, default=None, help="prompt masking probability (d1: 0.15)")
    p.add_argument("--lora-rank", type=positive_int, default=None, help="LoRA rank (d1: 128)")
    p.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (d1: 64)")
    p.add_argument("--temperature", type=float, default=ROLLOUT_TEMPERATURE,
                   help=f"rollout sampling temperature (default {ROLLOUT_TEMPERATURE})")
    p.add_argument("--tokens-per-step", type=positive_int, default=TOKENS_PER_STEP,
                   help=f"rollout budget as tokens committed per decoding step (default {TOKENS_PER_STEP})")
    p.add_argument("--limit", type=positive_int, default=None, help="first N train examples of each task")
    p.add_argument("--seed", type=int, default=0, help="seed of the adapter, prompts, rollouts and masks (default 0)")
    p.add_argument("--checkpoint-every", type=positive_int, default=None, help="steps between checkpoints (default 10)")
    add_data_dir(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def grpo_config(args: argparse.Namespace) -> GRPOConfig:
    """The run's settings: the options given, else the model's preset, else d1's."""
    base = GRPOConfig(steps=args.steps)
    if args.model == "embedded":
        base = replace(base, **EMBEDDED_PRESET)
    given = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    config = replace(base, **given)
    if not 0 <= config.p_mask < 1 or config.clip_eps <= 0 or config.beta < 0 or config.lr <= 0:
        raise HarnessError("need 0 <= --p-mask < 1, --clip-eps > 0, --beta >= 0 and --lr > 0")
    return config


def command_line(args: argparse.Namespace, config: GRPOConfig) -> str:
    """The full command with every option explicit, as recorded in compute.json."""
    return explicit_command("train-rl", {
        "task": ",".join(args.task), "out": args.out, "model": args.model,
        "trust_remote_code": args.trust_remote_code, "device": args.device, "dtype": args.dtype,
        **{f.name: getattr(config, f.name) for f in fields(GRPOConfig) if f.name in OPTIONS},
        "temperature": args.temperature, "tokens_per_step": args.tokens_per_step, "limit": args.limit or None,
        "data_dir": args.data_dir or None})


def main(args: argparse.Namespace) -> int:
    tasks = [get_task(name) for name in args.task]
    families = {task.family for task in tasks}
    layouts = {(task.gen_length, task.block_length) for task in tasks}
    if len(families) > 1 or len(layouts) > 1:
        raise HarnessError("train-rl tasks must share a backbone family and a gen/block length; got "
                           + ", ".join(f"{t.name} ({t.family}, {t.gen_length}/{t.block_length})" for t in tasks))
    config = grpo_config(args)
    gen_length, block_length = layouts.pop()
    if gen_length % args.tokens_per_step:
        raise HarnessError(f"--tokens-per-step {args.tokens_per_step} does not divide the gen length {gen_length}")
    decode = DecodeConfig(gen_length=gen_length, steps=gen_length // args.tokens_per_step, block_length=block_length,
                          temperature=args.temperature)
    decode.validate()
    items = [(task, ex) for task in tasks for ex in task.load("train", limit=args.limit, data_dir=args.data_dir)]
    device = resolve_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    backbone = load_backbone(args.model, families.pop(), args.dtype, device, args.trust_remote_code)
    prompts = [backbone.encode_chat(task.prompt(ex)) for task, ex in items]
    params = sum(p.numel() for p in network(backbone).parameters())

    def score(index: int, completion: list[int]) -> float:
        task, ex = items[index]
        return task.reward(backbone.decode(completion), ex)

    bar = tqdm(total=config.steps, desc=f"train-rl {'+'.join(args.task)}", disable=args.quiet, unit="step")

    def show(state, terms):
        bar.n = state.step
        bar.set_postfix(reward=f"{state.mean_rewards[-1]:.3f}", kl=f"{terms.kl:.4f}")

    state = train(backbone, prompts, score, config, decode, args.out, on_step=show)
    bar.close()
    out = Path(args.out)
    trainable = sum(p.numel() for p in state.policy.parameters() if p.requires_grad)
    first, last = state.mean_rewards[:10], state.mean_rewards[-10:]
    write_compute_record(out, kind="rl", task="+".join(args.task), wall_seconds=state.wall_seconds, steps=state.step,
                         tokens=state.tokens, trainable_params=trainable, flops_estimate=flops_estimate(state, params),
                         command=command_line(args, config), backbone=backbone.name,
                         cpu_seconds=round(state.cpu_seconds, 3), rollouts=state.rollouts,
                         mean_reward_first_10_steps=sum(first) / len(first),
                         mean_reward_last_10_steps=sum(last) / len(last),
                         mean_rewards=[round(r, 4) for r in state.mean_rewards], threads=torch.get_num_threads())
    (out / CHECKPOINT).unlink()
    print(f"{'+'.join(args.task)}: {state.step} steps, {state.rollouts} rollouts, mean reward "
          f"{sum(first) / len(first):.3f} (first 10 steps) -> {sum(last) / len(last):.3f} (last 10), "
          f"{state.wall_seconds:.0f} s -> {out}")
    return 0
