"""Which PC a CoDD run uses, and with which gamma and tau: one `resolve`, for the sampler and
`harness gap` alike.

In order: the PC the user named (`codd:pc=`, `gap --pc`); else, on LLaDA or Dream, the authors'
released circuit for the task (codd/hub.py); else the PC shipped for the backbone
(`codd/assets/<family>/`, written by `python -m harness train-pc`, each recording in its metadata
the backbone it was trained on, e.g. "embedded-names"). gamma and tau: the user's, else those the
PC recorded (train-pc picks them from its own validation curve), else the CoDD authors' README
setting for LLaDA on MATH500 (a hub `.jpc` records none).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from codd import load_pc
from codd.hmm import HMM
from codd.hub import author_pc
from codd.storage import CONFIG_FILE
from harness.errors import HarnessError
from harness.shipped import shipped_assets, shipped_for

ASSETS = Path(__file__).resolve().parent / "assets"
FALLBACK_GAMMA = 0.5
FALLBACK_TAU = 0.2


@dataclass(frozen=True)
class PCSpec:
    """What the user asked for; None leaves the choice to `resolve`."""

    pc: str | None = None
    gamma: float | None = None
    tau: float | None = None


@dataclass(frozen=True)
class ChosenPC:
    source: str   # the path or hub id the circuit was read from
    hmm: HMM      # frozen, on the backbone's device
    gamma: float
    tau: float


def shipped_pcs() -> dict[str, Path]:
    """Backbone name -> directory of the PC shipped for it."""
    return shipped_assets(ASSETS, CONFIG_FILE, lambda config: config.get("metadata", {}).get("backbone"))


def pin(spec: PCSpec, backbone, task: str | None) -> PCSpec:
    """`spec` with the authors' circuit for `task` filled in when the user named no PC and the
    backbone's architecture has one; the backbone's shipped PC stays implicit (None)."""
    if spec.pc is not None or task is None:
        return spec
    return replace(spec, pc=author_pc(backbone.architecture, task))


def resolve(spec: PCSpec, backbone, task: str | None = None) -> ChosenPC:
    """The circuit, gamma and tau for `spec` on `backbone` decoding `task` (module docstring);
    HarnessError when there is none or it does not fit the backbone's vocabulary."""
    spec = pin(spec, backbone, task)
    source = spec.pc or str(shipped_for("CoDD PC", shipped_pcs(), backbone.name, "codd:pc=PATH"))
    hmm = load_pc(source).freeze().to(backbone.device)
    check_fits(hmm, backbone, source)
    gamma = spec.gamma if spec.gamma is not None else float(hmm.metadata.get("gamma", FALLBACK_GAMMA))
    tau = spec.tau if spec.tau is not None else float(hmm.metadata.get("tau", FALLBACK_TAU))
    return ChosenPC(source, hmm, gamma, tau)


def check_fits(hmm: HMM, backbone, source: str = "") -> None:
    """HarnessError unless the circuit emits the backbone's vocabulary."""
    if hmm.vocab_size != backbone.vocab_size:
        named = f"{source} " if source else ""
        raise HarnessError(f"the CoDD PC {named}has a vocabulary of {hmm.vocab_size} "
                           f"tokens but backbone {backbone.name} has {backbone.vocab_size} (the width of its "
                           f"logits, padded embeddings included); use a PC trained for this backbone")
