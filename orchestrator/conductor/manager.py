"""The conductor service: the workflow owner and the database proxy.

- ``build_instances`` (a cast, from the API or from a compute that reschedules: the same
  message either way) runs the build task.
- The database proxy: computes have no database handle; ``instance_update``,
  ``instance_destroy``, ``instance_fault_create``, ``action_event``, ``service_update``
  and ``compute_node_update`` are the calls through which everything they save lands.
- A periodic check puts builds that made no progress for ``build_timeout`` into ERROR
  (a lost message, a crashed compute): nothing stays in BUILD forever.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..compute.rpcapi import ComputeAPI
from ..config import FLAVORS
from ..exception import BuildTimeout
from ..manager import Manager
from ..messaging.transport import Transport
from ..scheduler.rpcapi import SchedulerAPI
from .tasks.build import BuildTask

__all__ = ["ConductorManager"]


class ConductorManager(Manager):
    binary = "conductor"

    def __init__(self, transport: Transport, run_dir: Path, host: str):
        super().__init__(transport, run_dir, host)
        self.scheduler = SchedulerAPI(transport)
        self.compute = ComputeAPI(transport)
        self.build = BuildTask(self.db, self.scheduler, self.compute, lambda: self.config)

    async def start(self) -> None:
        await super().start()
        self.periodic(self.check_build_timeouts, "report_interval", initial_rounds=4)

    async def build_instances(self, ctx: dict[str, Any], instance_uuids: list[str],
                              request_spec: dict[str, Any],
                              retry: dict[str, Any] | None = None,
                              host_lists: list[list[str]] | None = None) -> None:
        await self.build.run(ctx, instance_uuids, request_spec, retry, host_lists)

    def check_build_timeouts(self) -> None:
        limit = self.config.timing("build_timeout")
        now = time.time()
        for inst in self.db.instances(vm_state="building"):
            if now - inst["updated_at"] > limit:
                self.set_error(inst["uuid"], BuildTimeout(
                    f"Build of instance {inst['uuid']} timed out: no progress for "
                    f"{limit:g}s (task_state {inst['task_state']}, host {inst['host']})"),
                    {"request_id": inst["request_id"], "attempt": inst["num_attempts"]},
                    "conductor_build_timeout", inst["host"])

    # -- the database proxy ---------------------------------------------------------------------
    def instance_update(self, ctx: dict[str, Any], instance_uuid: str,
                        values: dict[str, Any],
                        expected_task_state: Any = "<any>") -> dict[str, Any]:
        return self.db.update_instance(instance_uuid, expected_task_state, **values)

    def instance_destroy(self, ctx: dict[str, Any], instance_uuid: str) -> None:
        self.db.update_instance(instance_uuid, deleted=1, task_state=None,
                                vm_state="deleted")

    def instance_fault_create(self, ctx: dict[str, Any], instance_uuid: str,
                              error: dict[str, Any], host: str) -> None:
        """The instance goes to ERROR with this fault, both in one transaction."""
        message = f"{error.get('type', 'Exception')}: {error.get('message', '')}"
        self.db.set_error(instance_uuid, int(error.get("code", 500)), message, host)

    def action_event(self, ctx: dict[str, Any], instance_uuid: str, event: str, host: str,
                     result: str, details: str = "") -> None:
        self.db.add_event(instance_uuid, ctx.get("request_id", ""), event, host,
                          int(ctx.get("attempt") or 0), result, details)

    def instances_on_host(self, ctx: dict[str, Any], host: str) -> list[dict[str, Any]]:
        """What a (re)starting compute should hold: its instances with their sizes."""
        return [{"uuid": i["uuid"], "vm_state": i["vm_state"], "task_state": i["task_state"],
                 "request_id": i["request_id"], "num_attempts": i["num_attempts"],
                 **FLAVORS[i["flavor"]]} for i in self.db.instances() if i["host"] == host]

    def service_update(self, ctx: dict[str, Any], binary: str, host: str) -> None:
        self.db.service_update(binary, host, binary)

    def compute_node_update(self, ctx: dict[str, Any], host: str,
                            resources: dict[str, Any]) -> None:
        self.db.compute_node_update(host, resources)
