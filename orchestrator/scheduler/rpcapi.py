"""The client side of the scheduler: the only place a call or cast to it is written.

``select_destinations`` is a call: the conductor waits for the answer (the seed's "sends
an RPC call to the scheduler ... and waits for the response"), with its own timeout, so a
dead scheduler stops the build at the conductor. ``run_instance`` is the old process's
cast.

``update_instance_info`` / ``delete_instance_info`` / ``sync_instance_info`` are the
computes' **fanouts** to every scheduler (Nova's ``SchedulerQueryClient``): how the host
manager keeps each host's instance list without asking anyone. One way only: the
scheduler never answers, and never sends anything to a compute in the conductor flow."""
from __future__ import annotations

from typing import Any

from ..messaging.client import RPCClient
from ..messaging.transport import Transport

__all__ = ["SchedulerAPI", "INSTANCE_INFO_METHODS"]

# The computes' instance-info fanouts: housekeeping, like the heartbeats.
INSTANCE_INFO_METHODS = frozenset({"update_instance_info", "delete_instance_info",
                                   "sync_instance_info"})


class SchedulerAPI:
    def __init__(self, transport: Transport, timeout: float | None = None):
        self.client = RPCClient(transport, "scheduler", timeout=timeout)

    async def select_destinations(self, ctx: dict[str, Any], request_spec: dict[str, Any],
                                  instance_uuids: list[str], return_alternates: bool = False,
                                  timeout: float | None = None) -> list[list[str]]:
        client = self.client.prepare(timeout=timeout) if timeout else self.client
        return await client.call(ctx, "select_destinations", request_spec=request_spec,
                                 instance_uuids=instance_uuids,
                                 return_alternates=return_alternates)

    def run_instance(self, ctx: dict[str, Any], instance_uuids: list[str],
                     request_spec: dict[str, Any], retry: dict[str, Any] | None = None) -> None:
        self.client.cast(ctx, "run_instance", instance_uuids=instance_uuids,
                         request_spec=request_spec, retry=retry)

    def prep_resize(self, ctx: dict[str, Any], instance_uuid: str, flavor: str,
                    retry: dict[str, Any] | None = None,
                    migration_id: int | None = None) -> None:
        """The old process's resize: the API (and a failing destination) cast it here."""
        self.client.cast(ctx, "prep_resize", instance_uuid=instance_uuid, flavor=flavor,
                         retry=retry, migration_id=migration_id)

    # -- the computes' instance info (fanouts) ----------------------------------------------
    def update_instance_info(self, ctx: dict[str, Any], host_name: str,
                             instance_info: list[str]) -> None:
        """``host_name`` now runs these instances (built, resized or rebuilt there; all of
        them when it starts)."""
        self.client.fanout(ctx, "update_instance_info", host_name=host_name,
                           instance_info=instance_info)

    def delete_instance_info(self, ctx: dict[str, Any], host_name: str,
                             instance_uuid: str) -> None:
        """``host_name`` no longer runs this instance (deleted, or a resize confirmed)."""
        self.client.fanout(ctx, "delete_instance_info", host_name=host_name,
                           instance_uuid=instance_uuid)

    def sync_instance_info(self, ctx: dict[str, Any], host_name: str,
                           instance_uuids: list[str]) -> None:
        """Periodically, every instance ``host_name`` runs: the scheduler mends its view if
        a fanout was lost."""
        self.client.fanout(ctx, "sync_instance_info", host_name=host_name,
                           instance_uuids=instance_uuids)
