"""Unit tests for lab.lessons.db_proxy (lesson 06's helpers), against hand-built trace
events in the bus's schema and small fakes of the lab: no processes."""
from __future__ import annotations

import os
from collections import Counter
from types import SimpleNamespace

import pytest

from lab.lessons import db_proxy
from lab.lessons.db_proxy import (build_rows, database_files, from_computes, heartbeat_periods,
                                  not_proxy_or_build, open_files, per_host, proxy_counts,
                                  proxy_share, strays, task_state, text_table,
                                  wait_builds_finished, wait_heartbeats, watch_task_states)
from lab.trace import Trace
from orchestrator.messaging import protocol

U1, U2 = "uuid-1", "uuid-2"
C1, C2, COND = "compute.compute1", "compute.compute2", "conductor.conductor1"
_seq = iter(range(1, 100_000))


def ev(method, src, dst, *, kind="call", phase="routed", uuid=U1, ts=100.0,
       request_id="req-1"):
    env = protocol.envelope(kind, src, dst.partition(".")[0], method,
                            ctx={"request_id": request_id, "instance_uuid": uuid, "attempt": 1})
    return protocol.trace_event(next(_seq), env, phase, dst, 100, "", ts=ts)


def save(src=C1, uuid=U1, method="instance_update"):
    """A proxy call from a compute and the conductor's reply."""
    return [ev(method, src, COND, uuid=uuid), ev(method, COND, src, kind="reply", uuid=uuid)]


def successful_build(src=C1, uuid=U1):
    events = [ev("build_and_run_instance", COND, src, kind="cast", uuid=uuid)]
    for method in ("compute_node_update", "instance_update", "instance_update",
                   "instance_update", "instance_update", "action_event",
                   "compute_node_update"):
        events += save(src, uuid, method)
    return events


# -- who holds the database ------------------------------------------------------------------
def test_open_files_lists_this_process_files(tmp_path):
    path = tmp_path / "lab.sqlite"
    with open(path, "w"):
        assert str(path) in open_files(os.getpid())
    assert open_files(2 ** 22 + 12345) == set()   # no such process


def test_database_files_per_service(tmp_path, monkeypatch):
    database = str(tmp_path / "lab.sqlite")
    files = {1: {database, database + "-wal"}, 2: {str(tmp_path / "lab.json")}}
    monkeypatch.setattr(db_proxy, "open_files", lambda pid: files.get(pid, set()))
    children = {"conductor.conductor1": SimpleNamespace(pid=1),
                "compute.compute1": SimpleNamespace(pid=2)}
    lab = SimpleNamespace(
        run_dir=tmp_path, cluster=SimpleNamespace(children=children),
        service_names=lambda: ["conductor", "compute1", "bus"],
        child_name=lambda s: {"conductor": "conductor.conductor1",
                              "compute1": "compute.compute1"}.get(s, s))
    assert database_files(lab) == {"conductor": True, "compute1": False, "bus": False}


# -- what the computes send ------------------------------------------------------------------
def test_strays_and_off_protocol_messages_from_computes():
    good = [*successful_build(),
            ev("build_instances", C1, "conductor", kind="cast", uuid=U2),
            ev("set_failure", C1, "lab.control", kind="reply", uuid=""),
            ev("update_instance_info", C1, "scheduler.scheduler1", kind="fanout"),
            ev("instance_update", C2, COND, phase="dropped")]   # not delivered: not counted
    trace = Trace(good)
    assert strays(trace) == [] and not_proxy_or_build(trace) == []
    assert len(from_computes(trace)) == 7 + 1 + 1 + 1
    to_scheduler = ev("select_destinations", C1, "scheduler.scheduler1")
    cast_to_lab = ev("hello", C1, "lab.control", kind="cast")
    odd_call = ev("build_instances", C1, COND)                # a call, not the cast
    odd_cast = ev("instance_update", C1, COND, kind="cast")   # a cast, not a call
    info_cast = ev("update_instance_info", C1, "scheduler.scheduler1", kind="cast")
    trace = Trace(good + [to_scheduler, cast_to_lab, odd_call, odd_cast, info_cast])
    assert strays(trace) == [to_scheduler, cast_to_lab, info_cast]     # fanouts only
    assert not_proxy_or_build(trace) == [odd_call, odd_cast]


def test_proxy_counts_and_build_rows_per_instance():
    trace = Trace(successful_build(C1, U1) + successful_build(C2, U2)
                  + save(C1, "", "service_update"))
    assert proxy_counts(trace, U1) == Counter(instance_update=4, compute_node_update=2,
                                              action_event=1)
    assert proxy_counts(trace)["service_update"] == 1
    assert sum(proxy_counts(trace).values()) == 15
    records = [{"id": U1, "name": "vm-1", "OS-EXT-SRV-ATTR:host": "compute1"},
               {"id": U2, "name": "vm-2", "OS-EXT-SRV-ATTR:host": None}]
    assert build_rows(trace, records) == [("vm-1", "compute1", 4, 2, 1), ("vm-2", "-", 4, 2, 1)]


def test_text_table_aligns_numbers_right():
    text = text_table(("instance", "host", "n"), [("vm-1", "compute1", 4), ("vm-10", "c2", 12)])
    assert text.splitlines() == ["instance  host       n",
                                 "vm-1      compute1   4",
                                 "vm-10     c2        12"]
    assert text_table(("a", "b"), []) == "a  b"


def test_per_host_counts_calls_and_casts_in_lane_order():
    c10 = "compute.compute10"
    events = successful_build(c10) + save(C2) + [
        ev("build_instances", C2, "conductor", kind="cast"),
        ev("set_failure", C2, "lab.control", kind="reply")]
    sent = per_host(Trace(events), U1)
    assert list(sent) == ["compute2", "compute10"]
    assert sent["compute2"] == Counter(instance_update=1, build_instances=1)
    assert sent["compute10"]["instance_update"] == 4


def test_proxy_share_counts_calls_and_replies_without_the_lab():
    events = successful_build() + [
        ev("build_instances", "api.api", COND, kind="cast"),
        ev("set_failure", "lab.control", C1, uuid=""),
        ev("instance_update", C1, COND, phase="queued")]
    assert proxy_share(Trace(events)) == (14, 16)


def test_wait_builds_finished_waits_for_the_report_after_the_action_event():
    active_saved = successful_build(C1, U1)[:11]          # up to the save of "active"
    events = active_saved + successful_build(C2, U2) + successful_build(C1, U1)[11:]
    lab = SimpleNamespace(tap=FakeTap(events))
    wait_builds_finished(lab, [U1, U2], since=0, timeout=1)
    lab = SimpleNamespace(tap=FakeTap(active_saved + successful_build(C2, U2)))
    with pytest.raises(TimeoutError):   # U1's action event and last report never came
        wait_builds_finished(lab, [U1, U2], since=0, timeout=1)
    wait_builds_finished(SimpleNamespace(tap=None), [], since=0, timeout=1)


# -- task states -----------------------------------------------------------------------------
def record(status, task_state=None):
    return {"status": status, "OS-EXT-STS:task_state": task_state}


def test_task_state_is_the_task_state_while_building():
    assert task_state(record("BUILD", "spawning")) == "spawning"
    assert task_state(record("BUILD")) == "BUILD"
    assert task_state(record("ACTIVE")) == "ACTIVE"


def test_watch_task_states_keeps_each_state_once_in_order(monkeypatch):
    monkeypatch.setattr(db_proxy.time, "sleep", lambda s: None)
    polls = iter([record("BUILD", "scheduling"), record("BUILD", "scheduling"),
                  record("BUILD", "networking"), record("BUILD", "spawning"),
                  record("BUILD", "spawning"), record("ERROR")])
    lab = SimpleNamespace(server=lambda sid: next(polls))
    assert watch_task_states(lab, "id", timeout=5) == ["scheduling", "networking",
                                                       "spawning", "ERROR"]


def test_watch_task_states_times_out_on_a_stuck_build(monkeypatch):
    monkeypatch.setattr(db_proxy.time, "sleep", lambda s: None)
    lab = SimpleNamespace(server=lambda sid: record("BUILD", "spawning"))
    with pytest.raises(TimeoutError, match="still spawning"):
        watch_task_states(lab, "id", timeout=0.01)


# -- heartbeats ------------------------------------------------------------------------------
def beat(src, ts, phase="routed"):
    return ev("service_update", src, COND, ts=ts, uuid="", phase=phase,
              request_id=f"periodic-{src}")


def test_heartbeat_periods_per_compute():
    events = [beat(C1, 10.0), beat(C2, 10.2), beat(C1, 10.5), beat(C2, 10.8),
              beat(C1, 11.0), beat(C1, 11.2, phase="dropped"),
              ev("service_update", COND, C1, kind="reply", ts=10.01, uuid=""),
              ev("compute_node_update", C1, COND, ts=10.02, uuid=""),
              beat("compute.compute3", 12.0)]           # one heartbeat: no period yet
    periods = heartbeat_periods(Trace(events))
    assert periods == pytest.approx({"compute1": 0.5, "compute2": 0.6})


class FakeTap:
    def __init__(self, events):
        self.events = events

    def wait_for(self, predicate, timeout, since):
        for e in self.events:
            if e["seq"] > since and predicate(e):
                return e
        raise TimeoutError("no matching trace event")


def test_wait_heartbeats_waits_for_every_compute():
    events = [beat(C1, 10.0), beat(C1, 10.5), beat(C2, 10.6), beat(C1, 11.0),
              *save(C2), beat(C2, 11.1)]
    lab = SimpleNamespace(config=SimpleNamespace(compute_names=lambda: ["compute1", "compute2"]),
                          tap=FakeTap(events), trace=lambda since: Trace(events))
    beats = wait_heartbeats(lab, since=0, count=2, timeout=1)
    assert [e["src"] for e in beats] == [C1, C1, C2, C1, C2]
    with pytest.raises(TimeoutError):
        wait_heartbeats(lab, since=0, count=3, timeout=1)
