"""How the API shows what an operator looks at: services, hypervisors, migrations,
instance actions and availability zones, in Nova's shapes at the request's microversion
(``microversion``). Keys named ``OS-EXT-LAB:`` are the lab's own, not Nova's."""
from __future__ import annotations

from typing import Any, Iterable

from ..config import FLAVORS
from .microversion import MAX_VERSION, Version
from .views import PROJECT_ID, USER_ID, nova_time

__all__ = ["service_view", "hypervisor_view", "migration_view", "action_view",
           "event_view", "zones_view"]


def service_view(s: dict[str, Any], version: Version = MAX_VERSION) -> dict[str, Any]:
    """A row of ``GET /os-services`` (``ApiManager.service_list``'s record)."""
    view = {k: s[k] for k in ("id", "binary", "host", "zone", "status", "state",
                              "disabled_reason")}
    view["updated_at"] = nova_time(s["updated_at"])
    if version >= (2, 11):
        view["forced_down"] = False
    return view


def hypervisor_view(node: dict[str, Any], service: dict[str, Any], detail: bool,
                    version: Version = MAX_VERSION) -> dict[str, Any]:
    """A compute node as ``/os-hypervisors[/detail|/{id}]`` shows it; its id is its
    compute service's (stable however many computes are added)."""
    view: dict[str, Any] = {"id": service.get("id", 0), "hypervisor_hostname": node["host"],
                            "state": service.get("state", "down"),
                            "status": service.get("status", "enabled")}
    if not detail:
        return view
    free_disk = node["local_gb"] - node["local_gb_used"]
    view.update({k: node[k] for k in ("vcpus", "memory_mb", "local_gb", "vcpus_used",
                                      "memory_mb_used", "local_gb_used", "running_vms")})
    view.update({"free_ram_mb": node["memory_mb"] - node["memory_mb_used"],
                 "free_disk_gb": free_disk, "disk_available_least": free_disk,
                 "current_workload": 0, "cpu_info": {} if version >= (2, 28) else "{}",
                 "hypervisor_type": "lab", "hypervisor_version": 1, "host_ip": "127.0.0.1",
                 "service": {"host": node["host"], "id": service.get("id", 0),
                             "disabled_reason": service.get("disabled_reason")},
                 "OS-EXT-LAB:failed_builds": node["failed_builds"],
                 "OS-EXT-LAB:availability_zone": node["availability_zone"]})
    return view


def migration_view(m: dict[str, Any], version: Version = MAX_VERSION) -> dict[str, Any]:
    """A row of ``GET /os-migrations``."""
    view = {"id": m["id"], "instance_uuid": m["instance_uuid"], "status": m["status"],
            "source_compute": m["source_compute"], "dest_compute": m["dest_compute"],
            "source_node": m["source_compute"], "dest_node": m["dest_compute"],
            "dest_host": "127.0.0.1" if m["dest_compute"] else None,
            "source_region": "RegionOne", "dest_region": "RegionOne",
            "old_instance_type_id": FLAVORS[m["old_flavor"]]["id"],
            "new_instance_type_id": FLAVORS[m["new_flavor"]]["id"],
            "created_at": nova_time(m["created_at"]), "updated_at": nova_time(m["updated_at"]),
            # Not in Nova: the request that started it, to find it in the trace.
            "OS-EXT-LAB:request_id": m["request_id"]}
    if version >= (2, 23):
        view["migration_type"] = m["migration_type"]
    return view


def event_view(e: dict[str, Any]) -> dict[str, Any]:
    """An instance action's event, as an admin sees it (``traceback`` empty: the lab's
    reasons are in ``details``, Nova's 2.84 field). ``host`` is Nova's 2.62 field,
    ``attempt`` the lab's own."""
    return {"event": e["event"], "start_time": nova_time(e["start_time"]),
            "finish_time": nova_time(e["finish_time"]), "result": e["result"],
            "traceback": None, "host": e["host"], "details": e["details"],
            "attempt": e["attempt"]}


def action_view(uuid: str, a: dict[str, Any]) -> dict[str, Any]:
    """An instance action with its events (Nova lists them only in ``show``; the lab's
    list has them too, so a lesson reads a server's story in one request)."""
    return {"action": a["action"], "instance_uuid": uuid, "request_id": a["request_id"],
            "user_id": USER_ID, "project_id": PROJECT_ID,
            "start_time": nova_time(a["start_time"]), "message": a["message"],
            "events": [event_view(e) for e in a["events"]]}


def zones_view(services: Iterable[dict[str, Any]], zones: Iterable[str],
               detail: bool) -> list[dict[str, Any]]:
    """``availabilityZoneInfo``: each compute zone (available while one of its computes
    is enabled) and, in detail, ``internal`` with the other services, and every zone's
    hosts: ``{host: {binary: {available (up), active (enabled), updated_at}}}``."""
    services = list(services)
    out = []
    for zone in [*zones, *(["internal"] if detail else [])]:
        members = [s for s in services if s["zone"] == zone]
        available = any(s["status"] == "enabled" for s in members) or zone == "internal"
        hosts: dict[str, Any] = {}
        for s in members:
            hosts.setdefault(s["host"], {})[s["binary"]] = {
                "available": s["state"] == "up", "active": s["status"] == "enabled",
                "updated_at": nova_time(s["updated_at"])}
        out.append({"zoneName": zone, "zoneState": {"available": available},
                    "hosts": hosts if detail else None})
    return out
