"""Unit tests for orchestrator.api.views: Nova's response shapes and error bodies."""
from __future__ import annotations

import pytest

from lab.client import ApiError
from orchestrator.api.views import (STATUS, error_body, flavor_view, iso, server_brief,
                                    server_view, status_of)
from orchestrator.config import FLAVORS

BASE = "http://127.0.0.1:8774"
T0 = 1_700_000_000.0      # 2023-11-14T22:13:20Z


def instance(**overrides):
    return {"uuid": "u-1", "name": "vm", "flavor": "m1.small", "image": "cirros",
            "vm_state": "building", "task_state": "scheduling", "host": None,
            "availability_zone": None, "request_id": "req-1", "reservation_id": "r-1",
            "num_attempts": 1, "created_at": T0, "updated_at": T0 + 61.9,
            "launched_at": None, "deleted": 0, **overrides}


FAULT = {"code": 500, "message": "NoValidHost: none", "details": None,
         "created_at": T0 + 3600}


@pytest.mark.parametrize("ts,expected", [
    (None, None), (0, "1970-01-01T00:00:00Z"), (0.0, "1970-01-01T00:00:00Z"),
    (T0, "2023-11-14T22:13:20Z"), (T0 + 0.999, "2023-11-14T22:13:20Z"),
    (951_782_400, "2000-02-29T00:00:00Z")])
def test_iso_is_utc_whole_seconds(ts, expected):
    assert iso(ts) == expected


@pytest.mark.parametrize("vm_state,status", [("building", "BUILD"), ("active", "ACTIVE"),
                                             ("error", "ERROR"), ("deleted", "DELETED"),
                                             ("stopped", "UNKNOWN")])
def test_status_comes_from_vm_state(vm_state, status):
    view = server_view(instance(vm_state=vm_state), None, BASE)
    assert view["status"] == status
    assert view["OS-EXT-STS:vm_state"] == vm_state
    assert view["OS-EXT-STS:power_state"] == (1 if vm_state == "active" else 0)


def test_status_table():
    assert STATUS == {"building": "BUILD", "active": "ACTIVE", "error": "ERROR",
                      "deleted": "DELETED", "resized": "VERIFY_RESIZE"}


@pytest.mark.parametrize("vm_state, task_state, status", [
    ("active", None, "ACTIVE"), ("active", "resize_prep", "RESIZE"),
    ("active", "resize_finish", "RESIZE"), ("resized", None, "VERIFY_RESIZE"),
    ("resized", "resize_reverting", "REVERT_RESIZE"),
    ("resized", "resize_confirming", "VERIFY_RESIZE"), ("active", "rebuilding", "REBUILD"),
    ("error", "rebuilding", "REBUILD"), ("error", None, "ERROR"),
    ("building", "spawning", "BUILD"), ("building", "resize_prep", "BUILD"),
    ("weird", None, "UNKNOWN")])
def test_status_follows_novas_state_map(vm_state, task_state, status):
    assert status_of(vm_state, task_state) == status


def test_server_view_fields():
    view = server_view(instance(vm_state="active", task_state=None, host="compute2",
                                availability_zone="az2", launched_at=T0 + 10), None, BASE)
    assert view["id"] == "u-1" and view["name"] == "vm"
    assert view["links"] == [{"rel": "self", "href": f"{BASE}/v2.1/servers/u-1"},
                             {"rel": "bookmark", "href": f"{BASE}/servers/u-1"}]
    assert view["OS-EXT-STS:task_state"] is None
    assert view["OS-EXT-SRV-ATTR:host"] == view["OS-EXT-SRV-ATTR:hypervisor_hostname"] == \
        "compute2"
    assert view["OS-EXT-SRV-ATTR:reservation_id"] == "r-1"
    assert view["OS-EXT-AZ:availability_zone"] == "az2"
    assert view["OS-SRV-USG:launched_at"] == "2023-11-14T22:13:30Z"
    assert view["created"] == "2023-11-14T22:13:20Z"
    assert view["updated"] == "2023-11-14T22:14:21Z"
    assert view["flavor"] == {"original_name": "m1.small", "vcpus": 1, "ram": 2048,
                              "disk": 20}
    assert view["image"] == {"id": "cirros"}
    assert view["OS-EXT-LAB:num_attempts"] == 1 and view["OS-EXT-LAB:request_id"] == "req-1"
    assert "fault" not in view


def test_a_building_server_shows_no_launch_and_the_default_zone():
    view = server_view(instance(), None, BASE)
    assert view["OS-SRV-USG:launched_at"] is None
    assert view["OS-EXT-AZ:availability_zone"] == "nova"


def test_the_fault_is_shown_in_error():
    view = server_view(instance(vm_state="error", task_state=None), FAULT, BASE)
    assert view["fault"] == {"code": 500, "message": "NoValidHost: none", "details": "",
                             "created": "2023-11-14T23:13:20Z"}
    detailed = server_view(instance(vm_state="error"), {**FAULT, "details": "tb"}, BASE)
    assert detailed["fault"]["details"] == "tb"


@pytest.mark.parametrize("vm_state", ["building", "active", "deleted"])
def test_the_fault_is_hidden_outside_error(vm_state):
    assert "fault" not in server_view(instance(vm_state=vm_state), FAULT, BASE)


def test_an_error_without_a_fault_has_no_fault_key():
    assert "fault" not in server_view(instance(vm_state="error"), None, BASE)


def test_server_brief():
    assert server_brief(instance(), BASE) == {
        "id": "u-1", "name": "vm",
        "links": [{"rel": "self", "href": f"{BASE}/v2.1/servers/u-1"},
                  {"rel": "bookmark", "href": f"{BASE}/servers/u-1"}]}


def test_flavor_view():
    view = flavor_view("m1.medium", BASE)
    assert (view["id"], view["name"], view["vcpus"], view["ram"], view["disk"]) == (
        "3", "m1.medium", 2, 4096, 40)
    assert view["links"][0]["href"] == f"{BASE}/v2.1/flavors/3"
    assert all(flavor_view(n, BASE)["id"] == str(f["id"]) for n, f in FLAVORS.items())


@pytest.mark.parametrize("code,key", [(400, "badRequest"), (404, "itemNotFound"),
                                      (405, "badMethod"), (409, "conflictingRequest"),
                                      (413, "overLimit"), (500, "computeFault"),
                                      (503, "computeFault"), (418, "computeFault")])
def test_error_body_keys(code, key):
    assert error_body(code, "why") == {key: {"code": code, "message": "why"}}


@pytest.mark.parametrize("code", [400, 404, 405, 409, 500])
def test_the_client_reads_the_error_body(code):
    error = ApiError(code, error_body(code, "the reason"))
    assert (error.status, error.message) == (code, "the reason")
    assert str(error) == f"HTTP {code}: the reason"
