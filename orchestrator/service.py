"""A service process: read the lab's run directory, connect to the bus as ``topic.host``,
serve the manager's methods until told to stop, the bus is lost or the parent dies.

One process may serve several hosts of the same service (``hosts``: the lab's
``hosts_per_process``, the way Nova's fake virt driver runs many nodes for scale tests):
each host is still its own ``topic.host`` on the bus, with its own socket, manager,
claims, reports and heartbeats; they share the process, its event loop and one ZeroMQ
context (one I/O thread), and stop together.

Logging goes to stderr, which the lab points at ``logs/<service>.log``; SIGTERM stops
the service cleanly; SIGINT is left to the parent (a Ctrl-C in a terminal reaches the
whole process group, and the lab decides the order things stop in).
"""
from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any, Callable, Sequence

import zmq

from . import rundir
from .config import BusConfig, from_dict
from .messaging import curve
from .messaging.server import RPCServer
from .messaging.transport import Transport

__all__ = ["run_service", "load_bus_config", "configure_logging", "credentials", "TICKET"]

TICKET = "ticket"   # a student's run directory: their class ticket (0600), in place of a secret

log = logging.getLogger("orchestrator.service")

ManagerFactory = Callable[[Transport, Path, str], Any]


def configure_logging(name: str) -> None:
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")


def load_bus_config(run_dir: str | Path) -> BusConfig:
    return from_dict(BusConfig, rundir.read(run_dir).get("config", {}).get("bus"))


def credentials(run_dir: str | Path) -> str | curve.ClientKeys | None:
    """How this run directory's services prove themselves to the bus: the lab's secret
    (PLAIN), or on a student's machine their class ticket's keys (CURVE)."""
    secret = rundir.secret(run_dir)
    if secret or not (Path(run_dir) / TICKET).exists():
        return secret
    return curve.client_keys(curve.load_ticket(Path(run_dir) / TICKET))


def run_service(run_dir: str | Path, topic: str, host: str, factory: ManagerFactory,
                hosts: Sequence[str] = ()) -> str:
    """Run one service (or one per name in ``hosts``) until it stops; returns why."""
    return asyncio.run(_serve(Path(run_dir), topic, list(hosts) or [host], factory))


async def _serve(run_dir: Path, topic: str, hosts: list[str],
                 factory: ManagerFactory) -> str:
    config = load_bus_config(run_dir)
    endpoint = rundir.wait_for(run_dir, "endpoints", "bus", timeout=30)
    secret = credentials(run_dir)
    context = zmq.Context()
    context.set(zmq.MAX_SOCKETS, max(1024, 2 * len(hosts) + 64))
    transports, managers = [], []
    for host in hosts:
        transport = Transport(endpoint, topic, host, config, secret=secret, context=context)
        manager = factory(transport, run_dir, host)
        # a manager may serve more than one endpoint object (compute: builds + migrations)
        RPCServer(transport, getattr(manager, "rpc_endpoints", [manager]))
        transports.append(transport)
        managers.append(manager)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, _stop_all, transports, "SIGTERM")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for manager in managers:
        start = getattr(manager, "start", None)
        if start is not None:
            await start()
    log.info("%s serving on %s", ", ".join(t.identity for t in transports[:3])
             + (f" and {len(transports) - 3} more" if len(transports) > 3 else ""), endpoint)
    runs = [asyncio.ensure_future(t.run()) for t in transports]
    # The hosts of one process live and die together: the first to stop (the bus lost,
    # the parent gone) stops the rest.
    done, _ = await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
    reason = next(iter(done)).result()
    _stop_all(transports, reason)
    await asyncio.gather(*runs, return_exceptions=True)
    context.term()
    log.info("%s stopped: %s", topic if len(hosts) > 1 else transports[0].identity, reason)
    return reason


def _stop_all(transports: list[Transport], reason: str) -> None:
    for transport in transports:
        transport.stop(reason)
