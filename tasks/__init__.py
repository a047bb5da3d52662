"""Task registry: `get_task(name)` and `list_tasks()`.

A task module registers its class with `@register`; importing this package imports every
module in it, so a new task plugs in by adding its file (a task outside the package registers
itself from a plug-in module, see harness/registry.py).
"""

from __future__ import annotations

import importlib
import pkgutil

from harness.registry import Registry
from tasks.base import Example, Score, Task

TASKS: Registry[type[Task]] = Registry("task", sort=True, plugins=True)
register = TASKS.register


def list_tasks() -> list[str]:
    return TASKS.names()


def get_task(name: str) -> Task:
    return TASKS.get(name)()


# Task modules register themselves on import (kept last: they import `register`).
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Example", "Score", "Task", "get_task", "list_tasks", "register"]
