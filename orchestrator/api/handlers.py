"""HTTP handlers: the Compute API v2.1 subset the lab speaks, one resource each, on
``base.Base`` (the token, the limits, Nova's error bodies)."""
from __future__ import annotations

import logging

import tornado.web

from ..config import FLAVORS
from ..db import NotFound
from .actions import run_action
from .base import Base
from .manager import ApiManager
from .validation import (BadRequest, check_name, check_text, flavor_by_ref, shown,
                         unexpected, validate_create)
from .views import flavor_view, migration_view, server_brief, server_view

__all__ = ["make_app"]

log = logging.getLogger("orchestrator.api")


class Versions(Base):
    def do_get(self) -> None:
        self.reply(200, {"version": {"id": "v2.1", "status": "CURRENT",
                                     "links": [{"rel": "self", "href": f"{self.base}/v2.1/"}]}})


class Servers(Base):
    def do_get(self, detail: str | None = None) -> None:
        reservation = self.get_query_argument("reservation_id", None)
        instances = self.manager.db.instances(reservation_id=reservation)
        if detail:
            body = [server_view(i, self.manager.db.fault(i["uuid"]), self.base)
                    for i in instances]
        else:
            body = [server_brief(i, self.base) for i in instances]
        self.reply(200, {"servers": body})

    def on_finish(self) -> None:
        if self.request.method == "POST" and self.get_status() == 202:
            self.manager.create_latencies.append(self.request.request_time() * 1000)

    async def do_post(self, detail: str | None = None) -> None:
        if detail:
            raise tornado.web.HTTPError(405, "Method not allowed on servers/detail")
        req = validate_create(self.json_body(), self.manager.config)
        made = await self.manager.create_servers(req)
        self.set_header("x-openstack-request-id", made["request_id"])
        if req["return_reservation_id"]:
            return self.reply(202, {"reservation_id": made["reservation_id"]})
        first = made["uuids"][0]
        self.set_header("Location", f"{self.base}/v2.1/servers/{first}")
        self.reply(202, {"server": {"id": first, "links": server_brief(
            {"uuid": first, "name": req["name"]}, self.base)["links"],
            "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}],
            "OS-EXT-SRV-ATTR:reservation_id": made["reservation_id"]}})


class LabMetrics(Base):
    """Not in Nova: how long the API took to answer recent creates (the seed's point is
    the API's response time), for the dashboard."""

    def do_get(self) -> None:
        self.reply(200, {"create_latency_ms": list(self.manager.create_latencies)})


class Server(Base):
    def do_get(self, uuid: str) -> None:
        inst = self.manager.db.instance(uuid)
        self.reply(200, {"server": server_view(inst, self.manager.db.fault(uuid), self.base)})

    def do_delete(self, uuid: str) -> None:
        self.manager.delete_server(uuid, self.rid)
        self.set_status(204)
        self.finish()


class ServerAction(Base):
    def do_post(self, uuid: str) -> None:
        status = run_action(self.manager, uuid, self.json_body(), self.rid)
        if status == 204:
            self.set_status(204)
            return self.finish()
        self.reply(status, {})


class Migrations(Base):
    """``GET /os-migrations``, filtered by ``instance_uuid``, ``status``, ``host``,
    ``migration_type`` as Nova's is."""

    def do_get(self) -> None:
        args = {k: self.get_query_argument(k, None)
                for k in ("instance_uuid", "status", "host", "migration_type")}
        rows = self.manager.db.migrations(
            instance_uuid=args["instance_uuid"], host=args["host"],
            status=(args["status"],) if args["status"] else None)
        if args["migration_type"]:
            rows = [m for m in rows if m["migration_type"] == args["migration_type"]]
        self.reply(200, {"migrations": [migration_view(m) for m in reversed(rows)]})


class InstanceActions(Base):
    def do_get(self, uuid: str, request_id: str | None = None) -> None:
        self.manager.db.instance(uuid, deleted=True)
        actions = [{"action": a["action"], "instance_uuid": uuid, "request_id": a["request_id"],
                    "start_time": a["start_time"], "message": a["message"],
                    "events": a["events"]} for a in self.manager.db.actions(uuid)]
        if request_id is None:
            return self.reply(200, {"instanceActions": actions})
        for action in actions:
            if action["request_id"] == request_id:
                return self.reply(200, {"instanceAction": action})
        raise NotFound(f"Action for request_id {request_id} on instance {uuid} not found")


class Flavors(Base):
    def do_get(self, detail: str | None = None) -> None:
        views = [flavor_view(name, self.base) for name in FLAVORS]
        if not detail:
            views = [{k: v[k] for k in ("id", "name", "links")} for v in views]
        self.reply(200, {"flavors": views})


class Flavor(Base):
    def do_get(self, ref: str) -> None:
        found = flavor_by_ref(ref)
        if found is None:
            raise NotFound(f"Flavor {ref} could not be found.")
        self.reply(200, {"flavor": flavor_view(found[0], self.base)})


class Services(Base):
    def do_get(self, action: str | None = None) -> None:
        if action is not None:
            raise NotFound(f"No such resource: GET {self.request.path}")
        self.reply(200, {"services": self.manager.service_list()})

    def do_put(self, action: str | None = None) -> None:
        if action not in ("enable", "disable", "disable-log-reason"):
            raise NotFound(f"Unknown action {shown(action)}: enable, disable or "
                           f"disable-log-reason")
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
        self.reply(200, {"service": {"host": host, "binary": binary,
                                     "status": "enabled" if action == "enable" else "disabled"}})


class Hypervisors(Base):
    def do_get(self, detail: str | None = None) -> None:
        states = {s["host"]: s for s in self.manager.service_list()
                  if s["binary"] == "nova-compute"}
        out = []
        for i, node in enumerate(self.manager.db.compute_nodes()):
            service = states.get(node["host"], {})
            view = {"id": i + 1, "hypervisor_hostname": node["host"],
                    "state": service.get("state", "down"),
                    "status": service.get("status", "enabled")}
            if detail:
                view.update({k: node[k] for k in ("vcpus", "memory_mb", "local_gb",
                                                  "vcpus_used", "memory_mb_used",
                                                  "local_gb_used", "running_vms")})
                view.update({"free_ram_mb": node["memory_mb"] - node["memory_mb_used"],
                             "free_disk_gb": node["local_gb"] - node["local_gb_used"],
                             "hypervisor_type": "lab", "host_ip": "127.0.0.1",
                             "service": {"host": node["host"], "id": service.get("id")},
                             "OS-EXT-LAB:failed_builds": node["failed_builds"],
                             "OS-EXT-LAB:availability_zone": node["availability_zone"]})
            out.append(view)
        self.reply(200, {"hypervisors": out})


class NotFoundHandler(Base):
    def do_get(self, *args: str) -> None:
        raise NotFound(f"No such resource: {self.request.method} {shown(self.request.path)}")

    do_head = do_post = do_delete = do_patch = do_put = do_options = do_get


def make_app(manager: ApiManager) -> tornado.web.Application:
    kw = {"manager": manager}
    uid = r"([^/]+)"
    return tornado.web.Application([
        (r"/", Versions, kw), (r"/v2\.1/?", Versions, kw),
        (r"/v2\.1/servers/?(detail)?", Servers, kw),
        (rf"/v2\.1/servers/{uid}", Server, kw),
        (rf"/v2\.1/servers/{uid}/action", ServerAction, kw),
        (rf"/v2\.1/servers/{uid}/os-instance-actions", InstanceActions, kw),
        (rf"/v2\.1/servers/{uid}/os-instance-actions/{uid}", InstanceActions, kw),
        (r"/v2\.1/flavors/?(detail)?", Flavors, kw),
        (rf"/v2\.1/flavors/{uid}", Flavor, kw),
        (r"/v2\.1/os-services", Services, kw),
        (rf"/v2\.1/os-services/{uid}", Services, kw),
        (r"/v2\.1/os-hypervisors/?(detail)?", Hypervisors, kw),
        (r"/v2\.1/os-migrations", Migrations, kw),
        (r"/v2\.1/os-lab-metrics", LabMetrics, kw),
    ], default_handler_class=NotFoundHandler, default_handler_args=kw)
