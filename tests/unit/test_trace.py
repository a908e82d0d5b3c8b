"""Unit tests for lab.trace: filtering trace events, counting them, telling one
instance's story, tables, the who-talks-to-whom graph and the summary. Events are
hand-built in the bus's trace-event schema (``ev`` for single events, ``Wire`` for whole
flows: the conductor flow with a reschedule, the legacy flow, the lab's own traffic,
faults). The exports are in test_trace_exports.py."""
from __future__ import annotations

from collections import Counter

import pytest

from lab.trace import DEFAULT_COLUMNS, Trace, lane_order, short
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


# -- whole flows, as the bus would trace them --------------------------------------------------
API, COND, SCHED = "api.api", "conductor.conductor1", "scheduler.scheduler1"
C1, C2, LAB = "compute.compute1", "compute.compute2", "lab.control"


class Wire:
    """Hand-made bus traffic: each message one trace event; ``sent`` and ``ts`` 10 ms apart,
    the clock moving on after each message."""

    def __init__(self, t: float = 1000.0):
        self.events: list[dict] = []
        self.t = t

    def send(self, kind, src, dst, method, *, uuid="", req="req-1", attempt=1,
             phase="routed", reason="", call=None):
        topic, server = protocol.split_identity(dst)
        ctx = {"request_id": req, "instance_uuid": uuid, "attempt": attempt}
        env = (protocol.reply_to(call, src) if call else
               protocol.envelope(kind, src, topic, method, server=server, ctx=ctx))
        env["sent"] = self.t
        self.t += 0.01
        self.events.append(protocol.trace_event(len(self.events) + 1, env, phase, dst,
                                                100 + len(method), reason, ts=self.t))
        self.t += 0.01
        return env

    def call(self, src, dst, method, **kw):
        env = self.send("call", src, dst, method, **kw)
        self.send("reply", dst, src, method, call=env)


def conductor_build(w: Wire, uuid: str = U1, req: str = "req-1") -> Wire:
    """The conductor flow: compute1 fails the build and reschedules; compute2 builds it.
    14 messages, plus a periodic report (a request of its own) of 2 more."""
    w.send("cast", API, COND, "build_instances", uuid=uuid, req=req)
    w.call(COND, SCHED, "select_destinations", uuid=uuid, req=req)
    w.send("cast", COND, C1, "build_and_run_instance", uuid=uuid, req=req)
    w.call(C1, COND, "instance_update", uuid=uuid, req=req)
    w.send("cast", C1, COND, "build_instances", uuid=uuid, req=req, attempt=2)
    w.call(COND, SCHED, "select_destinations", uuid=uuid, req=req, attempt=2)
    w.send("cast", COND, C2, "build_and_run_instance", uuid=uuid, req=req, attempt=2)
    w.call(C2, COND, "instance_update", uuid=uuid, req=req, attempt=2)
    w.call(C1, COND, "service_update", req="periodic-compute1", attempt=0)
    w.call(C2, COND, "instance_update", uuid=uuid, req=req, attempt=2)
    return w


def legacy_build(w: Wire, uuid: str = U1, req: str = "req-1") -> Wire:
    """The old process: the scheduler casts to the computes; compute1 reschedules through
    the scheduler. 8 messages."""
    w.send("cast", API, SCHED, "run_instance", uuid=uuid, req=req)
    w.send("cast", SCHED, C1, "build_and_run_instance", uuid=uuid, req=req)
    w.call(C1, COND, "instance_update", uuid=uuid, req=req)
    w.send("cast", C1, SCHED, "run_instance", uuid=uuid, req=req, attempt=2)
    w.send("cast", SCHED, C2, "build_and_run_instance", uuid=uuid, req=req, attempt=2)
    w.call(C2, COND, "instance_update", uuid=uuid, req=req, attempt=2)
    return w


def lab_traffic(w: Wire) -> Wire:
    """The lab's own client: a fanout to both computes and a call to the scheduler."""
    env = w.send("fanout", LAB, C1, "set_failures", req="lab-1", attempt=0)
    last = w.events[-1]
    w.events.append({**last, "seq": len(w.events) + 1, "dst": C2, "ts": last["ts"] + 0.001})
    assert env["msg_id"] == w.events[-1]["msg_id"]
    w.call(LAB, SCHED, "get_filters", req="lab-2", attempt=0)
    return w


def faults(w: Wire) -> Wire:
    """A dropped cast, a call the conductor gave up on, a cast queued then delivered."""
    w.send("cast", COND, C1, "build_and_run_instance", uuid=U2, req="req-2",
           phase="dropped", reason="drop 1.0")
    w.send("call", COND, SCHED, "select_destinations", uuid=U2, req="req-2",
           phase="expired", reason="call timeout")
    w.send("cast", COND, "compute", "build_and_run_instance", uuid=U2, req="req-2",
           phase="queued", reason="no live server")
    return w


@pytest.fixture
def mixed():
    return Trace(faults(lab_traffic(conductor_build(Wire()))).events)


def test_scenarios_are_what_their_docstrings_say(mixed):
    assert len(Trace(conductor_build(Wire()).events).routed()) == 16
    assert len(Trace(legacy_build(Wire()).events).routed()) == 8
    assert [e["seq"] for e in mixed] == list(range(1, len(mixed) + 1))
    assert len(mixed) == 16 + 4 + 3
    assert all(b["ts"] > a["ts"] and a["sent"] < a["ts"] for a, b in zip(mixed, mixed[1:]))


# -- where ------------------------------------------------------------------------------------
def test_where_without_criteria_keeps_everything(mixed):
    assert mixed.where().events == mixed.events
    assert isinstance(mixed.where(), Trace)


@pytest.mark.parametrize("criteria,expected", [
    ({"kind": "reply"}, 7),
    ({"kind": ("cast", "fanout")}, 4 + 2 + 2),
    ({"method": "select_destinations"}, 5),
    ({"method": {"instance_update", "service_update"}}, 8),
    ({"phase": "dropped"}, 1),
    ({"phase": ["queued", "expired"]}, 2),
    ({"src": "compute"}, 5),
    ({"src": C1}, 3),
    ({"src": "compute.compute"}, 0),
    ({"dst": "compute"}, 6 + 2 + 2),
    ({"dst": C2}, 4),
    ({"src": "lab", "dst": "compute"}, 2),
    ({"instance": U2}, 3),
    ({"instance": ""}, 2 + 4),
    ({"request_id": "periodic-compute1"}, 2),
    ({"request_id": ["lab-1", "lab-2"]}, 4),
    ({"kind": "call", "src": "conductor", "method": "select_destinations"}, 3),
])
def test_where_each_criterion(mixed, criteria, expected):
    found = mixed.where(**criteria)
    assert len(found) == expected
    for field, wanted in criteria.items():
        wanted = {wanted} if isinstance(wanted, str) else set(wanted)
        field = {"instance": "instance_uuid"}.get(field, field)
        assert all(e[field] in wanted or e[field].partition(".")[0] in wanted
                   for e in found)


def test_where_bare_topic_matches_only_whole_topics():
    w = Wire()
    w.send("cast", COND, "compute.compute10", "build_and_run_instance")
    w.send("cast", COND, "computer.x", "build_and_run_instance")
    w.send("cast", COND, "compute", "build_and_run_instance", phase="queued")
    assert [e["dst"] for e in Trace(w.events).where(dst="compute")] == [
        "compute.compute10", "compute"]


def test_where_since_is_a_seq(mixed):
    assert [e["seq"] for e in mixed.where(since=20)] == [21, 22, 23]
    assert len(mixed.where(since=0)) == len(mixed)
    assert len(mixed.where(since=23)) == 0


def test_where_start_end_is_a_half_open_window_on_ts(mixed):
    t3, t6 = mixed[2]["ts"], mixed[5]["ts"]
    assert [e["seq"] for e in mixed.where(start=t3, end=t6)] == [3, 4, 5]
    assert [e["seq"] for e in mixed.where(end=mixed[1]["ts"])] == [1]
    assert [e["seq"] for e in mixed.where(start=mixed[-1]["ts"])] == [23]


def test_without_lab_drops_the_labs_senders_and_receivers(mixed):
    kept = mixed.without_lab()
    assert len(kept) == len(mixed) - 4
    assert not any(e["src"].startswith("lab.") or e["dst"].startswith("lab.") for e in kept)
    assert len(mixed.where(src="lab")) == 3 and len(mixed.where(dst="lab")) == 1


def test_indexing_gives_events_and_slicing_gives_traces(mixed):
    assert mixed[0] is mixed.events[0] and mixed[-1]["seq"] == 23
    part = mixed[2:5]
    assert isinstance(part, Trace) and [e["seq"] for e in part] == [3, 4, 5]
    assert len(mixed[100:]) == 0
    with pytest.raises(IndexError):
        mixed[100]


# -- tables -----------------------------------------------------------------------------------
def test_rows_take_the_columns_asked_for(mixed):
    assert mixed.rows(("seq", "method"))[:2] == [(1, "build_instances"),
                                                 (2, "select_destinations")]
    first = mixed.rows()[0]
    assert len(first) == len(DEFAULT_COLUMNS)
    assert dict(zip(DEFAULT_COLUMNS, first))["src"] == API
    assert Trace([]).rows() == []


def test_repr_is_a_text_table_of_every_short_trace(mixed):
    header, *lines = repr(mixed).split("\n")
    assert header.split() == list(DEFAULT_COLUMNS)
    assert len(lines) == len(mixed)
    assert lines[0].split()[:7] == ["1", f"{mixed[0]['ts']:.3f}", "routed", "cast", API,
                                    COND, "build_instances"]
    assert lines[20].endswith("dropped  cast    conductor.conductor1  compute.compute1      "
                              "build_and_run_instance  uuid-2               1  drop 1.0")
    assert repr(Trace([])).split() == list(DEFAULT_COLUMNS)


def test_repr_of_a_long_trace_shows_its_ends():
    w = Wire()
    for i in range(100):
        w.send("cast", API, COND, f"m{i}")
    header, *lines = repr(Trace(w.events)).split("\n")
    assert len(lines) == 41
    assert lines[20] == "... 60 more ..."
    assert [int(x.split()[0]) for x in lines[:20] + lines[21:]] == [
        *range(1, 21), *range(81, 101)]
    assert len(repr(Trace(w.events[:40])).split("\n")) == 41


def test_html_repr_escapes_text_and_caps_rows():
    w = Wire()
    w.send("cast", "api.<script>alert(1)</script>", COND, "<b>m</b> & co")
    for i in range(250):
        w.send("cast", API, COND, "m")
    page = Trace(w.events)._repr_html_()
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&amp; co" in page
    assert page.count("<tr>") == 1 + 200
    assert "251 events, the first 200 shown" in page
    small = Trace(w.events[:3])._repr_html_()
    assert small.count("<tr>") == 4 and "3 events<" in small


# -- who talks to whom ------------------------------------------------------------------------
def _edges(graph):
    return {(u, v, k): d["count"] for u, v, k, d in graph.edges(keys=True, data=True)}


def test_graph_of_the_conductor_flow():
    g = Trace(conductor_build(Wire()).events).to_networkx()
    assert list(g.nodes) == [API, COND, SCHED, C1, C2]
    assert g.nodes[C2] == {"topic": "compute", "label": "compute2"}
    assert g.nodes[COND]["label"] == "conductor"
    assert _edges(g) == {
        (API, COND, "cast:build_instances"): 1, (C1, COND, "cast:build_instances"): 1,
        (COND, SCHED, "call:select_destinations"): 2,
        (SCHED, COND, "reply:select_destinations"): 2,
        (COND, C1, "cast:build_and_run_instance"): 1,
        (COND, C2, "cast:build_and_run_instance"): 1,
        (C1, COND, "call:instance_update"): 1, (COND, C1, "reply:instance_update"): 1,
        (C2, COND, "call:instance_update"): 2, (COND, C2, "reply:instance_update"): 2,
        (C1, COND, "call:service_update"): 1, (COND, C1, "reply:service_update"): 1}
    assert {v for _, v in g.out_edges(SCHED)} == {COND}
    assert {d["kind"] for *_, d in g.out_edges(SCHED, data=True)} == {"reply"}
    edge = g.edges[COND, SCHED, "call:select_destinations"]
    assert edge["kind"] == "call" and edge["method"] == "select_destinations"
    assert edge["bytes"] == 2 * (100 + len("select_destinations"))


def test_graph_of_the_legacy_flow():
    g = Trace(legacy_build(Wire()).events).to_networkx()
    assert {v for _, v in g.out_edges(SCHED)} == {C1, C2}
    assert not g.has_edge(COND, SCHED) and not g.has_edge(SCHED, COND)
    assert _edges(g)[(C1, SCHED, "cast:run_instance")] == 1
    assert _edges(g)[(API, SCHED, "cast:run_instance")] == 1
    assert sum(_edges(g).values()) == 8


def test_graph_leaves_out_the_lab_and_undelivered_messages(mixed):
    g = mixed.to_networkx()
    assert LAB not in g and "compute" not in g
    assert sum(_edges(g).values()) == 16
    with_lab = mixed.to_networkx(include_lab=True)
    assert with_lab.nodes[LAB]["topic"] == "lab"
    assert _edges(with_lab)[(LAB, C2, "fanout:set_failures")] == 1
    assert _edges(with_lab)[(SCHED, LAB, "reply:get_filters")] == 1


def test_graph_without_the_db_proxy():
    g = Trace(conductor_build(Wire()).events).to_networkx(include_db_proxy=False)
    assert not {k.partition(":")[2] for *_, k in g.edges(keys=True)} & DB_PROXY_METHODS
    assert sum(_edges(g).values()) == 8


# -- summary ----------------------------------------------------------------------------------
def test_summary_of_the_conductor_flow():
    s = Trace(conductor_build(Wire()).events).summary()
    assert s["messages"] == 16
    assert s["by_kind"] == {"cast": 4, "call": 6, "reply": 6, "fanout": 0, "notification": 0}
    assert s["builds"] == 1 and s["messages_per_build"] == 14.0   # periodic report left out
    assert s["reschedules"] == 1 and s["select_destinations_calls"] == 2
    assert s["db_proxy_calls"] == 4
    assert s["dropped"] == 0 and s["expired"] == 0
    assert s["scheduler_peers_sent_to"] == []
    assert s["degree"][SCHED] == {"out": 1, "in": 1, "sent": 2, "received": 2}
    assert s["degree"][COND] == {"out": 3, "in": 4, "sent": 8, "received": 8}
    assert s["degree"][API] == {"out": 1, "in": 0, "sent": 1, "received": 0}
    assert list(s["degree"]) == [API, COND, SCHED, C1, C2]


def test_summary_of_the_legacy_flow():
    s = Trace(legacy_build(Wire()).events).summary()
    assert s["messages"] == 8 and s["builds"] == 1 and s["messages_per_build"] == 8.0
    assert s["reschedules"] == 1 and s["select_destinations_calls"] == 0
    assert s["scheduler_peers_sent_to"] == [C1, C2]
    assert s["degree"][SCHED] == {"out": 2, "in": 2, "sent": 2, "received": 2}


def test_summary_counts_faults_and_two_builds_per_request():
    w = faults(conductor_build(conductor_build(Wire(), U1, "req-a"), U2, "req-b"))
    s = Trace(w.events).summary()
    assert s["builds"] == 2 and s["messages_per_build"] == 14.0
    assert s["reschedules"] == 2 and s["dropped"] == 1 and s["expired"] == 1
    batch = Wire()
    batch.send("cast", API, COND, "build_instances", req="req-x")
    batch.send("cast", COND, C1, "build_and_run_instance", uuid=U1, req="req-x")
    batch.send("cast", COND, C2, "build_and_run_instance", uuid=U2, req="req-x")
    assert Trace(batch.events).summary()["messages_per_build"] == 1.5


def test_summary_of_an_empty_trace():
    s = Trace([]).summary()
    assert s["messages"] == 0 and s["builds"] == 0 and s["messages_per_build"] == 0.0
    assert s["degree"] == {} and s["scheduler_peers_sent_to"] == []
    assert set(s["by_kind"]) == {"cast", "call", "reply", "fanout", "notification"}


def test_summary_sorts_computes_as_numbers():
    w = Wire()
    for host in ("compute.compute10", "compute.compute2"):
        w.send("cast", SCHED, host, "build_and_run_instance", uuid=host)
    assert Trace(w.events).summary()["scheduler_peers_sent_to"] == [
        "compute.compute2", "compute.compute10"]


def test_summary_text_has_the_numbers():
    text = Trace(legacy_build(Wire()).events).summary_text()
    assert "messages                        8  (cast 4, call 2, reply 2" in text
    assert "(8.0 messages per build)" in text
    assert "scheduler sent to          compute1, compute2" in text
    assert f"  {SCHED}  out   2  in   2" in text
    assert "scheduler sent to          none" in Trace([]).summary_text()


@pytest.mark.parametrize("names,expected", [
    ([C2, "lab.x", SCHED, API, COND, "compute.compute10", C1],
     [API, COND, SCHED, C1, C2, "compute.compute10", "lab.x"]),
    (["zeta.z", "lab.b", "lab.a", "compute"], ["compute", "lab.a", "lab.b", "zeta.z"]),
])
def test_lane_order(names, expected):
    assert lane_order(names + names) == expected
