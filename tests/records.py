"""Hand-made sample records, shaped as the runner writes them: every field set, the ones a test does not
care about at the values of a greedy embedded sudoku4 run."""

from harness.store import Record

DEFAULTS = dict(model="embedded", protocol="native", task="sudoku4", mode="block", gen_length=16, block_length=16,
                temperature=0.0, sampler="factorized", remasking="low_confidence", steps=4, example_id="e0", seed=0,
                row_seed=0, completion="x", extracted="x", correct=True, details={}, reference="r", nfe=4,
                seconds=0.01)


def make_record(**fields) -> Record:
    return Record.from_json({**DEFAULTS, **fields})
