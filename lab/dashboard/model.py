"""The dashboard's model: trace events and polled records in, column dicts out.

Pure Python (plus networkx for the topology): no Bokeh, no Tornado, no ZeroMQ, so every
number the dashboard draws is unit-tested without a server. One ``DashboardModel`` per
browser session:

- ``ingest(events)`` counts every event (the counters are exact whatever the filters) and
  returns the rows of the *visible* ones for the ``messages`` source (one animated dot
  each) and the ``timeline`` source (one segment each in the time-space diagram);
- ``nodes_data`` / ``edges_data`` / ``reschedule_data`` draw the topology, laid out by
  :func:`topology_layout` in a fixed box, x 0..10 and y 0..6 (y up);
- ``instances_data`` remembers each instance's task-state transitions across polls;
- ``metrics_data`` / ``counters`` are the live numbers.

Names and messages are users' text (markup, quotes, right-to-left letters, emoji, up to
255 characters). The columns hold them verbatim, for Bokeh draws glyph text on a canvas,
puts option labels in text nodes and escapes ``@field`` in tooltips itself (never write
``{safe}`` in one): escaping them here would show "&lt;b&gt;". Only HTML built here is
escaped (``metrics_html``). A name with right-to-left text or bidi controls is isolated
where other text follows it (``isolated``), so it cannot reorder that text.

Times in rows are seconds since ``origin`` (the first event's ``sent`` unless given).
:class:`PlaybackClock` paces a burst of events for replay (no timers: times in, times out).
"""
from __future__ import annotations

import html
import math
import unicodedata
from collections import Counter, deque
from dataclasses import dataclass
from statistics import median
from typing import Any, Iterable

import networkx as nx

from lab.trace import (HOUSEKEEPING_PREFIXES, WORKFLOW_METHODS, is_reschedule, lane_key,
                       lane_order, short, topic_of)
from orchestrator.conductor.rpcapi import DB_PROXY_METHODS
from orchestrator.scheduler.rpcapi import INSTANCE_INFO_METHODS

__all__ = [
    "KIND_COLORS", "DROP_COLOR", "KIND_MARKERS", "TASK_STATE_COLORS", "NODE_STATE_COLORS",
    "MESSAGE_COLUMNS", "TIMELINE_COLUMNS", "NODE_COLUMNS", "EDGE_COLUMNS",
    "RESCHEDULE_COLUMNS", "INSTANCE_COLUMNS", "METRIC_COLUMNS", "metrics_html", "BUS", "BOX",
    "topology_layout", "topology_graph", "Updates", "DashboardModel", "PlaybackClock",
    "instance_options", "isolated", "OPTION_CHARS",
]

Event = dict[str, Any]
Columns = dict[str, list]

KIND_COLORS = {"cast": "#1f77b4", "call": "#ff7f0e", "reply": "#2ca02c", "fanout": "#9467bd",
               "notification": "#7f7f7f"}
DROP_COLOR = "#d62728"
OTHER_COLOR = "#17becf"            # a kind outside KIND_COLORS
KIND_MARKERS = {"cast": "circle", "call": "square", "reply": "triangle", "fanout": "diamond",
                "notification": "inverted_triangle"}
TASK_STATE_COLORS = {"scheduling": "#9ecae1", "networking": "#6baed6",
                     "block_device_mapping": "#4292c6", "spawning": "#2171b5",
                     "ACTIVE": "#2ca02c", "ERROR": "#d62728", "DELETED": "#7f7f7f",
                     # moving an instance (issue #7)
                     "RESIZE": "#9467bd", "VERIFY_RESIZE": "#bcbd22",
                     "REVERT_RESIZE": "#8c564b", "REBUILD": "#17becf"}
# A server seen in one of these was built: its build counts as a success.
BUILT_STATUSES = ("ACTIVE", "RESIZE", "VERIFY_RESIZE", "REVERT_RESIZE", "REBUILD")
UNKNOWN_STATE_COLOR = "#c7c7c7"
NODE_STATE_COLORS = {"up": "#2e8b57", "down": "#d62728", "paused": "#b8860b",
                     "failing": "#ff7f0e", "unreachable": "#8c564b", "bus": "#555555"}
IN_PROGRESS_COLOR, ACTIVE_COLOR, ERROR_COLOR = "#ff7f0e", "#2ca02c", "#d62728"

MESSAGE_COLUMNS = ("seq", "t", "sent", "kind", "phase", "src", "dst", "method", "instance",
                   "attempt", "reason", "x0", "y0", "x1", "y1", "color", "marker", "label")
TIMELINE_COLUMNS = ("seq", "t0", "t1", "y0", "y1", "kind", "phase", "color", "dash", "method",
                    "instance", "attempt", "src", "dst", "label")
NODE_COLUMNS = ("x", "y", "name", "label", "state", "color", "info")
EDGE_COLUMNS = ("xs", "ys", "src", "dst", "count", "width", "color")
RESCHEDULE_COLUMNS = ("instance", "text", "x", "y", "color", "xs", "ys", "attempt", "hosts")
INSTANCE_COLUMNS = ("instance", "name", "y", "start", "end", "state", "color", "fault",
                    "host", "attempts")
METRIC_COLUMNS = ("name", "value")

# -- the topology's box ----------------------------------------------------------------------
BOX = (0.0, 10.0, 0.0, 6.0)          # x_min, x_max, y_min, y_max
BUS = "bus"                          # the node where queued messages wait
BUS_POSITION = (4.5, 1.4)            # between conductor and scheduler, below the main row
MAIN_Y = 3.2                         # the row a tier of one sits on
TIER_X = {"api": 0.9, "conductor": 3.3, "scheduler": 5.7, "other": 7.2, "compute": 8.6}
MAX_SPACING, HALF_SPAN = 1.2, 2.4    # a tier spreads over MAIN_Y +- HALF_SPAN at most
OTHER_Y0, OTHER_STEP = 0.6, 0.6      # unknown topics: bottom of their column, upwards
LAB_X0, LAB_Y0, LAB_STEP, LAB_PER_ROW = 0.4, 5.7, 0.8, 4

HEARTBEAT_METHODS = frozenset({"service_update", "compute_node_update", "instances_on_host",
                               "evacuation_cleanup"})
DASHES = {"call": "dashed", "reply": "dotted"}          # everything else: solid
# Where an attempt lands on a compute: a build, or a resize's destination.
TRY_METHODS = ("build_and_run_instance", "prep_resize")
INSTANCE_LANES, RESCHEDULE_ROWS, REMEMBERED_INSTANCES = 30, 12, 500
ARC, ARC_MAX = 0.25, 0.9             # compute-to-compute arcs: bulge per unit of height
RATE_WINDOW, TOP_METHODS = 10.0, 8
LABEL_DX, LABEL_DY = 0.0, 0.3       # reschedule labels: stacked beside their compute
OPTIONS, OPTION_CHARS = 50, 60       # the instance filter: newest servers, name shown
# Bidirectional classes that can reorder text following a name (RTL letters, embeddings,
# overrides, isolates); unicodedata.bidirectional's names.
BIDI_REORDERING = frozenset({"R", "AL", "RLE", "RLO", "LRE", "LRO", "RLI", "LRI", "FSI",
                             "PDF", "PDI"})
FSI, PDI = "\u2068", "\u2069"        # first-strong isolate ... pop directional isolate


# -- layout ----------------------------------------------------------------------------------
def _tier(name: str) -> str:
    topic = topic_of(name)
    if name == BUS:
        return BUS
    if topic in TIER_X or topic == "lab":
        return topic
    return "other"


def _is_lab(name: str) -> bool:
    return topic_of(name) == "lab"


def topology_graph(services: Iterable[str]) -> nx.Graph:
    """The services and the bus as a graph: every service is linked to the bus (all traffic
    goes through it). Nodes carry ``tier``, ``label`` (short name) and ``pos`` (x, y)."""
    graph = nx.Graph()
    for name in lane_order(s for s in services if s and s != BUS):
        graph.add_node(name, tier=_tier(name), label=short(name))
    graph.add_node(BUS, tier=BUS, label=BUS)
    graph.add_edges_from((BUS, name) for name in graph if name != BUS)
    tiers: dict[str, list[str]] = {}
    for name, tier in graph.nodes(data="tier"):
        tiers.setdefault(tier, []).append(name)      # lane order within a tier
    pos: dict[str, tuple[float, float]] = {BUS: BUS_POSITION}
    for tier, names in tiers.items():
        if tier == BUS:
            continue
        for i, name in enumerate(names):
            if tier == "lab":
                row, col = divmod(i, LAB_PER_ROW)
                xy = (LAB_X0 + col * LAB_STEP, LAB_Y0 - row * 0.5)
            elif tier == "other":
                xy = (TIER_X["other"], OTHER_Y0 + i * OTHER_STEP)
            else:
                n = len(names)
                spacing = min(MAX_SPACING, 2 * HALF_SPAN / (n - 1)) if n > 1 else 0.0
                xy = (TIER_X[tier], MAIN_Y + ((n - 1) / 2 - i) * spacing)   # first on top
            pos[name] = (round(_clamp(xy[0], BOX[0], BOX[1]), 3),
                         round(_clamp(xy[1], BOX[2], BOX[3]), 3))
    nx.set_node_attributes(graph, pos, "pos")
    return graph


def topology_layout(services: Iterable[str]) -> dict[str, tuple[float, float]]:
    """Position of every service and of the ``"bus"`` node in the box x 0..10, y 0..6:
    tiers left to right api | conductor | scheduler | (other topics) | computes, a tier's
    services spread vertically in lane order (the first on top), the bus centred below the
    main row, the lab's clients (``lab.*``) in a row at the top left. Deterministic: the
    same names in any order give the same positions."""
    return dict(topology_graph(services).nodes(data="pos"))


def _clamp(v: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, v))


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


def arc_bulge(y0: float, y1: float) -> float:
    """How far right an arc between two nodes of one column bows out (the browser's
    dots follow the same curve: ``ARC`` in animate.py)."""
    return min(ARC_MAX, ARC * abs(y1 - y0))


def _arc(x: float, y0: float, y1: float, points: int = 9) -> tuple[list[float], list[float]]:
    """A message between two computes (a resize's direct hop) drawn as an arc to the
    right of their column, so it does not run through the computes in between. The
    way down bows a little further out than the way up, so both directions show."""
    bulge = arc_bulge(y0, y1) * (1.15 if y1 < y0 else 1.0)
    ts = [i / (points - 1) for i in range(points)]
    return ([round(x + bulge * math.sin(math.pi * t), 3) for t in ts],
            [round(y0 + (y1 - y0) * t, 3) for t in ts])


def metrics_html(columns: Columns) -> str:
    """The metrics (``metrics_data``'s columns) as a small HTML table, text escaped."""
    rows = "".join(f"<tr><td style='padding:2px 12px 2px 4px'>{html.escape(str(n))}</td>"
                   f"<td style='text-align:right;padding:2px 4px'>{html.escape(str(v))}</td>"
                   "</tr>" for n, v in zip(columns.get("name", []), columns.get("value", [])))
    return ("<table style='border-collapse:collapse;font-size:13px;width:100%'>"
            "<tr><th style='text-align:left;border-bottom:1px solid #999'>metric</th>"
            "<th style='text-align:right;border-bottom:1px solid #999'>value</th></tr>"
            f"{rows}</table>")


def isolated(text: str) -> str:
    """``text`` as is, or between FSI and PDI when it holds right-to-left letters or bidi
    controls: then whatever is written after it ("vm: BuildAbortException", "(id)") keeps
    its order, as HTML's ``<bdi>`` would keep it."""
    if any(unicodedata.bidirectional(ch) in BIDI_REORDERING for ch in text):
        return f"{FSI}{text}{PDI}"
    return text


def instance_options(servers: list[dict[str, Any]], limit: int = OPTIONS) -> list[tuple[str, str]]:
    """The instance filter's choices, newest ``limit`` servers: (id, label), the label
    the name (verbatim text, cut to ``OPTION_CHARS`` with an ellipsis, isolated) and the
    id's first 8 characters, so two servers of one name stay two choices."""
    out = []
    for server in servers[-limit:] if limit else []:
        uuid = server.get("id")
        if not uuid:
            continue
        name = server.get("name") or ""
        if len(name) > OPTION_CHARS:
            name = name[:OPTION_CHARS - 1] + "…"
        out.append((uuid, f"{isolated(name)} ({uuid[:8]})" if name else uuid))
    return out


def _empty(columns: Iterable[str]) -> Columns:
    return {c: [] for c in columns}


@dataclass
class Updates:
    """The rows one ``ingest`` produced, ready for ``ColumnDataSource.stream``."""
    messages: Columns
    timeline: Columns

    def __len__(self) -> int:
        return len(self.messages["seq"])


class _Instance:
    """What the model remembers of one polled instance."""
    __slots__ = ("uuid", "name", "created", "first_seen", "last_seen", "fault", "host",
                 "attempts", "segments")

    def __init__(self, uuid: str, now: float):
        self.uuid, self.first_seen, self.last_seen = uuid, now, now
        self.name = self.created = self.fault = self.host = ""
        self.attempts = 0
        self.segments: list[list[Any]] = []          # [state, start, end or None]


class DashboardModel:
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
        self._builds: set[str] = set()
        self._request_messages: Counter[str] = Counter()   # not (yet) a build request
        self._build_requests: set[str] = set()
        self._build_messages = 0
        self._waiting: set[str] = set()              # msg_ids queued at the bus
        # per instance: max attempt; per attempt: (dispatcher, host), reschedule target,
        # scheduler called; when its latest event came (in events ingested)
        self._attempts: dict[str, int] = {}
        self._tries: dict[str, dict[int, tuple[str, str]]] = {}
        self._rescheduled_to: dict[str, dict[int, str]] = {}
        self._selected_by: dict[str, dict[int, str]] = {}
        self._last_seen: dict[str, int] = {}
        self._fault_by: dict[str, str] = {}          # who sent instance_fault_create
        # polled instances
        self._instances: dict[str, _Instance] = {}
        self._final: dict[str, tuple[str, float]] = {}   # uuid -> (ACTIVE|ERROR, when)

    # -- services and filters --------------------------------------------------------------
    def _relayout(self) -> None:
        self.positions = topology_layout(self.services)
        self.layout_version += 1

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
        if not self.show_lab and (_is_lab(e["src"]) or _is_lab(e["dst"])):
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
        computes, others (the lab's clients only while shown). Row ``y`` = index here."""
        return [s for s in self.services if self.show_lab or not _is_lab(s)]

    # -- positions -------------------------------------------------------------------------
    def _pos(self, name: str) -> tuple[float, float]:
        """A node's position; a bare topic (``compute``: no receiver chosen yet) sits at the
        middle of its topic's nodes, or where its tier would be."""
        if name in self.positions:
            return self.positions[name]
        topic = topic_of(name)
        mates = [p for n, p in self.positions.items() if n != BUS and topic_of(n) == topic]
        if mates:
            return (round(sum(p[0] for p in mates) / len(mates), 3),
                    round(sum(p[1] for p in mates) / len(mates), 3))
        tier = _tier(name)
        if tier == "lab":
            return (LAB_X0, LAB_Y0)
        return (TIER_X[tier], MAIN_Y)

    @staticmethod
    def _lane(index: dict[str, int], name: str, default: int) -> int:
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
        if method == "build_and_run_instance":
            self._builds.add(uuid)
        if method == "instance_fault_create" and kind == "call" and uuid:
            self._fault_by[uuid] = src
        if method in TRY_METHODS and uuid and kind in ("cast", "call") \
                and topic_of(src) != "compute" and topic_of(dst) == "compute" \
                and e["reason"] != "duplicate":
            self._tries.setdefault(uuid, {})[attempt] = (src, dst)
        # messages per build, as lab.trace's summary counts them: the workflow and
        # database-proxy messages of requests that built something
        rid = e["request_id"]
        if method in WORKFLOW_METHODS or method in DB_PROXY_METHODS:
            if rid in self._build_requests:
                self._build_messages += 1
            else:
                self._request_messages[rid] += 1
        if method == "build_and_run_instance" and rid not in self._build_requests:
            self._build_requests.add(rid)
            self._build_messages += self._request_messages.pop(rid, 0)

    # -- topology --------------------------------------------------------------------------
    def nodes_data(self, states: dict[str, str] | None = None,
                   info: dict[str, str] | None = None) -> Columns:
        """One row per service (the lab's clients only while shown) and the bus. ``states``
        and ``info`` are keyed by identity (a short name works too); state defaults to
        ``up``; the bus's info defaults to the number of messages waiting there."""
        states, info = states or {}, info or {}
        out = _empty(NODE_COLUMNS)
        for name in [*self.lanes(), BUS]:
            if name == BUS:
                state = BUS
                waiting = len(self._waiting)
                text = info.get(BUS, f"{waiting} waiting" if waiting else "")
            else:
                state = states.get(name) or states.get(short(name)) or "up"
                text = info.get(name, info.get(short(name), ""))
            x, y = self.positions[name]
            row = (x, y, name, short(name), state,
                   NODE_STATE_COLORS.get(state, UNKNOWN_STATE_COLOR), text)
            for column, value in zip(NODE_COLUMNS, row):
                out[column].append(value)
        return out

    def edges_data(self) -> Columns:
        """One row per (src, dst) pair that delivered messages the filters show (the
        instance filter aside: edges are totals). ``width`` = 1 + 3 log10(1 + count);
        ``color`` = the colour of the pair's most frequent kind. The two directions of a
        pair are drawn side by side (offset 0.06 to the right of travel)."""
        pairs: dict[tuple[str, str], Counter[str]] = {}
        for (src, dst, kind, category), n in self._edges.items():
            if not self.show_lab and (_is_lab(src) or _is_lab(dst)):
                continue
            if (category == "heartbeat" and not self.show_heartbeats) or (
                    category == "db" and not self.show_db_proxy):
                continue
            pairs.setdefault((src, dst), Counter())[kind] += n
        out = _empty(EDGE_COLUMNS)
        kinds = list(KIND_COLORS)
        for (src, dst) in sorted(pairs, key=lambda p: (lane_key(p[0]), lane_key(p[1]))):
            by_kind = pairs[src, dst]
            count = sum(by_kind.values())
            top = min(by_kind, key=lambda k: (-by_kind[k], kinds.index(k) if k in kinds
                                              else len(kinds), k))
            (x0, y0), (x1, y1) = self._pos(src), self._pos(dst)
            length = math.hypot(x1 - x0, y1 - y0) or 1.0
            ox, oy = 0.06 * (y1 - y0) / length, -0.06 * (x1 - x0) / length
            if x0 == x1 and y0 != y1:      # same tier (compute to compute): an arc
                xs, ys = _arc(x0, y0, y1)
            else:
                xs = [round(x0 + ox, 3), round(x1 + ox, 3)]
                ys = [round(y0 + oy, 3), round(y1 + oy, 3)]
            row = (xs, ys, src, dst, count,
                   round(1.0 + 3.0 * math.log10(1 + count), 3),
                   KIND_COLORS.get(top, OTHER_COLOR))
            for column, value in zip(EDGE_COLUMNS, row):
                out[column].append(value)
        return out

    def _path(self, uuid: str) -> list[tuple[float, float]]:
        """The instance's trip: dispatcher -> host(1), then per further attempt: where the
        host handed it back (conductor, or the scheduler in the legacy flow) -> the
        scheduler it asked again (if it did) -> dispatcher -> host(k)."""
        tries = self._tries.get(uuid, {})
        back = self._rescheduled_to.get(uuid, {})
        asked = self._selected_by.get(uuid, {})
        points: list[tuple[float, float]] = []

        def go(name: str) -> None:
            p = self._pos(name)
            if not points or points[-1] != p:
                points.append(p)

        for attempt in sorted(set(tries) | set(back) | {a for a in asked if a > 1}):
            if attempt in back:
                go(back[attempt])
            if attempt > 1 and attempt in asked:
                go(asked[attempt])
            if attempt in tries:
                go(tries[attempt][0])
                go(tries[attempt][1])
        return points

    def reschedule_data(self) -> Columns:
        """One row per instance that needed more than one attempt (the newest
        ``RESCHEDULE_ROWS``): ``text`` "attempt k/max", placed beside the compute of its
        latest attempt (stacked when several share one), colour orange while building, red
        in ERROR, green once ACTIVE, and its path as the polyline ``xs``/``ys``."""
        out = _empty(RESCHEDULE_COLUMNS)
        chosen = sorted((u for u, a in self._attempts.items() if a > 1),
                        key=lambda u: self._last_seen.get(u, 0))[-RESCHEDULE_ROWS:]
        stacked: Counter[tuple[float, float]] = Counter()
        for uuid in chosen:
            tries = self._tries.get(uuid, {})
            hosts = [tries[a][1] for a in sorted(tries)]
            path = self._path(uuid)
            anchor = self._pos(hosts[-1]) if hosts else (path[-1] if path else BUS_POSITION)
            k = stacked[anchor]
            stacked[anchor] += 1
            final = self._final.get(uuid, ("", 0.0))[0]
            color = {"ACTIVE": ACTIVE_COLOR, "ERROR": ERROR_COLOR}.get(final, IN_PROGRESS_COLOR)
            attempt = self._attempts[uuid]
            row = (uuid, f"attempt {attempt}/{self.max_attempts}",
                   round(anchor[0] + LABEL_DX, 3), round(anchor[1] + 0.15 - k * LABEL_DY, 3),
                   color, [p[0] for p in path], [p[1] for p in path], attempt,
                   " > ".join(short(h) for h in hosts))
            for column, value in zip(RESCHEDULE_COLUMNS, row):
                out[column].append(value)
        return out

    # -- faults ----------------------------------------------------------------------------
    def fault_labels(self, servers: list[dict[str, Any]]) -> Columns:
        """The newest failed instances, named where they failed: at the compute that wrote
        the fault through the database proxy (a fatal build, a resize step that failed),
        else at the conductor, which writes its own (NoValidHost, a scheduler timeout, a
        migration it ended; in the legacy flow the scheduler writes NoValidHost, shown at
        the conductor too). A fault the trace never showed (the dashboard came later):
        BuildAbortException at the instance's host, anything else at the conductor. An
        instance seen out of ERROR forgets who wrote its last fault."""
        rows: Columns = {"x": [], "y": [], "text": []}
        for server in servers:
            if server.get("status") != "ERROR":
                self._fault_by.pop(server.get("id", ""), None)
        conductor = next((n for n in self.services if topic_of(n) == "conductor"),
                         "conductor.conductor1")
        failed = [s for s in servers if s.get("status") == "ERROR" and s.get("fault")][-4:]
        for i, server in enumerate(reversed(failed)):
            kind = server["fault"]["message"].split(":", 1)[0]
            host = server.get("OS-EXT-SRV-ATTR:host")
            at = self._fault_by.get(server.get("id", "")) or (
                f"compute.{host}" if host and kind == "BuildAbortException" else conductor)
            x, y = self.positions.get(at, self.positions.get(conductor, (3.3, 3.2)))
            rows["x"].append(x - 0.9)
            rows["y"].append(y - 0.9 - 0.35 * i)
            rows["text"].append(f"{isolated(server.get('name') or '')}: {kind}")
        return rows

    # -- instances -------------------------------------------------------------------------
    def instances_data(self, servers: list[dict[str, Any]], now: float) -> Columns:
        """Remember the state of each polled server record (API shape) and return one row
        per state segment of the newest ``INSTANCE_LANES`` instances, the oldest of them at
        ``y`` 0. An instance's state is its task_state while BUILD, else its status; a
        segment starts when a poll first shows the state (first sight = ``now``), the open
        one ends at ``now`` (or when the instance was last polled, if it is gone)."""
        if self.origin is None:
            self.origin = now
        polled = set()
        for server in servers:
            uuid = server.get("id")
            if not uuid:
                continue
            polled.add(uuid)
            inst = self._instances.get(uuid)
            if inst is None:
                inst = self._instances[uuid] = _Instance(uuid, now)
            status = server.get("status") or "UNKNOWN"
            state = (server.get("OS-EXT-STS:task_state") or "BUILD") if status == "BUILD" \
                else status
            inst.name = server.get("name") or uuid[:8]
            inst.created = server.get("created") or ""
            inst.fault = (server.get("fault") or {}).get("message", "")
            inst.host = server.get("OS-EXT-SRV-ATTR:host") or ""
            inst.attempts = server.get("OS-EXT-LAB:num_attempts") or 0
            inst.last_seen = now
            if not inst.segments or inst.segments[-1][0] != state:
                if inst.segments:
                    inst.segments[-1][2] = now
                inst.segments.append([state, now, None])
            final = "ACTIVE" if status in BUILT_STATUSES else status
            if final in ("ACTIVE", "ERROR") and self._final.get(uuid, ("",))[0] != final:
                self._final[uuid] = (final, now)
        order = sorted(self._instances.values(),
                       key=lambda i: (i.first_seen, i.created, i.name, i.uuid))
        for gone in order[:-REMEMBERED_INSTANCES]:
            del self._instances[gone.uuid]
        out = _empty(INSTANCE_COLUMNS)
        origin = self.origin
        for y, inst in enumerate(order[-INSTANCE_LANES:]):
            until = now if inst.uuid in polled else inst.last_seen
            for state, start, end in inst.segments:
                row = (inst.uuid, inst.name, y, start - origin,
                       (until if end is None else end) - origin, state,
                       TASK_STATE_COLORS.get(state, UNKNOWN_STATE_COLOR), inst.fault,
                       inst.host, inst.attempts)
                for column, value in zip(INSTANCE_COLUMNS, row):
                    out[column].append(value)
        return out

    # -- numbers ---------------------------------------------------------------------------
    def counters(self, now: float | None = None) -> dict[str, Any]:
        """The exact numbers behind the metrics, over every event ingested (filters do not
        apply). ``messages_per_build`` is lab.trace's definition (``Trace.summary``): the
        routed workflow and database-proxy messages of the requests that built something,
        per instance built. With ``now``, also ``builds_per_second`` (instances reaching
        ACTIVE/ERROR in the last 10 s, / 10)."""
        finals = Counter(status for status, _ in self._final.values())
        finished = finals["ACTIVE"] + finals["ERROR"]
        builds = len(self._builds)
        out = {
            "events": self.events,
            "routed": self._phases["routed"], "queued": self._phases["queued"],
            "dropped": self._phases["dropped"], "expired": self._phases["expired"],
            "delayed": self._phases["delayed"], "waiting": len(self._waiting),
            "by_method": dict(self._by_method),
            "reschedules": self._reschedules,
            "select_destinations_calls": self._select_calls,
            "builds_started": builds, "build_messages": self._build_messages,
            "messages_per_build": self._build_messages / builds if builds else 0.0,
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
            recent = sum(1 for _, when in self._final.values() if now - when <= RATE_WINDOW)
            out["builds_per_second"] = recent / RATE_WINDOW
        return out

    def metrics_data(self, now: float, api_latencies_ms: list[float] | None = None) -> Columns:
        """The metrics table: ``name`` and display ``value`` (strings). Names are stable:
        builds per second, success rate, finished builds, builds started, reschedules,
        messages per build, select_destinations calls, messages routed, queued, dropped,
        expired, API create p50 (ms) (when latencies are given), then the most frequent
        delivered (kind, method) pairs as "cast build_instances"."""
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
        return {"name": [r[0] for r in rows], "value": [r[1] for r in rows]}


class PlaybackClock:
    """Paces a burst of events: each starts animating at least ``min_gap / speed`` seconds
    after the previous one and never before ``now``; each takes ``duration / speed`` to
    play. Times in, times out (no timers), for server-side replay and tests."""

    def __init__(self, min_gap: float = 0.15, duration: float = 0.8):
        self.min_gap = min_gap
        self.duration = duration
        self._speed = 1.0
        self.paused = False
        self._paused_at = 0.0
        self._last = -math.inf                     # start of the latest scheduled event
        self._pending: deque[float] = deque()      # scheduled starts, ascending

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"speed must be positive, not {value!r}")
        self._speed = float(value)

    @property
    def gap(self) -> float:
        return self.min_gap / self._speed

    @property
    def flight(self) -> float:
        """How long one event's animation lasts at the current speed."""
        return self.duration / self._speed

    def _now(self, now: float) -> float:
        return self._paused_at if self.paused else now

    def _drop_started(self, now: float) -> None:
        while self._pending and self._pending[0] <= now:
            self._pending.popleft()

    def schedule(self, n_new: int, now: float) -> list[float]:
        """Start times of ``n_new`` new events (while paused: as if time stood at the
        pause; ``resume`` shifts them)."""
        t = max(self._now(now), self._last + self.gap)
        starts = [t + i * self.gap for i in range(n_new)]
        if starts:
            self._last = starts[-1]
            self._pending.extend(starts)
        return starts

    def behind(self, now: float) -> int:
        """Scheduled events that have not started yet."""
        self._drop_started(self._now(now))
        return len(self._pending)

    def jump_to_live(self, now: float) -> int:
        """Skip the backlog; the next event starts at once. Returns how many were skipped."""
        skipped = self.behind(now)
        self._pending.clear()
        self._last = -math.inf
        return skipped

    def pause(self, now: float) -> None:
        if not self.paused:
            self._drop_started(now)
            self.paused, self._paused_at = True, now

    def resume(self, now: float) -> float:
        """Carry on: every event not started at the pause moves later by the time spent
        paused (returned)."""
        if not self.paused:
            return 0.0
        shift = max(0.0, now - self._paused_at)
        self._drop_started(self._paused_at)
        self._pending = deque(t + shift for t in self._pending)
        if self._last > self._paused_at:
            self._last += shift
        self.paused = False
        return shift
