"""Unit tests for orchestrator.messaging.bus.Bus, in-process: frames are fed straight to
process_frame / process_control / process_message; no other process runs."""
from __future__ import annotations

import json
import time

import msgpack
import pytest
import zmq

from orchestrator import rundir
from orchestrator.config import BusConfig
from orchestrator.messaging import protocol
from orchestrator.messaging.bus import Bus
from orchestrator.messaging.protocol import BUS_IDENTITY
from orchestrator.messaging.tracelog import TRACE_FILE

FAST = dict(heartbeat_interval=0.1, dead_after=0.6)


@pytest.fixture
def make_bus(tmp_path):
    buses: list[Bus] = []

    def make(name: str = "lab", **options) -> Bus:
        run_dir = tmp_path / name
        run_dir.mkdir(exist_ok=True)
        bus = Bus(run_dir, BusConfig(**{**FAST, **options}), watch_parent=False)
        buses.append(bus)
        bus.start()
        return bus

    yield make
    for bus in buses:
        if not bus.router.closed:
            bus._close()


@pytest.fixture
def bus(make_bus) -> Bus:
    return make_bus()


def _frame(env: dict, ident: str | None = None) -> list[bytes]:
    return [(ident or env["src"]).encode(), protocol.encode(env)]


def _cast(method="build", *, src="conductor.k0", topic="compute", server="", kind="cast",
          **ctx):
    return protocol.envelope(kind, src, topic, method, server=server,
                             ctx={"request_id": "req-1", **ctx})


def _send(bus: Bus, env: dict) -> bytes:
    data = protocol.encode(env)
    bus.process_message(env, data)
    return data


def _events(bus: Bus, **match):
    return [e for e in bus.history if all(e[k] == v for k, v in match.items())]


# -- start / close -------------------------------------------------------------------------

def test_start_publishes_endpoints(bus):
    data = rundir.read(bus.run_dir)
    assert data["endpoints"]["bus"].startswith("tcp://127.0.0.1:")
    assert data["endpoints"]["trace"].startswith("tcp://127.0.0.1:")
    assert data["endpoints"]["bus"] != data["endpoints"]["trace"]
    assert data["bus"]["pid"] > 0


def test_close_flushes_the_trace_and_a_restart_continues_the_seq(make_bus):
    bus = make_bus()
    for _ in range(3):
        _send(bus, _cast())
    bus._close()
    assert bus.router.closed and bus.pub.closed and bus.tracelog.file.closed
    lines = (bus.run_dir / TRACE_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == list(bus.history)
    again = make_bus()  # same run dir: same endpoints, seq goes on
    assert again.tracelog.seq == 3
    _send(again, _cast())
    assert again.history[-1]["seq"] == 4


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("frames", [[], [b"compute.c1"], [b"a", b"b", b"c"]])
def test_wrong_frame_count_is_counted(bus, frames):
    bus.process_frame(frames)
    assert bus.stats["received"] == 1
    assert bus.stats["bad_frames"] == 1
    assert bus.stats["bad.bad_frames"] == 1
    assert not bus.history and not bus.routes.peers


def test_garbage_is_counted_as_not_msgpack(bus):
    bus.process_frame([b"compute.c1", b"\xc1 garbage"])
    bus.process_frame([b"compute.c1", b""])
    assert bus.stats["bad_frames"] == 2
    assert bus.stats["bad.not_msgpack"] == 2


@pytest.mark.parametrize("mutate,reason", [
    (lambda e: e.update(v=2), "bad_version"),
    (lambda e: e.update(kind="shout"), "unknown_kind"),
    (lambda e: e.update(args=[1]), "bad_envelope"),
    (lambda e: e.pop("ctx"), "bad_envelope"),
])
def test_invalid_envelopes_are_counted_by_reason(bus, mutate, reason):
    env = _cast(src="compute.c1")
    mutate(env)
    bus.process_frame([b"compute.c1", msgpack.packb(env)])
    assert bus.stats["bad_frames"] == 1
    assert bus.stats[f"bad.{reason}"] == 1
    assert not bus.history


def test_oversized_frames_are_counted(make_bus):
    bus = make_bus(max_message_bytes=300)
    env = _cast(src="compute.c1")
    env["args"] = {"blob": "x" * 400}
    bus.process_frame(_frame(env))
    assert bus.stats["bad.oversized"] == 1


def test_spoofed_src_is_rejected_and_does_not_register(bus):
    env = protocol.envelope("control", "compute.evil", "bus", "register")
    bus.process_frame(_frame(env, ident="compute.c1"))
    assert bus.stats["bad_frames"] == 1
    assert bus.stats["bad.bad_envelope"] == 1
    assert bus.routes.peers == {}


def test_many_bad_frames_do_not_stop_the_bus(bus):
    for i in range(250):
        bus.process_frame([b"x", bytes([0xc1, i % 256])])
    bus.process_frame(_frame(protocol.envelope("control", "compute.c1", "bus", "register")))
    assert bus.stats["bad_frames"] == 250
    assert bus.routes.is_alive("compute.c1")


# -- control --------------------------------------------------------------------------------

@pytest.mark.parametrize("topic,method,args", [
    ("bus", "no_such_control", {}),
    ("compute", "history", {}),              # a control not for the bus
    ("bus", "history", {"bogus": 1}),        # the handler raises TypeError
    ("bus", "set_faults", {"hop_delay": -5}),
])
def test_failing_control_is_answered_to_an_absent_peer_without_raising(bus, topic,
                                                                        method, args):
    env = protocol.envelope("control", "lab.x", topic, method, args=args)
    bus.process_frame(_frame(env))          # the reply cannot be sent: must not raise
    assert bus.stats["received"] == 1
    assert bus.stats["bad_frames"] == 0
    assert not bus.history                  # control messages are not traced
    assert bus.faults.hop_delay == 0.0


def test_register_heartbeat_unregister(bus):
    bus.process_frame(_frame(protocol.envelope("control", "compute.c1", "bus", "register")))
    assert [p["identity"] for p in bus.control_peers()] == ["compute.c1"]
    bus.routes.expire(time.time() + 10)
    assert not bus.routes.is_alive("compute.c1")
    bus.process_frame(_frame(protocol.envelope("control", "compute.c1", "bus", "heartbeat")))
    assert bus.routes.is_alive("compute.c1")
    bus.process_frame(_frame(protocol.envelope("control", "compute.c1", "bus",
                                               "unregister")))
    assert bus.control_peers() == []


def test_messages_from_unknown_peers_do_not_register_them(bus):
    bus.process_frame(_frame(_cast(src="api.a")))
    assert "api.a" not in bus.routes.peers


def test_control_stats(bus):
    _send(bus, _cast())
    stats = bus.control_stats()
    assert stats["counters"]["queued"] == 1
    assert stats["queued"] == {"compute": 1}
    assert stats["seq"] == 1 and stats["held"] == 0 and stats["delayed"] == 0


def test_control_history_paging(bus):
    assert bus.control_history() == {"events": [], "last_seq": 0, "oldest_seq": 1}
    sent = [_send(bus, _cast(attempt=i)) for i in range(10)]
    queued = _events(bus, phase="queued")
    assert [e["seq"] for e in queued] == list(range(1, 11))
    assert all(e["reason"] == "no live server" and e["dst"] == "compute" for e in queued)
    assert [e["bytes"] for e in queued] == [len(d) for d in sent]
    assert [e["attempt"] for e in queued] == list(range(10))
    pages, since = [], 0
    while True:
        page = bus.control_history(since=since, limit=4)
        assert page["last_seq"] == 10 and page["oldest_seq"] == 1
        if not page["events"]:
            break
        pages.append([e["seq"] for e in page["events"]])
        since = page["events"][-1]["seq"]
    assert pages == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]


def test_history_is_bounded(make_bus):
    bus = make_bus(history_size=5)
    for _ in range(8):
        _send(bus, _cast())
    page = bus.control_history()
    assert [e["seq"] for e in page["events"]] == [4, 5, 6, 7, 8]
    assert page["oldest_seq"] == 4 and page["last_seq"] == 8


def test_control_set_faults_bad_spec_changes_nothing(bus):
    good = {"rules": [{"dst": "compute", "drop": 0.5}], "partitions": [["api"], ["compute"]],
            "hop_delay": 0.1}
    assert bus.control_set_faults(**good) == bus.control_get_faults()
    before = bus.control_get_faults()
    for bad in ({"rules": [{"drop": 2}]}, {"bogus": 1}, {"hop_delay": -1},
                {"rules": [], "partitions": [[]]}):
        with pytest.raises(ValueError):
            bus.control_set_faults(**bad)
        assert bus.control_get_faults() == before


def test_control_expired_traces_the_timeout(bus):
    call = _cast(kind="call", server="c1")
    bus.control_expired(call["src"], call=call)
    (event,) = bus.history
    assert (event["phase"], event["reason"], event["dst"]) == ("expired", "call timeout",
                                                               "compute.c1")
    assert event["msg_id"] == call["msg_id"]


def test_only_the_caller_may_expire_its_call(bus):
    call = _cast(kind="call", server="c1")
    with pytest.raises(ValueError):
        bus.control_expired("lab.someone-else", call=call)
    with pytest.raises(ValueError):
        bus.control_expired(call["src"], call=_cast(server="c1"))   # a cast, not a call
    assert not bus.history


def test_expired_notice_gets_no_reply_and_bad_ones_are_counted(bus):
    call = _cast(kind="call", server="c1")
    notice = protocol.envelope("control", call["src"], "bus", "expired", args={"call": call})
    bus.process_frame(_frame(notice))
    assert bus.history[-1]["phase"] == "expired"
    forged = protocol.envelope("control", "lab.other", "bus", "expired", args={"call": call})
    bus.process_frame(_frame(forged))
    garbage = protocol.envelope("control", "lab.x", "bus", "expired", args={"call": [1, 2]})
    bus.process_frame(_frame(garbage))
    assert bus.stats["bad.bad_control"] == 2
    assert len(bus.history) == 1


# -- routing and queues -------------------------------------------------------------------

def test_cast_to_absent_server_queues_as_receiver_down(bus):
    data = _send(bus, _cast(server="c1"))
    (event,) = bus.history
    assert (event["phase"], event["dst"], event["reason"]) == ("queued", "compute.c1",
                                                               "receiver down")
    assert event["bytes"] == len(data)
    assert bus.routes.queued() == {"compute.c1": 1}


def test_queue_overflow_drops_with_queue_full(make_bus):
    bus = make_bus(queue_limit=3)
    for _ in range(5):
        _send(bus, _cast())
    assert [e["phase"] for e in bus.history] == ["queued"] * 3 + ["dropped"] * 2
    assert all(e["reason"] == "queue full" for e in _events(bus, phase="dropped"))
    assert bus.stats["queue_overflow"] == 2
    assert bus.stats["dropped"] == 2
    assert bus.stats["queued"] == 3
    assert bus.routes.queued() == {"compute": 3}


def test_queued_casts_expire_after_ttl(make_bus):
    bus = make_bus(queue_ttl=5.0)
    _send(bus, _cast())
    bus.tick(time.time() + 1)
    assert bus.routes.queued() == {"compute": 1}
    bus.tick(time.time() + 10)
    assert bus.routes.queued() == {}
    assert bus.stats["expired"] == 1
    assert bus.history[-1]["phase"] == "expired"
    assert bus.history[-1]["reason"] == "queue ttl"


def test_tick_marks_unreachable_peers_down(bus):
    """A registered identity with no connection behind it is down as soon as the bus's
    heartbeat finds no route to it (no need to wait dead_after)."""
    bus.process_frame(_frame(protocol.envelope("control", "compute.c1", "bus", "register")))
    assert bus.routes.is_alive("compute.c1")
    bus.tick(time.time())
    assert not bus.routes.is_alive("compute.c1")
    _send(bus, _cast())   # round-robin skips it: queued for the topic
    assert bus.history[-1]["reason"] == "no live server"


def test_fanout_without_servers_is_dropped(bus):
    _send(bus, _cast(kind="fanout"))
    (event,) = bus.history
    assert (event["phase"], event["reason"]) == ("dropped", "no live servers")


def test_reply_to_a_gone_caller_is_dropped(bus):
    call = _cast(kind="call", src="conductor.k0", server="c1")
    reply = protocol.reply_to(call, "compute.c1", result=1)
    _send(bus, reply)
    (event,) = bus.history
    assert (event["phase"], event["dst"], event["reason"]) == ("dropped", "conductor.k0",
                                                               "caller gone")
    assert event["reply_to"] == call["msg_id"]
    assert bus.stats["orphan_replies"] == 1


def test_fault_drop(bus):
    bus.control_set_faults(rules=[{"dst": "compute", "drop": 1.0}])
    _send(bus, _cast(server="c1"))
    (event,) = bus.history
    assert (event["phase"], event["reason"]) == ("dropped", "fault")
    assert bus.stats["dropped"] == 1


def test_partition_drop(bus):
    bus.control_set_faults(partitions=[["conductor"], ["compute"]])
    _send(bus, _cast(server="c1"))
    assert bus.history[-1]["reason"] == "partition"


def test_hold_then_release(bus):
    bus.control_set_faults(rules=[{"method": "build", "hold": True}])
    _send(bus, _cast(server="c1"))
    assert (bus.history[-1]["phase"], bus.history[-1]["reason"]) == ("queued", "held")
    assert bus.control_stats()["held"] == 1
    bus.control_set_faults(rules=[])
    assert bus.control_stats()["held"] == 0
    # released, but the receiver is down: it waits in its queue
    assert (bus.history[-1]["phase"], bus.history[-1]["reason"]) == ("queued",
                                                                     "receiver down")


def test_held_message_released_into_a_partition_is_dropped(bus):
    bus.control_set_faults(rules=[{"method": "build", "hold": True}])
    _send(bus, _cast(server="c1"))
    bus.control_set_faults(rules=[], partitions=[["conductor"], ["compute"]])
    assert (bus.history[-1]["phase"], bus.history[-1]["reason"]) == ("dropped", "partition")
    assert bus.control_stats()["held"] == 0 and bus.stats["dropped"] == 1


def test_delay_then_due(bus):
    bus.control_set_faults(rules=[{"delay": 5.0, "duplicate": 1.0}])
    _send(bus, _cast(server="c1"))
    assert (bus.history[-1]["phase"], bus.history[-1]["reason"]) == ("delayed", "5.000s")
    assert bus.control_stats()["delayed"] == 2   # the copy and its duplicate
    bus._deliver_due(time.monotonic())
    assert len(bus.history) == 1                 # not due yet
    bus._deliver_due(time.monotonic() + 6)
    assert [e["phase"] for e in bus.history] == ["delayed", "queued", "queued"]
    assert bus.routes.queued() == {"compute.c1": 2}


def test_a_message_in_flight_when_a_partition_comes_is_dropped_when_due(bus):
    bus.control_set_faults(rules=[{"delay": 5.0}])
    _send(bus, _cast(server="c1"))
    bus.control_set_faults(rules=[], partitions=[["conductor"], ["compute"]])
    bus._deliver_due(time.monotonic() + 6)
    assert [(e["phase"], e["reason"]) for e in bus.history] == [("delayed", "5.000s"),
                                                               ("dropped", "partition")]
    assert bus.routes.queued() == {}


def test_registering_delivers_what_waited(bus):
    """A real in-process DEALER registers: the bus delivers its queued cast."""
    waiting = _cast(server="c1")
    _send(bus, waiting)
    _send(bus, _cast(method="by_topic"))
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    try:
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt_string(zmq.IDENTITY, "compute.c1")
        dealer.connect(rundir.read(bus.run_dir)["endpoints"]["bus"])
        dealer.send(protocol.encode(protocol.envelope("control", "compute.c1", "bus",
                                                      "register")))
        assert bus.router.poll(5000), "the register frame never arrived"
        bus.process_frame(bus.router.recv_multipart())
        got = []
        while len(got) < 2 and dealer.poll(5000):
            got.append(protocol.decode(dealer.recv()))
        assert [g["msg_id"] for g in got] == [waiting["msg_id"],
                                              bus.history[1]["msg_id"]]
        routed = _events(bus, phase="routed")
        assert [e["dst"] for e in routed] == ["compute.c1", "compute.c1"]
        assert bus.routes.queued() == {}
        # and a control request gets its reply
        ask = protocol.envelope("control", "compute.c1", "bus", "stats")
        dealer.send(protocol.encode(ask))
        assert bus.router.poll(5000)
        bus.process_frame(bus.router.recv_multipart())
        assert dealer.poll(5000)
        reply = protocol.decode(dealer.recv())
        assert reply["reply_to"] == ask["msg_id"] and reply["src"] == BUS_IDENTITY
        assert reply["args"]["result"]["counters"]["routed"] == 2
    finally:
        dealer.close(0)
        ctx.term()


def test_a_bare_topic_message_whose_server_is_gone_goes_to_the_topic_queue(bus):
    """Picked for compute.c1, which is gone: it must not wait for c1 alone."""
    for name in ("compute.c1", "compute.c2"):   # registered, but nobody is connected
        bus.process_frame(_frame(protocol.envelope("control", name, "bus", "register")))
    _send(bus, _cast())                          # bare topic "compute"
    assert bus.routes.queued() == {"compute": 1}
    assert not bus.routes.is_alive("compute.c1") and not bus.routes.is_alive("compute.c2")
    assert bus.history[-1]["dst"] == "compute" and bus.history[-1]["phase"] == "queued"
