"""The CLI against a running lab, as an operator-minded student uses it: `up` in one
terminal, `status`, `boot`, `fail`, `move`, `env`, `kill`, `trace` in another."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def running_lab(tmp_path, reap_pids, pid_gone, processes_gone):
    """`python -m lab up` in the background, in its own labs home."""
    env = {**os.environ, "CONDUCTOR_LAB_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "lab", "up", "--computes", "2",
                             "--preset", "fast", "--seed", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    reap_pids.append(proc.pid)
    line = proc.stdout.readline()
    assert line.startswith("lab running in "), proc.stderr.read() if not line else line
    run_dir = line.split(" in ", 1)[1].strip()
    pids = json.loads(Path(run_dir, "lab.json").read_text())["pids"]
    reap_pids.extend(pids.values())

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True,
                              text=True, timeout=90, cwd=tmp_path, env=env)

    yield cli, run_dir
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0
    proc.stdout.close()
    proc.stderr.close()
    processes_gone(pids.values(), 10)


def test_status_boot_fail_kill_trace(running_lab, tmp_path):
    cli, run_dir = running_lab
    out = cli("status")
    assert out.returncode == 0, out.stderr
    assert "nova-compute" in out.stdout and "compute2" in out.stdout and "0 instance(s)" in out.stdout

    out = cli("fail", "compute1", "1.0")
    assert out.returncode == 0 and "reschedule 1" in out.stdout

    out = cli("boot", "2", "--wait", "--name", "cli")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ACTIVE") == 2 and "compute2" in out.stdout

    out = cli("status")
    assert "cli-1" in out.stdout and "attempts 2" in out.stdout

    out = cli("trace")
    assert out.returncode == 0, out.stderr
    assert "build_and_run_instance" in out.stdout

    for fmt, name in (("jsonl", "t.jsonl"), ("chrome", "t.json"), ("shiviz", "t.log")):
        out = cli("trace", "--export", fmt, "--out", str(tmp_path / name))
        assert out.returncode == 0, out.stderr
        assert (tmp_path / name).stat().st_size > 0
    chrome = json.loads((tmp_path / "t.json").read_text())
    assert chrome["traceEvents"]

    out = cli("replay", str(tmp_path / "t.jsonl"), "--speed", "0")
    assert out.returncode == 0 and "messages replayed" in out.stdout
    assert "build_instances" in out.stdout

    # cli-1 is on compute2; compute1 fails every prep_resize too: its reschedule finds no
    # host, and the server is left in ERROR where it is (as Nova's)
    out = cli("move", "cli-1", "migrate", "--wait")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ERROR" in out.stdout and "compute2" in out.stdout
    assert "NoValidHost" in out.stdout and ", error" in out.stdout
    assert cli("fail", "compute1", "0").returncode == 0
    out = cli("move", "cli-2", "resize", "--flavor", "m1.medium", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "VERIFY_RESIZE compute1" in out.stdout and "m1.medium" in out.stdout
    assert "compute2 -> compute1, finished" in out.stdout
    out = cli("move", "cli-2", "confirm", "--wait")
    assert out.returncode == 0 and "HTTP 204" in out.stdout and "confirmed" in out.stdout
    out = cli("move", "nobody", "migrate")
    assert out.returncode == 1 and "no server" in out.stderr

    out = cli("env")                       # what makes `openstack` drive this lab
    exports = dict(line.removeprefix("export ").split("=", 1)
                   for line in out.stdout.splitlines() if line.startswith("export "))
    assert out.returncode == 0 and exports["OS_CLOUD"] == "conductor-lab"
    assert exports["OS_CLIENT_CONFIG_FILE"] == str(Path(run_dir) / "clouds.yaml")
    assert exports["PATH"].startswith(str(Path(sys.executable).parent) + os.pathsep)

    out = cli("kill", "scheduler")
    assert out.returncode == 0 and "killed scheduler" in out.stdout
    out = cli("kill", "scheduler")
    assert out.returncode == 1 and "not running" in out.stderr


def test_bad_arguments_and_no_lab(tmp_path):
    env = {**os.environ, "CONDUCTOR_LAB_HOME": str(tmp_path / "empty-home")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path, env=env)

    for args in (("status",), ("boot", "1"), ("fail", "compute1", "0.5"), ("kill", "api"),
                 ("trace",), ("env",)):
        out = cli(*args)
        assert out.returncode == 1, args
        assert "no lab is running" in out.stderr, (args, out.stderr)
    for args in (("boot", "0"), ("boot", "two"), ("fail", "compute1", "1.5"),
                 ("up", "--computes", "0"), ("boot", "1", "--flavor", "m9.huge"),
                 ("move", "vm", "teleport"), ("move", "vm", "resize", "--flavor", "x"),
                 ("nonsense",)):
        out = cli(*args)
        assert out.returncode == 2, (args, out.stderr)
    out = cli("status", "--run-dir", str(tmp_path))
    assert out.returncode == 1 and "not a lab's run directory" in out.stderr
    out = cli("replay", str(tmp_path / "missing.jsonl"))
    assert out.returncode == 1 and "error" in out.stderr
