"""The RPC client: the only way a service casts or calls (oslo.messaging's RPCClient).

- ``cast(ctx, method, **kwargs)``: fire and forget. Returns once the message is handed
  to the bus; if the receiver is not connected, the bus queues it until it comes back.
- ``await call(ctx, method, **kwargs)``: send and wait for the reply. Returns the remote
  method's return value; raises ``MessagingTimeout`` after ``timeout`` seconds, or
  ``RemoteError(type, message)`` if the remote method raised.
- ``fanout(ctx, method, **kwargs)``: a cast to every live server of the topic.

``prepare(server=..., timeout=...)`` returns a copy aimed at one server (``compute.host2``)
or with another timeout. ``ctx`` is a dict: ``request_id``, ``instance_uuid``, ``attempt``.
"""
from __future__ import annotations

from typing import Any

from .transport import Transport

__all__ = ["RPCClient"]


class RPCClient:
    def __init__(self, transport: Transport, topic: str, *, server: str = "",
                 timeout: float | None = None):
        self.transport = transport
        self.topic = topic
        self.server = server
        self.timeout = timeout

    def prepare(self, *, server: str | None = None,
                timeout: float | None = None) -> RPCClient:
        return RPCClient(self.transport, self.topic,
                         server=self.server if server is None else server,
                         timeout=self.timeout if timeout is None else timeout)

    def cast(self, ctx: dict[str, Any] | None, method: str, **kwargs: Any) -> None:
        self.transport.send(self._envelope("cast", ctx, method, kwargs))

    async def call(self, ctx: dict[str, Any] | None, method: str, **kwargs: Any) -> Any:
        env = self._envelope("call", ctx, method, kwargs)
        return await self.transport.call(env, self.timeout)

    def fanout(self, ctx: dict[str, Any] | None, method: str, **kwargs: Any) -> None:
        self.transport.send(self._envelope("fanout", ctx, method, kwargs, server=""))

    def _envelope(self, kind: str, ctx: dict[str, Any] | None, method: str,
                  args: dict[str, Any], server: str | None = None) -> dict[str, Any]:
        return self.transport.envelope(kind, self.topic, method, args=args, ctx=ctx,
                                       server=self.server if server is None else server)
