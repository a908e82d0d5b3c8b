"""No process outlives its lab: stop() reaps everything, and when the lab's process or the
bus dies outright the children notice and exit by themselves."""
from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from orchestrator import rundir

SCRIPT = textwrap.dedent("""\
    import json, sys, time
    from lab.cluster import Cluster
    from orchestrator.config import BusConfig

    cluster = Cluster(sys.argv[1], bus=BusConfig(**json.loads(sys.argv[2]))).start()
    cluster.spawn("echo", "e1", wait=True)
    cluster.spawn("echo", "e2", wait=True)
    print(json.dumps({name: c.pid for name, c in cluster.children.items()}), flush=True)
    time.sleep(120)
""")


@pytest.mark.timeout(30)
def test_stop_reaps_every_process(cluster, pid_gone):
    cluster.spawn("echo", "e1", wait=True)
    cluster.spawn("echo", "e2", wait=True)
    cluster.pause("echo.e2")    # a hung child must be reaped too
    children = dict(cluster.children)
    assert all(c.alive() for c in children.values())
    cluster.stop()
    assert all(pid_gone(c.pid) for c in children.values())
    # Every child got SIGTERM and shut down cleanly (no SIGKILL fallback needed).
    assert {name: c.proc.returncode for name, c in children.items()} == \
        {"bus": 0, "echo.e1": 0, "echo.e2": 0}


@pytest.mark.timeout(40)
def test_children_exit_when_the_lab_process_is_killed(tmp_path, bus_config, pid_gone,
                                                      reap_pids, wait_until):
    # Not a directory named "lab" here: the script's directory is first on sys.path.
    script = tmp_path / "run_lab.py"
    script.write_text(SCRIPT)
    run_dir = tmp_path / "run"
    with open(tmp_path / "parent.log", "wb") as log, subprocess.Popen(
            [sys.executable, str(script), str(run_dir),
             json.dumps(dataclasses.asdict(bus_config))],
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=log) as parent:
        reap_pids.append(parent.pid)
        ready, _, _ = select.select([parent.stdout], [], [], 25)
        assert ready, "the lab script did not report its children"
        line = parent.stdout.readline()
        assert line, (tmp_path / "parent.log").read_text()
        pids = json.loads(line)
        reap_pids.extend(pids.values())
        assert set(pids) == {"bus", "echo.e1", "echo.e2"}
        assert not any(pid_gone(pid) for pid in pids.values())

        os.kill(parent.pid, signal.SIGKILL)   # no atexit, no stop(): only the children
        parent.wait(10)                       # can notice
    wait_until(lambda: all(pid_gone(pid) for pid in pids.values()),
               bus_config.bus_timeout + 3, f"children {pids} gone after the lab was killed")


@pytest.mark.timeout(30)
def test_services_exit_when_the_bus_dies(cluster, pid_gone, wait_until):
    services = [cluster.spawn("echo", host, wait=True) for host in ("e1", "e2")]
    cluster.kill("bus")   # SIGKILL: the bus never says goodbye
    start = time.monotonic()
    timeout = cluster.bus_config.bus_timeout
    wait_until(lambda: all(pid_gone(c.pid) for c in services), timeout + 3,
               "echo services exit after the bus is gone")
    # They waited for bus_timeout of silence rather than quitting at the first hiccup.
    assert time.monotonic() - start >= timeout * 0.5
    for child in services:
        assert child.proc.wait(5) == 0
        log = rundir.log_path(cluster.run_dir, child.name).read_text()
        assert "stopped: bus lost" in log


@pytest.mark.timeout(30)
def test_services_survive_a_bus_restart_and_seq_goes_on(cluster, wait_until):
    e1 = cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    assert client.call("echo", "echo", server="e1", x=1)["args"] == {"x": 1}
    before = client.control("stats")["seq"]
    endpoints = dict(cluster.endpoints)

    cluster.restart("bus")   # SIGTERM, then a new bus on the same ports
    assert cluster.endpoints == endpoints
    # e1 keeps running (well within bus_timeout) and re-registers by heartbeating; the
    # lab's client reconnects by itself. The call waits at the new bus if it arrives
    # before e1's first heartbeat.
    assert client.call("echo", "echo", server="e1", x=2)["args"] == {"x": 2}
    assert e1.alive()
    after = client.control("stats")["seq"]
    assert after > before
    # The new bus continues the old one's event stream: trace.jsonl has every seq once.
    path = cluster.run_dir / "trace.jsonl"

    def flushed() -> list[int] | None:   # written every 0.2 s
        seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
        return seqs if seqs and seqs[-1] == after else None
    assert wait_until(flushed, 10, "trace.jsonl flushed") == list(range(1, after + 1))


@pytest.mark.timeout(40)
def test_a_dropped_cluster_reaps_its_processes(tmp_path, pid_gone, reap_pids):
    import gc

    from lab.cluster import Cluster
    from orchestrator.config import BusConfig
    cluster = Cluster(tmp_path / "dropped", bus=BusConfig(heartbeat_interval=0.1,
                                                          dead_after=0.6)).start()
    cluster.spawn("echo", "e1", wait=True)
    pids = [c.pid for c in cluster.children.values()]
    reap_pids.extend(pids)
    del cluster
    gc.collect()
    assert [p for p in pids if not pid_gone(p)] == []


@pytest.mark.timeout(40)
def test_restarting_a_paused_service_works(cluster):
    cluster.spawn("echo", "e1", wait=True)
    old = cluster.children["echo.e1"].pid
    cluster.pause("echo.e1")
    cluster.restart("echo.e1")
    assert cluster.children["echo.e1"].pid != old
    assert cluster.client().call("echo", "echo", server="e1", x=1)["args"] == {"x": 1}
