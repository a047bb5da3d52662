"""Assets shipped inside the package for the embedded backbones (CoDD PCs, diffu-GRPO adapters),
each found by the backbone its own JSON record says it was trained on, so a retrained asset
is picked up by dropping its folder in place."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError


def shipped_assets(folder: Path, record_name: str, backbone_of: Callable[[dict], str | None],
                   required: str | None = None) -> dict[str, Path]:
    """Backbone name -> the sub-directory of `folder` whose JSON file `record_name` names it
    (read by `backbone_of`) and, if given, holds the file `required`."""
    found = {}
    for record in sorted(folder.glob(f"*/{record_name}")):
        backbone = backbone_of(json.loads(record.read_text()))
        if backbone and (required is None or (record.parent / required).is_file()):
            found[backbone] = record.parent
    return found


def shipped_for(what: str, shipped: dict[str, Path], backbone_name: str, option: str) -> Path:
    """The asset shipped for `backbone_name`; HarnessError naming the backbones that have one."""
    if backbone_name not in shipped:
        raise HarnessError(f"no shipped {what} for backbone {backbone_name!r} (shipped for: "
                           f"{', '.join(sorted(shipped)) or 'none'}); pass one as {option}")
    return shipped[backbone_name]
