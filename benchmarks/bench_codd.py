"""What CoDD costs on CPU, measured side by side in one run.

1. Per-sample wall time of `codd` (latent, the PC's own gamma and always on; AO) over
   `factorized` at equal budgets on the embedded math model (gsm8k prompts, early stop off,
   so every sampler decodes the full gen length). The samplers take turns in every repeat, so
   a change in machine load hits all of them alike; the best repeat of each counts.
2. HMM inference at the real scale (N = 1024, V = 126464, W = 32; batch 1 and 8; a random
   HMM, frozen as the sampler holds it; all positions masked: the first step of a block, the
   most expensive): the memory it holds, milliseconds per block for log Z, the latent
   proposal (FFBS + logits) and the exact marginals, and the GFLOP/s they reach against a plain
   [B W, V] x [V, N] float32 matmul; each also with `codd:emission=bfloat16` (the soft-evidence
   product in bfloat16, HMM.emission_dtype), side by side, and log Z's relative error against
   float64 in either.

    python benchmarks/bench_codd.py [--data-dir ../shared/data] [--steps 64] [--limit 8] [--repeats 3] [--parts 1,2]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch

from codd import HMM
from harness.backbones import load_backbone
from harness.engine.decoding import DecodeConfig
from harness.engine.sampler import get_sampler
from tasks import get_task

STATES, VOCAB, WIDTH = 1024, 126464, 32


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def sampler_overhead(args) -> None:
    task = get_task("gsm8k")
    backbone = load_backbone("embedded", task.family)
    examples = task.load(limit=args.limit, data_dir=args.data_dir)
    ids, mask = backbone.left_pad([backbone.encode_chat(task.prompt(ex)) for ex in examples])
    config = DecodeConfig(gen_length=task.gen_length, steps=args.steps, block_length=task.block_length,
                          early_stop=False)
    specs = ["factorized", "codd", "codd:gamma=1", "codd:proposal=ao", "codd:proposal=ao,gamma=1"]
    samplers = {spec: get_sampler(spec) for spec in specs}
    gamma = samplers["codd"].chosen(backbone).gamma
    print(f"1. embedded math model, {len(examples)} gsm8k prompts at batch {len(examples)}, gen length "
          f"{config.gen_length}, {args.steps} steps, early stop off; the PC's own gamma is {gamma}")
    best = {spec: float("inf") for spec in specs}
    for _ in range(args.repeats):
        for spec, sampler in samplers.items():
            generators = [torch.Generator().manual_seed(i) for i in range(len(examples))]
            start = time.perf_counter()
            sampler.generate(backbone, ids, mask, config, generators)
            best[spec] = min(best[spec], (time.perf_counter() - start) / len(examples))
    for spec in specs:
        print(f"   {spec:<26} {best[spec]:7.3f} s/sample   {best[spec] / best['factorized']:.3f}x factorized")


def real_scale(args) -> None:
    print(f"2. HMM inference at N={STATES}, V={VOCAB}, W={WIDTH}, every position masked "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads): float32 against "
          f"codd:emission=bfloat16, median of {args.repeats} interleaved repeats")
    g = torch.Generator().manual_seed(0)
    hmm = HMM.random(STATES, VOCAB, generator=g, scale=1.0).freeze()  # as the sampler holds it
    beta_t = hmm.beta.T
    held = sum(t.numel() * t.element_size() for t in hmm.buffers())
    print(f"   the frozen circuit holds {held / 2**20:.0f} MiB: one {STATES} x {VOCAB} float32 emission table "
          f"({beta_t.numel() * beta_t.element_size() / 2**20:.0f} MiB) plus pi and alpha; emission=bfloat16 adds "
          f"a {beta_t.numel() * 2 / 2**20:.0f} MiB copy")
    dtypes = {"float32": None, "bfloat16": torch.bfloat16}
    for batch in (1, 8):
        log_q = torch.randn(batch, WIDTH, VOCAB, generator=g).mul_(3).log_softmax(-1)
        observed = torch.full((batch, WIDTH), -1)
        generators = [torch.Generator().manual_seed(i) for i in range(batch)]
        matmul_flops = 2 * batch * WIDTH * VOCAB * STATES
        recursion_flops = 2 * batch * WIDTH * STATES * STATES
        x = log_q.reshape(-1, VOCAB).exp()
        plain = statistics.median(timed(lambda: x @ beta_t) for _ in range(args.repeats))
        print(f"   batch {batch}: plain fp32 matmul [{batch * WIDTH}, {VOCAB}] x [{VOCAB}, {STATES}]: "
              f"{1e3 * plain:8.1f} ms, {matmul_flops / plain / 1e9:6.1f} GFLOP/s")
        with torch.no_grad():
            exact = copy.deepcopy(hmm).double().log_evidence(log_q.double(), observed)  # 1 GB, freed here
            inference = {
                "log Z (forward)": (lambda: hmm.log_evidence(log_q, observed), matmul_flops + recursion_flops),
                "latent proposal (FFBS + logits)": (
                    lambda: hmm.latent_proposal_logits(log_q, hmm.sample_hidden(log_q, observed, generators)),
                    matmul_flops + recursion_flops),
                "exact marginals (forward-backward)": (lambda: hmm.token_marginals(log_q, observed),
                                                       2 * matmul_flops + 2 * recursion_flops),
            }
            seconds = {(name, dtype): [] for name in inference for dtype in dtypes}
            for _ in range(args.repeats):
                for (name, dtype), times in seconds.items():
                    hmm.emission_dtype = dtypes[dtype]
                    times.append(timed(inference[name][0]))
            for name, (fn, flops) in inference.items():
                fp32, bf16 = (statistics.median(seconds[name, dtype]) for dtype in dtypes)
                print(f"   batch {batch}: {name:<36} float32 {1e3 * fp32:8.1f} ms per block, {flops / fp32 / 1e9:6.1f} "
                      f"GFLOP/s ({flops / fp32 / (matmul_flops / plain):.0%} of the matmul's rate); bfloat16 "
                      f"{1e3 * bf16:8.1f} ms: {fp32 / bf16:.2f}x float32")
            for dtype, emission in dtypes.items():
                hmm.emission_dtype = emission
                error = ((hmm.log_evidence(log_q, observed).double() - exact).abs() / exact.abs()).max().item()
                print(f"   batch {batch}: log Z with the product in {dtype:<8}: max relative error vs float64 {error:.1e}")
            hmm.emission_dtype = None
    print(f"   ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--limit", type=int, default=8, help="gsm8k prompts, decoded as one batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="1,2", help="which of the two measurements to run")
    args = parser.parse_args()
    parts = {"1": sampler_overhead, "2": real_scale}
    for part in args.parts.split(","):
        parts[part](args)


if __name__ == "__main__":
    main()
