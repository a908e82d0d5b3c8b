"""ComputeManager on the in-memory transport (orchestrator.messaging.fake): what a build
sends and in what order, a failure handed back to the conductor, a duplicate ignored, a
refused claim rescheduled without a claim."""
from __future__ import annotations

import asyncio

import pytest

from orchestrator import rundir
from orchestrator.compute.manager import BUILD_STEPS, ComputeManager
from orchestrator.config import LabConfig
from orchestrator.messaging.fake import FakeTransport, Unanswered
from orchestrator.messaging.server import RPCServer

SPEC = {"vcpus": 1, "memory_mb": 512, "root_gb": 1, "flavor": "m1.tiny",
        "image": "cirros", "num_instances": 1}


@pytest.fixture
def compute(tmp_path):
    """compute1 of a fast lab, with the conductor's saves answered."""
    def make(failures: dict | None = None) -> tuple[ComputeManager, FakeTransport]:
        rundir.update(tmp_path, config={"lab": LabConfig(preset="fast", seed=3).to_dict()},
                      failures={"compute1": failures or {}})
        transport = FakeTransport("compute", "compute1")
        for method in ("instance_update", "action_event", "compute_node_update",
                       "instance_fault_create"):
            transport.answer("conductor", method, None)
        manager = ComputeManager(transport, tmp_path, "compute1")
        RPCServer(transport, manager.rpc_endpoints)
        return manager, transport
    return make


def _build(transport: FakeTransport, uuid: str = "u-1", attempt: int = 1) -> dict:
    return transport.cast_to_me("build_and_run_instance", ctx={"request_id": "req-1"},
                                instance_uuid=uuid, request_spec=SPEC,
                                retry={"num_attempts": attempt, "hosts": ["compute1"]})


def test_a_build_saves_each_step_through_the_conductor_and_claims_its_room(compute):
    manager, transport = compute()
    asyncio.run(transport.deliver(_build(transport)))
    updates = [e["args"]["values"] for e in transport.sent if e["method"] == "instance_update"]
    assert [u["task_state"] for u in updates[:-1]] == list(BUILD_STEPS)
    assert updates[0]["host"] == "compute1"             # networking: on this host now
    assert (updates[-1]["vm_state"], updates[-1]["task_state"]) == ("active", None)
    assert ("fanout", "scheduler", "update_instance_info") in transport.sent_methods()
    assert {e["topic"] for e in transport.sent if e["kind"] == "call"} == {"conductor"}
    assert "u-1" in manager.node.tracker.claims and manager.node.building == set()
    events = [e["args"]["result"] for e in transport.sent if e["method"] == "action_event"]
    assert events == ["Success"]


def test_a_failed_build_goes_back_to_the_conductor_as_the_same_request(compute):
    manager, transport = compute(failures={"reschedule": 1.0})
    asyncio.run(transport.deliver(_build(transport)))
    [handed] = [e for e in transport.sent if e["method"] == "build_instances"]
    assert (handed["kind"], handed["topic"]) == ("cast", "conductor")
    assert handed["args"]["instance_uuids"] == ["u-1"]
    assert handed["args"]["retry"]["hosts"] == ["compute1"]
    assert handed["args"]["retry"]["exc"].startswith("RescheduledException")
    assert manager.node.tracker.claims == {} and manager.node.failed_builds == 1


def test_a_duplicated_build_is_ignored(compute):
    manager, transport = compute()

    async def twice():
        await transport.deliver(_build(transport))
        before = len(transport.sent)
        await transport.deliver(_build(transport))
        return before
    before = asyncio.run(twice())
    assert len(transport.sent) == before, "the second delivery sent nothing"


def test_a_claim_that_does_not_fit_is_rescheduled_without_a_claim(compute):
    manager, transport = compute()
    big = {**SPEC, "memory_mb": 10 ** 7}
    asyncio.run(transport.deliver(transport.cast_to_me(
        "build_and_run_instance", ctx={"request_id": "req-2"}, instance_uuid="u-2",
        request_spec=big, retry={"num_attempts": 1, "hosts": ["compute1"]})))
    assert [m for _, _, m in transport.sent_methods("cast")] == ["build_instances"]
    assert manager.node.tracker.claims == {}


def test_an_unanswered_call_says_which(compute):
    _, transport = compute()
    env = transport.envelope("call", "scheduler", "select_destinations", args={})
    with pytest.raises(Unanswered, match="scheduler.select_destinations"):
        asyncio.run(transport.call(env))
