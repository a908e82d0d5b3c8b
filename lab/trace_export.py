"""Exports of a trace: the events as a file (JSON Lines, the bus's own ``trace.jsonl``), as
input to the tools that draw distributed executions (Chrome trace-event JSON for Perfetto
and ``chrome://tracing``; a ShiViz log with vector clocks) and as a time-space (sequence)
diagram in Bokeh. Each shows the same thing from another side: who sent what to whom,
when, and what happened before what.

Functions here take the events (dicts in the schema of ``orchestrator.messaging.protocol``);
``lab.trace.Trace`` wraps each as a method. Only delivered (``routed``) events become
messages; dropped and expired ones are marked where the tool has a way to show them.

A file saved inside a lab's run directory marks that directory kept first
(``housekeeping.keep_containing``): a trace saved on purpose outlives ``prune()``.
"""
from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterable

from orchestrator.messaging.protocol import TRACE_FIELDS, trace_json

from .housekeeping import keep_containing
from .lanes import lane_order, short, topic_of

if TYPE_CHECKING:
    from bokeh.plotting import figure

__all__ = ["save_jsonl", "load_jsonl", "to_chrome", "to_shiviz", "sequence",
           "lane_labels", "SHIVIZ_REGEX", "KIND_STYLE"]

Event = dict[str, Any]
PathArg = str | PathLike[str]

SHIVIZ_REGEX = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})"
KIND_STYLE = {  # kind -> (colour, dash): casts solid, calls dashed, replies dotted
    "cast": ("#1f77b4", "solid"), "call": ("#ff7f0e", "dashed"),
    "reply": ("#2ca02c", "dotted"), "fanout": ("#9467bd", "dashdot"),
    "notification": ("#8c564b", "dashdot"),
}
OTHER_STYLE = ("#7f7f7f", "dotdash")
SLICE_US = 500.0      # a message's slice in the Chrome export, clipped to the next one
CHROME_PID = 1


def _routed(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if e["phase"] == "routed"]


# -- JSON Lines ------------------------------------------------------------------------------
def save_jsonl(events: Iterable[Event], path: PathArg) -> None:
    """One event per line, the schema's fields in order (``protocol.trace_json``)."""
    keep_containing(path)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(trace_json(e) + "\n" for e in events)


def _event(raw: bytes, where: str) -> Event:
    """A parsed line checked against the schema; ValueError saying ``where`` if not."""
    try:
        event = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{where}: not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise ValueError(f"{where}: a {type(event).__name__}, not a trace event")
    missing = [f for f in TRACE_FIELDS if f not in event]
    if missing:
        raise ValueError(f"{where}: trace event missing fields {', '.join(missing)}")
    return event


def load_jsonl(path: PathArg) -> list[Event]:
    """Read a JSON Lines trace. Blank lines are skipped, and so is an unterminated last
    line that does not parse (the writer was cut short mid-line); any other bad line,
    or an event missing schema fields, raises ValueError naming its line number."""
    *lines, last = Path(path).read_bytes().split(b"\n")
    events = [_event(line, f"{path}: line {n}")
              for n, line in enumerate(lines, 1) if line.strip()]
    if last.strip():
        try:
            json.loads(last)
        except ValueError:
            return events                   # a partial last line
        events.append(_event(last, f"{path}: line {len(lines) + 1}"))
    return events


# -- Chrome trace-event format (Perfetto, chrome://tracing) ----------------------------------
def _chrome_args(e: Event) -> dict[str, Any]:
    return {"method": e["method"], "kind": e["kind"], "msg_id": e["msg_id"],
            "instance": e["instance_uuid"], "attempt": e["attempt"], "phase": e["phase"],
            "src": e["src"], "dst": e["dst"], "request_id": e["request_id"],
            "seq": e["seq"], "bytes": e["bytes"], "reason": e["reason"]}


def _chrome_metadata(tids: dict[str, int]) -> list[Event]:
    meta = [{"ph": "M", "name": "process_name", "pid": CHROME_PID, "tid": 0,
             "args": {"name": "Conductor Lab"}}]
    for name, tid in tids.items():
        meta.append({"ph": "M", "name": "thread_name", "pid": CHROME_PID, "tid": tid,
                     "args": {"name": name}})
        meta.append({"ph": "M", "name": "thread_sort_index", "pid": CHROME_PID, "tid": tid,
                     "args": {"sort_index": tid}})
    return meta


def _clip_slices(slices: list[Event]) -> None:
    """Give each slice ``SLICE_US``, cut short where the next slice on its thread starts:
    slices on one thread must never overlap."""
    by_tid: dict[int, list[Event]] = {}
    for s in slices:
        by_tid.setdefault(s["tid"], []).append(s)
    for group in by_tid.values():
        group.sort(key=lambda s: s["ts"])
        for s, nxt in zip(group, group[1:] + [None]):
            s["dur"] = SLICE_US if nxt is None else min(SLICE_US, nxt["ts"] - s["ts"])


def to_chrome(events: Iterable[Event], path: PathArg | None = None) -> dict[str, Any]:
    """Chrome trace-event JSON: one process, one thread per service (in lane order).

    Each delivered message is a complete ("X") event on the sender's thread at ``sent``
    (one for all the receivers of a fanout or a duplicate) and one on the receiver's at
    ``ts``, joined by a flow ("s" at the send, "f" with ``"bp": "e"`` at the receipt,
    ``id`` = the event's ``seq``, ``cat`` = its kind) that Perfetto (ui.perfetto.dev,
    "Open trace file") and ``chrome://tracing`` draw as an arrow. Dropped and expired
    messages are instant ("i") events on the sender's thread. Timestamps are
    microseconds since the first event. Writes JSON when ``path`` is given.
    """
    events = list(events)
    routed = _routed(events)
    lost = [e for e in events if e["phase"] in ("dropped", "expired")]
    names = lane_order([e["src"] for e in routed + lost] + [e["dst"] for e in routed])
    tids = {name: i for i, name in enumerate(names, 1)}
    t0 = min([min(e["sent"], e["ts"]) for e in routed + lost], default=0.0)

    def at(t: float) -> float:
        return round((t - t0) * 1e6, 3)

    sends: dict[tuple[str, str, float], Event] = {}  # a fanout is one send, N receipts
    receipts, flows = [], []
    for e in routed:
        common = {"name": e["method"], "cat": e["kind"], "pid": CHROME_PID}
        src, dst = tids[e["src"]], tids[e["dst"]]
        key = (e["src"], e["msg_id"], e["sent"])
        if key not in sends:
            sends[key] = {"ph": "X", "tid": src, "ts": at(e["sent"]),
                          "args": _chrome_args(e), **common}
        elif e["dst"] not in sends[key]["args"]["dst"].split(", "):
            sends[key]["args"]["dst"] += f", {e['dst']}"
        receipts.append({"ph": "X", "tid": dst, "ts": at(e["ts"]), "args": _chrome_args(e),
                         **common})
        flows.append({"ph": "s", "id": e["seq"], "tid": src, "ts": at(e["sent"]), **common})
        flows.append({"ph": "f", "bp": "e", "id": e["seq"], "tid": dst, "ts": at(e["ts"]),
                      **common})
    slices = list(sends.values()) + receipts
    _clip_slices(slices)
    instants = [{"ph": "i", "s": "t", "name": f"{e['phase']} {e['method']}",
                 "cat": e["phase"], "pid": CHROME_PID, "tid": tids[e["src"]],
                 "ts": at(e["ts"]), "args": _chrome_args(e)} for e in lost]
    doc = {"traceEvents": _chrome_metadata(tids) + slices + flows + instants,
           "displayTimeUnit": "ms"}
    if path is not None:
        keep_containing(path)
        Path(path).write_text(json.dumps(doc), encoding="utf-8")
    return doc


# -- ShiViz ----------------------------------------------------------------------------------
def _shiviz_event(host: str, clock: dict[str, int], text: str) -> list[str]:
    return [text, f"{host} {json.dumps(clock, sort_keys=True)}"]


def _describe(e: Event) -> str:
    about = f"instance {e['instance_uuid']}, " if e["instance_uuid"] else ""
    return f"{e['kind']} {e['method']} ({about}attempt {e['attempt']}, seq {e['seq']})"


def to_shiviz(events: Iterable[Event], path: PathArg | None = None) -> str:
    """A ShiViz log: the delivered messages as send and receive events with vector clocks.

    In ``seq`` order, each message is a send on ``src`` (its own clock entry + 1; that
    clock is kept by (msg_id, dst)) and then a receive on ``dst`` (element-wise max with
    the send's clock, then its own entry + 1). Hosts are identities.

    The text starts with ShiViz's parsing regex, then a blank line (no execution
    delimiter), then two lines per event: what happened, and ``host {vector clock}``.
    To look at it: open https://bestchai.bitbucket.io/shiviz/ , "Try out ShiViz", and
    either upload the file as it is, or paste the log (from the third line on) into the
    log box and the first line into the "Log parsing regular expression" box, then
    "Visualize". Writes the text when ``path`` is given.
    """
    clocks: dict[str, dict[str, int]] = {}
    sends: dict[tuple[str, str], dict[str, int]] = {}
    lines = [SHIVIZ_REGEX, ""]
    for e in sorted(_routed(events), key=lambda e: e["seq"]):
        src, dst = e["src"], e["dst"]
        clock = clocks.setdefault(src, {})
        clock[src] = clock.get(src, 0) + 1
        sends[(e["msg_id"], dst)] = dict(clock)
        lines += _shiviz_event(src, clock, f"send {_describe(e)} to {dst}")
        clock = clocks.setdefault(dst, {})
        for host, n in sends[(e["msg_id"], dst)].items():
            clock[host] = max(clock.get(host, 0), n)
        clock[dst] = clock.get(dst, 0) + 1
        lines += _shiviz_event(dst, clock, f"receive {_describe(e)} from {src}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        keep_containing(path)
        Path(path).write_text(text, encoding="utf-8")
    return text


# -- the time-space diagram (Bokeh) ----------------------------------------------------------
def lane_labels(names: list[str]) -> list[str]:
    """Short names for the lanes (``compute2``), the full identity where one is ambiguous."""
    shorts = [short(n) for n in names]
    return [s if shorts.count(s) == 1 else n for s, n in zip(shorts, names)]


def _on(name: str, services: frozenset[str] | None) -> bool:
    return services is None or name in services or topic_of(name) in services


def _columns(events: list[Event], lanes: dict[str, int], t0: float) -> dict[str, list]:
    styles = [KIND_STYLE.get(e["kind"], OTHER_STYLE) for e in events]
    cols: dict[str, list] = {
        "x0": [lanes[e["src"]] for e in events], "y0": [e["sent"] - t0 for e in events],
        "x1": [lanes.get(e["dst"], lanes[e["src"]]) for e in events],
        "y1": [e["ts"] - t0 for e in events],
        "color": [c for c, _ in styles], "dash": [d for _, d in styles]}
    for field in ("seq", "kind", "method", "src", "dst", "instance_uuid", "attempt",
                  "request_id", "bytes", "reason", "phase"):
        cols[field] = [e[field] for e in events]
    return cols


def _select(events: Iterable[Event], start: float | None, end: float | None,
            services: str | Collection[str] | None) -> tuple[list[Event], list[Event]]:
    """The delivered messages and the dropped ones a diagram shows."""
    wanted = None if services is None else frozenset(
        [services] if isinstance(services, str) else services)
    shown = [e for e in events if (start is None or e["ts"] >= start)
             and (end is None or e["ts"] < end) and _on(e["src"], wanted)]
    routed = [e for e in _routed(shown) if _on(e["dst"], wanted)]
    return routed, [e for e in shown if e["phase"] == "dropped"]


def _lanes(p: figure, names: list[str]) -> None:
    """One vertical line per service, its name on top."""
    from bokeh.models import FixedTicker, Span

    p.xaxis.ticker = FixedTicker(ticks=list(range(len(names))))
    p.xaxis.major_label_overrides = dict(enumerate(lane_labels(names)))
    p.xgrid.visible = False
    for i in range(len(names)):
        p.add_layout(Span(location=i, dimension="height", line_color="#cccccc"))


def sequence(events: Iterable[Event], start: float | None = None, end: float | None = None,
             services: str | Collection[str] | None = None,
             max_events: int = 400) -> figure:
    """A time-space diagram: one vertical lane per service (api, conductor, scheduler,
    computes, others), time running down in seconds since the first message shown; each
    delivered message an arrow from (sender, ``sent``) to (receiver, ``ts``). Casts are
    solid, calls dashed, replies dotted, fanouts and notifications dash-dotted, one colour
    per kind; dropped messages are a red x on the sender's lane at ``sent``. ``start``/
    ``end`` bound ``ts`` (unix seconds); ``services`` keeps messages between the given
    identities or topics; at most ``max_events`` messages are drawn (the first ones).
    The sources are named ``sequence`` (one row per message) and ``dropped``."""
    from bokeh.core.properties import field
    from bokeh.models import Arrow, ColumnDataSource, HoverTool, Legend, LegendItem, VeeHead
    from bokeh.plotting import figure as new_figure

    routed, dropped = _select(events, start, end, services)
    drawn = routed[:max_events]
    names = lane_order([e["src"] for e in drawn + dropped] + [e["dst"] for e in drawn])
    lanes = {name: i for i, name in enumerate(names)}
    t0 = min([min(e["sent"], e["ts"]) for e in drawn + dropped], default=0.0)
    title = f"Messages over time: {len(drawn)}" + (
        f" of {len(routed)} (the first ones)" if len(routed) > len(drawn) else "")
    p = new_figure(title=title, width=max(480, 120 * len(names) + 140), height=640,
                   x_range=(-0.5, max(len(names), 1) - 0.5), x_axis_location="above",
                   y_axis_label="seconds since the first message",
                   tools="pan,wheel_zoom,box_zoom,reset,save")
    p.y_range.flipped = True
    _lanes(p, names)

    source = ColumnDataSource(_columns(drawn, lanes, t0), name="sequence")
    lines = p.segment("x0", "y0", "x1", "y1", source=source, line_width=2,
                      line_color=field("color"), line_dash=field("dash"))
    p.add_layout(Arrow(source=source, x_start="x0", y_start="y0", x_end="x1", y_end="y1",
                       line_alpha=0, end=VeeHead(size=8, fill_color=field("color"),
                                                 line_color=field("color"))))
    lost = ColumnDataSource(_columns(dropped, lanes, t0), name="dropped")
    marks = p.scatter("x0", "y0", source=lost, marker="x", size=12, line_width=2,
                      line_color="red")
    tips = [("message", "@kind @method"), ("from", "@src"), ("to", "@dst"),
            ("instance", "@instance_uuid"), ("attempt", "@attempt"), ("seq", "@seq")]
    p.add_tools(HoverTool(renderers=[lines], tooltips=tips),
                HoverTool(renderers=[marks], tooltips=tips + [("dropped", "@reason")]))
    items = [LegendItem(label=field("kind"), renderers=[lines])]
    items += [LegendItem(label="dropped", renderers=[marks])] if dropped else []
    p.add_layout(Legend(items=items, location="top_left"), "right")
    return p
