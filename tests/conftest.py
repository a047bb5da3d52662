"""Shared fixtures."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark data: $HARNESS_DATA_DIR (CI sets it), else ../shared/data beside the repo."""
    # Absolute, so subprocesses started in another working directory find it too.
    return Path(os.environ.get("HARNESS_DATA_DIR", Path(__file__).parents[2] / "shared" / "data")).resolve()
