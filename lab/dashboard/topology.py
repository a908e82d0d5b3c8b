"""The topology's columns: what ``DashboardModel`` draws of who talks to whom.

- ``nodes_data``: one row per drawn node (a service, a group of computes, the bus): its
  place and state, and where its name and caption go (``layout.NodeStyle``);
- ``edges_data``: one row per pair that talked, straight, or an arc between computes;
- ``reschedule_data``: one row per rescheduled instance: its loop as a polyline;
- ``annotations_data``: the notes beside the nodes, one per compute at most (its
  reschedules, counted: "attempt 2/3", "3 rescheduling"; or the newest fault written
  there; a group's busiest host) and, under the conductor, the newest faults it wrote.

A mixin of ``DashboardModel``: it reads the model's counters (``_edges``, ``_tries``...)
and its ``layout``; it keeps nothing of its own.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable

from lab.trace import lane_key, short, topic_of

from .layout import BUS, BUS_POSITION, X_RANGE, Layout, NodeStyle, arc, topology_layout
from .palette import (ACTIVE_COLOR, ERROR_COLOR, IN_PROGRESS_COLOR, KIND_COLORS,
                      NODE_STATE_COLORS, OTHER_COLOR, STATE_SEVERITY, UNKNOWN_STATE_COLOR)
from .text import isolated

__all__ = ["Topology", "captions", "NODE_COLUMNS", "EDGE_COLUMNS", "RESCHEDULE_COLUMNS",
           "ANNOTATION_COLUMNS", "NOTE_COLORS"]

Columns = dict[str, list]
NODE_COLUMNS = ("x", "y", "name", "label", "state", "color", "info", "size", "label_dx",
                "label_dy", "label_align", "label_size", "caption_dx", "caption_dy")
EDGE_COLUMNS = ("xs", "ys", "src", "dst", "count", "width", "color")
RESCHEDULE_COLUMNS = ("instance", "text", "x", "y", "color", "xs", "ys", "attempt", "hosts")
ANNOTATION_COLUMNS = ("x", "y", "dx", "dy", "text", "color", "align", "size", "node")
RESCHEDULE_ROWS, CONDUCTOR_FAULTS, NOTE_LINE = 12, 3, 14
SIDE, SIDE_SPAN = 0.06, (0.2, 0.8)   # a pair's two directions apart, along this part
# Notes are text on white: darker than the glyphs' colours, so a projector shows them.
NOTE_COLORS = {"progress": "#b35400", "active": "#1a7f1a", "error": "#c21f1f",
               "info": "#444444"}


def _empty(columns: Iterable[str]) -> Columns:
    return {c: [] for c in columns}


def _append(out: Columns, columns: tuple[str, ...], row: tuple) -> None:
    for column, value in zip(columns, row):
        out[column].append(value)


def _note_size(style: NodeStyle) -> str:
    return f"{min(style.font_pt, 8.5):g}pt"


def _worst(states: Iterable[str]) -> str:
    return max(states, key=lambda s: STATE_SEVERITY.index(s) if s in STATE_SEVERITY else 0,
               default="up")


class Topology:
    """The topology half of ``DashboardModel`` (see the module docstring)."""

    services: list[str]
    show_lab: bool
    show_heartbeats: bool
    show_db_proxy: bool
    max_attempts: int
    layout: Layout
    positions: dict[str, tuple[float, float]]
    layout_version: int

    def _relayout(self) -> None:
        self.layout = topology_layout(self.services)
        self.positions = self.layout.positions
        self.layout_version += 1

    def _pos(self, name: str) -> tuple[float, float]:
        """A node's position; a bare topic (``compute``: no receiver chosen yet) sits at the
        middle of its topic's drawn nodes."""
        if name in self.positions:
            return self.positions[name]
        topic = topic_of(name)
        mates = [self.positions[n] for n in self.layout.nodes() if topic_of(n) == topic]
        if not mates:
            return self.positions[BUS]
        return (round(sum(p[0] for p in mates) / len(mates), 3),
                round(sum(p[1] for p in mates) / len(mates), 3))

    def _drawn_nodes(self) -> list[str]:
        return [n for n in self.layout.nodes() if self.show_lab or topic_of(n) != "lab"]

    # -- nodes -------------------------------------------------------------------------------
    def nodes_data(self, states: dict[str, str] | None = None,
                   info: dict[str, str] | None = None,
                   stats: dict[str, dict[str, int]] | None = None) -> Columns:
        """One row per drawn node. ``states`` and ``info`` (its caption) are keyed by
        identity (a short name works too); state defaults to ``up``; a compute's caption
        defaults to its ``stats`` (``captions``), the bus's to the number of messages
        waiting there. A group of computes takes its worst host's state and says how many
        hosts, down or failing, and how many servers it holds."""
        states, info, stats = states or {}, info or {}, stats or {}

        def look(table: dict[str, Any], name: str, default: Any) -> Any:
            return table.get(name, table.get(short(name), default))

        out = _empty(NODE_COLUMNS)
        for name in self._drawn_nodes():
            members = self.layout.groups.get(name)
            if name == BUS:
                state = BUS
                waiting = len(self._waiting)         # type: ignore[attr-defined]
                text = info.get(BUS, f"{waiting} waiting" if waiting else "")
            elif members is not None:
                member_states = [look(states, m, "up") for m in members]
                state = _worst(member_states)
                text = self._group_caption(member_states, [look(stats, m, {}) for m in members])
            else:
                state = look(states, name, "up")
                text = look(info, name, None)
            style = self.layout.style(name)
            if text is None:
                text = _caption(style, look(stats, name, {}))
            label = short(name) if members is None else short(name).replace("..", "\u2026")
            if style.one_line:
                label, text = (f"{label}  {text}" if text else label), ""
            x, y = self.positions[name]
            _append(out, NODE_COLUMNS, (
                x, y, name, label, state, NODE_STATE_COLORS.get(state, UNKNOWN_STATE_COLOR),
                text, style.size, style.name_dx, style.name_dy, style.name_align,
                f"{style.font_pt:g}pt", style.caption_dx, style.caption_dy))
        return out

    @staticmethod
    def _group_caption(states: list[str], stats: list[dict[str, int]]) -> str:
        counts = Counter(states)
        parts = [f"{len(states)} hosts"]
        parts += [f"{counts[s]} {s}" for s in STATE_SEVERITY[1:] if counts[s]]
        if any(stats):
            parts.append(f"{sum(s.get('vms', 0) for s in stats):,} vms")
        return " \u00b7 ".join(parts)

    # -- edges -------------------------------------------------------------------------------
    def edges_data(self) -> Columns:
        """One row per (src, dst) pair of drawn nodes that delivered messages the filters
        show (the instance filter aside: edges are totals; a group's messages among its own
        hosts are not drawn). ``width`` = 1 + 3 log10(1 + count); ``color`` = the colour of
        the pair's most frequent kind. The two directions of a pair are drawn side by side
        (0.06 to the right of travel) along their middle, meeting at the nodes' centres (an
        offset kept to the end would bring a line into a dense column's neighbours);
        computes of one column talk along an arc."""
        pairs: dict[tuple[str, str], Counter[str]] = {}
        for (src, dst, kind, category), n in self._edges.items():     # type: ignore[attr-defined]
            if not self.show_lab and "lab" in (topic_of(src), topic_of(dst)):
                continue
            if (category == "heartbeat" and not self.show_heartbeats) or (
                    category == "db" and not self.show_db_proxy):
                continue
            src, dst = self.layout.drawn(src), self.layout.drawn(dst)
            if src != dst:
                pairs.setdefault((src, dst), Counter())[kind] += n
        out = _empty(EDGE_COLUMNS)
        kinds = list(KIND_COLORS)
        for (src, dst) in sorted(pairs, key=lambda p: (lane_key(p[0]), lane_key(p[1]))):
            by_kind = pairs[src, dst]
            count = sum(by_kind.values())
            top = min(by_kind, key=lambda k: (-by_kind[k], kinds.index(k) if k in kinds
                                              else len(kinds), k))
            (x0, y0), (x1, y1) = self._pos(src), self._pos(dst)
            if x0 == x1 and y0 != y1 and topic_of(src) == topic_of(dst) == "compute":
                xs, ys = arc(x0, y0, y1)
            else:
                length = math.hypot(x1 - x0, y1 - y0) or 1.0
                ox, oy = SIDE * (y1 - y0) / length, -SIDE * (x1 - x0) / length
                xs = [x0, *(round(x0 + t * (x1 - x0) + ox, 3) for t in SIDE_SPAN), x1]
                ys = [y0, *(round(y0 + t * (y1 - y0) + oy, 3) for t in SIDE_SPAN), y1]
            _append(out, EDGE_COLUMNS, (xs, ys, src, dst, count,
                                        round(1.0 + 3.0 * math.log10(1 + count), 3),
                                        KIND_COLORS.get(top, OTHER_COLOR)))
        return out

    # -- the reschedule loop -----------------------------------------------------------------
    def _path(self, uuid: str) -> list[tuple[float, float]]:
        """The instance's trip: dispatcher -> host(1), then per further attempt: where the
        host handed it back (conductor, or the scheduler in the legacy flow) -> the
        scheduler it asked again (if it did) -> dispatcher -> host(k)."""
        tries = self._tries.get(uuid, {})                      # type: ignore[attr-defined]
        back = self._rescheduled_to.get(uuid, {})              # type: ignore[attr-defined]
        asked = self._selected_by.get(uuid, {})                # type: ignore[attr-defined]
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

    def _rescheduled(self) -> list[str]:
        """The instances that needed more than one attempt, the newest last."""
        attempts, seen = self._attempts, self._last_seen          # type: ignore[attr-defined]
        return sorted((u for u, a in attempts.items() if a > 1), key=lambda u: seen.get(u, 0))

    def _final_of(self, uuid: str) -> str:
        return self.records.finals.get(uuid, ("", 0.0))[0]       # type: ignore[attr-defined]

    def _last_host(self, uuid: str) -> str | None:
        tries = self._tries.get(uuid, {})                        # type: ignore[attr-defined]
        return tries[max(tries)][1] if tries else None

    def reschedule_data(self) -> Columns:
        """One row per rescheduled instance (the newest ``RESCHEDULE_ROWS``): its loop as the
        polyline ``xs``/``ys``, "attempt k/max", the hosts tried, where it is now (``x``,
        ``y``: the drawn node of its latest attempt), and the loop's colour: orange while
        building, red in ERROR, green once ACTIVE. (The notes beside the computes are
        ``annotations_data``.)"""
        out = _empty(RESCHEDULE_COLUMNS)
        for uuid in self._rescheduled()[-RESCHEDULE_ROWS:]:
            tries = self._tries.get(uuid, {})                    # type: ignore[attr-defined]
            hosts = [tries[a][1] for a in sorted(tries)]
            path = self._path(uuid)
            anchor = self._pos(hosts[-1]) if hosts else (path[-1] if path else BUS_POSITION)
            color = {"ACTIVE": ACTIVE_COLOR, "ERROR": ERROR_COLOR}.get(self._final_of(uuid),
                                                                      IN_PROGRESS_COLOR)
            attempt = self._attempts[uuid]                       # type: ignore[attr-defined]
            _append(out, RESCHEDULE_COLUMNS, (
                uuid, f"attempt {attempt}/{self.max_attempts}", anchor[0], anchor[1], color,
                [p[0] for p in path], [p[1] for p in path], attempt,
                " > ".join(short(h) for h in hosts)))
        return out

    # -- notes beside the nodes --------------------------------------------------------------
    def annotations_data(self, servers: list[dict[str, Any]],
                         stats: dict[str, dict[str, int]] | None = None) -> Columns:
        """The notes: per compute (or group) at most one, the first that applies: its
        reschedules in progress ("attempt 2/3" for one, "3 rescheduling"), the newest fault
        written there, its reschedules that ended ("3 rescheduled"), a group's busiest host
        (from ``stats``); then, under the conductor, its newest faults. A fault is at the
        compute that wrote it through the database proxy (a fatal build, a resize step),
        else at the conductor (NoValidHost, a timeout, a migration it ended; in the legacy
        flow the scheduler's NoValidHost too); one the trace never showed: a
        BuildAbortException at its host, anything else at the conductor. An instance
        seen out of ERROR forgets who wrote its last fault."""
        fault_by: dict[str, str] = self._fault_by               # type: ignore[attr-defined]
        for server in servers:
            if server.get("status") != "ERROR":
                fault_by.pop(server.get("id", ""), None)
        notes: dict[str, tuple[str, str]] = {}                  # drawn node -> (text, color)
        self._note_reschedules(notes, ended=False)
        conductor = next((n for n in self.services if topic_of(n) == "conductor"),
                         "conductor.conductor1")
        at_conductor = []
        for server in reversed([s for s in servers if s.get("status") == "ERROR"
                                and s.get("fault")]):
            kind = server["fault"]["message"].split(":", 1)[0]
            host = server.get("OS-EXT-SRV-ATTR:host")
            at = fault_by.get(server.get("id", "")) or (
                f"compute.{host}" if host and kind == "BuildAbortException" else conductor)
            text = f"{isolated(server.get('name') or '')}: {kind}"
            if topic_of(at) == "compute":
                notes.setdefault(self.layout.drawn(at), (text, NOTE_COLORS["error"]))
            elif len(at_conductor) < CONDUCTOR_FAULTS:
                at_conductor.append(text)
        self._note_reschedules(notes, ended=True)
        for group, members in self.layout.groups.items():
            busiest = max(members, key=lambda m: (stats or {}).get(m, {}).get("vms", 0))
            vms = (stats or {}).get(busiest, {}).get("vms", 0)
            if vms:
                notes.setdefault(group, (f"busiest {short(busiest)}: {vms} vms",
                                         NOTE_COLORS["info"]))
        out = _empty(ANNOTATION_COLUMNS)
        for node in self._drawn_nodes():
            if node in notes and node in self.positions:
                style = self.layout.style(node)
                x, y = self.positions[node]
                if style.annotation_dx < 0:      # a column of notes at the right edge
                    x = X_RANGE[1]
                _append(out, ANNOTATION_COLUMNS, (
                    x, y, style.annotation_dx, style.annotation_dy, *notes[node],
                    "right" if style.annotation_dx < 0 else "left", _note_size(style), node))
        if conductor in self.positions:
            x, y = self.positions[conductor]
            style = self.layout.style(conductor)
            for i, text in enumerate(at_conductor):
                _append(out, ANNOTATION_COLUMNS, (
                    x, y, style.annotation_dx, style.annotation_dy + i * NOTE_LINE, text,
                    NOTE_COLORS["error"], "center", _note_size(style), conductor))
        return out

    def _note_reschedules(self, notes: dict[str, tuple[str, str]], ended: bool) -> None:
        """Per drawn compute, the rescheduled instances whose latest attempt is there: in
        progress (``ended`` False) or finished (True), counted into one note."""
        there: dict[str, list[str]] = {}
        for uuid in self._rescheduled():
            host = self._last_host(uuid)
            if host is not None and (self._final_of(uuid) != "") == ended:
                there.setdefault(self.layout.drawn(host), []).append(uuid)
        for node, uuids in there.items():
            if node in notes:
                continue
            if len(uuids) == 1:
                attempt = self._attempts[uuids[0]]               # type: ignore[attr-defined]
                final = self._final_of(uuids[0])
                notes[node] = (f"attempt {attempt}/{self.max_attempts}", NOTE_COLORS[
                    {"ACTIVE": "active", "ERROR": "error"}.get(final, "progress")])
            elif not ended:
                notes[node] = (f"{len(uuids)} rescheduling", NOTE_COLORS["progress"])
            else:
                failed = sum(self._final_of(u) == "ERROR" for u in uuids)
                notes[node] = (f"{len(uuids)} rescheduled" + (f", {failed} failed"
                                                               if failed else ""),
                               NOTE_COLORS["error" if failed else "active"])


def captions(snap: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """From the feed's snapshot (``states``, ``hypervisors``, ``failures``): each service's
    state (a compute with injected failures is ``failing``) and each compute's numbers
    (``vms``, ``free_gb``, ``fail``: its reschedule rate), for ``nodes_data``."""
    states, stats = dict(snap.get("states", {})), {}
    for node in snap.get("hypervisors", []):
        host = node["hypervisor_hostname"]
        ident = f"compute.{host}"
        fail = snap.get("failures", {}).get(host, {})
        rate = fail.get("reschedule", 0.0)
        if states.get(ident) == "up" and (rate or fail.get("fatal") or fail.get("crash")):
            states[ident] = "failing"
        stats[ident] = {"vms": node["running_vms"], "free_gb": node["free_ram_mb"] // 1024,
                        "fail": rate}
    return states, stats


def _caption(style: NodeStyle, numbers: dict[str, Any]) -> str:
    """A compute's numbers as its caption: "1 vms, 14 GB free, fail 50%"; on one line
    beside its name (compact), "1 vms · fail 50%"."""
    if not numbers:
        return ""
    fail = f"fail {numbers['fail']:.0%}" if numbers.get("fail") else ""
    parts = [f"{numbers.get('vms', 0)} vms",
             "" if style.one_line else f"{numbers.get('free_gb', 0)} GB free", fail]
    return (" \u00b7 " if style.one_line else ", ").join(p for p in parts if p)
