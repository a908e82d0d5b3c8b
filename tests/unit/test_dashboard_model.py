"""Unit tests for lab.dashboard.model: the dashboard's numbers and rows without a server.
Trace events are built with the bus's own ``protocol.envelope``/``trace_event`` by a
``Wire`` (a clock and a seq counter): a conductor-flow build with one reschedule, a legacy
build, faults (dropped, queued, expired, delayed), heartbeats and the lab's own traffic."""
from __future__ import annotations

import ast
import html
import math
import subprocess
import sys
from pathlib import Path

import pytest

import lab.dashboard.model as model_module
from lab.dashboard.model import (BUS, DROP_COLOR, KIND_COLORS, KIND_MARKERS,
                                 MESSAGE_COLUMNS, NODE_STATE_COLORS, TASK_STATE_COLORS,
                                 TIMELINE_COLUMNS, DashboardModel, Updates)
from lab.dashboard.topology import captions
from lab.trace import Trace
from orchestrator.messaging import protocol

API, COND, SCHED = "api.api", "conductor.conductor1", "scheduler.scheduler1"
C1, C2, C3 = "compute.compute1", "compute.compute2", "compute.compute3"
LAB = "lab.control"
SERVICES = [API, COND, SCHED, C1, C2, C3]
U1, U2, U3, U4, U5 = ("aaaa1111-u1", "bbbb2222-u2", "cccc3333-u3", "dddd4444-u4",
                      "eeee5555-u5")
R1, R2, R3, R4 = "req-1", "req-2", "req-3", "req-4"
T0 = 1000.0
ORANGE, GREEN, RED = "#ff7f0e", "#2ca02c", "#d62728"


class Wire:
    """Builds trace events in order: each one 0.1 s after the previous, sent 0.01 s
    before the bus decided its fate."""

    def __init__(self, t: float = T0):
        self.t, self.seq, self.events = t, 0, []

    def emit(self, env: dict, phase: str = "routed", dst: str | None = None,
             reason: str = "") -> dict:
        self.t += 0.1
        self.seq += 1
        env["sent"] = self.t - 0.01
        dst = dst or protocol.identity(env["topic"], env["server"])
        event = protocol.trace_event(self.seq, env, phase, dst, 120, reason, ts=self.t)
        self.events.append(event)
        return event

    @staticmethod
    def env(kind: str, method: str, src: str, dst: str, uuid: str = "", rid: str = R1,
            attempt: int = 1) -> dict:
        topic, server = protocol.split_identity(dst)
        return protocol.envelope(kind, src, topic, method, server=server, ctx={
            "request_id": rid, "instance_uuid": uuid, "attempt": attempt})

    def cast(self, method: str, src: str, dst: str, uuid: str = "", rid: str = R1,
             attempt: int = 1, phase: str = "routed", reason: str = "") -> dict:
        return self.emit(self.env("cast", method, src, dst, uuid, rid, attempt), phase,
                         reason=reason)

    def call(self, method: str, caller: str, callee: str, uuid: str = "", rid: str = R1,
             attempt: int = 1) -> None:
        """A call and its reply, both delivered."""
        env = self.env("call", method, caller, callee, uuid, rid, attempt)
        self.emit(env)
        self.emit(protocol.reply_to(env, callee, result=None))


def conductor_build(w: Wire) -> list[dict]:
    """U1: compute1 fails and casts build_instances back; compute2 succeeds. 14 routed."""
    start = len(w.events)
    w.cast("build_instances", API, COND, U1)
    w.call("select_destinations", COND, SCHED, U1)
    w.cast("build_and_run_instance", COND, C1, U1)
    w.call("instance_update", C1, COND, U1)
    w.call("action_event", C1, COND, U1)
    w.cast("build_instances", C1, COND, U1, attempt=2)          # the reschedule
    w.call("select_destinations", COND, SCHED, U1, attempt=2)
    w.cast("build_and_run_instance", COND, C2, U1, attempt=2)
    w.call("instance_update", C2, COND, U1, attempt=2)
    return w.events[start:]


def legacy_build(w: Wire, reschedule: bool = False) -> list[dict]:
    """U2 the seed's way: the API casts run_instance to the scheduler, which casts to the
    compute; a reschedule goes back to the scheduler."""
    start = len(w.events)
    w.cast("run_instance", API, SCHED, U2, R2)
    w.cast("build_and_run_instance", SCHED, C1 if reschedule else C3, U2, R2)
    if reschedule:
        w.cast("run_instance", C1, SCHED, U2, R2, attempt=2)
        w.cast("build_and_run_instance", SCHED, C2, U2, R2, attempt=2)
    w.call("instance_update", C3, COND, U2, R2)
    return w.events[start:]


def faults(w: Wire) -> list[dict]:
    """A dropped build (U3), a queued then delivered one (U4), a call whose caller gave up
    (U3), a delayed then delivered cast (U4)."""
    start = len(w.events)
    w.cast("build_and_run_instance", COND, C2, U3, R3, phase="dropped", reason="fault: drop")
    queued = Wire.env("cast", "build_and_run_instance", COND, C3, U4, R4)
    w.emit(queued, "queued", reason="receiver down")
    w.emit(queued)
    w.emit(Wire.env("call", "instance_update", C2, COND, U3, R3), "expired",
           reason="caller gave up")
    delayed = Wire.env("cast", "instance_update", C3, COND, U4, R4)
    w.emit(delayed, "delayed", reason="fault: delay")
    w.emit(delayed)
    return w.events[start:]


def heartbeats(w: Wire) -> list[dict]:
    start = len(w.events)
    w.call("service_update", C1, COND, rid="periodic-compute1", attempt=0)
    w.call("compute_node_update", C1, COND, rid="periodic-compute1", attempt=0)
    w.call("instances_on_host", C2, COND, rid="init-compute2", attempt=0)
    return w.events[start:]


def lab_traffic(w: Wire) -> list[dict]:
    start = len(w.events)
    w.call("set_failure", LAB, C1, rid="lab-1", attempt=0)
    return w.events[start:]


def everything() -> list[dict]:
    w = Wire()
    conductor_build(w)
    legacy_build(w)
    faults(w)
    heartbeats(w)
    lab_traffic(w)
    return w.events


def rows(columns: dict[str, list]) -> list[dict]:
    names = list(columns)
    return [dict(zip(names, values)) for values in zip(*columns.values())]


def model(**filters) -> DashboardModel:
    m = DashboardModel(SERVICES)
    m.set_filters(**filters)
    return m


# -- layout (tests/unit/test_dashboard_layout.py tests the geometry) ----------------------------
def test_add_service_lays_out_again_and_ingest_adds_unseen_senders():
    m = DashboardModel([API, COND, SCHED, C1])
    version, y1 = m.layout_version, m.positions[C1][1]
    m.add_service(C2)
    assert m.layout_version == version + 1 and C2 in m.positions
    assert m.positions[C1][1] > y1 > m.positions[C2][1]
    m.add_service(C2)
    m.add_service(BUS)
    assert m.layout_version == version + 1
    w = Wire()
    m.ingest([w.cast("build_and_run_instance", COND, "compute.compute9", U1)])
    assert "compute.compute9" in m.positions and m.layout_version == version + 2
    assert m.lanes() == [API, COND, SCHED, C1, C2, "compute.compute9"]


# -- message rows ------------------------------------------------------------------------------
def test_routed_rows_go_from_sender_to_receiver_relative_to_the_first_sent():
    m = model()
    events = conductor_build(Wire())
    update = m.ingest(events)
    assert isinstance(update, Updates)
    assert tuple(update.messages) == MESSAGE_COLUMNS
    assert tuple(update.timeline) == TIMELINE_COLUMNS
    assert len(update) == 14 == len(update.messages["seq"])
    assert m.origin == events[0]["sent"]
    out = rows(update.messages)
    first = out[0]
    assert (first["x0"], first["y0"]) == m.positions[API]
    assert (first["x1"], first["y1"]) == m.positions[COND]
    assert first["sent"] == 0.0 and first["t"] == pytest.approx(0.01)
    assert out[5]["t"] == pytest.approx(events[5]["ts"] - events[0]["sent"])
    assert (first["color"], first["marker"], first["label"]) == (
        KIND_COLORS["cast"], "circle", "build_instances #1")
    assert [r["seq"] for r in out] == [e["seq"] for e in events]
    reply = out[2]
    assert (reply["kind"], reply["src"], reply["dst"]) == ("reply", SCHED, COND)
    assert (reply["marker"], reply["color"]) == ("triangle", KIND_COLORS["reply"])
    assert (reply["x1"], reply["y1"]) == m.positions[COND]
    resched = next(r for r in out if r["src"] == C1 and r["method"] == "build_instances")
    assert resched["label"] == "build_instances #2" and resched["attempt"] == 2
    assert resched["instance"] == U1
    update_call = next(r for r in out if r["method"] == "instance_update")
    assert (update_call["label"], update_call["marker"]) == ("instance_update", "square")


def test_queued_waits_at_the_bus_dropped_bursts_halfway_expired_marks_the_caller():
    m = model()
    w = Wire()
    events = faults(w)
    first = m.ingest(events[:2])                       # the dropped one and the queued one
    assert m.counters()["waiting"] == 1
    assert m.nodes_data()["info"][-1] == "1 waiting"
    rest = m.ingest(events[2:])
    assert m.counters()["waiting"] == 0 and m.nodes_data()["info"][-1] == ""
    out = rows(first.messages) + rows(rest.messages)
    by_phase = {}
    for r in out:
        by_phase.setdefault(r["phase"], []).append(r)
    dropped, = by_phase["dropped"]
    (cx, cy), (dx, dy) = m.positions[COND], m.positions[C2]
    assert (dropped["x0"], dropped["y0"]) == (cx, cy)
    assert (dropped["x1"], dropped["y1"]) == (pytest.approx((cx + dx) / 2),
                                              pytest.approx((cy + dy) / 2))
    assert (dropped["color"], dropped["marker"], dropped["reason"]) == (
        DROP_COLOR, "x", "fault: drop")
    queued, = by_phase["queued"]
    assert (queued["x0"], queued["y0"]) == m.positions[COND]
    assert (queued["x1"], queued["y1"]) == m.positions[BUS]
    assert queued["marker"] == KIND_MARKERS["cast"]
    delivered = next(r for r in by_phase["routed"] if r["instance"] == U4
                     and r["method"] == "build_and_run_instance")
    assert (delivered["x1"], delivered["y1"]) == m.positions[C3]
    expired, = by_phase["expired"]
    assert (expired["x0"], expired["y0"]) == (expired["x1"], expired["y1"]) == m.positions[C2]
    assert (expired["marker"], expired["label"], expired["color"]) == ("x", "timeout",
                                                                       DROP_COLOR)
    assert "delayed" not in by_phase                   # not animated ...
    timeline = rows(first.timeline) + rows(rest.timeline)
    assert [r["phase"] for r in timeline] == ["dropped", "queued", "routed", "expired",
                                              "delayed", "routed"]   # ... but drawn
    assert len(out) == 5


def test_an_expired_queued_cast_is_marked_at_the_bus():
    m = model()
    w = Wire()
    env = Wire.env("cast", "build_and_run_instance", COND, C3, U4, R4)
    w.emit(env, "queued", reason="receiver down")
    w.emit(env, "expired", reason="queue ttl")
    row = rows(m.ingest(w.events).messages)[1]
    assert (row["x0"], row["y0"]) == (row["x1"], row["y1"]) == m.positions[BUS]
    assert (row["label"], row["marker"]) == ("expired", "x")
    assert m.counters()["expired"] == 1 and m.counters()["waiting"] == 0


# -- filters -----------------------------------------------------------------------------------
def methods_shown(m: DashboardModel, events: list[dict]) -> set[str]:
    return set(m.ingest(events).messages["method"])


def test_heartbeats_and_lab_traffic_are_hidden_by_default_but_counted():
    events = everything()
    m = model()
    shown = methods_shown(m, events)
    assert {"service_update", "compute_node_update", "instances_on_host",
            "set_failure"}.isdisjoint(shown)
    assert {"instance_update", "action_event", "build_instances"} <= shown
    counts = m.counters()["by_method"]
    assert counts["call", "service_update"] == 1 and counts["reply", "service_update"] == 1
    assert counts["call", "instances_on_host"] == 1 and counts["call", "set_failure"] == 1
    assert counts["reply", "set_failure"] == 1
    assert {"service_update", "instances_on_host"} <= methods_shown(
        model(show_heartbeats=True), events)
    lab = model(show_lab=True)
    update = lab.ingest(events)
    assert {(LAB, C1), (C1, LAB)} <= set(zip(update.messages["src"], update.messages["dst"]))
    assert lab.lanes()[-1] == LAB and LAB not in model().lanes()
    assert counts == lab.counters()["by_method"]


def test_db_proxy_toggle_and_instance_filter():
    events = everything()
    no_db = model(show_db_proxy=False)
    shown = methods_shown(no_db, events)
    assert {"instance_update", "action_event", "service_update"}.isdisjoint(shown)
    assert {"build_instances", "select_destinations", "build_and_run_instance"} <= shown
    with_beats = model(show_db_proxy=False, show_heartbeats=True)   # independent toggles
    assert "service_update" in methods_shown(with_beats, events)
    assert "instance_update" not in methods_shown(with_beats, events)
    only_u1 = model(instance=U1[:6])
    update = only_u1.ingest(events)
    assert set(update.messages["instance"]) == {U1} and len(update) == 14
    assert set(update.timeline["instance"]) == {U1}
    only_u1.set_filters(instance="")
    assert only_u1.instance_filter == "" and only_u1.show_db_proxy is True
    everyone = model()
    everyone.ingest(events)
    assert only_u1.counters() == everyone.counters()


def test_visible_predicate():
    m = model()
    w = Wire()
    beat = w.emit(Wire.env("call", "service_update", C1, COND, rid="periodic-compute1"))
    boot_beat = w.emit(Wire.env("call", "compute_node_update", C1, COND, rid="init-compute1"))
    saved = w.emit(Wire.env("call", "service_update", C1, COND, rid=R1))   # not periodic
    lab_in = w.emit(Wire.env("call", "instance_update", LAB, COND, rid="lab-x"))
    assert not m.visible(beat) and not m.visible(boot_beat) and not m.visible(lab_in)
    assert m.visible(saved)
    m.set_filters(show_db_proxy=False)
    assert not m.visible(saved)
    m.set_filters(show_heartbeats=True, show_lab=True, show_db_proxy=True)
    assert m.visible(beat) and m.visible(lab_in)
    m.set_filters(instance="zzz")
    assert not m.visible(saved)


# -- timeline ----------------------------------------------------------------------------------
def test_timeline_lanes_dashes_and_times():
    m = model()
    events = conductor_build(Wire()) + faults(Wire(T0 + 50))
    update = m.ingest(events)
    assert m.lanes() == SERVICES
    out = rows(update.timeline)
    assert len(out) == 14 + 6
    call, reply = out[1], out[2]
    assert (call["kind"], call["y0"], call["y1"], call["dash"]) == ("call", 1, 2, "dashed")
    assert (reply["kind"], reply["y0"], reply["y1"], reply["dash"]) == ("reply", 2, 1,
                                                                        "dotted")
    cast = out[0]
    assert (cast["y0"], cast["y1"], cast["dash"], cast["color"]) == (0, 1, "solid",
                                                                     KIND_COLORS["cast"])
    assert cast["t0"] == 0.0 and cast["t1"] == pytest.approx(0.01)
    assert all(r["t1"] >= r["t0"] for r in out)
    resched = out[8]
    assert (resched["src"], resched["y0"], resched["y1"], resched["label"]) == (
        C1, 3, 1, "build_instances #2")
    dropped = next(r for r in out if r["phase"] == "dropped")
    assert (dropped["y0"], dropped["y1"], dropped["color"]) == (1, 4, DROP_COLOR)
    fanout = Wire.env("fanout", "refresh", SCHED, "compute")
    note = Wire.env("notification", "compute.instance.create.end", C1, "notifications")
    w = Wire(T0 + 90)
    more = rows(m.ingest([w.emit(fanout, dst=C2), w.emit(note)]).timeline)
    assert [r["dash"] for r in more] == ["solid", "solid"]
    assert more[1]["y1"] == more[1]["y0"] == 3          # an unknown bare topic: its own lane
    assert m.lanes() == SERVICES


def test_a_bare_topic_receiver_sits_with_its_topic():
    m = model()
    w = Wire()
    event = w.cast("build_and_run_instance", COND, "compute", U1, phase="dropped",
                   reason="no live server")
    update = m.ingest([event])
    assert "compute" not in m.positions
    mx = (m.positions[COND][0] + m.positions[C1][0]) / 2
    assert update.messages["x1"][0] == pytest.approx(mx)
    assert update.timeline["y1"] == [3]                 # the first compute's lane


# -- counters ----------------------------------------------------------------------------------
def test_counters_of_the_conductor_flow_with_one_reschedule():
    m = model()
    m.ingest(conductor_build(Wire()))
    c = m.counters()
    assert c["reschedules"] == 1 and c["select_destinations_calls"] == 2
    assert c["by_method"] == {
        ("cast", "build_instances"): 2, ("call", "select_destinations"): 2,
        ("reply", "select_destinations"): 2, ("cast", "build_and_run_instance"): 2,
        ("call", "instance_update"): 2, ("reply", "instance_update"): 2,
        ("call", "action_event"): 1, ("reply", "action_event"): 1}
    assert c["routed"] == 14 and c["events"] == 14
    assert (c["dropped"], c["expired"], c["queued"]) == (0, 0, 0)
    assert c["builds_started"] == 1 and c["messages_per_build"] == 14.0
    assert c["attempts"] == {U1: 2} and c["hosts_tried"] == {U1: [C1, C2]}
    assert c["edges"][COND, SCHED] == 2 and c["edges"][SCHED, COND] == 2
    assert c["edges"][C1, COND] == 3 and c["edges"][API, COND] == 1
    assert (API, C1) not in c["edges"]


def test_counters_agree_with_the_trace_summary_and_do_not_depend_on_batching():
    events = everything()
    whole = model()
    whole.ingest(events)
    chunked = model(show_lab=True, instance=U2)
    for i in range(0, len(events), 3):
        chunked.ingest(events[i:i + 3])
    c = whole.counters()
    assert c == chunked.counters()
    s = Trace(events).summary()
    assert c["reschedules"] == s["reschedules"] == 1
    assert c["select_destinations_calls"] == s["select_destinations_calls"] == 2
    assert (c["dropped"], c["expired"]) == (s["dropped"], s["expired"]) == (1, 1)
    assert c["builds_started"] == s["builds"] == 3                 # U1, U2, U4
    assert c["messages_per_build"] == pytest.approx(s["messages_per_build"])
    assert c["build_messages"] == 14 + 4 + 2                        # R1, R2, R4's messages
    assert c["by_method"] == dict(Trace(events).counts())
    assert c["queued"] == 1 and c["delayed"] == 1 and c["routed"] == s["messages"]
    assert c["events"] == len(events)


# -- reschedules -------------------------------------------------------------------------------
def test_reschedule_data_shows_attempt_and_the_loop_through_the_scheduler():
    m = model()
    assert m.reschedule_data()["instance"] == []
    m.ingest(conductor_build(Wire()) + legacy_build(Wire(T0 + 10)))
    data = m.reschedule_data()
    assert data["instance"] == [U1]                     # U2 took one attempt
    row = rows(data)[0]
    assert row["text"] == "attempt 2/3" and row["color"] == ORANGE
    p = m.positions
    assert list(zip(row["xs"], row["ys"])) == [p[COND], p[C1], p[COND], p[SCHED], p[COND],
                                               p[C2]]
    assert math.dist((row["x"], row["y"]), p[C2]) < 0.5
    assert row["hosts"] == "compute1 > compute2"
    m.set_max_attempts(5)
    assert m.reschedule_data()["text"] == ["attempt 2/5"]
    m.instances_data([server(U1, "BUILD", "spawning")], T0 + 20)
    assert m.reschedule_data()["color"] == [ORANGE]
    m.instances_data([server(U1, "ACTIVE")], T0 + 21)
    assert m.reschedule_data()["color"] == [GREEN]


def test_reschedule_data_in_error_legacy_path_and_one_note_per_compute():
    m = model()
    m.ingest(legacy_build(Wire(), reschedule=True))
    w = Wire(T0 + 30)
    w.cast("build_and_run_instance", COND, C1, U5, "req-5")
    w.cast("build_instances", C1, COND, U5, "req-5", attempt=2)
    w.cast("build_and_run_instance", COND, C2, U5, "req-5", attempt=2)   # alternate: no
    m.ingest(w.events)                                                   # scheduler asked
    data = rows(m.reschedule_data())
    assert [r["instance"] for r in data] == [U2, U5]
    p = m.positions
    assert list(zip(data[0]["xs"], data[0]["ys"])) == [p[SCHED], p[C1], p[SCHED], p[C2]]
    assert list(zip(data[1]["xs"], data[1]["ys"])) == [p[COND], p[C1], p[COND], p[C2]]
    assert (data[0]["x"], data[0]["y"]) == (data[1]["x"], data[1]["y"]) == p[C2]
    # one note at compute2, counting both, never two labels piled up
    notes = rows(m.annotations_data([]))
    assert [(n["node"], n["text"]) for n in notes] == [(C2, "2 rescheduling")]
    m.instances_data([server(U2, "ERROR", fault="MaxRetriesExceeded: ...")], T0 + 40)
    assert m.reschedule_data()["color"] == [RED, ORANGE]
    notes = rows(m.annotations_data([]))
    assert [(n["node"], n["text"]) for n in notes] == [(C2, "attempt 2/3")]   # in progress
    m.instances_data([server(U2, "ERROR", fault="MaxRetriesExceeded: ..."),
                      server(U5, "ACTIVE")], T0 + 41)
    notes = rows(m.annotations_data([]))
    assert [(n["node"], n["text"]) for n in notes] == [(C2, "2 rescheduled, 1 failed")]


# -- instances ---------------------------------------------------------------------------------
def server(uuid: str, status: str, task: str | None = None, name: str | None = None,
           fault: str = "", host: str | None = None, attempts: int = 1) -> dict:
    record = {"id": uuid, "name": name or f"vm-{uuid[:4]}", "status": status,
              "OS-EXT-STS:task_state": task, "OS-EXT-SRV-ATTR:host": host,
              "OS-EXT-LAB:num_attempts": attempts, "created": "2025-01-01T00:00:00Z"}
    if fault:
        record["fault"] = {"code": 500, "message": fault}
    return record


def test_instances_data_remembers_transitions_across_polls():
    m = DashboardModel(SERVICES, origin=T0)
    m.instances_data([server(U1, "BUILD", "scheduling")], T0 + 1)
    m.instances_data([server(U1, "BUILD", "spawning", host="compute2")], T0 + 2)
    m.instances_data([server(U1, "BUILD", "spawning"), server(U2, "BUILD", "scheduling")],
                     T0 + 3)
    m.instances_data([server(U1, "ACTIVE", host="compute2", attempts=2),
                      server(U2, "ERROR", fault="NoValidHost: none")], T0 + 4)
    data = m.instances_data([server(U1, "ACTIVE", host="compute2", attempts=2),
                             server(U2, "ERROR", fault="NoValidHost: none")], T0 + 5)
    assert tuple(data) == model_module.INSTANCE_COLUMNS
    out = rows(data)
    first = [r for r in out if r["instance"] == U1]
    assert [r["state"] for r in first] == ["scheduling", "spawning", "ACTIVE"]
    assert [r["start"] for r in first] == [1.0, 2.0, 4.0]
    assert [r["end"] for r in first] == [2.0, 4.0, 5.0]
    assert [r["color"] for r in first] == [TASK_STATE_COLORS[s] for s in
                                           ("scheduling", "spawning", "ACTIVE")]
    assert {r["y"] for r in first} == {0} and first[-1]["fault"] == ""
    assert first[-1]["host"] == "compute2" and first[-1]["attempts"] == 2
    second = [r for r in out if r["instance"] == U2]
    assert [(r["state"], r["start"], r["end"]) for r in second] == [
        ("scheduling", 3.0, 4.0), ("ERROR", 4.0, 5.0)]
    assert {r["y"] for r in second} == {1} and second[0]["fault"] == "NoValidHost: none"
    gone = rows(m.instances_data([server(U2, "ERROR")], T0 + 9))   # U1 no longer listed
    assert [r["end"] for r in gone if r["instance"] == U1][-1] == 5.0
    assert [r["end"] for r in gone if r["instance"] == U2][-1] == 9.0


def test_instances_data_keeps_the_newest_30_lanes():
    m = DashboardModel(SERVICES, origin=T0)
    for i in range(35):
        m.instances_data([server(f"uuid-{i:02d}", "BUILD", "scheduling")], T0 + i)
    data = m.instances_data([], T0 + 40)
    assert len(set(data["instance"])) == 30 == len(data["y"])
    assert "uuid-34" in data["instance"] and "uuid-04" not in data["instance"]
    assert data["y"][data["instance"].index("uuid-34")] == 29
    assert data["y"][data["instance"].index("uuid-05")] == 0


# -- metrics -----------------------------------------------------------------------------------
def test_metrics_names_and_values():
    m = model()
    m.ingest(conductor_build(Wire()))
    m.instances_data([server(U1, "BUILD", "spawning"), server(U5, "BUILD", "scheduling")],
                     T0 + 3)
    m.instances_data([server(U1, "ACTIVE"), server(U5, "ERROR", fault="x")], T0 + 4)
    data = m.metrics_data(T0 + 5, [100.0, 300.0, 200.0])
    assert tuple(data) == ("name", "value")
    table = dict(zip(data["name"], data["value"]))
    assert data["name"][:12] == [
        "builds per second", "success rate", "finished builds", "builds started",
        "reschedules", "messages per build", "select_destinations calls",
        "messages routed", "queued", "dropped", "expired", "API create p50 (ms)"]
    assert table["builds per second"] == "0.2" and table["success rate"] == "50%"
    assert table["finished builds"] == "2" and table["builds started"] == "1"
    assert table["reschedules"] == "1" and table["messages per build"] == "14.0"
    assert table["select_destinations calls"] == "2" and table["messages routed"] == "14"
    assert table["dropped"] == "0" and table["API create p50 (ms)"] == "200"
    assert table["cast build_instances"] == "2" and len(data["name"]) == 12 + 4   # top 4
    assert all(isinstance(v, str) for v in data["value"])
    # a lesson puts what it is about first, in its order; the rest keep theirs
    first = m.metrics_data(T0 + 5, [100.0], first=["API create p50 (ms)", "reschedules",
                                                   "no such metric"])["name"]
    assert first[:3] == ["API create p50 (ms)", "reschedules", "builds per second"]
    assert sorted(first) == sorted(m.metrics_data(T0 + 5, [100.0])["name"])
    later = dict(zip(*m.metrics_data(T0 + 20).values()))
    assert later["builds per second"] == "0.0" and "API create p50 (ms)" not in later
    assert m.counters(T0 + 5)["builds_per_second"] == pytest.approx(0.2)
    assert model().metrics_data(T0)["value"][1] == "-"


# -- topology ----------------------------------------------------------------------------------
def test_edges_data_only_used_edges_widths_grow_with_the_count():
    m = model()
    assert m.edges_data() == {c: [] for c in model_module.EDGE_COLUMNS}
    m.ingest(conductor_build(Wire()) + heartbeats(Wire(T0 + 20)))
    edges = {(r["src"], r["dst"]): r for r in rows(m.edges_data())}
    assert set(edges) == {(API, COND), (COND, SCHED), (SCHED, COND), (COND, C1), (C1, COND),
                          (COND, C2), (C2, COND)}
    assert edges[C1, COND]["count"] == 3 and edges[COND, C1]["count"] == 3  # + 2 replies
    assert edges[API, COND]["width"] < edges[COND, SCHED]["width"] < edges[C1, COND]["width"]
    assert edges[C1, COND]["color"] == KIND_COLORS["call"]      # 2 calls, 1 cast
    assert edges[API, COND]["color"] == KIND_COLORS["cast"]
    assert all(len(r["xs"]) == len(r["ys"]) == 4 for r in edges.values())
    (x0, y0), (x1, y1) = m.positions[API], m.positions[COND]
    # from centre to centre, its middle to the right of the centres' line
    there = list(zip(edges[API, COND]["xs"], edges[API, COND]["ys"]))
    assert there[0] == (x0, y0) and there[-1] == (x1, y1)
    for t, (x, y) in zip((0.2, 0.8), there[1:3]):
        on_line = (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
        assert math.dist((x, y), on_line) == pytest.approx(0.06, abs=1e-3)
        cross = (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)
        assert cross < 0                                  # right of travel
    w = Wire(T0 + 40)
    for _ in range(20):
        w.call("select_destinations", COND, SCHED, U1)
    before = edges[COND, SCHED]["width"]
    m.ingest(w.events)
    grown = {(r["src"], r["dst"]): r for r in rows(m.edges_data())}
    assert grown[COND, SCHED]["count"] == 22 and grown[COND, SCHED]["width"] > before + 2
    assert grown[C1, COND]["count"] == 3               # heartbeats hidden ...
    m.set_filters(show_heartbeats=True)
    assert {(r["src"], r["dst"]): r["count"] for r in rows(m.edges_data())}[C1, COND] == 5


def test_nodes_data_states_colours_and_info():
    m = model()
    data = m.nodes_data({C1: "down", "compute2": "paused", BUS: "down"},
                        {C1: "0 vms, 12 GB free, fail 50%"})
    assert tuple(data) == model_module.NODE_COLUMNS
    nodes = {r["name"]: r for r in rows(data)}
    assert list(nodes) == SERVICES + [BUS]
    assert nodes[C1]["state"] == "down" and nodes[C1]["color"] == NODE_STATE_COLORS["down"]
    assert nodes[C2]["state"] == "paused" and nodes[C3]["state"] == "up"
    assert nodes[BUS]["state"] == "bus" and nodes[BUS]["label"] == "bus"
    assert (nodes[C1]["label"], nodes[COND]["label"]) == ("compute1", "conductor")
    assert nodes[C1]["info"] == "0 vms, 12 GB free, fail 50%" and nodes[API]["info"] == ""
    assert (nodes[SCHED]["x"], nodes[SCHED]["y"]) == m.positions[SCHED]
    m.add_service(LAB)
    assert LAB not in m.nodes_data()["name"]
    m.set_filters(show_lab=True)
    assert LAB in m.nodes_data()["name"]


def hosts(n: int) -> list[str]:
    return [f"compute.compute{i}" for i in range(1, n + 1)]


def snapshot(n: int, vms: dict[int, int], down: set[int] = frozenset(),
             failing: dict[int, float] | None = None) -> dict:
    """A feed snapshot of ``n`` computes: ``vms`` per host number, some down, some with
    a reschedule rate."""
    failing = failing or {}
    return {"states": {**{h: "down" if i in down else "up"
                          for i, h in enumerate(hosts(n), 1)}, API: "up"},
            "hypervisors": [{"hypervisor_hostname": f"compute{i}", "running_vms": vms.get(i, 0),
                             "free_ram_mb": 16384 - 2048 * vms.get(i, 0)}
                            for i in range(1, n + 1)],
            "failures": {f"compute{i}": {"reschedule": r} for i, r in failing.items()}}


def test_captions_read_the_snapshot_a_failing_compute_is_failing():
    states, stats = captions(snapshot(3, {1: 2}, down={3}, failing={2: 0.5}))
    assert states == {C1: "up", C2: "failing", C3: "down", API: "up"}
    assert stats[C1] == {"vms": 2, "free_gb": 12, "fail": 0.0}
    assert stats[C2]["fail"] == 0.5
    nodes = {r["name"]: r for r in rows(model().nodes_data(states, stats=stats))}
    assert nodes[C1]["info"] == "2 vms, 12 GB free"
    assert nodes[C2]["info"] == "0 vms, 16 GB free, fail 50%"
    assert nodes[C2]["state"] == "failing" and nodes[C3]["state"] == "down"


def test_a_compact_column_puts_each_computes_numbers_on_its_name_line():
    m = DashboardModel([API, COND, SCHED, *hosts(20)])
    assert m.layout.mode == "compact"
    states, stats = captions(snapshot(20, {1: 3}, failing={1: 1.0}))
    nodes = {r["name"]: r for r in rows(m.nodes_data(states, stats=stats))}
    assert nodes[C1]["label"] == "compute1  3 vms \u00b7 fail 100%" and nodes[C1]["info"] == ""
    assert nodes["compute.compute20"]["label"] == "compute20  0 vms"
    assert nodes[C1]["size"] < nodes[COND]["size"]
    assert nodes[COND]["label"] == "conductor"                 # the tiers keep their style


def test_a_thousand_computes_are_eight_groups_with_counts_and_the_busiest_named():
    m = DashboardModel([API, COND, SCHED, *hosts(1000)])
    assert m.layout.mode == "grouped"
    states, stats = captions(
        snapshot(1000, {7: 9, 400: 2}, down={5, 6}, failing={130: 0.3}))
    nodes = {r["name"]: r for r in rows(m.nodes_data(states, stats=stats))}
    groups = [n for n in nodes if n.startswith("compute.")]
    assert groups == [f"compute.compute{a}..compute{a + 124}" for a in range(1, 1000, 125)]
    first, second = nodes[groups[0]], nodes[groups[1]]
    assert first["label"] == "compute1\u2026compute125"
    assert first["info"] == "125 hosts \u00b7 2 down \u00b7 9 vms"
    assert first["state"] == "down"                             # its worst host's state
    assert second["info"] == "125 hosts \u00b7 1 failing \u00b7 0 vms"
    assert second["state"] == "failing"
    notes = {n: t for n, t in zip(*(m.annotations_data([], stats)[k]
                                    for k in ("node", "text")))}
    assert notes[groups[0]] == "busiest compute7: 9 vms"
    assert notes[groups[3]] == "busiest compute400: 2 vms"
    assert groups[1] not in notes                               # no servers: no note
    # a message to any host is drawn to its group; the lanes are the groups
    w = Wire()
    w.cast("build_and_run_instance", COND, "compute.compute130", U1)
    m.ingest(w.events)
    [edge] = rows(m.edges_data())
    assert (edge["src"], edge["dst"]) == (COND, groups[1])
    assert m.lanes()[3:] == groups
    labels = m.lane_labels()
    assert labels[3] == "compute1\u2026compute125" and labels[0] == API


# -- purity ------------------------------------------------------------------------------------
def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.partition(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names


def test_the_model_imports_no_ui_or_network_library():
    assert {"bokeh", "tornado", "zmq"}.isdisjoint(imported(Path(model_module.__file__)))
    package = Path(model_module.__file__).with_name("__init__.py")
    assert imported(package) == set()


def test_importing_the_model_loads_neither_bokeh_nor_tornado():
    code = ("import sys, lab.dashboard.model; "
            "print(sorted({m.partition('.')[0] for m in sys.modules} & {'bokeh', 'tornado'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


def test_a_resize_reschedule_is_drawn_like_a_build_reschedule():
    """A destination's failed prep_resize goes back to the conductor: migrate_server, a
    call as in Nova, answered once the conductor has sent the move on. Counted as a
    reschedule (by the dashboard and the trace summary alike), drawn along the loop, and
    the hosts tried are the prep_resize targets, not the compute-to-compute hops."""
    m = model()
    w = Wire()
    w.cast("migrate_server", API, COND, U1)
    w.call("select_destinations", COND, SCHED, U1)
    w.cast("prep_resize", COND, C2, U1)
    handback = Wire.env("call", "migrate_server", C2, COND, U1, attempt=2)
    w.emit(handback)
    w.call("select_destinations", COND, SCHED, U1, attempt=2)
    w.cast("prep_resize", COND, C3, U1, attempt=2)
    w.emit(protocol.reply_to(handback, COND, result=None))       # the compute hears
    w.cast("resize_instance", C3, C1, U1, attempt=2)
    w.cast("finish_resize", C1, C3, U1, attempt=2)
    update = m.ingest(w.events)
    c = m.counters()
    assert c["reschedules"] == Trace(w.events).summary()["reschedules"] == 1
    assert c["select_destinations_calls"] == 2
    assert c["hosts_tried"] == {U1: [C2, C3]} and c["attempts"] == {U1: 2}
    assert c["builds_started"] == 0
    [row] = rows(m.reschedule_data())
    path = list(zip(row["xs"], row["ys"]))
    assert path == [m.positions[n] for n in (COND, C2, COND, SCHED, COND, C3)]
    reply = [r for r in rows(update.timeline) if r["kind"] == "reply"
             and r["method"] == "migrate_server"]
    assert [(r["src"], r["dst"], r["dash"]) for r in reply] == [(COND, C2, "dotted")]


def test_legacy_resize_tries_are_the_schedulers_casts_to_computes():
    m = model()
    w = Wire()
    w.cast("prep_resize", API, SCHED, U1)                 # not a try: not at a compute
    w.cast("prep_resize", SCHED, C2, U1)
    w.cast("prep_resize", C2, SCHED, U1, attempt=2)       # the old reschedule
    w.cast("prep_resize", SCHED, C3, U1, attempt=2)
    m.ingest(w.events)
    c = m.counters()
    assert c["hosts_tried"] == {U1: [C2, C3]} and c["reschedules"] == 1


def test_a_server_first_seen_resizing_counts_as_built_and_its_lane_is_coloured():
    m = DashboardModel(SERVICES, origin=T0)
    m.instances_data([server(U1, "VERIFY_RESIZE"), server(U5, "REBUILD"),
                      server("u-err", "ERROR", fault="x")], T0 + 1)
    data = m.instances_data([server(U1, "ACTIVE"), server(U5, "REBUILD")], T0 + 2)
    c = m.counters(T0 + 2)
    assert (c["finished"], c["active"], c["error"]) == (3, 2, 1)
    colors = dict(zip(data["state"], data["color"]))
    assert colors["VERIFY_RESIZE"] == TASK_STATE_COLORS["VERIFY_RESIZE"] != \
        colors["ACTIVE"]
    assert colors["REBUILD"] == TASK_STATE_COLORS["REBUILD"]


def test_a_compute_to_compute_edge_is_an_arc_beside_the_column_not_through_it():
    m = model()
    w = Wire()
    w.cast("resize_instance", C3, C1, U1)
    w.cast("finish_resize", C1, C3, U1)
    m.ingest(w.events)
    edges = {(s, d): (xs, ys) for s, d, xs, ys in zip(*(m.edges_data()[k] for k in (
        "src", "dst", "xs", "ys")))}
    (down_x, down_y), (up_x, up_y) = edges[C1, C3], edges[C3, C1]
    x = m.positions[C1][0]
    assert len(down_x) == 9 and down_x[0] == down_x[-1] == x
    # bows out to the left, away from the computes' labels, not through compute2
    assert min(down_x) < x - 0.3 and min(up_x) < x - 0.3
    assert min(down_x) != min(up_x)                            # both directions show
    assert (down_y[0], down_y[-1]) == (m.positions[C1][1], m.positions[C3][1])
    assert (up_y[0], up_y[-1]) == (m.positions[C3][1], m.positions[C1][1])
    assert all(px > m.positions[SCHED][0] for px in down_x + up_x)


def test_metrics_html_is_one_row_per_metric_with_text_escaped():
    from lab.dashboard.text import metrics_html
    out = metrics_html({"name": ["builds started", "cast <x>"], "value": ["3", "a&b"]})
    assert out.count("<tr>") == 3                       # header + 2 rows
    assert "builds started" in out and "&lt;x&gt;" in out and "a&amp;b" in out
    assert "<x>" not in out
    assert metrics_html({"name": [], "value": []}).count("<tr>") == 1


# -- fault labels ------------------------------------------------------------------------------
def test_a_fault_is_named_where_it_was_written():
    """At the compute that sent instance_fault_create (a resize step that failed there,
    a fatal build); at the conductor when it wrote the fault itself (no such call)."""
    w = Wire()
    w.call("instance_fault_create", C2, COND, U1)        # finish_resize failed on compute2
    m = model()
    m.ingest(w.events)
    servers = [
        {"id": U1, "name": "vm1", "status": "ERROR", "OS-EXT-SRV-ATTR:host": "compute1",
         "fault": {"message": "MigrationError: ResizeError: Resize error: on compute2"}},
        {"id": U2, "name": "vm2", "status": "ERROR", "OS-EXT-SRV-ATTR:host": "compute3",
         "fault": {"message": "MigrationError: MigrationTimeout: no progress"}},
        {"id": U3, "name": "vm3", "status": "ERROR", "OS-EXT-SRV-ATTR:host": "compute3",
         "fault": {"message": "BuildAbortException: interrupted"}},    # seen before we came
        {"id": U4, "name": "vm4", "status": "ACTIVE", "fault": {"message": "x: y"}}]
    notes = {r["text"]: r for r in rows(m.annotations_data(servers))}
    # at a compute: one note each (the newest fault written there); at the conductor:
    # its own faults, stacked below its caption
    assert set(notes) == {"vm1: MigrationError", "vm2: MigrationError",
                          "vm3: BuildAbortException"}
    assert notes["vm1: MigrationError"]["node"] == C2
    assert notes["vm3: BuildAbortException"]["node"] == C3
    assert notes["vm2: MigrationError"]["node"] == COND
    assert (notes["vm2: MigrationError"]["x"], notes["vm2: MigrationError"]["y"]) == \
        m.positions[COND]
    assert notes["vm1: MigrationError"]["dx"] > 0 and notes["vm2: MigrationError"]["dy"] > 0
    # vm1 rebuilt (ACTIVE), then failed again by the conductor: at the conductor now
    m.annotations_data([{**servers[0], "status": "ACTIVE"}])
    (again,) = rows(m.annotations_data(servers[:1]))
    assert again["node"] == COND


def test_the_conductor_shows_its_newest_faults_stacked_and_each_compute_one_note():
    m = model()
    servers = [{"id": f"u{i}", "name": f"vm{i}", "status": "ERROR",
                "fault": {"message": "NoValidHost: none"}} for i in range(5)]
    notes = rows(m.annotations_data(servers))
    assert [n["text"] for n in notes] == ["vm4: NoValidHost", "vm3: NoValidHost",
                                          "vm2: NoValidHost"]        # the newest three
    assert len({n["dy"] for n in notes}) == 3 and all(n["node"] == COND for n in notes)
    servers = [{"id": f"b{i}", "name": f"b{i}", "status": "ERROR",
                "OS-EXT-SRV-ATTR:host": "compute1",
                "fault": {"message": "BuildAbortException: x"}} for i in range(3)]
    notes = rows(m.annotations_data(servers))
    assert [(n["node"], n["text"]) for n in notes] == [(C1, "b2: BuildAbortException")]


# -- hostile names: text everywhere, markup nowhere --------------------------------------------
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "<b>bold</b>",
           "&amp;", "it's \"quoted\" `too`", "two\nlines <i>x</i>",
           ("\u202eevil\u200f שלום 😀 " * 40)[:255]]


def test_hostile_names_and_faults_stay_verbatim_in_the_columns():
    """Columns are drawn as canvas text, option labels and escaped tooltip values: an
    escaped name there would show as "&lt;b&gt;", so the model must not escape them."""
    m = DashboardModel(SERVICES, origin=T0)
    servers = [server(f"{i:04d}beef-u{i}", "ERROR", name=name, host="compute1",
                      fault=f"BuildAbortException: {name} aborted")
               for i, name in enumerate(HOSTILE)]
    data = rows(m.instances_data(servers, T0 + 1))
    assert {r["instance"]: r["name"] for r in data} == {s["id"]: s["name"] for s in servers}
    assert {r["fault"] for r in data} == {f"BuildAbortException: {n} aborted" for n in HOSTILE}
    assert m.annotations_data(servers)["text"] == [       # compute1's newest fault
        f"\u2068{HOSTILE[6]}\u2069: BuildAbortException"]   # isolated: it holds RTL
    assert m.annotations_data(servers[:2])["text"] == [
        '"><img src=x onerror=alert(1)>: BuildAbortException']
    conductor_faults = [{**s, "OS-EXT-SRV-ATTR:host": None,
                         "fault": {"message": "NoValidHost: none"}} for s in servers[:4]]
    assert m.annotations_data(conductor_faults)["text"] == [
        f"{HOSTILE[3]}: NoValidHost", f"{HOSTILE[2]}: NoValidHost",
        '"><img src=x onerror=alert(1)>: NoValidHost']


def test_metrics_html_escapes_a_hostile_method_name():
    from lab.dashboard.text import metrics_html
    w = Wire()
    for name in HOSTILE[:3]:
        w.cast(name, API, COND)
    m = model()
    m.ingest(w.events)
    out = metrics_html(m.metrics_data(T0 + 5))
    for name in HOSTILE[:3]:
        assert name not in out
        assert html.escape(f"cast {name}") in out
    assert "<script" not in out and "<img" not in out and "<b>" not in out


def test_instance_options_label_each_server_by_its_name_as_text():
    from lab.dashboard.text import OPTION_CHARS, instance_options
    servers = [server(f"{i:04d}beef-u{i}", "ACTIVE", name=name)
               for i, name in enumerate(HOSTILE)] + [server("ffff0000-twin", "ACTIVE",
                                                             name=HOSTILE[0])]
    options = instance_options(servers)
    assert [v for v, _ in options] == [s["id"] for s in servers]
    labels = [label for _, label in options]
    assert labels[0] == "<script>alert(1)</script> (0000beef)"       # verbatim, not escaped
    assert labels[3] == "&amp; (0003beef)"
    assert labels[-1] == "<script>alert(1)</script> (ffff0000)"      # same name, two choices
    assert len(set(labels)) == len(labels)
    long = labels[6]
    assert long.startswith("\u2068") and long.endswith("\u2069 (0006beef)")   # isolated
    assert len(long.removeprefix("\u2068").split("\u2069")[0]) == OPTION_CHARS
    assert long.split("\u2069")[0].endswith("…")
    assert len(instance_options(servers * 10)) == 50                   # the newest 50
    assert instance_options([{"id": "abc", "name": ""}]) == [("abc", "abc")]


def test_isolated_leaves_left_to_right_text_alone():
    from lab.dashboard.text import isolated
    assert isolated("vm-1 <b>") == "vm-1 <b>"
    assert isolated("😀 emoji") == "😀 emoji"
    assert isolated("שלום") == "\u2068שלום\u2069"
    assert isolated("a\u202eb") == "\u2068a\u202eb\u2069"          # an override
    assert isolated("a\u2067b") == "\u2068a\u2067b\u2069"          # an unclosed isolate
