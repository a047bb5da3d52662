"""Loading PCs: real pyjuice `.jpc` files must give back their true parameters, anything
corrupt, hostile or not an HMM must be refused with our one-line error, and our own
saved format must round-trip exactly."""

import json
import os
import pickle
import pickletools
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from codd import HMM, load_pc, save_pc
from harness.errors import HarnessError

FIXTURES = Path(os.environ.get("HARNESS_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
                ).parent / "fixtures" / "pyjuice_hmm"
INDEX = json.loads((FIXTURES / "index.json").read_text())
NAMES = [entry["file"] for entry in INDEX]


def expected(name):
    return np.load(FIXTURES / name.replace(".jpc", ".expected.npz"))


def max_error(hmm, truth):
    return max(np.abs(getattr(hmm, ours).detach().double().numpy() - truth[theirs]).max()
               for ours, theirs in (("pi", "gamma"), ("alpha", "alpha"), ("beta", "beta")))


def fixture_nodes(name):
    """The node list of a trusted fixture, for building variants (plain pickle is fine here)."""
    return pickle.loads((FIXTURES / name).read_bytes())


def write(tmp_path, data, name="variant.jpc"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("entry", INDEX, ids=NAMES)
def test_fixtures_give_back_their_true_parameters(entry):
    hmm = load_pc(FIXTURES / entry["file"])
    assert (hmm.num_states, hmm.vocab_size, hmm.window) == (entry["num_latents"], entry["num_cats"],
                                                            entry["seq_length"])
    assert hmm.metadata["input_dist"] == entry["input_dist"]
    assert max_error(hmm, expected(entry["file"])) <= 1e-6


def test_older_pyjuice_key_spellings_load_the_same(tmp_path):
    name = "hmm_categorical_L32_H96_V50.jpc"
    renames = {"num_node_blocks": "num_node_groups", "block_size": "group_size"}
    nodes = [{renames.get(key, key): value for key, value in node.items()} for node in fixture_nodes(name)]
    assert max_error(load_pc(write(tmp_path, pickle.dumps(nodes))), expected(name)) <= 1e-6


def test_numpy_1_array_names_load_the_same(tmp_path):
    name = "hmm_categorical_L8_H16_V11.jpc"
    data = (FIXTURES / name).read_bytes()
    ops = list(pickletools.genops(data))
    ends = [pos for _, _, pos in ops[1:]] + [len(data)]
    unframed = b"".join(data[pos:end] for (op, _, pos), end in zip(ops, ends) if op.name != "FRAME")
    old = unframed.replace(b"\x8c\x16numpy._core.multiarray", b"\x8c\x15numpy.core.multiarray")
    assert old != unframed
    assert max_error(load_pc(write(tmp_path, old)), expected(name)) <= 1e-6


class RunsCode:
    """Pickles as a call of `function(argument)`: what a hostile .jpc file would contain."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


def test_pickles_that_would_run_code_are_refused_unrun(tmp_path):
    marker = tmp_path / "pwned"
    top_level = pickle.dumps([RunsCode(os.system, f"touch {marker}")])
    nodes = fixture_nodes("hmm_categorical_L8_H16_V11.jpc")
    nodes[0]["dist"] = pickle.dumps(RunsCode(eval, f"open({str(marker)!r}, 'w')"))
    nested = pickle.dumps(nodes)
    for label, data in (("top", top_level), ("nested", nested)):
        path = write(tmp_path, data, f"{label}.jpc")
        with pytest.raises(HarnessError, match=r"refuses to load (posix\.system|builtins\.eval)") as err:
            load_pc(path)
        assert str(path) in str(err.value)
    assert not marker.exists()


def test_numpy_classes_cannot_be_called_directly(tmp_path):
    # numpy.ndarray(10**9) would allocate 8 GB; the importer only lets numpy rebuild pickled arrays.
    with pytest.raises(HarnessError, match="not a readable pickle"):
        load_pc(write(tmp_path, b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a\x3b\x85R."))


def test_an_inhomogeneous_hmm_is_refused(tmp_path):
    nodes = fixture_nodes("hmm_categorical_L8_H16_V11.jpc")
    tied = next(node for node in nodes if node["type"] == "Sum" and "source_node" in node)
    tied["params"] = nodes[tied.pop("source_node")]["params"].copy()
    with pytest.raises(HarnessError, match="inhomogeneous"):
        load_pc(write(tmp_path, pickle.dumps(nodes)))


def test_circuits_that_are_not_an_hmm_chain_are_refused(tmp_path):
    nodes = fixture_nodes("hmm_categorical_L8_H16_V11.jpc")
    swapped = [dict(node) for node in nodes]
    swapped[0]["scope"], swapped[1]["scope"] = [1], [0]
    for variant, reason in ((nodes[:-1], "root is not a Sum"), (swapped, "has scope"),
                            ({"not": "a list"}, "not a list of pyjuice nodes")):
        with pytest.raises(HarnessError, match=reason):
            load_pc(write(tmp_path, pickle.dumps(variant)))


def fuzzed(data: bytes, rng: random.Random) -> list[bytes]:
    """30 truncations of `data` and 80 copies with one random bit flipped."""
    cases = [data[:n] for n in sorted({int(f * len(data)) for f in np.linspace(0, 1, 30, endpoint=False)})]
    for _ in range(80):
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        cases.append(bytes(flipped))
    return cases


def test_fuzzed_files_load_correctly_or_fail_with_our_error(tmp_path):
    """Truncations and bit flips: each case either loads an HMM that still matches the
    truth (a flip in an unused byte or a float's low bits) or raises HarnessError with
    one line naming the file; any other exception fails the test."""
    rng = random.Random(0)
    outcomes = {"loaded": 0, "refused": 0}
    for name in NAMES:
        data, truth = (FIXTURES / name).read_bytes(), expected(name)
        for case in fuzzed(data, rng):
            path = write(tmp_path, case)
            try:
                hmm = load_pc(path)
            except HarnessError as err:
                assert str(err).startswith(str(path)) and "\n" not in str(err)
                outcomes["refused"] += 1
            else:
                assert max_error(hmm, truth) <= 2e-3
                outcomes["loaded"] += 1
    assert outcomes["loaded"] > 0 and outcomes["refused"] > 0


def test_fuzzed_hostile_files_never_run_code(tmp_path):
    """A circuit carrying a canary (a pickle that creates a file when run) as a node's distribution and
    as a top-level node: every truncation and bit flip of it is refused, and the canary never appears."""
    canary = tmp_path / "canary"
    payload = RunsCode(os.system, f"touch {canary}")
    pickle.loads(pickle.dumps(payload))
    assert canary.exists(), "the canary must be live for its absence below to mean anything"
    canary.unlink()
    nodes = fixture_nodes("hmm_categorical_L8_H16_V11.jpc")
    nodes[0]["dist"] = pickle.dumps(payload)
    rng = random.Random(1)
    for data in (pickle.dumps(nodes), pickle.dumps([payload, *fixture_nodes("hmm_categorical_L8_H16_V11.jpc")])):
        for case in fuzzed(data, rng):
            path = write(tmp_path, case)
            with pytest.raises(HarnessError) as err:
                load_pc(path)
            assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
            assert not canary.exists()


# Fuzzing found a flipped BUILD opcode that became LONG_BINPUT with a memo index of 155 M: the
# unpickler grew its memo to match (2.7 GB, 9 s) before failing. An index of 2**31 would ask for 16 GB.
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
    path = write(tmp_path, b"\x80\x04N" + b"r" + (2**31).to_bytes(4, "little") + b".")
    done = subprocess.run([sys.executable, "-c", _LOAD_UNDER_4_GB, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "memo index" in done.stdout and "MemoryError" not in done.stdout, done


def test_saved_pc_round_trips_exactly(tmp_path):
    hmm = HMM.random(5, 7, generator=torch.Generator().manual_seed(0), window=16)
    hmm.metadata["task"] = "sudoku4"
    save_pc(hmm, tmp_path / "pc", trained_steps=300)
    loaded = load_pc(tmp_path / "pc")
    for name in ("log_pi", "log_alpha", "log_beta"):
        assert torch.equal(getattr(loaded, name), getattr(hmm, name))
    assert loaded.window == 16 and loaded.metadata == {"task": "sudoku4", "trained_steps": 300}
    log_q, observed = torch.randn(2, 16, 7), torch.full((2, 16), -1)
    assert torch.equal(loaded.log_evidence(log_q, observed), hmm.log_evidence(log_q, observed))


def test_broken_saved_pcs_and_unknown_files_are_refused(tmp_path):
    save_pc(HMM.random(3, 4), tmp_path / "pc")
    config_path, tensors_path = tmp_path / "pc" / "config.json", tmp_path / "pc" / "hmm.safetensors"
    config = json.loads(config_path.read_text())

    def refused(path, reason):
        with pytest.raises(HarnessError, match=reason):
            load_pc(path)

    refused(tmp_path / "missing", "no PC at")
    refused(write(tmp_path, b"hello", "notes.txt"), "unknown PC format")
    config_path.write_text(json.dumps({**config, "V": 5}))
    refused(tmp_path / "pc", r"log_beta has shape \(3, 4\), config says \(3, 5\)")
    config_path.write_text(json.dumps({**config, "format": "other"}))
    refused(tmp_path / "pc", "not a codd-hmm config")
    config_path.write_text(json.dumps(config))
    tensors_path.write_bytes(tensors_path.read_bytes()[:-9])
    refused(tmp_path / "pc", "not a saved PC directory")
    save_file({"log_pi": torch.zeros(3), "log_alpha": torch.zeros(3, 3), "log_beta": torch.zeros(3, 4)}, tensors_path)
    refused(tmp_path / "pc", "pi is not normalised")
