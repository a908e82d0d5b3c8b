"""A compute's side of resize/migrate and rebuild/evacuate (Nova's compute manager
methods of the same names), served next to the build methods.

Resize / cold migrate, as the seed's conductor left it ("not yet fully converted"):

    conductor --prep_resize--> dest --resize_instance--> source --finish_resize--> dest

``prep_resize`` (dest) claims the new flavor; ``resize_instance`` (source) "copies the
disk"; ``finish_resize`` (dest) starts the instance there: VERIFY_RESIZE. The source keeps
its claim until ``confirm_resize``; ``revert_resize`` (dest) gives the new claim back and
``finish_revert_resize`` (source) puts the instance back. A failed ``prep_resize`` hands
the move back to the conductor as a failed build does, with the same message the API
sent, ``migrate_server``; but, as in Nova, it **calls** it and waits: the answer says
whether the move went on elsewhere or found no host or attempt left (``NoValidHost``;
the server is then in ERROR on its source with this compute's reason: Nova's
``_reschedule_resize_or_reraise``).
With ``orchestrated`` (the conductor calls each step), a step returns instead of casting
the next one, and a failure goes back to the conductor as the call's error.

Failure injection: ``reschedule``, ``fatal`` and ``crash`` hit ``prep_resize`` (a failure
there is rescheduled, as a build's). ``fatal`` and ``crash`` also hit ``resize_instance``
(source) and ``finish_resize`` (destination), which nothing reschedules: the instance is
half-moved. ``fatal`` ends it in ERROR on the source with a ``ResizeError`` fault and the
migration ``error``; ``crash`` ends it through the conductor's timeout. In the seed's
flow the failing compute does that itself, through the conductor's database proxy: a
failing destination frees its own room, a failing source casts the destination to free
it (one more hop that bypasses the conductor). Orchestrated, the error comes back to the
conductor as its call's reply, and the conductor cleans up (``rollback.fail``).

``rebuild_instance`` re-images the instance in place, or with ``recreate`` (evacuate)
claims it here after its own host died.
"""
from __future__ import annotations

import logging
from typing import Any

from ..config import FLAVORS
from ..exception import MigrationError, RebuildError, RescheduledException, ResizeError
from ..messaging.protocol import MessagingTimeout, RemoteError
from .host import ComputeHost

__all__ = ["MigrationManager"]

log = logging.getLogger("orchestrator.compute")


class MigrationManager:
    """The resize and rebuild RPC methods of a compute, on its ``ComputeHost``."""

    def __init__(self, node: ComputeHost):
        self.node = node

    # -- resize / cold migrate ------------------------------------------------------------------
    async def prep_resize(self, ctx: dict[str, Any], instance: dict[str, Any],
                          migration_id: int, flavor: str, retry: dict[str, Any],
                          host_list: list[str] | None = None, orchestrated: bool = False,
                          flow: str = "conductor") -> None:
        node = self.node
        inst = await node.load_instance(ctx, instance)
        attempt = int(retry.get("num_attempts") or 1)
        ctx = {**ctx, "instance_uuid": inst.uuid, "attempt": attempt}
        if inst.uuid in node.tracker.claims:   # a duplicated delivery: claimed here already
            return log.info("prep_resize of %s already here: duplicate ignored", inst.uuid)
        try:
            node.tracker.claim(inst.uuid, FLAVORS[flavor])
            verdict = node.verdict(f"{inst.uuid}/{migration_id}", attempt)
            await node.pause()
            if verdict.outcome == "crash":
                node.crash(f"while preparing the resize of {inst.uuid}")
            if verdict.outcome is not None:
                raise RescheduledException(
                    f"Resize of instance {inst.uuid} was re-scheduled: injected failure "
                    f"in prep_resize on {node.host}")
        except RescheduledException as exc:
            await node.release(ctx, inst.uuid)
            await node.event(ctx, inst.uuid, "compute_prep_resize", "Error",
                             f"{type(exc).__name__}: {exc}")
            if orchestrated:
                raise
            return await self._reschedule(ctx, inst.uuid, flavor, migration_id, retry,
                                          host_list, exc, flow)
        await node.report_resources(ctx)
        await node.event(ctx, inst.uuid, "compute_prep_resize", "Success")
        if not orchestrated:
            node.compute.resize_instance(ctx, inst.host, instance=instance,
                                         migration_id=migration_id, flavor=flavor)

    async def _reschedule(self, ctx: dict[str, Any], uuid: str, flavor: str,
                          migration_id: int, retry: dict[str, Any],
                          host_list: list[str] | None, exc: Exception, flow: str) -> None:
        node = self.node
        next_ctx = {**ctx, "attempt": ctx["attempt"] + 1}
        reason = f"{type(exc).__name__}: {exc}"
        retry = {**retry, "exc": reason}
        if flow == "legacy":     # the old process: a cast to the scheduler, nobody waits
            return node.scheduler.prep_resize(next_ctx, uuid, flavor, retry, migration_id)
        try:
            await node.conductor.reschedule_migration(next_ctx, uuid, flavor, retry, host_list,
                                                      migration_id,
                                                      node.config.timing("build_timeout"))
        except MessagingTimeout:   # the conductor's move timeout ends it if nobody can
            log.warning("rescheduling the resize of %s: no answer from the conductor", uuid)
        except RemoteError as err:
            # nowhere left to go: the conductor ended the migration and put the server in
            # ERROR with our reason before it answered (Nova's compute writes that ERROR
            # itself on hearing this; the conductor's write cannot be lost with the answer)
            log.info("resize of %s could not be rescheduled: %s", uuid, err)

    async def resize_instance(self, ctx: dict[str, Any], instance: dict[str, Any],
                              migration_id: int, flavor: str,
                              orchestrated: bool = False) -> None:
        """On the source: power off and send the disk to the destination."""
        node = self.node
        inst = await node.load_instance(ctx, instance)
        ctx = {**ctx, "instance_uuid": inst.uuid}
        await node.save(ctx, inst.uuid, {"task_state": "resize_migrating"}, "resize_prep")
        await node.conductor.migration_update(ctx, migration_id, {"status": "migrating"},
                                              "pre-migrating")
        await node.pause()
        if await self._step_failed(ctx, inst.uuid, migration_id, "resize_instance",
                                   "migrating", orchestrated):
            return
        await node.save(ctx, inst.uuid, {"task_state": "resize_migrated"}, "resize_migrating")
        migration = await node.conductor.migration_update(ctx, migration_id,
                                                          {"status": "post-migrating"},
                                                          "migrating")
        await node.event(ctx, inst.uuid, "compute_resize_instance", "Success")
        if not orchestrated:
            node.compute.finish_resize(ctx, migration["dest_compute"], instance=instance,
                                       migration_id=migration_id, flavor=flavor)

    async def finish_resize(self, ctx: dict[str, Any], instance: dict[str, Any],
                            migration_id: int, flavor: str,
                            orchestrated: bool = False) -> None:
        """On the destination: start the instance here, with the new flavor."""
        node = self.node
        inst = await node.load_instance(ctx, instance)
        ctx = {**ctx, "instance_uuid": inst.uuid}
        await node.save(ctx, inst.uuid, {"task_state": "resize_finish"}, "resize_migrated")
        await node.pause()
        if await self._step_failed(ctx, inst.uuid, migration_id, "finish_resize",
                                   "post-migrating", orchestrated):
            return
        # the record first: whoever sees VERIFY_RESIZE can confirm at once (as Nova)
        await node.conductor.migration_update(ctx, migration_id, {"status": "finished"},
                                              "post-migrating")
        node.scheduler.update_instance_info(ctx, node.host, [inst.uuid])    # before the rest state
        await node.save(ctx, inst.uuid, {"vm_state": "resized", "task_state": None,
                                         "host": node.host, "flavor": flavor}, "resize_finish")
        await node.event(ctx, inst.uuid, "compute_finish_resize", "Success")

    async def _step_failed(self, ctx: dict[str, Any], uuid: str, migration_id: int,
                           step: str, status: str, orchestrated: bool) -> bool:
        """Failure injection after ``prep_resize``: ``crash`` kills this compute, ``fatal``
        fails the step. Orchestrated, the error goes back to the conductor (raised);
        otherwise this compute ends the migration itself and returns True."""
        node = self.node
        verdict = node.verdict(f"{uuid}/{migration_id}/{step}", 1)
        if verdict.outcome == "crash":
            node.crash(f"during {step} of {uuid}")
        if verdict.outcome != "fatal":
            return False
        exc = ResizeError(f"Resize error: injected failure in {step} on {node.host}")
        await node.event(ctx, uuid, f"compute_{step}", "Error", f"ResizeError: {exc}")
        if orchestrated:
            raise exc
        # the record first, only from the status this step runs in (a migration that
        # ended meanwhile, by the conductor's timeout, stays as it ended); then the
        # destination's room, freed before anything else can fail; then ERROR with its
        # fault. The instance's host (the source) keeps its room until it is deleted.
        migration = await node.conductor.migration_update(ctx, migration_id,
                                                          {"status": "error"}, status)
        if node.host == migration["dest_compute"]:
            await node.release(ctx, uuid)
        else:
            node.compute.terminate_instance(ctx, migration["dest_compute"], uuid,
                                            destroy=False)
        await node.conductor.instance_fault_create(
            ctx, uuid, {"type": MigrationError.__name__, "code": 500,
                        "message": f"ResizeError: {exc}"}, node.host)
        return True

    async def confirm_resize(self, ctx: dict[str, Any], instance_uuid: str,
                             migration_id: int, deleting: bool = False) -> None:
        """On the source: the user is happy; free what the instance held here."""
        node = self.node
        await node.release(ctx, instance_uuid)
        await node.conductor.migration_update(ctx, migration_id, {"status": "confirmed"},
                                              "confirming")
        node.scheduler.delete_instance_info(ctx, node.host, instance_uuid)  # before the rest
        if not deleting:
            await node.save(ctx, instance_uuid, {"vm_state": "active", "task_state": None},
                            "resize_confirming")
            await node.event(ctx, instance_uuid, "compute_confirm_resize", "Success")

    async def revert_resize(self, ctx: dict[str, Any], instance_uuid: str,
                            migration_id: int) -> None:
        """On the destination: give the new flavor's claim back, hand over to the source."""
        node = self.node
        await node.release(ctx, instance_uuid)
        await node.event(ctx, instance_uuid, "compute_revert_resize", "Success")
        migration = await node.conductor.migration_update(ctx, migration_id, {},
                                                          "reverting")
        node.compute.finish_revert_resize(ctx, migration["source_compute"],
                                          instance_uuid=instance_uuid,
                                          migration_id=migration_id)

    async def finish_revert_resize(self, ctx: dict[str, Any], instance_uuid: str,
                                   migration_id: int) -> None:
        """On the source (which kept its claim): the instance is back, old flavor."""
        node = self.node
        migration = await node.conductor.migration_update(ctx, migration_id,
                                                          {"status": "reverted"}, "reverting")
        await node.save(ctx, instance_uuid, {"vm_state": "active", "task_state": None,
                                             "host": node.host,
                                             "flavor": migration["old_flavor"]},
                        "resize_reverting")
        await node.event(ctx, instance_uuid, "compute_finish_revert_resize", "Success")

    # -- rebuild / evacuate -----------------------------------------------------------------------
    async def rebuild_instance(self, ctx: dict[str, Any], instance: dict[str, Any],
                               image_ref: str, recreate: bool = False,
                               migration_id: int | None = None) -> None:
        node = self.node
        inst = await node.load_instance(ctx, instance)
        node.building.add(inst.uuid)    # ahead of the database until done: the audit waits
        try:
            await self._rebuild(ctx, inst, image_ref, recreate, migration_id)
        finally:
            node.building.discard(inst.uuid)

    async def _rebuild(self, ctx: dict[str, Any], inst: Any, image_ref: str, recreate: bool,
                       migration_id: int | None) -> None:
        node = self.node
        ctx = {**ctx, "instance_uuid": inst.uuid, "attempt": 1}
        try:   # evacuate: claim here; rebuild: claim again (an ERROR instance had none)
            node.tracker.claim(inst.uuid, FLAVORS[inst.flavor])
        except RescheduledException as exc:   # rebuilds are not rescheduled
            await node.event(ctx, inst.uuid, "compute_rebuild_instance", "Error", str(exc))
            if migration_id is not None:
                await node.conductor.migration_update(ctx, migration_id, {"status": "failed"})
            return await node.abort(ctx, inst.uuid, RebuildError(
                f"Rebuild of {inst.uuid} on {node.host} failed: {exc}"), expected_vm_state=None)
        await node.report_resources(ctx)
        await node.save(ctx, inst.uuid, {"task_state": "rebuild_spawning", "host": node.host},
                        "rebuilding")
        await node.pause()
        if migration_id is not None:    # the record first, then the state users wait on
            await node.conductor.migration_update(ctx, migration_id, {"status": "done"},
                                                  "pre-migrating")
        node.scheduler.update_instance_info(ctx, node.host, [inst.uuid])    # before the rest state
        await node.save(ctx, inst.uuid, {"vm_state": "active", "task_state": None,
                                         "image": image_ref}, "rebuild_spawning")
        await node.event(ctx, inst.uuid, "compute_rebuild_instance", "Success")
        if recreate and inst.host and inst.host != node.host:
            # the dead host may have come back meanwhile and claimed it: let it go there
            node.compute.terminate_instance(ctx, inst.host, inst.uuid, destroy=False)

