"""The embedded countdown model on d1's 256 test items, asked in its own (native) prompt.

`--protocol d1` asks d1's items in d1's prompt (a long instruction, <answer> tags, gen length 128),
a layout the 1.3M-parameter embedded model never saw in training, so it measures the prompt, not
the model. This script keeps d1's items and the task's scorer (correct iff the equation uses each
number exactly once and makes the target) and asks each item as `countdown` asks its own test
split: "Using the numbers 30, 100, 93, make 23." with the task's gen length (64: a scratchpad of sums,
then the equation), greedy low-confidence decoding in one block. At k tokens per step, 64 / k
steps; k = 1 is sequential decoding.
Prints accuracy with 95% Wilson intervals and, against k = 1, the exact McNemar p-value.

    python benchmarks/countdown_d1_items.py [--model DIR] [--tokens-per-step 1,2,4] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from harness.backbones.embedded import ASSETS, load_embedded_dir
from harness.engine.decoding import DecodeConfig, generate
from harness.protocols import _countdown_items, _d1_file
from harness.stats import mcnemar_exact, wilson_interval
from tasks import get_task

BATCH = 64


def solved(backbone, task, examples, tokens_per_step: int) -> list[bool]:
    tokenizer = backbone.tokenizer
    prompts = tokenizer.apply_chat_template([task.prompt(ex) for ex in examples], add_generation_prompt=True)
    config = DecodeConfig(gen_length=task.gen_length, steps=task.gen_length // tokens_per_step,
                          block_length=task.gen_length)
    correct = []
    for start in range(0, len(examples), BATCH):
        chunk = prompts[start:start + BATCH]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), backbone.pad_id)
        attention = torch.zeros((len(chunk), width), dtype=torch.bool)
        for row, prompt in enumerate(chunk):
            ids[row, width - len(prompt):] = torch.tensor(prompt)
            attention[row, width - len(prompt):] = True
        out = generate(backbone, ids, attention, config, [torch.Generator().manual_seed(0) for _ in chunk])
        for row, ex in enumerate(examples[start:start + BATCH]):
            text = tokenizer.decode(out.tokens[row], skip_special_tokens=True)
            correct.append(task.score(text, ex).correct)
    return correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ASSETS / "countdown"), help="model folder (default: the shipped one)")
    parser.add_argument("--tokens-per-step", default="1,2,4", help="comma-separated k (default 1,2,4)")
    parser.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR"), help="folder with d1/")
    args = parser.parse_args()
    task = get_task("countdown")
    items = _countdown_items(_d1_file("countdown_cd3_test.jsonl", args.data_dir).read_text())
    examples = [task.example(f"d1-countdown-{i:03d}", numbers, target) for i, (numbers, target) in enumerate(items)]
    backbone = load_embedded_dir(Path(args.model))
    results = {k: solved(backbone, task, examples, k) for k in map(int, args.tokens_per_step.split(","))}
    first = next(iter(results))
    for k, correct in results.items():
        low, high = wilson_interval(sum(correct), len(correct))
        line = f"{k} token(s)/step: {sum(correct)}/{len(correct)} = {100 * sum(correct) / len(correct):.1f}% " \
               f"[{100 * low:.1f}, {100 * high:.1f}]"
        if k != first:
            only_first = sum(a and not b for a, b in zip(results[first], correct))
            only_k = sum(b and not a for a, b in zip(results[first], correct))
            line += f"; vs {first}/step: {only_first} solved only there, {only_k} only here, " \
                    f"McNemar p = {mcnemar_exact(only_first, only_k):.3g}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
