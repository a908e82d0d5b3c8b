"""The seed's new process, end to end, with real processes: API cast, conductor call to
the scheduler, cast to the compute, and the compute's reschedule cast back."""
from __future__ import annotations

import pytest

from lab.trace import Trace

pytestmark = pytest.mark.timeout(60)


def steps(events) -> list[tuple[str, str, str, str]]:
    return [(e["kind"], e["src"], e["dst"], e["method"]) for e in events]


def test_successful_boot_follows_the_new_process(make_lab, workflow):
    lab = make_lab()
    record = lab.wait(lab.boot("vm1"))
    assert record["status"] == "ACTIVE"
    assert record["OS-EXT-STS:task_state"] is None
    host = record["OS-EXT-SRV-ATTR:host"]
    events = workflow(lab, record)
    assert steps(events) == [
        ("cast", "api.api", "conductor.conductor1", "build_instances"),
        ("call", "conductor.conductor1", "scheduler.scheduler1", "select_destinations"),
        ("reply", "scheduler.scheduler1", "conductor.conductor1", "select_destinations"),
        ("cast", "conductor.conductor1", f"compute.{host}", "build_and_run_instance"),
    ]
    call, reply = events[1], events[2]
    assert reply["reply_to"] == call["msg_id"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    # The compute walked the task states, every save through the conductor.
    saves = [e for e in lab.trace().for_instance(record["id"]).routed()
             if e["method"] == "instance_update" and e["kind"] == "call"]
    assert saves and all(e["src"] == f"compute.{host}" for e in saves)
    assert all(e["dst"] == "conductor.conductor1" for e in saves)


def test_api_answers_before_scheduling(make_lab):
    """With the scheduler hung, the API still answers 202 at once: it only casts."""
    lab = make_lab()
    lab.pause("scheduler")
    try:
        server_id = lab.boot("early")
        record = lab.server(server_id)
        assert record["status"] == "BUILD"
        assert record["OS-EXT-STS:task_state"] == "scheduling"
        assert not [e for e in lab.trace() if e["method"] == "select_destinations"
                    and e["phase"] == "routed" and e["kind"] == "reply"]
    finally:
        lab.resume("scheduler")
    assert lab.wait(server_id)["status"] == "ACTIVE"


def test_failed_build_is_rescheduled_by_the_conductor(make_lab, workflow):
    lab = make_lab()
    lab.set_failure("compute1", reschedule=1.0)   # ties break by name: compute1 first
    record = lab.wait(lab.boot("vm2"))
    assert record["status"] == "ACTIVE"
    assert record["OS-EXT-SRV-ATTR:host"] == "compute2"
    assert record["OS-EXT-LAB:num_attempts"] == 2
    events = workflow(lab, record)
    assert steps(events)[3:] == [
        ("cast", "conductor.conductor1", "compute.compute1", "build_and_run_instance"),
        ("cast", "compute.compute1", "conductor.conductor1", "build_instances"),
        ("call", "conductor.conductor1", "scheduler.scheduler1", "select_destinations"),
        ("reply", "scheduler.scheduler1", "conductor.conductor1", "select_destinations"),
        ("cast", "conductor.conductor1", "compute.compute2", "build_and_run_instance"),
    ]
    # The same message the API sent: same method, same topic.
    assert events[0]["method"] == events[4]["method"] == "build_instances"
    assert [e["attempt"] for e in events] == [1, 1, 1, 1, 2, 2, 2, 2]
    events_by_host = [(e["host"], e["result"]) for a in lab.actions(record["id"])
                      for e in a["events"] if e["event"] == "compute_build_and_run_instance"]
    assert events_by_host == [("compute1", "Error"), ("compute2", "Success")]


def test_every_host_failing_ends_in_max_retries_exceeded(make_lab, workflow):
    lab = make_lab(computes=4, max_attempts=3)
    for host in ("compute1", "compute2", "compute3", "compute4"):
        lab.set_failure(host, reschedule=1.0)
    record = lab.wait(lab.boot("doomed"))
    assert record["status"] == "ERROR"
    assert record["fault"]["message"].startswith("MaxRetriesExceeded")
    assert record["OS-EXT-LAB:num_attempts"] == 3
    builds = [e for e in workflow(lab, record) if e["method"] == "build_and_run_instance"]
    assert len(builds) == 3                              # exactly max_attempts attempts
    assert len({e["dst"] for e in builds}) == 3          # RetryFilter: never the same host
    selects = [e for e in workflow(lab, record)
               if e["method"] == "select_destinations" and e["kind"] == "call"]
    assert len(selects) == 3


def test_trace_story_and_counts(make_lab):
    lab = make_lab()
    record = lab.wait(lab.boot("story"))
    story = lab.story(record["id"])
    assert "build_instances" in story[0] and "api -> conductor" in " ".join(story[0].split())
    assert isinstance(lab.trace(), Trace)
    counts = lab.trace().counts()
    assert counts[("cast", "build_instances")] == 1
    assert counts[("call", "select_destinations")] == counts[("reply", "select_destinations")]
