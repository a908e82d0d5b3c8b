"""Reading the bus's trace: the events of a lab as a sequence you can filter, look at,
count and draw. (The events' schema is in ``orchestrator.messaging.protocol``.)

- filter: ``where(...)``, ``routed()``, ``without_lab()``, ``without_db_proxy()``,
  ``for_instance(...)``, ``trace[i]`` / ``trace[a:b]``;
- look: ``repr(trace)`` (a text table), the HTML table a notebook shows, ``rows()``,
  ``story(...)`` (one instance's build as lines), ``table()`` (counts by kind and method);
- count: ``counts()``, ``summary()`` / ``summary_text()`` (the numbers a student compares
  between the legacy and the conductor flow);
- draw: ``to_networkx()`` (who talks to whom), ``sequence()`` (a time-space diagram);
- export: ``save``/``load`` (JSON Lines), ``to_chrome()``, ``to_shiviz()``; these and the
  diagram live in :mod:`lab.trace_export`, the methods here are thin wrappers.

Identities are ``topic.server`` (``compute.compute2``); the lab's own clients are
``lab.*``. Services are ordered api, conductor, scheduler, computes, then the others.
"""
from __future__ import annotations

import html
from collections import Counter
from os import PathLike
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable, Iterator, overload

from orchestrator.conductor.rpcapi import DB_PROXY_METHODS

from .lanes import lane_key, lane_order, short, topic_of
from .metrics import RESCHEDULE_METHODS, WORKFLOW_METHODS, BuildMessages, is_reschedule

if TYPE_CHECKING:
    import networkx
    from bokeh.plotting import figure

__all__ = ["Trace", "short", "topic_of", "lane_key", "lane_order", "is_reschedule",
           "DEFAULT_COLUMNS", "MESSAGE_KINDS", "WORKFLOW_METHODS", "RESCHEDULE_METHODS",
           "HOUSEKEEPING_PREFIXES"]

Event = dict[str, Any]
Names = str | Collection[str]

DEFAULT_COLUMNS = ("seq", "ts", "phase", "kind", "src", "dst", "method", "instance_uuid",
                   "attempt", "reason")
MESSAGE_KINDS = ("cast", "call", "reply", "fanout", "notification")
# The request ids of no user's request: periodic reports and audits (``periodic-HOST``),
# a compute starting up (``init-HOST``).
HOUSEKEEPING_PREFIXES = ("periodic-", "init-")
REPR_ROWS, REPR_EDGE, HTML_ROWS = 40, 20, 200


# -- identities ------------------------------------------------------------------------------
def _is_lab(name: str) -> bool:
    return topic_of(name) == "lab"


def _names(wanted: Names) -> frozenset[str]:
    return frozenset([wanted] if isinstance(wanted, str) else wanted)


def _field_in(field: str, wanted: frozenset[str]) -> Callable[[Event], bool]:
    return lambda e: e[field] in wanted


def _service_in(field: str, wanted: frozenset[str]) -> Callable[[Event], bool]:
    """An identity in ``wanted``, or of a bare topic in it (``compute`` matches
    ``compute.compute1``)."""
    return lambda e: e[field] in wanted or topic_of(e[field]) in wanted


# -- tables ----------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text_table(columns: tuple[str, ...], rows: list[tuple], gap: int | None) -> str:
    """Columns padded to fit; numbers right-aligned; a ``... N more ...`` line after row
    ``REPR_EDGE`` when ``gap`` is given."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [bool(rows) and all(_is_number(r[i]) for r in rows) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(list(columns))] + [line(r) for r in cells]
    if gap is not None:
        out.insert(1 + REPR_EDGE, f"... {gap} more ...")
    return "\n".join(out)


# -- the trace -------------------------------------------------------------------------------
class Trace:
    """A list of trace events (dicts in the bus's schema), oldest first."""

    def __init__(self, events: Iterable[Event]):
        self.events = list(events)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> Trace: ...

    def __getitem__(self, index: int | slice) -> Event | Trace:
        if isinstance(index, slice):
            return Trace(self.events[index])
        return self.events[index]

    # -- filters ---------------------------------------------------------------------------
    def filter(self, predicate: Callable[[Event], bool]) -> Trace:
        return Trace(e for e in self.events if predicate(e))

    def where(self, kind: Names | None = None, method: Names | None = None,
              phase: Names | None = None, src: Names | None = None,
              dst: Names | None = None, instance: Names | None = None,
              request_id: Names | None = None, since: int | None = None,
              start: float | None = None, end: float | None = None) -> Trace:
        """The events matching every criterion given. Each name criterion takes one value
        or a collection of them; ``src``/``dst`` take identities or bare topics
        (``"compute"`` matches ``compute.compute1``). ``instance`` is the instance_uuid;
        ``since`` a ``seq`` (events after it); ``start <= ts < end`` in unix seconds."""
        tests = [_field_in(field, _names(wanted)) for field, wanted in (
            ("kind", kind), ("method", method), ("phase", phase),
            ("instance_uuid", instance), ("request_id", request_id)) if wanted is not None]
        tests += [_service_in(field, _names(wanted))
                  for field, wanted in (("src", src), ("dst", dst)) if wanted is not None]
        if since is not None:
            tests.append(lambda e: e["seq"] > since)
        if start is not None:
            tests.append(lambda e: e["ts"] >= start)
        if end is not None:
            tests.append(lambda e: e["ts"] < end)
        return self.filter(lambda e: all(test(e) for test in tests))

    def routed(self) -> Trace:
        return self.filter(lambda e: e["phase"] == "routed")

    def without_db_proxy(self) -> Trace:
        return self.filter(lambda e: e["method"] not in DB_PROXY_METHODS)

    def without_lab(self) -> Trace:
        """Leave out the lab's own traffic (``lab.*`` senders or receivers)."""
        return self.filter(lambda e: not _is_lab(e["src"]) and not _is_lab(e["dst"]))

    def for_instance(self, instance_uuid: str, request_id: str = "") -> Trace:
        """Messages about one instance: tagged with it, or (a batch request's messages,
        tagged with no instance) with its request id."""
        return self.filter(lambda e: e["instance_uuid"] == instance_uuid or (
            request_id and not e["instance_uuid"] and e["request_id"] == request_id))

    # -- tables ----------------------------------------------------------------------------
    def rows(self, columns: tuple[str, ...] = DEFAULT_COLUMNS) -> list[tuple]:
        """One tuple per event, the values of ``columns`` ("" where an event has none)."""
        return [tuple(e.get(c, "") for c in columns) for e in self.events]

    def __repr__(self) -> str:
        """A text table: every event up to ``REPR_ROWS``, else the first and last 20."""
        if len(self) <= REPR_ROWS:
            return _text_table(DEFAULT_COLUMNS, self.rows(), None)
        shown = self[:REPR_EDGE].rows() + self[-REPR_EDGE:].rows()
        return _text_table(DEFAULT_COLUMNS, shown, len(self) - 2 * REPR_EDGE)

    def _repr_html_(self) -> str:
        """An HTML table of the first ``HTML_ROWS`` events, every text escaped."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in DEFAULT_COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row)
                       + "</tr>" for row in self[:HTML_ROWS].rows())
        note = f"{len(self)} events" + (f", the first {HTML_ROWS} shown"
                                        if len(self) > HTML_ROWS else "")
        return (f'<table class="conductor-lab-trace"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table><p>{html.escape(note)}</p>")

    def counts(self) -> Counter[tuple[str, str]]:
        """Delivered messages by (kind, method)."""
        return Counter((e["kind"], e["method"]) for e in self.routed())

    def story(self, instance_uuid: str, request_id: str = "",
              include_db_proxy: bool = False) -> list[str]:
        """The instance's build as lines: time, attempt, who sent what to whom."""
        events = self.for_instance(instance_uuid, request_id)
        events = events if include_db_proxy else events.without_db_proxy()
        events = events.filter(lambda e: e["phase"] != "delayed")  # pacing, not a fate
        lines, start = [], None
        for e in events:
            start = e["ts"] if start is None else start
            what = e["phase"] if e["phase"] != "routed" else ""
            lines.append(f"+{e['ts'] - start:7.3f}s  attempt {e['attempt']}  "
                         f"{short(e['src']):>10} -> {short(e['dst']):<10} "
                         f"{e['kind']:5} {e['method']}{'  [' + what + ']' if what else ''}")
        return lines

    def table(self) -> str:
        """Delivered messages by kind and method, as plain text."""
        rows = sorted(self.counts().items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))
        width = max([len(m) for (_, m), _ in rows] + [6])
        out = [f"{'kind':6}  {'method':{width}}  count"]
        out += [f"{k:6}  {m:{width}}  {n:5}" for (k, m), n in rows]
        return "\n".join(out)

    # -- who talks to whom -----------------------------------------------------------------
    def to_networkx(self, include_lab: bool = False,
                    include_db_proxy: bool = True) -> networkx.MultiDiGraph:
        """Delivered messages as a graph. Nodes: identities (in lane order) with ``topic``
        and ``label`` (the short name). Edges: one per (src, dst, kind, method), keyed
        ``"kind:method"``, with ``kind``, ``method``, ``count`` and ``bytes``; a reply is an
        edge from the callee back to the caller."""
        import networkx as nx

        events = self.routed()
        events = events if include_lab else events.without_lab()
        events = events if include_db_proxy else events.without_db_proxy()
        graph = nx.MultiDiGraph()
        for name in lane_order([e["src"] for e in events] + [e["dst"] for e in events]):
            graph.add_node(name, topic=topic_of(name), label=short(name))
        for e in events:
            key = f"{e['kind']}:{e['method']}"
            if graph.has_edge(e["src"], e["dst"], key):
                edge = graph.edges[e["src"], e["dst"], key]
                edge["count"] += 1
                edge["bytes"] += e["bytes"]
            else:
                graph.add_edge(e["src"], e["dst"], key=key, kind=e["kind"],
                               method=e["method"], count=1, bytes=e["bytes"])
        return graph

    def summary(self) -> dict[str, Any]:
        """The numbers of this trace (filter first, e.g. ``without_lab()``, to leave
        traffic out). Messages are delivered (``routed``) events unless said otherwise.

        - ``messages``; ``by_kind``: messages per kind (every kind of MESSAGE_KINDS);
        - ``builds``, ``messages_per_build``: instances built and the messages of their
          requests per build, ``reschedules``: compute hand-backs; all three as
          :mod:`lab.metrics` defines them (the dashboard counts with the same code);
        - ``select_destinations_calls``; ``db_proxy_calls``;
        - ``dropped``, ``expired``: events in those phases;
        - ``scheduler_peers_sent_to``: the computes the scheduler sent messages to, in lane
          order (empty in the conductor flow: the scheduler only replies);
        - ``degree``: per identity, ``out``/``in`` = distinct receivers/senders and
          ``sent``/``received`` = messages.
        """
        routed = self.routed()
        by_kind = dict.fromkeys(MESSAGE_KINDS, 0) | Counter(e["kind"] for e in routed)
        builds = BuildMessages(routed)
        return {
            "messages": len(routed), "by_kind": by_kind, "builds": builds.builds,
            "messages_per_build": builds.per_build,
            "reschedules": len(routed.filter(is_reschedule)),
            "select_destinations_calls": len(routed.where(kind="call",
                                                          method="select_destinations")),
            "db_proxy_calls": len(routed.where(kind="call", method=DB_PROXY_METHODS)),
            "dropped": len(self.where(phase="dropped")),
            "expired": len(self.where(phase="expired")),
            "scheduler_peers_sent_to": lane_order(
                e["dst"] for e in routed.where(src="scheduler", dst="compute")),
            "degree": _degree(routed),
        }

    def summary_text(self) -> str:
        """``summary()`` as lines for a terminal."""
        return _summary_text(self.summary())

    # -- exports (lab.trace_export) --------------------------------------------------------
    def sequence(self, start: float | None = None, end: float | None = None,
                 services: Names | None = None, max_events: int = 400) -> figure:
        """A time-space diagram (a Bokeh figure); see ``trace_export.sequence``."""
        from . import trace_export
        return trace_export.sequence(self.events, start, end, services, max_events)

    def save(self, path: str | PathLike[str]) -> None:
        """Write the events as JSON Lines, the bus's own ``trace.jsonl`` format."""
        from . import trace_export
        trace_export.save_jsonl(self.events, path)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Trace:
        """Read a JSON Lines trace (a lab's ``trace.jsonl``); see
        ``trace_export.load_jsonl``."""
        from . import trace_export
        return cls(trace_export.load_jsonl(path))

    def to_chrome(self, path: str | PathLike[str] | None = None) -> dict[str, Any]:
        """Chrome trace-event JSON for Perfetto; see ``trace_export.to_chrome``."""
        from . import trace_export
        return trace_export.to_chrome(self.events, path)

    def to_shiviz(self, path: str | PathLike[str] | None = None) -> str:
        """A ShiViz log with vector clocks; see ``trace_export.to_shiviz``."""
        from . import trace_export
        return trace_export.to_shiviz(self.events, path)


# -- summary helpers -------------------------------------------------------------------------
def _degree(routed: Trace) -> dict[str, dict[str, int]]:
    receivers: dict[str, set[str]] = {}
    senders: dict[str, set[str]] = {}
    for e in routed:
        receivers.setdefault(e["src"], set()).add(e["dst"])
        senders.setdefault(e["dst"], set()).add(e["src"])
    sent = Counter(e["src"] for e in routed)
    received = Counter(e["dst"] for e in routed)
    return {name: {"out": len(receivers.get(name, ())), "in": len(senders.get(name, ())),
                   "sent": sent[name], "received": received[name]}
            for name in lane_order(list(sent) + list(received))}


def _summary_text(s: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k} {n}" for k, n in s["by_kind"].items())
    peers = ", ".join(short(p) for p in s["scheduler_peers_sent_to"]) or "none"
    lines = [f"messages                   {s['messages']:6}  ({kinds})",
             f"builds                     {s['builds']:6}  "
             f"({s['messages_per_build']:.1f} messages per build)",
             f"reschedules                {s['reschedules']:6}",
             f"select_destinations calls  {s['select_destinations_calls']:6}",
             f"db proxy calls             {s['db_proxy_calls']:6}",
             f"dropped / expired          {s['dropped']:6} / {s['expired']}",
             f"scheduler sent to          {peers}",
             "who talks to whom          out = distinct receivers, in = distinct senders"]
    width = max([len(n) for n in s["degree"]] + [8])
    lines += [f"  {n:{width}}  out {d['out']:3}  in {d['in']:3}  sent {d['sent']:5}  "
              f"received {d['received']:5}" for n, d in s["degree"].items()]
    return "\n".join(lines)
