"""The synchronous side of the bus, for the lab, the CLI and tests (no event loop needed).

``BlockingClient`` casts and calls like ``RPCClient`` but blocks the calling thread, and
``control(...)`` talks to the bus itself (history, stats, peers, faults). It never
registers as a server, so nothing but replies is ever routed to it. Its name is
``lab.<name>``; give it the lab's ``secret`` and it proves that name with PLAIN (a bus
whose run directory holds a secret admits nobody without it); without one it connects as
before authentication, for a bare bus in unit tests. One client per
thread; a lock makes accidental sharing safe rather than corrupting.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any

import zmq

from . import auth, curve, protocol
from .transport import REPLY_MAX_BYTES, result_of

__all__ = ["BlockingClient"]

_counter = itertools.count(1)


class BlockingClient:
    def __init__(self, endpoint: str, name: str | None = None, *, timeout: float = 10.0,
                 secret: str | curve.ClientKeys | None = None):
        self.identity = protocol.identity("lab", name or f"{os.getpid()}-{next(_counter)}"
                                          f"-{os.urandom(3).hex()}")
        self.timeout = timeout
        self.orphan_replies = 0
        self._lock = threading.Lock()
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        auth.plain_client(self._sock, self.identity, secret)
        self._sock.connect(endpoint)

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if not self._sock.closed:
                self._sock.close(0)
                self._ctx.term()

    def envelope(self, kind: str, topic: str, method: str, **kw: Any) -> dict[str, Any]:
        return protocol.envelope(kind, self.identity, topic, method, **kw)

    def send(self, env: dict[str, Any]) -> None:
        with self._lock:
            self._put(protocol.encode(env), self.timeout)

    def _put(self, data: bytes, timeout: float) -> None:
        """Send, waiting at most ``timeout`` for room. A bus that refused this client's
        proof leaves it nothing to send on, where a blocking send would wait forever."""
        try:
            self._sock.send(data, zmq.NOBLOCK)
        except zmq.Again:
            if not self._sock.poll(int(timeout * 1000) + 1, zmq.POLLOUT):
                raise protocol.MessagingTimeout(
                    f"could not send to the bus within {timeout}s"
                    + self._refused_hint()) from None
            self._sock.send(data, zmq.NOBLOCK)

    def cast(self, topic: str, method: str, *, server: str = "",
             ctx: dict[str, Any] | None = None, **args: Any) -> str:
        """Fire and forget; returns the message id."""
        env = self.envelope("cast", topic, method, server=server, args=args, ctx=ctx)
        self.send(env)
        return env["msg_id"]

    def fanout(self, topic: str, method: str, *, ctx: dict[str, Any] | None = None,
               **args: Any) -> str:
        env = self.envelope("fanout", topic, method, args=args, ctx=ctx)
        self.send(env)
        return env["msg_id"]

    def call(self, topic: str, method: str, *, server: str = "",
             ctx: dict[str, Any] | None = None, timeout: float | None = None,
             **args: Any) -> Any:
        """Send a call and wait for the reply: MessagingTimeout or RemoteError on failure."""
        env = self.envelope("call", topic, method, server=server, args=args, ctx=ctx)
        return self.request(env, timeout)

    def control(self, method: str, *, timeout: float | None = None, **args: Any) -> Any:
        """A request to the bus itself: ``history``, ``stats``, ``peers``, ``set_faults``."""
        return self.request(self.envelope("control", protocol.CONTROL_TOPIC, method, args=args),
                            timeout)

    def request(self, env: dict[str, Any], timeout: float | None = None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            self._put(protocol.encode(env), timeout)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not self._sock.poll(int(left * 1000) + 1):
                    if time.monotonic() < deadline:
                        continue
                    if env["topic"] != protocol.CONTROL_TOPIC:
                        self._notify_expired(env)
                    raise protocol.MessagingTimeout(
                        f"no reply to {env['topic']}.{env['method']} within {timeout}s"
                        + self._refused_hint())
                reply = self._receive()
                if reply is not None and reply["reply_to"] == env["msg_id"]:
                    return result_of(reply)
                if reply is not None and reply["kind"] == "reply":
                    self.orphan_replies += 1

    def _refused_hint(self) -> str:
        """Nothing to send on: the bus refused this client's proof (libzmq drops the
        pipe of a connection refused at its handshake)."""
        if self._sock.poll(0, zmq.POLLOUT):
            return ""
        return f"; the bus refused {self.identity}: is the lab's secret right?"

    def _notify_expired(self, env: dict[str, Any]) -> None:
        """Tell the bus we gave up on ``env`` (best effort: never waits)."""
        try:
            self._sock.send(protocol.encode(protocol.control(
                self.identity, protocol.EXPIRED, call=env)), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def _receive(self) -> dict[str, Any] | None:
        try:
            return protocol.decode(self._sock.recv(), REPLY_MAX_BYTES)
        except protocol.ProtocolError:
            return None
