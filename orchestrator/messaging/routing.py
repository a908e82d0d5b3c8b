"""Who is on the bus and where a message goes: the bus's routing table.

Servers register as ``topic.server`` and stay *alive* while they heartbeat. A message for
``topic.server`` goes to that server; one for a bare ``topic`` round-robins over the
topic's live servers. A message whose receiver is absent waits in a bounded queue keyed by
the receiver (or by the bare topic), RabbitMQ-style, until a receiver comes back.
Pure bookkeeping: no sockets, no clocks of its own (callers pass ``now``).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

from .protocol import split_identity

__all__ = ["Peer", "RoutingTable"]


@dataclass
class Peer:
    identity: str
    topic: str
    server: str
    last_seen: float
    alive: bool = True
    registered_at: float = 0.0


class RoutingTable:
    def __init__(self, dead_after: float, queue_limit: int):
        self.dead_after = dead_after
        self.queue_limit = queue_limit
        self.peers: dict[str, Peer] = {}
        self._rr: dict[str, int] = {}
        self._queues: dict[str, deque[tuple[float, Any]]] = {}
        # live servers by topic, worked out again only when a peer comes or goes (every
        # message to a bare topic asks; a cloud of 1,000 hosts has 1,000 peers)
        self._live: dict[str, list[str]] = {}

    # -- liveness ---------------------------------------------------------------------
    def seen(self, identity: str, now: float) -> bool:
        """Record a sign of life. True when the peer is new or comes back from the dead."""
        peer = self.peers.get(identity)
        if peer is None:
            topic, server = split_identity(identity)
            self.peers[identity] = Peer(identity, topic, server, now, True, now)
            self._live.clear()
            return True
        peer.last_seen = now
        if not peer.alive:
            peer.alive = True
            self._live.clear()
            return True
        return False

    def register(self, identity: str, now: float) -> None:
        """A server (re)connected and announced itself: alive, whatever we thought."""
        self.seen(identity, now)
        self.peers[identity].registered_at = now

    def mark_down(self, identity: str) -> bool:
        """The connection is gone (a send found no route). True if it was alive."""
        peer = self.peers.get(identity)
        if peer is None or not peer.alive:
            return False
        peer.alive = False
        self._live.clear()
        return True

    def remove(self, identity: str) -> None:
        self.peers.pop(identity, None)
        self._live.clear()

    def expire(self, now: float) -> list[str]:
        """Mark peers silent for ``dead_after`` as down; return the newly dead."""
        dead = []
        for peer in self.peers.values():
            if peer.alive and now - peer.last_seen > self.dead_after:
                peer.alive = False
                dead.append(peer.identity)
        if dead:
            self._live.clear()
        return dead

    def is_alive(self, identity: str) -> bool:
        peer = self.peers.get(identity)
        return peer is not None and peer.alive

    def live(self, topic: str) -> list[str]:
        """Live servers of ``topic``, sorted by name (a stable round-robin order)."""
        live = self._live.get(topic)
        if live is None:
            live = self._live[topic] = sorted(p.identity for p in self.peers.values()
                                              if p.alive and p.topic == topic)
        return list(live)

    def pick(self, topic: str) -> str | None:
        """The next live server of ``topic`` in round-robin order, or None."""
        live = self.live(topic)
        if not live:
            return None
        i = self._rr.get(topic, 0)
        self._rr[topic] = i + 1
        return live[i % len(live)]

    # -- queues for absent receivers ----------------------------------------------------
    def enqueue(self, key: str, item: Any, now: float) -> bool:
        """Queue ``item`` for ``key`` (an identity or a bare topic). False if full."""
        queue = self._queues.setdefault(key, deque())
        if len(queue) >= self.queue_limit:
            return False
        queue.append((now, item))
        return True

    def take(self, key: str) -> list[Any]:
        """Remove and return everything queued for ``key``, oldest first."""
        queue = self._queues.pop(key, None)
        return [item for _, item in queue] if queue else []

    def expire_queued(self, now: float, ttl: float) -> Iterator[tuple[str, Any]]:
        """Remove and yield (key, item) for items queued longer than ``ttl``."""
        for key, queue in list(self._queues.items()):
            while queue and now - queue[0][0] > ttl:
                yield key, queue.popleft()[1]
            if not queue:
                del self._queues[key]

    def queued(self) -> dict[str, int]:
        return {key: len(q) for key, q in self._queues.items() if q}

    def describe(self) -> list[dict[str, Any]]:
        return [{"identity": p.identity, "topic": p.topic, "server": p.server,
                 "alive": p.alive, "last_seen": p.last_seen,
                 "registered_at": p.registered_at}
                for p in sorted(self.peers.values(), key=lambda p: p.identity)]
