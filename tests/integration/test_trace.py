"""The trace: history for a late subscriber, then live events, gap-free; trace.jsonl holds
the same events in the schema of protocol.TRACE_FIELDS."""
from __future__ import annotations

import json
import select
import socket
import threading

import pytest

from orchestrator.messaging import protocol
from orchestrator.messaging.tracelog import TRACE_FILE
from orchestrator.messaging.tap import TraceTap

TYPES = {"seq": int, "ts": float, "sent": float, "attempt": int, "bytes": int}   # the rest are str


def _check_schema(event: dict) -> None:
    assert tuple(event) == protocol.TRACE_FIELDS
    for field in protocol.TRACE_FIELDS:
        assert type(event[field]) is TYPES.get(field, str), (field, event)
    assert event["phase"] in protocol.PHASES


def _calls(client, first: int, n: int) -> None:
    for i in range(first, first + n):
        ctx = {"request_id": f"req-{i}", "instance_uuid": f"uuid-{i}", "attempt": i % 3}
        assert client.call("echo", "echo", server="e1", ctx=ctx, i=i)["args"] == {"i": i}


@pytest.mark.timeout(40)
def test_late_subscriber_gets_history_then_live_without_gaps(cluster, primer, wait_until):
    cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    # A request id that needs escaping in JSON.
    odd = {"request_id": 'req "quoted"\n\\ \u2603', "attempt": 9}
    client.call("echo", "echo", server="e1", ctx=odd)
    _calls(client, 1, 49)

    tap = cluster.tap()
    try:
        # History: everything so far, from seq 1, before any live event.
        history = tap.snapshot()
        assert [e["seq"] for e in history] == list(range(1, 101))
        primer(tap, cluster)    # make sure the live subscription is up (see conftest)
        _calls(client, 50, 20)
        last = client.control("stats")["seq"]
        tap.wait_seq(last)
        events = tap.snapshot()
    finally:
        tap.stop()

    assert [e["seq"] for e in events] == list(range(1, last + 1))   # no gap, no duplicate
    assert events[:100] == history
    for event in events:
        _check_schema(event)
    assert {e["request_id"] for e in events} >= {odd["request_id"]}
    assert "control" not in {e["kind"] for e in events}   # heartbeats etc. are not traced

    # Every call is routed once and answered once: the reply's reply_to is the call's
    # msg_id, and it carries the call's context.
    calls = [e for e in events if e["kind"] == "call"]
    replies = {e["reply_to"]: e for e in events if e["kind"] == "reply"}
    assert len(calls) == 70 and len(replies) == 70
    assert len({e["msg_id"] for e in calls}) == 70
    for call in calls:
        assert (call["phase"], call["src"], call["dst"], call["reply_to"]) == \
            ("routed", client.identity, "echo.e1", "")
        reply = replies[call["msg_id"]]
        assert (reply["phase"], reply["src"], reply["dst"]) == ("routed", "echo.e1", client.identity)
        assert reply["msg_id"] != call["msg_id"] and reply["seq"] > call["seq"]
        for field in ("request_id", "instance_uuid", "attempt", "method"):
            assert reply[field] == call[field]
    assert [c["request_id"] for c in calls[1:]] == [f"req-{i}" for i in range(1, 70)]
    assert calls[0]["attempt"] == 9

    # trace.jsonl: the same events, one JSON object per line (flushed every 0.2 s).
    path = cluster.run_dir / TRACE_FILE

    def lines():
        text = path.read_text(encoding="utf-8")
        return text.splitlines() if text.count("\n") >= last else None
    raw_lines = wait_until(lines, 10, f"{last} lines in {TRACE_FILE}")
    from_file = [json.loads(line) for line in raw_lines]
    for event in from_file:
        _check_schema(event)
    assert from_file == events


@pytest.mark.timeout(30)
def test_history_longer_than_one_page(cluster):
    client = cluster.client()
    n = 6000   # > HISTORY_PAGE (5000): the late tap must page
    for i in range(n):
        client.cast("echo", "record", server=f"absent{i % 10}", i=i)   # 600 queued each
    last = client.control("stats")["seq"]
    assert last == n
    tap = cluster.tap()
    try:
        events = tap.snapshot()
    finally:
        tap.stop()
    assert [e["seq"] for e in events] == list(range(1, n + 1))
    assert {(e["phase"], e["kind"]) for e in events} == {("queued", "cast")}


class DelayedRelay:
    """A TCP relay that keeps a new connection waiting ``delay`` seconds before it connects
    it upstream (the bus's PUB socket, ``ipc://`` or ``tcp://``): a slow link between a
    subscriber and the bus."""

    def __init__(self, upstream: str, delay: float):
        self.upstream = upstream
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        socks: list[socket.socket] = []
        try:
            while not self._stop.is_set():
                try:
                    down, _ = self.listener.accept()
                    break
                except socket.timeout:
                    continue
            else:
                return
            socks.append(down)
            if self._stop.wait(self.delay):
                return
            up = _connect(self.upstream)
            socks.append(up)
            peer = {down: up, up: down}
            while not self._stop.is_set():
                ready, _, _ = select.select(socks, [], [], 0.1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in socks:
                sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


def _connect(endpoint: str) -> socket.socket:
    if endpoint.startswith("ipc://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(endpoint.removeprefix("ipc://"))
        return sock
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


@pytest.mark.timeout(30)
def test_tap_sees_an_event_published_just_after_it_started(cluster):
    # Slow joiner: the subscription reaches the bus only 1 s after the tap is ready, so
    # the one event below is lost on PUB and no later event reveals the gap. The tap must
    # still fetch it (it catches up from the bus when the stream is quiet).
    relay = DelayedRelay(cluster.endpoints["trace"], delay=1.0)
    try:
        tap = TraceTap(cluster.endpoints["bus"], relay.endpoint, secret=cluster.secret).start()
        try:
            # One event, then a quiet bus.
            mid = cluster.client().fanout("nobody", "ping")
            event = tap.wait_for(lambda e: e["msg_id"] == mid, timeout=4)
            assert event["phase"] == "dropped"
        finally:
            tap.stop()
    finally:
        relay.close()
