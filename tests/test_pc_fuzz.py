"""Fuzzing `.jpc` loading: truncated and bit-flipped circuit files, some carrying a pickle that would
create a canary file if any code in it ran. Every variant must load as an HMM or be refused with our
one-line HarnessError, nothing else, and the canary must never appear."""

import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest

from codd import HMM, load_pc
from harness.errors import HarnessError

FIXTURES = Path(os.environ.get("HARNESS_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
                ).parent / "fixtures" / "pyjuice_hmm"
SMALL = "hmm_categorical_L8_H16_V11.jpc"


class CreatesFile:
    """Unpickles as `open(path, "w")`: a file appears iff the pickle's code runs."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def circuits(canary: Path) -> dict[str, bytes]:
    """A real pyjuice file, and the same circuit with the canary as a node's nested distribution
    pickle and as an extra top-level node."""
    clean = (FIXTURES / SMALL).read_bytes()
    nodes = pickle.loads(clean)  # a trusted fixture: plain pickle is fine here
    nodes[0]["dist"] = pickle.dumps(CreatesFile(canary))
    nested = pickle.dumps(nodes)
    top = pickle.dumps([CreatesFile(canary), *pickle.loads(clean)])
    return {"clean": clean, "nested canary": nested, "top-level canary": top}


def variants(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Truncations at random lengths and copies with 1 to 8 random bits flipped."""
    out = [data[:rng.randrange(len(data))] for _ in range(count // 2)]
    for _ in range(count - len(out)):
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(flipped))
            flipped[i] ^= 1 << rng.randrange(8)
        out.append(bytes(flipped))
    return out


def test_the_canary_is_live(tmp_path):
    """Under plain pickle the canary pickles do create the file, so its absence below means something."""
    for name, data in circuits(tmp_path / "proof").items():
        if name != "clean":
            (tmp_path / "proof").unlink(missing_ok=True)
            blob = pickle.loads(data)
            if isinstance(blob[0], dict):  # the nested one runs when its node's dist is unpickled
                pickle.loads(blob[0]["dist"])
            assert (tmp_path / "proof").exists(), name


@pytest.mark.parametrize("source", ["clean", "nested canary", "top-level canary"])
def test_truncated_and_bit_flipped_files_load_or_are_refused_and_run_nothing(source, tmp_path):
    canary = tmp_path / "canary"
    rng = random.Random(f"jpc fuzz {source}")
    outcomes = {"loaded": 0, "refused": 0}
    for i, data in enumerate(variants(circuits(canary)[source], rng, 150)):
        path = tmp_path / f"variant{i}.jpc"
        path.write_bytes(data)
        try:
            assert isinstance(load_pc(path), HMM)
            outcomes["loaded"] += 1
        except HarnessError as err:
            message = str(err)
            assert str(path) in message and "\n" not in message, message
            outcomes["refused"] += 1
        assert not canary.exists(), f"variant {i} ran code"
    assert outcomes["refused"] > 0


# The fuzzing above found a flipped BUILD opcode that became LONG_BINPUT with a memo index of 155 M:
# the unpickler grew its memo to match (2.7 GB, 9 s) before failing. An index of 2**31 would ask for 16 GB.
HUGE_MEMO_INDEX = b"\x80\x04N" + b"r" + (2**31).to_bytes(4, "little") + b"."

_LOAD_UNDER_4_GB = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a regression fails here, it cannot take the machine
from codd import load_pc
from harness.errors import HarnessError
try:
    load_pc(sys.argv[1])
except HarnessError as err:
    print(err)
"""


def test_a_corrupt_memo_index_is_refused_before_anything_is_allocated(tmp_path):
    path = tmp_path / "claims.jpc"
    path.write_bytes(HUGE_MEMO_INDEX)
    done = subprocess.run([sys.executable, "-c", _LOAD_UNDER_4_GB, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "memo index" in done.stdout and "MemoryError" not in done.stdout, done
