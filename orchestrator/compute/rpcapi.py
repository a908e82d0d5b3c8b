"""The client side of the compute service: the only place a cast or call to a compute is
written.

The resize steps are casts when the computes hand the work on among themselves (the
seed's "not yet fully converted" resize), and calls when the conductor runs every step
and waits for each (``orchestrated``: how Nova's later cross-cell resize works)."""
from __future__ import annotations

from typing import Any

from ..messaging.client import RPCClient
from ..messaging.transport import Transport

__all__ = ["ComputeAPI", "SENT_BY_COMPUTES", "OWN_HOST_ARGS", "STEPS"]

# Everything a compute sends, by topic: in a class, all a student's computes may send
# (the bus refuses the rest: ``messaging/curve.py``). tests/unit/test_curve.py reads the
# compute package's calls and checks this table against them.
SENT_BY_COMPUTES: dict[str, tuple[str, ...]] = {
    "conductor": ("action_event", "build_instances", "compute_node_update",
                  "evacuation_cleanup", "instance_destroy", "instance_fault_create",
                  "instance_update", "instances_on_host", "migration_update",
                  "object_backport_versions", "reschedule_migration", "service_update"),
    "scheduler": ("delete_instance_info", "prep_resize", "run_instance",
                  "sync_instance_info", "update_instance_info"),
    "compute": ("finish_resize", "finish_revert_resize", "resize_instance",
                "terminate_instance"),
}
# Of those, the ones that speak for a host, and the argument naming it: a compute speaks
# only for itself (a student's may not report another's service or resources).
OWN_HOST_ARGS: dict[str, str] = {
    "service_update": "host", "compute_node_update": "host", "instances_on_host": "host",
    "evacuation_cleanup": "host", "update_instance_info": "host_name",
    "delete_instance_info": "host_name", "sync_instance_info": "host_name"}


STEPS = ("prep_resize", "resize_instance", "finish_resize")   # a resize's steps, in order


class ComputeAPI:
    """Every argument named, as the compute's methods name them: a misspelt one is a
    TypeError here, in the sender, not a logged error in the compute while the instance
    waits for ``build_timeout``."""

    def __init__(self, transport: Transport):
        self.client = RPCClient(transport, "compute")

    def build_and_run_instance(self, ctx: dict[str, Any], host: str, instance_uuid: str,
                               request_spec: dict[str, Any], retry: dict[str, Any],
                               host_list: list[str] | None = None, flow: str = "conductor",
                               instance: dict[str, Any] | None = None) -> None:
        """Cast the build to ``compute.<host>`` (``host_list``: the alternates)."""
        self.client.prepare(server=host).cast(
            ctx, "build_and_run_instance", instance_uuid=instance_uuid,
            request_spec=request_spec, retry=retry, host_list=host_list, flow=flow,
            instance=instance)

    def prep_resize(self, ctx: dict[str, Any], host: str, instance: dict[str, Any],
                    migration_id: int, flavor: str, retry: dict[str, Any],
                    host_list: list[str] | None = None, flow: str = "conductor") -> None:
        """To the destination: claim and get ready."""
        self.client.prepare(server=host).cast(
            ctx, "prep_resize", instance=instance, migration_id=migration_id, flavor=flavor,
            retry=retry, host_list=host_list, flow=flow)

    def resize_instance(self, ctx: dict[str, Any], host: str, instance: dict[str, Any],
                        migration_id: int, flavor: str) -> None:
        """To the source: send the disk over."""
        self.client.prepare(server=host).cast(
            ctx, "resize_instance", instance=instance, migration_id=migration_id,
            flavor=flavor)

    def finish_resize(self, ctx: dict[str, Any], host: str, instance: dict[str, Any],
                      migration_id: int, flavor: str) -> None:
        """To the destination: start the instance there; it waits in VERIFY_RESIZE."""
        self.client.prepare(server=host).cast(
            ctx, "finish_resize", instance=instance, migration_id=migration_id, flavor=flavor)

    async def step(self, ctx: dict[str, Any], host: str, method: str, timeout: float,
                   instance: dict[str, Any], migration_id: int, flavor: str,
                   retry: dict[str, Any] | None = None,
                   host_list: list[str] | None = None) -> Any:
        """One resize step (:data:`STEPS`) as a call (``orchestrated=True``): the
        conductor waits. Only ``prep_resize`` takes ``retry`` and ``host_list``."""
        if method not in STEPS:
            raise ValueError(f"{method!r} is not a resize step: {', '.join(STEPS)}")
        args: dict[str, Any] = {"instance": instance, "migration_id": migration_id,
                                "flavor": flavor, "orchestrated": True}
        if method == "prep_resize":
            args.update(retry=retry or {}, host_list=host_list)
        elif retry is not None or host_list is not None:
            raise ValueError(f"{method} takes no retry or host_list")
        return await self.client.prepare(server=host, timeout=timeout).call(ctx, method,
                                                                              **args)

    def confirm_resize(self, ctx: dict[str, Any], host: str, instance_uuid: str,
                       migration_id: int) -> None:
        """To the source: free what the instance held there."""
        self.client.prepare(server=host).cast(ctx, "confirm_resize",
                                              instance_uuid=instance_uuid,
                                              migration_id=migration_id)

    async def confirm_resize_and_wait(self, ctx: dict[str, Any], host: str,
                                      instance_uuid: str, migration_id: int,
                                      timeout: float) -> None:
        """The same, as a **call**: the API deleting a resized server waits for the
        source's confirm before it terminates the server (Nova's ``cast=False``)."""
        await self.client.prepare(server=host, timeout=timeout).call(
            ctx, "confirm_resize", instance_uuid=instance_uuid, migration_id=migration_id,
            deleting=True)

    def revert_resize(self, ctx: dict[str, Any], host: str, instance_uuid: str,
                      migration_id: int) -> None:
        """To the destination: undo, then hand back to the source."""
        self.client.prepare(server=host).cast(ctx, "revert_resize",
                                              instance_uuid=instance_uuid,
                                              migration_id=migration_id)

    def finish_revert_resize(self, ctx: dict[str, Any], host: str, instance_uuid: str,
                             migration_id: int) -> None:
        """To the source (which kept its claim): the instance is back."""
        self.client.prepare(server=host).cast(ctx, "finish_revert_resize",
                                              instance_uuid=instance_uuid,
                                              migration_id=migration_id)

    def rebuild_instance(self, ctx: dict[str, Any], host: str, instance: dict[str, Any],
                         image_ref: str, recreate: bool = False,
                         migration_id: int | None = None) -> None:
        """Rebuild on ``host`` (its own instance, or ``recreate`` after an evacuate)."""
        self.client.prepare(server=host).cast(
            ctx, "rebuild_instance", instance=instance, image_ref=image_ref,
            recreate=recreate, migration_id=migration_id)

    def terminate_instance(self, ctx: dict[str, Any], host: str, instance_uuid: str,
                           destroy: bool = True) -> None:
        """Delete the instance on ``host``; ``destroy=False``: only free its claim there."""
        self.client.prepare(server=host).cast(ctx, "terminate_instance",
                                              instance_uuid=instance_uuid, destroy=destroy)
