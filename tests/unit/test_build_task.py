"""Unit tests for orchestrator.conductor.tasks.build.BuildTask: a real Database in
tmp_path, stand-ins for the scheduler and compute RPC clients, the coroutine run with
asyncio.run."""
from __future__ import annotations

import asyncio

import pytest

from orchestrator.config import LabConfig
from orchestrator.conductor.tasks.build import EVENT, BuildTask
from orchestrator.db import Database
from orchestrator.messaging.protocol import MessagingTimeout, RemoteError

SPEC = {"vcpus": 1, "memory_mb": 512, "root_gb": 1, "flavor": "m1.tiny", "image": "cirros",
        "availability_zone": None, "num_instances": 1}


class FakeScheduler:
    """SchedulerAPI's select_destinations: records each call, answers with ``answer``
    (a list, or an exception to raise)."""

    def __init__(self, answer=None):
        self.answer = answer
        self.calls: list[dict] = []

    async def select_destinations(self, ctx, request_spec, instance_uuids,
                                  return_alternates=False, timeout=None):
        self.calls.append({"ctx": ctx, "request_spec": request_spec,
                           "instance_uuids": list(instance_uuids),
                           "return_alternates": return_alternates, "timeout": timeout})
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


class FakeCompute:
    """ComputeAPI's build_and_run_instance: records each cast."""

    def __init__(self):
        self.casts: list[dict] = []

    def build_and_run_instance(self, ctx, host, instance_uuid, request_spec, retry,
                               host_list=None, flow="conductor", instance=None):
        self.casts.append({"ctx": ctx, "host": host, "instance_uuid": instance_uuid,
                           "request_spec": request_spec, "retry": retry,
                           "host_list": host_list, "flow": flow, "instance": instance})


@pytest.fixture
def db(tmp_path):
    db = Database(tmp_path, seed=4)
    yield db
    db.close()


class Setup:
    def __init__(self, db: Database, answer=None, **options):
        self.db = db
        self.config = LabConfig(**options)
        self.scheduler = FakeScheduler(answer)
        self.compute = FakeCompute()
        self.task = BuildTask(db, self.scheduler, self.compute, lambda: self.config)

    def create(self, count: int = 1):
        names = ["vm"] if count == 1 else [f"vm-{i + 1}" for i in range(count)]
        request_id, _, uuids = self.db.create_instances(names, "m1.tiny", "cirros", None)
        return request_id, uuids

    def run(self, uuids, retry=None, host_lists=None, ctx=None, as_sent=True):
        """``as_sent``: a reschedule finds its instances on the attempt it carries, as
        in the real flow (False: as they are, to test the guard)."""
        request_id = self.db.instance(uuids[0], deleted=True)["request_id"]
        if retry and as_sent:
            for uuid in uuids:
                self.db.conn.execute("UPDATE instances SET num_attempts=? WHERE uuid=?",
                                     (retry["num_attempts"], uuid))
        ctx = ctx or {"request_id": request_id, "attempt": 1,
                      "instance_uuid": uuids[0] if len(uuids) == 1 else ""}
        return asyncio.run(self.task.run(ctx, uuids, SPEC, retry, host_lists))


def _events(db, uuid):
    return [e for a in db.actions(uuid) for e in a["events"]]


def _delete(db, uuid):
    db.conn.execute("UPDATE instances SET deleted=1, vm_state='deleted' WHERE uuid=?", (uuid,))


def test_a_first_attempt_asks_the_scheduler_once_and_casts_to_the_chosen_host(db):
    s = Setup(db, [["compute2"]])
    request_id, [uuid] = s.create()
    ctx = {"request_id": request_id, "instance_uuid": uuid, "attempt": 1}
    assert s.run([uuid], ctx=ctx) is None
    [call] = s.scheduler.calls
    assert call["instance_uuids"] == [uuid]
    assert call["ctx"] == ctx
    assert call["request_spec"] == {**SPEC, "retry": {"num_attempts": 1, "hosts": []}}
    assert call["return_alternates"] is False
    assert call["timeout"] == s.config.timing("scheduler_timeout")
    [cast] = s.compute.casts
    instance = cast.pop("instance")
    assert cast == {"ctx": {**ctx, "attempt": 1}, "host": "compute2", "instance_uuid": uuid,
                    "request_spec": SPEC,
                    "retry": {"num_attempts": 1, "hosts": ["compute2"]},
                    "host_list": [], "flow": "conductor"}
    assert instance["nova_object.name"] == "Instance"
    assert instance["nova_object.version"] == "1.2"
    assert instance["nova_object.data"]["uuid"] == uuid
    inst = db.instance(uuid)
    assert (inst["num_attempts"], inst["vm_state"]) == (1, "building")
    assert [(e["event"], e["host"], e["attempt"], e["result"]) for e in _events(db, uuid)] == [
        (EVENT, "compute2", 1, "Success")]


def test_a_batch_casts_one_build_per_instance_tagged_with_it(db):
    s = Setup(db, [["compute1"], ["compute3"]])
    request_id, uuids = s.create(2)
    s.run(uuids, ctx={"request_id": request_id, "instance_uuid": "", "attempt": 1})
    assert len(s.scheduler.calls) == 1
    assert s.scheduler.calls[0]["instance_uuids"] == uuids
    assert [(c["host"], c["instance_uuid"], c["ctx"]["instance_uuid"])
            for c in s.compute.casts] == [("compute1", uuids[0], uuids[0]),
                                          ("compute3", uuids[1], uuids[1])]
    assert all(db.instance(u)["num_attempts"] == 1 for u in uuids)


def test_a_reschedule_asks_again_with_the_tried_hosts(db):
    s = Setup(db, [["compute3"]])
    _, [uuid] = s.create()
    s.run([uuid], retry={"num_attempts": 1, "hosts": ["compute1"],
                         "exc": "RescheduledException: boom"})
    [call] = s.scheduler.calls
    assert call["ctx"]["attempt"] == 2
    assert call["request_spec"]["retry"] == {"num_attempts": 2, "hosts": ["compute1"],
                                             "exc": "RescheduledException: boom"}
    [cast] = s.compute.casts
    assert cast["ctx"]["attempt"] == 2
    assert cast["retry"]["hosts"] == ["compute1", "compute3"]
    assert cast["retry"]["num_attempts"] == 2
    assert db.instance(uuid)["num_attempts"] == 2


def test_attempts_past_max_attempts_end_in_max_retries_exceeded(db):
    s = Setup(db, [["compute1"]], max_attempts=2)
    _, [uuid] = s.create()
    retry = None
    for _ in range(2):                          # two real attempts, each rescheduled
        s.run([uuid], retry=retry)
        retry = {**s.compute.casts[-1]["retry"], "exc": "RescheduledException: boom"}
    assert len(s.scheduler.calls) == 2
    s.run([uuid], retry=retry)                  # the third pass: over the limit
    assert len(s.scheduler.calls) == 2          # not asked again
    assert len(s.compute.casts) == 2
    inst = db.instance(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["num_attempts"]) == ("error", None, 2)
    fault = db.fault(uuid)
    assert fault["message"].startswith("MaxRetriesExceeded: Exceeded maximum number of "
                                       "retries")
    assert "max scheduling attempts 2" in fault["message"]
    assert fault["message"].endswith("Last exception: RescheduledException: boom")
    assert fault["code"] == 500
    assert _events(db, uuid)[-1]["result"] == "Error"


def test_the_scheduler_saying_no_valid_host_puts_the_instance_in_error(db):
    s = Setup(db, RemoteError("NoValidHost", "No valid host was found. (rejected: ...)"))
    _, [uuid] = s.create()
    s.run([uuid])
    assert len(s.scheduler.calls) == 1 and s.compute.casts == []
    inst = db.instance(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["num_attempts"]) == ("error", None, 1)
    assert db.fault(uuid)["message"].startswith("NoValidHost: No valid host was found.")
    [event] = _events(db, uuid)
    assert (event["event"], event["result"], event["attempt"]) == (EVENT, "Error", 1)


def test_a_batch_with_no_valid_host_fails_every_instance(db):
    s = Setup(db, RemoteError("NoValidHost", "not enough hosts"))
    _, uuids = s.create(3)
    s.run(uuids)
    assert [db.instance(u)["vm_state"] for u in uuids] == ["error"] * 3
    assert all(db.fault(u)["message"] == "NoValidHost: not enough hosts" for u in uuids)


def test_a_scheduler_timeout_puts_the_instance_in_error(db):
    s = Setup(db, MessagingTimeout("no reply to select_destinations within 5s"))
    _, [uuid] = s.create()
    s.run([uuid])
    assert s.compute.casts == []
    assert db.instance(uuid)["vm_state"] == "error"
    assert db.fault(uuid)["message"] == ("MessagingTimeout: no reply to select_destinations "
                                         "within 5s")


def test_alternates_are_asked_for_on_the_first_attempt(db):
    s = Setup(db, [["compute1", "compute2", "compute3"]], alternates=True)
    _, [uuid] = s.create()
    s.run([uuid])
    assert s.scheduler.calls[0]["return_alternates"] is True
    [cast] = s.compute.casts
    assert (cast["host"], cast["host_list"]) == ("compute1", ["compute2", "compute3"])


def test_a_reschedule_with_alternates_takes_the_next_untried_host(db):
    s = Setup(db, [["never"]], alternates=True)
    _, [uuid] = s.create()
    s.run([uuid], retry={"num_attempts": 1, "hosts": ["compute1"]},
          host_lists=[["compute2", "compute3"]])
    assert s.scheduler.calls == []
    [cast] = s.compute.casts
    assert (cast["host"], cast["host_list"]) == ("compute2", ["compute3"])
    assert cast["retry"] == {"num_attempts": 2, "hosts": ["compute1", "compute2"]}
    assert cast["ctx"]["attempt"] == 2
    assert db.instance(uuid)["num_attempts"] == 2


def test_alternates_already_tried_are_skipped(db):
    s = Setup(db, [["never"]], alternates=True, max_attempts=4)
    _, [uuid] = s.create()
    s.run([uuid], retry={"num_attempts": 2, "hosts": ["compute1", "compute2"]},
          host_lists=[["compute2", "compute3"]])
    assert s.scheduler.calls == []
    [cast] = s.compute.casts
    assert (cast["host"], cast["host_list"]) == ("compute3", [])


def test_exhausted_alternates_end_in_max_retries_exceeded(db):
    s = Setup(db, [["never"]], alternates=True)
    _, [uuid] = s.create()
    s.run([uuid], retry={"num_attempts": 1, "hosts": ["compute1"], "exc": "boom"},
          host_lists=[[]])
    assert s.scheduler.calls == [] and s.compute.casts == []
    assert db.instance(uuid)["vm_state"] == "error"
    message = db.fault(uuid)["message"]
    assert message.startswith("MaxRetriesExceeded: Exhausted all hosts")
    assert uuid in message and message.endswith("Last exception: boom")


def test_without_alternates_host_lists_are_ignored(db):
    s = Setup(db, [["compute3"]])
    _, [uuid] = s.create()
    s.run([uuid], retry={"num_attempts": 1, "hosts": ["compute1"]},
          host_lists=[["compute2"]])
    assert len(s.scheduler.calls) == 1
    assert s.compute.casts[0]["host"] == "compute3"


def test_an_instance_deleted_meanwhile_is_skipped(db):
    s = Setup(db, [["compute1"]])
    _, [gone, kept] = s.create(2)
    _delete(db, gone)
    s.run([gone, kept])
    assert s.scheduler.calls[0]["instance_uuids"] == [kept]
    assert [c["instance_uuid"] for c in s.compute.casts] == [kept]
    assert db.instance(gone, deleted=True)["num_attempts"] == 0


def test_nothing_happens_when_every_instance_is_gone(db):
    s = Setup(db, [["compute1"]])
    _, [uuid] = s.create()
    _delete(db, uuid)
    s.run([uuid])
    assert s.scheduler.calls == [] and s.compute.casts == []
    assert db.fault(uuid) is None


def test_max_retries_on_a_deleted_instance_writes_nothing(db):
    s = Setup(db, [["compute1"]], max_attempts=1)
    _, [uuid] = s.create()
    _delete(db, uuid)
    s.run([uuid], retry={"num_attempts": 1, "hosts": ["compute1"]})
    assert db.fault(uuid) is None
    assert db.instance(uuid, deleted=True)["vm_state"] == "deleted"


def test_the_config_is_read_on_every_run(db):
    s = Setup(db, [["compute1"]])
    _, [uuid] = s.create()
    s.config = s.config.replace(max_attempts=1)
    s.run([uuid], retry={"num_attempts": 1, "hosts": ["compute1"]})
    assert s.scheduler.calls == []
    assert db.fault(uuid)["message"].startswith("MaxRetriesExceeded")


def test_a_duplicated_build_instances_is_refused(db):
    s = Setup(db, [["compute1"]])
    _, [uuid] = s.create()
    s.run([uuid])
    s.run([uuid])                     # the bus delivered the API's cast twice
    assert len(s.scheduler.calls) == 1 and len(s.compute.casts) == 1
    assert db.instance(uuid)["num_attempts"] == 1


def test_a_late_reschedule_of_an_instance_in_error_changes_nothing(db):
    # The build timeout put it in ERROR; then the compute's reschedule cast arrives.
    s = Setup(db, [["compute2"]])
    _, [uuid] = s.create()
    s.run([uuid])
    db.set_error(uuid, 500, "BuildTimeout: no progress")
    s.run([uuid], retry={"num_attempts": 1, "hosts": ["compute1"]}, as_sent=False)
    inst = db.instance(uuid)
    assert inst["vm_state"] == "error" and inst["num_attempts"] == 1
    assert len(s.compute.casts) == 1          # nothing scheduled again
    assert db.fault(uuid)["message"].startswith("BuildTimeout")


def test_a_duplicated_last_reschedule_writes_one_fault(db):
    s = Setup(db, [["compute1"]], max_attempts=1)
    _, [uuid] = s.create()
    retry = {"num_attempts": 1, "hosts": ["compute1"], "exc": "RescheduledException: x"}
    s.run([uuid], retry=retry)
    s.run([uuid], retry=retry, as_sent=False)   # its duplicate
    faults = db.conn.execute("SELECT COUNT(*) FROM instance_faults WHERE instance_uuid=?",
                             (uuid,)).fetchone()[0]
    assert db.instance(uuid)["vm_state"] == "error" and faults == 1
