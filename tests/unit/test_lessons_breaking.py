"""Unit tests for lab.lessons.breaking (lesson 05's helpers), against hand-built trace
events and small fakes of the lab: no processes."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from lab.api_client import Response
from lab.lessons import breaking
from lab.lessons.breaking import (boot_status, bus_sees, compute_state, fault_type,
                                  outcome_table, outcomes, phases, unexplained, wait_compute_state,
                                  wait_event, wait_gone, wait_until)
from lab.trace import Trace
from orchestrator.messaging import protocol

U1, U2 = "uuid-1", "uuid-2"


def ev(seq, method, src, dst, *, kind="cast", phase="routed", uuid=U1, reason=""):
    env = protocol.envelope(kind, src, dst.partition(".")[0], method,
                            ctx={"request_id": "req-1", "instance_uuid": uuid, "attempt": 1})
    return protocol.trace_event(seq, env, phase, dst, 100, reason, ts=100.0 + seq)


class FakeLab:
    """What the helpers use of a Lab: peers, service states, the API, the tap."""

    def __init__(self, peers=(), states=(), services=(), events=()):
        self.peers = list(peers)
        self.states = list(states)          # successive answers of service_state
        self._services = list(services)     # successive answers of services()
        self.events = list(events)
        self.posted = []
        self.api = SimpleNamespace(post=self._post)
        self.tap = SimpleNamespace(wait_for=self._wait_for)

    def child_name(self, service):
        return {"scheduler": "scheduler.scheduler1"}.get(service, f"compute.{service}")

    def bus(self):
        return SimpleNamespace(control=lambda what: self.peers if what == "peers" else None)

    def service_state(self, service):
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def services(self):
        return self._services.pop(0) if len(self._services) > 1 else self._services[0]

    def _post(self, path, body):
        self.posted.append((path, body))
        return Response(202, {"server": {"id": "new-id"}}, 0.01, {})

    def _wait_for(self, predicate, timeout, since):
        for e in self.events:
            if e["seq"] > since and predicate(e):
                return e
        raise TimeoutError("no matching trace event")


def server(name, status, fault=None):
    record = {"id": f"id-{name}", "name": name, "status": status}
    if fault is not None:
        record["fault"] = {"code": 500, "message": fault}
    return record


# -- waiting ---------------------------------------------------------------------------------
def test_wait_until_returns_once_true_and_names_what_it_waited_for():
    answers = iter([False, False, True])
    wait_until(lambda: next(answers), timeout=5, every=0)
    with pytest.raises(TimeoutError, match="scheduler gone"):
        wait_until(lambda: False, timeout=0.02, what="scheduler gone", every=0.005)


def test_bus_sees_a_live_peer_by_its_identity():
    lab = FakeLab(peers=[{"identity": "scheduler.scheduler1", "alive": False},
                         {"identity": "compute.compute1", "alive": True}])
    assert bus_sees(lab, "compute1") and not bus_sees(lab, "scheduler")
    assert not bus_sees(lab, "compute2")


def test_wait_gone_needs_the_process_down_and_the_bus_to_agree(monkeypatch):
    monkeypatch.setattr(breaking.time, "sleep", lambda s: None)
    lab = FakeLab(peers=[{"identity": "scheduler.scheduler1", "alive": True}],
                  states=["up", "down"])
    with pytest.raises(TimeoutError, match="scheduler gone"):
        wait_gone(lab, "scheduler", timeout=0.01)   # down, but the bus still routes to it
    lab.peers[0]["alive"] = False
    wait_gone(lab, "scheduler", timeout=1)


def test_wait_event_matches_every_field_after_the_mark():
    events = [ev(1, "build_instances", "api.api", "conductor", phase="queued"),
              ev(2, "build_instances", "api.api", "conductor", phase="queued", uuid=U2),
              ev(3, "build_instances", "api.api", "conductor.conductor1", uuid=U2)]
    lab = FakeLab(events=events)
    assert wait_event(lab, 0, instance_uuid=U2, phase="queued")["seq"] == 2
    assert wait_event(lab, 2, instance_uuid=U2)["seq"] == 3
    with pytest.raises(TimeoutError):
        wait_event(lab, 0, instance_uuid=U1, phase="expired")


def test_compute_state_reads_the_apis_services_and_can_be_waited_for(monkeypatch):
    monkeypatch.setattr(breaking.time, "sleep", lambda s: None)
    up = [{"binary": "nova-conductor", "host": "conductor1", "state": "up"},
          {"binary": "nova-compute", "host": "compute2", "state": "up"}]
    down = [{**s, "state": "down"} for s in up]
    lab = FakeLab(services=[up, up, down])
    assert compute_state(lab, "compute2") == "up"
    assert compute_state(lab, "compute9") == "unknown"
    wait_compute_state(lab, "compute2", "down", timeout=5)
    assert compute_state(lab, "conductor1") == "unknown"   # not a compute


def test_boot_status_posts_a_server_and_keeps_the_status():
    lab = FakeLab()
    assert boot_status(lab, "vm1") == (202, "new-id")
    path, body = lab.posted[0]
    assert path == "/servers"
    assert body == {"server": {"name": "vm1", "flavorRef": "m1.small", "imageRef": "cirros"}}


# -- reading outcomes ------------------------------------------------------------------------
@pytest.mark.parametrize("message, expected", [
    (None, ""),
    ("", ""),
    ("MessagingTimeout: no reply to scheduler.select_destinations within 5.0s",
     "MessagingTimeout"),
    ("BuildTimeout: Build of instance x timed out: no progress for 10s", "BuildTimeout"),
    ("something went wrong: badly", "Exception"),
    ("no colon at all", "Exception"),
])
def test_fault_type_names_the_exception_of_the_fault(message, expected):
    assert fault_type(server("vm", "ERROR", message)) == expected


def test_phases_of_one_instances_method_leave_out_pacing():
    trace = Trace([
        ev(1, "select_destinations", "conductor.conductor1", "scheduler", kind="call",
           phase="queued", reason="no live server"),
        ev(2, "select_destinations", "conductor.conductor1", "scheduler", kind="call",
           phase="queued", uuid=U2),
        ev(3, "select_destinations", "conductor.conductor1", "scheduler.scheduler1",
           kind="call", phase="delayed"),
        ev(4, "select_destinations", "conductor.conductor1", "scheduler.scheduler1",
           kind="call", phase="expired", reason="call timeout"),
        ev(5, "build_instances", "api.api", "conductor.conductor1"),
    ])
    assert phases(trace, U1, "select_destinations") == ["queued", "expired"]
    assert phases(trace, U2, "select_destinations") == ["queued"]
    assert phases(trace, U1, "build_and_run_instance") == []


def test_outcomes_table_and_unexplained():
    records = [server("ok-1", "ACTIVE"),
               server("nosched-1", "ERROR", "MessagingTimeout: no reply"),
               server("stuck-1", "BUILD"),
               server("silent-1", "ERROR")]
    rows = outcomes(records)
    assert rows == [("ok-1", "ACTIVE", ""), ("nosched-1", "ERROR", "MessagingTimeout"),
                    ("stuck-1", "BUILD", ""), ("silent-1", "ERROR", "")]
    assert outcome_table(rows[:2]).splitlines() == [
        "instance   status  fault",
        "ok-1       ACTIVE  -",
        "nosched-1  ERROR   MessagingTimeout"]
    assert unexplained(records) == ["stuck-1", "silent-1"]
    assert unexplained(records[:2]) == []
