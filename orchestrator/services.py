"""The table of services a lab can start: one explicit entry per ``python -m orchestrator
<service>``; no directory scanning, no entry-point magic."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .config import ConfigError

__all__ = ["ServiceSpec", "SERVICES", "run"]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    topic: str
    doc: str
    main: Callable[..., object]     # (run_dir, host, hosts=()) -> why it stopped


def _bus(run_dir: Path, host: str) -> object:
    from .messaging import bus
    from .service import load_bus_config
    return bus.run(str(run_dir), load_bus_config(run_dir))


def _door(run_dir: Path, host: str) -> object:
    from .messaging import door
    return door.run(str(run_dir))


def _echo(run_dir: Path, host: str) -> object:
    from .echo import EchoManager
    from .service import run_service
    return run_service(run_dir, "echo", host, EchoManager)


def _manager(topic: str, module: str, cls: str) -> Callable[..., object]:
    def main(run_dir: Path, host: str, hosts: Sequence[str] = ()) -> object:
        import importlib
        from .service import run_service
        factory = getattr(importlib.import_module(module, __package__), cls)
        return run_service(run_dir, topic, host, factory, hosts)
    return main


SERVICES: dict[str, ServiceSpec] = {spec.name: spec for spec in (
    ServiceSpec("bus", "bus", "the message broker and trace tap", _bus),
    ServiceSpec("api", "api", "Compute API v2.1 over HTTP (tornado)",
                _manager("api", ".api.manager", "ApiManager")),
    ServiceSpec("conductor", "conductor", "build_instances workflow and database proxy",
                _manager("conductor", ".conductor.manager", "ConductorManager")),
    ServiceSpec("scheduler", "scheduler", "select_destinations: filters and weighers",
                _manager("scheduler", ".scheduler.manager", "SchedulerManager")),
    ServiceSpec("compute", "compute", "build_and_run_instance on a simulated hypervisor",
                _manager("compute", ".compute.manager", "ComputeManager")),
    ServiceSpec("door", "door", "a class's door: students' machines in, over CURVE", _door),
    ServiceSpec("echo", "echo", "a test double: echo, fail, sleep, record", _echo),
)}


def run(name: str, run_dir: Path, host: str, hosts: Sequence[str] = ()) -> object:
    """Run service ``name`` as ``host``; a compute may serve several ``hosts`` at once."""
    if hosts and name != "compute":
        raise ConfigError(f"only computes share a process (--hosts); not {name}")
    if hosts:
        return SERVICES[name].main(run_dir, host, hosts)
    return SERVICES[name].main(run_dir, host)
