"""The API service's logic, behind the HTTP handlers: create servers and hand the build
over the way the configured flow says.

- conductor flow: **cast** ``conductor.build_instances`` and answer 202 at once;
- ``local_mode``: run the conductor's build task here (it *calls* the scheduler), so the
  202 waits for scheduling: the API's response time shows the seed's point;
- legacy flow: **cast** ``scheduler.run_instance`` (the seed's old process).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil

from .. import rundir
from ..compute.rpcapi import ComputeAPI
from ..conductor.rpcapi import ConductorAPI
from ..conductor.tasks.build import BuildTask
from ..db import UnexpectedTaskState
from ..db_schema import MIGRATION_FAILED, MOVING_TASKS
from ..exception import Conflict
from ..manager import Manager, record_error
from ..messaging.protocol import MessagingTimeout, RemoteError
from ..messaging.transport import Transport
from ..scheduler.rpcapi import SchedulerAPI
from . import clouds, limits

__all__ = ["ApiManager", "Conflict"]

log = logging.getLogger("orchestrator.api")


class ApiManager(Manager):
    binary = "api"

    def __init__(self, transport: Transport, run_dir: Path, host: str):
        super().__init__(transport, run_dir, host)
        self.conductor = ConductorAPI(transport)
        self.scheduler = SchedulerAPI(transport)
        self.compute = ComputeAPI(transport)
        self.local_build = BuildTask(self.db, self.scheduler, self.compute, lambda: self.config)
        self.url = ""
        self.secret = rundir.secret(run_dir)
        self.create_latencies: deque[float] = deque(maxlen=200)
        self.started_at = time.time()
        self._server: tornado.httpserver.HTTPServer | None = None

    async def start(self) -> None:
        from .handlers import make_app
        sockets = _bind(rundir.read(self.run_dir).get("endpoints", {}).get("api", ""))
        self._server = tornado.httpserver.HTTPServer(
            make_app(self), max_body_size=limits.MAX_BODY_BYTES,
            max_header_size=limits.HEADER_CAP_BYTES, body_timeout=limits.BODY_TIMEOUT)
        self._server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        clouds.write(self.run_dir, self.url, self.secret)   # before the lab hears of us
        rundir.update(self.run_dir, endpoints={"api": self.url})
        log.info("Compute API v2.1 at %s", self.url)
        await super().start()

    async def create_servers(self, req: dict[str, Any]) -> dict[str, Any]:
        """Write the instances (BUILD/scheduling), then hand the build over. If handing
        over fails, the instances go to ERROR: never half-created, never stuck."""
        count = req["count"]
        names = [req["name"]] if count == 1 else [f"{req['name']}-{i + 1}" for i in range(count)]
        request_id, reservation_id, uuids = self.db.create_instances(
            names, req["flavor"], req["image"], req["availability_zone"],
            req.get("description"))
        spec = {**req["sizes"], "flavor": req["flavor"], "image": req["image"],
                "availability_zone": req["availability_zone"], "num_instances": count}
        ctx = {"request_id": request_id, "instance_uuid": uuids[0] if count == 1 else "",
               "attempt": 1}
        try:
            await self._hand_over(ctx, uuids, spec)
        except Exception as exc:
            for uuid in uuids:
                record_error(self.db, uuid, exc, ctx, "api_create")
            raise
        return {"request_id": request_id, "reservation_id": reservation_id, "uuids": uuids}

    async def _hand_over(self, ctx: dict[str, Any], uuids: list[str],
                         spec: dict[str, Any]) -> None:
        if self.config.flow == "legacy":
            self.scheduler.run_instance(ctx, uuids, spec)
        elif self.config.local_mode:
            await self.local_build.run(ctx, uuids, spec)
        else:
            self.conductor.build_instances(ctx, uuids, spec)

    async def delete_server(self, uuid: str, request_id: str) -> None:
        """Nova's ``_delete``: a server never placed is only a record (deleted here); a
        resized one first has its resize confirmed, the source compute **called** and
        waited for (Nova's ``cast=False``); then, if its host is up, ``terminate_instance``
        is **cast** there, and if it is down the record is deleted here (a local delete:
        the host lets it go when it restarts)."""
        inst = self.db.instance(uuid)
        if inst["task_state"] == "deleting":
            raise Conflict(f"Instance {uuid} is already being deleted.")
        if inst["task_state"] in MOVING_TASKS:
            raise Conflict(f"Cannot delete instance {uuid} while it is in task_state "
                           f"{inst['task_state']}; wait for it to finish.")
        self.db.start_action(uuid, "delete", request_id)
        ctx = {"request_id": request_id, "instance_uuid": uuid}
        # not Nova: the hosts of a failed move, where it may have left a claim, are told
        # now (Nova's periodic update_available_resource mends it; the lab's audit too,
        # later). A move that ended well left none.
        release = {h for m in self.db.migrations(instance_uuid=uuid)
                   if m["status"] in MIGRATION_FAILED
                   for h in (m["source_compute"], m["dest_compute"])} - {inst["host"], None}
        try:     # first, as Nova: a second delete meanwhile finds it deleting
            self.db.update_instance(uuid, inst["task_state"], task_state="deleting")
        except UnexpectedTaskState as exc:
            raise Conflict(str(exc)) from None
        if inst["vm_state"] == "resized":
            await self._confirm_on_deleting(ctx, uuid)
        if inst["host"] and self.host_is_up(inst["host"]):
            self.compute.terminate_instance(ctx, inst["host"], uuid)
        else:   # never placed, or its host is down: only the record is left to delete
            self.db.update_instance(uuid, deleted=1, vm_state="deleted", task_state=None)
        for host in sorted(release):
            self.compute.terminate_instance(ctx, host, uuid, destroy=False)

    async def _confirm_on_deleting(self, ctx: dict[str, Any], uuid: str) -> None:
        """A resize waiting to be confirmed is confirmed first: the source frees the old
        flavor. A source that does not answer (down) is not waited for: the migration
        ends by the conductor's timeout, and the source's claim with its next audits."""
        for migration in self.db.migrations(instance_uuid=uuid, status=("finished",)):
            self.db.update_migration(migration["id"], status="confirming")
            try:
                await self.compute.confirm_resize_and_wait(
                    ctx, migration["source_compute"], uuid, migration["id"],
                    timeout=self.config.timing("scheduler_timeout"))
            except (MessagingTimeout, RemoteError) as exc:
                log.warning("deleting %s: the source %s did not confirm its resize (%s)",
                            uuid, migration["source_compute"], exc)

    def host_is_up(self, host: str) -> bool:
        """Whether compute ``host``'s heartbeats are landing (Nova's servicegroup API)."""
        return any(s["host"] == host and s["state"] == "up" for s in self.service_list()
                   if s["binary"] == "nova-compute")

    def service_list(self) -> list[dict[str, Any]]:
        down_after = self.config.timing("service_down_time")
        now = time.time()
        out = []
        for s in self.db.services():
            up = s["last_seen_up"] is not None and now - s["last_seen_up"] <= down_after
            out.append({"id": s["id"], "binary": f"nova-{s['binary']}", "host": s["host"],
                        "zone": self.config.zone_of(s["host"]) if s["binary"] == "compute"
                        else "internal", "status": "disabled" if s["disabled"] else "enabled",
                        "state": "up" if up else "down", "disabled_reason": s["disabled_reason"],
                        "updated_at": s["last_seen_up"], "forced_down": False})
        return out

    def host_statuses(self) -> dict[str, str]:
        """Each compute host's ``host_status`` as a server on it shows it (Nova's
        ``get_instance_host_status``): MAINTENANCE while disabled, else UP while its
        reports land, else UNKNOWN."""
        return {s["host"]: "MAINTENANCE" if s["status"] == "disabled" else
                "UP" if s["state"] == "up" else "UNKNOWN"
                for s in self.service_list() if s["binary"] == "nova-compute"}

    def set_service_status(self, binary: str, host: str, disabled: bool,
                           reason: str | None) -> None:
        self.db.set_service_disabled(binary.removeprefix("nova-"), host, disabled, reason)


def _bind(previous_url: str) -> list:
    """Bind where a restarted API was before (its URL stays valid), else any free port."""
    if previous_url:
        try:
            return tornado.netutil.bind_sockets(int(previous_url.rsplit(":", 1)[1]),
                                                "127.0.0.1")
        except OSError:
            log.warning("port of %s is taken; choosing a new one", previous_url)
    return tornado.netutil.bind_sockets(0, "127.0.0.1")
