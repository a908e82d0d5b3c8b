"""Package hygiene: every ``__all__`` name exists, and ``orchestrator`` never imports the
lab's instruments (imports go one way: notebooks -> lab -> orchestrator)."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"bokeh", "ipywidgets", "lab"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _defines_all(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


MODULES_WITH_ALL = [_module_name(p) for pkg in ("orchestrator", "lab")
                    for p in _sources(pkg) if _defines_all(p)]


def test_the_scan_finds_the_modules():
    assert {"orchestrator.messaging.protocol", "orchestrator.messaging.bus",
            "orchestrator.config", "lab", "lab.cluster"} <= set(MODULES_WITH_ALL)


@pytest.mark.parametrize("name", MODULES_WITH_ALL)
def test_every_name_in_all_exists(name):
    module = importlib.import_module(name)
    exported = module.__all__
    assert isinstance(exported, (list, tuple))
    assert len(set(exported)) == len(exported), "duplicates in __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []
    for n in exported:
        assert n in dir(module)


def forbidden_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Top-level packages in FORBIDDEN that ``source`` (the text of ``module``) imports,
    absolute or relative."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
                names = [target] if node.module else \
                    [f"{prefix}.{alias.name}" for alias in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        found += [n for n in names if n.partition(".")[0] in FORBIDDEN]
    return found


@pytest.mark.parametrize("source,module,hits", [
    ("import bokeh.plotting", "orchestrator.x", ["bokeh.plotting"]),
    ("import os, ipywidgets as w", "orchestrator.x", ["ipywidgets"]),
    ("from lab import Cluster", "orchestrator.x", ["lab"]),
    ("from lab.cluster import Cluster", "orchestrator.messaging.y", ["lab.cluster"]),
    ("def f():\n    import bokeh\n", "orchestrator.x", ["bokeh"]),
    ("from . import protocol", "orchestrator.messaging.y", []),
    ("from .. import rundir", "orchestrator.messaging.y", []),
    ("import labrador, bokehish", "orchestrator.x", []),
    ("from orchestrator.lab import x", "orchestrator.x", []),
])
def test_forbidden_import_scanner(source, module, hits):
    assert forbidden_imports(source, module) == hits


@pytest.mark.parametrize("path", _sources("orchestrator"), ids=lambda p: p.name)
def test_orchestrator_does_not_import_the_lab_or_ui(path):
    assert forbidden_imports(path.read_text(), _module_name(path),
                             path.name == "__init__.py") == []
