"""How the API shows a server and a flavor: Nova's response shapes at the request's
microversion (``microversion``: what changed at which version), and its error bodies.

The lab answers as Nova does to an admin (its token is the lab's secret: there is one
user), with ``[api] enable_instance_password = False`` (no ``adminPass``), for servers
that have no networks, volumes, keypairs, tags or locks. Keys named ``OS-EXT-LAB:`` are
the lab's own, not Nova's."""
from __future__ import annotations

import datetime
import hashlib
import re
from typing import Any

from ..config import FLAVORS, IMAGES
from .microversion import MAX_VERSION, Version

__all__ = ["server_view", "server_brief", "error_body", "iso", "nova_time", "STATUS",
           "flavor_view", "status_of", "links", "PROJECT_ID", "USER_ID", "host_id"]

STATUS = {"building": "BUILD", "active": "ACTIVE", "error": "ERROR", "deleted": "DELETED",
          "resized": "VERIFY_RESIZE"}
# Nova's status for a task in progress (nova/api/openstack/common.py's state map).
TASK_STATUS = {"resize_prep": "RESIZE", "resize_migrating": "RESIZE",
               "resize_migrated": "RESIZE", "resize_finish": "RESIZE",
               "resize_reverting": "REVERT_RESIZE", "resize_confirming": "VERIFY_RESIZE",
               "rebuilding": "REBUILD", "rebuild_spawning": "REBUILD"}
# Statuses that show ``progress``, and that show a fault (views/servers.py).
PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")
FAULT_STATUSES = ("ERROR", "DELETED")
# The lab's one project and user: every server is theirs.
PROJECT_ID = "conductor-lab"
USER_ID = "student"


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
    """A server's times (``created``, ``updated``): ISO 8601, UTC, whole seconds, Z."""
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def nova_time(ts: float | None) -> str | None:
    """Every other resource's times (services, actions, migrations): ISO 8601 with
    microseconds and no zone, as Nova serialises a database datetime (UTC)."""
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def error_body(code: int, message: str) -> dict[str, Any]:
    return {ERROR_KEYS.get(code, "computeFault"): {"code": code, "message": message}}


def links(base: str, kind: str, ident: Any) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base}/v2.1/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{base}/{kind}/{ident}"}]


def host_id(host: str | None) -> str:
    """Nova's ``hostId``: a hash of the project and the host, so a user can tell whether
    two servers share a host without learning its name."""
    return hashlib.sha224((PROJECT_ID + host).encode()).hexdigest() if host else ""


def server_brief(inst: dict[str, Any], base: str) -> dict[str, Any]:
    return {"id": inst["uuid"], "name": inst["name"], "links": links(base, "servers",
                                                                       inst["uuid"])}


def flavor_view(name: str, base: str) -> dict[str, Any]:
    """A flavor as ``/flavors/detail`` shows it (up to 2.55 none changes it; before 2.75
    a swap of 0 is shown as ``""``)."""
    f = FLAVORS[name]
    return {"id": str(f["id"]), "name": name, "vcpus": f["vcpus"], "ram": f["memory_mb"],
            "disk": f["root_gb"], "OS-FLV-EXT-DATA:ephemeral": 0, "swap": "",
            "OS-FLV-DISABLED:disabled": False, "rxtx_factor": 1.0,
            "os-flavor-access:is_public": True, "links": links(base, "flavors", f["id"])}


def _flavor_of_server(name: str, base: str, version: Version) -> dict[str, Any]:
    flavor = FLAVORS[name]
    if version >= (2, 47):
        return {"vcpus": flavor["vcpus"], "ram": flavor["memory_mb"],
                "disk": flavor["root_gb"], "ephemeral": 0, "swap": 0,
                "original_name": name, "extra_specs": {}}
    return {"id": str(flavor["id"]),
            "links": [{"rel": "bookmark", "href": f"{base}/flavors/{flavor['id']}"}]}


def _image_of_server(name: str, base: str) -> dict[str, Any]:
    ident = IMAGES[name]["id"] if name in IMAGES else name
    return {"id": ident, "links": [{"rel": "bookmark", "href": f"{base}/images/{ident}"}]}


def _hostname(inst: dict[str, Any]) -> str:
    """Nova's ``sanitize_hostname``: the name as a hostname, or ``Server-<uuid>``."""
    text = re.sub(r"[ _.]", "-", inst["name"].encode("latin-1", "ignore").decode("latin-1")[:63])
    return re.sub(r"[^\w.-]+", "", text).lower().strip(".-") or f"Server-{inst['uuid']}"[:63]


def _fault(fault: dict[str, Any]) -> dict[str, Any]:
    return {"code": fault["code"], "message": fault["message"],
            "details": fault["details"] or "", "created": iso(fault["created_at"])}


def server_view(inst: dict[str, Any], fault: dict[str, Any] | None, base: str,
                version: Version = MAX_VERSION,
                host_status: str | None = None) -> dict[str, Any]:
    """A server as ``GET /servers/{id}`` shows it at ``version``. ``host_status`` is its
    compute's (2.16): UP, UNKNOWN (not heard from), MAINTENANCE (disabled)."""
    status = status_of(inst["vm_state"], inst["task_state"])
    placed = inst["host"] is not None
    view = {
        **server_brief(inst, base),
        "status": status, "tenant_id": PROJECT_ID, "user_id": USER_ID,
        "hostId": host_id(inst["host"]),
        "flavor": _flavor_of_server(inst["flavor"], base, version),
        "image": _image_of_server(inst["image"], base),
        "created": iso(inst["created_at"]), "updated": iso(inst["updated_at"]),
        "addresses": {}, "metadata": {}, "accessIPv4": "", "accessIPv6": "",
        "OS-DCF:diskConfig": "MANUAL", "config_drive": "", "key_name": None,
        "OS-EXT-AZ:availability_zone": inst["availability_zone"] or "nova",
        "OS-SRV-USG:launched_at": iso(inst["launched_at"]),
        "OS-SRV-USG:terminated_at": None,
        "OS-EXT-SRV-ATTR:host": inst["host"],
        "OS-EXT-SRV-ATTR:hypervisor_hostname": inst["host"],
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{inst.get('seq', 0):08x}",
        "OS-EXT-STS:vm_state": inst["vm_state"],
        "OS-EXT-STS:task_state": inst["task_state"],
        "OS-EXT-STS:power_state": 1 if inst["vm_state"] == "active" else 0,
        "os-extended-volumes:volumes_attached": [],
        # Not in Nova: the lab shows how many scheduling attempts the build took.
        "OS-EXT-LAB:num_attempts": inst["num_attempts"],
        "OS-EXT-LAB:request_id": inst["request_id"],
    }
    if status in PROGRESS_STATUSES:
        view["progress"] = 0
    if version >= (2, 3):
        view.update({"OS-EXT-SRV-ATTR:hostname": _hostname(inst),
                     "OS-EXT-SRV-ATTR:launch_index": 0, "OS-EXT-SRV-ATTR:kernel_id": "",
                     "OS-EXT-SRV-ATTR:ramdisk_id": "",
                     "OS-EXT-SRV-ATTR:reservation_id": inst["reservation_id"],
                     "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda" if placed else None,
                     "OS-EXT-SRV-ATTR:user_data": None})
    if version >= (2, 9):
        view["locked"] = False
    if version >= (2, 16):
        view["host_status"] = (host_status or "UNKNOWN") if placed else ""
    if version >= (2, 19):
        view["description"] = inst.get("description")
    if version >= (2, 26):
        view["tags"] = []
    if fault is not None:
        if status in FAULT_STATUSES:
            view["fault"] = _fault(fault)
        # Not in Nova: the last fault even when the instance is not in ERROR (a resize
        # that was rolled back leaves the instance ACTIVE, with this fault saying why).
        view["OS-EXT-LAB:last_fault"] = _fault(fault)
    return view
