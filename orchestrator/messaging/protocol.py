"""The wire protocol of the lab's message bus. This docstring is the spec.

Every message between services is one ZeroMQ frame holding one *envelope*, encoded with
msgpack (never pickle). A service talks to the bus over a DEALER socket named
``topic.server`` (``compute.compute2``): its routing identity, or, with authentication on,
its PLAIN username (see Authentication below); the bus is a ROUTER, so on the bus side a
message arrives as ``[routing id, envelope]``.

Envelope (a msgpack map; every key is always present):

=============  ======  ==========================================================
key            type    meaning
=============  ======  ==========================================================
``v``          int     protocol version, :data:`VERSION`
``kind``       str     ``cast | call | reply | fanout | notification | control``
``msg_id``     str     unique per message (hex); a reply carries its own
``reply_to``   str     for a reply: the ``msg_id`` of the call it answers; else ""
``src``        str     the sender's identity, ``topic.server``
``topic``      str     target topic (``conductor``, ``compute``)
``server``     str     target server, or "" for "any live server of the topic"
``method``     str     the remote method (``build_instances``)
``args``       map     keyword arguments; msgpack-native values only
``ctx``        map     context: ``request_id``, ``instance_uuid``, ``attempt`` (+ any)
``sent``       float   unix time the sender sent it
=============  ======  ==========================================================

Kinds and their routing:

- ``cast``: fire and forget. ``topic.server`` goes to that server; a bare ``topic``
  round-robins over the topic's live servers. A cast to a receiver that is not connected
  (or not alive) waits in a bounded queue at the bus and is delivered when it registers.
- ``call``: routed like a cast; the receiver answers with a ``reply``. The caller waits up
  to its timeout and then raises :class:`MessagingTimeout`.
- ``reply``: ``topic``/``server`` name the caller; ``args`` is ``{"result": value}`` or
  ``{"error": {"type": name, "message": text}}``, which the caller raises as
  :class:`RemoteError`. A reply whose caller is gone is counted and dropped.
- ``fanout``: delivered to every live server of ``topic``.
- ``notification``: one-way event to a topic (like a cast, never queued by a server).
- ``control``: between a peer and the bus itself (``topic == "bus"``): ``register``,
  ``heartbeat``, ``unregister``, and the lab's requests (``history``, ``stats``,
  ``set_faults``, ``peers``, ``expired``). The bus answers requests with a ``reply``.
  Control messages are not traced (a refused connection is: see Authentication).

Liveness: a server sends ``register`` once, then ``heartbeat`` every
``heartbeat_interval`` seconds; the bus sends ``heartbeat`` back, so each side knows
when the other is gone. A server missing for ``dead_after`` seconds is *down*: casts to
it queue, round-robin skips it.

Trace events (the tap). For every message the bus publishes a trace event on its PUB
socket and appends it as one JSON line to ``trace.jsonl``. A PUB frame (topic-less) is a
msgpack array of the events of one turn of the bus's loop, in ``seq`` order. Fields, the contract for the dashboard, notebooks, exports and tests:

=================  =====  =====================================================
field              type   meaning
=================  =====  =====================================================
``seq``            int    position in this bus's event stream, from 1
``ts``             float  unix seconds when the bus decided the message's fate
``kind``           str    the envelope's kind
``phase``          str    ``routed | queued | dropped | delayed | expired``
``src``            str    sender, ``topic.server``
``dst``            str    receiver, ``topic.server`` (or the bare topic if none yet)
``topic``          str    target topic
``method``         str    the method
``msg_id``         str    the message's own id (a reply has its own)
``reply_to``       str    a reply's ``reply_to`` is its call's ``msg_id``: the pairing
``request_id``     str    from ``ctx``
``instance_uuid``  str    from ``ctx``
``attempt``        int    from ``ctx`` (0 when absent)
``bytes``          int    size of the encoded envelope
``reason``         str    why a message was dropped/delayed/queued/expired; "" if routed
``sent``           float  unix seconds when the sender sent it (the envelope's ``sent``)
=================  =====  =====================================================

A message may produce several events as its fate unfolds (``queued`` then ``routed``;
``delayed`` then ``routed``); a delivered message ends with one ``routed`` event per
receiver (a duplicated one with a second, ``reason="duplicate"``). ``expired`` marks a
queued cast that outlived the queue's TTL, or a call whose caller gave up (the caller
tells the bus, so the timeout is visible in the trace).

Authentication: who may connect (ZeroMQ's ZAP, RFC 27, with the PLAIN mechanism). When
the run directory holds the lab's ``secret``, the bus's ROUTER and PUB are PLAIN servers
(ZAP domains :data:`ZAP_DOMAIN_BUS` and :data:`ZAP_DOMAIN_TRACE`) and every client is a
PLAIN client whose password is the secret. The bus's ZAP handler (``auth.py``) answers
``200`` with the username as the connection's *User-Id*, which libzmq attaches to every
message of that connection, or ``400`` and the connection never gets past its handshake:

- ROUTER (:data:`ZAP_DOMAIN_BUS`): the username is the peer's name, ``topic.server`` (a lab
  client's ``lab.<name>``): UTF-8, at most 255 bytes, not the bus's own topic ``bus``. The
  password must be the secret.
- A peer's name on the bus is its User-Id, never a routing id of its choosing: libzmq's ZAP
  request cannot carry the peer's routing id (PLAIN's HELLO, which holds the credentials,
  is judged before INITIATE brings the peer's ``Identity``, so the request's identity frame
  is the bus socket's own, empty), and a routing id the bus cannot vouch for is one any
  local process can claim. So an authenticated DEALER sets no routing id (libzmq assigns
  one: a zero byte and four more); one that sets its own must set it to its username, else
  the bus refuses the connection at its first frame (``identity_mismatch``) and drops the
  rest (``refused_frames``). Either way a connection holds no route by its routing id:
  the bus routes a name to the routing id of the connection that proved it.
- Proof takes a name at once: the newest connection authenticated as a name takes it at
  its first frame (a restarted service at its ``register``), even while the old connection
  still looks alive; frames from the superseded connection are dropped and counted
  (``superseded_frames``).
  ROUTER_HANDOVER stays on, for a peer that names its routing id after its username.
- PUB (:data:`ZAP_DOMAIN_TRACE`): any username; the password must be the secret.
- A refusal is counted in ``control stats`` (``auth_refused``, ``auth.<reason>``: one of
  :data:`AUTH_REFUSALS`), logged with the name claimed, and traced as one event
  (``kind=control``, ``method=connect``, ``phase=dropped``, ``src`` the name claimed or ""
  when the peer sent none, ``dst`` ``bus.bus``, ``reason`` ``auth: <reason>``; the first
  ten, then one in a hundred). A client without credentials (the NULL mechanism) fails
  the handshake before it could claim a name: ``no_credentials`` when the bus sees the
  mechanisms differ, ``bad_handshake`` when the client hung up first (or broke off any
  handshake); each connection attempt counts once.
- No ``secret`` in the run directory (a bare ``Bus(run_dir)`` in unit tests): no
  authentication; clients then connect without PLAIN and set routing id = name.

A class's cloud (``class`` in ``lab.json``; ``curve.py``, ``door.py``): the students'
machines never reach the bus. A separate process, the door, binds TCP endpoints on the
class's address with CURVE (ZAP domains ``curve.ZAP_DOMAIN_CLASS_BUS`` / ``_TRACE``, ZAP
enforced) and relays: each name a student holds gets its own PLAIN connection to the bus
(so the bus sees ``compute.alice_1`` as any peer), and the bus's trace is republished. The
door's ZAP handler admits a public key in the keys directory (User-Id ``student:NAME``),
refuses an unknown one (``unknown_key``, logged with the key in z85) or a revoked one
(``revoked_key``, with the student's name); no or PLAIN credentials fail the handshake
(``no_credentials``). A student's connection is named by the ``src`` of its first envelope,
one of their names (``compute.NAME_N``, ``lab.NAME_x``; else ``not_your_name``; at most
``door.MAX_NAMES``: ``too_many_names``; a routing id of its own choosing that libzmq
does not recognise as its own: ``identity_mismatch``), and keeps it. A student's peer may
send only what a compute sends (``class.sends``) speaking for its own host only
(``class.own_host_args``), reply only to calls the door delivered to it, and turn the
knobs only of its own computes; anything else is dropped and counted (``bad.not_allowed``
in the door's counters). The door reports to the bus (control ``door_report``, accepted
only from ``door.door``): its refusals, which the bus counts (``auth.<reason>``), logs
and traces as its own, names cut off by a revoke (traced as ``auth: revoked_key``), and
its counters (``door.<name>`` in ``stats``). A revoke closes the student's uplinks and
re-opens the door's endpoints: every student proves their key again.

Only :func:`encode` and :func:`decode` touch bytes; nothing else builds frames by hand.
"""
from __future__ import annotations

import itertools
import os
import time
from json.encoder import encode_basestring as _esc
from typing import Any

import msgpack

__all__ = [
    "VERSION", "KINDS", "CONTROL_TOPIC", "MAX_MESSAGE_BYTES", "ENVELOPE_FIELDS",
    "TRACE_FIELDS", "PHASES", "ProtocolError", "MessagingTimeout", "RemoteError",
    "envelope", "reply_to", "encode", "decode", "identity", "split_identity",
    "trace_event", "trace_json", "new_id", "AUTH_MECHANISM", "ZAP_DOMAIN_BUS",
    "ZAP_DOMAIN_TRACE", "AUTH_REFUSALS", "REGISTER", "HEARTBEAT", "UNREGISTER", "EXPIRED",
    "DOOR_REPORT", "CONNECT", "control", "encode_batch", "decode_batch", "BUS_IDENTITY",
    "DOOR_IDENTITY",
]

VERSION = 1
KINDS = frozenset({"cast", "call", "reply", "fanout", "notification", "control"})
PHASES = ("routed", "queued", "dropped", "delayed", "expired")
CONTROL_TOPIC = "bus"
BUS_IDENTITY = "bus.bus"      # the bus's own name: its replies, heartbeats, refusals
DOOR_IDENTITY = "door.door"   # a class's door (door.py): its reports, and only its
MAX_MESSAGE_BYTES = 1 << 20
AUTH_MECHANISM = "PLAIN"
ZAP_DOMAIN_BUS = "conductor-lab.bus"      # the ROUTER: username = name, password = secret
ZAP_DOMAIN_TRACE = "conductor-lab.trace"  # the PUB: password = secret
AUTH_REFUSALS = ("wrong_secret", "bad_username", "unknown_domain", "identity_mismatch",
                 "no_credentials", "bad_handshake", "unknown_key", "revoked_key",
                 "not_your_name", "too_many_names", "too_many_connections")

ENVELOPE_FIELDS: dict[str, frozenset[type]] = {
    "v": frozenset({int}), "kind": frozenset({str}), "msg_id": frozenset({str}),
    "reply_to": frozenset({str}), "src": frozenset({str}), "topic": frozenset({str}),
    "server": frozenset({str}), "method": frozenset({str}), "args": frozenset({dict}),
    "ctx": frozenset({dict}), "sent": frozenset({float, int}),
}
_FIELD_CHECKS = tuple(ENVELOPE_FIELDS.items())
_ids = itertools.count(1)
_id_prefix = os.urandom(6).hex()
TRACE_FIELDS = (
    "seq", "ts", "kind", "phase", "src", "dst", "topic", "method", "msg_id", "reply_to",
    "request_id", "instance_uuid", "attempt", "bytes", "reason", "sent",
)
_TRACE_TYPES: dict[str, tuple[type, ...]] = {
    **{f: (str,) for f in TRACE_FIELDS}, "seq": (int,), "attempt": (int,), "bytes": (int,),
    "ts": (float, int), "sent": (float, int)}

# The control verbs (kind ``control``, topic :data:`CONTROL_TOPIC`) that are not requests
# answered by a ``control_<verb>`` of the bus: a peer's liveness, a caller's notice, a
# class door's report, and the name a refusal is traced under.
REGISTER, HEARTBEAT, UNREGISTER = "register", "heartbeat", "unregister"
EXPIRED, DOOR_REPORT, CONNECT = "expired", "door_report", "connect"


class ProtocolError(ValueError):
    """A frame that is not a valid envelope. ``reason`` is a short code the bus counts by:
    ``oversized``, ``not_msgpack``, ``bad_envelope``, ``bad_version``, ``unknown_kind``."""

    def __init__(self, message: str, reason: str = "bad_envelope"):
        super().__init__(message)
        self.reason = reason


class MessagingTimeout(TimeoutError):
    """A call got no reply within its timeout (oslo.messaging's name)."""


class RemoteError(Exception):
    """The remote method raised; carries the remote exception's type name and message."""

    def __init__(self, exc_type: str, message: str):
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message


def new_id() -> str:
    """A message id unique across processes: a random per-process prefix and a counter
    (as cheap as it gets: the bus's hot path builds many)."""
    return f"{_id_prefix}{next(_ids):x}"


def envelope(kind: str, src: str, topic: str, method: str, *, server: str = "",
             args: dict[str, Any] | None = None, ctx: dict[str, Any] | None = None,
             reply_to: str = "", msg_id: str | None = None) -> dict[str, Any]:
    """Build an envelope (a plain dict) with every field present."""
    if kind not in KINDS:
        raise ProtocolError(f"unknown kind {kind!r}", "unknown_kind")
    return {
        "v": VERSION, "kind": kind, "msg_id": msg_id or new_id(),
        "reply_to": reply_to, "src": src, "topic": topic, "server": server,
        "method": method, "args": args or {}, "ctx": ctx or {}, "sent": time.time(),
    }


def reply_to(call: dict[str, Any], src: str, *, result: Any = None,
             error: BaseException | None = None) -> dict[str, Any]:
    """The reply envelope answering ``call``: addressed back to the caller's identity."""
    topic, server = split_identity(call["src"])
    if error is not None:
        args = {"error": {"type": type(error).__name__, "message": str(error)}}
    else:
        args = {"result": result}
    return envelope("reply", src, topic, call["method"], server=server, args=args,
                    ctx=call["ctx"], reply_to=call["msg_id"])


def encode(env: dict[str, Any]) -> bytes:
    """Envelope -> bytes. Raises ProtocolError if a value is not msgpack-native."""
    try:
        return msgpack.packb(env, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode envelope: {exc}") from exc


def _unpack(data: bytes, max_bytes: int, what: str) -> Any:
    """msgpack bytes -> a value, the size checked before parsing (ProtocolError)."""
    if len(data) > max_bytes:
        raise ProtocolError(f"oversized {what}: {len(data)} > {max_bytes} bytes",
                            "oversized")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises many types for garbage
        raise ProtocolError(f"not msgpack: {type(exc).__name__}", "not_msgpack") from None


def decode(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Bytes -> a validated envelope. Raises ProtocolError on anything else."""
    env = _unpack(data, max_bytes, "message")
    if not isinstance(env, dict):
        raise ProtocolError(f"envelope is a {type(env).__name__}, not a map")
    if env.get("v") != VERSION:
        raise ProtocolError(f"protocol version {env.get('v')!r} != {VERSION}", "bad_version")
    for key, types in _FIELD_CHECKS:
        if type(env.get(key)) not in types:  # exact types: msgpack makes no subclasses
            raise ProtocolError(f"field {key!r} missing or of the wrong type")
    if env["kind"] not in KINDS:
        raise ProtocolError(f"unknown kind {env['kind']!r}", "unknown_kind")
    return env


def identity(topic: str, server: str) -> str:
    """The ``topic.server`` name a service registers under."""
    return f"{topic}.{server}" if server else topic


def split_identity(name: str) -> tuple[str, str]:
    """``compute.compute2`` -> (``compute``, ``compute2``); ``conductor`` -> (``conductor``, "")."""
    topic, _, server = name.partition(".")
    return topic, server


def control(src: str, method: str, **args: Any) -> dict[str, Any]:
    """A control envelope from ``src`` to the bus itself."""
    return envelope("control", src, CONTROL_TOPIC, method, args=args)


def encode_batch(events: list[dict[str, Any]]) -> bytes:
    """One PUB frame of the trace tap: the events of one turn of the bus's loop."""
    return msgpack.packb(events)


def decode_batch(data: bytes, max_bytes: int = 64 << 20) -> list[dict[str, Any]]:
    """A trace PUB frame -> its events, each checked against :data:`TRACE_FIELDS` and in
    ``seq`` order. Raises ProtocolError on anything else."""
    events = _unpack(data, max_bytes, "trace batch")
    if not isinstance(events, list):
        raise ProtocolError(f"trace batch is a {type(events).__name__}, not a list")
    last = 0
    for event in events:
        if not isinstance(event, dict):
            raise ProtocolError("a trace event that is not a map")
        for field, types in _TRACE_TYPES.items():
            value = event.get(field)
            if type(value) not in types:
                raise ProtocolError(f"trace event field {field!r} is {value!r}")
        if event["seq"] <= last:
            raise ProtocolError(f"trace events out of order at seq {event['seq']}")
        last = event["seq"]
    return events


def trace_event(seq: int, env: dict[str, Any], phase: str, dst: str, size: int,
                reason: str = "", ts: float | None = None) -> dict[str, Any]:
    """One trace event in the schema above."""
    ctx = env["ctx"]
    attempt = ctx.get("attempt", 0)
    return {
        "seq": seq, "ts": time.time() if ts is None else ts, "kind": env["kind"],
        "phase": phase, "src": env["src"], "dst": dst, "topic": env["topic"],
        "method": env["method"], "msg_id": env["msg_id"], "reply_to": env["reply_to"],
        "request_id": str(ctx.get("request_id") or ""),
        "instance_uuid": str(ctx.get("instance_uuid") or ""),
        "attempt": attempt if type(attempt) is int else 0,
        "bytes": size, "reason": reason, "sent": float(env["sent"]),
    }


def trace_json(e: dict[str, Any]) -> str:
    """One trace event as a JSON line (no newline): the schema's fields in order. A
    hand-built formatter, 3x faster than ``json.dumps`` on the bus's hot path."""
    return (f'{{"seq":{e["seq"]:d},"ts":{e["ts"]!r},"kind":{_esc(e["kind"])},'
            f'"phase":{_esc(e["phase"])},"src":{_esc(e["src"])},"dst":{_esc(e["dst"])},'
            f'"topic":{_esc(e["topic"])},"method":{_esc(e["method"])},'
            f'"msg_id":{_esc(e["msg_id"])},"reply_to":{_esc(e["reply_to"])},'
            f'"request_id":{_esc(e["request_id"])},'
            f'"instance_uuid":{_esc(e["instance_uuid"])},"attempt":{e["attempt"]:d},'
            f'"bytes":{e["bytes"]:d},"reason":{_esc(e["reason"])},"sent":{e["sent"]!r}}}')
