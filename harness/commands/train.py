"""`python -m harness train`: train the embedded model of one task family (on CPU, or a GPU where there is one).

The data of a family is the train split of every registered task of that family, each
example turned into (chat-templated prompt, target + EOS padding). Every option defaults
to the family's preset, the settings the shipped model was trained with, so
`python -m harness train --family sudoku --out DIR` reproduces it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm import tqdm

import json

from harness.backbones import resolve_device
from harness.backbones.embedded import ASSETS, load_embedded_dir, save_embedded
from harness.backbones.tokenizer import load_tokenizer
from harness.backbones.transformer import TransformerConfig
from harness.commands.arguments import add_data_dir, explicit_command, positive_float, positive_int, unit_interval
from harness.errors import HarnessError
from harness.training.checkpoint import CHECKPOINT
from harness.training.compute import write_compute_record
from harness.training.family_data import family_block_length, family_pairs, family_tasks, held_out_split
from harness.training.grid_layout import grid_regions
from harness.training.sft import MODEL_PRESETS, TrainConfig, train
from harness.training.tokenizer import train_tokenizer

TOKENIZER_DIR = ASSETS / "tokenizer"
PRECISIONS = ("float32", "bfloat16")
VOCAB_SIZE = 4096


def add_parser(commands) -> None:
    p = commands.add_parser(
        "train", help="train the embedded model of a task family",
        description="Train the small masked diffusion transformer of one task family with LLaDA's SFT objective. "
                    "Re-running the same command with the same --out resumes from the last checkpoint. "
                    "Options default to the family's preset (the shipped model's settings).",
        epilog="example: python -m harness train --family sudoku --out runs/sudoku")
    p.add_argument("--family", required=True, choices=sorted(MODEL_PRESETS), help="task family to train on")
    p.add_argument("--out", required=True, help="output folder: model.safetensors, config.json, compute.json")
    p.add_argument("--steps", type=positive_int, default=None, help="optimizer steps")
    p.add_argument("--batch-size", type=positive_int, default=None, help="sequences per step")
    p.add_argument("--lr", type=positive_float, default=None, help="peak learning rate (AdamW, cosine decay)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, batches and masks (default 0)")
    p.add_argument("--layers", type=positive_int, default=None, help="transformer blocks")
    p.add_argument("--heads", type=positive_int, default=None, help="attention heads")
    p.add_argument("--dim", type=positive_int, default=None, help="model width")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="bfloat16: autocast the matrix products (2.4x faster on a CPU with AVX512-BF16; weights and "
                        "optimizer stay float32)")
    p.add_argument("--block-share", type=unit_interval, default=None,
                   help="share of sequences drawn as block decoding sees them (clean prefix, the current block "
                        "partly masked, the rest masked) instead of LLaDA's independent masking; 0 = LLaDA's SFT")
    p.add_argument("--init-from", default=None, metavar="DIR",
                   help="continue training a model that train exported (e.g. harness/assets/embedded/math): its "
                        "weights and architecture, a fresh optimizer and learning-rate schedule; compute.json then "
                        "counts the compute of both runs")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: the GPU if there is one, else the CPU); the model is exported "
                        "for the CPU either way, and a checkpoint resumes on any device")
    p.add_argument("--max-minutes", type=positive_float, default=None,
                   help="checkpoint and stop after this much wall time; re-run the same command to resume")
    p.add_argument("--checkpoint-every", type=positive_int, default=100, help="steps between checkpoints (default 100)")
    p.add_argument("--tokenizer", default=str(TOKENIZER_DIR),
                   help="tokenizer folder; trained there from every embedded task's training text if missing "
                        "(default: the shipped one)")
    add_data_dir(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def training_text(data_dir: str | None):
    """Prompts and targets of every embedded task's train split: the tokenizer's corpus."""
    for family in MODEL_PRESETS:
        for task in family_tasks(family):
            for ex in task.load("train", data_dir=data_dir):
                yield from (message["content"] for message in task.prompt(ex))
                yield task.target(ex)


def tokenizer_for(directory: Path, data_dir: str | None):
    if not (directory / "tokenizer.json").is_file():
        print(f"training the tokenizer ({VOCAB_SIZE} tokens) into {directory}")
        directory.mkdir(parents=True, exist_ok=True)
        train_tokenizer(training_text(data_dir), VOCAB_SIZE).save_pretrained(str(directory))
    return load_tokenizer(directory)


def command_line(args: argparse.Namespace) -> str:
    """The full command with every option explicit, as recorded in compute.json."""
    names = ("family", "out", "init_from", "steps", "batch_size", "lr", "seed", "layers", "heads", "dim", "precision",
             "block_share")
    return explicit_command("train", {**{name: getattr(args, name) for name in names}, "data_dir": args.data_dir or None})


def starting_model(args: argparse.Namespace, tokenizer):
    """(architecture, weights, compute record) of --init-from; architecture options default to its own."""
    start = load_embedded_dir(args.init_from)
    config = start.model.config
    for option, value in (("layers", config.n_layer), ("heads", config.n_head), ("dim", config.d_model)):
        if getattr(args, option) not in (None, value):
            raise HarnessError(f"--{option} {getattr(args, option)} differs from the --init-from model's {value}; "
                               "leave it out to keep that model's architecture")
        setattr(args, option, value)
    if len(tokenizer) != config.vocab_size:
        raise HarnessError(f"--init-from {args.init_from} has {config.vocab_size} tokens but the tokenizer "
                           f"{args.tokenizer} has {len(tokenizer)}")
    record = Path(args.init_from) / "compute.json"
    return config, start.model.state_dict(), json.loads(record.read_text()) if record.is_file() else None


def main(args: argparse.Namespace) -> int:
    device = resolve_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    preset = MODEL_PRESETS[args.family]
    out, tokenizer_dir = Path(args.out), Path(args.tokenizer)
    tokenizer = tokenizer_for(tokenizer_dir, args.data_dir)
    start_config, start_weights, previous = starting_model(args, tokenizer) if args.init_from else (None, None, None)
    for option in ("steps", "batch_size", "lr", "layers", "heads", "dim", "precision", "block_share"):
        if getattr(args, option) is None:
            setattr(args, option, getattr(preset, option))
    if args.dim % args.heads or (args.dim // args.heads) % 2:
        raise HarnessError(f"--dim {args.dim} must split into --heads {args.heads} heads of even width")

    pairs = family_pairs(args.family, tokenizer, args.data_dir)
    val_pairs, train_pairs = held_out_split(pairs, args.seed)
    model_config = start_config or TransformerConfig(
        vocab_size=len(tokenizer), n_layer=args.layers, n_head=args.heads, d_model=args.dim,
        grid_regions=grid_regions(pairs, tokenizer) if preset.grid else [])
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         checkpoint_every=args.checkpoint_every, autocast_bf16=args.precision == "bfloat16",
                         init_from=args.init_from and str(Path(args.init_from).resolve()),
                         stage=0 if not args.init_from else len((previous or {}).get("stages", [previous])),
                         block_share=args.block_share,
                         block_length=family_block_length(args.family) if args.block_share else TrainConfig.block_length)

    bar = tqdm(total=args.steps, desc=f"train {args.family}", disable=args.quiet, unit="step")

    def show(state, loss):
        bar.n = state.step
        bar.set_postfix(loss=f"{loss:.3f}", val=f"{state.val_loss:.3f}" if state.val_loss is not None else "-")

    state = train(model_config, config, train_pairs, val_pairs, out, tokenizer.mask_token_id,
                  tokenizer.pad_token_id, on_step=show,
                  max_seconds=None if args.max_minutes is None else 60 * args.max_minutes, init_weights=start_weights,
                  device=device, eos_id=tokenizer.eos_token_id)
    bar.close()
    if state.step < args.steps:
        val = "-" if state.val_loss is None else f"{state.val_loss:.4f}"
        print(f"{args.family}: stopped at step {state.step} of {args.steps} after --max-minutes {args.max_minutes:g} "
              f"(last val loss {val}); re-run the same command to resume")
        return 0
    save_embedded(state.model, out, args.family, tokenizer_dir)
    params = state.model.num_params()
    write_compute_record(out, kind="model", task=args.family, wall_seconds=state.wall_seconds, steps=state.step,
                         tokens=state.tokens, trainable_params=params, flops_estimate=6.0 * params * state.tokens,
                         command=command_line(args), device=device, val_loss=state.val_loss,
                         train_pairs=len(train_pairs), val_pairs=len(val_pairs), threads=torch.get_num_threads(),
                         precision=args.precision, val_curve=state.curve, previous=previous)
    (out / CHECKPOINT).unlink()
    print(f"{args.family}: {state.step} steps, val loss {state.val_loss:.4f}, {state.wall_seconds:.0f} s -> {out}")
    return 0
