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
                              "instances_on_host"})


class ConductorAPI:
    def __init__(self, transport: Transport, timeout: float | None = None):
        self.client = RPCClient(transport, "conductor", timeout=timeout)

    def build_instances(self, ctx: dict[str, Any], instance_uuids: list[str],
                        request_spec: dict[str, Any], retry: dict[str, Any] | None = None,
                        host_lists: list[list[str]] | None = None) -> None:
        self.client.cast(ctx, "build_instances", instance_uuids=instance_uuids,
                         request_spec=request_spec, retry=retry, host_lists=host_lists)

    # -- the database proxy -------------------------------------------------------------------
    async def instance_update(self, ctx: dict[str, Any], instance_uuid: str,
                              values: dict[str, Any],
                              expected_task_state: Any = "<any>") -> dict[str, Any]:
        return await self.client.call(ctx, "instance_update", instance_uuid=instance_uuid,
                                      values=values, expected_task_state=expected_task_state)

    async def instance_destroy(self, ctx: dict[str, Any], instance_uuid: str) -> None:
        await self.client.call(ctx, "instance_destroy", instance_uuid=instance_uuid)

    async def instance_fault_create(self, ctx: dict[str, Any], instance_uuid: str,
                                    error: dict[str, Any], host: str) -> None:
        await self.client.call(ctx, "instance_fault_create", instance_uuid=instance_uuid,
                               error=error, host=host)

    async def action_event(self, ctx: dict[str, Any], instance_uuid: str, event: str,
                           host: str, result: str, details: str = "") -> None:
        await self.client.call(ctx, "action_event", instance_uuid=instance_uuid,
                               event=event, host=host, result=result, details=details)

    async def instances_on_host(self, ctx: dict[str, Any], host: str) -> list[dict[str, Any]]:
        return await self.client.call(ctx, "instances_on_host", host=host)

    async def service_update(self, ctx: dict[str, Any], binary: str, host: str) -> None:
        await self.client.call(ctx, "service_update", binary=binary, host=host)

    async def compute_node_update(self, ctx: dict[str, Any], host: str,
                                  resources: dict[str, Any]) -> None:
        await self.client.call(ctx, "compute_node_update", host=host, resources=resources)
