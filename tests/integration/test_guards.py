"""Expected-state guards: a late, duplicated or replayed message never changes a final
state; only a user's action does. Each test replays the message (or has the bus deliver
everything twice) and shows it refused."""
from __future__ import annotations

import sqlite3

import pytest

from orchestrator.config import FLAVORS

pytestmark = pytest.mark.timeout(120)
SPEC = {**FLAVORS["m1.small"], "flavor": "m1.small", "image": "cirros",
        "availability_zone": None, "num_instances": 1}


def _settled_usage(lab, wait_until, servers):
    """Wait until every compute's report matches what the API says it holds."""
    want = {}
    for s in servers:
        want.setdefault(s["OS-EXT-SRV-ATTR:host"], []).append(s)

    def matches():
        for h in lab.hypervisors():
            mine = want.get(h["hypervisor_hostname"], [])
            if h["running_vms"] != len(mine) or \
                    h["memory_mb_used"] != sum(FLAVORS["m1.small"]["memory_mb"] for _ in mine):
                return False
        return True
    wait_until(matches, 30, "every compute's report to match its ACTIVE servers")


def test_every_message_delivered_twice_builds_each_server_once(make_lab, wait_until):
    lab = make_lab(computes=3)
    lab.add_fault(duplicate=1.0)
    mark = lab.mark()
    records = lab.wait([lab.boot(f"twice{i}") for i in range(20)], timeout=90)
    assert {r["status"] for r in records} == {"ACTIVE"}
    builds = lab.trace(since=mark).where(method="build_and_run_instance", phase="routed")
    assert len(builds) >= 40, "the fault should have delivered every build twice"
    _settled_usage(lab, wait_until, records)
    lab.clear_faults()
    _settled_usage(lab, wait_until, lab.servers())   # and it stays so


def test_a_replayed_reschedule_does_not_revive_a_server_in_error(make_lab, wait_until):
    lab = make_lab(computes=2)
    for host in ("compute1", "compute2"):
        lab.set_failure(host, fatal=1.0)
    [record] = lab.wait([lab.boot("doomed")])
    assert record["status"] == "ERROR"
    for host in ("compute1", "compute2"):
        lab.set_failure(host, fatal=0.0)
    mark = lab.mark()
    ctx = {"request_id": record["OS-EXT-LAB:request_id"], "instance_uuid": record["id"],
           "attempt": 2}
    lab.bus().cast("conductor", "build_instances", ctx=ctx, instance_uuids=[record["id"]],
                   request_spec=SPEC, retry={"num_attempts": 1, "hosts": ["compute1"]})
    wait_until(lambda: lab.trace(since=mark).where(method="build_instances", phase="routed"),
               10, "the replayed cast to reach the conductor")
    probe = lab.boot("after")                  # the conductor has handled what came before
    assert lab.wait(probe)["status"] == "ACTIVE"
    again = lab.server(record["id"])
    assert again["status"] == "ERROR" and again["fault"] == record["fault"]
    assert not lab.trace(since=mark).where(method="select_destinations",
                                           instance=record["id"])


def test_a_duplicated_failure_report_leaves_one_fault(make_lab, wait_until):
    lab = make_lab(computes=1)
    lab.set_failure("compute1", fatal=1.0)
    lab.add_fault(method="instance_fault_create", duplicate=1.0)
    mark = lab.mark()
    [record] = lab.wait([lab.boot("once")])
    assert record["status"] == "ERROR"
    calls = lab.trace(since=mark).where(method="instance_fault_create", kind="call",
                                        phase="routed")
    assert len(calls) == 2, "the fault should have delivered the report twice"
    wait_until(lambda: len(lab.trace(since=mark).where(method="instance_fault_create",
                                                       kind="reply")) >= 2,
               10, "the conductor to have handled both copies")
    with sqlite3.connect(f"file:{lab.run_dir}/lab.sqlite?mode=ro", uri=True) as db:
        [(faults,)] = db.execute("SELECT COUNT(*) FROM instance_faults WHERE "
                                 "instance_uuid=?", (record["id"],)).fetchall()
    assert faults == 1


def test_a_migration_delivered_twice_runs_once(make_lab, wait_until):
    lab = make_lab(computes=3)
    [record] = lab.wait([lab.boot("mover")])
    lab.add_fault(duplicate=1.0)
    mark = lab.mark()
    lab.migrate(record["id"])
    moved = lab.wait(record["id"], statuses=("VERIFY_RESIZE", "ERROR"), timeout=60)
    assert moved["status"] == "VERIFY_RESIZE", moved.get("fault")
    assert len(lab.trace(since=mark).where(method="migrate_server", phase="routed")) >= 2
    migrations = lab.migrations(record["id"])
    assert len(migrations) == 1, migrations
    assert migrations[0]["status"] == "finished"
    lab.clear_faults()
    lab.confirm_resize(record["id"])
    done = lab.wait(record["id"], statuses=("ACTIVE", "ERROR"), timeout=60)
    assert done["status"] == "ACTIVE"
    assert [m["status"] for m in lab.migrations(record["id"])] == ["confirmed"]
    _settled_usage(lab, wait_until, [done])


@pytest.mark.parametrize("alternates", [False, True])
def test_a_duplicated_reschedule_call_cannot_change_how_the_resize_ends(make_lab,
                                                                         alternates):
    """compute2 fails prep_resize and calls migrate_server; the bus delivers the call
    twice. The copy that loses the attempt answers first (nothing to do), the other one
    finds no host: the answer that counts can be dropped, so the conductor writes the
    ERROR itself before answering: ERROR at once, not ACTIVE after build_timeout."""
    lab = make_lab(computes=2)
    lab.configure(alternates=alternates)
    server = lab.boot("vm")
    assert lab.wait(server)["OS-EXT-SRV-ATTR:host"] == "compute1"
    lab.set_failure("compute2", reschedule=1.0)
    lab.add_fault(src="compute.compute2", dst="conductor", method="migrate_server",
                  duplicate=1.0)
    mark = lab.mark()
    lab.migrate(server)
    record = lab.wait(server, timeout=lab.config.timing("build_timeout") / 2)
    assert (record["status"], record["OS-EXT-SRV-ATTR:host"]) == ("ERROR", "compute1")
    assert "rescheduling failed: NoValidHost" in record["fault"]["message"]
    calls = lab.trace(since=mark).where(kind="call", method="migrate_server", phase="routed")
    assert len(calls) == 2, "the fault should have delivered the call twice"
    assert [m["status"] for m in lab.migrations(server)] == ["error"]
