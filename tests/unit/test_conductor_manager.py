"""ConductorManager on the in-memory transport (orchestrator.messaging.fake) and a real
SQLite database: the seed's build, step by step: a call to the scheduler, a cast to the
chosen compute; a failure handed back is rescheduled elsewhere; no host, ERROR; and the
database proxy a compute uses."""
from __future__ import annotations

import asyncio

import pytest

from orchestrator import rundir
from orchestrator.conductor.manager import ConductorManager
from orchestrator.config import LabConfig
from orchestrator.db import Database
from orchestrator.messaging.fake import FakeTransport
from orchestrator.messaging.protocol import RemoteError
from orchestrator.messaging.server import RPCServer

SPEC = {"vcpus": 1, "memory_mb": 512, "root_gb": 1, "flavor": "m1.tiny", "image": "cirros",
        "availability_zone": None, "num_instances": 1}


@pytest.fixture
def conductor(tmp_path):
    rundir.update(tmp_path, config={"lab": LabConfig(preset="fast", seed=3).to_dict()})
    transport = FakeTransport("conductor", "conductor1")
    manager = ConductorManager(transport, tmp_path, "conductor1")
    RPCServer(transport, [manager])
    db = Database(tmp_path, seed=3)
    yield manager, transport, db
    db.close()
    manager.db.close()


def _instance(db) -> str:
    _, _, [uuid] = db.create_instances(["vm"], "m1.tiny", "cirros", None)
    return uuid


def _faults(db, uuid) -> list[str]:
    return [row[0] for row in db.conn.execute(
        "SELECT message FROM instance_faults WHERE instance_uuid = ?", (uuid,))]


def _build_instances(transport, uuid, retry=None):
    return transport.cast_to_me("build_instances", ctx={"request_id": "req-1"},
                                instance_uuids=[uuid], request_spec=SPEC, retry=retry)


def test_a_build_calls_the_scheduler_then_casts_to_the_compute_it_chose(conductor):
    manager, transport, db = conductor
    uuid = _instance(db)
    transport.answer("scheduler", "select_destinations", [["compute2", "compute3"]])
    asyncio.run(transport.deliver(_build_instances(transport, uuid)))
    assert transport.sent_methods() == [("call", "scheduler", "select_destinations"),
                                        ("cast", "compute.compute2",
                                         "build_and_run_instance")]
    [call, cast] = transport.sent
    assert call["args"]["request_spec"]["retry"] == {"num_attempts": 1, "hosts": []}
    assert cast["args"]["retry"] == {"num_attempts": 1, "hosts": ["compute2"]}
    assert db.instance(uuid)["num_attempts"] == 1


def test_a_build_handed_back_is_rescheduled_avoiding_the_host_that_failed(conductor):
    manager, transport, db = conductor
    uuid = _instance(db)
    seen = []
    transport.answer("scheduler", "select_destinations",
                     lambda env: seen.append(env["args"]["request_spec"]) or [["compute3"]])
    first = {"num_attempts": 1, "hosts": ["compute2"], "exc": "RescheduledException: x"}
    db.update_instance(uuid, num_attempts=1)
    asyncio.run(transport.deliver(_build_instances(transport, uuid, retry=first)))
    assert seen[0]["retry"]["num_attempts"] == 2 and seen[0]["retry"]["hosts"] == ["compute2"]
    assert transport.sent_methods("cast") == [("cast", "compute.compute3",
                                               "build_and_run_instance")]


def test_no_valid_host_puts_the_instance_in_error_with_the_reason(conductor):
    manager, transport, db = conductor
    uuid = _instance(db)
    transport.answer("scheduler", "select_destinations",
                     RemoteError("NoValidHost", "No valid host was found."))
    asyncio.run(transport.deliver(_build_instances(transport, uuid)))
    assert db.instance(uuid)["vm_state"] == "error"
    assert transport.sent_methods("cast") == []
    assert any(f.startswith("NoValidHost") for f in _faults(db, uuid))


def test_past_max_attempts_the_conductor_says_no(conductor):
    manager, transport, db = conductor
    uuid = _instance(db)
    db.update_instance(uuid, num_attempts=3)
    last = {"num_attempts": 3, "hosts": ["compute1", "compute2", "compute3"],
            "exc": "RescheduledException: disk"}
    asyncio.run(transport.deliver(_build_instances(transport, uuid, retry=last)))
    assert transport.sent_methods() == [], "no scheduler call, no cast"
    assert db.instance(uuid)["vm_state"] == "error"
    assert any(f.startswith("MaxRetriesExceeded: Exceeded maximum number of retries")
               for f in _faults(db, uuid))
