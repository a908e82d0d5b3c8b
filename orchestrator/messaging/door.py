"""The class's door: the one process that faces the students' machines (README, "A
class's cloud across machines", says why it is a process of its own).

``python -m orchestrator door`` binds the class's CURVE endpoints and stands between
them and the lab's bus: its ZAP handler admits students' keys; each connection is named by
its first envelope (one of the student's names, at most :data:`MAX_NAMES`) and keeps it;
it sends only what ``curve.ClassDoor`` allows, and replies only to calls made to it, to
their caller; each admitted name gets its own uplink to the bus (PLAIN, the lab's
secret); the bus's trace is relayed; a revoke closes the student's uplinks and re-opens
the endpoints, so everyone proves their key again. Routing ids are seeded at random and
ROUTER_HANDOVER is off (a student choosing the id libzmq would give next makes it abort);
if the door dies anyway, :func:`run` starts it again. What it refuses it reports to the
bus (``door_report``), which counts, logs and traces it as its own.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import zmq

from .. import respawn, rundir
from . import auth, curve, protocol
from .door_state import Mailboxes, Report
from .protocol import BUS_IDENTITY, DOOR_IDENTITY

__all__ = ["Door", "run", "MAX_NAMES"]

log = logging.getLogger("orchestrator.door")
MAX_NAMES = 24              # names one student may hold (their computes and tools)
HWM = 10_000                # queued per student's connection before libzmq drops
REPORT_EVERY = 0.25         # seconds between reports to the bus
BATCH = 256
NOBLOCK = int(zmq.NOBLOCK)


def seed_routing_ids() -> None:
    """Seed libc's ``rand()``, from which libzmq's ROUTER draws the first routing id it
    gives: unseeded, every ROUTER's first id is ``00 6b8b4567``, which a student could
    claim in advance."""
    try:
        ctypes.CDLL(None).srand(int.from_bytes(os.urandom(4), "little"))
    except (OSError, AttributeError):       # no libc by that name: libzmq's own default
        log.warning("could not seed routing ids")


class Door:
    def __init__(self, run_dir: str | os.PathLike, *, lab_pid: int | None = None):
        """``lab_pid``: the lab's process; the door stops when it, or the process that
        started the door, is gone."""
        self.run_dir = Path(run_dir)
        data = rundir.read(self.run_dir)
        self.section = data["class"]
        self.secret = rundir.secret(self.run_dir) or ""
        if not self.secret:
            raise RuntimeError("a class's door needs the lab's secret")
        self.bus_endpoint = data["endpoints"]["bus"]
        self.trace_endpoint = data["endpoints"]["trace"]
        self.stats: Counter[str] = Counter()
        self.door = curve.ClassDoor(self.section)
        seed_routing_ids()
        self.ctx = zmq.Context()
        self.zap = auth.ZapHandler(self.ctx, self.secret, self.door.registry).start()
        self.names = auth.Names()
        self.uplinks: dict[str, zmq.Socket] = {}
        self._uplink_of: dict[zmq.Socket, str] = {}
        self.owner: dict[str, str] = {}          # name with an uplink -> its student
        self.mail = Mailboxes(self.stats)        # calls awaiting replies, held messages
        self.report = Report(self.stats)         # refused and cut off, for the bus
        self._revoked = self.door.registry.revoked   # revoked before: no re-open for them
        self._sockets_changed = True
        self._parent, self._lab = os.getppid(), lab_pid
        self._running = False
        self.control = self._dealer(DOOR_IDENTITY)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        auth.plain_client(self.sub, "lab.door-tap", self.secret, routing_id=False)
        self.sub.connect(self.trace_endpoint)
        self.router: zmq.Socket | None = None
        self.pub: zmq.Socket | None = None
        self.endpoints = self._open()

    # -- the class's endpoints ----------------------------------------------------------------
    def _open(self) -> dict[str, str]:
        """Bind the class's ROUTER (``port``) and trace PUB (``port + 1``), CURVE."""
        listen, port = self.section["listen"], int(self.section["port"])
        self.router = self.ctx.socket(zmq.ROUTER)
        # XPUB, subscriptions by hand: each subscriber gets everything, and what they ask
        # for is never stored (a PUB keeps every distinct prefix a subscriber sends)
        self.pub = self.ctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.XPUB_MANUAL, 1)
        self.pub.setsockopt(zmq.MAXMSGSIZE, 256)
        endpoints = {}
        for key, sock, domain, at in (
                ("class_bus", self.router, curve.ZAP_DOMAIN_CLASS_BUS, port),
                ("class_trace", self.pub, curve.ZAP_DOMAIN_CLASS_TRACE, port + 1)):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, HWM)
            curve.curve_server(sock, self.door.registry.secret_key, domain)
            for attempt in range(50):     # a port just closed (a reopen) may linger
                try:
                    sock.bind(f"tcp://{listen}:{at}")
                    break
                except zmq.ZMQError:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
            endpoints[key] = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 0)   # a chosen id never takes a live one
        self.router.setsockopt(zmq.MAXMSGSIZE, 1 << 22)
        self._monitors = [
            (self.router.get_monitor_socket(auth.HANDSHAKE_FAILURES),
             curve.ZAP_DOMAIN_CLASS_BUS),
            (self.pub.get_monitor_socket(auth.HANDSHAKE_FAILURES),
             curve.ZAP_DOMAIN_CLASS_TRACE)]
        return endpoints

    def _close_class(self) -> None:
        for sock in (self.router, self.pub):
            if sock is not None:
                sock.disable_monitor()
                sock.close(0)
        for monitor, _ in self._monitors:
            monitor.close(0)

    def reopen(self) -> None:
        """Every student connects and proves their key again (after a revoke); what
        the bus sends them meanwhile waits for them (``Mailboxes``)."""
        self._close_class()
        self.names = auth.Names()
        self.door.students.clear()
        self._open()
        self._sockets_changed = True

    def _dealer(self, name: str) -> zmq.Socket:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 100_000)
        auth.plain_client(sock, name, self.secret)
        sock.connect(self.bus_endpoint)
        return sock

    def uplink(self, name: str, student: str) -> zmq.Socket:
        """The name's own connection to the lab's bus (made on its first message)."""
        sock = self.uplinks.get(name)
        if sock is None:
            sock = self.uplinks[name] = self._dealer(name)
            self._uplink_of[sock] = name
            self.owner[name] = student
            self._sockets_changed = True
        return sock

    def cut_off(self, names: list[str]) -> None:
        for name in names:
            sock = self.uplinks.pop(name, None)
            if sock is not None:
                del self._uplink_of[sock]
                sock.close(0)
            self.owner.pop(name, None)
            self.mail.forget(name)
            log.warning("%s cut off: its student's key was revoked", name)
        self.report.cut_off += names
        self._sockets_changed = True

    # -- the loop -----------------------------------------------------------------------------
    def serve(self, ready: Callable[[], None] | None = None) -> None:
        self._running = True
        rundir.update(self.run_dir, endpoints=self.endpoints,
                      door={"pid": os.getpid(), "started": time.time()})
        if ready is not None:
            ready()
        log.info("class door on %s, trace %s: CURVE, students' keys in %s",
                 self.endpoints["class_bus"], self.endpoints["class_trace"],
                 self.section["keys"])
        next_report = time.monotonic()
        poller = zmq.Poller()
        while self._running:
            if self._sockets_changed:
                poller = zmq.Poller()
                for sock in (self.router, self.pub, self.sub, self.control,
                             *self.uplinks.values()):
                    poller.register(sock, zmq.POLLIN)
                self._sockets_changed = False
            readable = dict(poller.poll(100))
            if self.router in readable:
                self._from_students()
            if self.pub in readable:
                self._subscriptions()
            if self.sub in readable:
                self._relay_trace()
            for sock in readable:
                name = self._uplink_of.get(sock)
                if name is not None:
                    try:
                        self._from_bus(name, sock)
                    except Exception:   # noqa: BLE001 - as for the students' messages
                        self.stats["bad.internal"] += 1
                        log.exception("dropped a message for %s", name)
            if self.control in readable:    # the bus's heartbeats: nothing to do
                while self.control.poll(0):
                    self.control.recv(NOBLOCK)
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + REPORT_EVERY
                self.tick()
        self.close()

    def stop(self, *_: Any) -> None:
        self._running = False

    def close(self) -> None:
        self._close_class()
        for sock in (self.control, self.sub, *self.uplinks.values()):
            sock.close(0)
        self.zap.stop()
        self.ctx.term()

    def _from_students(self) -> None:
        for _ in range(BATCH):
            try:
                frames = [self.router.recv(NOBLOCK)]
                frame = self.router.recv(NOBLOCK, copy=False)
            except zmq.Again:
                return
            frames.append(frame)
            while frame.more:
                frame = self.router.recv(NOBLOCK, copy=False)
                frames.append(frame)
            try:
                self.admit(frames)
            except Exception:   # noqa: BLE001 - one bad message must not drop the class
                self.stats["bad.internal"] += 1
                log.exception("dropped a message the door could not handle")

    def _subscriptions(self) -> None:
        """A trace subscriber's subscription: whatever it asked, it gets everything."""
        for _ in range(BATCH):
            try:
                message = self.pub.recv(NOBLOCK)
            except zmq.Again:
                return
            if message[:1] == b"\x01":
                self.pub.setsockopt(zmq.SUBSCRIBE, b"")

    def admit(self, frames: list[Any]) -> None:
        """One message from a student's machine: who sent it, may they, then up it goes."""
        self.stats["received"] += 1
        rid, first = frames[0], frames[1]
        try:
            user_id = first.get("User-Id")
        except zmq.ZMQError:
            self.stats["refused_frames"] += 1
            return
        name, problem = self.names.admit(rid, user_id, lambda: _claimed(first))
        student = user_id[len(curve.STUDENT_PREFIX):]
        if not problem and name not in self.owner and \
                sum(1 for s in self.owner.values() if s == student) >= MAX_NAMES:
            problem = "too_many_names"
            self.names.refuse(name, rid)
        if problem:
            if problem in ("identity_mismatch", "not_your_name", "too_many_names"):
                self.report.refuse(name, problem, f"{_peer(first)}, CURVE {user_id!r}")
            else:
                self.stats[f"{problem}_frames"] += 1
            return
        if not self.door.admit(name, user_id):
            self.stats["revoked_frames"] += 1
            self.names.refuse(name, rid)
            return
        for held in self.mail.held(name):    # what the bus sent while it was away
            self._down(name, rid, held)
        if len(frames) != 2:
            return self._bad(name, "bad_frames")
        data = first.bytes
        try:
            env = protocol.decode(data)
        except protocol.ProtocolError as exc:
            return self._bad(name, exc.reason)
        if env["src"] != name:
            return self._bad(name, "bad_envelope")
        if not self.door.may_send(name, env) or not self.mail.answers_a_call(name, env):
            return self._bad(name, "not_allowed",
                             f"{env['kind']} {env['topic']}.{env['method']}")
        if env["kind"] == "control" and env["method"] == "class_config":
            return self._reply(rid, env, self.class_config())
        try:
            self.uplink(name, student).send(data, NOBLOCK)
        except zmq.ZMQError:      # full (the bus away), or a name libzmq will not take
            self.stats["uplink_failed"] += 1

    def _from_bus(self, name: str, sock: zmq.Socket) -> None:
        """What the bus sends ``name``: down to the student's connection holding it."""
        for _ in range(BATCH):
            try:
                data = sock.recv(NOBLOCK)
            except zmq.Again:
                return
            try:
                env = protocol.decode(data, 64 << 20)
            except protocol.ProtocolError:
                continue
            self.mail.delivered(name, env)
            rid = self.names.routes.get(name)
            if rid is None:      # reconnecting (the door re-opened): it waits a little
                self.mail.hold(name, data)
            else:
                self._down(name, rid, data)

    def _down(self, name: str, rid: bytes, data: bytes) -> None:
        try:
            self.router.send_multipart([rid, data], NOBLOCK)
        except zmq.ZMQError:      # gone (EHOSTUNREACH) or full: its caller times out
            self.names.gone(name, rid)
            self.stats["undeliverable"] += 1

    def _relay_trace(self) -> None:
        for _ in range(BATCH):
            try:
                self.pub.send(self.sub.recv(NOBLOCK), NOBLOCK)
            except zmq.Again:
                return

    def _reply(self, rid: bytes, env: dict[str, Any], result: Any) -> None:
        reply = protocol.reply_to(env, BUS_IDENTITY, result=result)
        try:
            self.router.send_multipart([rid, protocol.encode(reply)], NOBLOCK)
        except zmq.ZMQError:
            pass

    def class_config(self) -> dict[str, Any]:
        """What a student's machine needs to run computes of this lab: its config."""
        config = rundir.read(self.run_dir).get("config", {})
        return {"lab": config.get("lab", {}), "bus": config.get("bus", {})}

    # -- refusals, revocations, reports ----------------------------------------------------------
    def _bad(self, name: str, reason: str, detail: str = "") -> None:
        self.stats["bad_frames"] += 1
        self.stats[f"bad.{reason}"] += 1
        n = self.stats[f"bad.{reason}"]
        if n <= 10 or n % 100 == 0:
            log.warning("dropped %s from %s (#%d): %s", reason, name, n, detail)

    def tick(self) -> None:
        refused = [self.zap.refusals.popleft() for _ in range(len(self.zap.refusals))]
        for monitor, domain in self._monitors:
            refused += auth.handshake_refusals(monitor, domain)
        self.report.refusals += [vars(r).copy() for r in refused]
        self.door.registry.reload()
        revoked = self.door.registry.revoked
        if revoked - self._revoked:     # someone newly revoked: cut off, everyone re-proves
            self.cut_off([n for n, s in self.owner.items() if s in revoked])
            self.reopen()
        self._revoked = revoked
        self._send_report()
        if os.getppid() != self._parent or \
                (self._lab is not None and not respawn.alive(self._lab)):
            log.warning("the lab's process is gone: stopping")
            self.stop()

    def _send_report(self) -> None:
        env = protocol.control(DOOR_IDENTITY, protocol.DOOR_REPORT, **self.report.take())
        try:
            self.control.send(protocol.encode(env), NOBLOCK)
        except zmq.Again:   # the bus is away: what was refused meanwhile is lost, counted
            self.stats["reports_lost"] += 1


def _claimed(frame: Any) -> str:
    """The ``src`` a student's first envelope claims ("" if it is not an envelope)."""
    try:
        return protocol.decode(frame.bytes)["src"]
    except protocol.ProtocolError:
        return ""


def _peer(frame: Any) -> str:
    try:
        return frame.get("Peer-Address")
    except zmq.ZMQError:
        return "unknown peer"


def run(run_dir: str) -> int:
    """Entry point of ``python -m orchestrator door``: the door in a child process,
    started again if it dies of anything but a stop (a libzmq abort a student caused);
    the lab's bus never notices. Stops with SIGTERM, or when the lab's process is gone."""
    lab = os.getppid()

    def serve(ready: Callable[[], None]) -> None:
        door = Door(run_dir, lab_pid=lab)
        signal.signal(signal.SIGTERM, door.stop)
        door.serve(ready)
    return respawn.serve(serve, "the class's door")
