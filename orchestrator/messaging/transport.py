"""A service's connection to the bus (asyncio): one DEALER socket named ``topic.server``.

With the lab's secret (``rundir.secret``) it proves that name with PLAIN (username the
name, password the secret; libzmq picks the routing id); on a student's machine, with
their class keys, it proves it with CURVE (``curve.py``); without either (a bus that does
not authenticate) the name is its routing id. It registers, heartbeats every ``heartbeat_interval``, matches replies to waiting calls,
hands every request to the server's dispatcher, and ends its ``run()`` when the bus has
been silent for ``bus_timeout`` or when the process that started it has died, so no
service outlives its lab.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Awaitable, Callable

import zmq

from ..config import BusConfig
from . import auth, curve, protocol

FROZEN_AFTER = 4   # a watchdog tick this many intervals late: this process was frozen

__all__ = ["Transport"]

log = logging.getLogger("orchestrator.transport")
REPLY_MAX_BYTES = 64 << 20   # replies (history pages) may be larger than requests
DRAIN_BATCH = 256            # messages taken per event-loop wake-up

# A handler runs a request at once; if it needs to wait it returns an awaitable, which
# the transport runs as its own task.
Handler = Callable[[dict[str, Any]], Awaitable[None] | None]


class Transport:
    def __init__(self, endpoint: str, topic: str, server: str,
                 config: BusConfig | None = None, *, watch_parent: bool = True,
                 secret: str | curve.ClientKeys | None = None,
                 context: zmq.Context | None = None):
        self.endpoint = endpoint
        self.topic, self.server = topic, server
        self.identity = protocol.identity(topic, server)
        self.config = config or BusConfig()
        self.orphan_replies = 0
        self.unsent = 0            # envelopes dropped: no connection to the bus at all
        self.handler: Handler | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._parent = os.getppid() if watch_parent else None
        # Many hosts in one process (``hosts_per_process``) share one context: one I/O
        # thread for all of them, not one each. Whoever made a shared context terms it.
        self._own_ctx = context is None
        self._ctx = zmq.Context() if context is None else context
        # A plain socket watched by the event loop (``_receive``), not zmq.asyncio's:
        # that one makes a Future and schedules events for every message sent or
        # received, which cost a build more CPU than the send itself.
        self._sock = zmq.Socket(self._ctx, zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, 100_000)
        self._sock.setsockopt(zmq.RCVHWM, 100_000)
        auth.plain_client(self._sock, self.identity, secret)
        self._sock.connect(endpoint)
        self._readable = asyncio.Event()
        self._last_bus = time.monotonic()
        self._stopped = asyncio.Event()
        self.stop_reason = ""

    # -- sending ------------------------------------------------------------------------
    def send(self, env: dict[str, Any]) -> None:
        """Send an envelope now; never blocks (the bus queues for absent receivers). With
        no way to the bus at all (it refused this peer's proof, so libzmq dropped the
        connection) the envelope is dropped and counted: a call then times out, and the
        silence ends ``run()`` after ``bus_timeout``."""
        try:
            self._sock.send(protocol.encode(env), zmq.NOBLOCK)
        except zmq.Again:
            self.unsent += 1
            return
        # ZeroMQ's FD is edge-triggered and a send may take the edge a message that
        # arrived meanwhile would have raised: look, so the receiver is not left asleep.
        if self._sock.get(zmq.EVENTS) & zmq.POLLIN:
            self._readable.set()

    def envelope(self, kind: str, topic: str, method: str, **kw: Any) -> dict[str, Any]:
        return protocol.envelope(kind, self.identity, topic, method, **kw)

    async def call(self, env: dict[str, Any], timeout: float | None = None) -> Any:
        """Send a call and wait for its reply. Raises MessagingTimeout or RemoteError."""
        timeout = self.config.call_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending[env["msg_id"]] = future
        # A timer, not asyncio.wait_for: no extra task per call, and a cancel always
        # cancels (3.11's wait_for can swallow one when the reply lands in the same
        # loop round, leaving a task that ``run()`` waits for forever).
        expiry = loop.call_later(timeout, _expire, future)
        try:
            self.send(env)
            reply = await future
        except _Expired:
            self.send(protocol.control(self.identity, protocol.EXPIRED, call=env))
            raise protocol.MessagingTimeout(
                f"no reply to {env['topic']}.{env['method']} within {timeout}s") from None
        finally:
            expiry.cancel()
            self._pending.pop(env["msg_id"], None)
        return result_of(reply)

    # -- receiving ----------------------------------------------------------------------
    async def run(self) -> str:
        """Serve until ``stop()``, the bus is lost, or the parent dies; returns why."""
        self.send(protocol.control(self.identity, protocol.REGISTER))
        receiver = asyncio.create_task(self._receive())
        watchdog = asyncio.create_task(self._watchdog())
        await self._stopped.wait()
        tasks = {receiver, watchdog, *self._tasks}
        while tasks:   # a task that swallowed its cancel is cancelled again
            for task in tasks:
                task.cancel()
            _, tasks = await asyncio.wait(tasks, timeout=0.1)
        try:
            self.send(protocol.control(self.identity, protocol.UNREGISTER))
        except zmq.ZMQError:
            pass
        self._sock.close(0)
        if self._own_ctx:
            self._ctx.term()
        return self.stop_reason

    def stop(self, reason: str = "stopped") -> None:
        if not self._stopped.is_set():
            self.stop_reason = reason
            self._stopped.set()

    async def _receive(self) -> None:
        """Drain what is ready, a batch per event-loop round (one wake-up per burst, not
        per message); when nothing is, sleep until the socket's FD or a send says so."""
        fd = self._sock.get(zmq.FD)
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, self._readable.set)
        try:
            while True:
                batch = []
                for _ in range(DRAIN_BATCH):
                    try:
                        batch.append(self._sock.recv(zmq.NOBLOCK))
                    except zmq.Again:
                        break
                if not batch:
                    self._readable.clear()
                    if not self._sock.get(zmq.EVENTS) & zmq.POLLIN:  # re-arms the edge
                        await self._readable.wait()
                    continue
                self._last_bus = time.monotonic()
                for data in batch:
                    self._process(data)
                await asyncio.sleep(0)     # let the tasks these messages woke run
        finally:
            loop.remove_reader(fd)

    def _process(self, data: bytes) -> None:
        try:
            env = protocol.decode(data, REPLY_MAX_BYTES)
        except protocol.ProtocolError as exc:
            log.warning("dropped a bad frame from the bus: %s", exc)
            return
        kind = env["kind"]
        if kind == "reply":
            future = self._pending.get(env["reply_to"])
            if future is None or future.done():
                self.orphan_replies += 1
                log.info("reply to %s arrived after its caller gave up", env["reply_to"])
            else:
                future.set_result(env)
        elif kind != "control" and self.handler is not None:
            pending = self.handler(env)
            if pending is not None:  # the handler needs the loop: give it a task
                self.spawn(pending)

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        """Run ``coro`` as a task that ``stop()`` cancels (handlers, periodic jobs)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _watchdog(self) -> None:
        beat = self.config.heartbeat_interval
        last_tick = time.monotonic()
        while True:
            await asyncio.sleep(beat)
            now = time.monotonic()
            if now - last_tick > FROZEN_AFTER * beat:
                # we were frozen (SIGSTOP, a debugger): the silence is ours, not the
                # bus's; give it a full bus_timeout from now to be heard again
                log.warning("resumed after %.1fs frozen", now - last_tick)
                self._last_bus = now
            last_tick = now
            self.send(protocol.control(self.identity, protocol.HEARTBEAT))
            silent = now - self._last_bus
            if silent > self.config.bus_timeout:
                log.error("no word from the bus for %.1fs: exiting", silent)
                self.stop("bus lost")
            if self._parent is not None and os.getppid() != self._parent:
                log.error("parent process %d is gone: exiting", self._parent)
                self.stop("parent gone")


class _Expired(Exception):
    """A call's timer ran out (internal: ``call`` turns it into MessagingTimeout)."""


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(_Expired())


def result_of(reply: dict[str, Any]) -> Any:
    """The value a reply carries, or its remote error raised as RemoteError."""
    args = reply["args"]
    error = args.get("error")
    if error is not None:
        raise protocol.RemoteError(str(error.get("type", "Exception")),
                                   str(error.get("message", "")))
    return args.get("result")
