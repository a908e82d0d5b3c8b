"""Unit tests for orchestrator.db.Database: a real SQLite file in tmp_path, no service."""
from __future__ import annotations

import re
import sqlite3

import pytest

from orchestrator.db import DB_FILE, Database, NotFound, UnexpectedTaskState
from orchestrator.db_schema import INSTANCE_COLUMNS


@pytest.fixture
def make_db(tmp_path):
    """``make_db(name="lab", seed=0)`` -> an open Database in ``tmp_path/name``; every
    one is closed at teardown (an unclosed sqlite connection is a ResourceWarning)."""
    made: list[Database] = []

    def make(name: str = "lab", seed: int = 0) -> Database:
        run_dir = tmp_path / name
        run_dir.mkdir(exist_ok=True)
        db = Database(run_dir, seed)
        made.append(db)
        return db

    yield make
    for db in made:
        db.close()


@pytest.fixture
def db(make_db) -> Database:
    return make_db()


def _create(db: Database, *names: str, zone: str | None = None):
    return db.create_instances(list(names or ["vm"]), "m1.tiny", "cirros", zone)


def _node(**overrides):
    return {"availability_zone": "nova", "vcpus": 8, "memory_mb": 16384, "local_gb": 200,
            "vcpus_used": 0, "memory_mb_used": 0, "local_gb_used": 0, "running_vms": 0,
            "failed_builds": 0, **overrides}


def _mark_deleted(db: Database, uuid: str) -> None:
    db.update_instance(uuid, deleted=1, vm_state="deleted", task_state=None)


# -- creating instances ---------------------------------------------------------------

def test_the_file_lives_in_the_run_directory(tmp_path, db):
    assert db.path == tmp_path / "lab" / DB_FILE
    assert db.path.exists()


def test_create_instances_writes_building_instances_with_a_create_action(db):
    request_id, reservation_id, uuids = db.create_instances(["a", "b", "c"], "m1.small",
                                                            "cirros", "az1")
    assert request_id.startswith("req-") and reservation_id.startswith("r-")
    assert len(uuids) == len(set(uuids)) == 3
    rows = db.instances()
    assert [r["uuid"] for r in rows] == uuids               # ordered by seq
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    for row in rows:
        assert (row["vm_state"], row["task_state"], row["host"]) == ("building", "scheduling",
                                                                     None)
        assert (row["flavor"], row["image"], row["availability_zone"]) == ("m1.small",
                                                                           "cirros", "az1")
        assert (row["request_id"], row["reservation_id"]) == (request_id, reservation_id)
        assert row["num_attempts"] == 0 and row["deleted"] == 0
        actions = db.actions(row["uuid"])
        assert [(a["action"], a["request_id"]) for a in actions] == [("create", request_id)]
    assert db.instances(reservation_id=reservation_id) == rows
    assert db.instances(reservation_id="r-other") == []


def test_create_instances_is_all_or_nothing(db):
    with pytest.raises(sqlite3.IntegrityError):
        db.create_instances(["ok", None], "m1.tiny", "cirros", None)  # name NOT NULL
    assert db.instances() == []
    assert db.conn.execute("SELECT COUNT(*) FROM instance_actions").fetchone()[0] == 0
    assert db.conn.execute("SELECT COUNT(*) FROM counters WHERE value > 0").fetchone()[0] == 0


def test_a_failed_create_does_not_use_up_ids(make_db):
    failed, clean = make_db("failed"), make_db("clean")
    with pytest.raises(sqlite3.IntegrityError):
        failed.create_instances(["ok", None], "m1.tiny", "cirros", None)
    assert _create(failed, "a") == _create(clean, "a")


def test_ids_are_deterministic_for_the_same_seed_and_order(make_db):
    one, two = make_db("one", seed=5), make_db("two", seed=5)
    first = [_create(one, "a", "b"), _create(one, "c")]
    second = [_create(two, "a", "b"), _create(two, "c")]
    assert first == second
    assert first[0][2] != first[1][2] and first[0][0] != first[1][0]  # the counter moved


def test_a_different_seed_gives_different_ids(make_db):
    one, two = make_db("one", seed=1), make_db("two", seed=2)
    request_1, reservation_1, uuids_1 = _create(one, "a", "b")
    request_2, reservation_2, uuids_2 = _create(two, "a", "b")
    assert request_1 != request_2
    assert reservation_1 != reservation_2
    assert not set(uuids_1) & set(uuids_2)


# -- updating instances -----------------------------------------------------------------

def test_update_instance_saves_and_returns_the_row(db):
    _, _, [uuid] = _create(db)
    before = db.instance(uuid)
    row = db.update_instance(uuid, task_state="networking", host="compute1", num_attempts=2)
    assert (row["task_state"], row["host"], row["num_attempts"]) == ("networking",
                                                                     "compute1", 2)
    assert row == db.instance(uuid)
    assert row["updated_at"] >= before["updated_at"]


def test_expected_task_state_guard_passes_when_it_matches(db):
    _, _, [uuid] = _create(db)
    row = db.update_instance(uuid, "scheduling", task_state="networking")
    assert row["task_state"] == "networking"
    db.update_instance(uuid, task_state=None)
    assert db.update_instance(uuid, None, vm_state="active")["vm_state"] == "active"


def test_expected_task_state_guard_refuses_a_moved_on_instance(db):
    _, _, [uuid] = _create(db)
    db.update_instance(uuid, task_state="spawning")
    with pytest.raises(UnexpectedTaskState, match="spawning"):
        db.update_instance(uuid, "networking", task_state="block_device_mapping",
                           host="compute9")
    row = db.instance(uuid)
    assert (row["task_state"], row["host"]) == ("spawning", None)  # nothing saved
    assert issubclass(UnexpectedTaskState, NotFound)


@pytest.mark.parametrize("field", ["name", "uuid", "updated_at", "seq", "bogus"])
def test_unknown_or_protected_columns_are_rejected(db, field):
    _, _, [uuid] = _create(db)
    before = db.instance(uuid)
    with pytest.raises(ValueError, match=field):
        db.update_instance(uuid, task_state="networking", **{field: "x"})
    assert db.instance(uuid) == before
    assert field not in INSTANCE_COLUMNS


def test_update_of_a_missing_instance_is_not_found(db):
    with pytest.raises(NotFound):
        db.update_instance("no-such-uuid", vm_state="active")


def test_deleted_instances_are_not_found_unless_asked_for(db):
    _, _, [keep, gone] = _create(db, "keep", "gone")
    _mark_deleted(db, gone)
    with pytest.raises(NotFound, match=gone):
        db.instance(gone)
    assert db.instance(gone, deleted=True)["deleted"] == 1
    assert db.instance(keep, deleted=True)["uuid"] == keep
    assert [r["uuid"] for r in db.instances()] == [keep]
    with pytest.raises(NotFound):
        db.update_instance(gone, vm_state="error")
    with pytest.raises(NotFound):
        db.instance("never-existed", deleted=True)


def test_update_instance_can_mark_an_instance_deleted(db):
    _, _, [uuid] = _create(db)
    row = db.update_instance(uuid, deleted=1, vm_state="deleted", task_state=None)
    assert row["deleted"] == 1


def test_a_deleted_instance_is_gone_from_listings(db):
    _, _, [uuid] = _create(db)
    db.update_instance(uuid, deleted=1, vm_state="deleted", task_state=None)
    assert db.instance(uuid, deleted=True)["vm_state"] == "deleted"
    assert db.instances() == []
    with pytest.raises(NotFound):
        db.instance(uuid)


def test_instances_filter_by_vm_state(db):
    _, _, [a, b] = _create(db, "a", "b")
    db.update_instance(b, vm_state="active", task_state=None)
    assert [r["uuid"] for r in db.instances(vm_state="building")] == [a]
    assert [r["uuid"] for r in db.instances(vm_state="active")] == [b]


# -- faults, actions, events ------------------------------------------------------------

def test_faults_round_trip_and_the_latest_wins(db):
    _, _, [uuid, other] = _create(db, "a", "b")
    assert db.fault(uuid) is None
    db.add_fault(uuid, 500, "RescheduledException: first", "trace", "compute1")
    db.add_fault(uuid, 500, "NoValidHost: second")
    fault = db.fault(uuid)
    assert (fault["code"], fault["message"], fault["details"], fault["host"]) == (
        500, "NoValidHost: second", "", None)
    assert fault["instance_uuid"] == uuid and fault["created_at"] > 0
    assert db.fault(other) is None


def test_actions_nest_their_events_by_request_id(db):
    request_id, _, [uuid] = _create(db)
    db.add_event(uuid, request_id, "conductor_schedule_and_build_instances", "compute1", 1,
                 "Success")
    db.add_event(uuid, request_id, "compute_build_and_run_instance", "compute1", 1, "Error",
                 "RescheduledException: boom", start_time=123.0)
    db.start_action(uuid, "delete", "req-delete")
    db.add_event(uuid, "req-delete", "compute_terminate_instance", "compute1", 0, "Success")
    db.add_event(uuid, "req-unrelated", "stray", None, 0, "Success")
    actions = db.actions(uuid)
    assert [(a["action"], a["request_id"]) for a in actions] == [("create", request_id),
                                                                  ("delete", "req-delete")]
    create, delete = actions
    assert [(e["event"], e["host"], e["attempt"], e["result"], e["details"])
            for e in create["events"]] == [
        ("conductor_schedule_and_build_instances", "compute1", 1, "Success", ""),
        ("compute_build_and_run_instance", "compute1", 1, "Error",
         "RescheduledException: boom")]
    assert create["events"][1]["start_time"] == 123.0
    assert create["events"][1]["finish_time"] >= create["events"][0]["start_time"]
    assert [e["event"] for e in delete["events"]] == ["compute_terminate_instance"]


def test_actions_of_an_unknown_instance_are_empty(db):
    assert db.actions("nope") == []


# -- services and compute nodes ----------------------------------------------------------

def test_service_update_inserts_then_increments_report_count(db):
    db.service_update("compute", "compute1", "compute")
    [first] = db.services()
    assert (first["binary"], first["host"], first["topic"]) == ("compute", "compute1",
                                                                "compute")
    assert first["report_count"] == 1 and first["disabled"] == 0
    db.service_update("compute", "compute1", "compute")
    db.service_update("compute", "compute1", "compute")
    db.service_update("scheduler", "compute1", "scheduler")
    services = db.services()
    assert [(s["binary"], s["report_count"]) for s in services] == [("compute", 3),
                                                                    ("scheduler", 1)]
    assert services[0]["last_seen_up"] >= first["last_seen_up"]


def test_set_service_disabled(db):
    db.service_update("compute", "compute1", "compute")
    db.set_service_disabled("compute", "compute1", True, "maintenance")
    [s] = db.services()
    assert (s["disabled"], s["disabled_reason"]) == (1, "maintenance")
    db.set_service_disabled("compute", "compute1", False)
    [s] = db.services()
    assert (s["disabled"], s["disabled_reason"]) == (0, None)
    with pytest.raises(NotFound):
        db.set_service_disabled("compute", "compute9", True)


def test_compute_node_update_upserts_and_round_trips_instances(db):
    db.compute_node_update("compute2", _node(instances=["b", "a"]))
    db.compute_node_update("compute1", _node())
    nodes = db.compute_nodes()
    assert [n["host"] for n in nodes] == ["compute1", "compute2"]
    assert nodes[0]["instances"] == [] and nodes[1]["instances"] == ["a", "b"]
    db.compute_node_update("compute2", _node(vcpus_used=3, memory_mb_used=1024,
                                             local_gb_used=10, running_vms=1,
                                             failed_builds=2, instances=["c"]))
    nodes = db.compute_nodes()
    assert len(nodes) == 2
    node = nodes[1]
    assert (node["vcpus_used"], node["memory_mb_used"], node["local_gb_used"],
            node["running_vms"], node["failed_builds"], node["instances"]) == (
        3, 1024, 10, 1, 2, ["c"])
    assert (node["vcpus"], node["memory_mb"], node["local_gb"]) == (8, 16384, 200)


def test_compute_node_update_needs_every_resource(db):
    resources = _node()
    del resources["failed_builds"]
    with pytest.raises(KeyError):
        db.compute_node_update("compute1", resources)
    assert db.compute_nodes() == []


# -- two processes' views -----------------------------------------------------------------

def test_two_handles_on_one_file_see_each_others_writes(tmp_path):
    api, conductor = Database(tmp_path, seed=3), Database(tmp_path, seed=3)
    try:
        _, _, [first] = _create(api, "a")
        assert conductor.instance(first)["name"] == "a"
        conductor.update_instance(first, vm_state="active", task_state=None)
        assert api.instance(first)["vm_state"] == "active"
        _, _, [second] = _create(conductor, "b")   # the shared counter moves on
        assert second != first
        assert [r["uuid"] for r in api.instances()] == [first, second]
        conductor.service_update("compute", "compute1", "compute")
        api.service_update("compute", "compute1", "compute")
        assert conductor.services()[0]["report_count"] == 2
    finally:
        api.close()
        conductor.close()


def test_set_error_writes_state_and_fault_together(db):
    _, _, [uuid] = _create(db)
    row = db.set_error(uuid, 500, "NoValidHost: none left", host="compute2")
    assert (row["vm_state"], row["task_state"]) == ("error", None)
    fault = db.fault(uuid)
    assert (fault["code"], fault["message"], fault["host"]) == (500, "NoValidHost: none left",
                                                                "compute2")


def test_set_error_on_a_deleted_instance_writes_nothing(db):
    _, _, [uuid] = _create(db)
    db.update_instance(uuid, deleted=1, vm_state="deleted", task_state=None)
    with pytest.raises(NotFound):
        db.set_error(uuid, 500, "too late")
    assert db.fault(uuid) is None


def test_a_resize_may_change_the_flavor_but_only_to_a_known_one(db):
    _, _, [uuid] = _create(db)
    assert db.update_instance(uuid, flavor="m1.medium")["flavor"] == "m1.medium"
    with pytest.raises(ValueError, match="m1.huge"):
        db.update_instance(uuid, flavor="m1.huge")
    assert db.instance(uuid)["flavor"] == "m1.medium"


def test_migration_records_and_their_guarded_status_changes(db):
    _, _, [uuid] = _create(db)
    mig = db.create_migration(uuid, "resize", "compute1", "m1.small", "m1.medium", "req-1")
    assert (mig["status"], mig["dest_compute"]) == ("pre-migrating", None)
    db.update_migration(mig["id"], dest_compute="compute2")
    db.update_migration(mig["id"], "pre-migrating", status="migrating")
    with pytest.raises(UnexpectedTaskState):
        db.update_migration(mig["id"], "pre-migrating", status="finished")
    assert db.migration(mig["id"])["status"] == "migrating"
    assert [m["id"] for m in db.migrations(host="compute2")] == [mig["id"]]
    assert db.migrations(host="compute3") == []
    with pytest.raises(ValueError):
        db.update_migration(mig["id"], instance_uuid="x")
    with pytest.raises(ValueError):
        db.create_migration(uuid, "teleport", "compute1", "m1.small", "m1.small", "req-1")


def test_a_rolled_back_migration_writes_fault_instance_and_status_together(db):
    _, _, [uuid] = _create(db)
    mig = db.create_migration(uuid, "migration", "compute1", "m1.small", "m1.small", "r")
    db.add_fault_and_update(uuid, 500, "NoValidHost: none", None,
                            {"vm_state": "active", "task_state": None},
                            migration=(mig["id"], "error"))
    inst = db.instance(uuid)
    assert (inst["vm_state"], inst["task_state"]) == ("active", None)
    assert db.fault(uuid)["message"] == "NoValidHost: none"
    assert db.migration(mig["id"])["status"] == "error"
    with pytest.raises(ValueError):   # nothing written when one part is bad
        db.add_fault_and_update(uuid, 500, "second", None, {"bogus": 1},
                                migration=(mig["id"], "done"))
    assert db.fault(uuid)["message"] == "NoValidHost: none"


def test_a_fault_and_update_may_expect_a_task_state(db):
    _, _, [uuid] = _create(db)
    db.update_instance(uuid, task_state="rebuilding")
    with pytest.raises(UnexpectedTaskState):      # a late write: nothing changes
        db.add_fault_and_update(uuid, 500, "late", None, {"task_state": None},
                                expected_task_state="resize_prep")
    assert db.instance(uuid)["task_state"] == "rebuilding" and db.fault(uuid) is None
    db.add_fault_and_update(uuid, 500, "NoValidHost: none", None, {"task_state": None},
                            expected_task_state="rebuilding")
    assert db.instance(uuid)["task_state"] is None
    assert db.fault(uuid)["message"] == "NoValidHost: none"
    db.update_instance(uuid, deleted=1)
    with pytest.raises(NotFound):
        db.add_fault_and_update(uuid, 500, "gone", None, {"task_state": None},
                                expected_task_state=None)


def test_instances_can_be_filtered_by_task_states(db):
    _, _, [a, b, c] = db.create_instances(["a", "b", "c"], "m1.tiny", "cirros", None)
    db.update_instance(a, task_state="resize_prep")
    db.update_instance(b, task_state="rebuilding")
    moving = db.instances(task_states=("resize_prep", "rebuilding"))
    assert [i["uuid"] for i in moving] == [a, b]
    assert [i["uuid"] for i in db.instances(task_states=("spawning",))] == []
    assert len(db.instances()) == 3


def test_claim_attempt_moves_on_once_and_only_while_building(db):
    _, _, [uuid] = db.create_instances(["g"], "m1.tiny", "cirros", None)
    assert db.claim_attempt(uuid, 1, vm_state="building")
    assert not db.claim_attempt(uuid, 1, vm_state="building")     # its duplicate
    assert db.claim_attempt(uuid, 2, vm_state="building")
    db.set_error(uuid, 500, "BuildTimeout: x")
    assert not db.claim_attempt(uuid, 3, vm_state="building")     # late: ERROR stays
    assert db.instance(uuid)["num_attempts"] == 2


def test_set_error_with_an_expectation_never_rewrites_a_moved_instance(db):
    _, _, [uuid] = db.create_instances(["h"], "m1.tiny", "cirros", None)
    seen = db.instance(uuid)
    db.update_instance(uuid, vm_state="active", task_state=None)
    with pytest.raises(UnexpectedTaskState):
        db.set_error(uuid, 500, "BuildTimeout: late", expected={"vm_state": "building"})
    with pytest.raises(UnexpectedTaskState):
        db.set_error(uuid, 500, "late", expected={"updated_at": seen["updated_at"]})
    assert db.instance(uuid)["vm_state"] == "active" and db.fault(uuid) is None
    with pytest.raises(UnexpectedTaskState):
        db.update_instance(uuid, expected_vm_state="building", task_state="scheduling")
    with pytest.raises(ValueError):
        db.set_error(uuid, 500, "x", expected={"vm_state = 'active' OR 1": 1})


def test_connect_opens_in_wal_with_every_table_and_again_changes_nothing(tmp_path):
    from orchestrator.db_schema import SCHEMA, connect
    first = connect(tmp_path / DB_FILE)
    first.execute("INSERT INTO counters VALUES ('x', 1)")
    second = connect(tmp_path / DB_FILE)            # a second service starting
    assert second.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in second.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))
    assert [tuple(r) for r in second.execute("SELECT value FROM counters")] == [(1,)]
    assert not second.in_transaction
    first.close()
    second.close()
