"""The lessons as files: each one is a lesson (a title, a setup, assert cells, a last cell
that stops its lab), stores outputs only where nbval compares them, and stays small. The
start page JupyterLab opens on lists every lesson in order under its title; it is the one
notebook with no code, and nothing a student does not need sits beside the lessons."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
START_PAGE = NOTEBOOK_DIR / "start-here.ipynb"
LESSONS = [p for p in NOTEBOOKS if p != START_PAGE]
MAX_STORED_BYTES = 200_000
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _title(path: Path) -> str:
    return "".join(_cells(path)[0]["source"]).splitlines()[0].removeprefix("# ")


def _markdown(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in _cells(path) if c["cell_type"] == "markdown"]


def test_there_are_lessons():
    assert LESSONS


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


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_each_lesson_has_a_title_asserts_and_stops_its_lab(path):
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert any(line.lstrip().startswith("assert ") for src in code for line in src.splitlines())
    assert ".stop()" in code[-1], f"{path.name}: the last cell must stop the lab"
    assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == "python3"


def test_the_start_page_lists_every_lesson_in_order_by_its_title():
    listing = next(md for md in _markdown(START_PAGE) if md.startswith("## The lessons"))
    links = LINK.findall(listing)
    assert links == [(_title(p), p.name) for p in LESSONS]


def test_the_start_page_says_which_lesson_to_open_first_and_its_links_resolve():
    text = "\n".join(_markdown(START_PAGE))
    first = LINK.search(text)
    assert first.group(2) == "01-first-boot.ipynb" and "first" in text[first.end():][:20]
    for _, target in LINK.findall(text):
        assert (NOTEBOOK_DIR / target).is_file(), f"start page links to missing {target}"
    assert "lab.show()" in text and "side" in text


def test_the_start_page_is_markdown_only():
    cells = _cells(START_PAGE)
    assert cells and all(c["cell_type"] == "markdown" for c in cells)
    assert _title(START_PAGE).startswith("Conductor Lab")


def test_make_lab_opens_the_start_page():
    makefile = (ROOT / "Makefile").read_text()
    assert f"START_PAGE := {START_PAGE.name}" in makefile
    assert "--LabApp.default_url=/lab/tree/$(START_PAGE)" in makefile


def test_no_test_files_in_the_students_file_browser():
    stray = [p.name for p in NOTEBOOK_DIR.iterdir()
             if p.suffix in {".py", ".cfg", ".ini", ".toml"} or p.name == "solutions"]
    assert not stray, f"move {stray} out of notebooks/ (tests/notebooks/ holds nbval's)"
    makefile = (ROOT / "Makefile").read_text()
    for needed in ("-p tests.notebooks.nbval_plugin", "tests/notebooks/sanitize.cfg"):
        assert needed in makefile
    assert (ROOT / "tests/notebooks/sanitize.cfg").is_file()
    assert (ROOT / "tests/notebooks/nbval_plugin.py").is_file()
