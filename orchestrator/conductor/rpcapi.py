"""The client side of the conductor: the only place a cast or call to it is written.

``build_instances`` is a cast: the API (and a compute that reschedules) hands the work
over and moves on. The database-proxy methods are calls: a compute waits for its save to
land, as Nova's objects do through ``object_action``."""
from __future__ import annotations

from typing import Any

from ..messaging.client import RPCClient
from ..messaging.transport import Transport

__all__ = ["ConductorAPI", "DB_PROXY_METHODS"]

# The conductor's database-proxy methods: how computes save anything at all.
DB_PROXY_METHODS = frozenset({"instance_update", "instance_destroy", "instance_fault_create",
                              "action_event", "service_update", "compute_node_update",
                              "instances_on_host", "migration_update",
                              "evacuation_cleanup"})


class ConductorAPI:
    def __init__(self, transport: Transport, timeout: float | None = None):
        self.client = RPCClient(transport, "conductor", timeout=timeout)

    def build_instances(self, ctx: dict[str, Any], instance_uuids: list[str],
                        request_spec: dict[str, Any], retry: dict[str, Any] | None = None,
                        host_lists: list[list[str]] | None = None) -> None:
        self.client.cast(ctx, "build_instances", instance_uuids=instance_uuids,
                         request_spec=request_spec, retry=retry, host_lists=host_lists)

    def migrate_server(self, ctx: dict[str, Any], instance_uuid: str, flavor: str) -> None:
        """Cold migrate (``flavor`` = the current one) or resize: a **cast** from the API,
        which answers 202 at once (Nova's ``do_cast=True``)."""
        self.client.cast(ctx, "migrate_server", instance_uuid=instance_uuid, flavor=flavor)

    async def reschedule_migration(self, ctx: dict[str, Any], instance_uuid: str,
                                   flavor: str, retry: dict[str, Any],
                                   host_list: list[str] | None, migration_id: int,
                                   timeout: float) -> None:
        """A destination whose ``prep_resize`` failed hands the move back: the same
        ``migrate_server``, but a **call** (Nova's compute calls it and waits), so the
        compute hears whether the reschedule went somewhere (the reply) or failed
        (``RemoteError``: NoValidHost) and can still report its own error."""
        await self.client.prepare(timeout=timeout).call(
            ctx, "migrate_server", instance_uuid=instance_uuid, flavor=flavor, retry=retry,
            host_list=host_list, migration_id=migration_id)

    def rebuild_instance(self, ctx: dict[str, Any], instance_uuid: str, image_ref: str,
                         evacuate: bool = False, host: str | None = None,
                         migration_id: int | None = None, force: bool = False) -> None:
        """Rebuild in place, or (``evacuate``) somewhere else because the host is down: to
        ``host`` if the admin named one, checked by the scheduler unless ``force``."""
        self.client.cast(ctx, "rebuild_instance", instance_uuid=instance_uuid,
                         image_ref=image_ref, evacuate=evacuate, host=host,
                         migration_id=migration_id, force=force)

    async def object_backport_versions(self, ctx: dict[str, Any], objinst: dict[str, Any],
                                       object_versions: dict[str, str]) -> dict[str, Any]:
        """An old service got an object newer than it understands: the conductor (which
        runs the newest code) answers with the object in the versions the caller knows."""
        return await self.client.call(ctx, "object_backport_versions", objinst=objinst,
                                      object_versions=object_versions)

    # -- the database proxy -------------------------------------------------------------------
    async def instance_update(self, ctx: dict[str, Any], instance_uuid: str,
                              values: dict[str, Any], expected_task_state: Any = "<any>",
                              expected_vm_state: str | None = None) -> dict[str, Any]:
        return await self.client.call(ctx, "instance_update", instance_uuid=instance_uuid,
                                      values=values, expected_task_state=expected_task_state,
                                      expected_vm_state=expected_vm_state)

    async def instance_destroy(self, ctx: dict[str, Any], instance_uuid: str) -> None:
        await self.client.call(ctx, "instance_destroy", instance_uuid=instance_uuid)

    async def instance_fault_create(self, ctx: dict[str, Any], instance_uuid: str,
                                    error: dict[str, Any], host: str,
                                    expected_vm_state: str | None = None) -> None:
        await self.client.call(ctx, "instance_fault_create", instance_uuid=instance_uuid,
                               error=error, host=host, expected_vm_state=expected_vm_state)

    async def action_event(self, ctx: dict[str, Any], instance_uuid: str, event: str,
                           host: str, result: str, details: str = "") -> None:
        await self.client.call(ctx, "action_event", instance_uuid=instance_uuid,
                               event=event, host=host, result=result, details=details)

    async def instances_on_host(self, ctx: dict[str, Any], host: str) -> list[dict[str, Any]]:
        return await self.client.call(ctx, "instances_on_host", host=host)

    async def migration_update(self, ctx: dict[str, Any], migration_id: int,
                               values: dict[str, Any],
                               expected_status: str | None = None) -> dict[str, Any]:
        return await self.client.call(ctx, "migration_update", migration_id=migration_id,
                                      values=values, expected_status=expected_status)

    async def evacuation_cleanup(self, ctx: dict[str, Any], host: str) -> list[str]:
        return await self.client.call(ctx, "evacuation_cleanup", host=host)

    async def service_update(self, ctx: dict[str, Any], binary: str, host: str,
                             object_version: str | None = None) -> None:
        await self.client.call(ctx, "service_update", binary=binary, host=host,
                               object_version=object_version)

    async def compute_node_update(self, ctx: dict[str, Any], host: str,
                                  resources: dict[str, Any]) -> None:
        await self.client.call(ctx, "compute_node_update", host=host, resources=resources)
