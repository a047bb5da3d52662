"""Where the sudoku grids sit in a tokenized training sequence, for the grid structure embeddings.

A sudoku sequence holds two 4x4 grids: the puzzle (the last 16 digits of the prompt) and
the answer (the first 16 digits of the response). The prompt template is fixed and each digit
is one token, so both grids sit at the same distance from the sequence end in every sequence;
this module finds those offsets and refuses data where they vary.
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.training.pairs import Pair

CELLS = 16


def _layout(pair: Pair, digit_ids: set[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    sequence = pair.prompt + pair.response
    end, answer_start = len(sequence), len(pair.prompt)
    puzzle = [i for i in range(answer_start) if sequence[i] in digit_ids][-CELLS:]
    answer = [i for i in range(answer_start, end) if sequence[i] in digit_ids][:CELLS]
    return tuple(end - i for i in puzzle), tuple(end - i for i in answer)


def grid_regions(pairs: list[Pair], tokenizer) -> list[list[int]]:
    """Cell offsets from the sequence end of the puzzle and answer grids, shared by all `pairs`."""
    digit_ids = {tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    layouts = {_layout(pair, digit_ids) for pair in pairs}
    if len(layouts) != 1 or any(len(region) != CELLS for region in next(iter(layouts))):
        raise HarnessError(f"sudoku training sequences do not share one grid layout ({len(layouts)} layouts found); "
                           "every prompt must be a fixed template with the 16 puzzle digits")
    return [list(region) for region in layouts.pop()]
