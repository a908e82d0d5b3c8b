"""Unit tests for the classroom benchmark's pure parts (lab.bench_classroom's build counts
and options, lab.bench_classroom_figures): the side-by-side arithmetic, the kernel
estimate, the sizing rule and the report, on given numbers (no lab, no browser, no timing)."""
from __future__ import annotations

import argparse

import pytest

from lab.bench_classroom import _labs, outcomes
from lab.bench_classroom_figures import (_round_up, format_classroom, kernel_estimate,
                                         setup_figures, sizing_rule, summarize_side_by_side)


def test_outcomes_tells_a_fault_from_an_error_without_one():
    records = [{"status": "ACTIVE"}, {"status": "ERROR", "fault": {"message": "Max..."}},
               {"status": "ERROR"}, {"status": "ERROR", "fault": {}}, {"status": "BUILD"}]
    assert outcomes(records) == {"active": 1, "error_with_fault": 1, "other": 3}


def _row(n: int, lessons: list[float], rss: float | None, pss: float | None,
         other: int = 0, left: int = 0) -> dict:
    return {"labs": n, "start_all_s": 4.0 * n, "lesson_s": lessons, "rss_total_mb": rss,
            "pss_total_mb": pss, "idle_cpu_percent_per_lab": 1.0,
            "lesson_cpu_percent_all": 50.0, "kernel_lesson_cpu_percent": 5.0,
            "builds": {"active": 18 * n, "error_with_fault": 2 * n, "other": other},
            "leftover_processes": left}


def test_side_by_side_ratios_are_against_the_one_lab_row_and_memory_is_split_per_lab():
    rows = summarize_side_by_side([_row(5, [30, 20, 25, 40, 35], 1500.0, None, other=1),
                                   _row(1, [20.0], 300.0, 200.0, left=2)])
    five, one = rows
    assert (five["lesson_median_s"], five["lesson_max_s"]) == (30, 40)
    assert (five["lesson_ratio_median"], five["lesson_ratio_max"]) == (1.5, 2.0)
    assert (five["rss_per_lab_mb"], five["pss_per_lab_mb"]) == (300.0, None)
    assert (one["lesson_ratio_median"], one["pss_per_lab_mb"]) == (1.0, 200.0)
    assert (five["builds_ok"], five["all_stopped"]) == (False, True)
    assert (one["builds_ok"], one["all_stopped"]) == (True, False)


def _figures(pss: float | None = 180.0, ipykernel: dict | None = None) -> dict:
    r = {"per_student_rss_mb": {"peak": 300.0, "steady": 290.0},
         "per_student_pss_mb": {"peak": pss, "steady": pss},
         "kernel_rss_mb": {"peak": 61.0, "steady": 60.0},
         "kernel_pss_mb": {"peak": 45.0, "steady": 44.0},
         "kernel_before_lab_mb": {"rss": 50.0, "pss": 40.0}, "ipykernel_mb": ipykernel,
         "idle_cpu_percent": 1.5, "kernel_idle_cpu_percent": 0.5,
         "lesson_cpu_percent": 45.0, "kernel_lesson_cpu_percent": 5.0}
    r["kernel_estimate_mb"] = kernel_estimate(r)
    return r


def test_kernel_estimate_is_an_ipykernel_plus_what_the_lab_added_to_this_process():
    assert _figures(ipykernel={"rss": 55.0, "pss": 41.0})["kernel_estimate_mb"] == {
        "rss": 66.0, "pss": 46.0}                   # 55 + (61 - 50), 41 + (45 - 40)
    assert _figures(ipykernel={"rss": 55.0, "pss": None})["kernel_estimate_mb"] == {
        "rss": 66.0, "pss": None}
    assert _figures()["kernel_estimate_mb"] == {"rss": 61.0, "pss": 45.0}   # no ipykernel


def test_sizing_rule_from_pss_plus_kernel_and_cpu_shares():
    assert sizing_rule(_figures()) == (
        "RAM ≈ peak concurrent students × 230 MB (lab 180 + kernel 45; RSS, an upper "
        "bound: 370 MB) + hub overhead; CPU: about 50 students per core while idle "
        "(2.0% each), 2 while all run a lesson at once (50% each)")


def test_sizing_rule_falls_back_to_rss_where_pss_was_unreadable():
    r = _figures(pss=None, ipykernel={"rss": 55.0, "pss": None})
    assert sizing_rule(r).startswith(
        "RAM ≈ peak concurrent students × 370 MB (lab 300 + kernel 66;")


def test_setup_figures_end_where_the_browser_saw_the_dashboard_drawn():
    runs = [{"lab_start_s": 4.0, "drawn_s": 6.0}, {"lab_start_s": 3.0, "drawn_s": 7.0},
            {"lab_start_s": 5.0, "drawn_s": 5.5}]
    s = setup_figures(runs)
    assert (s["measured_to"], s["min"], s["median"]) == ("dashboard drawn", 5.5, 6.0)
    assert s["lab_start_s"] == {"min": 3.0, "median": 4.0, "runs": [4.0, 3.0, 5.0]}
    assert setup_figures([{"lab_start_s": 4.0}])["measured_to"] == "lab started (no browser)"


def test_the_report_prints_every_part_and_the_rule():
    r = {**_figures(ipykernel={"rss": 55.0, "pss": 41.0}), "preset": "demo", "computes": 3,
         "lesson_rounds": 2, "servers_per_round": 20, "failing": "compute1 50%",
         "browser": True, "idle_seconds": 10.0, "lesson_cpu_s": 9.0, "lesson_wall_s": 20.0,
         "browser_cpu_percent": {"lesson": 30.0, "idle": 12.0},
         "lesson_builds": {"active": 38, "error_with_fault": 2, "other": 0},
         "by_process": {"bus": {"rss_mb": 40.0, "pss_mb": 25.0, "lesson_cpu_percent": 5.0,
                                "idle_cpu_percent": 0.5}},
         "setup_to_dashboard_s": setup_figures([{"lab_start_s": 4.0, "drawn_s": 6.0}]),
         "side_by_side": summarize_side_by_side([_row(1, [20.0], 300.0, 200.0)]),
         "conditions": {"cpus": 2, "load_before": [1.0, 1, 1], "load_after": [2.0, 2, 2]}}
    r["sizing_rule"] = sizing_rule(r)
    text = format_classroom(r)
    assert "PSS peak 180 MB" in text and "estimate 66/46 MB" in text
    assert "used 30% of a core here during the lesson, 12% idle" in text
    assert "setup cell -> dashboard drawn: min 6.00 s" in text
    assert "    bus " in text and "1.00/1.00" in text
    assert text.splitlines()[-1] == f"sizing: {r['sizing_rule']}"


def test_round_up_to_tens():
    assert [_round_up(v) for v in (0.0, 1.0, 220.0, 220.1, 229.9)] == [0, 10, 220, 230, 230]


def test_labs_option():
    assert _labs("1,5,10") == [1, 5, 10] and _labs("3") == [3]
    for bad in ("", "0,5", "one"):
        with pytest.raises(argparse.ArgumentTypeError):
            _labs(bad)
