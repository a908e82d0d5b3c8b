"""ComputeAPI names every argument its receivers take: a misspelt one fails in the sender
(a TypeError), never in the compute where it would only be logged while the instance
waits for build_timeout; and a resize step carries only what that step takes."""
from __future__ import annotations

import asyncio
import inspect

import pytest

from orchestrator.compute import rpcapi
from orchestrator.compute.manager import ComputeManager
from orchestrator.compute.migration import MigrationManager
from orchestrator.compute.rpcapi import ComputeAPI
from orchestrator.messaging.fake import FakeTransport


@pytest.fixture
def api():
    transport = FakeTransport("conductor", "conductor1")
    for step in rpcapi.STEPS:
        transport.answer("compute", step, "done")
    return ComputeAPI(transport), transport.sent


def test_a_misspelt_argument_fails_in_the_sender(api):
    compute, sent = api
    with pytest.raises(TypeError):
        compute.build_and_run_instance({}, "compute1", instance_uuid="u", request_spec={},
                                       retyr={})
    with pytest.raises(TypeError):
        compute.confirm_resize({}, "compute1", instance_uuid="u", migraton_id=3)
    assert sent == []


def test_each_cast_sends_what_its_receiver_takes(api):
    """Every method of ComputeAPI that casts names exactly the receiver's parameters."""
    compute, sent = api
    receivers = {**dict(inspect.getmembers(ComputeManager, inspect.isfunction)),
                 **dict(inspect.getmembers(MigrationManager, inspect.isfunction))}
    for name, method in inspect.getmembers(ComputeAPI, inspect.isfunction):
        if name.startswith("_") or name in ("step", "confirm_resize_and_wait"):
            continue
        ours = set(inspect.signature(method).parameters) - {"self", "ctx", "host"}
        theirs = set(inspect.signature(receivers[name]).parameters) - {"self", "ctx"}
        assert ours <= theirs, (name, ours - theirs)
        required = {p.name for p in inspect.signature(receivers[name]).parameters.values()
                    if p.default is p.empty} - {"self", "ctx"}
        assert required <= ours, (name, required - ours)


def test_a_resize_step_carries_only_what_the_step_takes(api):
    compute, sent = api
    args = {"instance": {"uuid": "u"}, "migration_id": 3, "flavor": "m1.medium"}
    asyncio.run(compute.step({}, "compute2", "prep_resize", 5, retry={"num_attempts": 1},
                             host_list=["compute3"], **args))
    asyncio.run(compute.step({}, "compute1", "resize_instance", 5, **args))
    assert sent[0]["args"] == {**args, "orchestrated": True, "retry": {"num_attempts": 1},
                               "host_list": ["compute3"]}
    assert sent[1]["args"] == {**args, "orchestrated": True}
    with pytest.raises(ValueError, match="takes no retry"):
        asyncio.run(compute.step({}, "compute1", "finish_resize", 5, retry={}, **args))
    with pytest.raises(ValueError, match="not a resize step"):
        asyncio.run(compute.step({}, "compute1", "terminate_instance", 5, **args))
    assert rpcapi.STEPS == ("prep_resize", "resize_instance", "finish_resize")
