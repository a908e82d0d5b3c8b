"""The client side of the compute service: the only place a cast or call to a compute is
written.

The resize steps are casts when the computes hand the work on among themselves (the
seed's "not yet fully converted" resize), and calls when the conductor runs every step
and waits for each (``orchestrated``: how Nova's later cross-cell resize works)."""
from __future__ import annotations

from typing import Any

from ..messaging.client import RPCClient
from ..messaging.transport import Transport

__all__ = ["ComputeAPI", "SENT_BY_COMPUTES", "OWN_HOST_ARGS"]

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


class ComputeAPI:
    def __init__(self, transport: Transport):
        self.client = RPCClient(transport, "compute")

    def build_and_run_instance(self, ctx: dict[str, Any], host: str, **kwargs: Any) -> None:
        """Cast the build to ``compute.<host>``: instance_uuid, request_spec, retry,
        host_list (alternates), flow."""
        self.client.prepare(server=host).cast(ctx, "build_and_run_instance", **kwargs)

    def prep_resize(self, ctx: dict[str, Any], host: str, **kwargs: Any) -> None:
        """To the destination: claim and get ready (instance, migration_id, flavor, retry,
        host_list, request_spec)."""
        self.client.prepare(server=host).cast(ctx, "prep_resize", **kwargs)

    def resize_instance(self, ctx: dict[str, Any], host: str, **kwargs: Any) -> None:
        """To the source: send the disk over (instance, migration_id, flavor)."""
        self.client.prepare(server=host).cast(ctx, "resize_instance", **kwargs)

    def finish_resize(self, ctx: dict[str, Any], host: str, **kwargs: Any) -> None:
        """To the destination: start the instance there; it waits in VERIFY_RESIZE."""
        self.client.prepare(server=host).cast(ctx, "finish_resize", **kwargs)

    async def step(self, ctx: dict[str, Any], host: str, method: str, timeout: float,
                   **kwargs: Any) -> Any:
        """One resize step as a call (``orchestrated=True``): the conductor waits."""
        return await self.client.prepare(server=host, timeout=timeout).call(
            ctx, method, orchestrated=True, **kwargs)

    def confirm_resize(self, ctx: dict[str, Any], host: str, **kwargs: Any) -> None:
        """To the source: free what the instance held there."""
        self.client.prepare(server=host).cast(ctx, "confirm_resize", **kwargs)

    async def confirm_resize_and_wait(self, ctx: dict[str, Any], host: str,
                                      instance_uuid: str, migration_id: int,
                                      timeout: float) -> None:
        """The same, as a **call**: the API deleting a resized server waits for the
        source's confirm before it terminates the server (Nova's ``cast=False``)."""
        await self.client.prepare(server=host, timeout=timeout).call(
            ctx, "confirm_resize", instance_uuid=instance_uuid, migration_id=migration_id,
            deleting=True)

    def revert_resize(self, ctx: dict[str, Any], host: str, **kwargs: Any) -> None:
        """To the destination: undo, then hand back to the source."""
        self.client.prepare(server=host).cast(ctx, "revert_resize", **kwargs)

    def finish_revert_resize(self, ctx: dict[str, Any], host: str, **kwargs: Any) -> None:
        self.client.prepare(server=host).cast(ctx, "finish_revert_resize", **kwargs)

    def rebuild_instance(self, ctx: dict[str, Any], host: str, **kwargs: Any) -> None:
        """Rebuild on ``host`` (its own instance, or ``recreate`` after an evacuate)."""
        self.client.prepare(server=host).cast(ctx, "rebuild_instance", **kwargs)

    def terminate_instance(self, ctx: dict[str, Any], host: str, instance_uuid: str,
                           destroy: bool = True) -> None:
        """Delete the instance on ``host``; ``destroy=False``: only free its claim there."""
        self.client.prepare(server=host).cast(ctx, "terminate_instance",
                                              instance_uuid=instance_uuid, destroy=destroy)
