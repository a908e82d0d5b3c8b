"""Unit tests for lab.trace: filtering trace events, counting them, telling one
instance's story. Events are hand-built in the bus's trace-event schema."""
from __future__ import annotations

from collections import Counter

import pytest

from lab.trace import Trace, short
from orchestrator.conductor.rpcapi import DB_PROXY_METHODS
from orchestrator.messaging import protocol

REQ = "req-batch"
U1, U2 = "uuid-1", "uuid-2"
_seq = iter(range(1, 10_000))


def ev(method, src, dst, *, kind="cast", phase="routed", ts=100.0, uuid="", request_id=REQ,
       attempt=1, reason=""):
    topic = dst.partition(".")[0]
    env = protocol.envelope(kind, src, topic, method, ctx={
        "request_id": request_id, "instance_uuid": uuid, "attempt": attempt})
    return protocol.trace_event(next(_seq), env, phase, dst, 100, reason, ts=ts)


def batch_events():
    """A two-instance request: the API casts with no instance, the conductor calls the
    scheduler, then casts one build per instance; computes save through the conductor."""
    return [
        ev("build_instances", "api.api1", "conductor.conductor1", ts=10.0),
        ev("select_destinations", "conductor.conductor1", "scheduler.scheduler1",
           kind="call", ts=10.25),
        ev("select_destinations", "scheduler.scheduler1", "conductor.conductor1",
           kind="reply", ts=10.5),
        ev("build_and_run_instance", "conductor.conductor1", "compute", ts=10.6,
           uuid=U1, phase="queued", reason="no live server"),
        ev("build_and_run_instance", "conductor.conductor1", "compute.compute1", ts=10.75,
           uuid=U1),
        ev("build_and_run_instance", "conductor.conductor1", "compute.compute2", ts=10.8,
           uuid=U2),
        ev("instance_update", "compute.compute1", "conductor.conductor1", kind="call",
           ts=11.0, uuid=U1),
        ev("instance_update", "conductor.conductor1", "compute.compute1", kind="reply",
           ts=11.1, uuid=U1),
        ev("build_instances", "compute.compute1", "conductor.conductor1", ts=12.0, uuid=U1,
           attempt=2),
        ev("service_update", "compute.compute3", "conductor.conductor1", kind="call",
           ts=12.5, request_id="periodic-compute3"),
        ev("build_instances", "api.api1", "conductor.conductor1", ts=13.0,
           request_id="req-other"),
    ]


@pytest.fixture
def trace():
    return Trace(batch_events())


@pytest.mark.parametrize("name,expected", [
    ("conductor.conductor1", "conductor"), ("compute.compute2", "compute2"),
    ("compute", "compute"), ("scheduler.scheduler1", "scheduler"), ("api.api1", "api"),
    ("conductor", "conductor"), ("lab.abc", "lab")])
def test_short(name, expected):
    assert short(name) == expected


def test_a_trace_is_a_sequence_of_events(trace):
    assert len(trace) == 11
    assert [e["seq"] for e in trace] == [e["seq"] for e in trace.events]
    assert len(Trace([])) == 0


def test_a_trace_copies_a_generator_once():
    events = (e for e in batch_events())
    t = Trace(events)
    assert len(t) == 11 and len(list(t)) == 11 and len(list(t)) == 11


def test_filter_returns_a_new_trace(trace):
    calls = trace.filter(lambda e: e["kind"] == "call")
    assert isinstance(calls, Trace)
    assert [e["method"] for e in calls] == ["select_destinations", "instance_update",
                                            "service_update"]
    assert len(trace) == 11


def test_routed_drops_the_other_phases(trace):
    routed = trace.routed()
    assert len(routed) == 10
    assert {e["phase"] for e in routed} == {"routed"}


def test_without_db_proxy(trace):
    kept = trace.without_db_proxy()
    assert not {e["method"] for e in kept} & DB_PROXY_METHODS
    assert len(kept) == 8
    assert {"instance_update", "service_update"} <= DB_PROXY_METHODS


def test_for_instance_alone_takes_only_tagged_events(trace):
    mine = trace.for_instance(U1)
    assert [e["method"] for e in mine] == ["build_and_run_instance"] * 2 + [
        "instance_update"] * 2 + ["build_instances"]
    assert all(e["instance_uuid"] == U1 for e in mine)


def test_for_instance_with_a_batch_request_takes_its_untagged_messages(trace):
    mine = trace.for_instance(U1, REQ)
    assert [(e["method"], e["instance_uuid"]) for e in mine] == [
        ("build_instances", ""), ("select_destinations", ""), ("select_destinations", ""),
        ("build_and_run_instance", U1), ("build_and_run_instance", U1),
        ("instance_update", U1), ("instance_update", U1), ("build_instances", U1)]
    assert not any(e["instance_uuid"] == U2 for e in mine)      # the sibling's build
    assert not any(e["request_id"] == "req-other" for e in mine)
    other = trace.for_instance(U2, REQ)
    assert [e["dst"] for e in other if e["method"] == "build_and_run_instance"] == [
        "compute.compute2"]


def test_counts_are_routed_messages_by_kind_and_method(trace):
    assert trace.counts() == Counter({
        ("cast", "build_instances"): 3, ("call", "select_destinations"): 1,
        ("reply", "select_destinations"): 1, ("cast", "build_and_run_instance"): 2,
        ("call", "instance_update"): 1, ("reply", "instance_update"): 1,
        ("call", "service_update"): 1})
    assert Trace([]).counts() == Counter()


def test_story_tells_the_instance_in_order_with_relative_times(trace):
    lines = trace.story(U1, REQ)
    assert lines == [
        "+  0.000s  attempt 1         api -> conductor  cast  build_instances",
        "+  0.250s  attempt 1   conductor -> scheduler  call  select_destinations",
        "+  0.500s  attempt 1   scheduler -> conductor  reply select_destinations",
        "+  0.600s  attempt 1   conductor -> compute    cast  build_and_run_instance  [queued]",
        "+  0.750s  attempt 1   conductor -> compute1   cast  build_and_run_instance",
        "+  2.000s  attempt 2    compute1 -> conductor  cast  build_instances",
    ]


def test_story_includes_the_db_proxy_when_asked(trace):
    lines = trace.story(U1, REQ, include_db_proxy=True)
    assert len(lines) == 8
    assert lines[5] == ("+  1.000s  attempt 1    compute1 -> conductor  call  "
                        "instance_update")
    assert lines[6].endswith("reply instance_update")


def test_story_times_start_at_the_first_shown_event():
    events = [ev("instance_update", "compute.compute1", "conductor.conductor1", kind="call",
                 ts=50.0, uuid=U1),
              ev("build_and_run_instance", "conductor.conductor1", "compute.compute1",
                 ts=51.5, uuid=U1)]
    assert Trace(events).story(U1) == [
        "+  0.000s  attempt 1   conductor -> compute1   cast  build_and_run_instance"]
    assert Trace(events).story(U1, include_db_proxy=True)[1].startswith("+  1.500s")


def test_story_of_an_unknown_instance_is_empty(trace):
    assert trace.story("nope") == []
    assert trace.story("nope", "req-unknown") == []


def test_table_sorts_by_kind_then_count_then_method(trace):
    width = len("build_and_run_instance")
    header, *rows = trace.table().split("\n")
    assert header == f"{'kind':6}  {'method':{width}}  count"
    assert rows == [f"{k:6}  {m:{width}}  {n:5}" for k, m, n in [
        ("call", "instance_update", 1), ("call", "select_destinations", 1),
        ("call", "service_update", 1),
        ("cast", "build_instances", 3), ("cast", "build_and_run_instance", 2),
        ("reply", "instance_update", 1), ("reply", "select_destinations", 1)]]


def test_table_of_an_empty_trace_is_its_header():
    assert Trace([]).table() == "kind    method  count"
