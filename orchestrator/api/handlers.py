"""HTTP handlers: the Compute API v2.1 subset the lab speaks. Every error is a JSON body in
Nova's shape (``{"badRequest": {"code": 400, "message": ...}}``), never an HTML page and
never a 500 for bad input."""
from __future__ import annotations

import hmac
import json
import logging
import uuid as uuidlib
from typing import Any

import tornado.web

from ..config import FLAVORS
from ..db import NotFound
from .actions import run_action
from .manager import ApiManager, Conflict
from .validation import BadRequest, flavor_by_ref, parse_json, validate_create
from .views import error_body, flavor_view, migration_view, server_brief, server_view

__all__ = ["make_app"]

log = logging.getLogger("orchestrator.api")


class Unauthorized(Exception):
    """HTTP 401: no ``X-Auth-Token``, or not the lab's secret."""


class Base(tornado.web.RequestHandler):
    """Every request must carry the lab's secret as ``X-Auth-Token`` (as Keystone's token
    is carried), whatever its path: a stranger on the same machine learns nothing."""

    manager: ApiManager

    def initialize(self, manager: ApiManager) -> None:
        self.manager = manager

    def prepare(self) -> None:
        want = self.manager.secret
        given = self.request.headers.get("X-Auth-Token", "")
        if want and not hmac.compare_digest(given.encode(), want.encode()):
            raise Unauthorized("The request you have made requires authentication "
                               "(X-Auth-Token: the lab's secret, from its run directory).")

    @property
    def base(self) -> str:
        return self.manager.url

    def reply(self, code: int, body: Any) -> None:
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, Unauthorized):
            # keystonemiddleware's answer, not Nova's: the token is checked before Nova
            self.set_status(401)
            self.set_header("Content-Type", "application/json")
            self.set_header("WWW-Authenticate", "Keystone uri='lab-secret'")
            return self.finish(json.dumps({"error": {"code": 401, "title": "Unauthorized",
                                                     "message": str(exc)}}))
        if isinstance(exc, BadRequest):
            status_code, message = 400, str(exc)
        elif isinstance(exc, NotFound):
            status_code, message = 404, str(exc)
        elif isinstance(exc, Conflict):
            status_code, message = 409, str(exc)
        elif isinstance(exc, tornado.web.HTTPError):
            message = exc.log_message or self._reason
        else:
            message = "Unexpected API error; see logs/api.*.log"
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error_body(status_code, message)))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, (Unauthorized, BadRequest, NotFound, Conflict,
                                  tornado.web.HTTPError)):
            super().log_exception(typ, value, tb)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, Unauthorized):
            status_code = 401
        elif isinstance(exc, BadRequest):
            status_code = 400
        elif isinstance(exc, NotFound):
            status_code = 404
        elif isinstance(exc, Conflict):
            status_code = 409
        super().send_error(status_code, **kwargs)

    def request_id(self) -> str:
        return "req-" + str(uuidlib.uuid4())


class Versions(Base):
    def get(self) -> None:
        self.reply(200, {"version": {"id": "v2.1", "status": "CURRENT",
                                     "links": [{"rel": "self", "href": f"{self.base}/v2.1/"}]}})


class Servers(Base):
    def get(self, detail: str | None = None) -> None:
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

    async def post(self, detail: str | None = None) -> None:
        if detail:
            raise tornado.web.HTTPError(405, "Method not allowed on servers/detail")
        req = validate_create(parse_json(self.request.body), self.manager.config)
        made = await self.manager.create_servers(req)
        if req["return_reservation_id"]:
            return self.reply(202, {"reservation_id": made["reservation_id"]})
        first = made["uuids"][0]
        self.set_header("Location", f"{self.base}/v2.1/servers/{first}")
        self.set_header("x-openstack-request-id", made["request_id"])
        self.reply(202, {"server": {"id": first, "links": server_brief(
            {"uuid": first, "name": req["name"]}, self.base)["links"],
            "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}],
            "OS-EXT-SRV-ATTR:reservation_id": made["reservation_id"]}})


class LabMetrics(Base):
    """Not in Nova: how long the API took to answer recent creates (the seed's point is
    the API's response time), for the dashboard."""

    def get(self) -> None:
        self.reply(200, {"create_latency_ms": list(self.manager.create_latencies)})


class Server(Base):
    def get(self, uuid: str) -> None:
        inst = self.manager.db.instance(uuid)
        self.reply(200, {"server": server_view(inst, self.manager.db.fault(uuid), self.base)})

    def delete(self, uuid: str) -> None:
        self.manager.delete_server(uuid, self.request_id())
        self.set_status(204)
        self.finish()


class ServerAction(Base):
    def post(self, uuid: str) -> None:
        rid = self.request_id()
        status = run_action(self.manager, uuid, parse_json(self.request.body), rid)
        self.set_header("x-openstack-request-id", rid)
        if status == 204:
            self.set_status(204)
            return self.finish()
        self.reply(status, {})


class Migrations(Base):
    """``GET /os-migrations``, filtered by ``instance_uuid``, ``status``, ``host``,
    ``migration_type`` as Nova's is."""

    def get(self) -> None:
        args = {k: self.get_query_argument(k, None)
                for k in ("instance_uuid", "status", "host", "migration_type")}
        rows = self.manager.db.migrations(
            instance_uuid=args["instance_uuid"], host=args["host"],
            status=(args["status"],) if args["status"] else None)
        if args["migration_type"]:
            rows = [m for m in rows if m["migration_type"] == args["migration_type"]]
        self.reply(200, {"migrations": [migration_view(m) for m in reversed(rows)]})


class InstanceActions(Base):
    def get(self, uuid: str, request_id: str | None = None) -> None:
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
    def get(self, detail: str | None = None) -> None:
        views = [flavor_view(name, self.base) for name in FLAVORS]
        if not detail:
            views = [{k: v[k] for k in ("id", "name", "links")} for v in views]
        self.reply(200, {"flavors": views})


class Flavor(Base):
    def get(self, ref: str) -> None:
        found = flavor_by_ref(ref)
        if found is None:
            raise NotFound(f"Flavor {ref} could not be found.")
        self.reply(200, {"flavor": flavor_view(found[0], self.base)})


class Services(Base):
    def get(self) -> None:
        self.reply(200, {"services": self.manager.service_list()})

    def put(self, action: str) -> None:
        body = parse_json(self.request.body)
        if not isinstance(body, dict) or not isinstance(body.get("host"), str) \
                or not isinstance(body.get("binary"), str):
            raise BadRequest("Expected {'host': ..., 'binary': ...}")
        if action not in ("enable", "disable", "disable-log-reason"):
            raise NotFound(f"Unknown action {action}")
        reason = body.get("disabled_reason")
        self.manager.set_service_status(body["binary"], body["host"], action != "enable",
                                        reason if isinstance(reason, str) else None)
        self.reply(200, {"service": {"host": body["host"], "binary": body["binary"],
                                     "status": "enabled" if action == "enable" else "disabled"}})


class Hypervisors(Base):
    def get(self, detail: str | None = None) -> None:
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
    def prepare(self) -> None:
        super().prepare()
        raise NotFound(f"No such resource: {self.request.method} {self.request.path}")


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
