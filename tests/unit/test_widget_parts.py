"""Unit tests for lab.widget_parts: the control panel's pieces escape what users wrote,
keep a state cell's width, and bound the instances table."""
from __future__ import annotations

from lab.widget_parts import COLORS, CheckList, instances_html, state_cell, state_html


def test_a_state_cell_escapes_the_name_the_state_and_the_detail():
    text = state_html("<b>vm</b>", "<i>up</i>", "a & b")
    assert "<b>vm</b>" not in text and "&lt;b&gt;vm&lt;/b&gt;" in text
    assert "&lt;i&gt;up&lt;/i&gt;" in text and "a &amp; b" in text
    assert COLORS["up"] in state_html("c1", "up") and "#555" in text   # unknown: grey


def test_a_state_cell_has_a_fixed_width():
    cell = state_cell("170px")
    assert (cell.layout.width, cell.layout.flex) == ("170px", "0 0 auto")


def test_the_instances_table_shows_the_newest_rows_and_says_how_many_are_left_out():
    rows = [{"name": f"vm{i}", "status": "ACTIVE", "task_state": "", "host": "c1",
             "attempts": 1, "fault": "x" * 200} for i in range(5)]
    table = instances_html(rows, limit=3)
    assert "vm1<" not in table and "vm2<" in table and "vm4<" in table
    assert "(2 older not shown)" in table and "x" * 81 not in table


def test_a_checklist_marks_what_is_chosen():
    checks = CheckList(["RamFilter", "ComputeFilter"], "filters")
    checks.value = ("ComputeFilter",)
    assert checks.buttons["ComputeFilter"].description.startswith("\u2713")
    assert not checks.buttons["RamFilter"].value
    checks.buttons["RamFilter"].value = True
    assert checks.value == ("RamFilter", "ComputeFilter")
