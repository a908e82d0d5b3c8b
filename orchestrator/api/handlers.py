"""HTTP handlers: the Compute API v2.1 subset the lab speaks, one resource each, on
``base.Base`` (the token, the limits, the microversion, Nova's error bodies): servers,
their actions, flavors; the operator's resources are in ``admin``, version discovery in
``versions``, the image service in ``images``. ``make_app`` puts them on one port."""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import tornado.web

from ..config import FLAVORS, IMAGES
from ..db import NotFound
from . import admin, images, versions
from .actions import run_action
from .base import Base
from .validation import BadRequest, check_image, flavor_by_ref, shown, validate_create
from .views import flavor_view, server_brief, server_view, status_of

if TYPE_CHECKING:
    from .manager import ApiManager

__all__ = ["make_app"]

log = logging.getLogger("orchestrator.api")


def _name_filter(pattern: str) -> re.Pattern[str]:
    """Nova filters servers by name as a regular expression (matched anywhere)."""
    try:
        return re.compile(pattern)
    except re.error:
        return re.compile(re.escape(pattern))


class ServerBase(Base):
    def server_view(self, inst: dict[str, Any], statuses: dict[str, str] | None = None
                    ) -> dict[str, Any]:
        statuses = self.manager.host_statuses() if statuses is None else statuses
        return server_view(inst, self.manager.db.fault(inst["uuid"]), self.base,
                           self.version, statuses.get(inst["host"] or ""))


# Every status Nova's servers can have (nova/api/openstack/common.py's state map): a
# filter on another is a 400 from 2.38, an empty list before.
NOVA_STATUSES = frozenset({
    "ACTIVE", "BUILD", "DELETED", "ERROR", "HARD_REBOOT", "MIGRATING", "PASSWORD", "PAUSED",
    "REBOOT", "REBUILD", "RESCUE", "RESIZE", "REVERT_RESIZE", "SHELVED",
    "SHELVED_OFFLOADED", "SHUTOFF", "SOFT_DELETED", "SUSPENDED", "UNKNOWN",
    "VERIFY_RESIZE"})


class Servers(ServerBase):
    """``GET /servers[/detail]``, filtered as Nova's are by ``reservation_id``, ``name``
    (a regular expression), ``status``, ``host``, ``flavor`` and ``image`` (ids); other
    filters are ignored, as Nova does before 2.75. ``POST /servers`` creates."""

    def _selected(self) -> list[dict[str, Any]]:
        arg = self.get_query_argument
        instances = self.manager.db.instances(reservation_id=arg("reservation_id", None))
        wanted = {"name": arg("name", None), "status": arg("status", None),
                  "host": arg("host", None), "flavor": arg("flavor", None),
                  "image": arg("image", None)}
        if wanted["name"] is not None:
            pattern = _name_filter(wanted["name"])
            instances = [i for i in instances if pattern.search(i["name"])]
        if wanted["status"] is not None:
            if self.version >= (2, 38) and wanted["status"].upper() not in NOVA_STATUSES:
                raise BadRequest("Invalid status value")       # Nova since 2.38
            instances = [i for i in instances if status_of(
                i["vm_state"], i["task_state"]) == wanted["status"].upper()]
        if wanted["host"] is not None:
            instances = [i for i in instances if i["host"] == wanted["host"]]
        if wanted["flavor"] is not None:
            instances = [i for i in instances
                         if str(FLAVORS[i["flavor"]]["id"]) == wanted["flavor"]]
        if wanted["image"] is not None:
            instances = [i for i in instances
                         if IMAGES.get(i["image"], {}).get("id") == wanted["image"]]
        return instances

    def do_get(self, detail: str | None = None) -> None:
        instances = self._selected()
        if detail:
            statuses = self.manager.host_statuses()
            body = [self.server_view(i, statuses) for i in instances]
        else:
            body = [server_brief(i, self.base) for i in instances]
        self.reply(200, {"servers": body})

    def on_finish(self) -> None:
        if self.request.method == "POST" and self.get_status() == 202:
            self.manager.create_latencies.append(self.request.request_time() * 1000)

    async def do_post(self, detail: str | None = None) -> None:
        if detail:
            raise tornado.web.HTTPError(405, "Method not allowed on servers/detail")
        req = validate_create(self.json_body(), self.manager.config, self.version)
        made = await self.manager.create_servers(req)
        for header in ("x-openstack-request-id", "x-compute-request-id"):
            self.set_header(header, made["request_id"])
        if req["return_reservation_id"]:
            return self.reply(202, {"reservation_id": made["reservation_id"]})
        first = made["uuids"][0]
        self.set_header("Location", f"{self.base}/v2.1/servers/{first}")
        self.reply(202, {"server": {"id": first, "links": server_brief(
            {"uuid": first, "name": req["name"]}, self.base)["links"],
            "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}],
            # Not in Nova's answer: the request's reservation, to find all it made.
            "OS-EXT-SRV-ATTR:reservation_id": made["reservation_id"]}})


class Server(ServerBase):
    def do_get(self, uuid: str) -> None:
        self.reply(200, {"server": self.server_view(self.manager.db.instance(uuid))})

    async def do_delete(self, uuid: str) -> None:
        await self.manager.delete_server(uuid, self.rid)
        self.reply(204)


class ServerAction(ServerBase):
    """Nova's answers: no body, but a rebuild's 202 carries the server as the action left
    it: rebuilding, from its new image (which the lab's database holds only once the
    compute spawns it; a fast lab may even have finished by now)."""

    def do_post(self, uuid: str) -> None:
        body = self.json_body()
        status = run_action(self.manager, uuid, body, self.rid, self.version)
        if "rebuild" not in body:
            return self.reply(status)
        inst = {**self.manager.db.instance(uuid, deleted=True), "task_state": "rebuilding",
                "image": check_image(body["rebuild"]["imageRef"])}
        self.reply(status, {"server": self.server_view(inst)})


class LabMetrics(Base):
    """Not in Nova: how long the API took to answer recent creates (the seed's point is
    the API's response time), for the dashboard."""

    def do_get(self) -> None:
        self.reply(200, {"create_latency_ms": list(self.manager.create_latencies)})


class Flavors(Base):
    def do_get(self, detail: str | None = None) -> None:
        views = [flavor_view(name, self.base) for name in FLAVORS]
        if not detail:
            views = [{k: v[k] for k in ("id", "name", "links")} for v in views]
        self.reply(200, {"flavors": views})


class Flavor(Base):
    """``/flavors/{ref}`` (an id, or, in the lab, a name); its ``os-extra_specs`` (none)
    and ``os-flavor-access`` (every flavor is public: Nova's 404)."""

    def do_get(self, ref: str, sub: str | None = None) -> None:
        found = flavor_by_ref(ref)
        if found is None:
            raise NotFound(f"Flavor {shown(ref)} could not be found.")
        if sub == "os-extra_specs":
            return self.reply(200, {"extra_specs": {}})
        if sub == "os-flavor-access":
            raise NotFound("Access list not available for public flavors.")
        self.reply(200, {"flavor": flavor_view(found[0], self.base)})


class NotFoundHandler(Base):
    versioned = False

    def do_get(self, *args: str) -> None:
        raise NotFound(f"No such resource: {self.request.method} {shown(self.request.path)}")

    do_head = do_post = do_delete = do_patch = do_put = do_options = do_get


def make_app(manager: ApiManager) -> tornado.web.Application:
    kw = {"manager": manager}
    uid = r"([^/]+)"
    routes = [
        (r"/v2\.1/servers/?(detail)?", Servers),
        (rf"/v2\.1/servers/{uid}", Server),
        (rf"/v2\.1/servers/{uid}/action", ServerAction),
        (r"/v2\.1/flavors/?(detail)?", Flavors),
        (rf"/v2\.1/flavors/{uid}/?(os-extra_specs|os-flavor-access)?", Flavor),
        (r"/v2\.1/os-lab-metrics", LabMetrics),
        *admin.ROUTES, *versions.ROUTES, *images.ROUTES]
    return tornado.web.Application([(path, handler, kw) for path, handler in routes],
                                   default_handler_class=NotFoundHandler,
                                   default_handler_args=kw)
