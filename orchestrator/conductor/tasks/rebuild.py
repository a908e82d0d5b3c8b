"""The rebuild task: rebuild an instance from an image on its own host, or **evacuate**
it: its compute is down, so rebuild it somewhere else (Nova's ``rebuild_instance`` in the
conductor, with ``recreate``).

- rebuild: **cast** ``rebuild_instance`` to the instance's host; no scheduler.
- evacuate: the migration record (``evacuation``) was written by the API. **Call**
  ``select_destinations`` ignoring the dead host (unless the admin named one), then
  **cast** ``rebuild_instance`` with ``recreate`` to the chosen compute. No reschedule:
  if that host cannot take it, the instance goes to ERROR (as in Nova).
"""
from __future__ import annotations

from typing import Any

from ...config import FLAVORS
from ...db import NotFound, UnexpectedTaskState
from ...messaging.protocol import MessagingTimeout, RemoteError
from ...migrations import rollback
from ...objects.pinning import instance_primitive
from .base import Task

__all__ = ["RebuildTask", "EVENT"]

EVENT = "conductor_rebuild_instance"


class RebuildTask(Task):
    async def run(self, ctx: dict[str, Any], instance_uuid: str, image_ref: str,
                  evacuate: bool = False, host: str | None = None,
                  migration_id: int | None = None) -> None:
        try:
            inst = self.db.instance(instance_uuid)
        except NotFound:
            return
        ctx = {**ctx, "instance_uuid": instance_uuid, "attempt": 1}
        migration = None
        if migration_id is not None:
            try:    # once: a duplicated rebuild_instance finds it taken and stops
                migration = self.db.update_migration(migration_id, expected_status="accepted",
                                                     status="pre-migrating")
            except UnexpectedTaskState:
                return
        if not evacuate:
            dest = inst["host"]
        elif host:
            dest = host   # the admin named the host: no scheduler (Nova's force)
        else:
            dest = await self._select(ctx, inst, migration)
            if dest is None:
                return
        if migration is not None:
            migration = self.db.update_migration(migration["id"], dest_compute=dest)
        self.db.add_event(instance_uuid, ctx.get("request_id", ""), EVENT, dest, 1,
                          "Success")
        config = self.config()
        self.compute.rebuild_instance(
            ctx, dest, instance=instance_primitive(self.db, config, inst, [dest], migration),
            image_ref=image_ref, recreate=evacuate,
            migration_id=None if migration is None else migration["id"])

    async def _select(self, ctx: dict[str, Any], inst: dict[str, Any],
                      migration: dict[str, Any] | None) -> str | None:
        config = self.config()
        spec = {**FLAVORS[inst["flavor"]], "flavor": inst["flavor"], "image": inst["image"],
                "availability_zone": inst["availability_zone"], "num_instances": 1,
                "ignore_hosts": [inst["host"]], "retry": {"num_attempts": 1, "hosts": []}}
        try:
            [hosts] = await self.scheduler.select_destinations(
                ctx, spec, [inst["uuid"]], timeout=config.timing("scheduler_timeout"))
        except (RemoteError, MessagingTimeout) as exc:
            if migration is not None:
                rollback(self.db, ctx, migration, EVENT, exc)
            return None
        return hosts[0]
