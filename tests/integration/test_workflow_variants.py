"""The variants, switched while the lab runs: the seed's old process (legacy), the API
doing the conductor's work itself (local_mode), and alternate hosts (Queens)."""
from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.timeout(60)


def test_legacy_flow_scheduler_talks_to_computes(make_lab, workflow):
    lab = make_lab()
    lab.configure(flow="legacy")
    lab.set_failure("compute1", reschedule=1.0)
    record = lab.wait(lab.boot("old"))
    assert record["status"] == "ACTIVE" and record["OS-EXT-SRV-ATTR:host"] == "compute2"
    events = workflow(lab, record)
    assert [(e["kind"], e["src"], e["dst"], e["method"]) for e in events] == [
        ("cast", "api.api", "scheduler.scheduler1", "run_instance"),
        ("cast", "scheduler.scheduler1", "compute.compute1", "build_and_run_instance"),
        ("cast", "compute.compute1", "scheduler.scheduler1", "run_instance"),
        ("cast", "scheduler.scheduler1", "compute.compute2", "build_and_run_instance"),
    ]
    # The conductor carries no build messages in the old process.
    assert not [e for e in events if "conductor" in e["src"] + e["dst"]]
    assert record["OS-EXT-LAB:num_attempts"] == 2


def test_legacy_compute_decides_max_retries(make_lab, workflow):
    lab = make_lab(max_attempts=2)
    lab.configure(flow="legacy")
    for host in ("compute1", "compute2", "compute3"):
        lab.set_failure(host, reschedule=1.0)
    record = lab.wait(lab.boot("old-doomed"))
    assert record["status"] == "ERROR"
    assert record["fault"]["message"].startswith("MaxRetriesExceeded")
    builds = [e for e in workflow(lab, record) if e["method"] == "build_and_run_instance"]
    assert len(builds) == 2
    # The last failing compute stopped it: no third run_instance cast to the scheduler.
    reschedules = [e for e in workflow(lab, record)
                   if e["method"] == "run_instance" and e["src"].startswith("compute.")]
    assert len(reschedules) == 1


def test_legacy_no_valid_host_written_by_scheduler(make_lab):
    lab = make_lab(memory_mb=4096)
    lab.configure(flow="legacy")
    record = lab.wait(lab.boot("huge", flavor="m1.large"))
    assert record["status"] == "ERROR" and record["fault"]["message"].startswith("NoValidHost")
    events = [(e["event"]) for a in lab.actions(record["id"]) for e in a["events"]]
    assert events == ["scheduler_run_instance"]


def test_local_mode_api_calls_the_scheduler_before_answering(make_lab, workflow):
    lab = make_lab()
    lab.configure(local_mode=True)
    lab.pause("scheduler")
    answered = threading.Event()
    result: dict = {}

    def boot() -> None:
        result["id"] = lab.boot("local")
        answered.set()

    thread = threading.Thread(target=boot)
    thread.start()
    try:
        # Absence check: while the scheduler is stopped the API must not answer.
        assert not answered.wait(1.0)
    finally:
        lab.resume("scheduler")
    thread.join(30)
    assert answered.is_set() and lab.last_response_time >= 1.0
    record = lab.wait(result["id"])
    assert record["status"] == "ACTIVE"
    events = workflow(lab, record)
    assert [(e["kind"], e["src"], e["dst"], e["method"]) for e in events][:3] == [
        ("call", "api.api", "scheduler.scheduler1", "select_destinations"),
        ("reply", "scheduler.scheduler1", "api.api", "select_destinations"),
        ("cast", "api.api", f"compute.{record['OS-EXT-SRV-ATTR:host']}",
         "build_and_run_instance"),
    ]
    assert not [e for e in events if e["dst"].startswith("conductor")]


def test_conductor_mode_answers_without_waiting(make_lab):
    lab = make_lab()
    lab.pause("scheduler")
    try:
        start = time.monotonic()
        server_id = lab.boot("quick")
        assert time.monotonic() - start < 5.0   # well below the scheduler's timeout
    finally:
        lab.resume("scheduler")
    assert lab.wait(server_id)["status"] == "ACTIVE"


def test_alternates_reschedule_without_asking_the_scheduler_again(make_lab, workflow):
    lab = make_lab()
    lab.configure(alternates=True)
    lab.set_failure("compute1", reschedule=1.0)
    record = lab.wait(lab.boot("alt"))
    assert record["status"] == "ACTIVE" and record["OS-EXT-SRV-ATTR:host"] == "compute2"
    events = workflow(lab, record)
    selects = [e for e in events if e["method"] == "select_destinations" and e["kind"] == "call"]
    assert len(selects) == 1
    assert [(e["src"], e["dst"], e["method"]) for e in events[-2:]] == [
        ("compute.compute1", "conductor.conductor1", "build_instances"),
        ("conductor.conductor1", "compute.compute2", "build_and_run_instance"),
    ]


def test_alternates_exhausted_is_max_retries(make_lab):
    lab = make_lab(computes=2, max_attempts=3)
    lab.configure(alternates=True)
    lab.set_failure("compute1", reschedule=1.0)
    lab.set_failure("compute2", reschedule=1.0)
    record = lab.wait(lab.boot("alt-doomed"))
    assert record["status"] == "ERROR"
    assert "Exhausted all hosts" in record["fault"]["message"]


def test_configure_rejects_unknown_and_bad_options(make_lab):
    from orchestrator.config import ConfigError
    lab = make_lab()
    with pytest.raises(ConfigError):
        lab.configure(computes=5)
    with pytest.raises(ConfigError):
        lab.configure(flow="sideways")
    with pytest.raises(ConfigError):
        lab.configure(filters=["NoSuchFilter"])
    assert lab.config.flow == "conductor"
    assert lab.wait(lab.boot("still-fine"))["status"] == "ACTIVE"
