"""Unit tests for orchestrator.api.views: Nova's response shapes at each microversion the
lab serves, and its error bodies."""
from __future__ import annotations

import pytest

from lab.api_client import ApiError
from orchestrator.api.microversion import MAX_VERSION, MIN_VERSION, Version
from orchestrator.api.views import (STATUS, error_body, flavor_view, host_id, iso,
                                    nova_time, server_brief, server_view, status_of)
from orchestrator.config import FLAVORS, image_id

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
                              "disk": 20, "ephemeral": 0, "swap": 0, "extra_specs": {}}
    assert view["image"] == {"id": image_id("cirros"), "links": [
        {"rel": "bookmark", "href": f"{BASE}/images/{image_id('cirros')}"}]}
    assert view["hostId"] == host_id("compute2") != host_id("compute1")
    assert view["progress"] == 0 and view["OS-EXT-SRV-ATTR:root_device_name"] == "/dev/vda"
    assert view["OS-EXT-LAB:num_attempts"] == 1 and view["OS-EXT-LAB:request_id"] == "req-1"
    assert "fault" not in view


def test_a_building_server_shows_no_launch_and_the_default_zone():
    view = server_view(instance(), None, BASE)
    assert view["OS-SRV-USG:launched_at"] is None
    assert view["OS-EXT-AZ:availability_zone"] == "nova"
    assert view["hostId"] == view["host_status"] == ""      # on no host yet


# The fields each microversion adds to a server, Nova's views/servers.py.
ADDED = {(2, 3): {"OS-EXT-SRV-ATTR:hostname", "OS-EXT-SRV-ATTR:launch_index",
                  "OS-EXT-SRV-ATTR:kernel_id", "OS-EXT-SRV-ATTR:ramdisk_id",
                  "OS-EXT-SRV-ATTR:reservation_id", "OS-EXT-SRV-ATTR:root_device_name",
                  "OS-EXT-SRV-ATTR:user_data"},
         (2, 9): {"locked"}, (2, 16): {"host_status"}, (2, 19): {"description"},
         (2, 26): {"tags"}}


@pytest.mark.parametrize("minor", range(1, MAX_VERSION.minor + 1))
def test_each_microversion_shows_the_server_fields_nova_added_up_to_it(minor):
    keys = set(server_view(instance(), None, BASE, Version(2, minor)))
    base = set(server_view(instance(), None, BASE, MIN_VERSION))
    assert keys - base == set().union(*(f for v, f in ADDED.items() if v <= (2, minor)))


@pytest.mark.parametrize("minor", [1, 46])
def test_before_2_47_a_server_links_to_its_flavor(minor):
    view = server_view(instance(), None, BASE, Version(2, minor))
    assert view["flavor"] == {"id": "2", "links": [{"rel": "bookmark",
                                                    "href": f"{BASE}/flavors/2"}]}


@pytest.mark.parametrize("given, shown", [("UP", "UP"), ("MAINTENANCE", "MAINTENANCE"),
                                          (None, "UNKNOWN")])
def test_host_status_is_its_computes(given, shown):
    placed = instance(vm_state="active", task_state=None, host="compute1")
    assert server_view(placed, None, BASE, host_status=given)["host_status"] == shown


def test_the_hostname_is_the_name_as_a_dns_label():
    names = {"vm1": "vm1", "My Server_2.x": "my-server-2-x", "<b>ünï</b>": "bünïb",
             "名前": "Server-u-1", "-.-": "Server-u-1", "x" * 80: "x" * 63}
    for name, hostname in names.items():
        assert server_view(instance(name=name), None, BASE)["OS-EXT-SRV-ATTR:hostname"] \
            == hostname


def test_other_resources_show_times_as_nova_serialises_a_datetime():
    assert nova_time(T0 + 0.25) == "2023-11-14T22:13:20.250000" and nova_time(None) is None


def test_the_fault_is_shown_in_error():
    view = server_view(instance(vm_state="error", task_state=None), FAULT, BASE)
    assert view["fault"] == {"code": 500, "message": "NoValidHost: none", "details": "",
                             "created": "2023-11-14T23:13:20Z"}
    detailed = server_view(instance(vm_state="error"), {**FAULT, "details": "tb"}, BASE)
    assert detailed["fault"]["details"] == "tb"


@pytest.mark.parametrize("vm_state, task_state", [("building", "spawning"),
                                                  ("active", None),
                                                  ("error", "rebuilding")])
def test_the_fault_is_hidden_outside_error(vm_state, task_state):
    view = server_view(instance(vm_state=vm_state, task_state=task_state), FAULT, BASE)
    assert "fault" not in view and view["OS-EXT-LAB:last_fault"]["code"] == 500


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
    assert view["swap"] == "" and view["OS-FLV-DISABLED:disabled"] is False   # before 2.75
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
