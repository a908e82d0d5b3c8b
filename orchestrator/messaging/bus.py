"""The broker: every message between services passes through here, so the lab can see it,
delay it, drop it, or hold it (zguide's broker with an "Espresso" tap on the side).

One ROUTER socket for services, one PUB socket for the trace tap, bound where
``lab.json`` says (the lab's ``ipc://`` sockets in its private run directory) or else on
127.0.0.1 with ports the OS picks, and written back to ``lab.json``. The loop is short:
poll, ``process_frame`` for each frame, ``tick`` for timers (heartbeats, liveness, delayed
deliveries, TTLs). Input is never trusted: a bad frame is counted, logged and dropped, and
the loop goes on.

When the run directory holds the lab's secret, both sockets are PLAIN servers behind
``auth.Gate``: a ZAP handler thread in the bus's context admits only the secret, a
peer's name is its PLAIN username, and a name goes to the newest connection that proved
it; refusals are counted, logged and traced (protocol.py, "Authentication"). Without a
secret (a bare ``Bus(run_dir)`` in unit tests) there is no authentication and a peer's
name is its routing id, as before.

Here: the loop, the input and the routing. The trace events are ``tracelog.TraceLog``'s;
the control verbs (the lab's requests, a caller's expiry, a door's report) are
``bus_control.ControlVerbs``, a base of ``Bus``.
"""
from __future__ import annotations

import heapq
import logging
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import zmq

from .. import rundir
from ..config import BusConfig
from . import auth, protocol
from .bus_control import LOG_EVERY, ControlVerbs
from .faults import FaultTable
from .routing import RoutingTable
from .tracelog import TRACE_FILE, TraceLog

__all__ = ["Bus", "run"]

log = logging.getLogger("orchestrator.bus")
FLUSH_INTERVAL = 0.2          # trace.jsonl is flushed this often
DRAIN_BATCH = 256             # frames handled per poll wake-up before timers run
NOBLOCK = int(zmq.NOBLOCK)    # a plain int: enum flag arithmetic shows up in profiles


class Bus(ControlVerbs):
    """The message broker of one lab. ``start()`` binds, ``serve()`` runs until ``stop()``."""

    def __init__(self, run_dir: str | os.PathLike, config: BusConfig | None = None, *,
                 watch_parent: bool = True):
        self.run_dir = Path(run_dir)
        self.config = config or BusConfig()
        self.routes = RoutingTable(self.config.dead_after, self.config.queue_limit)
        self.faults = FaultTable(seed=self.config.seed, hop_delay=self.config.hop_delay)
        self.stats: Counter[str] = Counter()
        self.tracelog = TraceLog(self.config.history_size)    # the tap (tracelog.py)
        self.history = self.tracelog.history
        self._trace = self.tracelog.record
        self._delayed: list[tuple[float, int, dict, bytes, str, str]] = []
        self._held: list[tuple[dict, bytes, str]] = []
        self._running = False
        self._parent = os.getppid() if watch_parent else None
        self._ctx = zmq.Context()
        self.router = self._ctx.socket(zmq.ROUTER)
        self.pub = self._ctx.socket(zmq.PUB)
        self.gate: auth.Gate | None = None         # set by start() when there is a secret
        self.names: auth.Names | None = None       # the gate's, at hand for the hot path
        self.door_counters: dict[str, int] = {}    # a class's door's (door.py), reported

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> dict[str, str]:
        """Bind both sockets (where ``lab.json`` says, else on OS-chosen ports) and publish
        them in ``lab.json``. With a secret in the run directory, authenticate first."""
        for sock in (self.router, self.pub):
            sock.setsockopt(zmq.LINGER, 0)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        secret = rundir.secret(self.run_dir)
        if secret:
            self.gate = auth.Gate(self._ctx, secret, self.router, self.pub, self.stats)
            self.names = self.gate.names
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.router.setsockopt(zmq.MAXMSGSIZE, 16 * self.config.max_message_bytes)
        self.router.setsockopt(zmq.SNDHWM, 100_000)
        self.router.setsockopt(zmq.RCVHWM, 100_000)
        self.pub.setsockopt(zmq.SNDHWM, 100_000)
        before = rundir.read(self.run_dir).get("endpoints", {})
        self.router.bind(before.get("bus", "tcp://127.0.0.1:0"))
        self.pub.bind(before.get("trace", "tcp://127.0.0.1:0"))
        endpoints = {"bus": self.router.getsockopt_string(zmq.LAST_ENDPOINT),
                     "trace": self.pub.getsockopt_string(zmq.LAST_ENDPOINT)}
        self.tracelog.open(self.run_dir / TRACE_FILE)
        rundir.update(self.run_dir, endpoints=endpoints,
                      bus={"pid": os.getpid(), "started": time.time()})
        log.info("bus up: %s, trace tap %s (%s)", endpoints["bus"], endpoints["trace"],
                 "PLAIN, the lab's secret" if self.gate else "no authentication")

        return endpoints

    def serve(self) -> None:
        self._running = True
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        next_beat = next_flush = time.monotonic()
        while self._running:
            now = time.monotonic()
            wake = min(next_beat, next_flush, self._delayed[0][0] if self._delayed else now + 1)
            if poller.poll(max(0, int((wake - now) * 1000) + 1)):
                for _ in range(DRAIN_BATCH):
                    try:
                        frames = self.router.recv_multipart(NOBLOCK, copy=True) \
                            if self.names is None else self._receive()
                    except zmq.Again:
                        break
                    if self.names is None:
                        self.process_frame(frames)
                    else:
                        self.process_authenticated(frames)
            now = time.monotonic()
            self._deliver_due(now)
            if now >= next_beat:
                next_beat = now + self.config.heartbeat_interval
                self.tick(time.time())
            self.tracelog.publish(self.pub)
            if now >= next_flush:
                next_flush = now + FLUSH_INTERVAL
                self.tracelog.flush()
        self._close()

    def stop(self, *_: Any) -> None:
        self._running = False

    def _close(self) -> None:
        if self.tracelog.file is not None:     # else never started: nothing was traced
            self.tracelog.publish(self.pub)
        self.tracelog.close()
        if self.gate is not None:
            self.gate.close()
        self.router.close(0)
        self.pub.close(0)
        self._ctx.term()

    # -- input --------------------------------------------------------------------------
    def _receive(self) -> list[Any]:
        """One message off an authenticated ROUTER: the routing id (bytes), then frames,
        whose metadata holds the connection's User-Id (two plain receives cost less than
        ``recv_multipart``'s, so authentication adds nothing to the loop's per-message
        cost). The rest of a message is there once its first part is."""
        frames: list[Any] = [self.router.recv(NOBLOCK)]
        frame = self.router.recv(NOBLOCK, copy=False)
        frames.append(frame)
        while frame.more:
            frame = self.router.recv(NOBLOCK, copy=False)
            frames.append(frame)
        return frames

    def process_authenticated(self, frames: list[Any]) -> None:
        """One message on an authenticated ROUTER (``[routing id, frame, ...]``): from the
        User-Id the ZAP handler gave its connection, if the gate lets it speak for it."""
        sender = self.gate.admit(frames[0], frames[-1])   # type: ignore[union-attr]
        if sender is not None:
            self.process_frame([frames[0], *(f.bytes for f in frames[1:])], sender)

    def process_frame(self, frames: list[bytes], sender: str | None = None) -> None:
        """One multipart message from the ROUTER: ``[routing id, envelope]``, from
        ``sender`` (an authenticated name) or else the peer the routing id names."""
        self.stats["received"] += 1
        who = (frames[0] if frames else b"") if sender is None else sender.encode()
        if len(frames) != 2:
            return self._bad(who, "bad_frames", f"{len(frames) - 1} payload frames, expected 1")
        ident, data = frames
        try:
            env = protocol.decode(data, self.config.max_message_bytes)
        except protocol.ProtocolError as exc:
            return self._bad(who, exc.reason, str(exc))
        src = ident.decode("utf-8", "replace") if sender is None else sender
        if env["src"] != src:
            return self._bad(who, "bad_envelope", f"src {env['src']!r} is not the sender")
        if env["kind"] == "control" and env["method"] == protocol.REGISTER:
            self.routes.register(src, time.time())   # a (re)started server: flush its queue
            self._on_alive(src)
        elif env["kind"] == "control" and env["method"] == protocol.HEARTBEAT or \
                src in self.routes.peers:
            if self.routes.seen(src, time.time()):
                self._on_alive(src)
        if env["kind"] == "control":
            return self.process_control(env)
        self.process_message(env, data)

    def _bad(self, ident: bytes, reason: str, detail: str) -> None:
        self.stats["bad_frames"] += 1
        self.stats[f"bad.{reason}"] += 1
        n = self.stats["bad_frames"]
        if n <= 10 or n % LOG_EVERY == 0:
            log.warning("dropped bad frame #%d from %r: %s", n, ident[:64], detail)

    # -- routing ------------------------------------------------------------------------
    def process_message(self, env: dict[str, Any], data: bytes) -> None:
        kind, topic, server = env["kind"], env["topic"], env["server"]
        if kind == "reply" or server:
            return self._dispatch(env, data, protocol.identity(topic, server))
        if kind == "fanout":
            targets = self.routes.live(topic)
            if not targets:
                self._trace(env, "dropped", topic, len(data), "no live servers")
            for dst in targets:
                self._dispatch(env, data, dst)
            return
        dst = self.routes.pick(topic)
        if dst is None:
            return self._queue(topic, env, data, "no live server")
        self._dispatch(env, data, dst)

    def _dispatch(self, env: dict[str, Any], data: bytes, dst: str) -> None:
        """Apply faults on the link (src -> dst), then deliver, delay or hold."""
        if not self.faults.active():
            return self._deliver(env, data, dst)
        decision = self.faults.decide(env["src"], dst, env["method"])
        if decision.drop:
            self.stats["dropped"] += 1
            return self._trace(env, "dropped", dst, len(data), decision.drop)
        if decision.hold:
            self._held.append((env, data, dst))
            return self._trace(env, "queued", dst, len(data), "held")
        copies = ["", "duplicate"] if decision.duplicate else [""]
        if decision.delay > 0:
            self._trace(env, "delayed", dst, len(data), f"{decision.delay:.3f}s")
            due = time.monotonic() + decision.delay
            for reason in copies:
                self._seq_push(due, env, data, dst, reason)
            return
        for reason in copies:
            self._deliver(env, data, dst, reason)

    def _seq_push(self, due: float, env: dict, data: bytes, dst: str, reason: str) -> None:
        self.stats["delayed"] += 1
        heapq.heappush(self._delayed, (due, self.stats["delayed"], env, data, dst, reason))

    def _deliver(self, env: dict[str, Any], data: bytes, dst: str, reason: str = "") -> None:
        # a partition set while the message waited (held, delayed, queued for a receiver
        # that was down) cuts it too: nothing crosses a cut link
        if self.faults.partitions and self.faults.partitioned(env["src"], dst):
            self.stats["dropped"] += 1
            return self._trace(env, "dropped", dst, len(data), "partition")
        if env["kind"] != "reply" and not self.routes.is_alive(dst):
            return self._requeue(env, data, dst, "receiver down")
        if self._send(dst, data):
            self.stats["routed"] += 1
            return self._trace(env, "routed", dst, len(data), reason)
        if env["kind"] == "reply":
            self.stats["orphan_replies"] += 1
            return self._trace(env, "dropped", dst, len(data), "caller gone")
        self._requeue(env, data, dst, "receiver unreachable")

    def _requeue(self, env: dict[str, Any], data: bytes, dst: str, reason: str) -> None:
        """The receiver is gone. A message for a bare topic goes to another live server
        of it (or waits for any); one for a named server waits for that server."""
        if env["server"] or env["kind"] == "fanout":
            return self._queue(dst, env, data, reason)
        other = self.routes.pick(env["topic"])   # only live ones; dst is down by now
        if other is None:
            return self._queue(env["topic"], env, data, reason)
        self._deliver(env, data, other)

    def _send(self, dst: str, data: bytes) -> bool:
        # authenticated: to the connection that proved the name (none: unreachable)
        routing_id = dst.encode() if self.names is None else self.names.routes.get(dst)
        if routing_id is not None:
            try:
                self.router.send_multipart([routing_id, data], NOBLOCK)
                return True
            except zmq.ZMQError as exc:  # EHOSTUNREACH (not connected), EAGAIN (pipe full)
                if exc.errno != zmq.EHOSTUNREACH:
                    return False
                if self.names is not None:
                    self.names.gone(dst, routing_id)
        if self.routes.mark_down(dst):
            log.warning("%s is disconnected: down", dst)
        return False

    def _queue(self, key: str, env: dict[str, Any], data: bytes, reason: str) -> None:
        if self.routes.enqueue(key, (env, data), time.time()):
            self.stats["queued"] += 1
            return self._trace(env, "queued", key, len(data), reason)
        self.stats["queue_overflow"] += 1
        self.stats["dropped"] += 1
        self._trace(env, "dropped", key, len(data), "queue full")

    def _on_alive(self, identity: str) -> None:
        """A server registered or came back: deliver what waited for it."""
        log.info("%s is up", identity)
        topic = identity.partition(".")[0]
        for env, data in self.routes.take(identity):
            self._deliver(env, data, identity)
        for env, data in self.routes.take(topic):
            self.process_message(env, data)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for env, data, dst in held:
            if self.faults.held(env["src"], dst, env["method"]):
                self._held.append((env, data, dst))
            else:
                self._deliver(env, data, dst)

    def _deliver_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, env, data, dst, reason = heapq.heappop(self._delayed)
            self._deliver(env, data, dst, reason)

    # -- timers -------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Heartbeats out, dead peers marked, old queued casts expired, refused
        connections counted, parent checked."""
        if self.gate is not None:
            for refusal in self.gate.refusals():
                self._refused(refusal)
        for identity in self.routes.expire(now):
            log.warning("%s missed heartbeats for %.1fs: down", identity, self.config.dead_after)
        beat = protocol.encode(protocol.envelope("control", protocol.BUS_IDENTITY, "",
                                                 protocol.HEARTBEAT))
        for peer in self.routes.peers.values():
            self._send(peer.identity, beat)
        if self.config.queue_ttl:
            for key, (env, data) in self.routes.expire_queued(now, self.config.queue_ttl):
                self.stats["expired"] += 1
                self._trace(env, "expired", key, len(data), "queue ttl")
        if self._parent is not None and os.getppid() != self._parent:
            log.warning("parent process %d is gone: stopping", self._parent)
            self.stop()


def run(run_dir: str, config: BusConfig) -> None:
    """Entry point of ``python -m orchestrator bus``."""
    bus = Bus(run_dir, config)
    signal.signal(signal.SIGTERM, bus.stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    bus.start()
    bus.serve()
