"""Moves that go wrong half-way, with real processes: nothing stays stuck (the conductor's
periodic check ends it after ``build_timeout``), and no claim outlives its instance on
either host. Found by a review of issue #7; each test failed before its fix."""
from __future__ import annotations


import pytest

from lab.api_client import ApiError
from lab.testing import wait_for_usage
from orchestrator.config import FLAVORS

pytestmark = pytest.mark.timeout(60)

HOST = "OS-EXT-SRV-ATTR:host"


def wait_vcpus(lab, expected: dict[str, int], timeout: float = 10.0) -> None:
    wait_for_usage(lab, {h: (n,) for h, n in expected.items()}, keys=("vcpus_used",),
                   timeout=timeout)


@pytest.fixture
def wait_status(wait_until):
    """``wait_status(lab, server, status, timeout)``: until the server is in ``status``;
    its record."""
    def wait(lab, server: str, status: str, timeout: float) -> dict:
        return wait_until(lambda: (r := lab.server(server))["status"] == status and r,
                          timeout, f"{server} in {status}", interval=0.1)
    return wait


def test_a_resize_whose_source_never_answers_ends_in_error_and_frees_both_hosts(
        make_lab, wait_status):
    lab = make_lab(computes=2)
    vm = lab.boot("vm")
    assert lab.wait(vm)[HOST] == "compute1"
    lab.pause("compute1")                  # the source will never copy the disk
    lab.resize(vm, "m1.medium")
    medium = FLAVORS["m1.medium"]["vcpus"]
    wait_vcpus(lab, {"compute1": 1, "compute2": medium})     # prep_resize claimed there
    record = wait_status(lab, vm, "ERROR", timeout=3 * lab.config.timing("build_timeout"))
    assert "MigrationTimeout" in record["fault"]["message"]
    assert lab.migrations(vm)[0]["status"] == "error"
    wait_vcpus(lab, {"compute1": 1, "compute2": 0})          # the other end let go
    lab.resume("compute1")
    lab.delete(vm)
    lab.wait(vm)
    wait_vcpus(lab, {"compute1": 0, "compute2": 0})          # and its own host too


def test_a_rebuild_whose_compute_never_answers_ends_in_error_and_can_be_deleted(
        make_lab, wait_status):
    lab = make_lab(computes=2)
    vm = lab.boot("vm")
    lab.wait(vm)
    lab.pause("compute1")
    lab.rebuild(vm, "fedora")
    assert lab.server(vm)["status"] == "REBUILD"
    with pytest.raises(ApiError) as refused:          # not while it moves...
        lab.delete(vm)
    assert refused.value.status == 409
    record = wait_status(lab, vm, "ERROR", timeout=3 * lab.config.timing("build_timeout"))
    assert "RebuildError" in record["fault"]["message"]
    assert record["OS-EXT-STS:task_state"] is None
    lab.resume("compute1")
    lab.delete(vm)                                   # ...but once it has ended
    assert lab.wait(vm)["status"] == "DELETED"
    wait_vcpus(lab, {"compute1": 0, "compute2": 0})


def test_rebuilding_a_server_in_error_claims_its_room_again(make_lab):
    lab = make_lab(computes=1)
    lab.set_failure("compute1", fatal=1.0)
    vm = lab.boot("vm")
    record = lab.wait(vm)
    assert (record["status"], record[HOST]) == ("ERROR", "compute1")
    wait_vcpus(lab, {"compute1": 0})
    lab.set_failure("compute1", fatal=0.0)
    lab.rebuild(vm, "fedora")
    assert lab.wait(vm)["status"] == "ACTIVE"
    wait_vcpus(lab, {"compute1": 1})                 # counted: the scheduler sees it


def test_confirm_or_revert_needs_the_computes_that_do_it(make_lab, service_down):
    lab = make_lab(computes=2)
    vm = lab.boot("vm")
    lab.wait(vm)
    lab.migrate(vm)
    assert lab.wait(vm)["status"] == "VERIFY_RESIZE"
    lab.kill("compute1")                             # the source
    service_down(lab, "compute1", 3 * lab.config.timing("service_down_time"))
    for action in (lab.confirm_resize, lab.revert_resize):
        with pytest.raises(ApiError) as refused:
            action(vm)
        assert refused.value.status == 409 and "compute1 is down" in str(refused.value)
    assert lab.server(vm)["status"] == "VERIFY_RESIZE"
    assert lab.migrations(vm)[0]["status"] == "finished"
