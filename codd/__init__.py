"""The CoDD layer: an HMM probabilistic circuit multiplied into a dLLM's per-token
distributions (DESIGN.md 4.2). `load_pc` reads pyjuice `.jpc` files and our own saved PCs."""

from __future__ import annotations

from pathlib import Path

from codd.hmm import HMM
from codd.hub import resolve_pc
from codd.pyjuice_import import load_pyjuice_hmm
from codd.storage import load_saved_pc, save_pc
from harness.errors import HarnessError

__all__ = ["HMM", "load_pc", "locate_pc", "save_pc"]

_PICKLE_MAGIC = b"\x80"


def load_pc(path: str | Path) -> HMM:
    """An HMM from a directory written by `save_pc` or from a pyjuice `.jpc` file, either given by
    its path or held by a Hugging Face hub repository (`owner/name`, see codd/hub.py)."""
    path = locate_pc(path)
    return load_saved_pc(path) if path.is_dir() else load_pyjuice_hmm(path)


def locate_pc(path: str | Path) -> Path:
    """The local PC directory or `.jpc` file `path` names, without reading it; HarnessError when
    there is none, so a bad spec fails before a circuit is read."""
    path = resolve_pc(str(path))
    if path.is_dir():
        return path
    if not path.is_file():
        raise HarnessError(f"no PC at {path}: expected a pyjuice .jpc file or a directory written by save_pc")
    with path.open("rb") as file:
        if file.read(1) != _PICKLE_MAGIC:
            raise HarnessError(f"{path}: unknown PC format; expected a pyjuice .jpc file (a pickle) "
                               f"or a directory written by save_pc")
    return path
