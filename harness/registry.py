"""Things found by name: tasks, samplers, protocols, remasking rules, CoDD proposals, backbone loaders.

Each kind has one `Registry`. A name is taken once (a second registration is a bug, wherever it
comes from), and asking for an unknown name is a HarnessError listing the valid ones. Plug-ins
outside the core register themselves when the modules named by the `codd_bench.plugins` entry
points (pyproject.toml) are imported, which a registry does before its first lookup.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from functools import cache
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")
PLUGINS = "codd_bench.plugins"


@cache
def load_plugins() -> None:
    """Import every plug-in module once: importing one registers what it defines."""
    for point in entry_points(group=PLUGINS):
        importlib.import_module(point.value)


class Registry(Generic[T]):
    """Named `T`s of one kind; `names()` in registration order, or sorted with `sort`."""

    def __init__(self, kind: str, plural: str | None = None, sort: bool = False, plugins: bool = False):
        self.kind, self.plural, self.sort, self.plugins = kind, plural or kind + "s", sort, plugins
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice: {self._items[name]!r} and {item!r}")
        self._items[name] = item
        return item

    def register(self, cls: T) -> T:
        """Class decorator: register `cls` under its `name` attribute."""
        return self.add(cls.name, cls)

    def _loaded(self) -> dict[str, T]:
        if self.plugins:
            load_plugins()
        return self._items

    def get(self, name: str) -> T:
        items = self._loaded()
        if name not in items:
            raise HarnessError(f"unknown {self.kind} {name!r}; valid {self.plural}: {', '.join(self.names())}")
        return items[name]

    def names(self) -> list[str]:
        names = list(self._loaded())
        return sorted(names) if self.sort else names

    def __contains__(self, name: str) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._loaded()[name]) for name in self.names()]
