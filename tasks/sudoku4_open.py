"""sudoku4-open: 4x4 sudoku with few givens and several valid completions (ours).

A unique-solution puzzle has one right answer, so factorized decoding loses
little once a model is trained; here every puzzle has at least two valid
grids and each training target is one of them drawn uniformly, so the model's
conditional is multi-modal and independent per-cell sampling can mix modes.
Scored by validity: any valid grid that keeps the givens is correct.

Split: a puzzle is a test puzzle iff one of its completions is a held-out grid
of `sudoku_grid.grid_split` (the rule sudoku4 follows with one completion).
Splitting by puzzle string alone would let training targets show held-out
grids and leak sudoku4's test set into the model both tasks share. The price:
train puzzles lean to fewer completions than test ones.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from tasks import Example, Score, register
from tasks.answer_rule import FLEXIBLE
from tasks.generated import GeneratedTask
from tasks.sudoku4 import blank_cells, read_grid, sudoku_question
from tasks.sudoku_grid import (blank_out, completions, grid_split, is_valid_grid, keeps_givens, sound_cells,
                               with_givens)

# Given cells per puzzle, drawn uniformly.
GIVENS = range(3, 6)


@register
class Sudoku4Open(GeneratedTask):
    name = "sudoku4-open"
    description = "4x4 sudoku with 3-5 givens and at least two valid completions; correct iff a valid grid keeps the givens"
    family = "sudoku"
    gen_length = 16
    block_length = 16

    def draws(self, split: str, rng: random.Random) -> Iterator[Example]:
        held_out = set(grid_split()["test"])
        grids = grid_split()[split]
        while True:
            givens = rng.choice(GIVENS)
            while True:
                puzzle = blank_out(rng.choice(grids), set(rng.sample(range(16), 16 - givens)))
                found = completions(puzzle)
                if len(found) >= 2 and any(g in held_out for g in found) == (split == "test"):
                    break
            yield Example(id="", question=sudoku_question(puzzle), reference=rng.choice(found),
                          meta={"puzzle": puzzle, "givens": givens, "completions": len(found)})

    def score(self, completion: str, ex: Example, rule: str = FLEXIBLE) -> Score:
        """Correct iff the grid is valid and keeps the givens. `cell_validity` is the
        fraction of blank cells that clash with no other cell once the givens are
        put back: how far mode mixing spreads, whatever the model did to the givens."""
        grid = read_grid(completion)
        puzzle = ex.meta["puzzle"]
        blanks = blank_cells(puzzle)
        correct = grid is not None and is_valid_grid(grid) and keeps_givens(grid, puzzle)
        sound = set() if grid is None else sound_cells(with_givens(grid, puzzle))
        return Score(correct=correct, extracted=grid,
                     details={"cell_validity": len(sound.intersection(blanks)) / len(blanks)})

    def reward(self, completion: str, ex: Example) -> float:
        """d1's sudoku reward where a cell has no one right digit: the fraction of blank cells that clash with nothing."""
        return self.score(completion, ex).details["cell_validity"]

    def summarize(self, scores: list[Score]) -> dict:
        return {"cell_validity": sum(s.details["cell_validity"] for s in scores) / len(scores)} if scores else {}
