"""Proof of identity at the bus: ZeroMQ's ZAP (RFC 27) with the PLAIN mechanism.

The rule is protocol (``protocol.py``, "Authentication"); this module holds its parts:

- :func:`judge`: one ZAP request's credentials -> "" (accepted) or the reason refused;
- :class:`ZapHandler`: the thread that answers libzmq's ZAP requests on
  ``inproc://zeromq.zap.01`` in the bus's own context, and keeps what it refused;
- :class:`Names`: which routing id holds which authenticated name, the bus's handover
  (libzmq judges credentials before it learns a peer's routing id, so the bus, not
  ROUTER_HANDOVER, decides who holds a name);
- :class:`Gate`: the three put on an authenticating bus's ROUTER and PUB, with monitors
  that see handshakes fail before any ZAP request (a client without credentials);
- :func:`plain_client` / :func:`plain_server`: the socket options each side sets.

Without a secret nothing here is used: the bus and its clients run as before
authentication (a bare ``Bus(run_dir)`` in unit tests).
"""
from __future__ import annotations

import hmac
import logging
import struct
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable, Iterator

import zmq

from . import curve
from .protocol import (AUTH_MECHANISM, CONTROL_TOPIC, ZAP_DOMAIN_BUS, ZAP_DOMAIN_TRACE,
                       split_identity)

__all__ = ["ZAP_ENDPOINT", "Refusal", "describe_peer", "judge", "name_problem",
           "identity_problem", "ZapHandler", "Names", "Gate", "plain_client", "plain_server",
           "handshake_refusals"]

log = logging.getLogger("orchestrator.auth")
ZAP_ENDPOINT = "inproc://zeromq.zap.01"   # where libzmq asks, in the socket's own context
ZAP_VERSION = b"1.0"
MAX_NAME_BYTES = 255                      # a routing id's limit in ZMTP
CLAIM_CHARS = 64                          # of a refused name, kept for logs and the trace
MAX_CONNECTIONS = 4096                    # connections Names remembers before forgetting
MAX_REFUSALS = 10_000                     # refusals waiting for the bus to count them
KNOCKS, KNOCK_WINDOW = 60, 10.0           # a student's handshakes allowed per window
CLASS_DOMAINS = (curve.ZAP_DOMAIN_CLASS_BUS, curve.ZAP_DOMAIN_CLASS_TRACE)
HANDSHAKE_FAILURES = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL


@dataclass(frozen=True)
class Refusal:
    """A connection the bus turned away: on which socket, the name it claimed, why, and
    where from (libzmq's peer address; for ``ipc://`` it ends ``:uid:gid:pid``)."""

    domain: str
    claimed: str
    reason: str
    peer: str = ""


def describe_peer(address: str) -> str:
    """libzmq's peer address in words: an ``ipc://`` peer's ends ``:uid:gid:pid`` (the
    kernel's SO_PEERCRED), which tells a student which process it was."""
    *_, uid, _gid, pid = ["", "", "", *address.split(":")]
    if uid.isdigit() and pid.isdigit():
        return f"pid {pid}, uid {uid}"
    return address or "unknown peer"


def name_problem(username: bytes) -> str:
    """"" if ``username`` can name a peer on the bus, else ``bad_username``: UTF-8,
    printable, 1 to 255 bytes, with a topic that is not the bus's own."""
    try:
        name = username.decode("utf-8")
    except UnicodeDecodeError:
        return "bad_username"
    topic = split_identity(name)[0]
    if not 0 < len(username) <= MAX_NAME_BYTES or not name.isprintable() or \
            not topic or topic == CONTROL_TOPIC:
        return "bad_username"
    return ""


def judge(domain: str, mechanism: str, username: bytes, password: bytes,
          secret: str) -> str:
    """One ZAP request -> "" (accept) or the reason it is refused. The password must be
    the lab's secret (compared in constant time); on the bus's ROUTER the username must
    also be a name (:func:`name_problem`)."""
    if domain not in (ZAP_DOMAIN_BUS, ZAP_DOMAIN_TRACE):
        return "unknown_domain"
    if mechanism != AUTH_MECHANISM:
        return "no_credentials"
    if not hmac.compare_digest(password, secret.encode()):
        return "wrong_secret"
    if domain == ZAP_DOMAIN_BUS:
        return name_problem(username)
    return ""


def identity_problem(routing_id: bytes, user_id: str) -> str:
    """"" if a connection's routing id agrees with its authenticated name, else
    ``identity_mismatch``. A routing id starting with a zero byte is libzmq's own (the
    peer asked for none); one the peer chose must be its username."""
    if routing_id[:1] == b"\x00" or routing_id == user_id.encode():
        return ""
    return "identity_mismatch"


class ZapHandler:
    """Answers libzmq's ZAP requests for every PLAIN server socket of ``ctx``.

    Bind it (the constructor does) before any PLAIN server socket of the context binds:
    a PLAIN server with no handler accepts anyone. ``refusals`` is a thread-safe queue
    the bus drains to count, log and trace them (the handler never touches the bus)."""

    def __init__(self, ctx: zmq.Context, secret: str,
                 registry: curve.Registry | None = None):
        self.secret = secret
        self.registry = registry     # a class's students (CURVE), if the lab has a class
        self._knocks: dict[str, deque[float]] = {}
        self.accepted = 0
        self.refusals: deque[Refusal] = deque(maxlen=MAX_REFUSALS)
        self._sock = ctx.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(ZAP_ENDPOINT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zap-handler", daemon=True)

    def start(self) -> ZapHandler:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the socket (before the context is terminated)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        else:
            self._sock.close(0)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._sock.poll(100):
                    request = self._sock.recv_multipart()
                    try:
                        reply = self.answer(request)
                    except Exception:   # noqa: BLE001 - refuse, log, keep answering
                        log.exception("ZAP request failed: refused")
                        reply = [ZAP_VERSION, request[1] if len(request) > 1 else b"",
                                 b"500", b"internal error", b"", b""]
                    self._sock.send_multipart(reply)
        except zmq.ZMQError as exc:   # the context went away under us: nothing to answer
            log.warning("ZAP handler stopped: %s", exc)
        finally:
            self._sock.close(0)

    def answer(self, request: list[bytes]) -> list[bytes]:
        """One ZAP request (RFC 27: version, request id, domain, address, identity,
        mechanism, credentials...) -> its reply (version, request id, status code,
        status text, user id, metadata). Accepted: 200 and the username as User-Id."""
        if len(request) < 6 or request[0] != ZAP_VERSION:
            request_id = request[1] if len(request) > 1 else b""
            return [ZAP_VERSION, request_id, b"500", b"malformed ZAP request", b"", b""]
        _, request_id, domain, address, _identity, mechanism, *credentials = request
        if domain.decode("utf-8", "replace") in CLASS_DOMAINS:
            return self._answer_class(request_id, domain, address, mechanism, credentials)
        username, password = (credentials + [b"", b""])[:2] \
            if mechanism == AUTH_MECHANISM.encode() else (b"", b"")
        domain_s = domain.decode("utf-8", "replace")
        reason = judge(domain_s, mechanism.decode("ascii", "replace"), username, password,
                       self.secret)
        if reason:
            self.refusals.append(Refusal(
                domain_s, username.decode("utf-8", "replace")[:CLAIM_CHARS], reason,
                describe_peer(address.decode("utf-8", "replace"))))
            return [ZAP_VERSION, request_id, b"400", reason.encode(), b"", b""]
        self.accepted += 1
        return [ZAP_VERSION, request_id, b"200", b"OK", username, b""]

    def _too_many_knocks(self, student: str) -> bool:
        """More than ``KNOCKS`` handshakes from one student's key in ``KNOCK_WINDOW``
        seconds (each is a connection the door holds): the rest wait."""
        now = time.monotonic()
        knocks = self._knocks.setdefault(student, deque())
        while knocks and now - knocks[0] > KNOCK_WINDOW:
            knocks.popleft()
        if len(knocks) >= KNOCKS:
            return True
        knocks.append(now)
        return False

    def _answer_class(self, request_id: bytes, domain: bytes, address: bytes,
                      mechanism: bytes, credentials: list[bytes]) -> list[bytes]:
        """A connection to the class's CURVE endpoints: its public key must be a
        student's in the keys directory (User-Id ``student:NAME``)."""
        if self.registry is None or mechanism != b"CURVE" or not credentials:
            student, reason = "", "no_credentials"
        else:
            student, reason = self.registry.judge(credentials[0])
            if not reason and self._too_many_knocks(student):
                reason = "too_many_connections"
        if reason:
            self.refusals.append(Refusal(domain.decode("utf-8", "replace"),
                                         student[:CLAIM_CHARS], reason,
                                         address.decode("utf-8", "replace")))
            return [ZAP_VERSION, request_id, b"400", reason.encode(), b"", b""]
        self.accepted += 1
        return [ZAP_VERSION, request_id, b"200", b"OK",
                (curve.STUDENT_PREFIX + student).encode(), b""]


class Names:
    """Who holds each name on an authenticated bus: the routing id of the newest
    connection authenticated as it. Pure bookkeeping, fed one frame's (routing id,
    User-Id) at a time by the bus's loop."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}   # name -> routing id holding it (send here)
        # routing id -> (the User-Id it came with, the name it speaks as)
        self._seen: dict[bytes, tuple[str, str]] = {}
        self._refused: set[bytes] = set()

    def admit(self, routing_id: bytes, user_id: str,
              claim: Callable[[], str] | None = None) -> tuple[str, str]:
        """(the name, "") if the frame may be processed as from that name; else (the
        name, why not): ``identity_mismatch`` or ``not_your_name`` (the connection's first
        frame: a refusal), ``refused`` (a refused connection's later frames) or
        ``superseded`` (a newer connection holds the name). A new connection with the
        proof takes its name at once. The name is the User-Id (PLAIN); for a class's
        student (User-Id ``student:NAME``, CURVE) it is what ``claim()`` says the
        connection's first frame claims (its envelope's ``src``), which must be one of
        the student's names, and stays that connection's name."""
        known = self._seen.get(routing_id)
        if known is not None and known[0] == user_id:   # a known connection, same proof
            name = known[1]
            if self.routes.get(name) == routing_id:
                return name, ""                          # the holder: the common case
            return name, "refused" if routing_id in self._refused else "superseded"
        # a new connection (or a routing id libzmq handed over to another one)
        student = user_id[len(curve.STUDENT_PREFIX):] \
            if user_id.startswith(curve.STUDENT_PREFIX) else ""
        name = (claim() if claim is not None else "") if student else user_id
        if len(self._seen) >= MAX_CONNECTIONS:
            self._forget()
        self._seen[routing_id] = (user_id, name)
        if student:   # a student never names its connection: libzmq does (0 and 4 bytes)
            problem = curve.name_problem(student, name) if routing_id[:1] == b"\x00" \
                else "identity_mismatch"
        else:
            problem = identity_problem(routing_id, user_id)
        if problem:
            self._refused.add(routing_id)
            return name, problem
        self._refused.discard(routing_id)
        self.routes[name] = routing_id
        return name, ""

    def refuse(self, name: str, routing_id: bytes) -> None:
        """Refuse this connection from now on (its later frames: ``refused``)."""
        if self.routes.get(name) == routing_id:
            del self.routes[name]
        self._refused.add(routing_id)

    def gone(self, name: str, routing_id: bytes) -> None:
        """The connection holding ``name`` is gone (a send found no route): free the name,
        and forget the routing id (a peer that chose it may come back with it)."""
        if self.routes.get(name) == routing_id:
            del self.routes[name]
            self._seen.pop(routing_id, None)

    def _forget(self) -> None:
        """Keep only the holders (an ancient connection that speaks again is judged anew)."""
        self._seen = {rid: self._seen[rid] for rid in self.routes.values()
                      if rid in self._seen}
        self._refused.clear()


class Gate:
    """An authenticating bus's door on its ROUTER and PUB (set up before they bind): the
    ZAP handler, who holds which name, and monitors that see handshakes fail before any
    ZAP request. Used from the bus's thread (the handler has its own); counts dropped
    frames into the bus's ``stats``; the bus counts, logs and traces :meth:`refusals`."""

    def __init__(self, ctx: zmq.Context, secret: str, router: zmq.Socket, pub: zmq.Socket,
                 stats: Counter[str]):
        self.zap = ZapHandler(ctx, secret).start()   # first: PLAIN with no handler admits all
        self.names = Names()
        self.stats = stats
        self._mismatches: deque[Refusal] = deque(maxlen=MAX_REFUSALS)
        self._sockets = (router, pub)
        plain_server(router, ZAP_DOMAIN_BUS)
        plain_server(pub, ZAP_DOMAIN_TRACE)
        self._monitors = [(router.get_monitor_socket(HANDSHAKE_FAILURES), ZAP_DOMAIN_BUS),
                          (pub.get_monitor_socket(HANDSHAKE_FAILURES), ZAP_DOMAIN_TRACE)]

    def admit(self, routing_id: bytes, frame: zmq.Frame) -> str | None:
        """The sender of one ROUTER message (the User-Id of ``frame``'s connection), or
        None when that connection may not speak for it: refused once if its routing id is
        not its name, its later frames (or a superseded connection's) counted, dropped."""
        try:
            user_id = frame.get("User-Id")
        except zmq.ZMQError:      # never on a PLAIN server; input never kills the bus
            self.stats["refused_frames"] += 1
            return None
        name, problem = self.names.admit(routing_id, user_id)
        if not problem:
            return name
        if problem == "identity_mismatch":
            try:
                peer = describe_peer(frame.get("Peer-Address"))
            except zmq.ZMQError:
                peer = "unknown peer"
            self._mismatches.append(Refusal(
                ZAP_DOMAIN_BUS, routing_id.decode("utf-8", "replace")[:CLAIM_CHARS], problem,
                f"{peer}, PLAIN user {user_id!r}"))
        else:
            self.stats[f"{problem}_frames"] += 1
        return None

    def refusals(self) -> Iterator[Refusal]:
        """What was refused since the last call: by the ZAP handler, by the identity rule,
        and handshakes that failed before any ZAP request. A client without credentials
        (the NULL mechanism) shows as a mechanism mismatch or, when it hung up first, as
        a broken handshake."""
        for queue in (self.zap.refusals, self._mismatches):
            while queue:
                yield queue.popleft()
        for monitor, domain in self._monitors:
            yield from handshake_refusals(monitor, domain)

    def close(self) -> None:
        """Monitors off, handler stopped: before the bus closes its sockets and terminates
        the context."""
        for sock in self._sockets:
            sock.disable_monitor()
        for monitor, _ in self._monitors:
            monitor.close(0)
        self.zap.stop()


def handshake_refusals(monitor: zmq.Socket, domain: str) -> Iterator[Refusal]:
    """The failed handshakes a socket's monitor saw, as refusals: a client without
    credentials (or with another mechanism) shows as a mechanism mismatch, one that hung
    up first (or broke off any handshake) as ``bad_handshake``."""
    while True:
        try:
            event, endpoint = monitor.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        kind, value = struct.unpack("=HI", event[:6])
        mismatch = kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and \
            value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
        yield Refusal(domain, "", "no_credentials" if mismatch else "bad_handshake",
                      f"{endpoint.decode('utf-8', 'replace')}: no name claimed")


def plain_client(sock: zmq.Socket, name: str, secret: str | curve.ClientKeys | None, *,
                 routing_id: bool = True) -> None:
    """Set a client socket's credentials (before ``connect``). With the lab's secret: PLAIN,
    username ``name``, password the secret, and no routing id of its own (libzmq assigns
    one; the bus knows the peer by its username). With a student's keys (a class's
    machine): CURVE, routing id ``name`` (``curve.curve_client``). Without either (a bus
    that does not authenticate): routing id ``name`` if ``routing_id``, as before
    authentication."""
    if isinstance(secret, curve.ClientKeys):
        curve.curve_client(sock, secret)
    elif secret:
        sock.setsockopt(zmq.PLAIN_USERNAME, name.encode())
        sock.setsockopt(zmq.PLAIN_PASSWORD, secret.encode())
    elif routing_id:
        sock.setsockopt(zmq.IDENTITY, name.encode())


def plain_server(sock: zmq.Socket, domain: str) -> None:
    """Make ``sock`` a PLAIN server judged by the ZAP handler under ``domain`` (before
    ``bind``)."""
    sock.setsockopt(zmq.PLAIN_SERVER, 1)
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)   # no ZAP handler: nobody, not everybody
