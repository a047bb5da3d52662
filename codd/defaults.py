"""Which PC a backbone gets by default, and with which gamma and tau.

Shipped PCs live in `codd/assets/<family>/` (written by `python -m harness train-pc`); each
records in its metadata the backbone it was trained on (`backbone`, e.g. "embedded-names")
and the gamma and tau chosen from its own validation curve. A PC without those entries
(e.g. a pyjuice `.jpc` from the hub) gets the CoDD authors' README setting for LLaDA on
MATH500.
"""

from __future__ import annotations

from pathlib import Path

from codd.storage import CONFIG_FILE
from harness.shipped import shipped_assets, shipped_for

ASSETS = Path(__file__).resolve().parent / "assets"
FALLBACK_GAMMA = 0.5
FALLBACK_TAU = 0.2


def shipped_pcs() -> dict[str, Path]:
    """Backbone name -> directory of the PC shipped for it."""
    return shipped_assets(ASSETS, CONFIG_FILE, lambda config: config.get("metadata", {}).get("backbone"))


def default_pc_path(backbone_name: str) -> Path:
    """The shipped PC for `backbone_name`; HarnessError naming the backbones that have one."""
    return shipped_for("CoDD PC", shipped_pcs(), backbone_name, "codd:pc=PATH")


def default_settings(metadata: dict) -> tuple[float, float]:
    """(gamma, tau) recorded with a PC, else the authors' published example."""
    return float(metadata.get("gamma", FALLBACK_GAMMA)), float(metadata.get("tau", FALLBACK_TAU))
