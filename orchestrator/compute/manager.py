"""The compute service: ``build_and_run_instance`` claims resources, walks the task states
``networking -> block_device_mapping -> spawning`` (each saved through the conductor),
and ends ACTIVE. When a build fails in a way another host may fix, it releases the claim
and does what the seed says:

- conductor flow: **casts ``conductor.build_instances``**, the same message the API sent,
  and leaves the decision (retry or give up) to the conductor;
- legacy flow: checks the retry count itself and casts ``scheduler.run_instance`` again,
  or writes ERROR when ``max_attempts`` is used up.

It holds no database handle: saves, heartbeats and resource reports are conductor calls.
Resize/migrate and rebuild/evacuate are in ``migration.py``, served alongside; what both
work with (the claims, the failure injection, the rpcapis, the conductor steps) is the
host's ``ComputeHost`` (``host.py``).

It tells every scheduler which instances it runs, as Nova's computes do (fanouts, one
way): ``update_instance_info`` when a build ends ACTIVE here (and all of them when it
starts), ``delete_instance_info`` when one is deleted here, and ``sync_instance_info``
(the whole list) with every claim audit, so a lost fanout is mended. Each is sent just
before the save that puts the server at rest (Nova sends it just after): so when the API
shows a server ACTIVE (or gone), the trace already holds every message its request made
a compute send.

Instances arrive as versioned ``Instance`` objects. A compute started pinned to an older
object version (``lab.add_compute(object_version="1.0")``: not yet upgraded) cannot read
a newer one, so it asks the conductor to backport it (``object_backport_versions``).
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from .. import rundir
from ..config import ConfigError
from ..exception import BuildAbortException, RescheduledException
from ..manager import Manager
from ..messaging.protocol import MessagingTimeout, RemoteError
from ..messaging.transport import Transport
from ..objects import Instance
from ..retry import exceeded
from .failures import FailureSettings
from .host import CRASH_EXIT_CODE, ComputeHost, InstanceGone
from .migration import MigrationManager

__all__ = ["ComputeManager", "BUILD_STEPS", "CRASH_EXIT_CODE"]

log = logging.getLogger("orchestrator.compute")
BUILD_STEPS = ("networking", "block_device_mapping", "spawning")
BUILD_EVENT = "compute_build_and_run_instance"     # the instance action event it records
AUDIT_EVERY = 8       # reports between two audits of the claims against the database


def holds_room(inst: dict[str, Any]) -> bool:
    """Whether an ``instances_on_host`` row keeps room on the host."""
    return bool(inst.get("migrating") or inst.get("failed_move")
                or inst["vm_state"] in ("active", "resized")
                or inst["task_state"] == "deleting")


def running_here(rows: list[dict[str, Any]]) -> list[str]:
    """The instances of ``instances_on_host`` rows that are on this host (not the other
    end of a resize): what the scheduler's instance info should list."""
    return [r["uuid"] for r in rows if not r.get("migrating")]


def room(inst: dict[str, Any]) -> dict[str, int]:
    return {"vcpus": inst["vcpus"], "memory_mb": inst["memory_mb"],
            "local_gb": inst["root_gb"]}


class ComputeManager(Manager):
    binary = "compute"
    uses_db = False

    def __init__(self, transport: Transport, run_dir: Path, host: str):
        super().__init__(transport, run_dir, host)
        lab = rundir.read(run_dir)
        self.node = ComputeHost(transport, self.config, host,
                                lab.get("failures", {}).get(host, {}),
                                lab.get("computes", {}).get(host, {}).get(
                                    "object_version", Instance.VERSION))
        self.conductor, self.scheduler = self.node.conductor, self.node.scheduler
        self._reports = 0
        self._audit_extra: set[str] = set()     # what the last audit found different
        self._audit_missing: set[str] = set()
        self.rpc_endpoints = [self, MigrationManager(self.node)]

    def configured(self) -> None:
        self.node.config = self.config

    async def start(self) -> None:
        self.recovered = asyncio.Event()
        self.transport.spawn(self._recover())
        await super().start()

    async def _recover(self) -> None:
        """On (re)start, rebuild the claims from the instances the database says live
        here, and fail builds that were in progress when we died (Nova's
        ``_init_instance``): usage survives a crash, nothing stays half-built. Any DB-proxy
        call lost on the way starts it over (every step is idempotent): a compute that
        gave up here would never report again."""
        ctx = {"request_id": f"init-{self.host}"}
        while True:
            try:
                await self._recover_once(ctx)
                break
            except (MessagingTimeout, RemoteError) as exc:
                log.warning("instance recovery failed (%s); retrying", exc)
                await asyncio.sleep(self.config.timing("report_interval"))
        self.recovered.set()

    async def _recover_once(self, ctx: dict[str, Any]) -> None:
        rows = await self.conductor.instances_on_host(ctx, self.host)
        for inst in rows:
            if holds_room(inst):
                self.node.tracker.claims[inst["uuid"]] = room(inst)
            elif inst["vm_state"] == "building":
                await self.node.abort({**ctx, "instance_uuid": inst["uuid"],
                                       "request_id": inst["request_id"],
                                       "attempt": inst["num_attempts"]}, inst["uuid"],
                                      BuildAbortException(f"Build of instance {inst['uuid']} was "
                                                          f"interrupted: {self.host} restarted"))
        for uuid in await self.conductor.evacuation_cleanup(ctx, self.host):
            log.info("instance %s was evacuated while we were down: not ours any more", uuid)
        if running_here(rows):     # as Nova's init_host: only a host that runs some
            self.scheduler.update_instance_info(ctx, self.host, running_here(rows))

    async def audit_claims(self, ctx: dict[str, Any]) -> None:
        """Nova's ``update_available_resource``: compare the claims with what the
        database says this host holds, and mend what a lost message left wrong (a claim
        released though the instance went ACTIVE, because the reply to its last save was
        lost; a claim kept because a ``terminate_instance`` was lost). Only a difference
        seen by two audits in a row is mended, never one for a build running here: an
        operation in flight is allowed to be ahead of the database."""
        rows = await self.conductor.instances_on_host(ctx, self.host)
        want = {r["uuid"]: r for r in rows if holds_room(r)}
        claims, building = self.node.tracker.claims, self.node.building
        extra = {u for u in claims if u not in want} - building
        missing = {u for u in want if u not in claims} - building
        for uuid in extra & self._audit_extra:
            log.warning("audit: %s holds no room here any more: claim freed", uuid)
            self.node.tracker.release(uuid)
        for uuid in missing & self._audit_missing:
            log.warning("audit: %s is here but had no claim: claimed", uuid)
            self.node.tracker.claims[uuid] = room(want[uuid])
        self._audit_extra, self._audit_missing = extra, missing
        self.scheduler.sync_instance_info(ctx, self.host, running_here(rows))

    async def report_state(self) -> None:
        await self.recovered.wait()
        ctx = {"request_id": f"periodic-{self.host}"}
        await self.conductor.service_update(ctx, self.binary, self.host,
                                            self.node.object_version)
        self._reports += 1
        if self._reports % AUDIT_EVERY == 0:
            await self.audit_claims(ctx)
        await self.node.report_resources(ctx)

    # -- the lab's knobs ------------------------------------------------------------------------
    def set_failure(self, ctx: dict[str, Any], **settings: Any) -> dict[str, float]:
        """Change this host's failure injection (reschedule, fatal, crash, slow)."""
        failure = FailureSettings(**{**self.node.failure.to_dict(), **settings})
        if failure.crash and self.config.shares_process(self.host):
            raise ConfigError(f"{self.host} shares its process with other hosts "
                              f"(hosts_per_process={self.config.hosts_per_process}): a "
                              f"crash would end them all; use fatal or reschedule")
        self.node.failure = failure
        return self.node.failure.to_dict()

    def resources(self, ctx: dict[str, Any]) -> dict[str, Any]:
        return self.node.tracker.report(self.node.failed_builds)

    # -- building -------------------------------------------------------------------------------
    async def build_and_run_instance(self, ctx: dict[str, Any], instance_uuid: str,
                                     request_spec: dict[str, Any], retry: dict[str, Any],
                                     host_list: list[str] | None = None,
                                     flow: str = "conductor",
                                     instance: dict[str, Any] | None = None) -> None:
        if instance_uuid in self.node.building or instance_uuid in self.node.tracker.claims:
            # A duplicated (or replayed) delivery: this host already builds or holds it.
            # Building it again would claim twice, and the loser's release would free
            # the winner's claim: the accounting lost (Nova's at-least-once answer too).
            log.info("build of %s already here: duplicate ignored", instance_uuid)
            return
        self.node.building.add(instance_uuid)
        try:
            await self._build_and_run(ctx, instance_uuid, request_spec, retry, host_list,
                                      flow, instance)
        finally:
            self.node.building.discard(instance_uuid)

    async def _build_and_run(self, ctx: dict[str, Any], instance_uuid: str,
                             request_spec: dict[str, Any], retry: dict[str, Any],
                             host_list: list[str] | None, flow: str,
                             instance: dict[str, Any] | None) -> None:
        if instance is not None:
            await self.node.load_instance(ctx, instance)
        attempt = int(retry.get("num_attempts") or 1)
        ctx = {**ctx, "instance_uuid": instance_uuid, "attempt": attempt}
        try:
            self.node.tracker.claim(instance_uuid, request_spec)
        except RescheduledException as exc:
            return await self._reschedule(ctx, instance_uuid, request_spec, retry,
                                          host_list, flow, exc, claimed=False)
        try:
            await self.node.report_resources(ctx)
            await self._build(ctx, instance_uuid, attempt)
        except InstanceGone:
            log.info("instance %s went away during its build", instance_uuid)
            await self.node.release(ctx, instance_uuid)
        except (RescheduledException, MessagingTimeout) as exc:
            await self._reschedule(ctx, instance_uuid, request_spec, retry, host_list, flow,
                                   exc)
        except BuildAbortException as exc:
            await self.node.event(ctx, instance_uuid, BUILD_EVENT, "Error",
                                  f"{type(exc).__name__}: {exc}")
            await self.node.abort(ctx, instance_uuid, exc)
        else:
            self.node.failed_builds = 0
            await self.node.event(ctx, instance_uuid, BUILD_EVENT, "Success")
            await self.node.report_resources(ctx)

    async def _build(self, ctx: dict[str, Any], uuid: str, attempt: int) -> None:
        verdict = self.node.verdict(uuid, attempt)
        state: str | None = "scheduling"
        for step in BUILD_STEPS:
            values: dict[str, Any] = {"task_state": step}
            if step == "networking":
                values["host"] = self.host
            await self.node.save(ctx, uuid, values, state)
            state = step
            await self.node.pause()
        if verdict.outcome == "crash":
            self.node.crash(f"while spawning {uuid}")
        if verdict.outcome == "fatal":
            raise BuildAbortException(f"Build of instance {uuid} aborted on {self.host}: "
                                      "injected fatal failure while spawning")
        if verdict.outcome == "reschedule":
            raise RescheduledException(f"Build of instance {uuid} was re-scheduled: "
                                       f"injected failure while spawning on {self.host}")
        self.scheduler.update_instance_info(ctx, self.host, [uuid])   # see the docstring
        await self.node.save(ctx, uuid, {"vm_state": "active", "task_state": None,
                                         "launched_at": time.time()}, "spawning")

    async def _reschedule(self, ctx: dict[str, Any], uuid: str, spec: dict[str, Any],
                          retry: dict[str, Any], host_list: list[str] | None, flow: str,
                          exc: Exception, claimed: bool = True) -> None:
        """Release the claim and hand the build back (conductor) or retry it (legacy)."""
        self.node.failed_builds += 1
        attempt = ctx["attempt"]
        reason = f"{type(exc).__name__}: {exc}"
        try:    # the record of the failure; losing it must not stop the hand-back
            await self.node.event(ctx, uuid, BUILD_EVENT, "Error", reason)
        except MessagingTimeout:
            log.warning("the failure event of %s was lost: handing it back anyway", uuid)
        if flow == "legacy" and attempt >= self.config.max_attempts:
            return await self.node.abort(ctx, uuid,
                                         exceeded(self.config.max_attempts, uuid, reason))
        try:   # still building: a build the conductor timed out stays in ERROR
            await self.node.save(ctx, uuid, {"task_state": "scheduling", "host": None},
                                 "<any>", expected_vm_state="building")
        except InstanceGone:
            # Not building any more: ERROR, deleted, or ACTIVE here after all (our last
            # save went through and only its reply was lost). The audit frees or keeps
            # the claim by what the database says.
            return
        if claimed:
            await self.node.release(ctx, uuid)
        next_ctx = {**ctx, "attempt": attempt + 1}
        if flow == "legacy":
            self.scheduler.run_instance(next_ctx, [uuid], spec, {**retry, "exc": reason})
        else:
            self.conductor.build_instances(next_ctx, [uuid], spec, {**retry, "exc": reason},
                                           [host_list] if host_list is not None else None)

    async def terminate_instance(self, ctx: dict[str, Any], instance_uuid: str,
                                 destroy: bool = True) -> None:
        """Delete the instance here; ``destroy=False``: only free what it held here (the
        other end of a resize)."""
        await self.node.release(ctx, instance_uuid)
        if destroy:
            self.scheduler.delete_instance_info(ctx, self.host, instance_uuid)
            await self.conductor.instance_destroy(ctx, instance_uuid)
