"""`python -m harness`: the command-line entry point.

Each subcommand lives in harness/commands/ and contributes `add_parser`.
Only the module of the command being run is imported (the others pull in
transformers, matplotlib or scipy, seconds of start-up each); `--help` imports all.
Input errors (HarnessError, bad arguments) and a file system that refuses our output (full,
read-only, a file where a folder should be) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from harness.errors import HarnessError

COMMANDS = ("run", "report", "gap", "check", "list", "train", "train-pc", "train-rl")
MODULES = {"list": "listing"}  # command names that are not their module's name
# What a file system answers when it cannot take the output: the user's to fix, not a bug.
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                  errno.EISDIR, errno.EEXIST}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus the usual exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv` naming a command, only that command's module is loaded."""
    parser = OneLineErrorParser(
        prog="python -m harness",
        description="codd-bench: evaluate parallel decoding of diffusion language models "
                    "(factorized, CoDD, RL-tuned) across step budgets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=OneLineErrorParser)
    wanted = [argv[0]] if argv and argv[0] in COMMANDS else COMMANDS
    for command in wanted:
        module = MODULES.get(command, command.replace("-", "_"))
        importlib.import_module(f"harness.commands.{module}").add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in STORAGE_ERRORS:
            raise
        print(f"error: cannot write {err.filename or 'the output'}: {err.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
