"""Real failures: a dead scheduler, a dead conductor, a compute crashing mid-build, no
host that fits. Every accepted request ends ACTIVE or ERROR with a fault that says why."""
from __future__ import annotations

import time

import pytest

from orchestrator.compute.manager import CRASH_EXIT_CODE

pytestmark = pytest.mark.timeout(90)


def test_no_valid_host_stops_at_the_conductor(make_lab):
    lab = make_lab(memory_mb=4096)
    record = lab.wait(lab.boot("too-big", flavor="m1.large"))
    assert record["status"] == "ERROR"
    assert record["fault"]["message"].startswith("NoValidHost")
    assert "RamFilter" in record["fault"]["message"]
    trace = lab.trace().for_instance(record["id"], record["OS-EXT-LAB:request_id"]).routed()
    assert not [e for e in trace if e["method"] == "build_and_run_instance"]


def test_scheduler_killed_errors_at_the_conductor_after_the_call_timeout(make_lab):
    lab = make_lab()
    lab.kill("scheduler")
    start = time.monotonic()
    record = lab.wait(lab.boot("orphan"), timeout=30)
    waited = time.monotonic() - start
    assert record["status"] == "ERROR"
    assert record["fault"]["message"].startswith("MessagingTimeout")
    assert waited >= lab.config.timing("scheduler_timeout") * 0.9
    expired = lab.tap.wait_for(lambda e: e["phase"] == "expired"
                               and e["method"] == "select_destinations", timeout=5)
    assert expired["src"] == "conductor.conductor1" and expired["reason"] == "call timeout"


def test_conductor_down_casts_wait_and_are_processed_when_it_returns(make_lab):
    lab = make_lab()
    lab.kill("conductor")
    ids = [lab.boot("queued-1"), lab.boot("queued-2")]
    queued = lab.tap.wait_for(lambda e: e["phase"] == "queued"
                              and e["method"] == "build_instances", timeout=10)
    assert queued["dst"] in ("conductor", "conductor.conductor1")
    assert all(lab.server(i)["status"] == "BUILD" for i in ids)
    lab.restart("conductor")
    records = lab.wait(ids, timeout=30)
    assert [r["status"] for r in records] == ["ACTIVE", "ACTIVE"]


def test_compute_crash_mid_build_ends_in_build_timeout(make_lab, service_down):
    lab = make_lab()
    lab.set_failure("compute1", crash=1.0)     # compute1 is picked first (ties by name)
    server_id = lab.boot("crashy")
    child = lab.cluster.children["compute.compute1"]
    assert child.proc.wait(20) == CRASH_EXIT_CODE
    record = lab.wait(server_id, timeout=40)
    assert record["status"] == "ERROR"
    assert record["fault"]["message"].startswith("BuildTimeout")
    # The dead compute drops out of the scheduler's view once it misses heartbeats.
    service_down(lab, "compute1", 20)
    assert lab.wait(lab.boot("after-crash"))["OS-EXT-SRV-ATTR:host"] != "compute1"


def test_fatal_failure_is_not_rescheduled(make_lab):
    lab = make_lab()
    lab.set_failure("compute1", fatal=1.0)
    record = lab.wait(lab.boot("fatal"))
    assert record["status"] == "ERROR"
    assert record["fault"]["message"].startswith("BuildAbortException")
    assert record["OS-EXT-LAB:num_attempts"] == 1


def test_build_failure_weigher_steers_away_from_a_failing_host(make_lab):
    lab = make_lab()
    lab.set_failure("compute1", reschedule=1.0)
    first = lab.wait(lab.boot("probe"))
    assert first["OS-EXT-LAB:num_attempts"] == 2      # tried compute1, failed
    later = [lab.wait(lab.boot(f"after-{i}")) for i in range(3)]
    assert all(r["OS-EXT-LAB:num_attempts"] == 1 for r in later)
    assert all(r["OS-EXT-SRV-ATTR:host"] != "compute1" for r in later)
    failed = {h["hypervisor_hostname"]: h["OS-EXT-LAB:failed_builds"] for h in lab.hypervisors()}
    assert failed["compute1"] == 1


def test_failure_decisions_are_seeded(make_lab):
    """Same seed, same workload: the same instances, hosts and attempts."""
    def run(name: str) -> list[tuple]:
        lab = make_lab(name, seed=11)
        lab.set_failure("compute1", reschedule=0.5)
        lab.set_failure("compute2", reschedule=0.5)
        out = []
        for i in range(6):
            r = lab.wait(lab.boot(f"s{i}"))
            out.append((r["id"], r["status"], r["OS-EXT-SRV-ATTR:host"],
                        r["OS-EXT-LAB:num_attempts"]))
        lab.stop()
        return out

    first, second = run("a"), run("b")
    assert first == second
    assert len({attempts for *_, attempts in first}) > 1   # the failures did bite


def test_a_lost_failure_event_does_not_stop_the_hand_back(make_lab):
    """compute1 fails the build; the record of its failure (an action_event call) is
    lost on the way: the compute still frees its claim and hands the build back, and
    the build ends ACTIVE on compute2 (before, the lost call ended the compute's handling
    with the claim still held, for the audit to find later)."""
    lab = make_lab(computes=2)
    lab.set_failure("compute1", reschedule=1.0)
    lab.add_fault(src="compute.compute1", method="action_event", drop=1.0)
    record = lab.wait(lab.boot("unrecorded"), timeout=40)
    assert (record["status"], record["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", "compute2")
    hosts = {h["hypervisor_hostname"]: h["running_vms"] for h in lab.hypervisors()}
    assert hosts == {"compute1": 0, "compute2": 1}
