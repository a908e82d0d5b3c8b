"""``python -m orchestrator <service> --run-dir DIR [--host NAME]``: run one service.

``SERVICES`` is the table of the services a lab can start: one explicit entry each; no
directory scanning, no entry-point magic. How one runs is ``service.run_service``."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .config import ConfigError
from .service import configure_logging, load_bus_config, run_service


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    topic: str
    doc: str
    main: Callable[..., object]     # (run_dir, host, hosts=()) -> why it stopped


def _bus(run_dir: Path, host: str) -> object:
    from .messaging import bus
    return bus.run(str(run_dir), load_bus_config(run_dir))


def _door(run_dir: Path, host: str) -> object:
    from .messaging import door
    return door.run(str(run_dir))


def _echo(run_dir: Path, host: str) -> object:
    from .echo import EchoManager
    return run_service(run_dir, "echo", host, EchoManager)


def _manager(topic: str, module: str, cls: str) -> Callable[..., object]:
    def main(run_dir: Path, host: str, hosts: Sequence[str] = ()) -> object:
        import importlib
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator",
                                     description="Run one Conductor Lab service.")
    parser.add_argument("service", choices=sorted(SERVICES),
                        help="; ".join(f"{s.name}: {s.doc}" for s in SERVICES.values()))
    parser.add_argument("--run-dir", required=True, type=Path,
                        help="the lab's run directory (holds lab.json)")
    parser.add_argument("--host", default="", help="server name (default: the service name)")
    parser.add_argument("--hosts", default="",
                        help="compute only: serve these hosts (comma-separated) in this "
                             "one process, each its own compute.HOST on the bus")
    args = parser.parse_args(argv)
    hosts = [h for h in args.hosts.split(",") if h]
    if len(set(hosts)) != len(hosts) or any(not h.isidentifier() for h in hosts):
        parser.error("--hosts takes distinct host names, comma-separated")
    if not args.run_dir.is_dir():
        parser.error(f"run directory {args.run_dir} does not exist")
    host = args.host or (args.service if args.service != "bus" else "bus")
    configure_logging(f"{args.service}.{host}")
    try:
        outcome = run(args.service, args.run_dir, host, hosts)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return outcome if isinstance(outcome, int) else 0   # a service says why; the door, a code


if __name__ == "__main__":
    code = main()
    # Stopped cleanly (sockets closed, files flushed): skip the interpreter's teardown,
    # which a lab of 36 processes stopping at once on 2 cores pays 36 times over.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
