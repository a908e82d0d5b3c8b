"""One compute host: what its two managers share. ``ComputeManager`` (builds, the
periodic reports) and ``MigrationManager`` (resize/migrate, rebuild/evacuate) serve the
RPC methods; a ``ComputeHost`` holds what both work with, as Nova's compute manager
holds its resource tracker, its driver and its rpcapis:

- the claims (``tracker``), the builds running here (``building``), the failure
  injection (``failure``, ``verdict``, ``pause``, ``crash``) and the failed-build count
  the scheduler's ``BuildFailureWeigher`` reads (``failed_builds``);
- the rpcapis: ``conductor``, ``scheduler``, ``compute`` (to other computes);
- the steps both managers take through the conductor, which holds the database:
  ``load_instance`` (backported if too new), ``save`` (an instance update; a deleted or
  moved-on instance raises ``InstanceGone``), ``event`` (an instance action event),
  ``release`` (a claim given back, then reported), ``report_resources``, ``abort``
  (ERROR with a fault, only for an instance still building).
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, NoReturn

from ..conductor.rpcapi import ConductorAPI
from ..config import LabConfig
from ..exception import NovaError
from ..messaging.protocol import RemoteError
from ..messaging.transport import Transport
from ..objects import IncompatibleObjectVersion, Instance, parse_version
from ..scheduler.rpcapi import SchedulerAPI
from .failures import FailureSettings, Verdict, decide
from .resource_tracker import ResourceTracker
from .rpcapi import ComputeAPI

__all__ = ["ComputeHost", "InstanceGone", "CRASH_EXIT_CODE", "GONE"]

log = logging.getLogger("orchestrator.compute")
CRASH_EXIT_CODE = 70
GONE = ("NotFound", "UnexpectedTaskState", "InstanceNotFound")


class InstanceGone(Exception):
    """The instance was deleted or moved on while we worked on it."""


class ComputeHost:
    """This host's claims, failure injection and rpcapis, and the conductor steps its
    managers share. ``config`` is the manager's (``ComputeManager.configured`` keeps it
    so after a ``set_config``); ``failures`` and ``object_version`` are the lab's record
    of this host in the run directory."""

    def __init__(self, transport: Transport, config: LabConfig, host: str,
                 failures: dict[str, Any] | None = None,
                 object_version: str = Instance.VERSION):
        self.host, self.config = host, config
        self.conductor = ConductorAPI(transport)
        self.scheduler = SchedulerAPI(transport)
        self.compute = ComputeAPI(transport)
        self.tracker = ResourceTracker(host, config.zone_of(host), config.vcpus,
                                       config.memory_mb, config.local_gb,
                                       (config.cpu_allocation_ratio,
                                        config.ram_allocation_ratio,
                                        config.disk_allocation_ratio))
        self.failure = FailureSettings(**(failures or {}))
        parse_version(object_version)
        self.object_version = object_version
        self.failed_builds = 0
        self.building: set[str] = set()      # instances whose build runs here now

    # -- failure injection ------------------------------------------------------------------------
    def verdict(self, key: str, attempt: int) -> Verdict:
        """The seeded outcome of the step ``key`` (an instance uuid, with the migration
        and step for a move) on its ``attempt``."""
        return decide(self.failure, self.config.seed, key, self.host, attempt)

    async def pause(self) -> None:
        """One step's work: the preset's ``step_time``, times this host's slowness."""
        await asyncio.sleep(self.config.timing("step_time") * self.failure.slow)

    def crash(self, reason: str) -> NoReturn:
        log.error("simulated crash %s (failure injection)", reason)
        logging.shutdown()
        os._exit(CRASH_EXIT_CODE)

    # -- through the conductor --------------------------------------------------------------------
    async def load_instance(self, ctx: dict[str, Any], primitive: dict[str, Any]) -> Instance:
        """Read an Instance object; if it is newer than this compute understands, ask the
        conductor to backport it first (the seed's "object backporter")."""
        try:
            return Instance.obj_from_primitive(primitive, max_version=self.object_version)
        except IncompatibleObjectVersion as exc:
            log.info("%s; asking the conductor to backport it", exc)
            older = await self.conductor.object_backport_versions(
                ctx, primitive, {"Instance": self.object_version})
            return Instance.obj_from_primitive(older, max_version=self.object_version)

    async def event(self, ctx: dict[str, Any], uuid: str, event: str, result: str,
                    details: str = "") -> None:
        await self.conductor.action_event(ctx, uuid, event, self.host, result, details)

    async def save(self, ctx: dict[str, Any], uuid: str, values: dict[str, Any],
                   expected: str | None, expected_vm_state: str | None = None) -> None:
        """Update the instance if its task state is ``expected`` (``"<any>"``: whatever
        it is); an instance deleted or moved on raises ``InstanceGone``."""
        try:
            await self.conductor.instance_update(ctx, uuid, values, expected,
                                                 expected_vm_state)
        except RemoteError as exc:
            if exc.exc_type in GONE:
                raise InstanceGone(str(exc)) from None
            raise

    async def report_resources(self, ctx: dict[str, Any]) -> None:
        await self.conductor.compute_node_update(ctx, self.host,
                                                 self.tracker.report(self.failed_builds))

    async def release(self, ctx: dict[str, Any], uuid: str) -> None:
        """Give the instance's claim back (and report it) if it holds one here."""
        if self.tracker.release(uuid):
            await self.report_resources(ctx)

    async def abort(self, ctx: dict[str, Any], uuid: str, exc: NovaError,
                    expected_vm_state: str | None = "building") -> None:
        """ERROR with a fault, saved by the conductor in one step; by default only for
        an instance still building (a duplicated or late failure changes nothing)."""
        await self.release(ctx, uuid)
        try:
            await self.conductor.instance_fault_create(
                ctx, uuid, {"type": type(exc).__name__, "message": str(exc),
                            "code": exc.code}, self.host, expected_vm_state=expected_vm_state)
        except RemoteError as err:
            if err.exc_type not in GONE:
                raise
