"""The build task: the seed's new process, in one place.

1. Retry bookkeeping: ``num_attempts`` goes up by one per pass; past ``max_attempts`` the
   instance goes to ERROR with MaxRetriesExceeded.
2. **Call** ``scheduler.select_destinations`` and wait. NoValidHost, any scheduler error
   or a MessagingTimeout stops the build here, at the conductor: ERROR with a fault.
   With ``alternates``, a reschedule takes the next alternate host instead of asking again.
3. **Cast** ``build_and_run_instance`` to ``compute.<host>``, and be done: if the build
   fails, the compute casts ``build_instances`` back and we come round again.

Every pass first moves the instance from attempt k-1 to k, only if it is still building
(``Database.claim_attempt``): a duplicated, replayed or late ``build_instances`` (a
compute's reschedule that arrives after the build timeout put the instance in ERROR)
finds it moved on and does nothing. Nova checks the instance before it reschedules too.

The same code runs in the conductor and, with ``local_mode``, inside the API.
"""
from __future__ import annotations

import logging
from typing import Any

from ...db import NotFound
from ...retry import exceeded, exhausted, populate_retry, tried
from ...manager import record_error
from ...messaging.protocol import MessagingTimeout, RemoteError
from ...objects.pinning import instance_primitive
from .base import Task

__all__ = ["BuildTask", "EVENT"]

EVENT = "conductor_schedule_and_build_instances"
log = logging.getLogger("orchestrator.conductor")


class BuildTask(Task):
    async def run(self, ctx: dict[str, Any], instance_uuids: list[str],
                  request_spec: dict[str, Any], retry: dict[str, Any] | None = None,
                  host_lists: list[list[str]] | None = None) -> None:
        config = self.config()
        retry = populate_retry(retry)
        attempt = retry["num_attempts"]
        ctx = {**ctx, "attempt": attempt}
        if attempt > config.max_attempts:  # num_attempts stays at the last real attempt
            wanted = [u for u in instance_uuids if self._on_attempt(u, attempt - 1)]
            return self._fail(ctx, wanted, exceeded(config.max_attempts, instance_uuids[0],
                                                    retry.get("exc", "unknown")))
        live = self._still_wanted(instance_uuids, attempt)
        if not live:
            return
        if config.alternates and host_lists and attempt > 1:
            selections = self._alternates(live, host_lists, retry)
            if selections is None:
                return self._fail(ctx, live, exhausted(
                    f"build failures for instance {live[0]}", retry.get("exc", "unknown")))
        else:
            try:
                selections = await self.scheduler.select_destinations(
                    ctx, {**request_spec, "retry": retry}, live,
                    return_alternates=config.alternates,
                    timeout=config.timing("scheduler_timeout"))
            except (RemoteError, MessagingTimeout) as exc:
                return self._fail(ctx, live, exc)
        for uuid, hosts in zip(live, selections):
            self._cast_build(ctx, uuid, hosts, request_spec, retry)

    def _still_wanted(self, uuids: list[str], attempt: int) -> list[str]:
        """Record the attempt, for the instances still building on the attempt before:
        deleted ones, ERROR ones and this message's duplicates are skipped."""
        live = []
        for uuid in uuids:
            if self.db.claim_attempt(uuid, attempt, vm_state="building"):
                live.append(uuid)
            else:
                log.info("build_instances attempt %d for %s refused: not building on "
                         "attempt %d (late, duplicated or deleted)", attempt, uuid, attempt - 1)
        return live

    def _on_attempt(self, uuid: str, attempt: int) -> bool:
        try:
            inst = self.db.instance(uuid)
        except NotFound:
            return False
        return inst["vm_state"] == "building" and inst["num_attempts"] == attempt

    def _alternates(self, uuids: list[str], host_lists: list[list[str]],
                    retry: dict[str, Any]) -> list[list[str]] | None:
        selections = []
        for _uuid, hosts in zip(uuids, host_lists):
            left = [h for h in hosts if h not in retry["hosts"]]
            if not left:
                return None
            selections.append(left)
        return selections

    def _cast_build(self, ctx: dict[str, Any], uuid: str, hosts: list[str],
                    request_spec: dict[str, Any], retry: dict[str, Any]) -> None:
        host, alternates = hosts[0], hosts[1:]
        self.db.add_event(uuid, ctx.get("request_id", ""), EVENT, host, ctx["attempt"],
                          "Success")
        instance = instance_primitive(self.db, self.config(), self.db.instance(uuid), [host])
        self.compute.build_and_run_instance(
            {**ctx, "instance_uuid": uuid}, host, instance_uuid=uuid,
            request_spec=request_spec, retry=tried(retry, host),
            host_list=alternates, flow="conductor", instance=instance)

    def _fail(self, ctx: dict[str, Any], uuids: list[str], exc: BaseException) -> None:
        for uuid in uuids:
            record_error(self.db, uuid, exc, {**ctx, "instance_uuid": uuid}, EVENT,
                         expected={"vm_state": "building"})
