"""Routing at the bus: casts for absent receivers queue and are delivered when the
receiver registers; a full queue drops and says so."""
from __future__ import annotations

import pytest


def _args(records):
    return [r["args"] for r in records]


@pytest.mark.timeout(30)
def test_cast_queued_until_the_server_registers(cluster, live_tap, received):
    client = cluster.client()
    tap = live_tap(cluster)
    mid = client.cast("echo", "record", server="late", i=1)
    queued = tap.wait_for(lambda e: e["msg_id"] == mid)
    assert (queued["phase"], queued["dst"], queued["kind"]) == ("queued", "echo.late", "cast")
    assert queued["reason"]
    assert cluster.client().control("stats")["queued"] == {"echo.late": 1}

    cluster.spawn("echo", "late", wait=True)
    routed = tap.wait_for(lambda e: e["msg_id"] == mid and e["phase"] == "routed")
    assert routed["dst"] == "echo.late" and routed["seq"] > queued["seq"]
    assert _args(received(cluster, "late")) == [{"i": 1}]
    assert cluster.client().control("stats")["queued"] == {}


@pytest.mark.timeout(30)
def test_cast_to_bare_topic_waits_for_any_server(cluster, live_tap, received):
    client = cluster.client()
    tap = live_tap(cluster)
    mid = client.cast("echo", "record", i=1)
    queued = tap.wait_for(lambda e: e["msg_id"] == mid)
    assert (queued["phase"], queued["dst"]) == ("queued", "echo")
    cluster.spawn("echo", "e1", wait=True)
    tap.wait_for(lambda e: e["msg_id"] == mid and e["phase"] == "routed" and e["dst"] == "echo.e1")
    assert _args(received(cluster, "e1")) == [{"i": 1}]


@pytest.mark.timeout(30)
def test_cast_to_a_killed_server_is_delivered_after_restart(cluster, live_tap, peers,
                                                            wait_until, received):
    cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    tap = live_tap(cluster)
    client.cast("echo", "record", server="e1", i=0)
    assert _args(received(cluster, "e1")) == [{"i": 0}]

    cluster.kill("echo.e1")
    dead_after = cluster.bus_config.dead_after
    wait_until(lambda: not peers(cluster)["echo.e1"]["alive"], dead_after + 3,
               "bus marks the killed echo.e1 down")
    mids = [client.cast("echo", "record", server="e1", i=i) for i in (1, 2)]
    for mid in mids:
        event = tap.wait_for(lambda e: e["msg_id"] == mid)
        assert (event["phase"], event["reason"]) == ("queued", "receiver down")

    cluster.restart("echo.e1")   # waits until the new process has registered
    for mid in mids:
        tap.wait_for(lambda e: e["msg_id"] == mid and e["phase"] == "routed")
    # A new process: it has only what was queued for it, in order.
    assert _args(received(cluster, "e1")) == [{"i": 1}, {"i": 2}]


@pytest.mark.timeout(40)
def test_cast_queued_while_unreachable_is_delivered_when_server_reregisters(
        make_cluster, live_tap, received, wait_until):
    # A server killed and restarted before the bus could notice by silence: dead_after is
    # long, so only the broken connection and the new registration tell the bus anything.
    cluster = make_cluster(dead_after=15.0)
    cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    tap = live_tap(cluster)
    cluster.kill("echo.e1")
    # Until the bus's ZeroMQ notices the closed connection, a cast may still be written
    # into the dead pipe (routed, and lost with it): cast until one is queued. Each
    # iteration waits for its own event.

    def queued() -> str | None:
        mid = client.cast("echo", "record", server="e1", i=1)
        event = tap.wait_for(lambda e: e["msg_id"] == mid)
        assert event["phase"] in ("queued", "routed")
        return mid if event["phase"] == "queued" else None
    mid = wait_until(queued, 10, "the bus noticing echo.e1's connection closed", 0.01)

    cluster.spawn("echo", "e1", wait=True)   # waits for the new process's registration
    tap.wait_for(lambda e: e["msg_id"] == mid and e["phase"] == "routed")
    # Spec: a cast for a receiver that is not connected waits at the bus and "is
    # delivered when it registers" -- so before anything sent after the registration.
    assert [r["args"] for r in received(cluster, "e1")] == [{"i": 1}]
    assert client.control("stats")["queued"] == {}


@pytest.mark.timeout(30)
def test_queue_overflow_is_dropped_and_reported(make_cluster, live_tap, received):
    cluster = make_cluster(queue_limit=5)
    client = cluster.client()
    tap = live_tap(cluster)
    mids = [client.cast("echo", "record", server="absent", i=i) for i in range(8)]
    fates = [tap.wait_for(lambda e: e["msg_id"] == mid) for mid in mids]
    assert [e["phase"] for e in fates] == ["queued"] * 5 + ["dropped"] * 3
    assert all(e["reason"] == "queue full" for e in fates[5:])
    assert all(e["dst"] == "echo.absent" for e in fates)
    stats = client.control("stats")
    assert stats["counters"]["queue_overflow"] == 3
    assert stats["counters"]["queued"] == 5
    assert stats["queued"] == {"echo.absent": 5}
    # The five that fit are delivered, oldest first, when the server comes.
    cluster.spawn("echo", "absent", wait=True)
    assert _args(received(cluster, "absent")) == [{"i": i} for i in range(5)]


@pytest.mark.timeout(30)
def test_queued_cast_expires_after_queue_ttl(make_cluster, live_tap, received):
    cluster = make_cluster(queue_ttl=0.5)
    client = cluster.client()
    tap = live_tap(cluster)
    mid = client.cast("echo", "record", server="slow", i=1)
    queued = tap.wait_for(lambda e: e["msg_id"] == mid)
    assert queued["phase"] == "queued"
    expired = tap.wait_for(lambda e: e["msg_id"] == mid and e["phase"] == "expired")
    assert (expired["reason"], expired["dst"]) == ("queue ttl", "echo.slow")
    assert expired["ts"] - queued["ts"] >= 0.45   # ttl 0.5 s, measured from the enqueue
    stats = client.control("stats")
    assert stats["counters"]["expired"] == 1 and stats["queued"] == {}
    # Too late: the server that finally comes gets nothing.
    cluster.spawn("echo", "slow", wait=True)
    assert received(cluster, "slow") == []
