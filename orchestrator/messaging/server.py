"""The RPC server: turns incoming casts and calls into method calls on a service's
*endpoints* (its manager objects), like oslo.messaging's dispatcher.

A request for ``method`` runs ``endpoint.method(ctx, **args)`` on the first endpoint that
has a public method of that name (plain or ``async``), each request in its own task. A
call's return value goes back in a reply; an exception goes back as ``{type, message}``
and the caller raises ``RemoteError``. A failing cast is logged: nobody waits for it.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Awaitable

from . import protocol
from .transport import Transport

__all__ = ["RPCServer", "NoSuchMethod"]

log = logging.getLogger("orchestrator.server")


class NoSuchMethod(AttributeError):
    """The target has no public method of that name."""


class RPCServer:
    def __init__(self, transport: Transport, endpoints: list[object]):
        self.transport = transport
        self.endpoints = list(endpoints)
        self._methods: dict[str, Any] = {}
        transport.handler = self.dispatch

    def find(self, method: str) -> Any:
        fn = self._methods.get(method)
        if fn is not None:
            return fn
        if not method or method.startswith("_"):
            raise NoSuchMethod(f"{method!r} is not a public method")
        for endpoint in self.endpoints:
            fn = getattr(endpoint, method, None)
            if callable(fn):
                self._methods[method] = fn
                return fn
        raise NoSuchMethod(f"{self.transport.identity} has no method {method!r}")

    def dispatch(self, env: dict[str, Any]) -> Awaitable[None] | None:
        """Run a plain method right away; return a coroutine for an ``async`` one."""
        try:
            result = self.find(env["method"])(env["ctx"], **env["args"])
        except Exception as exc:
            return self._failed(env, exc)
        if inspect.isawaitable(result):
            return self._finish(env, result)
        if env["kind"] == "call":
            self._reply(env, result=result)
        return None

    async def _finish(self, env: dict[str, Any], pending: Awaitable[Any]) -> None:
        try:
            result = await pending
        except Exception as exc:
            return self._failed(env, exc)
        if env["kind"] == "call":
            self._reply(env, result=result)

    def _failed(self, env: dict[str, Any], exc: Exception) -> None:
        """A remote error is data for the caller, not a crash; a failed cast is logged."""
        if env["kind"] == "call":
            self._reply(env, error=exc)
        else:
            log.error("%s %s failed: %s: %s", env["kind"], env["method"],
                      type(exc).__name__, exc, exc_info=not isinstance(exc, NoSuchMethod))

    def _reply(self, env: dict[str, Any], **kw: Any) -> None:
        try:
            reply = protocol.reply_to(env, self.transport.identity, **kw)
            self.transport.send(reply)
        except protocol.ProtocolError as exc:  # an unencodable result
            self.transport.send(protocol.reply_to(env, self.transport.identity, error=exc))
