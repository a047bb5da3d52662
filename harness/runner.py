"""The run grid: tasks x samplers x remasking rules x step budgets x examples.

`plan` turns options into one job per cell and checks everything a user can get
wrong (names, budgets, data, weights) before anything is written; `run` walks the
jobs batch by batch, appending one record per sample to the store and
skipping batches a previous, interrupted run already finished. Under torchrun
each rank walks only the batches it owns (harness/distributed.py), and rank 0
merges and summarizes once all are done.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone

import torch
from tqdm import tqdm

from harness import environment
from harness.backbones import backbone_key, load_backbone
from harness.backbones.base import Backbone
from harness.distributed import World, describe_rank
from harness.engine.budget import budget_steps
from harness.engine.cache import check_cache
from harness.engine.decoding import DecodeConfig
from harness.engine.sampler import Sampler, get_sampler
from harness.errors import HarnessError
from harness.likelihood import likelihood_view
from harness.protocols import Protocol, get_protocol
from harness.stats import wilson_interval
from harness.store import Cell, Record, RunStore, group_by_cell
from tasks import Example, Score, Task, get_task
from tasks.answer_rule import ANSWER_RULES, FLEXIBLE


@dataclass(frozen=True)
class RunOptions:
    tasks: tuple[str, ...]
    samplers: tuple[str, ...] = ("factorized",)
    remasking: tuple[str, ...] | None = None
    steps: tuple[int, ...] | None = None
    tokens_per_step: tuple[int, ...] | None = (2,)
    limit: int | None = None
    seed: int = 0
    batch_size: int = 16
    gen_length: int | None = None
    block_length: int | None = None
    temperature: float | None = None
    top_p: float | None = None      # None: the model's; 1 = no nucleus filter
    top_k: int | None = None        # None: the model's; 0 = no top-k filter
    cfg_scale: float = 0.0
    early_stop: bool = True
    reference_precision: bool = False
    cache: str = "none"             # approximate KV cache (harness/engine/cache.py)
    model: str = "embedded"
    dtype: str | None = None        # None: bfloat16 on CUDA, float32 elsewhere
    protocol: str = "native"
    trust_remote_code: bool = False
    split: str = "test"
    data_dir: str | None = None
    answer_rule: str = FLEXIBLE
    likelihood: bool = True         # the likelihood view of the text tasks (harness/likelihood.py)

    def config(self) -> dict:
        """What defines the run's samples (a resumed run must match it)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if k not in ("data_dir", "likelihood")}


def manifest(options: RunOptions, ranks: list[dict] | None = None) -> dict:
    """What a run directory records about how it was made; `ranks` describes each process of the launch
    (by default one process on the CPU)."""
    ranks = ranks or [describe_rank(World(), torch.device("cpu"))]
    return {
        "config": options.config(), "protocol": options.protocol, "answer_rule": options.answer_rule,
        "command": " ".join(sys.argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seeds": {"seed": options.seed, "per_example": "sha256(seed, task, example_id), shared by all samplers"},
        "data_dir": options.data_dir, "environment": environment.describe(),
        "world": {"size": len(ranks), "ranks": ranks},
    }


@dataclass
class Job:
    """What decoding one cell of the grid takes: its task, sampler, backbone, decode config and examples."""

    task: Task
    sampler: Sampler
    backbone: Backbone
    config: DecodeConfig
    examples: list[Example]
    protocol: Protocol
    model: str

    @property
    def cell(self) -> Cell:
        """The cell of the records this job writes."""
        c = self.config
        return Cell(self.model, self.protocol.name, self.task.name, c.mode, c.gen_length, c.block_length,
                    c.temperature, self.sampler.spec, c.remasking, c.steps)


def _decode_config(task: Task, backbone: Backbone, options: RunOptions, protocol: Protocol,
                   remasking: str) -> DecodeConfig:
    defaults = backbone.defaults
    temperature = next(t for t in (options.temperature, task.temperature, defaults.temperature) if t is not None)
    gen_length = options.gen_length or protocol.gen_length or task.gen_length
    return DecodeConfig(
        gen_length=gen_length,
        steps=gen_length,  # replaced per budget
        block_length=options.block_length or protocol.block_length or task.block_length,
        mode=defaults.mode,
        temperature=float(temperature),
        remasking=remasking,
        cfg_scale=options.cfg_scale,
        top_p=defaults.top_p if options.top_p is None else options.top_p,
        top_k=defaults.top_k if options.top_k is None else (options.top_k or None),
        early_stop=options.early_stop,
        reference_precision=options.reference_precision,
        cache=options.cache,
    )


def plan(options: RunOptions, device: torch.device | str = "cpu", only_applicable: bool = False) -> list[Job]:
    """The jobs of every cell of the grid, validated, with their examples loaded and their backbones on `device`.
    `only_applicable` (the default sampler list) leaves out samplers that do not apply to a task's backbone."""
    for name, value in (("limit", options.limit), ("batch size", options.batch_size),
                        ("gen length", options.gen_length), ("block length", options.block_length)):
        if value is not None and value <= 0:
            raise HarnessError(f"{name} must be a positive integer, got {value}")
    if options.answer_rule not in ANSWER_RULES:
        raise HarnessError(f"unknown answer rule {options.answer_rule!r}; valid rules: {', '.join(ANSWER_RULES)}")
    protocol = get_protocol(options.protocol)
    tasks = [get_task(name) for name in options.tasks]
    for task in tasks:
        protocol.check(task)
    tokens_per_step = options.tokens_per_step
    if protocol.tokens_per_step:
        if options.steps:
            raise HarnessError(f"protocol {protocol.name} fixes the budget at {protocol.tokens_per_step} tokens per "
                               f"step; choose the gen length (--gen-length) instead of --steps")
        tokens_per_step = (protocol.tokens_per_step,)
    samplers = [get_sampler(spec) for spec in options.samplers]
    backbones: dict[str, Backbone] = {}
    jobs = []
    for task in tasks:
        examples = protocol.examples(task, options.split, options.limit, options.data_dir)
        key = backbone_key(options.model, task.family)
        if key not in backbones:
            backbones[key] = load_backbone(options.model, task.family, options.dtype, device,
                                           options.trust_remote_code)
        backbone = backbones[key]
        check_cache(options.cache, backbone)
        for remasking in options.remasking or (backbone.defaults.remasking,):
            base = _decode_config(task, backbone, options, protocol, remasking)
            budgets = budget_steps(task.name, base.gen_length, options.steps, tokens_per_step)
            for sampler in _task_samplers(samplers, task, backbone, only_applicable):
                sampler.check(backbone)
                for steps in budgets if sampler.uses_budget else [base.gen_length]:
                    config = replace(base, steps=steps)
                    try:
                        config.validate()
                    except HarnessError as err:
                        raise HarnessError(f"task {task.name} (gen length {config.gen_length}, block length "
                                           f"{config.block_length}): {err}") from None
                    jobs.append(Job(task, sampler, backbone, config, examples, protocol, options.model))
    # A budget-free sampler appears once per task and remasking rule, not once per budget.
    return list({job.cell: job for job in jobs}.values())


def _task_samplers(samplers: list[Sampler], task: Task, backbone: Backbone, only_applicable: bool) -> list[Sampler]:
    """The samplers to run on `task`. From the default list (`only_applicable`), those that do not
    apply to the backbone are left out, and so is one whose task default cannot be had here (e.g. the
    authors' PC offline and not in the cache), with a one-line note: the user did not ask for it."""
    chosen = []
    for sampler in samplers:
        try:
            sampler = sampler.for_task(task.name, backbone)
        except HarnessError as err:
            if not only_applicable:
                raise
            print(f"note: {sampler.name} left out for {task.name}: {err}", file=sys.stderr)
            continue
        if not only_applicable or sampler.applies_to(backbone):
            chosen.append(sampler)
    return chosen


def row_seed(seed: int, task: str, example_id: str) -> int:
    """A stable per-example seed: every sampler and budget sees the same random
    stream for an example (common random numbers make paired comparisons sharper)."""
    digest = hashlib.sha256(f"{seed}\x00{task}\x00{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _batches(examples: list[Example], size: int) -> list[list[Example]]:
    return [examples[i:i + size] for i in range(0, len(examples), size)]


def _batch_key(job: Job, index: int) -> tuple:
    """The unit of work split across ranks: batch `index` of a cell (these fields, so that the run directories
    of earlier versions keep their batches' ranks)."""
    cell = job.cell
    return (cell.task, cell.sampler, cell.remasking, cell.steps, index)


def _run_batch(job: Job, batch: list[Example], options: RunOptions) -> list[Record]:
    task, backbone, config = job.task, job.backbone, job.config
    prompts = [backbone.encode_chat(job.protocol.prompt(task, ex)) for ex in batch]
    ids, mask = backbone.left_pad(prompts)
    seeds = [row_seed(options.seed, task.name, ex.id) for ex in batch]
    generators = [torch.Generator(device=backbone.device).manual_seed(s) for s in seeds]
    start = time.perf_counter()
    generation = job.sampler.generate(backbone, ids, mask, config, generators)
    seconds = (time.perf_counter() - start) / len(batch)  # amortised over the batch
    records = []
    for row, ex in enumerate(batch):
        completion = backbone.decode(generation.tokens[row].tolist())
        score = job.protocol.score(task, completion, ex, options.answer_rule)
        records.append(Record(
            job.cell, example_id=ex.id, seed=options.seed, row_seed=seeds[row],
            completion=completion, extracted=score.extracted, correct=bool(score.correct), details=score.details,
            reference=ex.reference, nfe=int(generation.nfe[row]), seconds=round(seconds, 6), top_p=config.top_p,
            top_k=config.top_k, reference_precision=config.reference_precision, answer_rule=options.answer_rule,
            cache=config.cache))
    return records


def run(options: RunOptions, store: RunStore, jobs: list[Job], progress: bool = True,
        world: World = World()) -> dict | None:
    """Walk this rank's share of the grid, resuming from what `store` already holds; returns the summary
    (on rank 0 only, once every rank has finished; the other ranks return None)."""
    done = {r.key() for r in store.records()}
    work = []
    for job in jobs:
        for index, batch in enumerate(_batches(job.examples, options.batch_size)):
            if not world.owns(_batch_key(job, index)):
                continue
            missing = [job.cell.key_of(ex.id) not in done for ex in batch]
            if any(missing):
                work.append((job, batch, missing))
    total = sum(len(batch) for _, batch, _ in work)
    _log(world, f"{total} samples in {len(work)} batches to decode")
    start = time.perf_counter()
    with tqdm(total=total, disable=not (progress and world.is_main), unit="sample", dynamic_ncols=True) as bar:
        for job, batch, missing in work:
            bar.set_description(f"{job.task.name} {job.sampler.spec} {job.config.remasking} {job.config.steps} steps")
            # The whole batch is re-decoded so that its rows see the same batch as before the interruption.
            records = _run_batch(job, batch, options)
            store.append([r for r, m in zip(records, missing) if m])
            bar.update(len(batch))
    _log(world, f"decoded in {time.perf_counter() - start:.1f} s; waiting for the other ranks")
    world.barrier()
    if not world.is_main:
        return None
    position = {key: i for i, key in enumerate(job.cell.key_of(ex.id) for job in jobs for ex in job.examples)}
    store.merge_shards(order=lambda r: position.get(r.key(), len(position)))  # the order one process writes
    store.samples.check_unique()  # a sample counted twice would narrow every interval
    summary = summarize(jobs, store.records(), options)
    if options.likelihood:
        solutions = sum(len(job.examples) for job in {job.task.name: job for job in jobs}.values()
                        if job.task.likelihood_view)
        with tqdm(total=solutions, disable=not progress or not solutions, unit="solution",
                  desc="likelihood of the gold solutions", dynamic_ncols=True) as bar:
            summary["likelihood"] = likelihood_view(jobs, options.seed, progress=bar.update)
    store.write_summary(summary)
    return summary


def _log(world: World, message: str) -> None:
    """One line per rank on stderr, for the logs of a distributed launch (a lone process has its progress bar)."""
    if world.sharded:
        print(f"rank {world.rank}/{world.size}: {message}", file=sys.stderr, flush=True)


def summarize(jobs: list[Job], records: list[Record], options: RunOptions) -> dict:
    """Accuracy with a 95% Wilson interval, mean NFE and seconds per cell, plus each task's own metrics."""
    groups = group_by_cell(records)
    rows = []
    for job in jobs:
        cell = job.cell
        group = groups.get(cell, [])
        n, correct = len(group), sum(r.correct for r in group)
        low, high = wilson_interval(correct, n)
        scores = [Score(r.correct, r.extracted, r.details) for r in group]
        rows.append({
            "task": cell.task, "sampler": cell.sampler, "remasking": cell.remasking, "steps": cell.steps,
            "gen_length": cell.gen_length, "temperature": cell.temperature,
            "n": n, "correct": correct, "accuracy": correct / n if n else None, "ci95": [low, high],
            "mean_nfe": sum(r.nfe for r in group) / n if n else None,
            "mean_seconds": sum(r.seconds for r in group) / n if n else None,
            "metrics": job.task.summarize(scores),
        })
    return {"protocol": options.protocol, "answer_rule": options.answer_rule, "model": options.model,
            "seed": options.seed, "split": options.split, "cells": rows}


def format_table(summary: dict) -> str:
    """The end-of-run table, one line per cell; the sampler column is as wide as its longest spec."""
    cells = [r for r in summary["cells"] if r["n"]]
    width = max([len("sampler")] + [len(r["sampler"]) for r in cells]) + 2
    header = (f"{'task':<14}{'sampler':<{width}}{'remasking':<16}{'steps':>6}{'n':>6}{'acc %':>8}  {'95% CI':<15}"
              f"{'NFE':>7}{'s/sample':>10}")
    lines = [header, "-" * len(header)]
    for r in cells:
        ci = f"[{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}]"
        lines.append(f"{r['task']:<14}{r['sampler']:<{width}}{r['remasking']:<16}{r['steps']:>6}{r['n']:>6}"
                     f"{100 * r['accuracy']:>8.1f}  {ci:<15}{r['mean_nfe']:>7.1f}{r['mean_seconds']:>10.3f}")
    return "\n".join(lines)
