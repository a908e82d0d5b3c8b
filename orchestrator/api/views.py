"""How the API shows things: Nova's response shapes for servers, faults, actions,
services, hypervisors and flavors, and its error bodies."""
from __future__ import annotations

import datetime
from typing import Any

from ..config import FLAVORS

__all__ = ["server_view", "server_brief", "error_body", "iso", "STATUS", "flavor_view",
           "status_of", "migration_view"]

STATUS = {"building": "BUILD", "active": "ACTIVE", "error": "ERROR", "deleted": "DELETED",
          "resized": "VERIFY_RESIZE"}
# Nova's status for a task in progress (nova/api/openstack/common.py's state map).
TASK_STATUS = {"resize_prep": "RESIZE", "resize_migrating": "RESIZE",
               "resize_migrated": "RESIZE", "resize_finish": "RESIZE",
               "resize_reverting": "REVERT_RESIZE", "resize_confirming": "VERIFY_RESIZE",
               "rebuilding": "REBUILD", "rebuild_spawning": "REBUILD"}


def status_of(vm_state: str, task_state: str | None) -> str:
    """The API's one-word status: the task in progress, if it has its own, else the
    vm_state's."""
    if vm_state in ("active", "resized") and task_state in TASK_STATUS:
        return TASK_STATUS[task_state]
    if vm_state == "error" and task_state in ("rebuilding", "rebuild_spawning"):
        return "REBUILD"
    return STATUS.get(vm_state, "UNKNOWN")
ERROR_KEYS = {400: "badRequest", 404: "itemNotFound", 405: "badMethod",
              409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
              500: "computeFault"}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error_body(code: int, message: str) -> dict[str, Any]:
    return {ERROR_KEYS.get(code, "computeFault"): {"code": code, "message": message}}


def _links(base: str, kind: str, ident: Any) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base}/v2.1/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{base}/{kind}/{ident}"}]


def server_brief(inst: dict[str, Any], base: str) -> dict[str, Any]:
    return {"id": inst["uuid"], "name": inst["name"], "links": _links(base, "servers",
                                                                        inst["uuid"])}


def flavor_view(name: str, base: str) -> dict[str, Any]:
    f = FLAVORS[name]
    return {"id": str(f["id"]), "name": name, "vcpus": f["vcpus"], "ram": f["memory_mb"],
            "disk": f["root_gb"], "OS-FLV-EXT-DATA:ephemeral": 0, "swap": 0,
            "os-flavor-access:is_public": True, "links": _links(base, "flavors", f["id"])}


def server_view(inst: dict[str, Any], fault: dict[str, Any] | None,
                base: str) -> dict[str, Any]:
    flavor = FLAVORS[inst["flavor"]]
    view = {
        **server_brief(inst, base),
        "status": status_of(inst["vm_state"], inst["task_state"]),
        "OS-EXT-STS:vm_state": inst["vm_state"],
        "OS-EXT-STS:task_state": inst["task_state"],
        "OS-EXT-STS:power_state": 1 if inst["vm_state"] == "active" else 0,
        "OS-EXT-SRV-ATTR:host": inst["host"],
        "OS-EXT-SRV-ATTR:hypervisor_hostname": inst["host"],
        "OS-EXT-SRV-ATTR:reservation_id": inst["reservation_id"],
        "OS-EXT-AZ:availability_zone": inst["availability_zone"] or "nova",
        "OS-SRV-USG:launched_at": iso(inst["launched_at"]),
        "flavor": {"original_name": inst["flavor"], "vcpus": flavor["vcpus"],
                   "ram": flavor["memory_mb"], "disk": flavor["root_gb"]},
        "image": {"id": inst["image"]},
        "created": iso(inst["created_at"]), "updated": iso(inst["updated_at"]),
        "addresses": {}, "metadata": {},
        # Not in Nova: the lab shows how many scheduling attempts the build took.
        "OS-EXT-LAB:num_attempts": inst["num_attempts"],
        "OS-EXT-LAB:request_id": inst["request_id"],
    }
    if fault is not None:
        shown = {"code": fault["code"], "message": fault["message"],
                 "details": fault["details"] or "", "created": iso(fault["created_at"])}
        if inst["vm_state"] == "error":
            view["fault"] = shown
        # Not in Nova: the last fault even when the instance is not in ERROR (a resize
        # that was rolled back leaves the instance ACTIVE, with this fault saying why).
        view["OS-EXT-LAB:last_fault"] = shown
    return view


def migration_view(m: dict[str, Any]) -> dict[str, Any]:
    """A row of ``GET /os-migrations``, in Nova's shape."""
    return {"id": m["id"], "instance_uuid": m["instance_uuid"], "status": m["status"],
            "migration_type": m["migration_type"], "source_compute": m["source_compute"],
            "dest_compute": m["dest_compute"], "source_node": m["source_compute"],
            "dest_node": m["dest_compute"], "dest_host": "127.0.0.1",
            "old_instance_type_id": FLAVORS[m["old_flavor"]]["id"],
            "new_instance_type_id": FLAVORS[m["new_flavor"]]["id"],
            "created_at": iso(m["created_at"]), "updated_at": iso(m["updated_at"]),
            # Not in Nova: the request that started it, to find it in the trace.
            "OS-EXT-LAB:request_id": m["request_id"]}