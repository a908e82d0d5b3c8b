"""The trace tap's subscriber: every trace event of a bus, history first, then live, with
no gap and no duplicate.

A PUB/SUB subscriber misses what was published before its subscription reached the bus
(zguide's "slow joiner"), so ``TraceTap`` subscribes first, then pages the bus's history
(``control history``) and from then on takes live events, filling any gap in ``seq``
from the history again; and whenever the stream has been quiet for ``CATCH_UP_AFTER``
it asks the bus for its latest ``seq``, so an event missed at the very end of a burst is
fetched too, within a fraction of a second. Events are kept in order in ``events``; ``wait_for(predicate)`` blocks
until one matches, so tests wait for events instead of sleeping. The tap runs on its own
thread and never prints.

Give it the lab's ``secret``: an authenticating bus admits the SUB and the control client
only with it (PLAIN); without it a tap gets nothing from such a bus and ``start()`` fails.
Without a secret it connects as before authentication, for a bare bus in unit tests.
"""
from __future__ import annotations

import bisect
import logging
import threading
import time
from typing import Any, Callable

import zmq

from . import auth, protocol
from .blocking import BlockingClient
from .protocol import MessagingTimeout

__all__ = ["TraceTap"]

log = logging.getLogger("orchestrator.tap")
CATCH_UP_AFTER = 0.2   # seconds without live events before checking for missed ones
Event = dict[str, Any]


def _seq(event: Event) -> int:
    return event["seq"]


class TraceTap:
    def __init__(self, bus_endpoint: str, trace_endpoint: str, *, history: bool = True,
                 max_events: int = 1_000_000, secret: str | None = None):
        self.bus_endpoint = bus_endpoint
        self._secret = secret
        self.trace_endpoint = trace_endpoint
        self.history = history
        self.max_events = max_events
        self.events: list[Event] = []
        self.last_seq = 0
        self.error: str = ""
        self.bad_batches = 0      # trace frames that were not a valid batch (dropped)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trace-tap", daemon=True)
        self._listeners: list[Callable[[Event], None]] = []

    def start(self, timeout: float = 10.0) -> TraceTap:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"trace tap not ready after {timeout}s: {self.error}")
        if self.error:
            raise RuntimeError(f"trace tap failed to start: {self.error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` on the tap thread for each new event (keep it short)."""
        self._listeners.append(listener)

    def snapshot(self, since: int = 0) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e["seq"] > since] if since else list(self.events)

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 10.0,
                 since: int = 0) -> Event:
        """The first event after ``since`` matching ``predicate``; TimeoutError if none."""
        deadline = time.monotonic() + timeout
        checked = since          # a seq, not a list position: the list is trimmed
        with self._cond:
            while True:
                start = bisect.bisect_right(self.events, checked, key=_seq)
                for event in self.events[start:]:
                    if predicate(event):
                        return event
                if self.events:
                    checked = max(checked, self.events[-1]["seq"])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching trace event within {timeout}s")
                self._cond.wait(left)

    def wait_seq(self, seq: int, timeout: float = 10.0) -> None:
        """Block until every event up to ``seq`` has arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.last_seq < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"trace seq {seq} not reached in {timeout}s")
                self._cond.wait(left)

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 1_000_000)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        auth.plain_client(sub, "lab.tap", self._secret, routing_id=False)
        sub.connect(self.trace_endpoint)
        client = BlockingClient(self.bus_endpoint, timeout=5.0, secret=self._secret)
        try:
            if self.history:
                self._fill(client)
            else:
                self.last_seq = client.control("stats")["seq"]
            self._ready.set()
            idle_since = time.monotonic()
            while not self._stop.is_set():
                if not sub.poll(50):
                    # Quiet: make sure nothing was missed (a subscription still joining,
                    # a frame dropped at the high-water mark) by asking the bus's seq.
                    if self.history and time.monotonic() - idle_since > CATCH_UP_AFTER:
                        idle_since = time.monotonic()
                        self._catch_up(client, check=True)
                    continue
                idle_since = time.monotonic()
                while True:
                    try:
                        events = protocol.decode_batch(sub.recv(zmq.NOBLOCK))
                    except zmq.Again:
                        break
                    except protocol.ProtocolError as exc:   # catch-up fills the gap
                        self.bad_batches += 1
                        log.warning("dropped a bad trace batch: %s", exc)
                        continue
                    if events and events[0]["seq"] > self.last_seq + 1 and self.history:
                        self._catch_up(client)
                    self._add(events)
        except Exception as exc:  # keep the error for the lab to show; never print
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("trace tap stopped")
        finally:
            self._ready.set()
            client.close()
            sub.close(0)
            ctx.term()

    def _catch_up(self, client: BlockingClient, check: bool = False) -> None:
        """Fill a gap from the bus's history; a bus paused or restarting does not answer
        in time, and that is no reason to stop listening: the next quiet spell or gap
        asks again (a tap that died here left the lab's trace frozen)."""
        try:
            if not check or client.control("stats")["seq"] > self.last_seq:
                self._fill(client)
        except MessagingTimeout as exc:
            log.info("trace catch-up deferred: %s", exc)

    def _fill(self, client: BlockingClient) -> None:
        """Page history from the bus until we are level with it."""
        while True:
            page = client.control("history", since=self.last_seq)
            self._add(page["events"])
            if not page["events"] or self.last_seq >= page["last_seq"]:
                return

    def _add(self, events: list[Event]) -> None:
        fresh = [e for e in events if e["seq"] > self.last_seq]
        if not fresh:
            return
        with self._cond:
            self.events.extend(fresh)
            if len(self.events) > self.max_events:
                del self.events[: len(self.events) - self.max_events]
            self.last_seq = fresh[-1]["seq"]
            self._cond.notify_all()
        for event in fresh:
            for listener in self._listeners:
                listener(event)
