"""What subcommands share about their arguments: types that reject bad values with one clear
line, the data-dir option, and the explicit command line a training run records."""

from __future__ import annotations

import argparse
import shlex


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def unit_interval(text: str) -> float:
    """A number from 0 to 1, both included (a share)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def positive_int_list(text: str) -> tuple[int, ...]:
    """A comma-separated list of positive integers, e.g. `64,128,256`."""
    return tuple(positive_int(item) for item in text.split(","))


def name_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of names, e.g. `math500,gsm8k`."""
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected at least one name")
    return items


def sampler_list(text: str) -> tuple[str, ...]:
    """Comma-separated sampler specs; an item `key=value` without a sampler name
    continues the previous spec, so `factorized,codd:tau=0.2,gamma=0.5` is two samplers."""
    specs: list[str] = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        if "=" in item and ":" not in item and specs:
            specs[-1] += "," + item
        else:
            specs.append(item)
    if not specs:
        raise argparse.ArgumentTypeError("expected at least one sampler")
    return tuple(specs)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help="folder with gsm8k/, math500/, math/ (else $HARNESS_DATA_DIR, else the Hugging Face hub)")


def explicit_command(command: str, options: dict) -> str:
    """`python -m harness COMMAND --option value ...` with every option spelled out (those that
    are None or False left out, a True one as a bare flag), as compute.json records it so that a
    run can be reproduced exactly."""
    words = []
    for name, value in options.items():
        if value is True:
            words.append("--" + name.replace("_", "-"))
        elif value is not None and value is not False:
            words += ["--" + name.replace("_", "-"), str(value)]
    return f"python -m harness {command} " + shlex.join(words)
