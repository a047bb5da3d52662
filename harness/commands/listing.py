"""`python -m harness list`: the tasks, samplers and models this install knows."""

from __future__ import annotations

import argparse

from harness.backbones import list_models
from harness.engine.sampler import list_samplers
from tasks import get_task, list_tasks


def add_parser(commands) -> None:
    p = commands.add_parser("list", help="show tasks, samplers and models",
                            description="Show the registered tasks, samplers and models with one-line descriptions.")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    print("tasks:")
    for name in list_tasks():
        task = get_task(name)
        print(f"  {name:<14} [{task.family}, gen {task.gen_length}] {task.description}")
    print("samplers:")
    for name, description in list_samplers().items():
        print(f"  {name:<14} {description}")
    print("models:")
    for name, description in list_models().items():
        print(f"  {name:<14} {description}")
    return 0
