"""Unit tests for orchestrator.api.actions: body validation (400), state checks (409)
and what each action writes and hands over, with a real Database and recording
stand-ins for the RPC clients. Nothing is written when a request is refused."""
from __future__ import annotations

import pytest

from orchestrator.api.actions import run_action
from orchestrator.api.manager import Conflict
from orchestrator.api.microversion import Version
from orchestrator.api.validation import BadRequest
from orchestrator.config import LabConfig
from orchestrator.db import Database, NotFound

LAB_VERSION = Version(2, 47)      # what the lab's own client asks for


class Recorder:
    def __init__(self):
        self.sent = []

    def __getattr__(self, method):
        return lambda *args, **kwargs: self.sent.append((method, args, kwargs))


class FakeApi:
    def __init__(self, db, up=("compute1", "compute2"), **options):
        self.db, self.up = db, set(up)
        self.config = LabConfig(**options)
        self.conductor, self.scheduler, self.compute = Recorder(), Recorder(), Recorder()

    def host_is_up(self, host):
        return host in self.up

    def sent(self):
        """(method, receiver): ``compute1`` for a compute (its host argument), else the
        service's topic."""
        out = [(m, topic) for topic, r in (("conductor", self.conductor),
                                           ("scheduler", self.scheduler))
               for m, _, _ in r.sent]
        return out + [(m, a[1]) for m, a, _ in self.compute.sent]


@pytest.fixture
def db(tmp_path):
    db = Database(tmp_path, seed=1)
    for host in ("compute1", "compute2"):
        db.compute_node_update(host, {"availability_zone": "nova", "vcpus": 8,
                                      "memory_mb": 16384, "local_gb": 200, "vcpus_used": 0,
                                      "memory_mb_used": 0, "local_gb_used": 0,
                                      "running_vms": 0, "failed_builds": 0})
    yield db
    db.close()


def server(db, vm_state="active", task_state=None, host="compute1"):
    _, _, [uuid] = db.create_instances(["vm"], "m1.small", "cirros", None)
    db.update_instance(uuid, vm_state=vm_state, task_state=task_state, host=host)
    return uuid


def snapshot(db, uuid):
    return db.instance(uuid), db.migrations(instance_uuid=uuid), db.actions(uuid)


@pytest.mark.parametrize("body, message", [
    (None, "exactly one action"), ([], "exactly one action"), ({}, "exactly one action"),
    ({"reboot": None}, "exactly one action"),
    ({"migrate": None, "resize": {"flavorRef": "2"}}, "exactly one action"),
    ({"migrate": {"host": "compute2"}}, "host were unexpected"),
    ({"migrate": 5}, "expected an object"),
    ({"resize": {}}, "missing flavorRef"), ({"resize": {"flavorRef": "m1.huge"}}, "m1.huge"),
    ({"resize": {"flavorRef": "m1.small"}}, "must change flavor"),
    ({"resize": {"flavorRef": 2}}, "must change flavor"),
    ({"rebuild": {}}, "imageRef"), ({"rebuild": {"imageRef": " "}}, "imageRef"),
    ({"rebuild": {"imageRef": 7}}, "imageRef"),
    ({"rebuild": {"imageRef": "gentoo"}}, "Image 'gentoo' could not be found"),
    ({"evacuate": {}}, "'onSharedStorage' is a required property"),    # at 2.1
    ({"evacuate": {"onSharedStorage": False, "force": True}}, "force were unexpected")])
def test_bad_bodies_are_400_and_write_nothing(db, body, message):
    api, uuid = FakeApi(db), server(db)
    before = snapshot(db, uuid)
    with pytest.raises(BadRequest, match=message):
        run_action(api, uuid, body, "req-x")
    assert snapshot(db, uuid) == before and api.sent() == []


@pytest.mark.parametrize("body, refusal, message", [
    ({"host": "compute9"}, NotFound, "Compute host 'compute9' not found"),
    ({"host": ["compute2"]}, BadRequest, "host"),
    ({"host": "compute1"}, BadRequest, "can't be the same one"),
    ({"force": True}, BadRequest, "Can't force to a non-provided destination"),
    ({}, BadRequest, "still in use")])                    # its host is up: Nova's 400
def test_evacuate_refusals_are_novas_and_write_nothing(db, body, refusal, message):
    api, uuid = FakeApi(db), server(db)
    before = snapshot(db, uuid)
    with pytest.raises(refusal, match=message):
        run_action(api, uuid, {"evacuate": body}, "req-x", LAB_VERSION)
    assert snapshot(db, uuid) == before and api.sent() == []


@pytest.mark.parametrize("body, vm_state, task_state", [
    ({"migrate": None}, "building", "spawning"), ({"migrate": None}, "error", None),
    ({"migrate": None}, "active", "resize_prep"),
    ({"resize": {"flavorRef": "m1.medium"}}, "resized", None),
    ({"confirmResize": None}, "active", None), ({"revertResize": None}, "active", None),
    ({"rebuild": {"imageRef": "fedora"}}, "active", "deleting"),
    ({"rebuild": {"imageRef": "fedora"}}, "building", "spawning")])
def test_actions_in_the_wrong_state_are_409_and_write_nothing(db, body, vm_state, task_state):
    api, uuid = FakeApi(db), server(db, vm_state, task_state)
    before = snapshot(db, uuid)
    with pytest.raises(Conflict, match="Cannot"):
        run_action(api, uuid, body, "req-x")
    assert snapshot(db, uuid) == before and api.sent() == []


@pytest.mark.parametrize("version, args, allowed", [
    ((2, 1), {"onSharedStorage": "true"}, True), ((2, 13), {"onSharedStorage": False}, True),
    ((2, 14), {"onSharedStorage": False}, False), ((2, 28), {"force": True}, False),
    ((2, 29), {"force": True, "host": "compute2"}, True),
    ((2, 47), {"force": "no", "host": "compute2"}, True),
    ((2, 29), {"force": "maybe"}, False), ((2, 47), {"onSharedStorage": True}, False)])
def test_evacuate_takes_what_its_microversion_names(db, version, args, allowed):
    """onSharedStorage until 2.13, force from 2.29 (a boolean), as Nova's schemas."""
    api, uuid = FakeApi(db, up=("compute2",)), server(db)
    if allowed:
        assert run_action(api, uuid, {"evacuate": args}, "req-e", Version(*version)) == 200
    else:
        with pytest.raises(BadRequest):
            run_action(api, uuid, {"evacuate": args}, "req-e", Version(*version))
        assert api.sent() == []


@pytest.mark.parametrize("ref", ["fedora", "eaf64fb9-453d-5ccf-989f-43ec4a4af7f0",
                                 "http://api/images/eaf64fb9-453d-5ccf-989f-43ec4a4af7f0"])
def test_rebuild_takes_an_image_by_id_link_or_name_and_passes_its_name(db, ref):
    api, uuid = FakeApi(db), server(db)
    assert run_action(api, uuid, {"rebuild": {"imageRef": ref}}, "req-r") == 202
    [(method, args, _)] = api.conductor.sent
    assert (method, args[2]) == ("rebuild_instance", "fedora")


def test_an_unknown_server_is_404(db):
    with pytest.raises(NotFound):
        run_action(FakeApi(db), "nope", {"migrate": None}, "req-x")


@pytest.mark.parametrize("flow, receiver", [("conductor", "migrate_server"),
                                            ("legacy", "prep_resize")])
def test_migrate_sets_resize_prep_records_the_action_and_casts(db, flow, receiver):
    api, uuid = FakeApi(db, flow=flow), server(db)
    assert run_action(api, uuid, {"migrate": None}, "req-m") == 202
    assert db.instance(uuid)["task_state"] == "resize_prep"
    assert [a["action"] for a in db.actions(uuid)] == ["create", "migrate"]
    assert [m for m, _ in api.sent()] == [receiver]


def test_confirm_and_revert_go_straight_to_the_right_compute(db):
    api = FakeApi(db)
    uuid = server(db, "resized", None, host="compute2")
    m = db.create_migration(uuid, "resize", "compute1", "m1.small", "m1.medium", "r")
    db.update_migration(m["id"], dest_compute="compute2", status="finished")
    assert run_action(api, uuid, {"confirmResize": None}, "req-c") == 204
    assert api.sent() == [("confirm_resize", "compute1")]
    assert db.migration(m["id"])["status"] == "confirming"
    uuid2 = server(db, "resized", None, host="compute2")
    m2 = db.create_migration(uuid2, "resize", "compute1", "m1.small", "m1.medium", "r")
    db.update_migration(m2["id"], dest_compute="compute2", status="finished")
    assert run_action(api, uuid2, {"revertResize": None}, "req-r") == 202
    assert api.sent()[-1] == ("revert_resize", "compute2")
    assert db.instance(uuid2)["task_state"] == "resize_reverting"


def test_evacuate_is_refused_while_the_host_is_up_and_accepted_when_it_is_down(db):
    uuid = server(db)
    with pytest.raises(BadRequest, match="still in use"):
        run_action(FakeApi(db), uuid, {"evacuate": {}}, "req-e", LAB_VERSION)
    assert db.migrations(instance_uuid=uuid) == []
    api = FakeApi(db, up=("compute2",))
    assert run_action(api, uuid, {"evacuate": {}}, "req-e", LAB_VERSION) == 200
    [m] = db.migrations(instance_uuid=uuid)
    assert (m["migration_type"], m["status"], m["source_compute"]) == \
        ("evacuation", "accepted", "compute1")
    assert api.sent() == [("rebuild_instance", "conductor")]
    assert db.instance(uuid)["task_state"] == "rebuilding"


def test_legacy_evacuate_needs_a_host_and_goes_straight_to_it(db):
    uuid = server(db)
    api = FakeApi(db, up=("compute2",), flow="legacy")
    with pytest.raises(BadRequest, match="needs the target host"):
        run_action(api, uuid, {"evacuate": {}}, "req-e", LAB_VERSION)
    assert run_action(api, uuid, {"evacuate": {"host": "compute2"}}, "req-e",
                      LAB_VERSION) == 200
    assert api.sent() == [("rebuild_instance", "compute2")]


@pytest.mark.parametrize("body", [{"rebuild": {"imageRef": "fedora"}}, {"migrate": None},
                                  {"resize": {"flavorRef": "m1.large"}}])
def test_rebuild_and_resize_are_refused_when_the_host_is_down(db, body):
    uuid = server(db)
    api = FakeApi(db, up=("compute2",))
    with pytest.raises(Conflict, match="evacuate it instead"):
        run_action(api, uuid, body, "req-b")
    assert db.instance(uuid)["task_state"] is None and api.sent() == []


@pytest.mark.parametrize("body, down", [({"confirmResize": None}, "compute1"),
                                        ({"revertResize": None}, "compute1"),
                                        ({"revertResize": None}, "compute2")])
def test_confirm_and_revert_need_the_computes_that_do_them(db, body, down):
    uuid = server(db, "resized", None, host="compute2")
    m = db.create_migration(uuid, "resize", "compute1", "m1.small", "m1.medium", "r")
    db.update_migration(m["id"], dest_compute="compute2", status="finished")
    api = FakeApi(db, up={"compute1", "compute2"} - {down})
    before = snapshot(db, uuid)
    with pytest.raises(Conflict, match=f"{down} is down"):
        run_action(api, uuid, body, "req-x")
    assert snapshot(db, uuid) == before and api.sent() == []
