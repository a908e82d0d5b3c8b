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
"""
from __future__ import annotations

import heapq
import json
import logging
import os
import signal
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import zmq

from .. import rundir
from ..config import BusConfig
from . import auth, protocol
from .faults import FaultError, FaultTable
from .routing import RoutingTable

__all__ = ["Bus", "BUS_IDENTITY", "DOOR_IDENTITY", "TRACE_FILE"]

log = logging.getLogger("orchestrator.bus")
BUS_IDENTITY = "bus.bus"
DOOR_IDENTITY = "door.door"   # a class's door (door.py): its reports, and only its
TRACE_FILE = "trace.jsonl"
FLUSH_INTERVAL = 0.2          # trace.jsonl is flushed this often
DRAIN_BATCH = 256             # frames handled per poll wake-up before timers run
HISTORY_PAGE = 5000           # trace events per history reply
LOG_EVERY = 100               # bad frames: log the first 10, then one in LOG_EVERY
NOBLOCK = int(zmq.NOBLOCK)    # a plain int: enum flag arithmetic shows up in profiles


class Bus:
    """The message broker of one lab. ``start()`` binds, ``serve()`` runs until ``stop()``."""

    def __init__(self, run_dir: str | os.PathLike, config: BusConfig | None = None, *,
                 watch_parent: bool = True):
        self.run_dir = Path(run_dir)
        self.config = config or BusConfig()
        self.routes = RoutingTable(self.config.dead_after, self.config.queue_limit)
        self.faults = FaultTable(seed=self.config.seed, hop_delay=self.config.hop_delay)
        self.stats: Counter[str] = Counter()
        self.history: deque[dict[str, Any]] = deque(maxlen=self.config.history_size)
        self._delayed: list[tuple[float, int, dict, bytes, str, str]] = []
        self._held: list[tuple[dict, bytes, str]] = []
        self._seq = 0
        self._unpublished: list[dict[str, Any]] = []
        self._running = False
        self._parent = os.getppid() if watch_parent else None
        self._ctx = zmq.Context()
        self.router = self._ctx.socket(zmq.ROUTER)
        self.pub = self._ctx.socket(zmq.PUB)
        self._trace_file: Any = None
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
        self._seq = _last_seq(self.run_dir / TRACE_FILE)
        self._trace_file = open(self.run_dir / TRACE_FILE, "a", encoding="utf-8")
        if self._trace_file.tell() and not _ends_with_newline(self.run_dir / TRACE_FILE):
            self._trace_file.write("\n")   # a killed bus may have left half a line
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
            self._publish()
            if now >= next_flush:
                next_flush = now + FLUSH_INTERVAL
                self._trace_file.flush()
        self._close()

    def stop(self, *_: Any) -> None:
        self._running = False

    def _close(self) -> None:
        self._publish()
        if self._trace_file:
            self._trace_file.close()
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

    def process_control(self, env: dict[str, Any]) -> None:
        method, args = env["method"], env["args"]
        if method in (protocol.REGISTER, protocol.HEARTBEAT):
            return
        if method == protocol.UNREGISTER:
            self.routes.remove(env["src"])
            return
        if method == protocol.DOOR_REPORT:   # one-way, from a class's door only (door.py)
            if env["src"] == DOOR_IDENTITY and self.gate is not None:
                try:
                    self._door_report(**args)
                except (TypeError, ValueError, AttributeError) as exc:
                    self._bad(env["src"].encode(), "door_report", str(exc))
            return
        if method == protocol.EXPIRED:  # one-way: a caller's notice, answered with nothing
            try:
                self.control_expired(env["src"], **args)
            except Exception as exc:
                self._bad(env["src"].encode(), "bad_control", f"expired: {exc}")
            return
        handler = getattr(self, f"control_{method}", None)
        if env["topic"] != protocol.CONTROL_TOPIC or handler is None:
            return self._control_reply(env, error=ValueError(f"unknown control {method!r}"))
        try:
            result = handler(**args)
        except Exception as exc:  # input from outside: answer with the error, never die
            return self._control_reply(env, error=exc)
        self._control_reply(env, result=result)

    def _control_reply(self, env: dict[str, Any], **kw: Any) -> None:
        reply = protocol.reply_to(env, BUS_IDENTITY, **kw)
        self._send(env["src"], protocol.encode(reply))

    # -- control requests (the lab's side) -----------------------------------------------
    def control_history(self, since: int = 0, limit: int = HISTORY_PAGE) -> dict[str, Any]:
        events = [e for e in self.history if e["seq"] > since][:max(0, min(limit, HISTORY_PAGE))]
        return {"events": events, "last_seq": self._seq,
                "oldest_seq": self.history[0]["seq"] if self.history else self._seq + 1}

    def control_stats(self) -> dict[str, Any]:
        counters = {**self.stats, **{f"door.{k}": v for k, v in self.door_counters.items()}}
        return {"counters": counters, "queued": self.routes.queued(),
                "held": len(self._held), "delayed": len(self._delayed), "seq": self._seq}

    def control_peers(self) -> list[dict[str, Any]]:
        return self.routes.describe()

    def control_get_faults(self) -> dict[str, Any]:
        return self.faults.describe()

    def control_set_faults(self, **spec: Any) -> dict[str, Any]:
        try:
            self.faults.configure(spec)
        except FaultError as exc:
            raise ValueError(str(exc)) from None
        self._release_held()
        return self.faults.describe()

    def control_expired(self, sender: str, call: dict[str, Any]) -> None:
        """A caller gave up on ``call`` (the envelope it sent): make the timeout visible.
        Only the caller itself may say so."""
        env = protocol.decode(protocol.encode(call))  # validates every field
        if env["src"] != sender or env["kind"] != "call":
            raise ValueError(f"{sender} cannot expire a {env['kind']} sent by {env['src']}")
        self._trace(env, "expired", protocol.identity(env["topic"], env["server"]),
                    0, "call timeout")

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
        beat = protocol.encode(protocol.envelope("control", BUS_IDENTITY, "",
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

    # -- who was turned away ----------------------------------------------------------
    def _refused(self, refusal: auth.Refusal) -> None:
        """Count, log and trace a refused connection (the first ten, then one in
        LOG_EVERY: a stray client must not flood the log or the dashboard)."""
        self.stats["auth_refused"] += 1
        self.stats[f"auth.{refusal.reason}"] += 1
        n = self.stats["auth_refused"]
        if n <= 10 or n % LOG_EVERY == 0:
            log.warning("refused connection #%d to %s claiming %r (%s): %s", n,
                        refusal.domain, refusal.claimed, refusal.peer, refusal.reason)
            env = protocol.control(refusal.claimed, protocol.CONNECT)
            self._trace(env, "dropped", BUS_IDENTITY, 0, f"auth: {refusal.reason}")

    def _door_report(self, refusals: list[dict[str, str]] = (),   # type: ignore[assignment]
                     cut_off: list[str] = (), counters: dict[str, int] | None = None,
                     **_: Any) -> None:
        """What a class's door refused and cut off since its last report, and its
        counters: counted, logged and traced here as the bus's own refusals."""
        for refusal in refusals:
            try:
                self._refused(auth.Refusal(str(refusal["domain"]), str(refusal["claimed"]),
                                           str(refusal["reason"]), str(refusal["peer"])))
            except (KeyError, TypeError):
                self.stats["bad.door_report"] += 1
        for name in cut_off:
            self._cut_off(str(name))
        if isinstance(counters, dict):
            self.door_counters = counters

    def _cut_off(self, name: str) -> None:
        """A revoked student's peer: no route to it (the door closed its uplink)."""
        self.routes.remove(name)
        self.stats["auth.revoked"] += 1
        log.warning("%s cut off: its student's key was revoked", name)
        env = protocol.control(name, protocol.CONNECT)
        self._trace(env, "dropped", BUS_IDENTITY, 0, "auth: revoked_key")

    # -- the tap ------------------------------------------------------------------------
    def _trace(self, env: dict[str, Any], phase: str, dst: str, size: int,
               reason: str = "") -> None:
        self._seq += 1
        event = protocol.trace_event(self._seq, env, phase, dst, size, reason)
        self.history.append(event)
        self._unpublished.append(event)

    def _publish(self) -> None:
        """Send the events of one loop turn as one PUB frame and append them to the file."""
        if self._unpublished:
            events, self._unpublished = self._unpublished, []
            # On disk first: a bus killed now restarts from the last seq anyone saw.
            self._trace_file.write("".join(protocol.trace_json(e) + "\n" for e in events))
            self._trace_file.flush()
            self.pub.send(protocol.encode_batch(events), NOBLOCK)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def _last_seq(path: Path) -> int:
    """The last complete event's seq in an existing trace file (a restarted bus goes on)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 65536))
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def run(run_dir: str, config: BusConfig) -> None:
    """Entry point of ``python -m orchestrator bus``."""
    bus = Bus(run_dir, config)
    signal.signal(signal.SIGTERM, bus.stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    bus.start()
    bus.serve()
