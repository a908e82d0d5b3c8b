"""The message bus and the RPC layer every service uses (oslo.messaging's ideas, on ZeroMQ).

``protocol`` is the spec; ``bus`` the broker (``bus_control`` its control verbs,
``tracelog`` its trace events, ``routing`` who is up, ``faults`` the fault table it
applies); ``transport``/``client``/``server`` the asyncio side a service uses;
``blocking`` the synchronous side the lab and tests use; ``tap`` the trace subscriber;
``fake`` an in-memory transport for unit tests; ``auth`` (the lab's secret) and
``curve``/``door``/``door_state`` (a class's students' keys and the process facing
them) who may speak."""
from __future__ import annotations

from .protocol import MessagingTimeout, ProtocolError, RemoteError

__all__ = ["MessagingTimeout", "ProtocolError", "RemoteError"]
