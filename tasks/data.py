"""Where real benchmark data comes from: a data dir, $HARNESS_DATA_DIR, or the Hugging Face hub.

Files keep their original layout (`gsm8k/test.jsonl`, `math500/test.jsonl`, ...);
the first place that has the file wins. The hub is the last resort, and only for
files with a stable hub copy; offline, it must fail in a moment, not after minutes
of retries, so it is probed before `datasets` is asked.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from harness.errors import HarnessError

ENV_VAR = "HARNESS_DATA_DIR"

# Hub copies (dataset id, config, split) with the same fields as the files.
HUB_SOURCES = {
    "gsm8k/train.jsonl": ("openai/gsm8k", "main", "train"),
    "gsm8k/test.jsonl": ("openai/gsm8k", "main", "test"),
    "math500/test.jsonl": ("HuggingFaceH4/MATH-500", None, "test"),
}
HUB_PROBE_SECONDS = 3.0


def read_records(relpath: str, fields: tuple[str, ...], data_dir: str | Path | None = None) -> list[dict]:
    """The records of data file `relpath`, in file order, each checked to have `fields`."""
    tried = []
    for unset, folder in (("no --data-dir", data_dir), (f"${ENV_VAR} unset", os.environ.get(ENV_VAR))):
        if not folder:
            tried.append(unset)
            continue
        path = Path(folder) / relpath
        if path.is_file():
            return _read_jsonl(path, fields)
        tried.append(f"not in {path}")
    records, why_not = _read_hub(relpath)
    if records is None:
        raise HarnessError(f"data file {relpath} not found ({'; '.join(tried + [why_not])}); "
                           f"provide it with --data-dir DIR or {ENV_VAR}=DIR (a folder holding {relpath})"
                           + (" or with network access to the Hugging Face hub" if relpath in HUB_SOURCES else ""))
    for i, record in enumerate(records):
        _check_fields(record, fields, f"{HUB_SOURCES[relpath][0]} row {i}")
    return records


def _read_jsonl(path: Path, fields: tuple[str, ...]) -> list[dict]:
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        where = f"{path}:{number}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise HarnessError(f"{where}: not UTF-8 text ({err.reason} at column {err.start + 1})") from None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise HarnessError(f"{where}: bad JSON ({err})") from None
        _check_fields(record, fields, where)
        records.append(record)
    return records


def _check_fields(record, fields: tuple[str, ...], where: str) -> None:
    if not isinstance(record, dict):
        raise HarnessError(f"{where}: expected a JSON object with fields {', '.join(fields)}")
    missing = [f for f in fields if f not in record]
    if missing:
        raise HarnessError(f"{where}: missing field {', '.join(map(repr, missing))}")


def _read_hub(relpath: str) -> tuple[list[dict] | None, str]:
    """The hub copy of `relpath`, or None and the reason it is unavailable."""
    if relpath not in HUB_SOURCES:
        return None, "the Hugging Face hub has no stable copy of it"
    repo, config, split = HUB_SOURCES[relpath]
    try:
        import datasets
        from huggingface_hub import constants
    except ImportError as err:
        return None, f"hub {repo}: {err}"
    # Offline mode answers from the local cache at once; otherwise a dead network
    # would cost minutes of retries inside `datasets`, so probe the endpoint first.
    if not datasets.config.HF_HUB_OFFLINE:
        endpoint = urlparse(constants.ENDPOINT)
        try:
            socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=HUB_PROBE_SECONDS).close()
        except OSError as err:
            return None, f"hub {repo} unreachable: {err}"
    try:
        rows = datasets.load_dataset(repo, config, split=split)
    except Exception as err:  # any failure of the hub just means "not available here"
        return None, f"hub {repo}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    return [dict(row) for row in rows], ""
