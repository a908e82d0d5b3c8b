"""Helpers for lesson 06, *The conductor as database proxy*: which processes hold the
database file open, what the computes send and to whom, the proxy calls of each build
counted by method, an instance's task states as it walks through them, and the computes'
heartbeats (``service_update`` every ``report_interval``) measured from the trace.

Messages are the bus's trace events (``lab.trace()``); only delivered (``routed``) ones
count, so a message queued and then delivered is counted once."""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from lab.trace import Trace, lane_key, short, topic_of
from orchestrator.conductor.rpcapi import DB_PROXY_METHODS
from orchestrator.scheduler.rpcapi import INSTANCE_INFO_METHODS

if TYPE_CHECKING:
    from lab.lab import Lab

__all__ = ["DATABASE_FILE", "BUILD_CALLS", "open_files", "database_files", "from_computes",
           "strays", "not_proxy_or_build", "proxy_counts", "build_rows", "text_table",
           "wait_builds_finished", "per_host", "proxy_share", "task_state",
           "watch_task_states", "wait_heartbeats", "heartbeat_periods"]

DATABASE_FILE = "lab.sqlite"
# The proxy calls a compute makes while building one instance, in the order of a table.
BUILD_CALLS = ("instance_update", "compute_node_update", "action_event")
Event = dict[str, Any]


# -- who holds the database ------------------------------------------------------------------
def open_files(pid: int) -> set[str]:
    """The paths a process has open (Linux ``/proc/<pid>/fd``); empty if it is gone."""
    fd_dir = Path(f"/proc/{pid}/fd")
    paths = set()
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return paths
    for fd in fds:
        try:
            paths.add(os.readlink(fd_dir / fd))
        except OSError:   # closed meanwhile
            continue
    return paths


def database_files(lab: Lab) -> dict[str, bool]:
    """Per service of the lab (``api``, ``conductor``, ..., ``compute1``, ``bus``): whether
    its process has the database (``lab.sqlite`` in the run directory) open."""
    database = str(Path(lab.run_dir) / DATABASE_FILE)
    out = {}
    for service in lab.service_names():
        child = lab.cluster.children.get(lab.child_name(service))
        out[service] = child is not None and database in open_files(child.pid)
    return out


# -- what the computes send ------------------------------------------------------------------
def from_computes(trace: Trace) -> Trace:
    """The messages computes sent that were delivered."""
    return trace.routed().where(src="compute")


def strays(trace: Trace) -> list[Event]:
    """Delivered messages from computes to anyone but the conductor, except replies to
    the lab's own calls (``set_failure``, ``set_config``) and the instance-info fanouts
    to the scheduler (one way, and they write nothing: the scheduler keeps its host
    lists in memory). The lesson expects none."""
    return [e for e in from_computes(trace)
            if topic_of(e["dst"]) != "conductor"
            and not (e["kind"] == "reply" and topic_of(e["dst"]) == "lab")
            and not (e["kind"] == "fanout" and e["method"] in INSTANCE_INFO_METHODS)]


def not_proxy_or_build(trace: Trace) -> list[Event]:
    """Delivered compute -> conductor messages that are neither a database-proxy call
    (DB_PROXY_METHODS) nor the ``build_instances`` cast of a reschedule."""
    return [e for e in from_computes(trace).where(dst="conductor")
            if not (e["kind"] == "call" and e["method"] in DB_PROXY_METHODS)
            and not (e["kind"] == "cast" and e["method"] == "build_instances")]


def proxy_counts(trace: Trace, instance: str | None = None) -> Counter[str]:
    """Delivered compute -> conductor calls by method (of one instance, if given)."""
    calls = from_computes(trace).where(kind="call", dst="conductor")
    if instance is not None:
        calls = calls.where(instance=instance)
    return Counter(e["method"] for e in calls)


def build_rows(trace: Trace, records: Iterable[dict[str, Any]],
               methods: Sequence[str] = BUILD_CALLS) -> list[tuple[Any, ...]]:
    """One row per instance record: name, host, then its proxy calls per method."""
    rows = []
    for record in records:
        counts = proxy_counts(trace, record["id"])
        rows.append((record["name"], record["OS-EXT-SRV-ATTR:host"] or "-",
                     *(counts[m] for m in methods)))
    return rows


def text_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Aligned plain text: numbers right-aligned, the rest left-aligned."""
    cells = [[str(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str], numeric: Sequence[bool]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    numeric = [bool(cells) and all(r[i].isdigit() for r in cells) for i in range(len(columns))]
    return "\n".join([line(list(columns), numeric)] + [line(r, numeric) for r in cells])


def per_host(trace: Trace, instance: str) -> dict[str, Counter[str]]:
    """For one instance, what each compute sent the conductor (calls and casts) by
    method, keyed by the compute's short name."""
    out: dict[str, Counter[str]] = {}
    for e in from_computes(trace).where(instance=instance, dst="conductor",
                                        kind=("call", "cast")):
        out.setdefault(short(e["src"]), Counter())[e["method"]] += 1
    return {host: out[host] for host in sorted(out, key=lambda h: lane_key(f"compute.{h}"))}


def proxy_share(trace: Trace) -> tuple[int, int]:
    """(database-proxy messages, all messages) among the services' delivered messages (the
    lab's own traffic left out); a proxy message is a DB_PROXY_METHODS call or its reply."""
    messages = trace.routed().without_lab()
    return len(messages.where(method=DB_PROXY_METHODS)), len(messages)


def _answered(e: Event, method: str) -> bool:
    """A delivered reply of the conductor to a compute's ``method`` call."""
    return (e["kind"] == "reply" and e["phase"] == "routed" and e["method"] == method
            and topic_of(e["dst"]) == "compute")


def wait_builds_finished(lab: Lab, ids: Iterable[str], since: int, timeout: float) -> None:
    """Wait until the computes are done with these successful builds: each one's last
    proxy call, the resource report after its ``action_event``, was answered. (The API
    shows ACTIVE a moment earlier: that save comes before the event and the report.)"""
    pending, evented = set(ids), set()

    def finished(e: Event) -> bool:
        uuid = e["instance_uuid"]
        if uuid in pending and _answered(e, "action_event"):
            evented.add(uuid)
        elif uuid in evented and _answered(e, "compute_node_update"):
            pending.discard(uuid)
        return not pending

    if pending:
        lab.tap.wait_for(finished, timeout=timeout, since=since)


# -- what instance_update writes ----------------------------------------------------------
def task_state(record: dict[str, Any]) -> str:
    """An instance's state as one word: its task_state while BUILD, else its status."""
    if record["status"] == "BUILD":
        return record["OS-EXT-STS:task_state"] or "BUILD"
    return record["status"]


def watch_task_states(lab: Lab, server_id: str, timeout: float,
                      every: float = 0.02) -> list[str]:
    """Poll the API until the instance leaves BUILD; the distinct states it was seen in,
    in order. Slow the saves down (a delay fault) so no state is shorter than a poll."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        record = lab.server(server_id)
        state = task_state(record)
        if not seen or seen[-1] != state:
            seen.append(state)
        if record["status"] != "BUILD":
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server_id} still {state} after {timeout:g}s: saw {seen}")
        time.sleep(every)


# -- heartbeats ------------------------------------------------------------------------------
def _is_heartbeat(e: Event) -> bool:
    return (e["method"] == "service_update" and e["kind"] == "call"
            and e["phase"] == "routed" and topic_of(e["src"]) == "compute")


def wait_heartbeats(lab: Lab, since: int, count: int, timeout: float) -> Trace:
    """Wait until every compute has sent ``count`` heartbeats (``service_update`` calls
    delivered to the conductor) after the mark ``since``; the heartbeats."""
    hosts = {f"compute.{h}" for h in lab.config.compute_names()}
    seen: Counter[str] = Counter()

    def enough(e: Event) -> bool:
        if _is_heartbeat(e):
            seen[e["src"]] += 1
        return all(seen[h] >= count for h in hosts)

    lab.tap.wait_for(enough, timeout=timeout, since=since)
    return Trace(e for e in lab.trace(since=since) if _is_heartbeat(e))


def heartbeat_periods(trace: Trace) -> dict[str, float]:
    """Per compute (short name), the mean time between consecutive heartbeats."""
    times: dict[str, list[float]] = {}
    for e in trace:
        if _is_heartbeat(e):
            times.setdefault(short(e["src"]), []).append(e["ts"])
    return {host: (ts[-1] - ts[0]) / (len(ts) - 1)
            for host, ts in sorted(times.items()) if len(ts) > 1}
