"""The house reads bottom-up: read from the imports, no module imports a layer above
its own, ``watcher`` and ``workers`` stand side by side, and no modules import each
other in a cycle.

Layers, bottom to top:

0. the core: ``sorawatch`` (events, keys, settings, store, vocabulary, projections,
   commands, rendering, ...) and ``sorawatch.templates``;
1. the watcher (``sorawatch.watcher``) and the workers (``sorawatch.workers``), beside
   each other;
2. the entry points: the CLI (``sorawatch.cli``, ``sorawatch.__main__``) and the web
   app (``sorawatch.web``), and the support servers of tests and benches
   (``sorawatch.testing``).

Imports inside functions count (a lazy import is still an arrow); imports under
``if TYPE_CHECKING:`` do not (they never run). The cycle check looks at imports made
when a module loads, since only those can fail half-way.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_packaging import INSTALLED_AS

REPO = Path(__file__).resolve().parents[1]
# Each folder of code at the top of the repository → the package it is installed as.
PACKAGES = {folder: path.replace("/", ".") for folder, path in INSTALLED_AS.items()}
TOP = ("sorawatch.cli", "sorawatch.web", "sorawatch.__main__", "sorawatch.testing")
SIDES = ("sorawatch.watcher", "sorawatch.workers")


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer(module: str) -> int:
    if any(within(module, t) for t in TOP):
        return 2
    if side(module):
        return 1
    return 0


def side(module: str) -> str | None:
    """``sorawatch.watcher`` or ``sorawatch.workers``, whichever ``module`` is part of."""
    return next((s for s in SIDES if within(module, s)), None)


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = [package, *path.relative_to(REPO / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(module: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported project module, line, at load time) for every import in ``path``."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def walk(node: ast.AST, at_load: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                yield from (i for n in child.orelse for i in walk(n, at_load))
                continue
            inner = at_load and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield from _resolve(alias.name, child.lineno, at_load)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    yield from _resolve(sub if sub in MODULES else base, child.lineno, at_load)
            else:
                yield from walk(child, inner)

    yield from walk(tree, True)


def _resolve(name: str, line: int, at_load: bool) -> Iterator[tuple[str, int, bool]]:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    if name:
        yield name, line, at_load


EDGES = [
    (module, target, line, at_load)
    for module, path in MODULES.items()
    for target, line, at_load in imports(module, path)
    if target != module
]


def test_the_layers_are_read_from_every_module() -> None:
    assert len(MODULES) > 80
    assert {
        "sorawatch.events",
        "sorawatch.watcher.poll",
        "sorawatch.workers.email",
        "sorawatch.cli.main",
    } <= set(MODULES)
    assert len(EDGES) > 300


def test_no_import_runs_back_up_the_layers() -> None:
    upward = [
        f"{MODULES[m].relative_to(REPO)}:{line} imports {t} (layer {layer(t)} above {layer(m)})"
        for m, t, line, _ in EDGES
        if layer(t) > layer(m)
    ]
    assert upward == [], "\n".join(upward)


def test_the_watcher_and_the_workers_stand_side_by_side() -> None:
    across = [
        f"{MODULES[m].relative_to(REPO)}:{line} imports {t}"
        for m, t, line, _ in EDGES
        if {side(m), side(t)} == set(SIDES)
    ]
    assert across == [], "\n".join(across)


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, target, _, at_load in EDGES:
        if at_load:
            graph[module].add(target)
    cycles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert cycles == [], cycles


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
    return out


@pytest.mark.parametrize(
    ("graph", "cycles"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, 0),
        ({"a": {"b"}, "b": {"a"}, "c": set()}, 1),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}, 1),
    ],
)
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], cycles: int) -> None:
    assert sum(1 for c in _strongly_connected(graph) if len(c) > 1) == cycles
