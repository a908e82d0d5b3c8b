"""The message bus and the RPC layer every service uses (oslo.messaging's ideas, on ZeroMQ).

``protocol`` is the spec; ``bus`` the broker; ``transport``/``client``/``server`` the
asyncio side a service uses; ``blocking`` the synchronous side the lab and tests use;
``tap`` the trace subscriber; ``faults`` the fault table the bus applies."""
from __future__ import annotations

from .protocol import MessagingTimeout, ProtocolError, RemoteError

__all__ = ["MessagingTimeout", "ProtocolError", "RemoteError"]
