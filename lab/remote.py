"""Attaching to a lab that another process owns (``python -m lab up``, a notebook): the
CLI's way in. A lab is found by its run directory: given, from ``$CONDUCTOR_LAB_RUN_DIR``,
or the newest live one under the labs' home directory."""
from __future__ import annotations

import os
import signal
from pathlib import Path

from orchestrator import rundir
from orchestrator.respawn import alive
from orchestrator.config import LabConfig, from_dict
from orchestrator.messaging.blocking import BlockingClient

from .classroom import Classroom
from .api_client import ApiClient
from .cloud import CloudClient
from .cluster import LabError, labs_home
from .trace import Trace

__all__ = ["RemoteLab", "labs_home", "find_labs", "resolve_run_dir", "child_name",
           "SERVICE_HOSTS"]

SERVICE_HOSTS = {"api": "api", "conductor": "conductor1", "scheduler": "scheduler1"}


def find_labs(home: Path | None = None) -> list[Path]:
    """Live labs (owner and bus running), newest first."""
    found = []
    for lab_json in (home or labs_home()).glob("*/lab.json"):
        data = rundir.read(lab_json.parent)
        if alive(data.get("owner_pid")) and alive(data.get("bus", {}).get("pid")):
            found.append((data.get("bus", {}).get("started", 0), lab_json.parent))
    return [path for _, path in sorted(found, reverse=True)]


def resolve_run_dir(run_dir: str | None = None) -> Path:
    chosen = run_dir or os.environ.get("CONDUCTOR_LAB_RUN_DIR")
    if chosen:
        path = Path(chosen)
        if not (path / rundir.LAB_JSON).exists():
            raise LabError(f"{path} is not a lab's run directory (no lab.json)")
        return path
    labs = find_labs()
    if not labs:
        raise LabError("no lab is running; start one with `python -m lab up` "
                       "(or pass --run-dir)")
    return labs[0]


def child_name(service: str, computes: list[str]) -> str:
    """``conductor`` -> ``conductor.conductor1``; ``compute2`` -> ``compute.compute2``."""
    if service == "bus":
        return "bus"
    if service in SERVICE_HOSTS:
        return f"{service}.{SERVICE_HOSTS[service]}"
    if service in computes:
        return f"compute.{service}"
    raise LabError(f"no service {service!r}; services: api, conductor, scheduler, bus, "
                   f"{', '.join(computes)}")


class RemoteLab(Classroom, CloudClient):
    """A running lab seen from outside: API, bus knobs, signals to its processes."""

    def __init__(self, run_dir: str | Path | None = None):
        self.run_dir = resolve_run_dir(str(run_dir) if run_dir else None)
        data = rundir.read(self.run_dir)
        self.config = from_dict(LabConfig, data.get("config", {}).get("lab"))
        endpoints = data.get("endpoints", {})
        if "api" not in endpoints or not alive(data.get("bus", {}).get("pid")):
            raise LabError(f"the lab in {self.run_dir} is not running")
        self.api = ApiClient(endpoints["api"], token=rundir.secret(self.run_dir))
        self._bus = BlockingClient(endpoints["bus"], f"cli-{os.getpid()}", timeout=10,
                                   secret=rundir.secret(self.run_dir))

    def bus(self) -> BlockingClient:
        return self._bus

    def close(self) -> None:
        self._bus.close()

    def __enter__(self) -> RemoteLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def kill(self, service: str) -> int:
        """SIGKILL one of the lab's processes; returns its pid."""
        name = child_name(service, self.config.compute_names())
        pid = rundir.read(self.run_dir).get("pids", {}).get(name)
        if not alive(pid):
            raise LabError(f"{service} is not running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def trace(self) -> Trace:
        return Trace.load(self.run_dir / "trace.jsonl")
