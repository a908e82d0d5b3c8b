"""Unit tests for orchestrator.api.admin_views: what an operator reads (services,
hypervisors, migrations, instance actions, availability zones) in Nova's shapes at each
microversion that changed them."""
from __future__ import annotations

import pytest

from orchestrator.api.admin_views import (action_view, event_view, hypervisor_view,
                                          migration_view, service_view, zones_view)
from orchestrator.api.microversion import Version

T0 = 1_700_000_000.0      # 2023-11-14T22:13:20Z
SERVICE = {"id": 3, "binary": "nova-compute", "host": "compute1", "zone": "nova",
           "status": "enabled", "state": "up", "disabled_reason": None, "updated_at": T0,
           "forced_down": False}
NODE = {"host": "compute1", "availability_zone": "nova", "vcpus": 8, "memory_mb": 16384,
        "local_gb": 200, "vcpus_used": 1, "memory_mb_used": 2048, "local_gb_used": 20,
        "running_vms": 1, "failed_builds": 2}
MIGRATION = {"id": 4, "instance_uuid": "u-1", "status": "finished",
             "migration_type": "resize", "source_compute": "compute1",
             "dest_compute": "compute2", "old_flavor": "m1.small", "new_flavor": "m1.medium",
             "created_at": T0, "updated_at": T0 + 1.5, "request_id": "req-m"}
EVENT = {"event": "compute_build_and_run_instance", "host": "compute1", "attempt": 1,
         "start_time": T0, "finish_time": T0 + 2, "result": "Success", "details": ""}


@pytest.mark.parametrize("minor, forced", [(1, False), (10, False), (11, True), (47, True)])
def test_a_service_shows_an_iso_time_and_forced_down_from_2_11(minor, forced):
    view = service_view(SERVICE, Version(2, minor))
    assert view["updated_at"] == "2023-11-14T22:13:20.000000"
    assert ("forced_down" in view) is forced
    assert set(view) - {"forced_down"} == {"id", "binary", "host", "zone", "status",
                                           "state", "disabled_reason", "updated_at"}


def test_a_service_never_heard_from_has_no_time():
    assert service_view({**SERVICE, "updated_at": None})["updated_at"] is None


@pytest.mark.parametrize("minor, cpu_info", [(1, "{}"), (27, "{}"), (28, {}), (47, {})])
def test_a_hypervisor_in_detail_and_its_cpu_info_object_from_2_28(minor, cpu_info):
    view = hypervisor_view(NODE, SERVICE, True, Version(2, minor))
    assert view["cpu_info"] == cpu_info
    assert (view["id"], view["service"]) == (3, {"host": "compute1", "id": 3,
                                                 "disabled_reason": None})
    assert (view["free_ram_mb"], view["free_disk_gb"], view["vcpus_used"]) == (14336, 180, 1)
    assert view["OS-EXT-LAB:failed_builds"] == 2


def test_a_hypervisor_in_a_list_is_its_id_name_state_and_status():
    assert hypervisor_view(NODE, SERVICE, False) == {
        "id": 3, "hypervisor_hostname": "compute1", "state": "up", "status": "enabled"}
    assert hypervisor_view(NODE, {}, False)["state"] == "down"    # never reported


@pytest.mark.parametrize("minor, typed", [(1, False), (22, False), (23, True), (47, True)])
def test_a_migration_shows_its_type_from_2_23(minor, typed):
    view = migration_view(MIGRATION, Version(2, minor))
    assert ("migration_type" in view) is typed
    assert (view["old_instance_type_id"], view["new_instance_type_id"]) == (2, 3)
    assert view["updated_at"] == "2023-11-14T22:13:21.500000"


def test_an_action_and_its_events():
    view = action_view("u-1", {"action": "create", "request_id": "req-1",
                               "start_time": T0, "message": None, "events": [EVENT]})
    assert view["start_time"] == "2023-11-14T22:13:20.000000"
    assert view["events"] == [event_view(EVENT)]
    assert event_view(EVENT)["finish_time"] == "2023-11-14T22:13:22.000000"
    assert {"action", "instance_uuid", "request_id", "user_id", "project_id",
            "start_time", "message"} <= set(view)


def test_zones_list_compute_zones_and_in_detail_the_internal_one_with_every_host():
    services = [SERVICE, {**SERVICE, "id": 1, "binary": "nova-conductor",
                          "host": "conductor1", "zone": "internal"},
                {**SERVICE, "id": 4, "host": "compute2", "zone": "az2",
                 "status": "disabled", "state": "down"}]
    assert zones_view(services, ["nova", "az2"], False) == [
        {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None},
        {"zoneName": "az2", "zoneState": {"available": False}, "hosts": None}]
    detail = {z["zoneName"]: z for z in zones_view(services, ["nova", "az2"], True)}
    assert set(detail) == {"nova", "az2", "internal"}
    assert detail["az2"]["hosts"] == {"compute2": {"nova-compute": {
        "available": False, "active": False, "updated_at": "2023-11-14T22:13:20.000000"}}}
    assert list(detail["internal"]["hosts"]) == ["conductor1"]
