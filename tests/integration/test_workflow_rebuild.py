"""Rebuild (same host, new image) and evacuate (the host is dead: rebuild elsewhere) with
real processes: the messages, the migration record, where the instance ends, and what
each hypervisor holds, including the dead host once it comes back."""
from __future__ import annotations


import pytest

from lab.api_client import ApiError
from lab.testing import usage_of, wait_for_usage
from lab.trace import short
from orchestrator.conductor.rpcapi import DB_PROXY_METHODS
from orchestrator.config import image_id

pytestmark = pytest.mark.timeout(60)

HOST = "OS-EXT-SRV-ATTR:host"
SMALL, NONE = usage_of("m1.small"), usage_of()


def hops(lab, since: int, uuid: str) -> list[tuple[str, str, str, str]]:
    events = lab.trace(since=since).routed().where(instance=uuid, kind=("cast", "call"))
    return [(e["kind"], short(e["src"]), short(e["dst"]), e["method"])
            for e in events if e["method"] not in DB_PROXY_METHODS]


@pytest.fixture
def kill_and_wait_down(service_down):
    """``kill_and_wait_down(lab, host)``: SIGKILL the compute, wait until it is down."""
    def kill(lab, host: str, timeout: float = 15.0) -> None:
        lab.kill(host)
        service_down(lab, host, timeout)
    return kill


def status_of(call, *args) -> int:
    try:
        return call(*args)
    except ApiError as err:
        return err.status


def boot_on_compute1(lab) -> str:
    server = lab.boot("vm")
    assert lab.wait(server)[HOST] == "compute1"
    return server


@pytest.mark.parametrize("flow, expected", [
    # a new image: the conductor asks the scheduler about the instance's own host (Nova)
    ("conductor", [("cast", "api", "conductor", "rebuild_instance"),
                   ("call", "conductor", "scheduler", "select_destinations"),
                   ("cast", "conductor", "compute1", "rebuild_instance")]),
    ("legacy", [("cast", "api", "compute1", "rebuild_instance")]),
])
def test_rebuild_stays_on_its_host_with_the_new_image(make_lab, flow, expected):
    lab = make_lab(computes=2)
    lab.configure(flow=flow)
    server = boot_on_compute1(lab)
    assert status_of(lab.action, server, {"rebuild": {"imageRef": " "}}) == 400
    assert status_of(lab.action, server, {"rebuild": {}}) == 400
    mark = lab.mark()
    assert lab.rebuild(server, "fedora") == 202
    record = lab.wait(server)
    assert (record["status"], record[HOST], record["image"]["id"]) == \
        ("ACTIVE", "compute1", image_id("fedora"))
    assert record["flavor"]["original_name"] == "m1.small"
    assert hops(lab, mark, server) == expected
    assert lab.migrations(server) == []
    wait_for_usage(lab, {"compute1": SMALL, "compute2": NONE}, live=True)
    wait_for_usage(lab, {"compute1": SMALL, "compute2": NONE})


def test_evacuate_rebuilds_elsewhere_and_the_dead_host_lets_go(make_lab, kill_and_wait_down):
    lab = make_lab()
    server = boot_on_compute1(lab)
    assert status_of(lab.evacuate, server) == 400          # compute1 is still up (Nova)
    assert lab.migrations(server) == []
    kill_and_wait_down(lab, "compute1")
    assert status_of(lab.rebuild, server, "fedora") == 409  # its host is down
    mark = lab.mark()
    assert lab.evacuate(server) == 200
    record = lab.wait(server)
    assert (record["status"], record[HOST], record["image"]["id"]) == \
        ("ACTIVE", "compute2", image_id("cirros"))          # first of the live hosts
    assert hops(lab, mark, server) == [
        ("cast", "api", "conductor", "rebuild_instance"),
        ("call", "conductor", "scheduler", "select_destinations"),
        ("cast", "conductor", "compute2", "rebuild_instance")]
    [migration] = lab.migrations(server)
    assert {k: migration[k] for k in ("migration_type", "status", "source_compute",
                                      "dest_compute")} == {
        "migration_type": "evacuation", "status": "done", "source_compute": "compute1",
        "dest_compute": "compute2"}
    wait_for_usage(lab, {"compute2": SMALL, "compute3": NONE})
    lab.restart("compute1")
    lab.wait_computes_up(["compute1"])
    wait_for_usage(lab, {"compute1": NONE, "compute2": SMALL, "compute3": NONE}, live=True)
    wait_for_usage(lab, {"compute1": NONE, "compute2": SMALL, "compute3": NONE})
    assert lab.migrations(server)[0]["status"] == "completed"
    assert lab.server(server)[HOST] == "compute2"


def test_evacuate_to_a_named_host_asks_the_scheduler_about_it(make_lab, kill_and_wait_down):
    """Nova since microversion 2.29: the named host is checked by the scheduler (a
    ``requested_destination``), not forced."""
    lab = make_lab()
    server = boot_on_compute1(lab)
    kill_and_wait_down(lab, "compute1")
    assert status_of(lab.evacuate, server, "compute1") == 400    # its own host
    assert status_of(lab.evacuate, server, "compute9") == 404    # no such host (Nova)
    assert lab.migrations(server) == []
    mark = lab.mark()
    assert lab.evacuate(server, "compute3") == 200
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("ACTIVE", "compute3")
    assert hops(lab, mark, server) == [
        ("cast", "api", "conductor", "rebuild_instance"),
        ("call", "conductor", "scheduler", "select_destinations"),
        ("cast", "conductor", "compute3", "rebuild_instance")]
    [migration] = lab.migrations(server)
    assert (migration["status"], migration["dest_compute"]) == ("done", "compute3")
    wait_for_usage(lab, {"compute2": NONE, "compute3": SMALL})


def test_legacy_evacuate_needs_a_host_and_goes_straight_to_it(make_lab, kill_and_wait_down):
    lab = make_lab()
    lab.configure(flow="legacy")
    server = boot_on_compute1(lab)
    assert status_of(lab.evacuate, server) == 400       # the old API needs the host
    kill_and_wait_down(lab, "compute1")
    assert status_of(lab.evacuate, server) == 400
    mark = lab.mark()
    assert lab.evacuate(server, "compute2") == 200
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("ACTIVE", "compute2")
    assert hops(lab, mark, server) == [("cast", "api", "compute2", "rebuild_instance")]
    [migration] = lab.migrations(server)
    assert (migration["migration_type"], migration["status"]) == ("evacuation", "done")
    wait_for_usage(lab, {"compute2": SMALL, "compute3": NONE})


def test_evacuate_to_a_named_host_the_scheduler_refuses_moves_nothing(make_lab, kill_and_wait_down):
    lab = make_lab()
    server = boot_on_compute1(lab)
    lab.api.request("PUT", "/os-services/disable", {"host": "compute3",
                                                     "binary": "nova-compute"})
    kill_and_wait_down(lab, "compute1")
    mark = lab.mark()
    assert lab.evacuate(server, "compute3") == 200
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("ACTIVE", "compute1")
    assert record["OS-EXT-LAB:last_fault"]["message"].startswith("NoValidHost")
    assert hops(lab, mark, server) == [
        ("cast", "api", "conductor", "rebuild_instance"),
        ("call", "conductor", "scheduler", "select_destinations")]
    assert [m["status"] for m in lab.migrations(server)] == ["error"]
    wait_for_usage(lab, {"compute2": NONE, "compute3": NONE})


@pytest.mark.parametrize("version, body, scheduler", [
    ("2.28", {"host": "compute3"}, False),                              # forced before 2.29
    ("2.29", {"host": "compute3", "force": True}, False),
    ("2.29", {"host": "compute3"}, True),                               # checked from 2.29
])
def test_a_named_host_is_forced_as_the_microversion_says(make_lab, version, body,
                                                         scheduler, kill_and_wait_down):
    lab = make_lab()
    server = boot_on_compute1(lab)
    kill_and_wait_down(lab, "compute1")
    mark = lab.mark()
    answer = lab.api.request("POST", f"/servers/{server}/action", {"evacuate": body},
                             microversion=version)
    assert answer.status == 200
    assert lab.wait(server)["OS-EXT-SRV-ATTR:host"] == "compute3"
    asked = [h for h in hops(lab, mark, server) if h[3] == "select_destinations"]
    assert bool(asked) is scheduler


def test_evacuate_refusals_are_novas(make_lab, kill_and_wait_down):
    lab = make_lab(computes=2)
    server = boot_on_compute1(lab)
    kill_and_wait_down(lab, "compute1")

    def status(version, body):
        return lab.api.request("POST", f"/servers/{server}/action", {"evacuate": body},
                               check=False, microversion=version).status
    assert status("2.29", {"force": True}) == 400      # nothing to force to
    assert status("2.13", {}) == 400                   # onSharedStorage was required
    assert status("2.14", {"onSharedStorage": False}) == 400   # and then removed
    assert lab.migrations(server) == []
