"""Unit tests for orchestrator.compute.host: the one ComputeHost a compute's two managers
share (claims, failure injection, rpcapis, the conductor steps), and MigrationManager
working through its public surface, on the in-memory transport."""
from __future__ import annotations

import asyncio

import pytest

from orchestrator import rundir
from orchestrator.compute.failures import decide
from orchestrator.compute.host import ComputeHost, InstanceGone
from orchestrator.compute.manager import ComputeManager
from orchestrator.compute.migration import MigrationManager
from orchestrator.config import LabConfig
from orchestrator.exception import BuildAbortException
from orchestrator.messaging.fake import FakeTransport
from orchestrator.messaging.protocol import RemoteError
from orchestrator.messaging.server import RPCServer
from orchestrator.objects import Instance

SPEC = {"vcpus": 1, "memory_mb": 512, "root_gb": 1}
CTX = {"request_id": "req-1"}


def node(failures: dict | None = None, version: str = Instance.VERSION,
         **answers) -> tuple[ComputeHost, FakeTransport]:
    transport = FakeTransport("compute", "compute1")
    for method in ("instance_update", "action_event", "compute_node_update",
                   "instance_fault_create", "migration_update"):
        transport.answer("conductor", method, answers.get(method))
    config = LabConfig(preset="fast", seed=3)
    return ComputeHost(transport, config, "compute1", failures, version), transport


def instance(host: str = "compute2") -> dict:
    return Instance(uuid="u-1", name="vm1", image_ref="cirros", flavor="m1.small", vcpus=1,
                    memory_mb=2048, root_gb=20, host=host, vm_state="active",
                    task_state="resize_prep", availability_zone=None, launched_at=1.0,
                    migration_context=None).obj_to_primitive()


def test_a_release_reports_only_a_claim_that_was_held():
    host, transport = node()
    asyncio.run(host.release(CTX, "u-1"))
    assert transport.sent == []
    host.tracker.claim("u-1", SPEC)
    asyncio.run(host.release(CTX, "u-1"))
    assert transport.sent_methods() == [("call", "conductor", "compute_node_update")]
    assert host.tracker.claims == {}


@pytest.mark.parametrize("remote", ["NotFound", "UnexpectedTaskState", "InstanceNotFound"])
def test_a_save_of_an_instance_gone_or_moved_on_raises_instance_gone(remote):
    host, _ = node(instance_update=RemoteError(remote, "u-1"))
    with pytest.raises(InstanceGone):
        asyncio.run(host.save(CTX, "u-1", {"task_state": "spawning"}, "scheduling"))


def test_any_other_remote_error_of_a_save_is_raised_as_it_came():
    host, _ = node(instance_update=RemoteError("ValueError", "bad values"))
    with pytest.raises(RemoteError, match="ValueError"):
        asyncio.run(host.save(CTX, "u-1", {}, None))


def test_an_abort_frees_the_claim_then_writes_the_fault_only_while_building():
    host, transport = node(instance_fault_create=RemoteError("UnexpectedTaskState", "x"))
    host.tracker.claim("u-1", SPEC)
    asyncio.run(host.abort(CTX, "u-1", BuildAbortException("no disk")))   # not raised
    assert [m for _, _, m in transport.sent_methods()] == ["compute_node_update",
                                                           "instance_fault_create"]
    fault = transport.sent[-1]["args"]
    assert fault["error"] == {"type": "BuildAbortException", "message": "no disk",
                              "code": 500}
    assert fault["expected_vm_state"] == "building" and host.tracker.claims == {}


def test_an_instance_too_new_for_this_host_is_backported_by_the_conductor():
    host, transport = node(version="1.0")
    older = Instance.obj_from_primitive(instance()).obj_to_primitive("1.0")
    transport.answer("conductor", "object_backport_versions", older)
    inst = asyncio.run(host.load_instance(CTX, instance()))
    assert inst.uuid == "u-1" and inst.obj_version == "1.0"
    call = transport.sent[-1]
    assert (call["method"], call["args"]["object_versions"]) == \
        ("object_backport_versions", {"Instance": "1.0"})


def test_an_unknown_object_version_is_refused_at_once():
    with pytest.raises(ValueError):
        node(version="banana")


def test_the_verdict_is_the_labs_seeded_decision_for_this_host():
    host, _ = node(failures={"reschedule": 0.5})
    keys = [(f"u-{i}", attempt) for i in range(40) for attempt in (1, 2)]
    outcomes = [host.verdict(key, attempt).outcome for key, attempt in keys]
    assert outcomes == [decide(host.failure, 3, key, "compute1", attempt).outcome
                        for key, attempt in keys]
    assert set(outcomes) == {None, "reschedule"}
    elsewhere = [decide(host.failure, 3, key, "compute2", attempt).outcome
                 for key, attempt in keys]
    assert outcomes != elsewhere                    # the host is part of the seed


def test_the_managers_share_one_host_and_it_follows_set_config(tmp_path):
    rundir.update(tmp_path, config={"lab": LabConfig(preset="fast", seed=3).to_dict()})
    manager = ComputeManager(FakeTransport("compute", "compute1"), tmp_path, "compute1")
    [_, migrations] = manager.rpc_endpoints
    assert isinstance(migrations, MigrationManager) and migrations.node is manager.node
    manager.set_config({}, max_attempts=7)
    assert manager.node.config.max_attempts == 7


def test_a_failed_prep_resize_frees_its_claim_and_calls_the_move_back():
    host, transport = node(failures={"reschedule": 1.0})
    transport.answer("conductor", "migrate_server", None)
    RPCServer(transport, [MigrationManager(host)])
    asyncio.run(transport.deliver(transport.cast_to_me(
        "prep_resize", ctx=CTX, instance=instance(), migration_id=4, flavor="m1.small",
        retry={"num_attempts": 1, "hosts": ["compute1"]}, host_list=["compute3"])))
    assert host.tracker.claims == {}
    handed = transport.sent[-1]
    assert (handed["kind"], handed["method"], handed["ctx"]["attempt"]) == \
        ("call", "migrate_server", 2)
    assert handed["args"]["retry"]["exc"].startswith("RescheduledException")


def test_a_prepared_destination_casts_resize_instance_to_the_source():
    host, transport = node()
    RPCServer(transport, [MigrationManager(host)])
    asyncio.run(transport.deliver(transport.cast_to_me(
        "prep_resize", ctx=CTX, instance=instance(), migration_id=4, flavor="m1.small",
        retry={"num_attempts": 1})))
    assert "u-1" in host.tracker.claims
    assert transport.sent_methods()[-1] == ("cast", "compute.compute2", "resize_instance")
