"""RPC over the real bus: cast, call, timeouts, remote errors, fanout, round-robin."""
from __future__ import annotations

import pytest

from orchestrator.messaging.protocol import MessagingTimeout, RemoteError


@pytest.mark.timeout(30)
def test_cast_is_delivered(cluster, received):
    cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    ctx = {"request_id": "req-1", "instance_uuid": "uuid-1", "attempt": 1}
    mid = client.cast("echo", "record", server="e1", ctx=ctx, note="fire and forget", n=3)
    assert isinstance(mid, str) and mid
    # The cast and the next call leave on one connection and reach e1 in that order, and
    # echo records a cast synchronously: no waiting needed.
    assert received(cluster, "e1") == [{"ctx": ctx, "args": {"note": "fire and forget", "n": 3}}]


@pytest.mark.timeout(30)
def test_call_returns_the_value(cluster):
    cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    ctx = {"request_id": "req-2"}
    args = {"i": 7, "f": 1.5, "s": "héllo", "b": b"\x00\xff", "l": [1, [2, None]],
            "d": {"k": True}}
    assert client.call("echo", "echo", server="e1", ctx=ctx, **args) == \
        {"host": "e1", "args": args, "ctx": ctx}
    # An async method too.
    assert client.call("echo", "sleep", server="e1", seconds=0.01) == "e1"


@pytest.mark.timeout(30)
def test_call_timeout_raises_and_the_trace_shows_it_expired(cluster, live_tap):
    cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    tap = live_tap(cluster)
    with pytest.raises(MessagingTimeout):
        client.call("echo", "sleep", server="e1", seconds=2, timeout=0.5)
    call = tap.wait_for(lambda e: e["kind"] == "call" and e["method"] == "sleep"
                        and e["phase"] == "routed" and e["src"] == client.identity)
    expired = tap.wait_for(lambda e: e["phase"] == "expired"
                           and e["msg_id"] == call["msg_id"])
    assert expired["kind"] == "call"
    assert expired["reason"] == "call timeout"
    assert expired["dst"] == "echo.e1"
    assert expired["seq"] > call["seq"]
    # The late reply still comes back; the client must discard it, not hand it to the
    # next call (whose result would then be "e1", the sleep's).
    tap.wait_for(lambda e: e["kind"] == "reply" and e["reply_to"] == call["msg_id"]
                 and e["phase"] == "routed", timeout=10)
    assert client.call("echo", "echo", server="e1", x=1)["args"] == {"x": 1}
    # Exactly one: the late reply. The "expired" notice is one-way (no answer to count).
    assert client.orphan_replies == 1


@pytest.mark.timeout(30)
def test_remote_error(cluster):
    cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    with pytest.raises(RemoteError) as info:
        client.call("echo", "fail", server="e1", message="boom at step 3")
    assert info.value.exc_type == "EchoFailure"
    assert info.value.message == "boom at step 3"
    # An unknown method is a remote error too, and the server goes on serving.
    with pytest.raises(RemoteError) as info:
        client.call("echo", "no_such_method", server="e1")
    assert info.value.exc_type == "NoSuchMethod"
    assert client.call("echo", "sleep", server="e1") == "e1"


@pytest.mark.timeout(30)
def test_fanout_reaches_every_live_server(cluster, received, live_tap):
    hosts = ["e1", "e2", "e3"]
    for host in hosts:
        cluster.spawn("echo", host, wait=True)
    client = cluster.client()
    tap = live_tap(cluster)
    mid = client.fanout("echo", "record", ctx={"request_id": "fan"}, tag="all")
    for host in hosts:
        assert received(cluster, host) == [{"ctx": {"request_id": "fan"},
                                            "args": {"tag": "all"}}]
    for host in hosts:
        event = tap.wait_for(lambda e: e["msg_id"] == mid and e["dst"] == f"echo.{host}")
        assert (event["kind"], event["phase"], event["reason"]) == ("fanout", "routed", "")
    # A fanout to a topic without servers is dropped (nothing to queue it for).
    mid = client.fanout("nobody", "record", tag="lost")
    event = tap.wait_for(lambda e: e["msg_id"] == mid)
    assert (event["phase"], event["reason"], event["dst"]) == \
        ("dropped", "no live servers", "nobody")


@pytest.mark.timeout(30)
def test_round_robin_over_live_servers(cluster):
    cluster.spawn("echo", "e1", wait=True)
    cluster.spawn("echo", "e2", wait=True)
    client = cluster.client()
    hosts = [client.call("echo", "echo", i=i)["host"] for i in range(6)]
    assert hosts.count("e1") == 3 and hosts.count("e2") == 3
    assert all(a != b for a, b in zip(hosts, hosts[1:])), hosts  # strictly alternating


@pytest.mark.timeout(30)
def test_notification_is_delivered_like_a_cast(cluster, received, live_tap):
    cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    tap = live_tap(cluster)
    env = client.envelope("notification", "echo", "record", server="e1", args={"event": "x"})
    client.send(env)
    assert [r["args"] for r in received(cluster, "e1")] == [{"event": "x"}]
    event = tap.wait_for(lambda e: e["msg_id"] == env["msg_id"])
    assert (event["kind"], event["phase"], event["dst"]) == ("notification", "routed", "echo.e1")
