"""A student's machine in a class's cloud: ``python -m lab join TICKET``.

    from lab.join import Student
    me = Student("student07.ticket", computes=2).start()
    me.set_failure(1, reschedule=0.5)     # my compute student07_1 fails half its builds
    me.kill(2)                            # student07_2 dies: the class watches it go down
    me.stop()

The ticket (``python -m lab keys``) says where the instructor's bus is, the bus's public
key and the student's key pair. Joining checks the door first (reached? our key taken?)
and says in words what is wrong; then it asks the bus for the class's config, writes a
private run directory as a lab would (``lab.json`` with the bus's address and that
config, the ticket as ``ticket``) and starts one compute process per host,
``compute.NAME_1`` ... Each is a real compute: it registers, heartbeats, takes builds,
reports through the conductor. A compute that loses the bus (the instructor's bus
restarted) exits, and the supervisor (:meth:`Student.tend`) starts it again; one the
student killed stays dead until they start it.
"""
from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

import zmq

from orchestrator import rundir
from orchestrator.compute.failures import FailureSettings
from orchestrator.messaging import curve, protocol
from orchestrator.messaging.blocking import BlockingClient
from orchestrator.service import TICKET

from .cluster import LabError, labs_home

__all__ = ["Student", "probe", "JoinError"]

RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0)   # seconds before restarting a compute that exited
STOP_GRACE = 5.0


class JoinError(LabError):
    """Joining the class failed; the message says why and what to do."""


def probe(endpoint: str, keys: curve.ClientKeys, timeout: float = 10.0) -> str:
    """Knock on the class's bus with ``keys``: "" if the CURVE handshake succeeds, else
    why not, in words (unreachable, our key refused, not this class's bus)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    curve.curve_client(sock, keys)
    monitor = sock.get_monitor_socket()
    try:
        sock.connect(endpoint)
        deadline = time.monotonic() + timeout
        connected = False
        while time.monotonic() < deadline:
            if not monitor.poll(int(max(0.0, deadline - time.monotonic()) * 1000) + 1):
                continue
            event, _ = monitor.recv_multipart()
            kind, value = struct.unpack("=HI", event[:6])
            if kind == zmq.EVENT_CONNECTED:
                connected = True
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return ""
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                return (f"the class's bus at {endpoint} refused {keys.student}'s key "
                        f"(status {value}): it was revoked, or the ticket is not for this "
                        f"class; ask your instructor for a new ticket")
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL or \
                    kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                return (f"the handshake with {endpoint} failed: the server there is not "
                        f"this class's bus (its key does not match your ticket)")
        if connected:
            return (f"{endpoint} took the connection but never finished the handshake "
                    f"within {timeout:.0f}s: is it the class's bus?")
        return (f"cannot reach the class's bus at {endpoint} within {timeout:.0f}s: is "
                f"the instructor's lab up (python -m lab up --class), the address in "
                f"your ticket right, and the port open between your machines?")
    finally:
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)
        ctx.term()


class Student:
    """One student's computes in the class's cloud (see the module's docstring)."""

    def __init__(self, ticket: str | os.PathLike, computes: int = 2,
                 run_dir: str | os.PathLike | None = None):
        if not 1 <= computes <= 16:
            raise JoinError(f"computes must be 1-16, not {computes}")
        self.ticket = curve.load_ticket(ticket)
        self.keys = curve.client_keys(self.ticket)
        self.student = self.ticket["student"]
        self.hosts = [f"{self.student}_{i}" for i in range(1, computes + 1)]
        self.run_dir = rundir.make_private(run_dir or tempfile.mkdtemp(
            prefix=f"join-{self.student}-", dir=labs_home()))
        shutil.copyfile(ticket, self.run_dir / TICKET)
        os.chmod(self.run_dir / TICKET, 0o600)
        self.procs: dict[str, subprocess.Popen] = {}
        self.killed: set[str] = set()          # stopped by their owner: not restarted
        self.restarts: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self.refused = ""                      # why the class turned us away, if it did
        self._client: BlockingClient | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Student:
        """Knock, fetch the class's config, start the computes and wait until they
        serve; on any failure nothing is left running."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> Student:
        problem = probe(self.ticket["bus"], self.keys, timeout=min(timeout, 10.0))
        if problem:
            raise JoinError(problem)
        config = self.bus().control("class_config", timeout=timeout)
        rundir.update(self.run_dir, config=config, endpoints={"bus": self.ticket["bus"]},
                      owner_pid=os.getpid(), path=str(self.run_dir),
                      joined={"student": self.student, "hosts": self.hosts,
                              "dashboard": self.ticket.get("dashboard", "")})
        for host in self.hosts:
            self.start_compute(host)
        self.wait_serving(self.hosts, timeout)
        return self

    def __enter__(self) -> Student:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def bus(self) -> BlockingClient:
        """This student's own client on the class's bus (``lab.NAME_ctl``)."""
        if self._client is None:
            self._client = BlockingClient(self.ticket["bus"], f"{self.student}_ctl",
                                          timeout=10, secret=self.keys)
        return self._client

    def stop(self) -> None:
        """Stop every compute (SIGTERM, then SIGKILL after a grace) and reap them; the
        run directory's copy of the ticket (a secret key) goes too, the logs stay."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._client is not None:
            self._client.close()
            self._client = None
        (self.run_dir / TICKET).unlink(missing_ok=True)

    # -- one compute ------------------------------------------------------------------------
    def host(self, which: int | str) -> str:
        """``1`` or ``"student07_1"`` -> ``"student07_1"``."""
        name = f"{self.student}_{which}" if isinstance(which, int) else which
        if name not in self.hosts:
            raise JoinError(f"no compute {which!r}; yours are {', '.join(self.hosts)}")
        return name

    def start_compute(self, which: int | str) -> None:
        host = self.host(which)
        proc = self.procs.get(host)
        if proc is not None and proc.poll() is None:
            return
        self.killed.discard(host)
        log = open(rundir.log_path(self.run_dir, f"compute.{host}"), "ab")
        cmd = [sys.executable, "-m", "orchestrator", "compute", "--run-dir",
               str(self.run_dir), "--host", host]
        self.procs[host] = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        rundir.update(self.run_dir, pids={f"compute.{host}": self.procs[host].pid})

    def kill(self, which: int | str, sig: int = signal.SIGKILL) -> None:
        """Kill one of my computes (SIGKILL: as if the machine lost power; or SIGTERM).
        The class sees it go down; it stays down until :meth:`start_compute`."""
        if sig not in (signal.SIGKILL, signal.SIGTERM):
            raise JoinError("kill takes SIGKILL or SIGTERM (freezing a compute is "
                            "slow=100 with set_failure)")
        host = self.host(which)
        proc = self.procs.get(host)
        self.killed.add(host)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait()

    def set_failure(self, which: int | str, **settings: float) -> dict[str, float]:
        """My compute's failure injection (``reschedule``, ``fatal``, ``crash``
        probabilities; ``slow``: its builds take that many times longer); nothing given:
        what it has now (the instructor may have set some too). Returns them all."""
        host = self.host(which)
        FailureSettings(**settings)                          # checked here first
        now = self.bus().call("compute", "set_failure", server=host, **settings)
        rundir.update(self.run_dir, failures={host: now})    # a restart keeps them
        return now

    def status(self) -> dict[str, str]:
        """Each compute: ``running``, ``killed`` (by me), ``restarting`` or ``exited``."""
        out = {}
        for host in self.hosts:
            proc = self.procs.get(host)
            if proc is not None and proc.poll() is None:
                out[host] = "running"
            elif host in self.killed:
                out[host] = "killed"
            else:
                out[host] = "restarting" if host in self._due else "exited"
        return out

    def wait_serving(self, hosts: list[str], timeout: float = 30.0) -> None:
        """Until each compute says it serves (its log), or say which did not and why."""
        deadline = time.monotonic() + timeout
        waiting = list(hosts)
        while waiting:
            for host in list(waiting):
                log = rundir.log_path(self.run_dir, f"compute.{host}")
                if f"compute.{host} serving" in log.read_text(errors="replace"):
                    waiting.remove(host)
                elif self.procs[host].poll() is not None:
                    raise JoinError(f"compute {host} exited; see {log}")
            if waiting and time.monotonic() > deadline:
                raise JoinError(f"{', '.join(waiting)} did not start within {timeout}s")
            time.sleep(0.05)

    def tend(self) -> list[str]:
        """One round of the supervisor: a compute that exited and was not killed by its
        owner (its bus went away: the instructor restarted it) is started again after a
        backoff, unless the class now refuses our key (``refused`` says so). Returns the
        hosts started this round."""
        now, started = time.monotonic(), []
        for host, proc in self.procs.items():
            if proc.poll() is None or host in self.killed:
                self._due.pop(host, None)
                continue
            if host not in self._due:
                n = self.restarts.get(host, 0)
                self._due[host] = now + RESTART_BACKOFF[min(n, len(RESTART_BACKOFF) - 1)]
            elif now >= self._due[host]:
                del self._due[host]
                problem = probe(self.ticket["bus"], self.keys, timeout=3.0)
                if "refused" in problem:    # revoked: knocking again changes nothing
                    self.refused = problem
                    self.killed.add(host)
                    continue
                self.restarts[host] = self.restarts.get(host, 0) + 1
                self.start_compute(host)
                started.append(host)
        return started


def describe(student: Student) -> str:
    """What ``lab join`` prints once joined."""
    return (f"{student.student} joined the class at {student.ticket['bus']} (CURVE) with "
            f"{len(student.hosts)} compute(s): {', '.join(student.hosts)}\n"
            f"class dashboard (read-only): {student.ticket.get('dashboard') or 'none'}\n"
            f"run directory: {student.run_dir}")


def error_text(exc: BaseException) -> str:
    if isinstance(exc, protocol.MessagingTimeout):
        return f"the class's bus did not answer: {exc}"
    return str(exc)
