"""Heartbeats: the bus notices a killed and a hung (SIGSTOPped) server by their silence,
routes around them, and delivers what waited once a server is back."""
from __future__ import annotations

import time

import pytest


@pytest.mark.timeout(40)
def test_heartbeats_detect_killed_and_hung_servers(make_cluster, live_tap, peers, wait_until,
                                                   received):
    # A long bus_timeout: however long a loaded machine keeps e2 paused, e2 must not give
    # up on the bus itself when it resumes.
    cluster = make_cluster(bus_timeout=15.0)
    for host in ("e1", "e2", "e3"):
        cluster.spawn("echo", host, wait=True)
    client = cluster.client()
    tap = live_tap(cluster)
    dead_after = cluster.bus_config.dead_after

    cluster.kill("echo.e1")       # SIGKILL: a crash; its connection closes
    cluster.pause("echo.e2")      # SIGSTOP: a hang; its connection stays open

    def both_down():
        table = peers(cluster)
        return table if not (table["echo.e1"]["alive"] or table["echo.e2"]["alive"]) else None
    # dead_after plus a margin for a loaded 2-core machine (ticks, scheduling).
    table = wait_until(both_down, dead_after + 3, "bus marks echo.e1 and echo.e2 down")
    # The hung one was found out by its silence: nothing heard for dead_after.
    assert time.time() - table["echo.e2"]["last_seen"] >= dead_after
    assert table["echo.e3"]["alive"]

    # Round-robin skips the dead: every bare-topic call goes to e3.
    assert {client.call("echo", "echo", i=i)["host"] for i in range(3)} == {"e3"}

    # Casts for the hung server wait at the bus ...
    mids = [client.cast("echo", "record", server="e2", i=i) for i in range(3)]
    for mid in mids:
        event = tap.wait_for(lambda e: e["msg_id"] == mid)
        assert (event["phase"], event["reason"]) == ("queued", "receiver down")
    # ... and are delivered, in order, once it heartbeats again.
    cluster.resume("echo.e2")
    wait_until(lambda: peers(cluster)["echo.e2"]["alive"], 10, "echo.e2 alive again")
    for mid in mids:
        event = tap.wait_for(lambda e: e["msg_id"] == mid and e["phase"] == "routed")
        assert event["dst"] == "echo.e2"
    assert [r["args"] for r in received(cluster, "e2")] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert cluster.child("echo.e2").alive()
    assert not peers(cluster)["echo.e1"]["alive"]   # the killed one stays down
