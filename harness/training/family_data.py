"""The training data of a task family (the tasks one embedded model serves): its tasks' train splits as
chat-templated pairs, built the same way for the model (train), its CoDD circuit (train-pc) and anything
else trained on the family."""

from __future__ import annotations

import random

from harness.errors import HarnessError
from harness.training.pairs import Pair, make_pair
from tasks import Task, get_task, list_tasks

VALIDATION_PAIRS = 256
# Longer pairs (a few MATH problems with very long statements) are left out: on CPU one of them
# would widen its whole left-padded batch several times over.
MAX_SEQUENCE_TOKENS = 384


def family_tasks(family: str) -> list[Task]:
    return [task for task in map(get_task, list_tasks()) if task.family == family]


def family_block_length(family: str) -> int:
    """The block length its tasks decode in (the block layout of `train --block-share`)."""
    lengths = {task.block_length for task in family_tasks(family)}
    if len(lengths) != 1:
        raise HarnessError(f"the {family} tasks decode in blocks of {sorted(lengths)} tokens; a block layout needs one")
    return lengths.pop()


def family_pairs(family: str, tokenizer, data_dir: str | None) -> list[Pair]:
    """The family's training pairs; targets longer than their task's generation length and pairs
    longer than MAX_SEQUENCE_TOKENS are left out."""
    pairs, dropped = [], 0
    for task in family_tasks(family):
        examples = task.load("train", data_dir=data_dir)
        prompts = tokenizer.apply_chat_template([task.prompt(ex) for ex in examples], add_generation_prompt=True)
        targets = tokenizer([task.target(ex) for ex in examples], add_special_tokens=False)["input_ids"]
        for prompt, target in zip(prompts, targets):
            pair = make_pair(prompt, target, task.gen_length, tokenizer.eos_token_id)
            if pair is None or len(pair.prompt) + len(pair.response) > MAX_SEQUENCE_TOKENS:
                dropped += 1
            else:
                pairs.append(pair)
    if not pairs:
        raise HarnessError(f"no training examples for family {family!r} fit their tasks' generation lengths")
    if dropped:
        print(f"{dropped} of {dropped + len(pairs)} {family} examples do not fit the generation length "
              f"or {MAX_SEQUENCE_TOKENS} tokens; left out")
    return pairs


def held_out_split(pairs: list[Pair], seed: int) -> tuple[list[Pair], list[Pair]]:
    """(validation, training) pairs: a seeded shuffle, then the first VALIDATION_PAIRS (at most a
    tenth) held out, so the split a model was validated on can be rebuilt from its seed."""
    pairs = list(pairs)
    random.Random(seed).shuffle(pairs)
    held_out = min(VALIDATION_PAIRS, len(pairs) // 10)
    return pairs[:held_out], pairs[held_out:]
