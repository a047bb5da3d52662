"""README's promise for bad input, across every subcommand: one line on stderr naming the problem,
exit code 2, no traceback, and nothing written (the folder the case works in is byte-for-byte
unchanged). Each case is a distinct way a user's input can be wrong."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from harness.cli import main

SHIPPED_PC = Path(__file__).resolve().parents[1] / "codd" / "assets" / "names"
NAMES_RUN = ["run", "--tasks", "names", "--samplers", "factorized", "--tokens-per-step", "2", "--limit", "4",
             "--quiet", "--no-report"]


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.is_dir(), p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


class Workspace:
    """A case's folder and the inputs it can break; `gsm8k(lines)` writes a data dir of its own."""

    def __init__(self, root: Path, data_dir: Path, run_dir: Path):
        self.root, self.data_dir, self.good_run = root, data_dir, run_dir

    def path(self, name: str) -> str:
        return str(self.root / name)

    def write(self, name: str, data: bytes | str) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def data(self, relpath: str, data: bytes | str) -> str:
        self.write(f"data/{relpath}", data)
        return self.path("data")

    def real(self, relpath: str) -> bytes:
        return (self.data_dir / relpath).read_bytes()

    def run_copy(self, name: str = "run") -> Path:
        return Path(shutil.copytree(self.good_run, self.root / name))

    def pc_copy(self, name: str = "pc") -> Path:
        return Path(shutil.copytree(SHIPPED_PC, self.root / name))

    def baseline(self, **changes) -> str:
        doc = {"format": "codd-bench check baseline v1", "about": "", "alpha": 0.01, "tolerance": 0.2,
               "options": {"tasks": ["names"], "samplers": ["factorized"], "tokens_per_step": [2], "limit": 4},
               "cells": []}
        doc.update(changes)
        return self.write("baseline.json", json.dumps(doc))


def _names_with(spec):
    """A run of the names task with sampler `spec` (a string, or made from the workspace)."""
    return lambda ws: ["run", "--tasks", "names", "--samplers", spec(ws) if callable(spec) else spec]


LATIN_1_LINE = '{"question": "caf\xe9?", "answer": "#### 2"}'.encode("latin-1")


def _gsm8k_line(answer="2\n#### 2"):
    return json.dumps({"question": "q", "answer": answer}) + "\n"


def _with(ws: Workspace, corrupt) -> str:
    """A copy of the good run with one file changed by `corrupt(run_dir)`."""
    run = ws.run_copy()
    corrupt(run)
    return str(run)


def _pc_with(ws: Workspace, corrupt) -> str:
    pc = ws.pc_copy()
    corrupt(pc)
    return str(pc)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _samples_json(run: Path, text: str) -> None:
    (run / "samples.jsonl").write_text(text)


def _pc_out_with_other_settings(ws: Workspace) -> str:
    """An interrupted train-pc --out whose cached windows were computed with other settings."""
    out = ws.root / "pc-out"
    out.mkdir()
    torch.save({"key": {"family": "names", "window": 99}, "seconds": 1.0, "sets": {}}, out / "pc_cache.pt")
    return str(out)


# name -> (argv built from the workspace, a fragment the one line must contain)
CASES = {
    # run: sampler specs
    "sampler option without a value": (_names_with("codd:gamma"), "expected key=value"),
    "sampler option not a number": (_names_with("codd:gamma=abc"), "gamma must be a number"),
    "sampler option out of range": (_names_with("codd:gamma=2"), "[0, 1]"),
    "sampler temperature zero": (_names_with("codd:tau=0"), "tau"),
    "unknown sampler option": (_names_with("codd:bogus=1"), "bad options for sampler 'codd'"),
    "option on an option-less sampler": (_names_with("factorized:k=1"), "bad options for sampler 'factorized'"),
    "unknown codd proposal": (_names_with("codd:proposal=best"), "valid proposals"),
    "empty sampler list": (_names_with(","), "at least one sampler"),
    "adapter that is not there": (_names_with(lambda ws: f"diffu-grpo:adapter={ws.path('nothing')}"),
                                  "no LoRA adapter"),
    # run: budgets and decoding settings
    "steps not splitting over blocks": (lambda ws: ["run", "--tasks", "sudoku4", "--gen-length", "32",
                                                    "--block-length", "16", "--steps", "3"], "sudoku4"),
    "gen length not a multiple of blocks": (lambda ws: ["run", "--tasks", "sudoku4", "--gen-length", "24",
                                                        "--block-length", "16"], "gen length 24"),
    "tokens per step beyond the gen length": (lambda ws: ["run", "--tasks", "names", "--tokens-per-step", "1000"],
                                              "names"),
    "negative temperature": (lambda ws: ["run", "--tasks", "names", "--temperature", "-1"], "temperature"),
    "steps under a protocol that fixes them": (lambda ws: ["run", "--tasks", "gsm8k", "--protocol", "d1",
                                                           "--steps", "64"], "fixes the budget"),
    "task outside the protocol": (lambda ws: ["run", "--tasks", "names", "--protocol", "codd"],
                                  "does not define task names"),
    "a GPU that is not there": (lambda ws: ["run", "--tasks", "names", "--device", "cuda:7"], "cuda"),
    "unknown dtype": (lambda ws: ["run", "--tasks", "names", "--dtype", "float8"], "valid dtypes"),
    "unknown answer rule": (lambda ws: ["run", "--tasks", "names", "--answer-rule", "lenient"], "strict"),
    "unknown split": (lambda ws: ["run", "--tasks", "names", "--split", "dev"], "valid splits"),
    # run: data files (a --data-dir of the case's own)
    "garbage data file": (lambda ws: ["run", "--tasks", "gsm8k", "--data-dir",
                                      ws.data("gsm8k/test.jsonl", bytes(range(256)) * 4)], "test.jsonl:1"),
    "truncated data file": (lambda ws: ["run", "--tasks", "gsm8k", "--data-dir",
                                        ws.data("gsm8k/test.jsonl", ws.real("gsm8k/test.jsonl")[:100_001])],
                            "bad JSON"),
    "UTF-16 data file": (lambda ws: ["run", "--tasks", "gsm8k", "--data-dir",
                                     ws.data("gsm8k/test.jsonl", _gsm8k_line().encode("utf-16"))], "not UTF-8"),
    "Latin-1 data file": (lambda ws: ["run", "--tasks", "gsm8k", "--data-dir",
                                      ws.data("gsm8k/test.jsonl", LATIN_1_LINE)],
                          "not UTF-8"),
    "data record not an object": (lambda ws: ["run", "--tasks", "gsm8k", "--data-dir",
                                              ws.data("gsm8k/test.jsonl", _gsm8k_line() + "[1, 2]\n")],
                                  "test.jsonl:2: expected a JSON object"),
    "data record without a field": (lambda ws: ["run", "--tasks", "math500", "--data-dir",
                                                ws.data("math500/test.jsonl", '{"problem": "p"}\n')],
                                    "missing field"),
    "gold answer without ####": (lambda ws: ["run", "--tasks", "gsm8k", "--data-dir",
                                             ws.data("gsm8k/test.jsonl", _gsm8k_line(answer="two"))], "####"),
    "garbage d1 sudoku file": (lambda ws: ["run", "--tasks", "sudoku4", "--protocol", "d1", "--data-dir",
                                           ws.data("d1/sudoku4_test.csv", "a,b\n1,2\n")], "sudoku4_test.csv"),
    "truncated d1 countdown file": (lambda ws: ["run", "--tasks", "countdown", "--protocol", "d1", "--data-dir",
                                                ws.data("d1/countdown_cd3_test.jsonl",
                                                        ws.real("d1/countdown_cd3_test.jsonl")[:1000])],
                                    "countdown_cd3_test.jsonl"),
    # run: corrupt PCs and saved PC directories
    "garbage .jpc file": (_names_with(lambda ws: "codd:pc=" + ws.write("bad.jpc", b"\x80" + bytes(range(200)))),
                          "bad.jpc"),
    "PC file of another format": (_names_with(lambda ws: "codd:pc=" + ws.write("pc.txt", "not a circuit")),
                                  "unknown PC format"),
    "saved PC with a garbage config": (_names_with(lambda ws: "codd:pc=" + _pc_with(
        ws, lambda pc: (pc / "config.json").write_bytes(b"\xff\xfe{"))), "not a saved PC directory"),
    "saved PC with truncated tensors": (_names_with(lambda ws: "codd:pc=" + _pc_with(
        ws, lambda pc: _truncate(pc / "hmm.safetensors"))), "not a saved PC directory"),
    "saved PC whose config lies about N": (_names_with(lambda ws: "codd:pc=" + _pc_with(
        ws, lambda pc: (pc / "config.json").write_text(
            (pc / "config.json").read_text().replace('"N": 32', '"N": 33')))), "shape"),
    "empty PC directory": (_names_with(lambda ws: "codd:pc=" + str(Path(ws.write("empty/.keep", "")).parent)),
                           "not a saved PC directory"),
    # run: the output directory
    "--out on a file": (lambda ws: [*NAMES_RUN, "--out", ws.write("taken", "a file")], "cannot write"),
    "--out under a file": (lambda ws: [*NAMES_RUN, "--out", ws.write("taken", "a file") + "/run"],
                           "cannot write"),
    "resume with other options": (lambda ws: [*NAMES_RUN[:-4], "--limit", "5", "--quiet", "--no-report",
                                              "--out", str(ws.run_copy())], "limit differ"),
    "resume with another answer rule": (lambda ws: [*NAMES_RUN, "--answer-rule", "strict", "--out",
                                                    str(ws.run_copy())], "answer_rule differ"),
    "resume a corrupt manifest": (lambda ws: [*NAMES_RUN, "--out", _with(
        ws, lambda run: _truncate(run / "manifest.json"))], "not valid JSON"),
    "resume a manifest that is not one": (lambda ws: [*NAMES_RUN, "--out", _with(
        ws, lambda run: (run / "manifest.json").write_text("[]"))], "not a run manifest"),
    "resume corrupt samples": (lambda ws: [*NAMES_RUN, "--out", _with(
        ws, lambda run: _samples_json(run, '{"task": "names"}\n{garbage\n'))], "samples.jsonl:1: malformed record"),
    # report
    "report a folder that is no run": (lambda ws: ["report", str(Path(ws.write("x/notes.txt", "hi")).parent),
                                                   "--out", ws.path("report")], "neither a run directory"),
    "report a binary manifest": (lambda ws: ["report", _with(ws, lambda run: (run / "manifest.json").write_bytes(
        b"\x00\xff" * 50)), "--out", ws.path("report")], "cannot read"),
    "report samples of another encoding": (lambda ws: ["report", _with(
        ws, lambda run: (run / "samples.jsonl").write_bytes('{"task": "n\xe9"}\n'.encode("latin-1"))),
        "--out", ws.path("report")], "malformed record"),
    "report a sample that is not an object": (lambda ws: ["report", _with(
        ws, lambda run: _samples_json(run, "42\n")), "--out", ws.path("report")], "not a JSON object"),
    "report samples without fields": (lambda ws: ["report", _with(
        ws, lambda run: _samples_json(run, '{"task": "names"}\n')), "--out", ws.path("report")], "record lacks"),
    "report a gap result that is not one": (lambda ws: ["report", str(Path(ws.write("gap/gap.json", "[1]")).parent),
                                                        "--out", ws.path("report")], "not a JSON object"),
    "report to a path under a file": (lambda ws: ["report", str(ws.run_copy()), "--out",
                                                  ws.write("taken", "a file") + "/report"], "cannot write"),
    # check
    "check without its baseline": (lambda ws: ["check", "--baseline", ws.path("missing.json")], "no baseline file"),
    "check a garbage baseline": (lambda ws: ["check", "--baseline", ws.write("b.json", b"\x89PNG\r\n")],
                                 "cannot read baseline"),
    "check a baseline of another kind": (lambda ws: ["check", "--baseline", ws.write("b.json", "[]")],
                                         "not a check baseline"),
    "check a baseline with unknown options": (lambda ws: ["check", "--baseline", ws.baseline(
        options={"tasks": ["names"], "speed": "max"})], "unknown run option"),
    "check a baseline with malformed samples": (lambda ws: ["check", "--baseline", ws.baseline(cells=[
        {"task": "names", "sampler": "factorized", "remasking": "low_confidence", "steps": 1, "exact": True,
         "samples": {"names-test-00000": 5}}]), "--run", str(ws.run_copy())], "malformed cell"),
    "check against a folder that is no run": (lambda ws: ["check", "--baseline", ws.baseline(), "--run",
                                                          str(Path(ws.write("x/notes.txt", "hi")).parent)],
                                              "neither a run directory"),
    "check a run of another configuration": (lambda ws: ["check", "--baseline", ws.baseline(options={
        "tasks": ["names"], "samplers": ["factorized"], "tokens_per_step": [2], "limit": 9}),
        "--run", str(ws.run_copy())], "limit differ"),
    "check a run with corrupt samples": (lambda ws: ["check", "--baseline", ws.baseline(), "--run", _with(
        ws, lambda run: _truncate(run / "samples.jsonl", 0.3))], "malformed record"),
    "check alpha outside (0, 1)": (lambda ws: ["check", "--baseline", ws.baseline(), "--alpha", "2"],
                                   "between 0 and 1"),
    # gap
    "gap of an unknown task": (lambda ws: ["gap", "--task", "nosuch", "--out", ws.path("gap")], "valid tasks"),
    "gap with a garbage PC": (lambda ws: ["gap", "--task", "names", "--pc", ws.write("bad.jpc", b"\x80\x04junk"),
                                          "--out", ws.path("gap"), "--quiet"], "bad.jpc"),
    "gap with a non-positive tau": (lambda ws: ["gap", "--task", "names", "--tau", "0", "--out", ws.path("gap")],
                                    "positive"),
    "gap to a path under a file": (lambda ws: ["gap", "--task", "names", "--limit", "2", "--quiet", "--out",
                                               ws.write("taken", "a file") + "/gap"], "cannot write"),
    # train
    "train an unknown family": (lambda ws: ["train", "--family", "poetry", "--out", ws.path("m")], "invalid choice"),
    "train heads not splitting the width": (lambda ws: ["train", "--family", "names", "--dim", "30", "--heads", "4",
                                                        "--out", ws.path("m")], "--dim 30"),
    "train with a negative learning rate": (lambda ws: ["train", "--family", "names", "--lr", "-1",
                                                        "--out", ws.path("m")], "positive"),
    "train with a block share above 1": (lambda ws: ["train", "--family", "names", "--block-share", "1.5",
                                                     "--out", ws.path("m")], "between 0 and 1"),
    "train on a GPU that is not there": (lambda ws: ["train", "--family", "names", "--device", "cuda:7",
                                                     "--out", ws.path("m")], "cuda"),
    "train with a garbage tokenizer": (lambda ws: ["train", "--family", "names", "--quiet", "--out", ws.path("m"),
                                                   "--tokenizer", str(Path(ws.write("tok/tokenizer.json",
                                                                                    "{not json")).parent)],
                                       "tokenizer"),
    # train-pc
    "train-pc window not dividing the gen length": (lambda ws: ["train-pc", "--family", "sudoku", "--window", "7",
                                                                "--out", ws.path("p")], "must divide"),
    "train-pc with a zero learning rate": (lambda ws: ["train-pc", "--family", "names", "--lr", "0",
                                                       "--out", ws.path("p")], "positive"),
    "train-pc resumed with other options": (lambda ws: ["train-pc", "--family", "names", "--quiet",
                                                        "--out", _pc_out_with_other_settings(ws)], "other settings"),
    "train-pc resumed from a truncated cache": (lambda ws: ["train-pc", "--family", "names", "--quiet", "--out",
                                                            str(Path(ws.write("pc-out/pc_cache.pt",
                                                                              b"PK\x03\x04trunc")).parent)],
                                                "pc_cache.pt"),
    # train-rl
    "train-rl tasks of two families": (lambda ws: ["train-rl", "--task", "sudoku4,names", "--steps", "1",
                                                   "--out", ws.path("r")], "must share"),
    "train-rl prompt masking of 1.5": (lambda ws: ["train-rl", "--task", "names", "--steps", "1", "--p-mask", "1.5",
                                                   "--out", ws.path("r")], "--p-mask"),
    "train-rl budget not dividing": (lambda ws: ["train-rl", "--task", "names", "--steps", "1",
                                                 "--tokens-per-step", "3", "--out", ws.path("r")], "does not divide"),
    "train-rl zero steps": (lambda ws: ["train-rl", "--task", "names", "--steps", "0", "--out", ws.path("r")],
                            "positive"),
    # list and the CLI itself
    "list with an argument": (lambda ws: ["list", "everything"], "unrecognized arguments"),
    "unknown command": (lambda ws: ["serve"], "invalid choice"),
}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good") / "run"
    assert main([*NAMES_RUN, "--out", str(out)]) == 0
    return out


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(case, tmp_path, data_dir, good_run, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # default output folders (results/, reports/) would land here
    ws = Workspace(tmp_path, data_dir, good_run)
    build, expected = CASES[case]
    argv = build(ws)
    capsys.readouterr()
    before = snapshot(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert expected in err, err
    assert snapshot(tmp_path) == before


def test_a_read_only_out_is_refused(tmp_path, capsys):
    """A read-only file system (a tmpfs mounted read-only; root ignores permission bits)."""
    target = tmp_path / "ro"
    target.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(target)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        code = main([*NAMES_RUN, "--out", str(target / "run")])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Read-only file system" in err, err
        assert not any(target.iterdir())
    finally:
        subprocess.run(["umount", str(target)], check=True)
