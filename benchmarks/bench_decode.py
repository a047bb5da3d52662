"""Decoding speed on the embedded math model, every arm side by side in one run.

1. LLaDA's published generate loop (re-stated in tests/llada_reference.py, the one the tests hold
   our engine to) at batch 1 against our engine at batch 1 and 16, then with early stop, the
   approximate KV cache (`dual`) and bfloat16: samples/s, the ratio to the reference, and how many
   completions (text up to the first EOS) are identical to the reference's. Greedy, low_confidence.
2. One forward pass of the model: float32 weights, bfloat16 weights and float32 weights under
   bfloat16 autocast, at batch 1 and 16; and float32 with the output head on one 32-token window
   only (`logits_at`, what the engine asks for).
(The CoDD HMM's bfloat16 emission product, `codd:emission=bfloat16`, is measured at the real shape
by bench_codd.py.)

The arms take turns within each repeat, so a change in machine load hits them alike; each figure
is the median over the repeats, and the load average is printed beside it. `--device cuda` runs
every arm on the GPU (the reference too: LLaDA's loop runs on its model's device), timed after a
synchronize.

    python benchmarks/bench_decode.py [--data-dir ../shared/data] [--limit 16] [--steps 64] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from llada_reference import llada_generate  # noqa: E402  (the test suite's re-statement, not a copy)

from harness.backbones import load_backbone, resolve_device  # noqa: E402
from harness.engine.decoding import DecodeConfig, generate  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from tasks import get_task  # noqa: E402


def timed(fn, device=torch.device("cpu")):
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":  # kernels run asynchronously; the clock stops when they are done
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def side_by_side(args) -> None:
    task = get_task("gsm8k")
    device = args.device
    models = {dtype: load_backbone("embedded", task.family, dtype, device) for dtype in ("float32", "bfloat16")}
    examples = task.load(limit=args.limit, data_dir=args.data_dir)
    prompts = [models["float32"].encode_chat(task.prompt(ex)) for ex in examples]
    exact = DecodeConfig(gen_length=task.gen_length, steps=args.steps, block_length=task.block_length, early_stop=False)
    fast = replace(exact, early_stop=True)

    def reference():
        model = models["float32"]
        return [llada_generate(lambda x: model.logits(x), torch.tensor([p], device=device), exact.steps, exact.gen_length,
                               exact.block_length, 0.0, 0.0, "low_confidence", model.mask_id, None)[0] for p in prompts]

    def ours(config, batch, dtype="float32"):
        def run():
            model, tokens = models[dtype], []
            for first in range(0, len(prompts), batch):
                ids, mask = model.left_pad(prompts[first:first + batch])
                tokens += list(generate(model, ids, mask, config, [torch.Generator(device) for _ in ids]).tokens)
            return tokens
        return run

    wide = min(16, len(prompts))
    arms = {
        "reference (LLaDA's loop), batch 1": reference,
        "ours, batch 1": ours(exact, 1),
        f"ours, batch {wide}": ours(exact, wide),
        f"ours, batch {wide}, early stop": ours(fast, wide),
        f"ours, batch {wide}, early stop, cache prefix": ours(replace(fast, cache="prefix"), wide),
        f"ours, batch {wide}, early stop, cache dual": ours(replace(fast, cache="dual"), wide),
        f"ours, batch {wide}, early stop, cache dual, bf16": ours(replace(fast, cache="dual"), wide, "bfloat16"),
    }
    print(f"1. embedded math model, {len(prompts)} gsm8k prompts, gen length {exact.gen_length}, {exact.steps} steps, "
          f"greedy low_confidence; {describe(device)}; median of {args.repeats} interleaved repeats")
    seconds = {name: [] for name in arms}
    outputs = {}
    for _ in range(args.repeats):
        for name, arm in arms.items():
            elapsed, outputs[name] = timed(arm, device)
            seconds[name].append(elapsed)
    text = {name: [models["float32"].decode(t.tolist()) for t in tokens] for name, tokens in outputs.items()}
    base = next(iter(arms))
    for name in arms:
        ratios = [b / s for b, s in zip(seconds[base], seconds[name])]
        same = sum(a == b for a, b in zip(text[name], text[base]))
        print(f"   {name:<46} {len(prompts) / statistics.median(seconds[name]):6.2f} samples/s   "
              f"{statistics.median(ratios):5.2f}x the reference   identical {same}/{len(prompts)}")
    eos = models["float32"].eos_id
    print(f"   ({load()}; {sum(eos in t.tolist() for t in outputs['ours, batch 1'])}/{len(prompts)} exact completions hold an "
          f"EOS, the only ones early stop can shorten)")


def forward_speed(args) -> None:
    device = args.device
    model = load_backbone("embedded", "math", "float32", device)
    half = load_backbone("embedded", "math", "bfloat16", device)
    print(f"2. one forward pass of the embedded math model, 320 tokens; {describe(device)}")
    for batch in (1, 16):
        ids = torch.randint(0, model.vocab_size, (batch, 320), generator=torch.Generator().manual_seed(0)).to(device)

        def autocast():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return model.logits(ids)
        arms = {"float32": lambda: model.logits(ids), "bfloat16 weights": lambda: half.logits(ids),
                "float32 + bf16 autocast": autocast,
                "float32, output head on 32 positions": lambda: model.logits_at(ids, None, slice(288, 320))}
        seconds = {name: [] for name in arms}
        for _ in range(args.repeats * 3):
            for name, arm in arms.items():
                seconds[name].append(timed(arm, device)[0])
        fp32 = statistics.median(seconds["float32"])
        print("   batch {:>2}: ".format(batch) + "; ".join(
            f"{name} {1e3 * statistics.median(s):.1f} ms ({fp32 / statistics.median(s):.2f}x)"
            for name, s in seconds.items()))
    print(f"   ({load()})")


def describe(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limit", type=int, default=16, help="gsm8k prompts")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="1,2", help="which of the two measurements to run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    try:
        args.device = resolve_device(args.device)
    except HarnessError as err:
        parser.error(str(err))
    parts = {"1": side_by_side, "2": forward_speed}
    for part in args.parts.split(","):
        parts[part](args)


if __name__ == "__main__":
    main()
