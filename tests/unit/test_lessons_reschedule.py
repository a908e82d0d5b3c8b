"""Unit tests for lab.lessons.reschedule (lesson 03): outcomes read from the API's
records, the loop's messages counted in a hand-built trace (the bus's event schema), and
the counts the seed's process implies, set beside each other."""
from __future__ import annotations

import itertools

import pytest

from lab.lessons.reschedule import (LOOP_MESSAGES, expected_counts, failed_builds,
                                    fault_type, hosts_tried, last_error, loop_counts,
                                    outcome_table)
from lab.trace import Trace
from orchestrator.messaging import protocol

_seq = itertools.count(1)
API, COND, SCHED = "api.api", "conductor.conductor1", "scheduler.scheduler1"


def ev(method, src, dst, kind="cast", phase="routed", uuid="u1", attempt=1):
    env = protocol.envelope(kind, src, dst.partition(".")[0], method, ctx={
        "request_id": "req-1", "instance_uuid": uuid, "attempt": attempt})
    return protocol.trace_event(next(_seq), env, phase, dst, 100, "", ts=100.0)


def attempt(host, n, uuid="u1", failed=False, delayed=False):
    """One pass of the loop: pick a host, cast the build, maybe cast back."""
    events = [ev("select_destinations", COND, SCHED, "call", uuid=uuid, attempt=n),
              ev("select_destinations", SCHED, COND, "reply", uuid=uuid, attempt=n)]
    if delayed:   # the demo preset's pacing: a "delayed" event before the delivery
        events.insert(0, ev("select_destinations", COND, SCHED, "call", "delayed", uuid, n))
    events.append(ev("build_and_run_instance", COND, f"compute.{host}", uuid=uuid, attempt=n))
    events.append(ev("instance_update", f"compute.{host}", COND, "call", uuid=uuid, attempt=n))
    if failed:
        events.append(ev("build_instances", f"compute.{host}", COND, uuid=uuid, attempt=n + 1))
    return events


def record(name, status, attempts, host=None, fault=None):
    r = {"id": f"id-{name}", "name": name, "status": status, "OS-EXT-SRV-ATTR:host": host,
         "OS-EXT-LAB:num_attempts": attempts}
    if fault:
        r["fault"] = {"code": 500, "message": fault}
    return r


MAX = "MaxRetriesExceeded: Exceeded maximum number of retries. Exceeded max scheduling " \
      "attempts 2 for instance u2. Last exception: RescheduledException: injected"


def one_reschedule():
    return Trace([ev("build_instances", API, COND), *attempt("compute1", 1, failed=True),
                  *attempt("compute2", 2, delayed=True)])


def test_fault_type_is_the_exception_name():
    assert fault_type(record("a", "ERROR", 2, fault=MAX)) == "MaxRetriesExceeded"
    assert fault_type(record("b", "ERROR", 1, fault="NoValidHost: no host")) == "NoValidHost"
    assert fault_type(record("c", "ACTIVE", 1, "compute1")) == ""


def test_outcome_table_lines_up_and_marks_missing_values():
    text = outcome_table([record("vm1", "ACTIVE", 2, "compute2"),
                          record("db-10", "ERROR", 2, fault=MAX)])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "status", "host", "attempts", "fault"]
    assert lines[1].split() == ["vm1", "ACTIVE", "compute2", "2", "-"]
    assert lines[2].split() == ["db-10", "ERROR", "-", "2", "MaxRetriesExceeded"]
    assert lines[1].index("ACTIVE") == lines[2].index("ERROR")


def test_hosts_tried_follows_the_build_casts_of_one_instance():
    trace = Trace([*one_reschedule(), *attempt("compute3", 1, uuid="other")])
    assert hosts_tried(trace, "u1") == ["compute1", "compute2"]
    assert hosts_tried(trace, "other") == ["compute3"]
    assert hosts_tried(trace, "nobody") == []


def test_loop_counts_one_reschedule():
    counts = loop_counts(one_reschedule())
    assert list(counts) == list(LOOP_MESSAGES)
    assert counts == {"api_build_instances": 1, "select_destinations": 2,
                      "build_and_run_instance": 2, "reschedule_casts": 1}


def test_loop_counts_leave_out_undelivered_messages():
    lost = ev("build_instances", "compute.compute1", COND, phase="dropped")
    counts = loop_counts(Trace([*one_reschedule(), lost]))
    assert counts["reschedule_casts"] == 1


def test_expected_counts_match_an_active_instance_after_one_reschedule():
    records = [record("vm1", "ACTIVE", 2, "compute2")]
    assert expected_counts(records) == loop_counts(one_reschedule())


def test_expected_counts_for_a_batch_with_max_retries():
    records = [record("db-1", "ERROR", 2, fault=MAX), record("db-2", "ACTIVE", 2, "compute2"),
               record("db-3", "ACTIVE", 1, "compute3")]
    assert expected_counts(records) == {"api_build_instances": 1, "select_destinations": 3,
                                        "build_and_run_instance": 5, "reschedule_casts": 3}


def test_expected_counts_with_alternates_ask_once_per_request():
    records = [record("alt", "ACTIVE", 3, "compute3")]
    assert expected_counts(records, alternates=True)["select_destinations"] == 1
    assert expected_counts(records, alternates=False)["select_destinations"] == 3
    assert expected_counts(records * 2, requests=2, alternates=True) == {
        "api_build_instances": 2, "select_destinations": 2, "build_and_run_instance": 6,
        "reschedule_casts": 4}


@pytest.mark.parametrize("bad", [record("x", "ERROR", 1, fault="NoValidHost: none"),
                                 record("y", "BUILD", 1)])
def test_expected_counts_refuse_other_endings(bad):
    with pytest.raises(ValueError, match="not the end of a reschedule loop"):
        expected_counts([bad])


def test_failed_builds_per_host():
    hypervisors = [{"hypervisor_hostname": "compute1", "OS-EXT-LAB:failed_builds": 2},
                   {"hypervisor_hostname": "compute2", "OS-EXT-LAB:failed_builds": 0}]
    assert failed_builds(hypervisors) == {"compute1": 2, "compute2": 0}


def event(name, attempt, result, details="", at=0.0):
    return {"event": name, "host": None, "attempt": attempt, "start_time": at,
            "finish_time": at, "result": result, "details": details}


def test_last_error_names_the_event_that_gave_up():
    actions = [{"action": "create", "events": [
        event("conductor_schedule_and_build_instances", 1, "Success", at=1.0),
        event("compute_build_and_run_instance", 1, "Error", "RescheduledException: x", 2.0),
        event("conductor_schedule_and_build_instances", 2, "Success", at=3.0),
        event("compute_build_and_run_instance", 2, "Error", "RescheduledException: y", 4.0),
        event("conductor_schedule_and_build_instances", 3, "Error", MAX, 5.0)]}]
    assert last_error(actions) == ("conductor_schedule_and_build_instances", 3,
                                   "MaxRetriesExceeded")
    assert last_error([{"action": "create", "events": actions[0]["events"][:2]}]) == (
        "compute_build_and_run_instance", 1, "RescheduledException")
    assert last_error([{"action": "create", "events": []}]) == ("", 0, "")
