"""HTTP handlers for what an operator looks at and switches: services (enable, disable),
hypervisors, migrations, a server's instance actions, availability zones and host
aggregates (one per zone other than ``nova``, as Nova keeps zones). Shapes from
``admin_views`` at the request's microversion."""
from __future__ import annotations

import os
import time
import uuid as uuidlib
from typing import Any

from ..db import NotFound
from .admin_views import (action_view, hypervisor_view, migration_view, service_view,
                          zones_view)
from .base import Base
from .validation import BadRequest, check_limit, check_name, check_text, shown, unexpected
from .views import nova_time

__all__ = ["ROUTES"]

SERVICE_ACTIONS = ("enable", "disable", "disable-log-reason")
# What /os-hypervisors/statistics sums over every hypervisor (Nova's, until 2.88).
STATISTICS = ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used",
              "local_gb_used", "free_ram_mb", "free_disk_gb", "current_workload",
              "running_vms", "disk_available_least")


class Services(Base):
    """``GET /os-services[?host=&binary=]``; ``PUT /os-services/{action}`` with
    ``{"host", "binary"}``. ``force-down`` (2.11) is refused: the lab's services are down
    only when they stop reporting."""

    def do_get(self, action: str | None = None) -> None:
        if action is not None:
            raise NotFound(f"No such resource: GET {self.request.path}")
        host, binary = self.get_query_argument("host", None), \
            self.get_query_argument("binary", None)
        self.reply(200, {"services": [
            service_view(s, self.version) for s in self.manager.service_list()
            if host in (None, s["host"]) and binary in (None, s["binary"])]})

    def do_put(self, action: str | None = None) -> None:
        if action == "force-down" and self.version >= (2, 11):
            raise BadRequest("The lab does not force services down: stop one instead "
                             "(lab.kill), and it is down once it stops reporting.")
        if action not in SERVICE_ACTIONS:
            raise NotFound(f"Unknown action {shown(action)}: {', '.join(SERVICE_ACTIONS)}")
        body = self.json_body()
        if not isinstance(body, dict):
            raise BadRequest("Expected {'host': ..., 'binary': ...}")
        if set(body) - {"host", "binary", "disabled_reason"}:
            raise unexpected(set(body) - {"host", "binary", "disabled_reason"})
        host, binary = check_name(body.get("host"), "host"), check_name(body.get("binary"),
                                                                         "binary")
        reason = body.get("disabled_reason")
        if reason is not None:
            check_text(reason, "disabled_reason")
        self.manager.set_service_status(binary, host, action != "enable", reason)
        answer = {"host": host, "binary": binary,
                  "status": "enabled" if action == "enable" else "disabled"}
        if action == "disable-log-reason":
            answer["disabled_reason"] = reason
        self.reply(200, {"service": answer})


def _uptime() -> str:
    """The machine's, as ``uptime`` prints it: every compute of the lab runs here."""
    with open("/proc/uptime") as f:
        up = int(float(f.read().split()[0]))
    days, rest = divmod(up, 86400)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f" {time.strftime('%H:%M:%S')} up {days} days, {rest // 3600}:"
            f"{rest % 3600 // 60:02d},  1 user,  load average: {load}")


class Hypervisors(Base):
    """``/os-hypervisors[/detail]`` (paged by ``limit`` and ``marker``, 2.33),
    ``/os-hypervisors/{id}``, ``.../{id}/uptime``, ``.../{pattern}/search``,
    ``/os-hypervisors/statistics``."""

    def _views(self, detail: bool) -> list[dict[str, Any]]:
        services = {s["host"]: s for s in self.manager.service_list()
                    if s["binary"] == "nova-compute"}
        return [hypervisor_view(node, services.get(node["host"], {}), detail, self.version)
                for node in self.manager.db.compute_nodes()]

    def do_get(self, detail: str | None = None) -> None:
        views = self._views(bool(detail))
        if self.version >= (2, 33):
            marker = self.get_query_argument("marker", None)
            if marker is not None:
                ids = [str(v["id"]) for v in views]
                if marker not in ids:
                    raise BadRequest(f"marker [{shown(marker)}] not found")
                views = views[ids.index(marker) + 1:]
            limit = self.get_query_argument("limit", None)
            if limit is not None:
                views = views[:check_limit(limit)]
        self.reply(200, {"hypervisors": views})


class Hypervisor(Hypervisors):
    def do_get(self, ref: str, sub: str | None = None) -> None:   # type: ignore[override]
        if ref == "statistics" and sub is None:
            views = self._views(True)
            return self.reply(200, {"hypervisor_statistics": {"count": len(views), **{
                k: sum(v[k] for v in views) for k in STATISTICS}}})
        if sub == "search":
            found = [v for v in self._views(False) if ref in v["hypervisor_hostname"]]
            if not found:
                raise NotFound(f"No hypervisor matching '{shown(ref)}' could be found.")
            return self.reply(200, {"hypervisors": found})
        for view in self._views(sub is None):
            if str(view["id"]) == ref:
                if sub == "uptime":
                    view["uptime"] = _uptime()
                return self.reply(200, {"hypervisor": view})
        raise NotFound(f"Hypervisor with ID {shown(ref)} could not be found.")


class Migrations(Base):
    """``GET /os-migrations``, filtered by ``instance_uuid``, ``status``, ``host``,
    ``migration_type`` as Nova's is; newest first."""

    def do_get(self) -> None:
        args = {k: self.get_query_argument(k, None)
                for k in ("instance_uuid", "status", "host", "migration_type")}
        rows = self.manager.db.migrations(
            instance_uuid=args["instance_uuid"], host=args["host"],
            status=(args["status"],) if args["status"] else None)
        if args["migration_type"]:
            rows = [m for m in rows if m["migration_type"] == args["migration_type"]]
        self.reply(200, {"migrations": [migration_view(m, self.version)
                                        for m in reversed(rows)]})


class InstanceActions(Base):
    """A server's actions, a deleted server's too from 2.21."""

    def do_get(self, uuid: str, request_id: str | None = None) -> None:
        self.manager.db.instance(uuid, deleted=self.version >= (2, 21))
        actions = [action_view(uuid, a) for a in self.manager.db.actions(uuid)]
        if request_id is None:
            return self.reply(200, {"instanceActions": actions})
        for action in actions:
            if action["request_id"] == request_id:
                return self.reply(200, {"instanceAction": action})
        raise NotFound(f"Action for request_id {shown(request_id)} on instance {uuid} "
                       f"not found")


class AvailabilityZones(Base):
    def do_get(self, detail: str | None = None) -> None:
        self.reply(200, {"availabilityZoneInfo": zones_view(
            self.manager.service_list(), self.manager.config.availability_zones,
            bool(detail))})


class Aggregates(Base):
    """Nova keeps an availability zone as an aggregate of its hosts; ``nova``, the
    default zone, is none."""

    def do_get(self) -> None:
        config = self.manager.config
        zones = [z for z in config.availability_zones if z != "nova"]
        self.reply(200, {"aggregates": [{
            "id": i + 1, "name": zone, "availability_zone": zone,
            "hosts": [h for h in config.compute_names() if config.zone_of(h) == zone],
            "metadata": {"availability_zone": zone},
            "created_at": nova_time(self.manager.started_at), "updated_at": None,
            "deleted": False, "deleted_at": None,
            **({"uuid": str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"conductor-lab:{zone}"))}
               if self.version >= (2, 41) else {})} for i, zone in enumerate(zones)]})


uid = r"([^/]+)"
ROUTES = [
    (r"/v2\.1/os-services", Services), (rf"/v2\.1/os-services/{uid}", Services),
    (r"/v2\.1/os-hypervisors/?(detail)?", Hypervisors),
    (rf"/v2\.1/os-hypervisors/{uid}/?(uptime|search)?", Hypervisor),
    (r"/v2\.1/os-migrations", Migrations),
    (rf"/v2\.1/servers/{uid}/os-instance-actions", InstanceActions),
    (rf"/v2\.1/servers/{uid}/os-instance-actions/{uid}", InstanceActions),
    (r"/v2\.1/os-availability-zone/?(detail)?", AvailabilityZones),
    (r"/v2\.1/os-aggregates", Aggregates)]
