"""The conductor service: the workflow owner and the database proxy.

- ``build_instances`` (a cast, from the API or from a compute that reschedules: the same
  message either way) runs the build task.
- The database proxy: computes have no database handle; ``instance_update``,
  ``instance_destroy``, ``instance_fault_create``, ``action_event``, ``service_update``
  and ``compute_node_update`` are the calls through which everything they save lands.
- ``migrate_server`` (resize / cold migrate, ``tasks/migrate.py``) and
  ``rebuild_instance`` (rebuild / evacuate, ``tasks/rebuild.py``): the seed's other
  workflows that involve the scheduler.
- The object backporter: ``object_backport_versions`` turns an object into the older
  version a not-yet-upgraded service understands.
- A periodic check ends builds and moves that made no progress for ``build_timeout`` (a
  lost message, a crashed compute): builds and half-done moves in ERROR, a move that
  never left ``resize_prep`` back to ACTIVE with a fault (nothing moved). Nothing stays
  in BUILD or RESIZE forever.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..compute.rpcapi import ComputeAPI
from ..config import FLAVORS
from ..db import NotFound
from ..db_schema import MIGRATION_IN_PROGRESS, MIGRATION_MOVING, MOVING_TASKS
from ..exception import BuildTimeout, MigrationError, MigrationTimeout, RebuildError
from ..manager import Manager
from ..messaging.transport import Transport
from ..rollback import fail
from ..objects import Instance, backport
from ..objects.pinning import usable_version
from ..scheduler.rpcapi import SchedulerAPI
from .tasks.build import BuildTask
from .tasks.migrate import MigrationTask
from .tasks.rebuild import RebuildTask

__all__ = ["ConductorManager"]

log = logging.getLogger("orchestrator.conductor")


class ConductorManager(Manager):
    binary = "conductor"

    def __init__(self, transport: Transport, run_dir: Path, host: str):
        super().__init__(transport, run_dir, host)
        self.scheduler = SchedulerAPI(transport)
        self.compute = ComputeAPI(transport)
        parts = (self.db, self.scheduler, self.compute, lambda: self.config)
        self.build = BuildTask(*parts)
        self.migrate = MigrationTask(*parts)
        self.rebuild = RebuildTask(*parts)

    async def start(self) -> None:
        await super().start()
        self.periodic(self.check_build_timeouts, "report_interval", initial_rounds=4)

    async def build_instances(self, ctx: dict[str, Any], instance_uuids: list[str],
                              request_spec: dict[str, Any],
                              retry: dict[str, Any] | None = None,
                              host_lists: list[list[str]] | None = None) -> None:
        await self.build.run(ctx, instance_uuids, request_spec, retry, host_lists)

    async def migrate_server(self, ctx: dict[str, Any], instance_uuid: str, flavor: str,
                             retry: dict[str, Any] | None = None,
                             host_list: list[str] | None = None,
                             migration_id: int | None = None) -> None:
        """From the API (a cast: a new migration), or from a destination whose
        ``prep_resize`` failed (a call, with the migration: the reschedule)."""
        await self.migrate.run(ctx, instance_uuid, flavor, retry, host_list, migration_id,
                               handed_back=migration_id is not None)

    async def rebuild_instance(self, ctx: dict[str, Any], instance_uuid: str, image_ref: str,
                               evacuate: bool = False, host: str | None = None,
                               migration_id: int | None = None, force: bool = False) -> None:
        await self.rebuild.run(ctx, instance_uuid, image_ref, evacuate, host, migration_id,
                               force)

    def object_backport_versions(self, ctx: dict[str, Any], objinst: dict[str, Any],
                                 object_versions: dict[str, str]) -> dict[str, Any]:
        """The object backporter: ``objinst`` in the version the caller asked for."""
        name = objinst.get("nova_object.name") if isinstance(objinst, dict) else None
        if name not in object_versions:
            raise ValueError(f"no target version for {name!r} in {object_versions!r}")
        return backport(objinst, object_versions[name])

    def check_build_timeouts(self) -> None:
        limit = self.config.timing("build_timeout")
        now = time.time()
        for inst in self.db.instances(vm_state="building"):
            if now - inst["updated_at"] > limit:   # only if nothing moved it meanwhile
                self.set_error(inst["uuid"], BuildTimeout(
                    f"Build of instance {inst['uuid']} timed out: no progress for "
                    f"{limit:g}s (task_state {inst['task_state']}, host {inst['host']})"),
                    {"request_id": inst["request_id"], "attempt": inst["num_attempts"]},
                    "conductor_build_timeout", inst["host"],
                    expected={"vm_state": "building", "updated_at": inst["updated_at"]})
        self._check_moves(now, limit)

    def _check_moves(self, now: float, limit: float) -> None:
        """Moves that made no progress for ``limit``: a migration gone quiet (ERROR, the
        other end told to free its claim), or an instance in a move no migration record
        watches (a rebuild; a resize whose record was never written)."""
        watched = set()
        for migration in self.db.migrations(status=MIGRATION_MOVING):
            watched.add(migration["instance_uuid"])
            try:
                inst = self.db.instance(migration["instance_uuid"])
            except NotFound:
                self.db.update_migration(migration["id"], status="error")
                continue
            if now - max(inst["updated_at"], migration["updated_at"]) > limit:
                fail(self.db, {"request_id": migration["request_id"]}, migration,
                     "conductor_migration_timeout", MigrationTimeout(
                         f"{migration['migration_type'].capitalize()} {migration['id']} of "
                         f"instance {inst['uuid']} made no progress for {limit:g}s (status "
                         f"{migration['status']}, task_state {inst['task_state']})"),
                     self.compute)
        for inst in self.db.instances(task_states=MOVING_TASKS):
            if inst["uuid"] in watched or now - inst["updated_at"] <= limit:
                continue
            ctx = {"request_id": inst["request_id"], "attempt": inst["num_attempts"]}
            what = (f"instance {inst['uuid']} made no progress for {limit:g}s (task_state "
                    f"{inst['task_state']}, host {inst['host']})")
            if self._finish_lost_resize(inst):
                continue
            if inst["task_state"] == "resize_prep":   # nothing moved yet: just stop
                self.db.add_fault_and_update(inst["uuid"], 500, f"MigrationTimeout: {what}",
                                             inst["host"], {"task_state": None})
            else:
                self.set_error(inst["uuid"], RebuildError(what), ctx,
                               "conductor_move_timeout", inst["host"])

    def _finish_lost_resize(self, inst: dict[str, Any]) -> bool:
        """A destination wrote its migration ``finished`` but the reply was lost, so its
        last save (VERIFY_RESIZE) never came: the record says the resize is done, so the
        conductor completes the save instead of failing a finished resize."""
        if inst["task_state"] != "resize_finish":
            return False
        done = self.db.migrations(instance_uuid=inst["uuid"], status=("finished",))
        if not done:
            return False
        m = done[-1]
        try:
            self.db.update_instance(inst["uuid"], "resize_finish", vm_state="resized",
                                    task_state=None, host=m["dest_compute"],
                                    flavor=m["new_flavor"])
        except NotFound:
            return False
        log.warning("instance %s: migration %s is finished but the destination's last "
                    "save was lost: completed it (VERIFY_RESIZE)", inst["uuid"], m["id"])
        return True

    # -- the database proxy ---------------------------------------------------------------------
    def instance_update(self, ctx: dict[str, Any], instance_uuid: str,
                        values: dict[str, Any], expected_task_state: Any = "<any>",
                        expected_vm_state: str | None = None) -> dict[str, Any]:
        return self.db.update_instance(instance_uuid, expected_task_state, expected_vm_state,
                                       **values)

    def instance_destroy(self, ctx: dict[str, Any], instance_uuid: str) -> None:
        self.db.update_instance(instance_uuid, deleted=1, task_state=None,
                                vm_state="deleted")

    def instance_fault_create(self, ctx: dict[str, Any], instance_uuid: str,
                              error: dict[str, Any], host: str,
                              expected_vm_state: str | None = None) -> None:
        """The instance goes to ERROR with this fault, both in one transaction; with
        ``expected_vm_state``, only from that state (UnexpectedTaskState otherwise)."""
        message = f"{error.get('type', 'Exception')}: {error.get('message', '')}"
        self.db.set_error(instance_uuid, int(error.get("code", 500)), message, host,
                          expected={"vm_state": expected_vm_state} if expected_vm_state
                          else None)

    def action_event(self, ctx: dict[str, Any], instance_uuid: str, event: str, host: str,
                     result: str, details: str = "") -> None:
        self.db.add_event(instance_uuid, ctx.get("request_id", ""), event, host,
                          int(ctx.get("attempt") or 0), result, details)

    def migration_update(self, ctx: dict[str, Any], migration_id: int,
                         values: dict[str, Any],
                         expected_status: str | None = None) -> dict[str, Any]:
        return self.db.update_migration(migration_id, expected_status, **values)

    def instances_on_host(self, ctx: dict[str, Any], host: str) -> list[dict[str, Any]]:
        """What a (re)starting compute should hold: its instances with their sizes, and
        the other end of a resize in progress (the source keeps the old flavor until the
        resize is confirmed; the destination holds the new one from ``prep_resize``).
        An instance in ERROR because a move failed (a ``MigrationError`` fault) is still
        on its host and keeps its room there (``failed_move``); one whose build failed
        holds none."""
        moving = {m["instance_uuid"]: m for m in self.db.migrations(
            host=host, status=MIGRATION_IN_PROGRESS) if m["migration_type"] != "evacuation"}
        rows = []
        for inst in self.db.instances():
            row = {"uuid": inst["uuid"], "vm_state": inst["vm_state"],
                   "task_state": inst["task_state"], "request_id": inst["request_id"],
                   "num_attempts": inst["num_attempts"], **FLAVORS[inst["flavor"]]}
            m = moving.get(inst["uuid"])
            if inst["host"] == host:
                if inst["vm_state"] == "error":
                    fault = self.db.fault(inst["uuid"]) or {}
                    row["failed_move"] = fault.get("message", "").startswith(
                        f"{MigrationError.__name__}:")
                rows.append(row)
            elif m is not None and host == m["source_compute"] \
                    and m["status"] != "confirming":      # a confirm frees the source
                rows.append({**row, **FLAVORS[m["old_flavor"]], "migrating": True})
            elif m is not None and host == m["dest_compute"] \
                    and m["status"] != "reverting":       # a revert frees the destination
                rows.append({**row, **FLAVORS[m["new_flavor"]], "migrating": True})
        return rows

    def evacuation_cleanup(self, ctx: dict[str, Any], host: str) -> list[str]:
        """A compute back from the dead: instances evacuated away from it are gone
        from here (Nova's ``_destroy_evacuated_instances``); their evacuations end
        ``completed``. Returns their uuids."""
        done = [m for m in self.db.migrations(host=host, status=("done",))
                if m["migration_type"] == "evacuation" and m["source_compute"] == host]
        for m in done:
            self.db.update_migration(m["id"], "done", status="completed")
        return [m["instance_uuid"] for m in done]

    def service_update(self, ctx: dict[str, Any], binary: str, host: str,
                       object_version: str | None = None) -> None:
        if object_version is not None and not usable_version(object_version):
            raise ValueError(f"object_version {object_version!r} is not an Instance version "
                             f"this cloud can send (1.0 to {Instance.VERSION})")
        self.db.service_update(binary, host, binary, object_version)

    def compute_node_update(self, ctx: dict[str, Any], host: str,
                            resources: dict[str, Any]) -> None:
        self.db.compute_node_update(host, resources)
