"""The shape of the package (issue 12): the library never imports click or rich, imports form
no circle, lower layers never import higher ones, and no module grows past ~600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "stylenas_cli"
CORE = {"encoder", "wct", "genotype", "decoder", "model", "weights", "device", "images"}
CORE |= {"errors", "files", "config", "lift", "banded", "memory", "stylestore", "regions"}
CORE |= {"shape", "style"}
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    """Dotted name below the package (``video.pipeline``, ``cli``) -> file."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every module of the package, and every top-level outside package, ``name`` imports
    (at module level or inside functions)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                found.add(
                    alias.name.removeprefix("stylenas_cli.") if top == "stylenas_cli" else top
                )
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                mod = node.module or ""
                if mod.split(".")[0] != "stylenas_cli":
                    found.add(mod.split(".")[0])
                    continue
                base = mod.removeprefix("stylenas_cli").lstrip(".").split(".")
            else:
                base = package[: len(package) - node.level + 1] + (
                    node.module.split(".") if node.module else []
                )
            base = [p for p in base if p]
            found.add(".".join(base))
            for alias in node.names:  # ``from . import eval`` imports a submodule
                found.add(".".join([*base, alias.name]))
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {
        name: {m for m in _imports(name, path) if m in mods and m != name and m != ""}
        for name, path in mods.items()
    }


def test_no_module_outside_the_cli_imports_click_or_rich():
    offenders = {
        name: sorted(_imports(name, path) & {"click", "rich"})
        for name, path in _modules().items()
        if not name.startswith("cli")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_there_is_no_import_circle():
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_core_imports_only_the_core():
    graph = _graph()
    upward = {m: sorted(graph[m] - CORE) for m in CORE if m in graph}
    assert {k: v for k, v in upward.items() if v} == {}


def test_no_module_is_over_600_lines():
    long = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    assert {n: lines for n, lines in long.items() if lines > MAX_LINES} == {}
