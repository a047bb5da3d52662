"""`python -m harness run`: evaluate samplers on tasks across step budgets.

The same command runs data-parallel when launched by torchrun or accelerate launch
(see harness/distributed.py): every rank decodes its share, rank 0 reports.
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from datetime import datetime

from harness.backbones import resolve_device
from harness.commands.arguments import add_data_dir, name_list, positive_int, positive_int_list, sampler_list
from harness.distributed import (DEFAULT_BARRIER_TIMEOUT_MINUTES, claim_device, describe_rank, detect_world,
                                 process_group)
from harness.engine.cache import CACHE_MODES
from harness.engine.sampler import list_samplers
from harness.likelihood import likelihood_rows
from harness.protocols import PROTOCOLS
from harness.report import formatting
from harness.run_lock import RunLock
from harness.runner import RunOptions, format_table, manifest, plan, run
from harness.store import RunStore
from tasks.answer_rule import ANSWER_RULES, FLEXIBLE


def add_parser(commands) -> None:
    p = commands.add_parser(
        "run", help="evaluate samplers on tasks across step budgets",
        description="Decode every test example of each task with each sampler at each step budget, score it, "
                    "and store one record per sample. Re-running with the same --out resumes where it stopped. "
                    "Launched by torchrun or accelerate launch, each rank decodes its share on its own device.",
        epilog="example: python -m harness run --tasks math500,gsm8k --steps 64,128,256 --limit 16")
    p.add_argument("--tasks", type=name_list, required=True, help="comma-separated task names (see `list`)")
    p.add_argument("--samplers", type=sampler_list, default=None,
                   help="comma-separated sampler specs, e.g. `factorized,codd:gamma=0.5`; "
                        "default: every sampler that takes a step budget and applies to the task's model")
    p.add_argument("--with-ceiling", action="store_true",
                   help="also run `sequential` (one token per step) as the quality ceiling")
    p.add_argument("--remasking", type=name_list, default=None,
                   help="comma-separated remasking rules: low_confidence, margin, entropy, random, topprob "
                        "(default: the model's)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int_list, default=None,
                        help="absolute step budgets, e.g. 64,128,256 (each must fit every task's gen length)")
    budget.add_argument("--tokens-per-step", type=positive_int_list, default=None,
                        help="budgets as tokens committed per step, e.g. 8,4,2 (steps = gen length / k per task; "
                             "default 2)")
    p.add_argument("--limit", type=positive_int, default=None, help="first N test examples of each task")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="prompts decoded together (default 16)")
    p.add_argument("--gen-length", type=positive_int, default=None, help="tokens to generate (default: per task)")
    p.add_argument("--block-length", type=positive_int, default=None,
                   help="block length of block diffusion (default: per task, 32 for text)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: the task's, else the model's; 0 = greedy)")
    p.add_argument("--top-p", type=float, default=None,
                   help="nucleus filter before sampling: keep the most probable tokens up to this mass (default: "
                        "the model's, 0.95 for Dream, none for LLaDA; 1 = off)")
    p.add_argument("--top-k", type=int, default=None,
                   help="keep only the k most probable tokens (default: the model's, 50 for Dream as its authors' "
                        "code runs it, none for LLaDA; 0 = off)")
    p.add_argument("--cfg-scale", type=float, default=0.0, help="classifier-free guidance scale (default 0)")
    p.add_argument("--no-early-stop", action="store_true",
                   help="decode every position even after EOS (the reference LLaDA behaviour)")
    p.add_argument("--reference-precision", action="store_true",
                   help="compute confidences in the dtype the reference loops use (Dream's, the CoDD authors': the "
                        "model's, bfloat16 on a GPU) instead of float64, to reproduce their commits exactly")
    p.add_argument("--cache", default="none", choices=CACHE_MODES,
                   help="approximate KV cache for block diffusion (Fast-dLLM): prefix keeps the prompt's and finished "
                        "blocks' keys and values, dual also the masked blocks after the current one; refreshed at each "
                        "block; the embedded models only (default none: exact)")
    p.add_argument("--model", default="embedded",
                   help="backbone: embedded, llada-8b-instruct, dream-7b-instruct, or a checkpoint directory / "
                        "Hugging Face hub id (read from the local cache when HF_HUB_OFFLINE=1; default: embedded)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a --model directory or hub id other than the two aliases to run its own Python code "
                        "(LLaDA and Dream ship their modeling code with the checkpoint)")
    p.add_argument("--dtype", default=None,
                   help="backbone compute dtype: float32 or bfloat16 (default: bfloat16 on CUDA, else float32)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: each rank's GPU if there is one, else the CPU)")
    p.add_argument("--protocol", default="native", choices=PROTOCOLS.names(),
                   help="evaluation protocol: " + "; ".join(f"{n}: {p.description}" for n, p in PROTOCOLS.items()))
    p.add_argument("--split", default="test", help="dataset split to evaluate (default test)")
    p.add_argument("--answer-rule", default=FLEXIBLE, choices=ANSWER_RULES,
                   help="which text is the final answer: strict, only what the completion marks as final (#### N, "
                        "a box; as d1 and lm-eval's strict-match), or flexible, else the task's fallback (the last "
                        "number for gsm8k, lm-eval's flexible-extract; Minerva's sentence for math500); default "
                        "flexible")
    add_data_dir(p)
    p.add_argument("--out", default=None, help="run directory (default results/<timestamp>-<config>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--reshard", action="store_true",
                   help="take over an --out made with another number of processes (torchrun ranks; 1 without "
                        "torchrun): keep its finished samples, split the rest across this launch's ranks")
    p.add_argument("--barrier-timeout", type=positive_int, default=DEFAULT_BARRIER_TIMEOUT_MINUTES,
                   metavar="MINUTES", help="under torchrun, how long a rank that has finished its share waits for "
                                           f"the slowest one (default {DEFAULT_BARRIER_TIMEOUT_MINUTES}); if it runs "
                                           "out, re-running the command resumes and merges")
    p.add_argument("--dedupe", action="store_true",
                   help="repair an --out whose samples.jsonl holds a sample more than once (which `run` refuses "
                        "to summarise): keep the first copy of each")
    p.add_argument("--no-likelihood", action="store_true",
                   help="skip the likelihood view: for text tasks (gsm8k, math500), the NLL per masked token of the "
                        "gold solutions under sequential, factorized and CoDD at each budget's tokens per step")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")
    p.set_defaults(func=main)


def _default_samplers(with_ceiling: bool) -> tuple[str, ...]:
    names = [n for n in list_samplers() if n != "sequential"]
    return tuple(names + (["sequential"] if with_ceiling else []))


def _default_out(options: RunOptions) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if options.steps:
        budgets = "s" + ".".join(map(str, options.steps))
    else:
        budgets = "k" + ".".join(map(str, options.tokens_per_step))
    return f"results/{stamp}-{'+'.join(options.tasks)}-{budgets}"


def print_likelihood(views: list[dict]) -> None:
    rows = likelihood_rows(views)
    if rows:
        print("\nLikelihood of the gold solutions, per masked token, at each budget's tokens per step "
              "(mask ratio = tokens per step / window):\n")
        print(formatting.markdown(rows, formatting.LIKELIHOOD), end="")
        print("(measured in " + ", ".join(f"{v['task']} {v['seconds']:.1f} s" for v in views if "seconds" in v) + ")")
    for view in views:
        if "not_measured" in view:
            print(f"likelihood view of {view['task']} not measured: {view['not_measured']}")


def main(args: argparse.Namespace) -> int:
    samplers = args.samplers or _default_samplers(args.with_ceiling)
    if args.samplers and args.with_ceiling and "sequential" not in samplers:
        samplers = samplers + ("sequential",)
    options = RunOptions(
        tasks=args.tasks, samplers=samplers, remasking=args.remasking, steps=args.steps,
        tokens_per_step=None if args.steps else (args.tokens_per_step or (2,)),
        limit=args.limit, seed=args.seed, batch_size=args.batch_size, gen_length=args.gen_length,
        block_length=args.block_length, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        cfg_scale=args.cfg_scale, early_stop=not args.no_early_stop, reference_precision=args.reference_precision,
        cache=args.cache,
        model=args.model, dtype=args.dtype, split=args.split, data_dir=args.data_dir, protocol=args.protocol,
        trust_remote_code=args.trust_remote_code,
        answer_rule=args.answer_rule, likelihood=not args.no_likelihood)
    world = detect_world()
    device = resolve_device(args.device) if args.device else claim_device(world)
    # Every input error surfaces here, before anything is written; the default sampler list keeps,
    # per task, the samplers that apply to its backbone (diffu-grpo only where an adapter is shipped).
    cells = plan(options, device, only_applicable=args.samplers is None)
    with process_group(world, device, args.barrier_timeout), ExitStack() as held:
        store = RunStore(world.broadcast(args.out or _default_out(options)), world.rank, world.size)
        made = manifest(options, world.gather(describe_rank(world, device)))

        def prepare() -> None:
            if world.is_main:  # rank 0 holds the lock for the whole launch; its refusal fails the launch
                held.enter_context(RunLock(store.dir))
            store.open(made, reshard=args.reshard, dedupe=args.dedupe and world.is_main)

        world.main_first(prepare)
        start = time.perf_counter()
        summary = run(options, store, cells, progress=not args.quiet, world=world)
    if summary is None:  # a rank other than 0: rank 0 merges and reports
        return 0
    print(format_table(summary))
    print_likelihood(summary.get("likelihood", []))
    print(f"\n{store.dir}  ({time.perf_counter() - start:.1f} s)")
    if not args.no_report:
        from harness.report.build import build_report  # imported on use: matplotlib costs seconds at start-up

        print(f"report: {build_report([store.dir])}")
    return 0

