"""An in-memory transport: a test double shipped with the code, as oslo.messaging ships
its fake driver (and ``lab.testing`` ships ``FakeLab``). A manager built on it runs as it
would on the bus, without one: what it sends is recorded (encoded and decoded first, so a
value the real transport would refuse is refused here too), and the calls it makes are
answered from a table the test fills.

    transport = FakeTransport("compute", "compute1")
    transport.answer("conductor", "instance_update", {"uuid": "..."})
    manager = ComputeManager(transport, run_dir, "compute1")
    RPCServer(transport, manager.rpc_endpoints)
    await transport.deliver(transport.cast_to_me("build_and_run_instance", ...))
    assert transport.sent_methods() == [...]

Used by the managers' unit tests (tests/unit/test_*_manager.py).
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from ..config import BusConfig
from . import protocol

__all__ = ["FakeTransport", "Unanswered"]

Answer = Any   # a value, an exception to raise, or a callable(env) returning either


class Unanswered(AssertionError):
    """The code under test called something the test did not answer."""


class FakeTransport:
    def __init__(self, topic: str, server: str, config: BusConfig | None = None):
        self.topic, self.server = topic, server
        self.identity = protocol.identity(topic, server)
        self.config = config or BusConfig()
        self.handler: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None
        self.sent: list[dict[str, Any]] = []
        self.orphan_replies = 0
        self.unsent = 0
        self._answers: dict[tuple[str, str], Answer] = {}
        self._tasks: set[asyncio.Task] = set()
        self.stop_reason = ""

    # -- what the test sets up and reads ----------------------------------------------------
    def answer(self, topic: str, method: str, value: Answer) -> None:
        """Answer calls of ``topic.method`` with ``value`` (raised if an exception;
        called with the envelope if callable)."""
        self._answers[topic, method] = value

    def sent_methods(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        """``(kind, target, method)`` of everything sent, target ``topic.server`` or the
        bare topic; only ``kind`` if given."""
        return [(e["kind"], protocol.identity(e["topic"], e["server"]) if e["server"]
                 else e["topic"], e["method"]) for e in self.sent
                if kind is None or e["kind"] == kind]

    def cast_to_me(self, method: str, ctx: dict[str, Any] | None = None,
                   **args: Any) -> dict[str, Any]:
        """An envelope as the bus would deliver it to this service."""
        return protocol.envelope("cast", "test.test", self.topic, method,
                                 server=self.server, args=args, ctx=ctx)

    async def deliver(self, env: dict[str, Any]) -> None:
        """Hand ``env`` to the server's dispatcher (as the real transport does), and
        wait for what it started, and what that started, to finish."""
        env = protocol.decode(protocol.encode(env))
        assert self.handler is not None, "no RPCServer on this transport"
        pending = self.handler(env)
        if pending is not None:
            self.spawn(pending)
        await self.settle()

    async def settle(self) -> None:
        """Until every task spawned here (handlers, their follow-ups) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- Transport's surface ----------------------------------------------------------------
    def envelope(self, kind: str, topic: str, method: str, **kw: Any) -> dict[str, Any]:
        return protocol.envelope(kind, self.identity, topic, method, **kw)

    def send(self, env: dict[str, Any]) -> None:
        self.sent.append(protocol.decode(protocol.encode(env)))

    async def call(self, env: dict[str, Any], timeout: float | None = None) -> Any:
        self.send(env)
        key = (env["topic"], env["method"])
        if key not in self._answers:
            raise Unanswered(f"{self.identity} called {env['topic']}.{env['method']} "
                             f"and the test gave no answer (transport.answer(...))")
        value = self._answers[key]
        if callable(value) and not isinstance(value, type):
            value = value(env)
        if isinstance(value, BaseException):
            raise value
        # through the wire format, as a real reply would come
        return protocol.decode(protocol.encode(protocol.reply_to(
            env, "test.test", result=value)))["args"]["result"]

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def stop(self, reason: str = "stopped") -> None:
        self.stop_reason = reason
        for task in list(self._tasks):
            task.cancel()
