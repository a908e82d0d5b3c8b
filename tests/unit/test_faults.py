"""Unit tests for orchestrator.messaging.faults."""
from __future__ import annotations

from dataclasses import asdict

import pytest

from orchestrator.messaging.faults import Decision, FaultError, FaultTable, Rule


# -- rule validation --------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    {"drop": -0.1}, {"drop": 1.01}, {"drop": True}, {"drop": "0.5"}, {"drop": float("nan")},
    {"duplicate": 2}, {"duplicate": -1}, {"duplicate": None},
    {"delay": -1}, {"delay": 3601}, {"delay": False}, {"delay": "1"}, {"delay": float("nan")},
    {"src": ""}, {"dst": ""}, {"method": ""}, {"src": None}, {"dst": 3},
    {"hold": 1}, {"hold": "yes"}, {"hold": None},
])
def test_rule_validation_errors(kw):
    with pytest.raises(FaultError):
        Rule(**kw)


def test_fault_error_is_a_value_error():
    assert issubclass(FaultError, ValueError)


@pytest.mark.parametrize("kw", [{}, {"drop": 0}, {"drop": 1}, {"drop": 0.5},
                                {"delay": 0}, {"delay": 3600}, {"hold": True},
                                {"duplicate": 1.0}])
def test_rule_valid(kw):
    Rule(**kw)


# -- configure ---------------------------------------------------------------------------

GOOD = {"rules": [{"dst": "compute", "drop": 0.5}], "partitions": [["api"], ["compute"]],
        "hop_delay": 0.25}


@pytest.mark.parametrize("bad", [
    None, [], "rules",
    {"bogus": 1},
    {"rules": [{"drop": 2}]},
    {"rules": [{"nope": 1}]},
    {"rules": 5},
    {"rules": [5]},
    {"rules": [{"drop": 0.1}, {"delay": -1}]},
    {"partitions": "api"},
    {"partitions": [[]]},
    {"partitions": [["api"], [""]]},
    {"partitions": [["api", 5]]},
    {"partitions": ["api"]},
    {"hop_delay": -1},
    {"hop_delay": 61},
    {"hop_delay": True},
    {"hop_delay": "1"},
    {"hop_delay": float("nan")},
    {"rules": [], "partitions": [], "hop_delay": -1},   # good parts, one bad
    {"rules": [{"drop": 1}], "partitions": [[]]},
])
def test_configure_bad_input_changes_nothing(bad):
    table = FaultTable(seed=3)
    table.configure(GOOD)
    before = table.describe()
    with pytest.raises(FaultError):
        table.configure(bad)
    assert table.describe() == before


def test_configure_replaces_only_named_parts():
    table = FaultTable()
    assert not table.active()
    table.configure(GOOD)
    assert table.active()
    assert table.describe() == {
        "rules": [asdict(Rule(dst="compute", drop=0.5))],
        "partitions": [["api"], ["compute"]], "hop_delay": 0.25}
    table.configure({"rules": []})
    assert table.partitions == [["api"], ["compute"]] and table.hop_delay == 0.25
    table.configure({"partitions": [], "hop_delay": 0})
    assert not table.active()
    assert isinstance(table.hop_delay, float)


# -- matching ----------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,name,ok", [
    ("compute", "compute.compute1", True),
    ("compute.*", "compute.compute1", True),
    ("compute.compute1", "compute.compute1", True),
    ("compute.compute2", "compute.compute1", False),
    ("comp*", "compute.c1", True),
    ("conductor", "compute.c1", False),
    ("compute1", "compute.compute1", False),
    ("*", "anything.at.all", True),
    ("compute", "compute", True),
])
def test_rule_pattern_matching(pattern, name, ok):
    assert Rule(src=pattern).matches(name, "x", "m") is ok
    assert Rule(dst=pattern).matches("x", name, "m") is ok


def test_rule_method_matching_is_a_plain_pattern():
    rule = Rule(method="build_*")
    assert rule.matches("a.b", "c.d", "build_instances")
    assert not rule.matches("a.b", "c.d", "select_destinations")
    assert not Rule(method="Build_*").matches("a.b", "c.d", "build_instances")  # case


# -- decisions ---------------------------------------------------------------------------

def test_no_faults_means_plain_delivery():
    table = FaultTable()
    assert table.decide("api.a", "conductor.k", "m") == Decision()


def test_drop_one_always_drops_with_reason_fault():
    table = FaultTable()
    table.configure({"rules": [{"dst": "compute", "drop": 1.0}]})
    for _ in range(200):
        assert table.decide("conductor.k", "compute.c1", "build").drop == "fault"
    assert table.decide("conductor.k", "scheduler.s", "build").drop == ""


def test_drop_zero_never_drops():
    table = FaultTable()
    table.configure({"rules": [{"drop": 0, "delay": 0.1}]})
    assert all(table.decide("a.a", "b.b", "m").drop == "" for _ in range(200))


def test_partitions_drop_between_groups_only():
    table = FaultTable()
    table.configure({"partitions": [["api", "conductor"], ["compute.c1", "compute.c2"]]})
    assert table.decide("api.a", "compute.c1", "m").drop == "partition"
    assert table.decide("compute.c2", "conductor.k", "m").drop == "partition"
    assert table.decide("api.a", "conductor.k", "m").drop == ""        # same group
    assert table.decide("compute.c1", "compute.c2", "m").drop == ""    # same group
    assert table.decide("api.a", "scheduler.s", "m").drop == ""        # outside all groups
    assert table.decide("scheduler.s", "compute.c1", "m").drop == ""
    assert table.decide("compute.c3", "api.a", "m").drop == ""         # c3 in no group


def test_hop_delay_and_rule_delays_add_up():
    table = FaultTable(hop_delay=0.5)
    assert table.decide("a.a", "b.b", "m").delay == 0.5
    table.configure({"rules": [{"delay": 1.0}, {"dst": "b", "delay": 2.0},
                               {"dst": "c", "delay": 4.0}]})
    assert table.decide("a.a", "b.b", "m").delay == pytest.approx(3.5)
    assert table.decide("a.a", "c.c", "m").delay == pytest.approx(5.5)


def test_partition_drop_keeps_hop_delay():
    table = FaultTable()
    table.configure({"partitions": [["a"], ["b"]], "hop_delay": 0.1})
    d = table.decide("a.x", "b.y", "m")
    assert d.drop == "partition" and d.delay == pytest.approx(0.1)


def test_duplicate():
    table = FaultTable()
    table.configure({"rules": [{"dst": "b", "duplicate": 1.0}]})
    assert table.decide("a.a", "b.b", "m").duplicate is True
    assert table.decide("a.a", "c.c", "m").duplicate is False


def test_hold():
    table = FaultTable()
    table.configure({"rules": [{"method": "build", "hold": True}]})
    assert table.decide("a.a", "b.b", "build").hold is True
    assert table.decide("a.a", "b.b", "other").hold is False
    assert table.held("a.a", "b.b", "build") and not table.held("a.a", "b.b", "other")
    table.configure({"rules": []})
    assert not table.held("a.a", "b.b", "build")


def _sequence(table, src="conductor.k", dst="compute.c1", method="build", n=200):
    return [asdict(table.decide(src, dst, method)) for _ in range(n)]


SPEC = {"rules": [{"dst": "compute", "drop": 0.5, "duplicate": 0.3}]}


def test_same_seed_same_decisions():
    a, b = FaultTable(seed=42), FaultTable(seed=42)
    a.configure(SPEC)
    b.configure(SPEC)
    seq = _sequence(a)
    assert seq == _sequence(b)
    drops = sum(1 for d in seq if d["drop"])
    assert 60 < drops < 140    # it is random, not all-or-nothing
    assert any(d["duplicate"] for d in seq) and not all(d["duplicate"] for d in seq)


def test_different_seed_different_decisions():
    a, b = FaultTable(seed=1), FaultTable(seed=2)
    a.configure({"rules": [{"drop": 0.5}]})
    b.configure({"rules": [{"drop": 0.5}]})
    assert [d["drop"] for d in _sequence(a)] != [d["drop"] for d in _sequence(b)]


def test_links_and_methods_have_their_own_sequences():
    a = FaultTable(seed=1)
    a.configure({"rules": [{"drop": 0.5}]})
    b = FaultTable(seed=1)
    b.configure({"rules": [{"drop": 0.5}]})
    assert _sequence(a, method="build") != _sequence(b, method="other")


def test_interleaving_independence():
    alone, mixed = FaultTable(seed=9), FaultTable(seed=9)
    alone.configure(SPEC)
    mixed.configure(SPEC)
    link_a = ("conductor.k", "compute.c1", "build")
    link_b = ("conductor.k", "compute.c2", "build")
    expected = [asdict(alone.decide(*link_a)) for _ in range(100)]
    got = []
    for i in range(100):
        for _ in range(i % 3):
            mixed.decide(*link_b)
        got.append(asdict(mixed.decide(*link_a)))
    assert got == expected


def test_reconfigure_keeps_link_counters():
    """n counts messages on a link: replacing the rules does not restart the sequence."""
    a, b = FaultTable(seed=5), FaultTable(seed=5)
    a.configure({"rules": [{"drop": 0.5}]})
    b.configure({"rules": [{"drop": 0.5}]})
    first = _sequence(a, n=50)
    a.configure({"rules": [{"drop": 0.5}]})
    assert first + _sequence(a, n=50) == _sequence(b, n=100)
