"""No module of orchestrator/ or lab/ over 400 lines: past that, a module holds more than
one thing (issue #17); split it along what it holds, as bus.py / bus_control.py /
tracelog.py are."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[2]
LIMIT = 400


def test_no_module_is_over_the_limit():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
             for package in ("orchestrator", "lab") for path in (ROOT / package).rglob("*.py")}
    assert len(sizes) > 100, "the packages were not found"
    assert {name: n for name, n in sizes.items() if n > LIMIT} == {}
