"""Decoding speed of the factorized sampler on the embedded math model.

Measures generated tokens per second at batch 1 and 16, float32 against
bfloat16, side by side in one run, and prints the ratios. Early stop is off so
every configuration decodes the full gen length.

    python benchmarks/bench_decode.py [--data-dir ../shared/data] [--steps 64] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from harness.backbones import load_backbone
from harness.engine.decoding import DecodeConfig
from harness.engine.sampler import get_sampler
from tasks import get_task


def tokens_per_second(backbone, prompts, config, repeats: int) -> float:
    ids, mask = backbone.left_pad(prompts)
    sampler = get_sampler("factorized")
    best = float("inf")
    for _ in range(repeats):
        generators = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
        start = time.perf_counter()
        sampler.generate(backbone, ids, mask, config, generators)
        best = min(best, time.perf_counter() - start)
    return len(prompts) * config.gen_length / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    task = get_task("gsm8k")
    examples = task.load(limit=16, data_dir=args.data_dir)
    config = DecodeConfig(gen_length=task.gen_length, steps=args.steps, block_length=task.block_length,
                          early_stop=False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; gsm8k prompts, gen length "
          f"{config.gen_length}, {args.steps} steps, early stop off; best of {args.repeats}")
    results = {}
    for dtype in ("float32", "bfloat16"):
        backbone = load_backbone("embedded", task.family, dtype)
        prompts = [backbone.encode_chat(task.prompt(ex)) for ex in examples]
        for batch in (1, 16):
            results[dtype, batch] = tokens_per_second(backbone, prompts[:batch], config, args.repeats)
            print(f"{dtype:<9} batch {batch:>2}: {results[dtype, batch]:8.1f} tokens/s")
    for batch in (1, 16):
        print(f"bf16 / fp32 at batch {batch:>2}: {results['bfloat16', batch] / results['float32', batch]:.2f}x")
    print(f"batch 16 / batch 1 (fp32): {results['float32', 16] / results['float32', 1]:.2f}x")


if __name__ == "__main__":
    main()
