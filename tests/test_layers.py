"""The layers only point down: `core` (techniques) < `analysis` (results I/O, rules, verdicts, figures) < `studies`
(search spaces, Ray). The test reads every `import` statement, at module level or inside a function alike, so a lazy
import is no way around it; it also fails on any circle between modules and on an oversized module."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "analysis", "studies")
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module of ours that `path` imports (`from a import b` counts `a.b` when that is a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m.split(".")[0] in LAYERS}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        # a `from pkg import name` names a module only when that module exists; otherwise it is the package itself
        graph[name] = {m if m in files else m.rpartition(".")[0] for m in _imports(path)} - {name}
        graph[name] = {m for m in graph[name] if m in files}
    return graph


def test_no_import_points_up_a_layer():
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    upward = [
        f"{src} imports {dst}"
        for src, targets in _graph().items()
        for dst in sorted(targets)
        if rank[dst.split(".")[0]] > rank[src.split(".")[0]]
    ]
    assert upward == []


def test_no_import_circle():
    graph = _graph()
    # a package's __init__ is imported whenever any module inside it is: only the edges written out count
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


@pytest.mark.parametrize("layer", ["studies", "analysis"])
def test_no_module_over_600_lines(layer):
    long = {p.name for p in (ROOT / layer).rglob("*.py") if len(p.read_text().splitlines()) > MAX_LINES}
    assert long == set()


def test_the_analysis_imports_neither_the_studies_nor_ray_nor_torch():
    # every analysis module, as `python -m analysis` would load it, in a fresh interpreter
    code = (
        "import importlib, pkgutil, sys, analysis; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(analysis.__path__, 'analysis.')]; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'studies', 'ray', 'torch'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
