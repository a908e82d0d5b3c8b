"""The rebuild task: rebuild an instance from an image on its own host, or **evacuate**
it: its compute is down, so rebuild it somewhere else (Nova's ``rebuild_instance`` in the
conductor, with ``recreate``).

- rebuild: **cast** ``rebuild_instance`` to the instance's host. With a new image, first
  **call** ``select_destinations`` for that host alone (``requested_destination``, with
  only the filters that run on rebuild), as Nova does to check the image against the
  host; with the same image, no scheduler.
- evacuate: the migration record (``evacuation``) was written by the API. **Call**
  ``select_destinations`` ignoring the dead host (for the admin's host alone if one was
  named: Nova checks it so since microversion 2.29), then **cast** ``rebuild_instance``
  with ``recreate`` to the chosen compute; a host the admin *forced* (``force``, or any
  named host before 2.29) is cast to without the scheduler. No reschedule: if that host
  cannot take it, the instance goes to ERROR (as in Nova).

If the scheduler finds no host, nothing moved: the instance stays where it was with a
fault saying why (the evacuation ends ``error``). Nova writes ERROR here.
"""
from __future__ import annotations

from typing import Any

from ...config import FLAVORS
from ...db import NotFound, UnexpectedTaskState
from ...manager import describe_error
from ...messaging.protocol import MessagingTimeout, RemoteError
from ...rollback import rollback
from ...objects.pinning import instance_primitive
from .base import Task

__all__ = ["RebuildTask", "EVENT"]

EVENT = "conductor_rebuild_instance"


class RebuildTask(Task):
    async def run(self, ctx: dict[str, Any], instance_uuid: str, image_ref: str,
                  evacuate: bool = False, host: str | None = None,
                  migration_id: int | None = None, force: bool = False) -> None:
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
        if not evacuate and image_ref == inst["image"]:
            dest = inst["host"]     # the same image: nothing for the scheduler to check
        elif evacuate and host and force:
            dest = host             # the admin forced the host (Nova before 2.29, or force)
        else:
            dest = await self._select(ctx, inst, migration, host if evacuate else inst["host"],
                                      rebuild=not evacuate)
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
                      migration: dict[str, Any] | None, requested: str | None,
                      rebuild: bool) -> str | None:
        """The host to rebuild on (``requested`` alone, if given), or None after giving
        up: the instance stays where it was, with a fault (and its migration ``error``)."""
        config = self.config()
        spec = {**FLAVORS[inst["flavor"]], "flavor": inst["flavor"], "image": inst["image"],
                "availability_zone": inst["availability_zone"], "num_instances": 1,
                "ignore_hosts": [] if rebuild else [inst["host"]],
                "requested_destination": requested, "rebuild": rebuild,
                "retry": {"num_attempts": 1, "hosts": []}}
        try:
            [hosts] = await self.scheduler.select_destinations(
                ctx, spec, [inst["uuid"]], timeout=config.timing("scheduler_timeout"))
        except (RemoteError, MessagingTimeout) as exc:
            if migration is not None:
                rollback(self.db, ctx, migration, EVENT, exc)
            else:
                self._stop_rebuild(ctx, inst, exc)
            return None
        return hosts[0]

    def _stop_rebuild(self, ctx: dict[str, Any], inst: dict[str, Any],
                      exc: BaseException) -> None:
        """A rebuild the scheduler refused: the instance keeps its image, with a fault."""
        name, text = describe_error(exc)
        try:     # only from where this rebuild left it (a duplicate may be further on)
            self.db.add_fault_and_update(inst["uuid"], getattr(exc, "code", 500),
                                         f"{name}: {text}", None, {"task_state": None},
                                         expected_task_state="rebuilding")
        except (NotFound, UnexpectedTaskState):
            return
        self.db.add_event(inst["uuid"], ctx.get("request_id", ""), EVENT, None, 1, "Error",
                          f"{name}: {text}")
