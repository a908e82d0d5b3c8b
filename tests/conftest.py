"""Shared fixtures. Every lab gets its own run directory under pytest's tmp_path and its
own OS-chosen ports, so tests run in parallel (pytest-xdist); every process a test starts
is reaped when the test ends, passed or failed."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any, Callable, Iterator

import pytest

from lab import Lab
from lab.cluster import Cluster
from orchestrator.config import BusConfig

# Liveness fast enough that death is noticed within a second, slow enough for 2 cores.
FAST_BUS = dict(heartbeat_interval=0.1, dead_after=0.6, bus_timeout=3.0, call_timeout=5.0)


def _wait_until(predicate: Callable[[], Any], timeout: float, what: str = "condition",
                interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or fail at the
    deadline. For state only visible by asking (peers, stats, files, pids, a page)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s")
        time.sleep(interval)


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    return _wait_until


@pytest.fixture
def zombie() -> Iterator[subprocess.Popen]:
    """A child that has exited and is not reaped yet (``Z`` in /proc): its pid exists,
    but nothing runs. Reaped when the test ends."""
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("a zombie is told by /proc")
    proc = subprocess.Popen(["true"])

    def state() -> str:
        with open(f"/proc/{proc.pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][:1]
    try:     # never proc.poll() here: it would reap it
        _wait_until(lambda: state() == "Z", 10, "`true` exiting", interval=0.005)
        yield proc
    finally:
        proc.wait()


@pytest.fixture
def bus_config() -> BusConfig:
    return BusConfig(**FAST_BUS)


@pytest.fixture
def make_cluster(tmp_path) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(**bus_options)`` -> a started Cluster (bus only) in its own dir."""
    made: list[Cluster] = []

    def make(name: str = "lab", **options) -> Cluster:
        cluster = Cluster(tmp_path / name, bus=BusConfig(**{**FAST_BUS, **options}))
        made.append(cluster)
        return cluster.start()

    yield make
    for cluster in made:
        pids = [c.pid for c in cluster.children.values()]
        cluster.stop()
        for pid in pids:  # stop() must have reaped them all
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


@pytest.fixture
def cluster(make_cluster) -> Cluster:
    return make_cluster()


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.fixture
def pid_gone() -> Callable[[int], bool]:
    """``pid_gone(pid)``: True when the process no longer exists (or is a zombie)."""
    return _pid_gone


@pytest.fixture
def processes_gone(wait_until) -> Callable[..., None]:
    """``processes_gone(pids, timeout)``: until every one has exited (or is a zombie)."""
    def wait(pids, timeout: float = 10.0) -> None:
        pids = list(pids)
        wait_until(lambda: all(_pid_gone(p) for p in pids), timeout,
                   f"processes {[p for p in pids if not _pid_gone(p)]} gone", interval=0.1)
    return wait


@pytest.fixture
def service_down(wait_until) -> Callable[..., Any]:
    """``service_down(lab, host, timeout)``: until the API reports ``host``'s service
    down (it stopped reporting for ``service_down_time``)."""
    def wait(lab, host: str, timeout: float = 15.0) -> Any:
        return wait_until(lambda: {s["host"]: s["state"] for s in lab.services()}
                          .get(host) == "down", timeout, f"{host} reported down",
                          interval=0.1)
    return wait


@pytest.fixture
def reap_pids() -> Iterator[list[int]]:
    """Append pids a test starts outside a Cluster; they are SIGKILLed at teardown."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def make_lab(tmp_path) -> Iterator[Callable[..., Lab]]:
    """``make_lab(**options)`` -> a started Lab (fast preset) in its own run directory;
    closed at teardown (a replaying dashboard too), with every process checked gone."""
    made: list[Lab] = []

    def make(name: str = "lab", **options) -> Lab:
        options = {"computes": 3, "seed": 7, "preset": "fast", **options}
        lab = Lab(run_dir=str(tmp_path / name), **options)
        made.append(lab)
        return lab.start()

    yield make
    for lab in made:
        pids = [c.pid for c in lab.cluster.children.values()]
        lab.close()
        for pid in pids:
            assert _pid_gone(pid), f"process {pid} outlived its lab"
