"""Unit tests for lab.remote: finding a running lab by its run directory (no processes
are started but a couple of `true`s, for pids that are dead or zombies)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lab.cluster import LabError, labs_home
from lab.remote import SERVICE_HOSTS, RemoteLab, child_name, find_labs, resolve_run_dir
from orchestrator.respawn import alive
from orchestrator import rundir

ALIVE = os.getpid()


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture(autouse=True)
def no_lab_env(monkeypatch):
    monkeypatch.delenv("CONDUCTOR_LAB_RUN_DIR", raising=False)
    monkeypatch.delenv("CONDUCTOR_LAB_HOME", raising=False)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("CONDUCTOR_LAB_HOME", str(path))
    return path


def make_lab(path: Path, owner: int | None = ALIVE, bus: int | None = ALIVE,
             started: float = 100.0, **sections) -> Path:
    data = dict(sections)
    if owner is not None:
        data["owner_pid"] = owner
    if bus is not None:
        data["bus"] = {"pid": bus, "started": started}
    rundir.update(path, path=str(path), **data)
    return path


# -- alive (orchestrator.respawn) -------------------------------------------------------------------------------------
def test_own_pid_isalive():
    assert alive(os.getpid()) is True


def test_a_reaped_pid_is_notalive(dead_pid):
    with pytest.raises(ProcessLookupError):
        os.kill(dead_pid, 0)
    assert alive(dead_pid) is False


@pytest.mark.parametrize("pid", [None, 0, -1, "123", 1.5, [], {}])
def test_nothing_that_is_not_a_positive_int_isalive(pid):
    assert alive(pid) is False


def test_a_zombie_is_notalive(zombie):
    os.kill(zombie.pid, 0)                 # the pid still exists ...
    assert alive(zombie.pid) is False     # ... but a zombie is not running
    zombie.wait()
    assert alive(zombie.pid) is False     # reaped: gone


# -- find_labs ----------------------------------------------------------------------------------
def test_find_labs_lists_live_labs_newest_first(tmp_path, dead_pid):
    old = make_lab(tmp_path / "old", started=100.0)
    new = make_lab(tmp_path / "new", started=300.0)
    mid = make_lab(tmp_path / "mid", started=200.0)
    make_lab(tmp_path / "dead-owner", owner=dead_pid, started=400.0)
    make_lab(tmp_path / "dead-bus", bus=dead_pid, started=500.0)
    make_lab(tmp_path / "no-owner", owner=None, started=600.0)
    make_lab(tmp_path / "no-bus", bus=None)
    (tmp_path / "not-a-lab").mkdir()
    (tmp_path / "stray.json").write_text("{}")
    assert find_labs(tmp_path) == [new, mid, old]


def test_find_labs_in_an_empty_home(tmp_path):
    assert find_labs(tmp_path) == []


def test_find_labs_defaults_to_the_labs_home(home):
    lab = make_lab(home / "lab-a")
    assert labs_home() == home
    assert find_labs() == [lab]


# -- resolve_run_dir ----------------------------------------------------------------------------
def test_explicit_run_dir_wins_over_env_and_home(tmp_path, home, monkeypatch, dead_pid):
    explicit = make_lab(tmp_path / "explicit", bus=dead_pid)   # need not be live
    env = make_lab(tmp_path / "env", started=900.0)
    make_lab(home / "live", started=1000.0)
    monkeypatch.setenv("CONDUCTOR_LAB_RUN_DIR", str(env))
    assert resolve_run_dir(str(explicit)) == explicit


def test_env_run_dir_wins_over_home(tmp_path, home, monkeypatch):
    env = make_lab(tmp_path / "env", started=1.0)
    make_lab(home / "live", started=1000.0)
    monkeypatch.setenv("CONDUCTOR_LAB_RUN_DIR", str(env))
    assert resolve_run_dir() == env
    assert resolve_run_dir(None) == env


def test_without_a_choice_the_newest_live_lab_in_home(home, dead_pid):
    make_lab(home / "a", started=10.0)
    newest = make_lab(home / "b", started=30.0)
    make_lab(home / "c", started=20.0)
    make_lab(home / "d", bus=dead_pid, started=40.0)
    assert resolve_run_dir() == newest


def test_no_live_lab_is_an_error(home, dead_pid):
    make_lab(home / "gone", owner=dead_pid)
    with pytest.raises(LabError, match="no lab is running"):
        resolve_run_dir()


@pytest.mark.parametrize("via", ["argument", "env"])
def test_a_directory_without_lab_json_is_an_error(tmp_path, home, monkeypatch, via):
    make_lab(home / "live")                    # a live lab does not rescue a bad choice
    bare = tmp_path / "bare"
    bare.mkdir()
    if via == "env":
        monkeypatch.setenv("CONDUCTOR_LAB_RUN_DIR", str(bare))
        call = resolve_run_dir
    else:
        def call():
            return resolve_run_dir(str(bare))
    with pytest.raises(LabError, match="not a lab's run directory"):
        call()


# -- child_name ---------------------------------------------------------------------------------
@pytest.mark.parametrize("service, name", [
    ("bus", "bus"), ("api", "api.api"), ("conductor", "conductor.conductor1"),
    ("scheduler", "scheduler.scheduler1"), ("compute1", "compute.compute1"),
    ("compute3", "compute.compute3")])
def test_child_name(service, name):
    assert child_name(service, ["compute1", "compute2", "compute3"]) == name


def test_service_hosts():
    assert SERVICE_HOSTS == {"api": "api", "conductor": "conductor1",
                             "scheduler": "scheduler1"}


@pytest.mark.parametrize("service", ["compute4", "nova", "", "compute", "conductor1"])
def test_child_name_of_an_unknown_service(service):
    with pytest.raises(LabError, match=f"no service {service!r}") as info:
        child_name(service, ["compute1", "compute2"])
    assert "compute1, compute2" in str(info.value)


# -- RemoteLab ----------------------------------------------------------------------------------
ENDPOINTS = {"api": "http://127.0.0.1:9", "bus": "tcp://127.0.0.1:9",
             "trace": "tcp://127.0.0.1:9"}


def test_remote_lab_on_a_dead_bus_is_not_running(tmp_path, dead_pid):
    run_dir = make_lab(tmp_path / "lab", bus=dead_pid, endpoints=ENDPOINTS)
    with pytest.raises(LabError, match="not running"):
        RemoteLab(run_dir)
    with pytest.raises(LabError, match="not running"):
        RemoteLab(str(run_dir))


def test_remote_lab_without_an_api_endpoint_is_not_running(tmp_path):
    run_dir = make_lab(tmp_path / "lab", endpoints={"bus": ENDPOINTS["bus"]})
    with pytest.raises(LabError, match="not running"):
        RemoteLab(run_dir)


def test_remote_lab_with_nothing_running_is_an_error(home):
    with pytest.raises(LabError, match="no lab is running"):
        RemoteLab()
