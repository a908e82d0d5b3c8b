"""The client side of the compute service: the only place a cast to a compute is written."""
from __future__ import annotations

from typing import Any

from ..messaging.client import RPCClient
from ..messaging.transport import Transport

__all__ = ["ComputeAPI"]


class ComputeAPI:
    def __init__(self, transport: Transport):
        self.client = RPCClient(transport, "compute")

    def build_and_run_instance(self, ctx: dict[str, Any], host: str, **kwargs: Any) -> None:
        """Cast the build to ``compute.<host>``: instance_uuid, request_spec, retry,
        host_list (alternates), flow."""
        self.client.prepare(server=host).cast(ctx, "build_and_run_instance", **kwargs)

    def terminate_instance(self, ctx: dict[str, Any], host: str, instance_uuid: str) -> None:
        self.client.prepare(server=host).cast(ctx, "terminate_instance",
                                              instance_uuid=instance_uuid)
