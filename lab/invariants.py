"""What must hold after any amount of chaos, once the faults stop: "nothing lost, nothing
resurrected, nobody let in". Pure functions over snapshots of what the API shows
(servers, hypervisors, migrations, services), what each compute's own tracker holds, and
which processes run, so every check can be tested on hand-made snapshots.

1. **outcomes**: every accepted request ends at rest (ACTIVE, ERROR with a fault that
   names its cause, or VERIFY_RESIZE waiting for the user) within the time allowed;
2. **stable**: a state at rest never changes without a user action (an ERROR server that
   turns ACTIVE was resurrected by a late or duplicated message);
3. **placement**: no instance is claimed by two computes or by one it is not on, none is
   missing from its host, and every migration ended;
4. **accounting**: each compute's used vCPUs, RAM and disk equal the sum of what it holds,
   in its own tracker and in the database the scheduler reads;
5. **services**: every service is up, and after the lab closes no process of it is left.

What a compute holds (``holdings``) follows ``ConductorManager.instances_on_host``: its
ACTIVE and VERIFY_RESIZE instances at their current flavor, an ERROR instance a failed
move left there (a ``MigrationError`` fault), and the other end of a move in progress
(the source keeps the old flavor until a confirm, the destination the new one until a
revert). An instance whose build failed holds nothing; one still building is not counted
(judge a lab at rest).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping

from orchestrator.config import FLAVORS
from orchestrator.db_schema import MIGRATION_IN_PROGRESS
from orchestrator.exception import MigrationError

__all__ = ["INVARIANTS", "Violation", "Snapshot", "Observation", "RESTING",
           "MIGRATION_ENDED", "state_of",
           "at_rest", "cause_of", "outcomes", "holdings", "check_outcomes",
           "check_history", "check_unchanged", "check_placement", "check_accounting",
           "check_services", "check_reaped"]

INVARIANTS = {1: "outcomes", 2: "stable", 3: "placement", 4: "accounting", 5: "services"}
RESTING = ("ACTIVE", "ERROR", "VERIFY_RESIZE")       # with no task running
# A fault naming one of these names a bug or a wrapper, not the cause.
NOT_A_CAUSE = frozenset({"Exception", "RemoteError", "RuntimeError", "KeyError",
                         "TypeError", "AttributeError", "ValueError", "IndexError",
                         "AssertionError", "NameError", "UnboundLocalError",
                         "NotImplementedError", "ZeroDivisionError"})
MIGRATION_ENDED = ("confirmed", "reverted", "error", "failed", "completed", "done")
USAGE = (("vcpus_used", "vcpus"), ("memory_mb_used", "memory_mb"),
         ("local_gb_used", "root_gb"))
_CAUSE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): \S")
_FLAVOR_BY_ID = {f["id"]: name for name, f in FLAVORS.items()}


@dataclass
class Violation:
    invariant: int
    subject: str          # a server id, a host, a migration, a service
    what: str             # one line
    evidence: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return INVARIANTS[self.invariant]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "name": self.name}


@dataclass
class Snapshot:
    """What the lab looked like at ``taken`` (unix seconds). ``computes``: each compute's
    own tracker (``compute.resources``: used sizes and ``instances``), None if not read;
    ``processes``: ``Lab.service_state`` of each service."""

    taken: float
    servers: list[dict[str, Any]]
    hypervisors: list[dict[str, Any]] = field(default_factory=list)
    migrations: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    computes: dict[str, dict[str, Any]] | None = None
    processes: dict[str, str] = field(default_factory=dict)


@dataclass
class Observation:
    """A server seen in one ``state`` from poll ``first`` to poll ``last``."""

    first: float
    last: float
    state: tuple[str, str | None, str | None, str | None]  # status, task, host, flavor


def state_of(server: Mapping[str, Any]) -> tuple[str, str | None, str | None, str | None]:
    return (server["status"], server.get("OS-EXT-STS:task_state"),
            server.get("OS-EXT-SRV-ATTR:host"), (server.get("flavor") or {}).get(
                "original_name"))


def at_rest(state: tuple[str, str | None, str | None, str | None]) -> bool:
    return state[0] in RESTING and state[1] is None


def _fault(server: Mapping[str, Any]) -> str:
    return (server.get("fault") or {}).get("message", "")


def cause_of(message: str) -> str:
    """``"NoValidHost: No valid host..."`` -> ``NoValidHost``; "" if it names none."""
    m = _CAUSE.match(message or "")
    return m.group(1) if m else ""


def _name(server: Mapping[str, Any]) -> str:
    return f"{server['id']} ({server.get('name', '?')})"


def _describe(server: Mapping[str, Any]) -> str:
    status, task, host, flavor = state_of(server)
    fault = _fault(server) or (server.get("OS-EXT-LAB:last_fault") or {}).get("message", "")
    return (f"{status} task {task or '-'} on {host or '-'} {flavor or '-'} attempts "
            f"{server.get('OS-EXT-LAB:num_attempts', '?')}" + (f"; fault: {fault}" if fault
                                                              else ""))


def outcomes(servers: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """``ACTIVE``, ``ERROR: BuildTimeout``, ... for the figures."""
    out: Counter[str] = Counter()
    for s in servers:
        if s["status"] == "ERROR":
            out[f"ERROR: {cause_of(_fault(s)) or 'no cause'}"] += 1
        else:
            out[s["status"]] += 1
    return out


# -- 1. outcomes --------------------------------------------------------------------------
def check_outcomes(snap: Snapshot, accepted: Iterable[str], faults_stopped: float,
                   limit: float) -> list[Violation]:
    """Each server (accepted or not) at rest, an ERROR with a fault naming its cause;
    each accepted one still there. One not at rest ``limit`` seconds after
    ``faults_stopped`` is late; one not at rest in an earlier snapshot is not judged."""
    found = {s["id"]: s for s in snap.servers}
    late = snap.taken - faults_stopped >= limit
    out = [Violation(1, sid, "accepted (202) but the API no longer lists it")
           for sid in sorted(set(accepted) - set(found))]
    for s in snap.servers:
        state = state_of(s)
        if not at_rest(state):
            if late:
                out.append(Violation(1, s["id"], f"not at rest {snap.taken - faults_stopped:.1f}"
                                     f"s after the faults stopped (limit {limit:g}s)",
                                     [_describe(s)]))
            continue
        if state[0] == "ERROR":
            cause = cause_of(_fault(s))
            if not cause or cause in NOT_A_CAUSE:
                out.append(Violation(1, s["id"], "ERROR with a fault that names no cause: "
                                     f"{_fault(s)[:120]!r}", [_describe(s)]))
        elif not state[2]:
            out.append(Violation(1, s["id"], f"{state[0]} on no host", [_describe(s)]))
    return out


# -- 2. stable ----------------------------------------------------------------------------
def check_history(history: Mapping[str, list[Observation]],
                  actions: Mapping[str, list[tuple[float, float]]]) -> list[Violation]:
    """A server that left a state at rest with no user action on it (requested between
    ``(start, end)``) from when that state was first seen to when the change was."""
    out = []
    for sid, seen in sorted(history.items()):
        for before, after in zip(seen, seen[1:]):
            if not at_rest(before.state) or before.state == after.state:
                continue
            if any(end >= before.first and start <= after.last
                   for start, end in actions.get(sid, ())):
                continue
            out.append(Violation(2, sid, f"{_state_text(before.state)} -> "
                                 f"{_state_text(after.state)} with no user action",
                                 [f"seen {_state_text(o.state)} from {o.first:.2f}s to "
                                  f"{o.last:.2f}s" for o in seen]))
    return out


def _state_text(state: tuple) -> str:
    status, task, host, flavor = state
    return f"{status}{'/' + task if task else ''} on {host or '-'} ({flavor or '-'})"


def check_unchanged(before: Snapshot, after: Snapshot) -> list[Violation]:
    """Nothing changed between two snapshots with no user action between them: servers'
    states, migrations' statuses, hypervisors' usage."""
    out = []
    old, new = ({s["id"]: s for s in snap.servers} for snap in (before, after))
    for sid in sorted(old.keys() | new.keys()):
        a, b = old.get(sid), new.get(sid)
        if a is None or b is None or state_of(a) != state_of(b):
            out.append(Violation(2, sid, f"changed with no user action in "
                                 f"{after.taken - before.taken:.1f}s: "
                                 f"{_describe(a) if a else 'absent'} -> "
                                 f"{_describe(b) if b else 'absent'}"))
    statuses = [{m["id"]: m for m in snap.migrations} for snap in (before, after)]
    for mid in sorted(statuses[0].keys() | statuses[1].keys()):
        a, b = (s.get(mid, {}).get("status") for s in statuses)
        if a != b:
            out.append(Violation(2, f"migration {mid}", f"status {a} -> {b} with no user "
                                 f"action", [str(statuses[1].get(mid, statuses[0].get(mid)))]))
    usage = [{h["hypervisor_hostname"]: _usage(h) for h in snap.hypervisors}
             for snap in (before, after)]
    for host in sorted(usage[0].keys() & usage[1].keys()):
        if usage[0][host] != usage[1][host]:
            out.append(Violation(2, host, f"usage {usage[0][host]} -> {usage[1][host]} "
                                 f"with no user action"))
    return out


def _usage(report: Mapping[str, Any]) -> tuple[int, int, int, int]:
    return (report["vcpus_used"], report["memory_mb_used"], report["local_gb_used"],
            report["running_vms"])


# -- what each compute holds ----------------------------------------------------------------
def holdings(servers: Iterable[Mapping[str, Any]],
             migrations: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """host -> {instance uuid: flavor it holds there}, as a compute rebuilds its claims
    from the database (``instances_on_host``)."""
    held: dict[str, dict[str, str]] = {}
    moving = {m["instance_uuid"]: m for m in sorted(migrations, key=lambda m: m["id"])
              if m["status"] in MIGRATION_IN_PROGRESS
              and m["migration_type"] != "evacuation"}
    for s in servers:
        status, _task, host, flavor = state_of(s)
        failed_move = status == "ERROR" and _fault(s).startswith(f"{MigrationError.__name__}:")
        if host and flavor and (s.get("OS-EXT-STS:vm_state") in ("active", "resized")
                                or failed_move):
            held.setdefault(host, {})[s["id"]] = flavor
        m = moving.get(s["id"])
        if m is None:
            continue
        if m["source_compute"] != host and m["status"] != "confirming":
            held.setdefault(m["source_compute"], {})[s["id"]] = \
                _FLAVOR_BY_ID[m["old_instance_type_id"]]
        elif m["dest_compute"] and m["dest_compute"] != host and m["status"] != "reverting":
            held.setdefault(m["dest_compute"], {})[s["id"]] = \
                _FLAVOR_BY_ID[m["new_instance_type_id"]]
    return held


def _sizes(held: Mapping[str, str]) -> tuple[int, int, int, int]:
    vcpus, ram, disk = (sum(FLAVORS[f][key] for f in held.values()) for _, key in USAGE)
    return vcpus, ram, disk, len(held)


# -- 3. placement ---------------------------------------------------------------------------
def check_placement(snap: Snapshot) -> list[Violation]:
    """Each compute's own claims are exactly what it holds; every migration ended."""
    out = []
    servers = {s["id"]: s for s in snap.servers}
    held = holdings(snap.servers, snap.migrations)
    claims = {host: set(r.get("instances", ())) for host, r in (snap.computes or {}).items()}
    owners: dict[str, list[str]] = {}
    for host, uuids in claims.items():
        for uuid in uuids:
            owners.setdefault(uuid, []).append(host)
    for uuid, hosts in sorted(owners.items()):
        if len(hosts) > 1 and not all(uuid in held.get(h, {}) for h in hosts):
            out.append(Violation(3, uuid, f"claimed by {len(hosts)} computes: "
                                 f"{', '.join(sorted(hosts))}", _server_line(servers, uuid)))
    for host, uuids in sorted(claims.items()):
        want = set(held.get(host, {}))
        for uuid in sorted(uuids - want):
            if len(owners[uuid]) == 1:     # two or more: said above
                out.append(Violation(3, uuid, f"{host} claims it but holds no room for it",
                                     _server_line(servers, uuid)))
        for uuid in sorted(want - uuids):
            out.append(Violation(3, uuid, f"{host} should hold it ({held[host][uuid]}) but "
                                 "has no claim for it", _server_line(servers, uuid)))
    for m in snap.migrations:
        waiting = m["status"] == "finished" and \
            (servers.get(m["instance_uuid"]) or {}).get("status") == "VERIFY_RESIZE"
        if m["status"] not in MIGRATION_ENDED and not waiting:
            out.append(Violation(3, m["instance_uuid"], f"migration {m['id']} "
                                 f"({m['migration_type']}) left in status {m['status']}",
                                 [f"{m['source_compute']} -> {m['dest_compute'] or '-'}"]
                                 + _server_line(servers, m["instance_uuid"])))
    return out


def _server_line(servers: Mapping[str, Mapping[str, Any]], uuid: str) -> list[str]:
    s = servers.get(uuid)
    return [f"server {_name(s)}: {_describe(s)}" if s else f"server {uuid}: not listed"]


# -- 4. accounting ---------------------------------------------------------------------------
def check_accounting(snap: Snapshot) -> list[Violation]:
    """Used vCPUs, RAM, disk and running VMs equal the sum of what each compute holds, in
    the database (the hypervisors view, the scheduler's input) and in the compute's own
    tracker."""
    out = []
    held = holdings(snap.servers, snap.migrations)
    trackers = snap.computes or {}
    views = [("database (the scheduler's view)", {h["hypervisor_hostname"]: h
                                                  for h in snap.hypervisors})]
    if snap.computes is not None:
        views.append(("its own tracker", trackers))
    for where, reports in views:
        for host in sorted(reports.keys() | held.keys()):
            want = _sizes(held.get(host, {}))
            got = _usage(reports[host]) if host in reports else None
            if got != want:
                out.append(Violation(4, host, f"{where}: used (vcpus, ram, disk, vms) {got}, "
                                     f"holds {want}", _accounting_evidence(
                                         held.get(host, {}), trackers.get(host))))
    return out


def _accounting_evidence(held: Mapping[str, str],
                         tracker: Mapping[str, Any] | None) -> list[str]:
    if tracker is None:
        return [f"holds {len(held)}; its tracker did not answer"]
    claims = set(tracker.get("instances", ()))
    return [f"its tracker reports {_usage(tracker)}",
            f"claimed, no room held: {sorted(claims - set(held)) or 'none'}",
            f"held, not claimed: {sorted(set(held) - claims) or 'none'}"]


# -- 5. services ----------------------------------------------------------------------------
def check_services(snap: Snapshot, computes: Iterable[str]) -> list[Violation]:
    """Every process up (running, not paused, heard by the bus) and every service the
    API lists up, the computes ``computes`` among them."""
    out = [Violation(5, name, f"process {state}") for name, state in
           sorted(snap.processes.items()) if state != "up"]
    listed = {(s["binary"], s["host"]): s for s in snap.services}
    for host in computes:
        if ("nova-compute", host) not in listed:
            out.append(Violation(5, host, "the API lists no nova-compute service for it"))
    for (binary, host), s in sorted(listed.items()):
        if s["state"] != "up":
            out.append(Violation(5, f"{binary} {host}", f"the API says {s['state']}",
                                 [f"last seen up at {s.get('updated_at')}"]))
    return out


def check_reaped(pids: Mapping[str, int], alive: Callable[[int], bool]) -> list[Violation]:
    """After the lab closed: none of its processes (``lab.json``'s pids) is left."""
    return [Violation(5, name, f"process {pid} outlived the lab")
            for name, pid in sorted(pids.items()) if alive(pid)]
