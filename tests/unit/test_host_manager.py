"""Unit tests for orchestrator.scheduler.host_manager: the scheduler's view of the computes
(a real Database in tmp_path), and its in-flight claims."""
from __future__ import annotations

import time

import pytest

from orchestrator.db import Database
from orchestrator.scheduler.host_manager import IN_FLIGHT_CHECK, HostManager, HostState

SMALL = {"vcpus": 1, "memory_mb": 2048, "root_gb": 20}
DOWN_TIME, TTL = 3.0, 5.0


@pytest.fixture
def db(tmp_path):
    db = Database(tmp_path)
    yield db
    db.close()


def node(**overrides):
    return {"availability_zone": "nova", "vcpus": 8, "memory_mb": 16384, "local_gb": 200,
            "vcpus_used": 0, "memory_mb_used": 0, "local_gb_used": 0, "running_vms": 0,
            "failed_builds": 0, "instances": [], **overrides}


def seen(db: Database, host: str, at: float, binary: str = "compute") -> None:
    db.service_update(binary, host, binary)
    db.conn.execute("UPDATE services SET last_seen_up=? WHERE binary=? AND host=?",
                    (at, binary, host))


@pytest.fixture
def cloud(db):
    """compute1..3 nodes, every service seen at t=1000."""
    for i in (1, 2, 3):
        db.compute_node_update(f"compute{i}", node(availability_zone=f"az{i}"))
        seen(db, f"compute{i}", 1000.0)
    return db


def by_host(states: list[HostState]) -> dict[str, HostState]:
    return {s.host: s for s in states}


def test_host_states_copy_the_compute_nodes(db):
    db.compute_node_update("compute1", node(vcpus_used=2, memory_mb_used=4096,
                                            local_gb_used=40, failed_builds=1,
                                            instances=["u1", "u2"]))
    seen(db, "compute1", 1000.0)
    [state] = HostManager(db, DOWN_TIME, TTL).host_states(now=1000.0)
    assert state == HostState("compute1", "nova", 8, 16384, 200, 2, 4096, 40, 1, True, False,
                              ["u1", "u2"], [])
    assert state.instances == []    # none on compute1 in the database
    assert state.free() == {"vcpus": 6, "memory_mb": 12288, "local_gb": 160}


def test_host_states_are_ordered_by_host(cloud):
    states = HostManager(cloud, DOWN_TIME, TTL).host_states(now=1000.0)
    assert [s.host for s in states] == ["compute1", "compute2", "compute3"]
    assert [s.availability_zone for s in states] == ["az1", "az2", "az3"]


def test_service_up_follows_service_down_time(cloud):
    seen(cloud, "compute2", 1000.0 - DOWN_TIME)          # exactly at the limit: still up
    seen(cloud, "compute3", 1000.0 - DOWN_TIME - 0.01)   # just past it: down
    states = by_host(HostManager(cloud, DOWN_TIME, TTL).host_states(now=1000.0))
    assert [states[h].service_up for h in ("compute1", "compute2", "compute3")] == [
        True, True, False]
    later = by_host(HostManager(cloud, DOWN_TIME, TTL).host_states(now=1000.0 + DOWN_TIME + 1))
    assert not any(s.service_up for s in later.values())


def test_a_node_without_a_compute_service_is_down(db):
    db.compute_node_update("compute1", node())
    db.compute_node_update("compute2", node())
    seen(db, "compute2", 1000.0, binary="conductor")     # another binary does not count
    states = HostManager(db, DOWN_TIME, TTL).host_states(now=1000.0)
    assert [(s.host, s.service_up, s.disabled) for s in states] == [
        ("compute1", False, False), ("compute2", False, False)]


def test_a_service_never_seen_is_down(db):
    db.compute_node_update("compute1", node())
    seen(db, "compute1", None)
    [state] = HostManager(db, DOWN_TIME, TTL).host_states(now=1000.0)
    assert not state.service_up


def test_disabled_comes_from_the_service(cloud):
    cloud.set_service_disabled("compute", "compute2", True, "maintenance")
    states = by_host(HostManager(cloud, DOWN_TIME, TTL).host_states(now=1000.0))
    assert [states[h].disabled for h in ("compute1", "compute2", "compute3")] == [
        False, True, False]
    assert states["compute2"].service_up


def test_no_compute_nodes_no_states(db):
    seen(db, "compute1", 1000.0)
    assert HostManager(db, DOWN_TIME, TTL).host_states(now=1000.0) == []


def test_consume_adds_the_flavor():
    state = HostState("h", "nova", 8, 1000, 100, 1, 100, 10, 0, True, False)
    state.consume({"vcpus": 2, "memory_mb": 300, "root_gb": 30, "retry": {}})
    assert (state.vcpus_used, state.memory_mb_used, state.local_gb_used) == (3, 400, 40)
    assert state.free() == {"vcpus": 5, "memory_mb": 600, "local_gb": 60}


def test_a_claim_is_consumed_on_the_state_and_remembered(cloud):
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    states = by_host(hosts.host_states(now=1000.0))
    hosts.claim("u1", states["compute2"], SMALL)
    assert states["compute2"].memory_mb_used == 2048     # the state in hand, at once
    assert set(hosts.in_flight) == {"u1"}
    claim = hosts.in_flight["u1"]
    assert (claim.host, claim.spec) == ("compute2", SMALL)
    assert abs(claim.made - time.time()) < 5


def test_in_flight_claims_are_added_until_the_node_reports_them(cloud):
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    hosts.claim("u1", by_host(hosts.host_states())["compute2"], SMALL)
    hosts.claim("u2", by_host(hosts.host_states())["compute2"], SMALL)
    now = time.time()
    fresh = by_host(hosts.host_states(now=now))
    assert fresh["compute2"].memory_mb_used == 2 * 2048
    assert fresh["compute2"].vcpus_used == 2 and fresh["compute2"].local_gb_used == 40
    assert fresh["compute1"].memory_mb_used == 0
    # the compute reports u1 (its usage now includes it): only u2 is still added
    cloud.compute_node_update("compute2", node(availability_zone="az2", vcpus_used=1,
                                               memory_mb_used=2048, local_gb_used=20,
                                               instances=["u1"]))
    fresh = by_host(hosts.host_states(now=now))
    assert fresh["compute2"].memory_mb_used == 2 * 2048
    assert set(hosts.in_flight) == {"u2"}


def test_in_flight_claims_expire_after_the_claim_ttl(cloud):
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    hosts.claim("u1", by_host(hosts.host_states())["compute1"], SMALL)
    made = hosts.in_flight["u1"].made
    assert by_host(hosts.host_states(now=made + TTL))["compute1"].memory_mb_used == 2048
    assert "u1" in hosts.in_flight
    assert by_host(hosts.host_states(now=made + TTL + 0.01))["compute1"].memory_mb_used == 0
    assert hosts.in_flight == {}
    assert by_host(hosts.host_states(now=made))["compute1"].memory_mb_used == 0  # gone for good


def test_claims_on_a_vanished_host_are_dropped(db):
    db.compute_node_update("compute1", node())
    hosts = HostManager(db, DOWN_TIME, TTL)
    state = HostState("compute9", "nova", 8, 16384, 200, 0, 0, 0, 0, True, False)
    hosts.claim("u1", state, SMALL)
    [only] = hosts.host_states()
    assert only.memory_mb_used == 0
    assert hosts.in_flight == {}


def test_forget_drops_claims_and_ignores_unknown_ones(cloud):
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    states = by_host(hosts.host_states())
    for uuid in ("u1", "u2", "u3"):
        hosts.claim(uuid, states["compute3"], SMALL)
    hosts.forget(["u1", "u3", "never-claimed"])
    assert set(hosts.in_flight) == {"u2"}
    assert by_host(hosts.host_states())["compute3"].memory_mb_used == 2048


@pytest.mark.parametrize("change, dropped", [
    ({"deleted": 1, "vm_state": "deleted"}, True),
    ({"vm_state": "error"}, True),
    ({"host": "compute1", "task_state": "networking"}, True),     # rescheduled elsewhere
    ({"host": "compute2", "task_state": "networking"}, False),    # arriving here
    ({"host": None}, False),                                      # not placed yet
    ({"vm_state": "active", "task_state": None, "host": "compute1"}, True),  # rolled back
    ({"vm_state": "active", "task_state": "resize_prep", "host": "compute1"}, False),
])
def test_a_claim_whose_instance_will_never_arrive_is_dropped_before_the_ttl(cloud, change,
                                                                           dropped):
    """Boot-and-delete in a loop on one host must not fill it up for claim_ttl seconds."""
    _, _, [uuid] = cloud.create_instances(["vm"], "m1.small", "cirros", None)
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    now = time.time()
    hosts.claim(uuid, by_host(hosts.host_states(now=now))["compute2"], SMALL)
    cloud.conn.execute(f"UPDATE instances SET {', '.join(f'{k}=?' for k in change)} "
                       "WHERE uuid=?", (*change.values(), uuid))
    # within IN_FLIGHT_CHECK of the last look the claim still weighs...
    assert by_host(hosts.host_states(now=now + 0.01))["compute2"].memory_mb_used == 2048
    # ...and the next look finds where the instance went
    used = by_host(hosts.host_states(now=now + IN_FLIGHT_CHECK))["compute2"].memory_mb_used
    assert (uuid not in hosts.in_flight, used) == ((True, 0) if dropped else (False, 2048))


def test_in_flight_claims_are_checked_at_most_every_interval(cloud, monkeypatch):
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    for i in range(50):
        hosts.claim(f"u{i}", by_host(hosts.host_states(now=1000.0))["compute1"], SMALL)
    looks = []
    real = cloud.instance_states
    monkeypatch.setattr(cloud, "instance_states", lambda u: looks.append(len(u)) or real(u))
    for step in range(10):                    # 10 requests in 0.1 s: one look
        hosts.host_states(now=1000.0 + IN_FLIGHT_CHECK + step * 0.01)
    assert looks == [50]


# -- instance info: the computes' fanouts -------------------------------------------------------
def place(db: Database, name: str, host: str) -> str:
    _, _, [uuid] = db.create_instances([name], "m1.small", "cirros", None)
    db.update_instance(uuid, host=host, vm_state="active", task_state=None)
    return uuid


def test_instance_info_is_read_from_the_database_once_per_host(cloud):
    a, b = place(cloud, "a", "compute1"), place(cloud, "b", "compute2")
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    states = by_host(hosts.host_states(now=1000.0))
    assert (states["compute1"].instances, states["compute2"].instances) == ([a], [b])
    place(cloud, "c", "compute1")     # nobody told the scheduler: its view stays
    assert by_host(hosts.host_states(now=1000.0))["compute1"].instances == [a]


def test_fanouts_keep_the_instance_lists(cloud):
    a = place(cloud, "a", "compute1")
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    hosts.host_states(now=1000.0)
    hosts.update_instance_info("compute1", ["new"])
    hosts.update_instance_info("compute2", ["moved"])
    assert by_host(hosts.host_states(now=1000.0))["compute1"].instances == sorted([a, "new"])
    assert hosts.instance_info["compute2"] == {"moved"}
    hosts.delete_instance_info("compute1", a)
    hosts.delete_instance_info("compute1", "never-there")      # harmless
    assert by_host(hosts.host_states(now=1000.0))["compute1"].instances == ["new"]


def test_a_fanout_from_a_host_not_yet_known_reads_it_from_the_database(cloud):
    """...and still applies: it may be ahead of the database (sent before the save)."""
    a, b = place(cloud, "a", "compute3"), place(cloud, "b", "compute3")
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    hosts.delete_instance_info("compute3", b)
    assert hosts.instance_info["compute3"] == {a}
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    hosts.update_instance_info("compute2", ["arriving"])
    assert hosts.instance_info["compute2"] == {"arriving"}


def test_a_sync_that_differs_reads_the_host_again(cloud):
    a = place(cloud, "a", "compute1")
    hosts = HostManager(cloud, DOWN_TIME, TTL)
    hosts.host_states(now=1000.0)
    assert hosts.sync_instance_info("compute1", [a]) is True
    b = place(cloud, "b", "compute1")            # its update_instance_info was lost
    assert hosts.sync_instance_info("compute1", [a, b]) is False
    assert hosts.instance_info["compute1"] == {a, b}


def test_the_view_reads_only_rows_written_since_its_last_look(db, monkeypatch):
    for i in range(1, 101):
        db.compute_node_update(f"compute{i}", node())
        db.service_update("compute", f"compute{i}", "compute")
    hm = HostManager(db, DOWN_TIME, TTL)
    first = hm.host_states()
    assert [s.host for s in first] == sorted(f"compute{i}" for i in range(1, 101))
    read = []
    for name in ("compute_nodes_since", "services_since"):
        real = getattr(db, name)
        monkeypatch.setattr(db, name, lambda g, real=real: read.append(r := real(g)) or r)
    db.compute_node_update("compute42", node(vcpus_used=3))
    db.set_service_disabled("compute", "compute7", True, "maintenance")
    states = {s.host: s for s in hm.host_states()}
    assert [len(rows) for rows in read] == [1, 1]         # one row each, not 100
    assert states["compute42"].vcpus_used == 3 and not states["compute42"].disabled
    assert states["compute7"].disabled and states["compute7"].service_up
    read.clear()
    hm.host_states()
    assert [len(rows) for rows in read] == [0, 0]         # nothing new: nothing read


def test_generations_follow_commit_order(db):
    db.compute_node_update("compute1", node())
    db.compute_node_update("compute2", node())
    db.compute_node_update("compute1", node(vcpus_used=1))
    rows = db.compute_nodes_since(0)
    assert [(r["host"], r["generation"]) for r in rows] == [("compute2", 2), ("compute1", 3)]
    assert [r["host"] for r in db.compute_nodes_since(2)] == ["compute1"]
    db.service_update("compute", "compute1", "compute")
    db.service_update("compute", "compute1", "compute")
    assert [r["generation"] for r in db.services_since(0)] == [2]


def test_a_new_host_joins_the_view_in_name_order(db):
    for host in ("compute2", "compute9"):
        db.compute_node_update(host, node())
        db.service_update("compute", host, "compute")
    hm = HostManager(db, DOWN_TIME, TTL)
    assert [s.host for s in hm.host_states()] == ["compute2", "compute9"]
    db.compute_node_update("compute10", node())
    assert [s.host for s in hm.host_states()] == ["compute10", "compute2", "compute9"]
