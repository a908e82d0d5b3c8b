"""``python -m lab bench classroom`` once, tiny: one lab, one round of two builds, no
browser. Every figure is there and no process of any lab outlives the run; how big or
fast the figures are is the benchmark's business, never a test's."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid} {cmdline}")
    return found


@pytest.mark.timeout(120)
def test_bench_classroom_tiny_run_reports_every_figure_and_leaves_nothing(tmp_path):
    home = tmp_path / "labs"
    out = subprocess.run(
        [sys.executable, "-m", "lab", "bench", "classroom", "--json", "--no-browser",
         "--labs", "1", "--lesson-seconds", "0", "--servers", "2", "--runs", "1",
         "--idle-seconds", "1", "--preset", "fast"],
        capture_output=True, text=True, timeout=110, cwd=tmp_path,
        env={**os.environ, "CONDUCTOR_LAB_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    for key in ("per_student_rss_mb", "per_student_pss_mb", "kernel_rss_mb"):
        assert r[key]["peak"] is None or r[key]["peak"] > 0, key
    assert r["per_student_rss_mb"]["peak"] > 0
    assert r["idle_cpu_percent"] >= 0 and r["lesson_cpu_percent"] >= 0
    assert r["setup_to_dashboard_s"]["measured_to"] == "lab started (no browser)"
    assert r["lesson_rounds"] == 1 and sum(r["lesson_builds"].values()) == 2
    assert {"dashboard", "bus", "api.api"} <= set(r["by_process"])
    [row] = r["side_by_side"]
    assert row["labs"] == 1 and row["lesson_ratio_median"] == 1.0
    assert row["builds_ok"] and row["all_stopped"]
    assert r["sizing_rule"].startswith("RAM ≈ peak concurrent students × ")
    assert _processes_mentioning(str(home)) == []
