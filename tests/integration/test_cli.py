"""The command line, run as a user runs it: subprocesses, exit codes, output."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)


def run(*args: str, cwd=None, timeout: float = 100) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_demo_prints_stories_and_message_table(tmp_path):
    out = run("-m", "lab", "demo", "--preset", "fast", "--instances", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("demo-") >= 3
    assert "compute2 fails 50% of its builds" in out.stdout
    assert "api -> conductor" in " ".join(out.stdout.split())
    assert "messages by kind and method" in out.stdout
    assert "select_destinations" in out.stdout


def test_no_command_and_bad_arguments_exit_2(tmp_path):
    out = run("-m", "lab", cwd=tmp_path)
    assert out.returncode == 2 and "usage" in out.stderr
    out = run("-m", "lab", "demo", "--preset", "slow", cwd=tmp_path)
    assert out.returncode == 2 and "invalid choice" in out.stderr
    out = run("-m", "orchestrator", "conductor", "--run-dir", str(tmp_path / "missing"))
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_bench_json(tmp_path):
    out = run("-m", "lab", "bench", "bus", "--calls", "50", "--casts", "500",
              "--rounds", "1", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result["ratios"]) == {"call_p50", "call_p99", "cast_throughput"}
    assert result["baseline"]["call_p50_us"] > 0 and result["bus"]["casts_per_s"] > 0


def test_bench_help_lists_every_suite(tmp_path):
    out = run("-m", "lab", "bench", "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for suite in ("bus", "builds", "startup", "scale", "moves", "classroom"):
        assert suite in out.stdout


def test_bench_builds_startup_and_scale_json(tmp_path):
    out = run("-m", "lab", "bench", "builds", "--computes", "2", "--builds", "40",
              "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    builds = json.loads(out.stdout)
    assert builds["active"] == 40 and builds["builds_per_s"] > 0
    assert builds["bus_messages_per_build"] >= 17 and 0 < builds["efficiency"] < 1
    out = run("-m", "lab", "bench", "startup", "--computes", "2", "--per-process", "2",
              "--runs", "1", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["rows"]
    assert [(r["hosts_per_process"], r["processes"]) for r in rows] == [(1, 6), (2, 5)]
    assert all(r["ready_s"] > 0 and r["peak_rss_mb"]["compute"] > 0 for r in rows)
    out = run("-m", "lab", "bench", "scale", "--hosts", "3,12", "--per-process", "6",
              "--sequential", "3", "--builds", "12", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    scale = json.loads(out.stdout)
    assert [s["hosts"] for s in scale["sizes"]] == [3, 12] and scale["hosts"] == 12
    assert [s["processes"] for s in scale["sizes"]] == [5, 6]
    assert scale["select_destinations_p50_ms"] > 0 and scale["rss_total_mb"] > 0
    assert scale["sizes"][1]["concurrent"]["active"] == 12 and scale["dashboard"]["exact"]
    assert scale["met"] == {}          # goals are judged at 1,000 hosts only


def test_bench_moves_json_measures_every_mode_from_the_trace(tmp_path):
    out = run("-m", "lab", "bench", "moves", "--migrations", "2", "--builds", "2",
              "--rounds", "1", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    modes = result["modes"]
    assert set(modes) == {"computes (seed)", "via conductor", "legacy", "new compute",
                          "old compute, backport", "old compute, pinned"}
    assert modes["computes (seed)"]["compute_to_compute"] == 2      # the seed's hops
    assert modes["via conductor"]["compute_to_compute"] == 0
    assert modes["old compute, backport"]["backport_calls"] == 1
    assert modes["old compute, pinned"]["backport_calls"] == 0
    assert modes["new compute"]["backport_calls"] == 0
    assert all(m["p50_ms"] > 0 and m["messages"] > 0 for m in modes.values())
    assert set(result["met"]) == {"via_conductor_p50", "via_conductor_no_hops",
                                  "backport_p50", "pinning_no_backport"}


def test_bench_rejects_nonpositive_counts(tmp_path):
    out = run("-m", "lab", "bench", "moves", "--migrations", "0", cwd=tmp_path)
    assert out.returncode == 2 and "must be >= 1" in out.stderr


def test_up_runs_until_ctrl_c_and_leaves_nothing(tmp_path, pid_gone, reap_pids, processes_gone):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "lab", "up", "--run-dir", str(run_dir),
                             "--computes", "2", "--preset", "fast"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    reap_pids.append(proc.pid)
    try:
        assert "lab running" in proc.stdout.readline()
        assert "/dashboard" in proc.stdout.readline()
        pids = json.loads((run_dir / "lab.json").read_text())["pids"]
        reap_pids.extend(pids.values())
        assert len(pids) == 7   # bus, conductor, scheduler, 2 computes, api, dashboard
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        proc.stdout.close()
        proc.stderr.close()
    processes_gone(pids.values(), 10)
