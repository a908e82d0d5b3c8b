"""The lessons as files: each one is a lesson (a title, a setup, assert cells, a last cell
that stops its lab), stores outputs only where nbval compares them, and stays small."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MAX_STORED_BYTES = 200_000


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_there_are_lessons():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_small_and_only_where_checked(path):
    stored = 0
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        outputs = cell.get("outputs", [])
        stored += len(json.dumps(outputs))
        if outputs:
            assert "NBVAL_CHECK_OUTPUT" in "".join(cell["source"]), \
                f"{path.name}: a cell with stored output that nbval does not check"
    assert stored <= MAX_STORED_BYTES, f"{path.name}: {stored} bytes of stored outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_lesson_has_a_title_asserts_and_stops_its_lab(path):
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert any(line.lstrip().startswith("assert ") for src in code for line in src.splitlines())
    assert ".stop()" in code[-1], f"{path.name}: the last cell must stop the lab"
    assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == "python3"
