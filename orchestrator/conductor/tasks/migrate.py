"""The migration task: cold migrate and resize, run by the conductor (Nova's
``MigrationTask``). The seed: "Rebuild, resize/migrate, and building an instance are
managed here", and "the resize/migrate process has not yet been fully converted".

1. First pass: a migration record (``pre-migrating``, source = where the instance runs).
2. Retry bookkeeping, as for builds: ``num_attempts`` per pass; past ``max_attempts``
   the migration is rolled back.
3. **Call** ``scheduler.select_destinations`` for the new flavor, ignoring the source
   host (no resize to the same host), and wait. With ``alternates``, a reschedule takes
   the next alternate instead.
4. **Cast** ``prep_resize`` to the destination compute. From there the computes hand the
   work on among themselves: the destination casts ``resize_instance`` to the source, the
   source casts ``finish_resize`` to the destination: the hops that bypass the conductor.
   If ``prep_resize`` fails, the destination hands the move back here: the same
   ``migrate_server``, but a **call** (as Nova's compute does): the reschedule loop. With
   no host or attempt left, the migration ends ``error``, the server goes to ERROR with
   the destination's reason, and the call answers ``NoValidHost``. (In Nova the waiting
   destination writes that ERROR when it hears the answer; here the conductor writes it
   before answering, from ``resize_prep`` only, so a lost or duplicated answer cannot
   leave the server waiting or change how it ends.)
   With ``resize_via_conductor``, the conductor instead *calls* each step in turn and
   waits (how Nova later ran cross-cell resize): no compute talks to another.

A migration the API asked for that cannot go anywhere is rolled back: the instance stays
ACTIVE on its source, with a fault saying why, and the migration record ends ``error``.
"""
from __future__ import annotations

import logging
from typing import Any

from ...config import FLAVORS, LabConfig
from ...db import NotFound, UnexpectedTaskState
from ...exception import MigrationError, NoValidHost
from ...retry import exceeded, exhausted, populate_retry, tried
from ...manager import describe_error, record_error
from ...messaging.protocol import MessagingTimeout, RemoteError
from ...rollback import fail, rollback, still_preparing
from ...objects.pinning import instance_primitive
from .base import Task

log = logging.getLogger("orchestrator.conductor")

__all__ = ["MigrationTask", "EVENT"]

EVENT = "conductor_migrate_server"
RESCHEDULABLE = ("RescheduledException", "ComputeResourcesUnavailable", "MessagingTimeout")


class MigrationTask(Task):
    async def run(self, ctx: dict[str, Any], instance_uuid: str, flavor: str,
                  retry: dict[str, Any] | None = None, host_list: list[str] | None = None,
                  migration_id: int | None = None, handed_back: bool = False) -> None:
        """One pass. ``handed_back``: a destination's failed ``prep_resize`` called us and
        waits; a pass that cannot go on raises NoValidHost to it instead of rolling the
        instance back (the destination writes the ERROR)."""
        config = self.config()
        try:
            inst = self.db.instance(instance_uuid)
        except NotFound:
            return self._abandon(migration_id)   # deleted meanwhile
        retry = populate_retry(retry)
        ctx = {**ctx, "instance_uuid": instance_uuid, "attempt": retry["num_attempts"]}
        if migration_id is not None and not still_preparing(self.db, inst, migration_id):
            return   # a late reschedule of a migration that already ended (timed out...)
        if migration_id is None:
            try:     # once: a duplicated migrate_server finds this record and stops
                migration = self.db.create_migration(
                    instance_uuid, "migration" if flavor == inst["flavor"] else "resize",
                    inst["host"], inst["flavor"], flavor, ctx.get("request_id", ""),
                    expected_task_state="resize_prep")
            except UnexpectedTaskState as exc:
                return log.info("migrate_server for %s refused: %s", instance_uuid, exc)
        else:
            migration = self.db.migration(migration_id)
        if retry["num_attempts"] > config.max_attempts:
            return self._give_up(ctx, migration, retry, handed_back, exceeded(
                config.max_attempts, instance_uuid, retry.get("exc", "unknown")))
        if migration_id is None:
            self.db.update_instance(instance_uuid, num_attempts=retry["num_attempts"])
        elif not self.db.claim_attempt(instance_uuid, retry["num_attempts"],
                                       task_state="resize_prep"):
            return   # this reschedule's duplicate went first
        spec = {**FLAVORS[flavor], "flavor": flavor, "image": inst["image"],
                "availability_zone": inst["availability_zone"], "num_instances": 1,
                "ignore_hosts": [migration["source_compute"]], "retry": retry}
        hosts = await self._destinations(ctx, config, migration, spec, retry, host_list,
                                         handed_back)
        if hosts is None:
            return
        dest, alternates = hosts[0], hosts[1:]
        migration = self.db.update_migration(migration["id"], dest_compute=dest)
        self.db.add_event(instance_uuid, ctx.get("request_id", ""), EVENT, dest,
                          ctx["attempt"], "Success")
        retry = tried(retry, dest)
        args = {"migration_id": migration["id"], "flavor": flavor}
        if config.resize_via_conductor:
            return await self._orchestrate(ctx, config, migration, args, retry, alternates)
        self.compute.prep_resize(ctx, dest, instance=self._primitive(migration),
                                 retry=retry, host_list=alternates, **args)

    async def _destinations(self, ctx: dict[str, Any], config: LabConfig,
                            migration: dict[str, Any], spec: dict[str, Any],
                            retry: dict[str, Any], host_list: list[str] | None,
                            handed_back: bool) -> list[str] | None:
        """The destination first, then alternates; None (after giving up) if none."""
        if config.alternates and host_list is not None and retry["num_attempts"] > 1:
            left = [h for h in host_list if h not in retry["hosts"]]
            if left:
                return left
            return self._give_up(ctx, migration, retry, handed_back, exhausted(
                f"migration of instance {migration['instance_uuid']}", retry.get("exc")))
        try:
            selections = await self.scheduler.select_destinations(
                ctx, spec, [migration["instance_uuid"]],
                return_alternates=config.alternates,
                timeout=config.timing("scheduler_timeout"))
        except (RemoteError, MessagingTimeout) as exc:
            return self._give_up(ctx, migration, retry, handed_back, exc)
        return selections[0]

    def _give_up(self, ctx: dict[str, Any], migration: dict[str, Any],
                 retry: dict[str, Any], handed_back: bool, exc: BaseException) -> None:
        """No host or attempt left. Asked by the API: roll back (ACTIVE on the source, a
        fault). Handed back by a destination that waits: the migration ends ``error``, the
        server goes to ERROR on its source with the destination's reason (from
        ``resize_prep`` only: a duplicate's answer changes nothing), and the destination
        hears ``NoValidHost``, as Nova's conductor answers it."""
        if not handed_back:
            return rollback(self.db, ctx, migration, EVENT, exc)
        name, text = describe_error(exc)
        kind = "cold migrate" if migration["migration_type"] == "migration" else "resize"
        answer = NoValidHost(f"No valid host found for {kind}: {name}: {text}")
        self.db.update_migration(migration["id"], status="error")   # first, as fail() does
        failed_on = (retry.get("hosts") or [None])[-1]
        record_error(self.db, migration["instance_uuid"], MigrationError(
            f"{retry.get('exc', 'unknown')} (rescheduling failed: NoValidHost: {answer})"),
            ctx, EVENT, failed_on, expected={"task_state": "resize_prep"})
        raise answer

    def _primitive(self, migration: dict[str, Any]) -> dict[str, Any]:
        """The copy that travels dest -> source -> dest: readable by both ends."""
        inst = self.db.instance(migration["instance_uuid"])
        return instance_primitive(self.db, self.config(), inst,
                                  [migration["source_compute"], migration["dest_compute"]],
                                  migration)

    async def _orchestrate(self, ctx: dict[str, Any], config: LabConfig,
                           migration: dict[str, Any], args: dict[str, Any],
                           retry: dict[str, Any], alternates: list[str]) -> None:
        """``resize_via_conductor``: every step is a call from here, so no compute casts
        to another; a failed ``prep_resize`` is rescheduled right here."""
        timeout = config.timing("build_timeout")
        source, dest = migration["source_compute"], migration["dest_compute"]
        try:
            await self.compute.step(ctx, dest, "prep_resize", timeout, retry=retry,
                                    instance=self._primitive(migration),
                                    host_list=alternates, **args)
        except (RemoteError, MessagingTimeout) as exc:
            name, text = describe_error(exc)
            if name not in RESCHEDULABLE:
                return rollback(self.db, ctx, migration, EVENT, exc)
            return await self.run(ctx, migration["instance_uuid"], args["flavor"],
                                  {**retry, "exc": f"{name}: {text}"}, alternates,
                                  migration["id"])
        try:
            for host, method in ((source, "resize_instance"), (dest, "finish_resize")):
                await self.compute.step(ctx, host, method, timeout,
                                        instance=self._primitive(migration), **args)
        except (RemoteError, MessagingTimeout) as exc:
            fail(self.db, ctx, migration, EVENT, exc, self.compute)

    def _abandon(self, migration_id: int | None) -> None:
        if migration_id is not None:
            try:
                self.db.update_migration(migration_id, status="error")
            except NotFound:
                pass
