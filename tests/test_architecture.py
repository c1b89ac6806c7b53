"""The module map holds (docs/architecture.md): no import cycles inside ``console``,
Textual only in the UI (``console/app.py``, ``console/screens/``, ``console/widgets/``).

The graph is read from the source (ast), not by importing: every ``import`` and
``from ... import`` counts, module level, inside functions and under
``TYPE_CHECKING`` alike, since a lazy import still ties two modules together.
A package's ``__init__`` run by importing its submodule is not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UI = ("console.app", "console.screens", "console.widgets")

KNOWN_CYCLES: list[set[str]] = []
"""Cycles found and left to their owners: a cycle inside one of these sets passes;
any other fails, and a set no cycle touches any more must be removed."""


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted((ROOT / "console").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _imports(name: str, path: Path, is_pkg: bool, known: set[str]) -> set[str]:
    """Every module ``name`` names in an import (submodules resolved)."""
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {
        name: {m for m in _imports(name, path, is_pkg, set(mods)) if m in mods and m != name}
        for name, (path, is_pkg) in mods.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_console() -> None:
    graph = _graph()
    assert "console.bench.runner" in graph and "console.runtime.base" in graph
    cycles = _cycles(graph)
    new = [sorted(c) for c in cycles if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, f"import cycles: {new}"
    gone = [sorted(k) for k in KNOWN_CYCLES if not any(c & k for c in cycles)]
    assert not gone, f"fixed (remove from KNOWN_CYCLES): {gone}"


def test_only_the_ui_imports_textual() -> None:
    mods = _modules()
    offenders = []
    for name, (path, is_pkg) in mods.items():
        if name == "console.app" or name.startswith(("console.screens.", "console.widgets.")):
            continue
        if name in ("console.screens", "console.widgets"):
            continue
        textual = {
            m for m in _imports(name, path, is_pkg, set(mods)) if m.split(".")[0] == "textual"
        }
        if textual:
            offenders.append(f"{name}: {sorted(textual)}")
    assert not offenders, "Textual outside app.py/screens/widgets: " + "; ".join(offenders)
