"""`python -m harness train-pc`: train the CoDD PC of one task family on its frozen backbone (CPU).

The data are the family's training sequences, built exactly as for the embedded model
(harness/training/family_data.py). Every option defaults to the family's preset, the settings the
shipped PC was trained with, so `python -m harness train-pc --family names --out DIR`
reproduces `codd/assets/names`. The output directory holds the PC (hmm.safetensors,
config.json with the validation curve and the default gamma and tau in its metadata) and
compute.json; re-running the same command resumes an interrupted run.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import torch

from codd.storage import save_pc
from codd.training import (CHECKPOINT, PRESETS, RATIOS, WINDOW_CACHE, PCTrainConfig, PCTrainState, cached_window_sets,
                           choose_gamma, evaluate, flops_per_window, train_pc)
from harness.backbones import load_backbone
from harness.commands.arguments import add_data_dir, explicit_command, positive_int
from harness.errors import HarnessError
from harness.training.compute import write_compute_record
from harness.training.family_data import family_pairs, family_tasks


def add_parser(commands) -> None:
    p = commands.add_parser(
        "train-pc", help="train the CoDD PC (HMM) of a task family on its frozen backbone (CPU)",
        description="Train a homogeneous HMM over W-token windows to maximise the conditional log-likelihood of "
                    "masked solution tokens under its product with the frozen backbone (CoDD, Eq. 7), with early "
                    "stopping on held-out windows. Re-running the same command with the same --out resumes. "
                    "Options default to the family's preset (the shipped PC's settings).",
        epilog="example: python -m harness train-pc --family names --out runs/names-pc")
    p.add_argument("--family", required=True, choices=sorted(PRESETS), help="task family (and its backbone)")
    p.add_argument("--out", required=True, help="output folder: hmm.safetensors, config.json, compute.json")
    p.add_argument("--model", default="embedded", help="frozen backbone (default: embedded)")
    p.add_argument("--states", type=positive_int, default=None, help="hidden states N")
    p.add_argument("--window", type=positive_int, default=None, help="window width W (must divide the gen length)")
    p.add_argument("--epochs", type=positive_int, default=None, help="maximum epochs")
    p.add_argument("--batch-size", type=positive_int, default=None, help="windows per Adam step")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate on the HMM's logits")
    p.add_argument("--patience", type=positive_int, default=None, help="epochs without held-out gain before stopping")
    p.add_argument("--top-k", type=positive_int, default=None, help="backbone log-probabilities cached per position")
    p.add_argument("--train-pairs", type=positive_int, default=None, help="training sequences (at most)")
    p.add_argument("--val-pairs", type=positive_int, default=None, help="held-out sequences")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, masks, initialisation and shuffling")
    add_data_dir(p)
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(func=main)


def _fill_preset(args: argparse.Namespace) -> None:
    """Preset values for the options not given, then the checks that need no data."""
    preset = PRESETS[args.family]
    for option, value in asdict(preset).items():
        if getattr(args, option) is None:
            setattr(args, option, value)
    if not args.lr > 0:
        raise HarnessError(f"--lr must be positive, got {args.lr}")
    for task in family_tasks(args.family):
        if task.gen_length % args.window:
            raise HarnessError(f"--window {args.window} must divide the gen length {task.gen_length} of task "
                               f"{task.name}")


def command_line(args: argparse.Namespace) -> str:
    """The full command with every option explicit, as recorded in compute.json."""
    names = ("family", "out", "model", *asdict(PRESETS[args.family]), "seed")
    return explicit_command("train-pc", {**{name: getattr(args, name) for name in names},
                                         "data_dir": args.data_dir or None})


def main(args: argparse.Namespace) -> int:
    _fill_preset(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    backbone = load_backbone(args.model, args.family)
    settings = {"family": args.family, "model": args.model, "window": args.window, "top_k": args.top_k,
                "train_pairs": args.train_pairs, "val_pairs": args.val_pairs, "seed": args.seed}
    sets, cache_seconds = cached_window_sets(out, backbone, lambda: family_pairs(args.family, backbone.tokenizer,
                                                                                 args.data_dir), settings)
    config = PCTrainConfig(states=args.states, window=args.window, epochs=args.epochs, batch_size=args.batch_size,
                           lr=args.lr, patience=args.patience, seed=args.seed, top_k=args.top_k)

    def show(state: PCTrainState) -> None:
        if not args.quiet:
            last = state.history[-1]
            print(f"epoch {state.epoch}: held-out CLL per masked token {last['val_pc']:.4f} "
                  f"(factorized {last['val_factorized']:.4f}), best epoch {state.best_epoch}, "
                  f"{state.wall_seconds:.0f} s", flush=True)

    state = train_pc(config, sets["train"], sets["val"], out, on_epoch=show)
    curve = [{"ratio": ratio, **evaluate(state.hmm, sets[f"ratio {ratio}"], interval=True)} for ratio in RATIOS]
    gamma = choose_gamma(curve)
    save_pc(state.hmm, out, backbone=backbone.name, family=args.family, gamma=gamma, tau=1.0,
            gamma_rule="largest mask ratio up to which the PC's held-out CLL is at no ratio significantly below "
                       "factorized's (95% bootstrap interval of the difference over windows)",
            validation_curve=curve, training={**asdict(config), "epochs_run": state.epoch,
                                              "best_epoch": state.best_epoch, "history": state.history})
    train_windows = sets["train"]
    masked_per_window = train_windows.masked_tokens() / len(train_windows)
    params = sum(p.numel() for p in state.hmm.parameters())
    write_compute_record(out, kind="pc", task=args.family, wall_seconds=cache_seconds + state.wall_seconds,
                         steps=state.steps, tokens=state.windows_seen * args.window, trainable_params=params,
                         flops_estimate=state.windows_seen * flops_per_window(config, backbone.vocab_size,
                                                                              masked_per_window),
                         command=command_line(args), epochs=state.epoch, best_epoch=state.best_epoch,
                         windows={"train": len(train_windows), "val": len(sets["val"])},
                         cache_seconds=round(cache_seconds, 3), threads=torch.get_num_threads(),
                         optimizer=f"Adam lr {args.lr} on the HMM's logits, batch {args.batch_size} windows")
    (out / CHECKPOINT).unlink()
    (out / WINDOW_CACHE).unlink()
    if not args.quiet:
        for point in curve:
            print(f"mask ratio {point['ratio']:.1f}: CLL per masked token PC {point['pc']:.4f} "
                  f"factorized {point['factorized']:.4f}")
        print(f"{args.family}: {state.epoch} epochs (best {state.best_epoch}), default gamma {gamma}, "
              f"{cache_seconds + state.wall_seconds:.0f} s -> {out}")
    return 0
