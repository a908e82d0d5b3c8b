"""No import circle among the modules of orchestrator/ and lab/: every import counts,
top level or inside a function, except those under ``if TYPE_CHECKING:``."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx

ROOT = Path(__file__).parents[2]


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("orchestrator", "lab"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.add(target if target in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(ast.parse(path.read_text()))
    return {m for m in out if m in modules and m != name}


def test_no_module_imports_itself_round_a_circle():
    modules = _modules()
    graph = networkx.DiGraph()
    for name, path in modules.items():
        graph.add_edges_from((name, target) for target in _imports(name, path, modules))
    circles = [" -> ".join(c) for c in networkx.simple_cycles(graph)]
    assert circles == []
    assert graph.has_edge("lab.trace", "lab.lanes")      # the graph is really read
