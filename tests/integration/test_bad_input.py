"""Garbage on the bus's ROUTER from a raw ZeroMQ socket: every bad frame is counted and
dropped, nothing crashes, and normal traffic goes on. The raw socket proves its name with
the lab's secret (PLAIN) to get in at all; tests/integration/test_bus_auth.py is about
the ones that cannot."""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import msgpack
import pytest
import zmq

from orchestrator.messaging import protocol

RAW = "raw.garbage"   # the raw socket's identity; envelopes claiming it pass the src check


@contextmanager
def raw_dealer(endpoint: str, secret: str, identity: str = RAW) -> Iterator[zmq.Socket]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt_string(zmq.IDENTITY, identity)     # its username too: the bus's rule
    sock.setsockopt_string(zmq.PLAIN_USERNAME, identity)
    sock.setsockopt_string(zmq.PLAIN_PASSWORD, secret)
    sock.connect(endpoint)
    try:
        yield sock
    finally:
        sock.close(0)
        ctx.term()


def _env(**changes) -> dict:
    env = protocol.envelope("cast", RAW, "echo", "record", server="e1", args={"i": -1})
    env.update(changes)
    return env


def _pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _recv_reply(sock: zmq.Socket, timeout: float = 10.0) -> dict:
    assert sock.poll(int(timeout * 1000)), "no answer from the bus"
    return protocol.decode(sock.recv(), 1 << 26)


@pytest.mark.timeout(40)
def test_garbage_is_counted_and_dropped(make_cluster, received, wait_until):
    cluster = make_cluster(max_message_bytes=4096)
    bus = cluster.child("bus")
    cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    assert client.call("echo", "echo", server="e1", x=0)["args"] == {"x": 0}
    valid = protocol.encode(_env())
    rng = random.Random(20240601)

    single = {   # one frame each -> the reason the bus counts it by
        "not_msgpack": [b"", valid[: len(valid) // 2], b"\xc1",
                        b"\xdd\xff\xff\xff\xff",            # array of 4 G items, no body
                        b"\x91" * 3000 + b"\xc0"],   # nested deeper than msgpack's stack
        "bad_envelope": [_pack([1, 2, 3]), _pack("envelope"), _pack(_env(args=[1])),
                         _pack(_env(sent="now")), _pack({k: v for k, v in _env().items()
                                                         if k != "ctx"}),
                         _pack(_env(src="echo.e1"))],      # spoofed sender
        "bad_version": [_pack(_env(v=2))],
        "unknown_kind": [_pack(_env(kind="teleport"))],
        "oversized": [b"\x00" * 8000],                      # > 4096, < the socket's 16x cap
    }
    # Frames whose reason is the decoder's business (an int-keyed map is refused either
    # as not msgpack or as an envelope without "v"): expected counts follow
    # protocol.decode, the one place that judges bytes.
    judged = [rng.randbytes(rng.randint(1, 300)) for _ in range(20)] + [_pack({1: "int key"})]
    orphan = protocol.envelope("reply", RAW, "ghost", "echo", server="nobody",
                               args={"result": 1}, reply_to="feedface")
    expected_bad = sum(map(len, single.values())) + len(judged) + 2   # + two multiparts

    with raw_dealer(cluster.endpoints["bus"], cluster.secret) as raw:
        for frames in single.values():
            for frame in frames:
                raw.send(frame)
        for frame in judged:
            raw.send(frame)
        # Normal traffic in between.
        assert client.call("echo", "echo", server="e1", x=1)["args"] == {"x": 1}
        raw.send_multipart([valid, valid, valid])            # 3 payload frames
        raw.send_multipart([b"", valid])                     # REQ-style empty delimiter
        raw.send(protocol.encode(orphan))                    # a reply nobody waits for
        # A valid control request with bad arguments, and an unknown one: answered with
        # an error, not a crash.
        bad_history = protocol.envelope("control", RAW, "bus", "history", args={"since": "x"})
        raw.send(protocol.encode(bad_history))
        reply = _recv_reply(raw)
        assert reply["reply_to"] == bad_history["msg_id"] and "error" in reply["args"]
        unknown = protocol.envelope("control", RAW, "bus", "self_destruct")
        raw.send(protocol.encode(unknown))
        reply = _recv_reply(raw)
        assert reply["reply_to"] == unknown["msg_id"]
        assert reply["args"]["error"]["type"] == "ValueError"
        # Last, a valid cast from the raw socket: once e1 has it, the bus has processed
        # every frame the raw socket sent before it (one connection, in order).
        raw.send(protocol.encode(_env(args={"i": 99})))
        wait_until(lambda: received(cluster, "e1"), 10, "raw socket's valid cast reaches e1")

    assert [r["args"] for r in received(cluster, "e1")] == [{"i": 99}]
    counters = client.control("stats")["counters"]
    expected = {f"bad.{reason}": len(frames) for reason, frames in single.items()}
    expected["bad.bad_frames"] = 2
    for frame in judged:
        with pytest.raises(protocol.ProtocolError) as info:
            protocol.decode(frame, 4096)
        expected[f"bad.{info.value.reason}"] = expected.get(f"bad.{info.value.reason}", 0) + 1
    assert {k: v for k, v in counters.items() if k.startswith("bad.")} == expected
    assert counters["bad_frames"] == expected_bad
    assert counters["orphan_replies"] == 1
    assert bus.alive()
    assert client.call("echo", "echo", server="e1", x=2)["args"] == {"x": 2}


@pytest.mark.timeout(30)
def test_frame_over_the_socket_cap_only_costs_the_sender_its_connection(make_cluster):
    cluster = make_cluster(max_message_bytes=4096)
    cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    # The ROUTER refuses frames over 16 x max_message_bytes at the ZeroMQ level (it drops
    # the connection); the bus and everyone else carry on.
    with raw_dealer(cluster.endpoints["bus"], cluster.secret) as raw:
        raw.send(b"\x00" * (16 * 4096 + 1))
        unknown = protocol.envelope("control", RAW, "bus", "stats")
        # The raw socket reconnects by itself; a request eventually gets through.
        for _ in range(50):
            raw.send(protocol.encode(unknown))
            if raw.poll(200):
                assert protocol.decode(raw.recv(), 1 << 26)["reply_to"] == unknown["msg_id"]
                break
        else:
            pytest.fail("the raw socket never got an answer after its connection was cut")
    assert cluster.child("bus").alive()
    assert client.call("echo", "echo", server="e1", x=1)["args"] == {"x": 1}
