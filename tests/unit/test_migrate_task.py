"""Unit tests for orchestrator.conductor.tasks.migrate.MigrationTask: a real Database in
tmp_path, stand-ins for the scheduler and compute RPC clients, run with asyncio.run."""
from __future__ import annotations

import asyncio

import pytest

from orchestrator.config import LabConfig
from orchestrator.conductor.tasks.migrate import EVENT, MigrationTask
from orchestrator.db import Database
from orchestrator.exception import NoValidHost
from orchestrator.messaging.protocol import MessagingTimeout, RemoteError


class FakeScheduler:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    async def select_destinations(self, ctx, request_spec, instance_uuids,
                                  return_alternates=False, timeout=None):
        self.calls.append({"spec": request_spec, "alternates": return_alternates})
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


class FakeCompute:
    """prep_resize casts are recorded; ``step`` calls answer from ``failures``."""

    def __init__(self, failures=()):
        self.casts, self.steps, self.failures = [], [], list(failures)
        self.released = []

    def terminate_instance(self, ctx, host, instance_uuid, destroy=True):
        self.released.append((host, instance_uuid, destroy))

    def prep_resize(self, ctx, host, instance, migration_id, flavor, retry, host_list=None,
                    flow="conductor"):
        self.casts.append({"ctx": ctx, "host": host, "instance": instance,
                           "migration_id": migration_id, "flavor": flavor, "retry": retry,
                           "host_list": host_list, "flow": flow})

    async def step(self, ctx, host, method, timeout, instance, migration_id, flavor,
                   retry=None, host_list=None):
        assert (retry is not None) == (method == "prep_resize"), method
        self.steps.append((host, method))
        if self.failures and self.failures[0][0] == (host, method):
            raise self.failures.pop(0)[1]


@pytest.fixture
def db(tmp_path):
    db = Database(tmp_path, seed=4)
    yield db
    db.close()


def active(db, host="compute1", flavor="m1.small"):
    _, _, [uuid] = db.create_instances(["vm"], flavor, "cirros", None)
    db.update_instance(uuid, vm_state="active", task_state="resize_prep", host=host)
    db.start_action(uuid, "migrate", "req-1")      # as the API does
    return uuid


def run(db, answer, flavor="m1.small", compute=None, retry=None, host_list=None,
        migration_id=None, handed_back=False, **options):
    uuid = active(db) if migration_id is None else db.migration(migration_id)["instance_uuid"]
    config = LabConfig(**options)
    scheduler, compute = FakeScheduler(answer), compute or FakeCompute()
    task = MigrationTask(db, scheduler, compute, lambda: config)
    asyncio.run(task.run({"request_id": "req-1", "attempt": 1}, uuid, flavor, retry,
                         host_list, migration_id, handed_back=handed_back))
    return uuid, scheduler, compute


def test_a_migration_asks_the_scheduler_ignoring_the_source_and_casts_prep_resize(db):
    uuid, scheduler, compute = run(db, [["compute2"]])
    [call] = scheduler.calls
    assert call["spec"]["ignore_hosts"] == ["compute1"]
    assert call["spec"]["memory_mb"] == 2048 and call["spec"]["retry"]["num_attempts"] == 1
    [cast] = compute.casts
    assert cast["host"] == "compute2" and cast["flavor"] == "m1.small"
    assert cast["retry"] == {"num_attempts": 1, "hosts": ["compute2"]}
    assert cast["instance"]["nova_object.data"]["migration_context"]["dest_compute"] \
        == "compute2"
    [migration] = db.migrations(instance_uuid=uuid)
    assert (migration["migration_type"], migration["status"]) == ("migration", "pre-migrating")
    assert (migration["source_compute"], migration["dest_compute"]) == ("compute1", "compute2")
    [_, migrate] = db.actions(uuid)
    assert migrate["action"] == "migrate"
    assert [(e["event"], e["host"], e["result"]) for e in migrate["events"]] == [
        (EVENT, "compute2", "Success")]


def test_a_new_flavor_makes_it_a_resize_with_the_new_sizes(db):
    uuid, scheduler, _ = run(db, [["compute3"]], flavor="m1.large")
    assert scheduler.calls[0]["spec"]["vcpus"] == 4
    [migration] = db.migrations(instance_uuid=uuid)
    assert (migration["migration_type"], migration["old_flavor"], migration["new_flavor"]) \
        == ("resize", "m1.small", "m1.large")


@pytest.mark.parametrize("error", [RemoteError("NoValidHost", "No valid host was found."),
                                   MessagingTimeout("scheduler did not answer")])
def test_no_destination_rolls_back_with_a_fault_and_the_instance_stays(db, error):
    uuid, _, compute = run(db, error, flavor="m1.medium")
    inst = db.instance(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["host"], inst["flavor"]) == \
        ("active", None, "compute1", "m1.small")
    assert type(error).__name__ in db.fault(uuid)["message"] or "NoValidHost" in \
        db.fault(uuid)["message"]
    assert db.migrations(instance_uuid=uuid)[0]["status"] == "error"
    assert compute.casts == []


def test_past_max_attempts_it_rolls_back_without_asking_again(db):
    first, _, _ = run(db, [["compute2"]])
    [m] = db.migrations(instance_uuid=first)
    _, scheduler, compute = run(db, [["compute3"]], retry={
        "num_attempts": 3, "hosts": ["compute2", "compute3", "compute4"],
        "exc": "RescheduledException: boom"}, migration_id=m["id"])
    assert scheduler.calls == [] and compute.casts == []
    assert "MaxRetriesExceeded" in db.fault(first)["message"]
    assert "boom" in db.fault(first)["message"]
    assert db.migration(m["id"])["status"] == "error"


@pytest.mark.parametrize("options", [{}, {"alternates": True}])
def test_a_reschedule_handed_back_with_nowhere_to_go_answers_no_valid_host(db, options):
    """The destination that called waits for this answer: the conductor ends the
    migration and puts the server in ERROR with the destination's reason first, from
    resize_prep only (a duplicate's answer, a lost one, change nothing)."""
    first, _, _ = run(db, [["compute2"]], **options)
    [m] = db.migrations(instance_uuid=first)
    retry = {"num_attempts": 1 if options else 3, "hosts": ["compute2"], "exc": "boom"}
    with pytest.raises(NoValidHost, match="No valid host found for cold migrate: "
                                          "MaxRetriesExceeded"):
        run(db, [["compute3"]], retry=retry, host_list=[], migration_id=m["id"],
            handed_back=True, **options)
    inst = db.instance(first)
    assert (inst["vm_state"], inst["task_state"], inst["host"]) == ("error", None, "compute1")
    fault = db.fault(first)
    assert fault["message"].startswith("MigrationError: boom (rescheduling failed: "
                                       "NoValidHost: No valid host found for cold migrate")
    assert fault["host"] == "compute2"                      # where it failed
    assert db.migration(m["id"])["status"] == "error"
    [event] = [e for e in db.actions(first)[-1]["events"] if e["result"] == "Error"]
    assert event["event"] == EVENT and "boom" in event["details"]
    # a duplicate of the call, later: the migration has ended, so it does nothing
    _, scheduler, compute = run(db, [["compute3"]], retry=retry, host_list=[],
                                migration_id=m["id"], handed_back=True, **options)
    assert scheduler.calls == compute.casts == []
    assert db.instance(first)["vm_state"] == "error" and db.fault(first) == fault


def test_a_reschedule_with_alternates_takes_the_next_host_without_the_scheduler(db):
    first, _, _ = run(db, [["compute2", "compute3"]], alternates=True)
    [m] = db.migrations(instance_uuid=first)
    _, scheduler, compute = run(db, [["x"]], retry={"num_attempts": 1, "hosts": ["compute2"]},
                                host_list=["compute3"], migration_id=m["id"], alternates=True)
    assert scheduler.calls == []
    assert compute.casts[0]["host"] == "compute3"
    assert db.migration(m["id"])["dest_compute"] == "compute3"


def test_via_the_conductor_every_step_is_a_call_and_a_failed_prep_is_rescheduled_here(db):
    compute = FakeCompute(failures=[(("compute2", "prep_resize"), RemoteError(
        "RescheduledException", "injected"))])
    uuid, scheduler, _ = run(db, [["compute2"]], compute=compute, resize_via_conductor=True)
    # the fake scheduler answers compute2 again; the RetryFilter would not, but the task
    # must still ask a second time, with the failed host in retry.hosts
    assert len(scheduler.calls) == 2
    assert scheduler.calls[1]["spec"]["retry"]["hosts"] == ["compute2"]
    assert compute.steps == [("compute2", "prep_resize"), ("compute2", "prep_resize"),
                             ("compute1", "resize_instance"), ("compute2", "finish_resize")]
    assert compute.casts == []


def test_via_the_conductor_a_failed_later_step_is_an_error_not_a_reschedule(db):
    compute = FakeCompute(failures=[(("compute1", "resize_instance"), RemoteError(
        "OSError", "disk copy failed"))])
    uuid, scheduler, _ = run(db, [["compute2"]], compute=compute, resize_via_conductor=True)
    assert len(scheduler.calls) == 1
    assert db.instance(uuid)["vm_state"] == "error"
    assert "disk copy failed" in db.fault(uuid)["message"]
    assert db.migrations(instance_uuid=uuid)[0]["status"] == "error"
    # still on compute1 (the source): compute2, prepared, is told to free its claim
    assert compute.released == [("compute2", uuid, False)]


def test_a_late_reschedule_of_a_migration_that_already_ended_does_nothing(db):
    first, _, _ = run(db, [["compute2"]])
    [m] = db.migrations(instance_uuid=first)
    db.update_migration(m["id"], status="error")          # the timeout check got there first
    _, scheduler, compute = run(db, [["compute3"]], retry={"num_attempts": 1, "hosts": []},
                                migration_id=m["id"])
    assert scheduler.calls == [] and compute.casts == []
    assert db.migration(m["id"])["status"] == "error"


def test_an_instance_deleted_meanwhile_is_left_alone(db):
    first, _, _ = run(db, [["compute2"]])
    [m] = db.migrations(instance_uuid=first)
    db.update_instance(first, deleted=1, vm_state="deleted")
    _, scheduler, compute = run(db, [["compute3"]], retry={"num_attempts": 1, "hosts": []},
                                migration_id=m["id"])
    assert scheduler.calls == [] and compute.casts == []
    assert db.migration(m["id"])["status"] == "error"
