"""The scheduler service: ``select_destinations`` (the conductor's call) and, for the
seed's old process, ``run_instance`` (a cast from the API that the scheduler turns into a
cast to the chosen compute itself, which is why it had to reach every compute).

The computes' fanouts ``update_instance_info`` / ``delete_instance_info`` /
``sync_instance_info`` keep the host manager's instance lists; nothing answers them."""
from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..compute.rpcapi import ComputeAPI
from ..db import NotFound, UnexpectedTaskState
from ..config import FLAVORS
from ..exception import NoValidHost
from ..retry import exceeded, populate_retry, tried
from ..manager import Manager
from ..messaging.transport import Transport
from ..rollback import rollback, still_preparing
from ..objects.pinning import instance_primitive
from .filters import FILTER_CLASSES
from .filters.base import BaseFilter
from .plugins import load_plugin_class
from .host_manager import HostManager, HostState
from .weighers import WEIGHER_CLASSES
from .weighers.base import normalize

__all__ = ["SchedulerManager"]

log = logging.getLogger("orchestrator.scheduler")
TIMINGS_KEPT = 10_000


class SchedulerManager(Manager):
    binary = "scheduler"

    def __init__(self, transport: Transport, run_dir: Path, host: str):
        super().__init__(transport, run_dir, host)
        self.compute = ComputeAPI(transport)
        self.hosts = HostManager(self.db, self.config.timing("service_down_time"),
                                 claim_ttl=max(5.0, 3 * self.config.timing("report_interval")))
        self.last_decision: list[dict[str, Any]] = []
        # What each select_destinations cost, by phase (the lab's scale lesson and
        # ``bench scale`` read them with ``select_timings``).
        self.timings: deque[dict[str, float]] = deque(maxlen=TIMINGS_KEPT)
        self.filter_classes = dict(FILTER_CLASSES)
        self.weigher_classes = dict(WEIGHER_CLASSES)
        for name in self.config.plugins:
            self._load_plugin(name)

    def configured(self) -> None:
        self.hosts.service_down_time = self.config.timing("service_down_time")
        self.hosts.claim_ttl = max(5.0, 3 * self.config.timing("report_interval"))

    # -- the conductor's call ---------------------------------------------------------------
    def select_destinations(self, ctx: dict[str, Any], request_spec: dict[str, Any],
                            instance_uuids: list[str],
                            return_alternates: bool = False) -> list[list[str]]:
        """For each instance, the chosen host first, then alternates (if asked), as lists
        of host names. Raises NoValidHost if any instance finds no host.

        ``request_spec`` may name a ``requested_destination`` (only that host is
        considered: an evacuation to a host the admin named, a rebuild on the instance's
        own host) and ``rebuild`` (a rebuild checks the host it is on: only the filters
        that run on rebuild, and no claim, as Nova's scheduler does)."""
        ignore = set(request_spec.get("ignore_hosts") or ())
        wanted = request_spec.get("requested_destination")
        rebuild = bool(request_spec.get("rebuild"))
        # an instance scheduled again is not arriving anywhere else: its earlier claim
        # (a failed attempt, a reverted resize) must not weigh on this choice
        started = time.perf_counter()
        self.hosts.forget(instance_uuids)
        states = [s for s in self.hosts.host_states() if s.host not in ignore
                  and (wanted is None or s.host == wanted)]
        timing = {"hosts": len(states), "host_states_ms": _ms_since(started),
                  "filter_ms": 0.0, "weigh_ms": 0.0}
        if not rebuild:
            states = self.candidates(states, request_spec)
        timing["candidates"] = len(states)
        selections, decisions = [], []
        try:
            for uuid in instance_uuids:
                ranked, rejected = self.rank(states, request_spec, rebuild, timing)
                decisions.append({"instance_uuid": uuid, "ranked": [h.host for h in ranked],
                                  "rejected": rejected})
                if not ranked:
                    raise NoValidHost("No valid host was found. There are not enough hosts "
                                      f"available. (rejected: {_describe(rejected)})")
                if not rebuild:
                    self.hosts.claim(uuid, ranked[0], request_spec)
                limit = self.config.max_attempts if return_alternates else 1
                selections.append([h.host for h in ranked[:limit]])
        except NoValidHost:
            self.hosts.forget(instance_uuids)
            raise
        finally:
            self.last_decision = decisions
            timing["total_ms"] = _ms_since(started)
            timing["instances"] = len(instance_uuids)
            self.timings.append(timing)
        return selections

    def candidates(self, states: list[HostState], spec: dict[str, Any]
                   ) -> list[HostState]:
        """What Placement would answer: the hosts with room for the flavor (vCPU, RAM
        and disk, with the allocation ratios), at most ``max_placement_results`` of them,
        in host order (as Placement's default, ``randomize_allocation_candidates=False``,
        returns them). The filters and weighers then look at these alone; with more
        hosts than that, the rest are never considered."""
        limit, c = self.config.max_placement_results, self.config
        if len(states) <= limit:
            return states
        out = []
        for s in states:
            if (s.vcpus * c.cpu_allocation_ratio - s.vcpus_used >= spec["vcpus"]
                    and s.memory_mb * c.ram_allocation_ratio - s.memory_mb_used
                    >= spec["memory_mb"]
                    and s.local_gb * c.disk_allocation_ratio - s.local_gb_used
                    >= spec["root_gb"]):
                out.append(s)
                if len(out) == limit:
                    break
        return out

    def select_timings(self, ctx: dict[str, Any], clear: bool = False
                       ) -> list[dict[str, float]]:
        """What each select_destinations since the last ``clear`` cost (ms): reading
        the host states, the filters, the weighers, in all; and how many hosts it saw."""
        kept = list(self.timings)
        if clear:
            self.timings.clear()
        return kept

    def rank(self, states: list[HostState], spec: dict[str, Any], rebuild: bool = False,
             timing: dict[str, float] | None = None
             ) -> tuple[list[HostState], dict[str, str]]:
        """Hosts passing every enabled filter (on a rebuild, those that run on rebuild),
        heaviest first (ties by name), and for each rejected host the first filter it
        failed; ``timing`` adds what the filters and weighers took."""
        started = time.perf_counter()
        filters = [self.filter_classes[name](self.config) for name in self.config.filters]
        if rebuild:
            filters = [f for f in filters if f.RUN_ON_REBUILD]
        passed, rejected = [], {}
        for state in states:
            failed = next((f for f in filters if not f.host_passes(state, spec)), None)
            if failed is None:
                passed.append(state)
            else:
                rejected[state.host] = type(failed).__name__
        filtered = time.perf_counter()
        if timing is not None:
            timing["filter_ms"] += (filtered - started) * 1e3
        if not passed:
            return [], rejected
        totals = [0.0] * len(passed)
        for name in self.config.weighers:
            weigher = self.weigher_classes[name](self.config)
            raw = [weigher.weigh(s, spec) for s in passed]
            for i, w in enumerate(normalize(raw)):
                totals[i] += weigher.multiplier() * w
        order = sorted(range(len(passed)), key=lambda i: (-totals[i], passed[i].host))
        if timing is not None:
            timing["weigh_ms"] += _ms_since(filtered)
        return [passed[i] for i in order], rejected

    # -- the computes' fanouts (Nova's HostManager instance info) ---------------------------
    def update_instance_info(self, ctx: dict[str, Any], host_name: str,
                             instance_info: list[str]) -> None:
        self.hosts.update_instance_info(host_name, instance_info)

    def delete_instance_info(self, ctx: dict[str, Any], host_name: str,
                             instance_uuid: str) -> None:
        self.hosts.delete_instance_info(host_name, instance_uuid)

    def sync_instance_info(self, ctx: dict[str, Any], host_name: str,
                           instance_uuids: list[str]) -> None:
        if not self.hosts.sync_instance_info(host_name, instance_uuids):
            log.info("the instance sync for host %s did not match: re-created its "
                     "instance list from the database", host_name)

    def load_plugin(self, ctx: dict[str, Any], name: str) -> str:
        """Load a student's filter or weigher class from ``plugins/<name>.py`` in the run
        directory (written by ``lab.plug_in``); returns "filter" or "weigher"."""
        return self._load_plugin(name)

    def _load_plugin(self, name: str) -> str:
        cls = load_plugin_class(self.run_dir, name)
        if issubclass(cls, BaseFilter):
            self.filter_classes[name] = cls
            return "filter"
        self.weigher_classes[name] = cls
        return "weigher"

    def last_decisions(self, ctx: dict[str, Any]) -> list[dict[str, Any]]:
        """Why the last select_destinations chose what it chose (for the lab)."""
        return self.last_decision

    # -- the seed's old process -------------------------------------------------------------
    def run_instance(self, ctx: dict[str, Any], instance_uuids: list[str],
                     request_spec: dict[str, Any], retry: dict[str, Any] | None = None) -> None:
        """Legacy flow: pick hosts and cast the builds to the computes ourselves. With no
        host, the scheduler itself writes the instance to ERROR."""
        retry = populate_retry(retry)
        spec = {**request_spec, "retry": retry}
        instance_uuids = [u for u in instance_uuids if self._record_attempt(u, retry)]
        try:
            selections = self.select_destinations(ctx, spec, instance_uuids)
        except NoValidHost as exc:
            for uuid in instance_uuids:
                self.set_error(uuid, exc, ctx, "scheduler_run_instance",
                               expected={"vm_state": "building"})
            return
        for uuid, hosts in zip(instance_uuids, selections):
            host_retry = tried(retry, hosts[0])
            self.db.add_event(uuid, ctx.get("request_id", ""), "scheduler_run_instance",
                              hosts[0], retry["num_attempts"], "Success")
            self.compute.build_and_run_instance(
                {**ctx, "instance_uuid": uuid, "attempt": retry["num_attempts"]}, hosts[0],
                instance_uuid=uuid, request_spec=request_spec, retry=host_retry,
                flow="legacy")

    def prep_resize(self, ctx: dict[str, Any], instance_uuid: str, flavor: str,
                    retry: dict[str, Any] | None = None,
                    migration_id: int | None = None) -> None:
        """Legacy flow: resize/migrate the old way. The scheduler picks the host and casts
        ``prep_resize`` to it itself; it also keeps the retry count and, out of hosts or
        attempts, rolls the migration back in the database."""
        try:
            inst = self.db.instance(instance_uuid)
        except NotFound:
            return
        if migration_id and not still_preparing(self.db, inst, migration_id):
            return   # a late reschedule of a migration that already ended
        retry = populate_retry(retry)
        ctx = {**ctx, "instance_uuid": instance_uuid, "attempt": retry["num_attempts"]}
        if migration_id:
            migration = self.db.migration(migration_id)
        else:
            try:     # once: a duplicated prep_resize finds this record and stops
                migration = self.db.create_migration(
                    instance_uuid, "migration" if flavor == inst["flavor"] else "resize",
                    inst["host"], inst["flavor"], flavor, ctx.get("request_id", ""),
                    expected_task_state="resize_prep")
            except UnexpectedTaskState:
                return
        spec = {**FLAVORS[flavor], "flavor": flavor, "image": inst["image"],
                "availability_zone": inst["availability_zone"], "num_instances": 1,
                "ignore_hosts": [migration["source_compute"]], "retry": retry}
        try:
            if retry["num_attempts"] > self.config.max_attempts:
                raise exceeded(self.config.max_attempts, instance_uuid,
                               retry.get("exc", "unknown"))
            if migration_id and not self.db.claim_attempt(
                    instance_uuid, retry["num_attempts"], task_state="resize_prep"):
                return   # this reschedule's duplicate went first
            [hosts] = self.select_destinations(ctx, spec, [instance_uuid])
        except NoValidHost as exc:
            return rollback(self.db, ctx, migration, "scheduler_prep_resize", exc)
        dest = hosts[0]
        if not migration_id:
            self.db.update_instance(instance_uuid, num_attempts=retry["num_attempts"])
        migration = self.db.update_migration(migration["id"], dest_compute=dest)
        self.db.add_event(instance_uuid, ctx.get("request_id", ""), "scheduler_prep_resize",
                          dest, retry["num_attempts"], "Success")
        self.compute.prep_resize(
            ctx, dest, instance=instance_primitive(self.db, self.config, inst,
                                                   [inst["host"], dest], migration),
            migration_id=migration["id"], flavor=flavor,
            retry=tried(retry, dest), flow="legacy")

    def _record_attempt(self, uuid: str, retry: dict[str, Any]) -> bool:
        """Only an instance still building on the attempt before: not one deleted or put
        in ERROR meanwhile, and not twice for a duplicated run_instance."""
        return self.db.claim_attempt(uuid, retry["num_attempts"], vm_state="building")


def _describe(rejected: dict[str, str]) -> str:
    return ", ".join(f"{h}: {f}" for h, f in sorted(rejected.items())) or "no compute nodes"


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3
