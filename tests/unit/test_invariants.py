"""The invariants of a chaos run, on hand-made snapshots: each check passes a lab that
keeps it and reports one that breaks it, saying which server, host or service."""
from __future__ import annotations

from typing import Any

from lab import invariants as inv
from lab.invariants import Observation, Snapshot
from lab.testing import usage_of
from orchestrator.config import FLAVORS

VM_STATE = {"ACTIVE": "active", "ERROR": "error", "VERIFY_RESIZE": "resized",
            "BUILD": "building", "RESIZE": "active", "REBUILD": "active"}


def server(sid: str, status: str = "ACTIVE", host: str | None = "compute1",
           flavor: str = "m1.tiny", task: str | None = None,
           fault: str | None = None) -> dict[str, Any]:
    s = {"id": sid, "name": f"vm-{sid}", "status": status,
         "OS-EXT-STS:vm_state": VM_STATE[status], "OS-EXT-STS:task_state": task,
         "OS-EXT-SRV-ATTR:host": host, "flavor": {"original_name": flavor},
         "OS-EXT-LAB:num_attempts": 1}
    if fault is not None:
        s["fault"] = {"message": fault}
    return s


def usage(host: str, *flavors: str) -> dict[str, Any]:
    """A hypervisor row (or a tracker's report) holding these flavors."""
    vcpus, ram, disk, vms = usage_of(*flavors)
    return {"hypervisor_hostname": host, "vcpus_used": vcpus, "memory_mb_used": ram,
            "local_gb_used": disk, "running_vms": vms}


def tracker(*claims: tuple[str, str]) -> dict[str, Any]:
    """A compute's own report: ``(uuid, flavor)`` claims."""
    return {**usage("", *(f for _, f in claims)), "instances": sorted(u for u, _ in claims)}


def migration(mid: int, uuid: str, status: str, source: str = "compute1",
              dest: str | None = "compute2", old: str = "m1.tiny", new: str = "m1.small",
              kind: str = "resize") -> dict[str, Any]:
    return {"id": mid, "instance_uuid": uuid, "status": status, "migration_type": kind,
            "source_compute": source, "dest_compute": dest,
            "old_instance_type_id": FLAVORS[old]["id"],
            "new_instance_type_id": FLAVORS[new]["id"]}


UP = {"api": "up", "conductor": "up", "scheduler": "up", "compute1": "up",
      "compute2": "up", "bus": "up"}
SERVICES = [{"binary": b, "host": h, "state": "up", "updated_at": 1.0} for b, h in
            [("nova-api", "api"), ("nova-conductor", "conductor1"),
             ("nova-scheduler", "scheduler1"), ("nova-compute", "compute1"),
             ("nova-compute", "compute2")]]


def healthy() -> Snapshot:
    """Two computes: a and b ACTIVE on compute1, c on compute2 waiting for a resize
    confirm (its source compute1 keeps the old flavor), d failed its build, e failed a
    move and keeps its room on compute2."""
    servers = [server("a"), server("b", flavor="m1.small"),
               server("c", "VERIFY_RESIZE", "compute2", "m1.small"),
               server("d", "ERROR", None, fault="NoValidHost: No valid host was found."),
               server("e", "ERROR", "compute2",
                      fault="MigrationError: MigrationTimeout: made no progress for 10s")]
    migrations = [migration(1, "c", "finished"), migration(2, "e", "error", "compute2",
                                                           "compute1", "m1.tiny", "m1.tiny",
                                                           "migration")]
    return Snapshot(
        taken=100.0, servers=servers, migrations=migrations, services=SERVICES,
        hypervisors=[usage("compute1", "m1.tiny", "m1.small", "m1.tiny"),
                     usage("compute2", "m1.small", "m1.tiny")],
        computes={"compute1": tracker(("a", "m1.tiny"), ("b", "m1.small"), ("c", "m1.tiny")),
                  "compute2": tracker(("c", "m1.small"), ("e", "m1.tiny"))},
        processes=dict(UP))


def subjects(violations: list[inv.Violation], invariant: int) -> list[str]:
    assert all(v.invariant == invariant for v in violations), violations
    return [v.subject for v in violations]


# -- what a compute holds -------------------------------------------------------------------
def test_holdings_follow_what_a_restarted_compute_would_claim():
    snap = healthy()
    assert inv.holdings(snap.servers, snap.migrations) == {
        "compute1": {"a": "m1.tiny", "b": "m1.small", "c": "m1.tiny"},
        "compute2": {"c": "m1.small", "e": "m1.tiny"}}


def test_a_confirm_frees_the_source_and_a_revert_the_destination():
    resized = [server("c", "VERIFY_RESIZE", "compute2", "m1.small",
                      task="resize_confirming")]
    assert inv.holdings(resized, [migration(1, "c", "confirming")]) == \
        {"compute2": {"c": "m1.small"}}
    before_finish = [server("c", "RESIZE", "compute1", "m1.tiny", task="resize_migrating")]
    assert inv.holdings(before_finish, [migration(1, "c", "migrating")]) == \
        {"compute1": {"c": "m1.tiny"}, "compute2": {"c": "m1.small"}}
    reverting = [server("c", "VERIFY_RESIZE", "compute2", "m1.small",
                        task="resize_reverting")]
    assert inv.holdings(reverting, [migration(1, "c", "reverting")]) == \
        {"compute2": {"c": "m1.small"}, "compute1": {"c": "m1.tiny"}}
    evacuating = [server("v", "REBUILD", "compute1", task="rebuilding")]
    assert inv.holdings(evacuating, [migration(3, "v", "pre-migrating", kind="evacuation")]) \
        == {"compute1": {"v": "m1.tiny"}}


# -- 1. outcomes ----------------------------------------------------------------------------
def test_servers_at_rest_with_named_causes_pass():
    snap = healthy()
    assert inv.check_outcomes(snap, ["a", "b", "c", "d", "e"], 90.0, 16.0) == []


def test_an_accepted_server_the_api_lost_is_reported():
    found = inv.check_outcomes(healthy(), ["a", "gone"], 90.0, 16.0)
    assert subjects(found, 1) == ["gone"]


def test_an_error_must_name_its_cause():
    snap = healthy()
    snap.servers += [server("nofault", "ERROR", None),
                     server("prose", "ERROR", None, fault="something went wrong"),
                     server("bug", "ERROR", None, fault="KeyError: 'host'"),
                     server("vague", "ERROR", None, fault="RemoteError: boom")]
    found = inv.check_outcomes(snap, [], 90.0, 16.0)
    assert subjects(found, 1) == ["nofault", "prose", "bug", "vague"]
    assert "names no cause" in found[2].what


def test_a_server_still_busy_after_the_limit_is_late_but_not_before():
    snap = healthy()
    snap.servers += [server("slow", "BUILD", "compute1", task="spawning"),
                     server("moving", "RESIZE", "compute1", task="resize_prep")]
    assert inv.check_outcomes(snap, [], faults_stopped=90.0, limit=16.0) == []
    late = inv.check_outcomes(snap, [], faults_stopped=80.0, limit=16.0)
    assert subjects(late, 1) == ["slow", "moving"]
    assert "20.0s after the faults stopped" in late[0].what


def test_an_active_server_on_no_host_is_reported():
    snap = healthy()
    snap.servers.append(server("nowhere", host=None))
    assert subjects(inv.check_outcomes(snap, [], 90.0, 16.0), 1) == ["nowhere"]


def test_causes_and_outcomes():
    assert inv.cause_of("BuildTimeout: Build of instance x timed out") == "BuildTimeout"
    assert inv.cause_of("no cause here") == inv.cause_of("") == ""
    assert inv.outcomes(healthy().servers) == {
        "ACTIVE": 2, "VERIFY_RESIZE": 1, "ERROR: NoValidHost": 1, "ERROR: MigrationError": 1}


# -- 2. stable ------------------------------------------------------------------------------
ACTIVE1 = ("ACTIVE", None, "compute1", "m1.tiny")
ERROR = ("ERROR", None, None, "m1.tiny")
BUILD = ("BUILD", "scheduling", None, "m1.tiny")


def test_an_error_that_turns_active_with_no_user_action_is_a_resurrection():
    history = {"x": [Observation(1, 2, BUILD), Observation(3, 9, ERROR),
                     Observation(10, 12, BUILD), Observation(13, 20, ACTIVE1)]}
    found = inv.check_history(history, {})
    assert subjects(found, 2) == ["x"]
    assert found[0].what.startswith("ERROR on - (m1.tiny) -> BUILD/scheduling")
    assert "seen ACTIVE on compute1 (m1.tiny) from 13.00s to 20.00s" in found[0].evidence


def test_changes_a_user_asked_for_pass_and_unasked_ones_do_not():
    resize = ("RESIZE", "resize_prep", "compute1", "m1.tiny")
    moved = ("ACTIVE", None, "compute2", "m1.tiny")
    history = {"asked": [Observation(1, 5, ACTIVE1), Observation(6, 7, resize),
                         Observation(8, 9, moved)],
               "built": [Observation(1, 2, BUILD), Observation(3, 9, ACTIVE1)],
               "moved": [Observation(1, 5, ACTIVE1), Observation(6, 9, moved)],
               "old news": [Observation(10, 15, ACTIVE1), Observation(16, 17, moved)]}
    actions = {"asked": [(5.5, 5.6)], "old news": [(2.0, 3.0)]}   # the last before 10
    assert subjects(inv.check_history(history, actions), 2) == ["moved", "old news"]


def test_an_action_answered_after_a_poll_began_still_counts():
    """A poll that began before the request was answered may have read the old state."""
    history = {"x": [Observation(1, 5, ACTIVE1),
                     Observation(6, 7, ("RESIZE", "resize_prep", "compute1", "m1.tiny"))]}
    assert inv.check_history(history, {"x": [(4.0, 5.5)]}) == []


def test_nothing_may_change_between_two_snapshots_without_a_user_action():
    before = healthy()
    assert inv.check_unchanged(before, healthy()) == []
    after = healthy()
    after.taken = 105.0
    after.servers[3] = server("d", "ACTIVE", "compute1")                 # resurrected
    after.servers.pop(0)                                                 # vanished
    after.migrations[0] = migration(1, "c", "confirmed")
    after.hypervisors[1] = usage("compute2", "m1.small")
    found = inv.check_unchanged(before, after)
    assert subjects(found, 2) == ["a", "d", "migration 1", "compute2"]
    assert "ERROR task - on -" in found[1].what and "-> ACTIVE" in found[1].what


# -- 3. placement ---------------------------------------------------------------------------
def test_claims_that_match_what_each_compute_holds_pass():
    assert inv.check_placement(healthy()) == []


def test_an_instance_claimed_by_two_computes_is_reported_once():
    snap = healthy()
    snap.computes["compute2"] = tracker(("c", "m1.small"), ("e", "m1.tiny"), ("a", "m1.tiny"))
    found = inv.check_placement(snap)
    assert subjects(found, 3) == ["a"]
    assert found[0].what == "claimed by 2 computes: compute1, compute2"


def test_a_stray_claim_and_a_lost_one_are_reported():
    snap = healthy()
    snap.computes["compute1"] = tracker(("b", "m1.small"), ("c", "m1.tiny"), ("d", "m1.tiny"))
    found = inv.check_placement(snap)
    assert subjects(found, 3) == ["d", "a"]
    assert "compute1 claims it but holds no room for it" == found[0].what
    assert "compute1 should hold it (m1.tiny) but has no claim for it" == found[1].what


def test_every_migration_must_have_ended():
    snap = healthy()
    snap.migrations += [migration(3, "a", "pre-migrating"),
                        migration(4, "b", "finished")]     # b is ACTIVE, not waiting
    snap.computes["compute2"] = tracker(("c", "m1.small"), ("e", "m1.tiny"),
                                        ("a", "m1.small"), ("b", "m1.small"))  # their dest
    found = inv.check_placement(snap)
    assert subjects(found, 3) == ["a", "b"]
    assert "migration 3 (resize) left in status pre-migrating" == found[0].what


# -- 4. accounting ----------------------------------------------------------------------------
def test_usage_that_sums_what_each_compute_holds_passes():
    assert inv.check_accounting(healthy()) == []


def test_usage_off_in_the_database_or_in_a_tracker_is_reported():
    snap = healthy()
    snap.hypervisors[0] = usage("compute1", "m1.tiny", "m1.small")   # lost c's old flavor
    snap.computes["compute2"] = {**tracker(("c", "m1.small"), ("e", "m1.tiny")),
                                 "running_vms": 3}
    found = inv.check_accounting(snap)
    assert subjects(found, 4) == ["compute1", "compute2"]
    assert found[0].what.startswith("database (the scheduler's view): used")
    assert found[1].what.startswith("its own tracker: used")
    assert found[0].evidence == ["its tracker reports (3, 3072, 22, 3)",
                                 "claimed, no room held: none", "held, not claimed: none"]


def test_a_compute_that_did_not_report_is_reported():
    snap = healthy()
    del snap.computes["compute2"]
    assert subjects(inv.check_accounting(snap), 4) == ["compute2"]


# -- 5. services ----------------------------------------------------------------------------
def test_every_service_up_passes():
    assert inv.check_services(healthy(), ["compute1", "compute2"]) == []


def test_a_paused_process_a_service_down_and_a_missing_compute_are_reported():
    snap = healthy()
    snap.processes["scheduler"] = "paused"
    snap.services = [dict(s, state="down") if s["host"] == "compute2" else s
                     for s in SERVICES]
    found = inv.check_services(snap, ["compute1", "compute2", "compute3"])
    assert subjects(found, 5) == ["scheduler", "compute3", "nova-compute compute2"]


def test_a_process_that_outlived_the_lab_is_reported():
    pids = {"bus": 11, "compute.compute1": 12}
    assert inv.check_reaped(pids, lambda pid: False) == []
    found = inv.check_reaped(pids, lambda pid: pid == 12)
    assert subjects(found, 5) == ["compute.compute1"]
    assert found[0].what == "process 12 outlived the lab"


def test_violations_name_their_invariant():
    v = inv.Violation(2, "x", "ERROR -> ACTIVE")
    assert v.to_dict() == {"invariant": 2, "name": "stable", "subject": "x",
                           "what": "ERROR -> ACTIVE", "evidence": []}
