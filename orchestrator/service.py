"""A service process: read the lab's run directory, connect to the bus as ``topic.host``,
serve the manager's methods until told to stop, the bus is lost or the parent dies.

Logging goes to stderr, which the lab points at ``logs/<service>.log``; SIGTERM stops
the service cleanly; SIGINT is left to the parent (a Ctrl-C in a terminal reaches the
whole process group, and the lab decides the order things stop in).
"""
from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any, Callable

from . import rundir
from .config import BusConfig, from_dict
from .messaging.server import RPCServer
from .messaging.transport import Transport

__all__ = ["run_service", "load_bus_config", "configure_logging"]

log = logging.getLogger("orchestrator.service")

ManagerFactory = Callable[[Transport, Path, str], Any]


def configure_logging(name: str) -> None:
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")


def load_bus_config(run_dir: str | Path) -> BusConfig:
    return from_dict(BusConfig, rundir.read(run_dir).get("config", {}).get("bus"))


def run_service(run_dir: str | Path, topic: str, host: str, factory: ManagerFactory) -> str:
    """Run one service until it stops; returns the reason it stopped."""
    return asyncio.run(_serve(Path(run_dir), topic, host, factory))


async def _serve(run_dir: Path, topic: str, host: str, factory: ManagerFactory) -> str:
    config = load_bus_config(run_dir)
    endpoint = rundir.wait_for(run_dir, "endpoints", "bus", timeout=30)
    transport = Transport(endpoint, topic, host, config, secret=rundir.secret(run_dir))
    manager = factory(transport, run_dir, host)
    # a manager may serve more than one endpoint object (compute: builds + migrations)
    RPCServer(transport, getattr(manager, "rpc_endpoints", [manager]))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, transport.stop, "SIGTERM")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start = getattr(manager, "start", None)
    if start is not None:
        await start()
    log.info("%s serving on %s", transport.identity, endpoint)
    reason = await transport.run()
    log.info("%s stopped: %s", transport.identity, reason)
    return reason
