"""The dashboard's model: trace events and polled records in, column dicts out.

Pure Python: no Bokeh, no Tornado, no ZeroMQ, so every number the dashboard draws is
unit-tested without a server. One ``DashboardModel`` per browser session:

- ``ingest(events)`` counts every event (the counters are exact whatever the filters) and
  returns the rows of the *visible* ones for the ``messages`` source (one animated dot
  each) and the ``timeline`` source (one segment each in the time-space diagram);
- ``nodes_data`` / ``edges_data`` / ``reschedule_data`` / ``annotations_data`` draw the
  topology (``topology.Topology``), laid out by ``layout.topology_layout``;
- ``instances_data`` remembers each instance's task-state transitions across polls;
- ``metrics_data`` / ``counters`` are the live numbers, a lesson's chosen ones first.

Names and messages are users' text, kept verbatim in the columns (see ``text``).

Times in rows are seconds since ``origin`` (the first event's ``sent`` unless given).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from statistics import median
from typing import Any, Iterable

from lab.lanes import lane_order, topic_of
from lab.metrics import WORKFLOW_METHODS, BuildMessages, is_reschedule
from lab.trace import HOUSEKEEPING_PREFIXES
from orchestrator.conductor.rpcapi import DB_PROXY_METHODS
from orchestrator.scheduler.rpcapi import INSTANCE_INFO_METHODS

from .instances import INSTANCE_COLUMNS, InstanceRecords
from .layout import BOX, BUS, topology_layout
from .palette import (DASHES, DROP_COLOR, KIND_COLORS, KIND_MARKERS, NODE_STATE_COLORS,
                      OTHER_COLOR, TASK_STATE_COLORS)
from .topology import (ANNOTATION_COLUMNS, EDGE_COLUMNS, NODE_COLUMNS, RESCHEDULE_COLUMNS,
                       Topology)

__all__ = [
    "KIND_COLORS", "DROP_COLOR", "KIND_MARKERS", "TASK_STATE_COLORS", "NODE_STATE_COLORS",
    "MESSAGE_COLUMNS", "TIMELINE_COLUMNS", "NODE_COLUMNS", "EDGE_COLUMNS",
    "RESCHEDULE_COLUMNS", "ANNOTATION_COLUMNS", "INSTANCE_COLUMNS", "METRIC_COLUMNS", "BUS",
    "BOX", "topology_layout", "Updates", "DashboardModel", "METRICS",
]

Event = dict[str, Any]
Columns = dict[str, list]

MESSAGE_COLUMNS = ("seq", "t", "sent", "kind", "phase", "src", "dst", "method", "instance",
                   "attempt", "reason", "x0", "y0", "x1", "y1", "color", "marker", "label")
TIMELINE_COLUMNS = ("seq", "t0", "t1", "y0", "y1", "kind", "phase", "color", "dash", "method",
                    "instance", "attempt", "src", "dst", "label")
METRIC_COLUMNS = ("name", "value")
HEARTBEAT_METHODS = frozenset({"service_update", "compute_node_update", "instances_on_host",
                               "evacuation_cleanup"})
# Where an attempt lands on a compute: a build, or a resize's destination.
TRY_METHODS = ("build_and_run_instance", "prep_resize")
RATE_WINDOW, TOP_METHODS = 10.0, 4
# The metrics' names, as lab.show(metrics=[...]) may name them to put them first.
METRICS = ("builds per second", "success rate", "finished builds", "builds started",
           "reschedules", "messages per build", "select_destinations calls",
           "messages routed", "queued", "dropped", "expired", "API create p50 (ms)")


def _category(e: Event) -> str:
    """``heartbeat`` (a periodic/init report through the database proxy, or the
    computes' instance-info fanouts to the scheduler: housekeeping both), ``db`` (any
    other database-proxy method) or ""."""
    method = e["method"]
    if method in INSTANCE_INFO_METHODS or (
            method in HEARTBEAT_METHODS and e["request_id"].startswith(HOUSEKEEPING_PREFIXES)):
        return "heartbeat"
    return "db" if method in DB_PROXY_METHODS else ""


def _label(e: Event) -> str:
    if e["method"] in WORKFLOW_METHODS and e["attempt"]:
        return f"{e['method']} #{e['attempt']}"
    return e["method"]


def _empty(columns: Iterable[str]) -> Columns:
    return {c: [] for c in columns}


@dataclass
class Updates:
    """The rows one ``ingest`` produced, ready for ``ColumnDataSource.stream``."""
    messages: Columns
    timeline: Columns

    def __len__(self) -> int:
        return len(self.messages["seq"])


class DashboardModel(Topology):
    """Everything one dashboard session shows, from trace events and polled records."""

    def __init__(self, services: Iterable[str], max_attempts: int = 3,
                 origin: float | None = None):
        self.services: list[str] = lane_order(s for s in services if s and s != BUS)
        self.max_attempts = max_attempts
        self.origin = origin
        self.show_db_proxy = True
        self.show_heartbeats = False
        self.show_lab = False
        self.instance_filter = ""
        self.layout_version = 0                      # bumps on every relayout
        self.positions: dict[str, tuple[float, float]] = {}
        self._relayout()
        # counters: every event, whatever the filters
        self.events = 0
        self._phases: Counter[str] = Counter()
        self._by_method: Counter[tuple[str, str]] = Counter()
        self._edges: Counter[tuple[str, str, str, str]] = Counter()  # src, dst, kind, cat
        self._reschedules = 0
        self._select_calls = 0
        self._builds = BuildMessages()
        self._waiting: set[str] = set()              # msg_ids queued at the bus
        # per instance: max attempt; per attempt: (dispatcher, host), reschedule target,
        # scheduler called; when its latest event came (in events ingested)
        self._attempts: dict[str, int] = {}
        self._tries: dict[str, dict[int, tuple[str, str]]] = {}
        self._rescheduled_to: dict[str, dict[int, str]] = {}
        self._selected_by: dict[str, dict[int, str]] = {}
        self._last_seen: dict[str, int] = {}
        self._fault_by: dict[str, str] = {}          # who sent instance_fault_create
        self.records = InstanceRecords()             # polled instances

    # -- services and filters --------------------------------------------------------------
    def add_service(self, identity: str) -> None:
        """A service seen for the first time: add it and lay the topology out again."""
        if identity and identity != BUS and identity not in self.services:
            self.services = lane_order([*self.services, identity])
            self._relayout()

    def set_filters(self, *, show_db_proxy: bool | None = None,
                    show_heartbeats: bool | None = None, show_lab: bool | None = None,
                    instance: str | None = None) -> None:
        """Change the filters given (None leaves one as it is; ``instance=""`` shows all).
        Rows already produced are not refiltered: the caller starts over (a fresh model
        re-reading the history) to apply them to the past."""
        if show_db_proxy is not None:
            self.show_db_proxy = bool(show_db_proxy)
        if show_heartbeats is not None:
            self.show_heartbeats = bool(show_heartbeats)
        if show_lab is not None:
            self.show_lab = bool(show_lab)
        if instance is not None:
            self.instance_filter = instance

    def visible(self, e: Event) -> bool:
        """Whether the filters show this event. Heartbeats (periodic/init reports) and the
        other database-proxy calls are toggled separately."""
        if not self.show_lab and "lab" in (topic_of(e["src"]), topic_of(e["dst"])):
            return False
        category = _category(e)
        if category == "heartbeat" and not self.show_heartbeats:
            return False
        if category == "db" and not self.show_db_proxy:
            return False
        return not self.instance_filter or e["instance_uuid"].startswith(self.instance_filter)

    def set_max_attempts(self, n: int) -> None:
        self.max_attempts = int(n)

    def lanes(self) -> list[str]:
        """The time-space diagram's lanes, top to bottom: api, conductor, scheduler,
        computes (beyond 8, one lane per run of hosts: ``layout.Layout.lane``), others
        (the lab's clients only while shown). Row ``y`` = index here."""
        return lane_order({self.layout.lane(n) for n in self.services
                           if self.show_lab or topic_of(n) != "lab"})

    def lane_labels(self) -> dict[int, str]:
        """The lanes' labels by row: a service's identity, a run of hosts as
        "compute1\u2026compute4"."""
        return {i: n.split(".", 1)[1].replace("..", "\u2026") if n in self.layout.lane_of.values()
                else n for i, n in enumerate(self.lanes())}

    def _lane(self, index: dict[str, int], name: str, default: int) -> int:
        name = self.layout.lane(name)
        if name in index:
            return index[name]
        topic = topic_of(name)
        return next((i for n, i in index.items() if topic_of(n) == topic), default)

    # -- events ----------------------------------------------------------------------------
    def ingest(self, events: list[Event]) -> Updates:
        """Count every event; return the rows of the visible ones. Senders and receivers
        not seen before (``topic.server`` names) are added to the topology first."""
        messages, timeline = _empty(MESSAGE_COLUMNS), _empty(TIMELINE_COLUMNS)
        if not events:
            return Updates(messages, timeline)
        if self.origin is None:
            self.origin = min(float(e["sent"]) for e in events)
        new = {n for e in events for n in (e["src"], e["dst"])
               if "." in n and n != BUS and n not in self.positions}
        if new:
            self.services = lane_order([*self.services, *new])
            self._relayout()
        lane_index = {name: i for i, name in enumerate(self.lanes())}
        for e in events:
            self._count(e)
            if self.visible(e):
                if e["phase"] != "delayed":            # pacing, not a fate: not animated
                    self._message_row(messages, e)
                self._timeline_row(timeline, e, lane_index)
        return Updates(messages, timeline)

    def _message_row(self, out: Columns, e: Event) -> None:
        phase, kind, src = e["phase"], e["kind"], e["src"]
        x0, y0 = self._pos(src)
        color, marker = KIND_COLORS.get(kind, OTHER_COLOR), KIND_MARKERS.get(kind, "circle")
        label = _label(e)
        if phase == "queued":
            x1, y1 = self.positions[BUS]
        elif phase == "dropped":
            dx, dy = self._pos(e["dst"])
            x1, y1 = round((x0 + dx) / 2, 3), round((y0 + dy) / 2, 3)
            color, marker = DROP_COLOR, "x"
        elif phase == "expired":
            if kind != "call":                       # a queued cast that outlived its TTL
                x0, y0 = self.positions[BUS]
            x1, y1 = x0, y0
            color, marker, label = DROP_COLOR, "x", "timeout" if kind == "call" else "expired"
        else:
            x1, y1 = self._pos(e["dst"])
        origin = self.origin or 0.0
        row = (e["seq"], e["ts"] - origin, e["sent"] - origin, kind, phase, src, e["dst"],
               e["method"], e["instance_uuid"], e["attempt"], e["reason"], x0, y0, x1, y1,
               color, marker, label)
        for column, value in zip(MESSAGE_COLUMNS, row):
            out[column].append(value)

    def _timeline_row(self, out: Columns, e: Event, lane_index: dict[str, int]) -> None:
        kind, phase = e["kind"], e["phase"]
        y0 = self._lane(lane_index, e["src"], 0)
        y1 = self._lane(lane_index, e["dst"], y0)
        color = DROP_COLOR if phase in ("dropped", "expired") else KIND_COLORS.get(
            kind, OTHER_COLOR)
        origin = self.origin or 0.0
        row = (e["seq"], e["sent"] - origin, e["ts"] - origin, y0, y1, kind, phase, color,
               DASHES.get(kind, "solid"), e["method"], e["instance_uuid"], e["attempt"],
               e["src"], e["dst"], _label(e))
        for column, value in zip(TIMELINE_COLUMNS, row):
            out[column].append(value)

    def _count(self, e: Event) -> None:
        self.events += 1
        phase, kind, method = e["phase"], e["kind"], e["method"]
        src, dst, uuid, attempt = e["src"], e["dst"], e["instance_uuid"], e["attempt"]
        self._phases[phase] += 1
        if phase == "queued":
            self._waiting.add(e["msg_id"])
        elif phase != "delayed":
            self._waiting.discard(e["msg_id"])
        if uuid:
            self._attempts[uuid] = max(self._attempts.get(uuid, 0), attempt)
            self._last_seen[uuid] = self.events      # not seq: a restarted bus resets it
        if phase != "routed":
            return
        self._by_method[kind, method] += 1
        self._edges[src, dst, kind, _category(e)] += 1
        if is_reschedule(e):
            self._reschedules += 1
            if uuid:
                self._rescheduled_to.setdefault(uuid, {})[attempt] = dst
        if kind == "call" and method == "select_destinations":
            self._select_calls += 1
            if uuid:
                self._selected_by.setdefault(uuid, {})[attempt] = dst
        if method == "instance_fault_create" and kind == "call" and uuid:
            self._fault_by[uuid] = src
        if method in TRY_METHODS and uuid and kind in ("cast", "call") \
                and topic_of(src) != "compute" and topic_of(dst) == "compute" \
                and e["reason"] != "duplicate":
            self._tries.setdefault(uuid, {})[attempt] = (src, dst)
        self._builds.add(e)

    # -- instances -------------------------------------------------------------------------
    def instances_data(self, servers: list[dict[str, Any]], now: float) -> Columns:
        """The polled servers' state segments (``instances.InstanceRecords.poll``)."""
        if self.origin is None:
            self.origin = now
        return self.records.poll(servers, now, self.origin)

    # -- numbers ---------------------------------------------------------------------------
    def counters(self, now: float | None = None) -> dict[str, Any]:
        """The exact numbers behind the metrics, over every event ingested (filters do not
        apply). ``reschedules`` and ``messages_per_build`` are :mod:`lab.metrics`'s, as in
        ``Trace.summary``. With ``now``, also ``builds_per_second`` (instances reaching
        ACTIVE/ERROR in the last 10 s, / 10)."""
        finals = Counter(status for status, _ in self.records.finals.values())
        finished = finals["ACTIVE"] + finals["ERROR"]
        out = {
            "events": self.events,
            "routed": self._phases["routed"], "queued": self._phases["queued"],
            "dropped": self._phases["dropped"], "expired": self._phases["expired"],
            "delayed": self._phases["delayed"], "waiting": len(self._waiting),
            "by_method": dict(self._by_method),
            "reschedules": self._reschedules,
            "select_destinations_calls": self._select_calls,
            "builds_started": self._builds.builds, "build_messages": self._builds.messages,
            "messages_per_build": self._builds.per_build,
            "finished": finished, "active": finals["ACTIVE"], "error": finals["ERROR"],
            "success_rate": finals["ACTIVE"] / finished if finished else None,
            "attempts": dict(self._attempts),
            "hosts_tried": {u: [t[a][1] for a in sorted(t)] for u, t in self._tries.items()},
        }
        edges: Counter[tuple[str, str]] = Counter()
        for (src, dst, _, _), n in self._edges.items():
            edges[src, dst] += n
        out["edges"] = dict(edges)                   # routed messages per (src, dst)
        if now is not None:
            recent = sum(1 for _, when in self.records.finals.values() if now - when <= RATE_WINDOW)
            out["builds_per_second"] = recent / RATE_WINDOW
        return out

    def metrics_data(self, now: float, api_latencies_ms: list[float] | None = None,
                     first: Iterable[str] = ()) -> Columns:
        """The metrics table: ``name`` and display ``value`` (strings). Names are stable
        (``METRICS``): builds per second, success rate, finished builds, builds started,
        reschedules, messages per build, select_destinations calls, messages routed,
        queued, dropped, expired, API create p50 (ms) (when latencies are given), then the
        most frequent delivered (kind, method) pairs as "cast build_instances". The names
        in ``first`` (what a lesson is about) come first, in their order."""
        c = self.counters(now)
        rate = c["success_rate"]
        rows = [
            ("builds per second", f"{c['builds_per_second']:.1f}"),
            ("success rate", "-" if rate is None else f"{rate:.0%}"),
            ("finished builds", str(c["finished"])),
            ("builds started", str(c["builds_started"])),
            ("reschedules", str(c["reschedules"])),
            ("messages per build", f"{c['messages_per_build']:.1f}"),
            ("select_destinations calls", str(c["select_destinations_calls"])),
            ("messages routed", str(c["routed"])),
            ("queued", str(c["queued"])),
            ("dropped", str(c["dropped"])),
            ("expired", str(c["expired"])),
        ]
        if api_latencies_ms:
            rows.append(("API create p50 (ms)", f"{median(api_latencies_ms):.0f}"))
        top = sorted(self._by_method.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_METHODS]
        rows += [(f"{kind} {method}", str(n)) for (kind, method), n in top]
        wanted = [n for n in first if n in {r[0] for r in rows}]
        rows.sort(key=lambda r: wanted.index(r[0]) if r[0] in wanted else len(wanted))
        return {"name": [r[0] for r in rows], "value": [r[1] for r in rows]}
