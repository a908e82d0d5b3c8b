"""Unit tests for orchestrator.messaging.routing: pure bookkeeping, explicit clocks."""
from __future__ import annotations

import pytest

from orchestrator.messaging.routing import Peer, RoutingTable


@pytest.fixture
def table() -> RoutingTable:
    return RoutingTable(dead_after=2.0, queue_limit=3)


def test_seen_is_true_for_new_peers_only(table):
    assert table.seen("compute.c1", 100.0) is True
    assert table.seen("compute.c1", 101.0) is False
    peer = table.peers["compute.c1"]
    assert (peer.topic, peer.server, peer.alive) == ("compute", "c1", True)
    assert peer.last_seen == 101.0 and peer.registered_at == 100.0


def test_seen_is_true_for_revived_peers(table):
    table.seen("compute.c1", 0.0)
    assert table.expire(10.0) == ["compute.c1"]
    assert not table.is_alive("compute.c1")
    assert table.seen("compute.c1", 11.0) is True
    assert table.is_alive("compute.c1")
    assert table.seen("compute.c1", 12.0) is False


def test_expire_marks_silent_peers_dead_after_dead_after(table):
    table.seen("compute.c1", 0.0)
    table.seen("compute.c2", 1.5)
    assert table.expire(2.0) == []          # exactly dead_after: not yet
    assert table.expire(2.01) == ["compute.c1"]
    assert table.expire(2.5) == []          # already dead: not reported twice
    assert table.is_alive("compute.c2") and not table.is_alive("compute.c1")
    assert table.expire(3.6) == ["compute.c2"]


def test_heartbeat_keeps_a_peer_alive(table):
    table.seen("compute.c1", 0.0)
    for t in (1.5, 3.0, 4.5):
        table.seen("compute.c1", t)
        assert table.expire(t + 1.9) == []
    assert table.is_alive("compute.c1")


def test_remove_and_is_alive_of_unknown(table):
    assert not table.is_alive("nobody.x")
    table.seen("compute.c1", 0.0)
    table.remove("compute.c1")
    table.remove("compute.c1")  # idempotent
    assert not table.is_alive("compute.c1") and table.peers == {}


def test_live_is_sorted_and_per_topic(table):
    for name in ("compute.c3", "compute.c1", "conductor.k1", "compute.c2"):
        table.seen(name, 0.0)
    assert table.live("compute") == ["compute.c1", "compute.c2", "compute.c3"]
    assert table.live("conductor") == ["conductor.k1"]
    assert table.live("scheduler") == []


def test_pick_round_robins_in_name_order(table):
    for name in ("compute.c3", "compute.c1", "compute.c2"):
        table.seen(name, 0.0)
    picks = [table.pick("compute") for _ in range(6)]
    assert picks == ["compute.c1", "compute.c2", "compute.c3"] * 2


def test_pick_skips_dead_servers(table):
    table.seen("compute.c1", 0.0)
    table.seen("compute.c2", 5.0)
    table.seen("compute.c3", 5.0)
    table.expire(5.0)  # c1 is dead
    picks = {table.pick("compute") for _ in range(10)}
    assert picks == {"compute.c2", "compute.c3"}


def test_pick_returns_none_when_none_live(table):
    assert table.pick("compute") is None
    table.seen("compute.c1", 0.0)
    table.expire(100.0)
    assert table.pick("compute") is None
    table.seen("conductor.k1", 100.0)
    assert table.pick("compute") is None


def test_pick_topics_have_independent_counters(table):
    for name in ("compute.c1", "compute.c2", "conductor.k1", "conductor.k2"):
        table.seen(name, 0.0)
    assert table.pick("compute") == "compute.c1"
    assert table.pick("conductor") == "conductor.k1"
    assert table.pick("compute") == "compute.c2"


def test_enqueue_take_fifo(table):
    for i in range(3):
        assert table.enqueue("compute.c1", f"m{i}", float(i)) is True
    assert table.take("compute.c1") == ["m0", "m1", "m2"]
    assert table.take("compute.c1") == []
    assert table.take("never") == []


def test_queue_limit_overflow_returns_false(table):
    assert all(table.enqueue("compute", i, 0.0) for i in range(3))
    assert table.enqueue("compute", 3, 0.0) is False
    assert table.take("compute") == [0, 1, 2]
    assert table.enqueue("compute", 4, 0.0) is True  # room again after take


def test_queues_are_per_key(table):
    table.enqueue("compute", "a", 0.0)
    table.enqueue("compute.c1", "b", 0.0)
    assert table.take("compute.c1") == ["b"]
    assert table.take("compute") == ["a"]


def test_expire_queued_with_ttl(table):
    table.enqueue("compute", "old", 0.0)
    table.enqueue("compute", "new", 9.0)
    table.enqueue("compute.c1", "old1", 1.0)
    expired = list(table.expire_queued(now=10.0, ttl=5.0))
    assert sorted(expired) == [("compute", "old"), ("compute.c1", "old1")]
    assert table.queued() == {"compute": 1}
    assert list(table.expire_queued(now=14.0, ttl=5.0)) == []   # exactly ttl: kept
    assert list(table.expire_queued(now=14.5, ttl=5.0)) == [("compute", "new")]
    assert table.queued() == {}


def test_queued_counts(table):
    assert table.queued() == {}
    table.enqueue("compute", 1, 0.0)
    table.enqueue("compute", 2, 0.0)
    table.enqueue("conductor.k1", 3, 0.0)
    assert table.queued() == {"compute": 2, "conductor.k1": 1}
    table.take("compute")
    assert table.queued() == {"conductor.k1": 1}


def test_describe(table):
    table.seen("compute.c2", 1.0)
    table.seen("compute.c1", 2.0)
    table.expire(3.5)  # c2 is dead
    assert table.describe() == [
        {"identity": "compute.c1", "topic": "compute", "server": "c1", "alive": True,
         "last_seen": 2.0, "registered_at": 2.0},
        {"identity": "compute.c2", "topic": "compute", "server": "c2", "alive": False,
         "last_seen": 1.0, "registered_at": 1.0},
    ]


def test_bare_topic_peer():
    table = RoutingTable(1.0, 1)
    table.seen("api", 0.0)
    assert table.peers["api"] == Peer("api", "api", "", 0.0, True, 0.0)
    assert table.pick("api") == "api"


def test_register_revives_and_stamps(table):
    table.seen("compute.c1", 1.0)
    table.expire(10.0)
    assert not table.is_alive("compute.c1")
    table.register("compute.c1", 11.0)
    assert table.is_alive("compute.c1")
    assert table.describe()[0]["registered_at"] == 11.0


def test_mark_down_only_reports_a_change(table):
    assert table.mark_down("compute.nobody") is False
    table.seen("compute.c1", 1.0)
    assert table.mark_down("compute.c1") is True
    assert table.mark_down("compute.c1") is False
    assert table.pick("compute") is None
