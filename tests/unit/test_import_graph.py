"""The import graph of both packages has no circle, and every import hidden in a function says
why (issue 18).

Every import counts: at module level, inside functions, and under `TYPE_CHECKING`. A circle
that works only because one of its imports sits in a function is still a circle: the next
maintainer who moves that import to the top gets an ImportError. With no circle the graph is
a DAG, so every import points down some order of floors (docs/ARCHITECTURE.md draws them).

An import inside a function is allowed only on purpose (start-up time of the quick commands,
torch or Ray kept out of a light process), and then its line carries `# lazy: <reason>`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"intelligensi_deploy": ROOT, "flux_server": ROOT / "server"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # "module", "function" or "typing"
    line: int


def package_modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of `package` (packages as their name)."""
    base = PACKAGES[package]
    found = {}
    for path in sorted((base / package).rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The most specific module of ours that `name` (a module or a name in one) lies in."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def module_edges(module: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """Every import of one of our modules in `path`, with where it sits."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    edges: list[Edge] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        return [f"{base}.{alias.name}" for alias in node.names]

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = "function"
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for statement in child.body:
                    visit(ast.Module(body=[statement], type_ignores=[]), "typing")
                for statement in child.orelse:
                    visit(ast.Module(body=[statement], type_ignores=[]), where)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in targets(child):
                    target = _known(name, modules)
                    if target is not None and target != module:
                        edges.append(Edge(module, target, inner, child.lineno))
            visit(child, inner)

    visit(tree, "module")
    return edges


def import_edges(package: str) -> list[Edge]:
    modules = package_modules(package)
    return [e for m, p in modules.items() for e in module_edges(m, p, modules)]


def circles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def unexplained_lazy_imports(package: str) -> list[str]:
    """`file:line` of each import inside a function whose line has no `# lazy:` reason."""
    missing = []
    for path in package_modules(package).values():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if (isinstance(inner, (ast.Import, ast.ImportFrom))
                        and "# lazy:" not in lines[inner.lineno - 1]):
                    missing.append(f"{path.relative_to(ROOT)}:{inner.lineno}: "
                                   f"{lines[inner.lineno - 1].strip()}")
    return sorted(set(missing))


# ---------------------------------------------------------------- the checker itself


def test_the_checker_finds_a_circle_hidden_in_a_function(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from pkg.high import g  # lazy: test\n")
    (pkg / "high.py").write_text("from pkg import low\n")
    (pkg / "other.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                  "    from pkg.high import g\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.low": pkg / "low.py",
               "pkg.high": pkg / "high.py", "pkg.other": pkg / "other.py"}
    edges = [e for m, p in modules.items() for e in module_edges(m, p, modules)]
    assert {(e.source, e.target, e.where) for e in edges} == {
        ("pkg.low", "pkg.high", "function"), ("pkg.high", "pkg.low", "module"),
        ("pkg.other", "pkg.high", "typing")}
    assert circles(edges) == [["pkg.high", "pkg.low"]]


# ---------------------------------------------------------------- the packages


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_circles(package: str) -> None:
    edges = import_edges(package)
    found = circles(edges)
    detail = [f"{e.source}:{e.line} -> {e.target} ({e.where})" for e in edges
              if any(e.source in c and e.target in c for c in found)]
    assert found == [], "import circles:\n" + "\n".join(detail)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_import_in_a_function_says_why(package: str) -> None:
    missing = unexplained_lazy_imports(package)
    assert missing == [], ("imports inside functions without a `# lazy: <reason>` comment "
                           "(move them to the top, or say why they stay):\n" + "\n".join(missing))


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_module_imports_on_its_own(package: str) -> None:
    """Each module, imported first in a fresh interpreter, loads (no order it depends on)."""
    names = [m for m in package_modules(package) if not m.endswith("__main__")]
    code = ("import importlib, sys\nfailed = []\n"
            f"for name in {names!r}:\n"
            "    for loaded in [m for m in sys.modules if m.startswith(name.split('.')[0])]:\n"
            "        del sys.modules[loaded]\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except Exception as exc:\n        failed.append(f'{name}: {exc!r}')\n"
            "print('\\n'.join(failed))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "", result.stdout
