"""The processes of one lab: start them, watch them, kill, pause and restart them, and make
sure none outlives the lab.

Every service is a child process (``python -m orchestrator <service> --run-dir DIR
--host NAME``) logging to ``logs/<name>.log``; a scale lab's computes may share one
(``--hosts a,b,c``: each still ``compute.HOST`` on the bus, all logging to the first's
log), and such a process is killed, paused or restarted only with all its hosts. Children are reaped on ``stop()``, on
interpreter exit (``atexit``: a kernel restart) and, when this process is killed outright,
by the children themselves: each one exits when its parent or the bus is gone.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import rundir
from orchestrator.config import BusConfig
from orchestrator.messaging.blocking import BlockingClient
from orchestrator.messaging.tap import TraceTap

from . import housekeeping
from .housekeeping import labs_home

__all__ = ["Cluster", "Child", "LabError", "labs_home", "socket_endpoints"]

STOP_GRACE = 3.0      # seconds a child gets after SIGTERM before SIGKILL
IPC_PATH_MAX = 100    # bytes of a Unix socket path we allow (sun_path holds 107 + NUL)
SINGLETONS = ("bus", "dashboard", "door")    # children named without a host
LAB_PROCESSES = {"dashboard": "lab.dashboard"}  # children that are the lab's, not the cloud's
_live = housekeeping.LIVE_CLUSTERS    # this process's unstopped clusters
_lingering: "weakref.WeakSet[Cluster]" = weakref.WeakSet()   # stopped, dashboard replaying


def socket_endpoints(run_dir: Path) -> dict[str, str]:
    """``ipc://`` endpoints for the bus and its trace tap, in the private run directory:
    only its owner can connect. A Unix socket's path has room for about 100 bytes; a
    deep run directory gets its sockets in a short private directory named after it."""
    where = run_dir = run_dir.resolve()
    if len(str(run_dir / "trace.sock")) > IPC_PATH_MAX:
        digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:16]
        short = rundir.make_private(os.path.join(tempfile.gettempdir(),
                                                 f"conductor-lab-{os.getuid()}-ipc"))
        where = rundir.make_private(short / digest)
    return {"bus": f"ipc://{where}/bus.sock", "trace": f"ipc://{where}/trace.sock"}


class LabError(RuntimeError):
    """Something about the lab's processes went wrong; the message says what to do."""


@dataclass
class Child:
    """One service process of the lab."""

    name: str                 # ``topic.host``, e.g. ``compute.compute1``
    service: str
    host: str
    proc: subprocess.Popen
    paused: bool = False
    started: float = field(default_factory=time.time)
    hosts: tuple[str, ...] = ()   # the hosts this process serves, when more than one

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


class Cluster:
    """Starts the bus first, then services; ``stop()`` reaps them all."""

    def __init__(self, run_dir: str | os.PathLike | None = None,
                 bus: BusConfig | None = None, config: dict[str, Any] | None = None):
        if run_dir is None:
            housekeeping.prune(labs_home())   # old stopped labs go, by the stated rule
        self.run_dir = rundir.make_private(
            run_dir or tempfile.mkdtemp(prefix="lab-", dir=labs_home()))
        self.secret = rundir.create_secret(self.run_dir)
        self.bus_config = bus or BusConfig()
        self.children: dict[str, Child] = {}
        self.endpoints: dict[str, str] = {}
        self._stopping = False
        self._held: dict[str, BlockingClient] = {}   # the bus client, shared with the finalizer
        # Reap the children when this object is collected (a notebook re-running
        # `lab = Cluster().start()`) or at interpreter exit, whichever comes first.
        self._finalizer = weakref.finalize(self, _reap, self.children, self._held)
        sections = {"bus": self.bus_config.__dict__, **(config or {})}
        before = rundir.read(self.run_dir).get("endpoints", {})
        endpoints = {k: before.get(k) or v for k, v in socket_endpoints(self.run_dir).items()}
        rundir.update(self.run_dir, config=sections, path=str(self.run_dir),
                      owner_pid=os.getpid(), endpoints=endpoints)
        _live.add(self)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Cluster:
        self.start_bus()
        return self

    def start_bus(self) -> Child:
        """Start (or restart) the bus; a restarted bus binds the ports it had before."""
        child = self.spawn("bus", "bus")
        deadline = time.monotonic() + 20
        while rundir.read(self.run_dir).get("bus", {}).get("pid") != child.pid:
            if not child.alive() or time.monotonic() > deadline:
                raise LabError(f"the bus did not start; see "
                               f"{rundir.log_path(self.run_dir, 'bus')}")
            time.sleep(0.02)
        self.endpoints = rundir.read(self.run_dir)["endpoints"]
        return child

    def spawn(self, service: str, host: str, *, wait: bool = False,
              timeout: float = 20.0, hosts: list[str] | None = None) -> Child:
        """Start ``python -m orchestrator service --host host`` (or, for the lab's own
        processes such as the dashboard, ``python -m lab.<service>``); with ``hosts``,
        one process serving each of them (``host`` is the first). Optionally wait until
        every name has registered on the bus."""
        served = list(hosts or [host])
        names = [service if service in SINGLETONS else f"{service}.{h}" for h in served]
        for name in names:
            old = self.children.get(name)
            if old is not None and old.alive():
                raise LabError(f"{name} is already running (pid {old.pid})")
        log = open(rundir.log_path(self.run_dir, names[0]), "ab")
        module = LAB_PROCESSES.get(service, f"orchestrator {service}").split()
        cmd = [sys.executable, "-m", *module, "--run-dir", str(self.run_dir), "--host",
               served[0], *(["--hosts", ",".join(served)] if len(served) > 1 else [])]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
        log.close()
        child = Child(names[0], service, served[0], proc,
                      hosts=tuple(served) if len(served) > 1 else ())
        for name in names:
            self.children[name] = child
        rundir.update(self.run_dir, pids={name: proc.pid for name in names})
        if wait:
            self.wait_registered(names, timeout)
        return child

    def processes(self) -> list[Child]:
        """Each child process once (the hosts of a shared compute process are one)."""
        return list({id(c): c for c in self.children.values()}.values())

    def wait_registered(self, names: str | list[str], timeout: float = 20.0) -> None:
        """Until every name is registered on the bus since its process started: one
        look at the bus's peers a round, however many names."""
        wanted = [names] if isinstance(names, str) else list(names)
        deadline = time.monotonic() + timeout
        while True:
            peers = {p["identity"]: p for p in self.client().control("peers")}
            missing = []
            for name in wanted:
                child = self.children.get(name)
                peer = peers.get(name, {})
                since = child.started if child is not None else 0.0
                if peer.get("alive") and peer.get("registered_at", 0) >= since:
                    continue
                if child is not None and not child.alive():
                    raise LabError(f"{name} exited with {child.proc.returncode}; "
                                   f"see {rundir.log_path(self.run_dir, child.name)}")
                missing.append(name)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise LabError(f"{', '.join(missing[:5])}"
                               f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}"
                               f" did not register on the bus within {timeout}s")
            time.sleep(0.05)

    def stop(self, keep_dashboard: bool = True) -> None:
        """Stop every child (services first, the bus last) and reap them. The dashboard,
        if it runs, stays to replay the lab's recorded trace (``stopped_at`` in
        ``lab.json`` tells it) until no browser has watched it for a while, the owner
        exits, or ``close()``; ``keep_dashboard=False`` stops it too."""
        self._stopping = True
        client = self._held.pop("client", None)
        if client is not None:
            client.close()
        if self.endpoints:
            rundir.update(self.run_dir, stopped_at=time.time())
        order = sorted((c for c in self.processes()
                        if not (keep_dashboard and c.service == "dashboard")),
                       key=lambda c: (c.service == "bus", c.service != "dashboard"))
        _reap_in_order(order)
        _live.discard(self)
        if keep_dashboard and "dashboard" in self.children:
            _lingering.add(self)

    def close(self) -> None:
        """Stop everything, the replaying dashboard included."""
        self.stop(keep_dashboard=False)
        _lingering.discard(self)

    @property
    def running(self) -> bool:
        """Started and not yet stopped (False from the moment ``stop()`` begins)."""
        return bool(self.endpoints) and self in _live and not self._stopping

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- faults on processes --------------------------------------------------------------
    def child(self, name: str, alone: bool = False) -> Child:
        """The process of ``name``; ``alone``: refuse one shared with other hosts (a
        process fault would hit them all)."""
        if name not in self.children:
            known = sorted(self.children)
            raise LabError(f"no service {name!r}; known: {', '.join(known[:12])}"
                           f"{f' and {len(known) - 12} more' if len(known) > 12 else ''}")
        child = self.children[name]
        if alone and child.hosts:
            raise LabError(f"{name} shares its process (pid {child.pid}) with "
                           f"{len(child.hosts) - 1} other hosts (hosts_per_process="
                           f"{len(child.hosts)}): killing, pausing or restarting it would "
                           f"take them all; fail it with set_failure, or start the lab "
                           f"with hosts_per_process=1 to kill hosts one by one")
        return child

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a service: SIGKILL by default (a crash: ``Lab.kill``); ``Lab.shutdown``
        sends SIGTERM (a clean stop)."""
        child = self.child(name, alone=True)
        if child.alive():
            child.proc.send_signal(sig)
            if child.paused:     # a stopped process acts on signals only once continued
                os.kill(child.pid, signal.SIGCONT)
                child.paused = False
            try:
                child.proc.wait(10)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()

    def pause(self, name: str) -> None:
        """SIGSTOP: the process hangs; its heartbeats stop; the bus marks it down."""
        child = self.child(name, alone=True)
        os.kill(child.pid, signal.SIGSTOP)
        child.paused = True

    def resume(self, name: str) -> None:
        child = self.child(name, alone=True)
        os.kill(child.pid, signal.SIGCONT)
        child.paused = False

    def restart(self, name: str, wait: bool = True) -> Child:
        child = self.child(name, alone=True)
        if child.alive():
            self.kill(name, signal.SIGTERM)
        if child.service == "bus":
            return self.start_bus()
        return self.spawn(child.service, child.host,
                          wait=wait and child.service not in LAB_PROCESSES)

    # -- talking to the bus ---------------------------------------------------------------
    def client(self) -> BlockingClient:
        """The lab's own connection to the bus (for control and calls)."""
        if "client" not in self._held:
            if not self.running:
                raise LabError("the lab is not running (not started, or stopped)")
            # A fixed name: fault decisions are seeded by sender, so the lab's own
            # messages meet the same faults in every run with the same seed.
            self._held["client"] = BlockingClient(self.endpoints["bus"], "control", timeout=10,
                                                  secret=self.secret)
        return self._held["client"]

    def tap(self, history: bool = True) -> TraceTap:
        return TraceTap(self.endpoints["bus"], self.endpoints["trace"],
                        history=history, secret=self.secret).start()


def _reap_in_order(order: list[Child]) -> None:
    """SIGTERM each (continuing the paused), then wait; SIGKILL who outlasts the grace."""
    for child in order:
        if child.paused and child.alive():
            os.kill(child.pid, signal.SIGCONT)
        if child.alive():
            child.proc.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for child in order:
        try:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()


def _reap(children: dict[str, Child], held: dict[str, BlockingClient]) -> None:
    client = held.pop("client", None)
    if client is not None:
        client.close()
    for child in {id(c): c for c in children.values()}.values():
        if child.alive():
            if child.paused:
                os.kill(child.pid, signal.SIGCONT)
            child.proc.kill()
            child.proc.wait()


@atexit.register
def _stop_all() -> None:
    for cluster in list(_live) + list(_lingering):
        cluster.close()
