"""The layering the folders show: evaluation code never imports training code, and the decoding engine
depends on nothing downstream of it (runner, store, reports, samplers, tasks)."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = ("harness", "codd", "baselines", "tasks")
TRAINING = ("harness.training", "codd.training", "baselines.grpo.trainer", "baselines.grpo.loss")
TRAINING_COMMANDS = ("harness.commands.train", "harness.commands.train_pc", "harness.commands.train_rl")


def _imports() -> dict[str, set[str]]:
    """Every module of the packages -> the modules it imports (absolute names)."""
    graph = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            names = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
            graph[module] = names
    return graph


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_evaluation_code_never_imports_training_code():
    offending = {module: sorted(n for n in names if _within(n, TRAINING))
                 for module, names in _imports().items() if not _within(module, TRAINING + TRAINING_COMMANDS)}
    assert {m: n for m, n in offending.items() if n} == {}


def test_the_engine_depends_only_on_backbones_errors_and_the_registry():
    engine = {m: n for m, n in _imports().items() if _within(m, ("harness.engine",))}
    assert engine, "no harness/engine package"
    ours = {m: sorted(n for n in names if _within(n, PACKAGES)
                      and not _within(n, ("harness.engine", "harness.backbones", "harness.errors", "harness.registry")))
            for m, names in engine.items()}
    assert {m: n for m, n in ours.items() if n} == {}
