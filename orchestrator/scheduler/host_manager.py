"""The host manager: the scheduler's view of every compute, built from the database's
compute nodes and services, plus the claims it has handed out that the computes have not
reported yet ("in-flight" claims, consumed in memory, so two requests a millisecond apart
do not both land on the last free slot).

It also keeps each host's instance list the way Nova's HostManager does (``instances`` of
a ``HostState``): read from the database once per host, then kept by the computes'
fanouts, ``update_instance_info`` (built, resized or rebuilt here), ``delete_instance_info``
(deleted, or a resize confirmed away) and ``sync_instance_info`` (periodically, the whole
list: a list that differs, a lost fanout, is read from the database again).

Compute nodes and services are kept in memory too and refreshed with only the rows
written since the last look (each write stamps a generation, ``Database.*_since``): at
1,000 hosts a ``select_destinations`` reads the few rows that changed, not 2,000."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..db import Database

__all__ = ["HostState", "HostManager", "IN_FLIGHT_CHECK"]

IN_FLIGHT_CHECK = 0.25   # seconds between two looks at in-flight claims' instances


@dataclass
class HostState:
    host: str
    availability_zone: str
    vcpus: int
    memory_mb: int
    local_gb: int
    vcpus_used: int
    memory_mb_used: int
    local_gb_used: int
    failed_builds: int
    service_up: bool
    disabled: bool
    claimed: list[str] = field(default_factory=list)     # the compute's last report
    instances: list[str] = field(default_factory=list)   # the instance info: running here

    def consume(self, spec: dict[str, Any]) -> None:
        self.vcpus_used += spec["vcpus"]
        self.memory_mb_used += spec["memory_mb"]
        self.local_gb_used += spec["root_gb"]

    def free(self) -> dict[str, int]:
        return {"vcpus": self.vcpus - self.vcpus_used,
                "memory_mb": self.memory_mb - self.memory_mb_used,
                "local_gb": self.local_gb - self.local_gb_used}


@dataclass
class Claim:
    host: str
    spec: dict[str, Any]
    made: float


class HostManager:
    def __init__(self, db: Database, service_down_time: float, claim_ttl: float):
        self.db = db
        self.service_down_time = service_down_time
        self.claim_ttl = claim_ttl
        self.in_flight: dict[str, Claim] = {}
        self.instance_info: dict[str, set[str]] = {}
        self._sorted: dict[str, list[str]] = {}          # instance_info, sorted, per host
        self._nodes: dict[str, dict[str, Any]] = {}      # compute_nodes rows by host
        self._services: dict[str, dict[str, Any]] = {}   # compute services by host
        self._generations = {"nodes": 0, "services": 0}
        self._order: list[str] = []                      # the hosts, sorted
        self._checked_at = 0.0             # when in-flight claims were last checked

    # -- instance info (the computes' fanouts) ------------------------------------------------
    def update_instance_info(self, host: str, uuids: list[str]) -> None:
        """A host not known yet is read from the database first; the fanout is applied
        either way (it may be ahead of the database: the compute sends it before its
        save)."""
        known = self.instance_info.get(host)
        (self._recreate_instance_info(host) if known is None else known).update(uuids)
        self._sorted.pop(host, None)

    def delete_instance_info(self, host: str, uuid: str) -> None:
        known = self.instance_info.get(host)
        (self._recreate_instance_info(host) if known is None else known).discard(uuid)
        self._sorted.pop(host, None)

    def sync_instance_info(self, host: str, uuids: list[str]) -> bool:
        """Whether the view matched; if not, it is read from the database again."""
        if self.instance_info.get(host) == set(uuids):
            return True
        self._recreate_instance_info(host)
        return False

    def _recreate_instance_info(self, host: str) -> set[str]:
        self.instance_info[host] = {i["uuid"] for i in self.db.instances(host=host)}
        self._sorted.pop(host, None)
        return self.instance_info[host]

    def _instances_on(self, host: str) -> list[str]:
        listed = self._sorted.get(host)
        if listed is None:
            known = self.instance_info.get(host)
            listed = self._sorted[host] = sorted(
                known if known is not None else self._recreate_instance_info(host))
        return listed

    def refresh(self) -> None:
        """Read the compute nodes and services written since the last look."""
        known = len(self._nodes)
        for row in self.db.compute_nodes_since(self._generations["nodes"]):
            self._nodes[row["host"]] = row
            self._generations["nodes"] = max(self._generations["nodes"], row["generation"])
        if len(self._nodes) != known:          # a host joined: the order, once
            self._order = sorted(self._nodes)
        for row in self.db.services_since(self._generations["services"]):
            if row["binary"] == "compute":
                self._services[row["host"]] = row
            self._generations["services"] = max(self._generations["services"],
                                                row["generation"])

    def host_states(self, now: float | None = None) -> list[HostState]:
        """Every compute node as the scheduler should see it right now (by host name)."""
        now = time.time() if now is None else now
        self.refresh()
        states = []
        for host in self._order:
            node, service = self._nodes[host], self._services.get(host)
            up = bool(service and service["last_seen_up"]
                      and now - service["last_seen_up"] <= self.service_down_time)
            states.append(HostState(
                host, node["availability_zone"], node["vcpus"], node["memory_mb"],
                node["local_gb"], node["vcpus_used"], node["memory_mb_used"],
                node["local_gb_used"], node["failed_builds"], up,
                bool(service and service["disabled"]), node["instances"],
                self._instances_on(host)))
        self._apply_in_flight(states, now)
        return states

    def _apply_in_flight(self, states: list[HostState], now: float) -> None:
        by_host = {s.host: s for s in states}
        # Whether a claimed instance went elsewhere (deleted, failed, moved) is read
        # from the database at most every IN_FLIGHT_CHECK seconds: with hundreds of
        # builds in flight, reading all their rows for every request cost the scheduler
        # more than choosing hosts did. Until then such a claim weighs a little longer,
        # as an unreported claim does.
        rows: dict[str, dict[str, Any]] = {}
        if now - self._checked_at >= IN_FLIGHT_CHECK or now < self._checked_at:
            rows = self.db.instance_states(list(self.in_flight))
            self._checked_at = now
        for uuid, claim in list(self.in_flight.items()):
            state = by_host.get(claim.host)
            if state is None or uuid in state.claimed or now - claim.made > self.claim_ttl \
                    or _went_elsewhere(rows.get(uuid), claim.host):
                del self.in_flight[uuid]  # reported by the compute, or given up on
            else:
                state.consume(claim.spec)

    def claim(self, instance_uuid: str, state: HostState, spec: dict[str, Any]) -> None:
        state.consume(spec)
        self.in_flight[instance_uuid] = Claim(state.host, spec, time.time())

    def forget(self, instance_uuids: list[str]) -> None:
        for uuid in instance_uuids:
            self.in_flight.pop(uuid, None)


def _went_elsewhere(row: dict[str, Any] | None, host: str) -> bool:
    """The claimed instance will never land on ``host``: it was deleted, failed, was
    rescheduled to another host, or is at rest elsewhere (a migration rolled back)."""
    if row is None:
        return False
    if row["deleted"] or row["vm_state"] == "error":
        return True
    elsewhere = row["host"] is not None and row["host"] != host
    return elsewhere and (row["vm_state"] == "building" or row["task_state"] is None)
