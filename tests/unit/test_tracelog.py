"""Unit tests for orchestrator.messaging.tracelog: the bus's trace events in memory, in
trace.jsonl and on the tap; a restarted bus going on from the last complete event."""
from __future__ import annotations

import json

import pytest
import zmq

from orchestrator.messaging import protocol
from orchestrator.messaging.tracelog import HISTORY_PAGE, TraceLog, last_seq


def cast(n: int) -> dict:
    return protocol.envelope("cast", "lab.test", "compute", f"m{n}", server="c1")


@pytest.fixture
def tap():
    """A PUB socket and a SUB on it, over inproc."""
    ctx = zmq.Context()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    pub.bind("inproc://tap")
    sub.connect("inproc://tap")
    sub.subscribe(b"")
    yield pub, sub
    pub.close(0)
    sub.close(0)
    ctx.term()


def test_record_keeps_events_until_publish_writes_then_sends_them_in_one_frame(tmp_path, tap):
    pub, sub = tap
    log = TraceLog(history_size=100)
    log.open(tmp_path / "trace.jsonl")
    for n in range(3):
        log.record(cast(n), "routed", "compute.c1", 10)
    assert (tmp_path / "trace.jsonl").read_text() == ""          # nothing written yet
    for _ in range(100):                                        # the SUB joins late
        log.publish(pub)
        if sub.poll(10):
            break
        log.record(cast(99), "routed", "compute.c1", 10)
    events = protocol.decode_batch(sub.recv())
    seqs = [e["seq"] for e in events]                          # one turn's events
    assert seqs == list(range(seqs[0], log.seq + 1)) and len(seqs) >= 1
    lines = (tmp_path / "trace.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [e["seq"] for e in log.history]
    log.close()


def test_a_restart_goes_on_from_the_last_complete_event_and_ends_a_half_line(tmp_path, tap):
    pub, _ = tap
    path = tmp_path / "trace.jsonl"
    first = TraceLog(10)
    first.open(path)
    first.record(cast(1), "routed", "compute.c1", 10)
    first.record(cast(2), "routed", "compute.c1", 10)
    first.publish(pub)
    first.close()
    with open(path, "a") as f:
        f.write('{"seq": 3, "kind": "ca')                      # a bus killed mid-line
    assert last_seq(path) == 2
    again = TraceLog(10)
    again.open(path)
    again.record(cast(3), "routed", "compute.c1", 10)
    again.publish(pub)
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["seq"] == 3 and lines[-2].endswith('"ca')
    again.close()


def test_no_file_means_seq_zero(tmp_path):
    assert last_seq(tmp_path / "none.jsonl") == 0


def test_a_page_is_bounded_and_says_what_is_still_held():
    log = TraceLog(history_size=5)
    assert log.page() == {"events": [], "last_seq": 0, "oldest_seq": 1}
    for n in range(8):
        log.record(cast(n), "routed", "compute.c1", 10)
    page = log.page(since=0, limit=2)
    assert [e["seq"] for e in page["events"]] == [4, 5]
    assert (page["last_seq"], page["oldest_seq"]) == (8, 4)
    assert len(log.page(limit=10 * HISTORY_PAGE)["events"]) == 5
    assert log.page(limit=-1)["events"] == []
