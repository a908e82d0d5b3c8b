"""Lessons 01 (first boot) and 02 (the old process and the new): reading one build's
messages out of a trace, and drawing who talks to whom.

- ``steps(trace, instance)``: a build as the seed tells it, ``(kind, src, dst, method)``
  per workflow message, in the order the bus routed them;
- ``call_and_reply``/``reply_of``: a call and the reply that answers it (``reply_to ==
  msg_id``); ``wait_for``: block until the bus has routed (or queued) a message;
- ``boot_each``: boot and wait one instance at a time, so a seeded run tells one story;
- ``outcomes``, ``computes_used``, ``said_by``, ``sent_to``, ``links``, ``edges``/
  ``edge_table``, ``reschedules``, ``retry_roles``, ``last_said``: what the asserts compare
  between the legacy and the conductor flow;
- ``graph_figure`` and ``show_graphs``: the who-talks-to-whom graphs in Bokeh, with BokehJS
  loaded from the lab's own dashboard server (``lab_resources``), never from a CDN.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..trace import (MESSAGE_KINDS, WORKFLOW_METHODS, Trace, is_reschedule, lane_order,
                     short, topic_of)

if TYPE_CHECKING:
    import networkx
    from bokeh.plotting import figure
    from bokeh.resources import Resources

__all__ = ["Step", "steps", "reply_of", "call_and_reply", "wait_for", "boot_each",
           "outcomes", "computes_used", "said_by", "sent_to", "links", "edges", "edge_table",
           "reschedules", "retry_roles", "last_said", "lab_resources", "graph_figure",
           "show_graphs", "BUILD_RESCHEDULES"]

Step = tuple[str, str, str, str]   # (kind, src, dst, method), short names
Event = dict[str, Any]
# The builds' share of lab.metrics.RESCHEDULE_METHODS (lessons 01-02 are about builds).
BUILD_RESCHEDULES = ("build_instances", "run_instance")


def _workflow(trace: Trace, instance: str | None = None) -> Trace:
    routed = trace.routed().where(method=WORKFLOW_METHODS)
    return routed if instance is None else routed.where(instance=instance)


def _step(e: Event) -> Step:
    return e["kind"], short(e["src"]), short(e["dst"]), e["method"]


def steps(trace: Trace, instance: str | None = None) -> list[Step]:
    """The delivered workflow messages (``build_instances``, ``select_destinations`` and
    its reply, ``build_and_run_instance``, ``run_instance``), of one instance if given."""
    return [_step(e) for e in _workflow(trace, instance)]


def reply_of(trace: Trace, call: Event) -> Event | None:
    """The delivered reply to ``call`` (its ``reply_to`` is the call's ``msg_id``), or None."""
    replies = trace.routed().where(kind="reply").filter(
        lambda e: e["reply_to"] == call["msg_id"])
    return replies[0] if replies else None


def call_and_reply(trace: Trace, method: str,
                   instance: str | None = None) -> tuple[Event, Event | None]:
    """The first delivered call of ``method`` (of one instance if given) and its reply,
    or None if no reply has been delivered yet. KeyError if there is no such call."""
    calls = trace.routed().where(kind="call", method=method)
    calls = calls if instance is None else calls.where(instance=instance)
    if not calls:
        raise KeyError(f"no {method} call in the trace")
    return calls[0], reply_of(trace, calls[0])


def wait_for(lab: Any, since: int, kind: str, method: str, instance: str | None = None,
             phases: tuple[str, ...] = ("routed", "queued"), timeout: float = 60.0) -> Event:
    """Block until the bus has decided the fate of such a message sent after the mark
    ``since`` (delivered it, or queued it for an absent receiver); that event."""
    def wanted(e: Event) -> bool:
        return (e["kind"] == kind and e["method"] == method and e["phase"] in phases
                and (instance is None or e["instance_uuid"] == instance))
    return lab.tap.wait_for(wanted, timeout=timeout, since=since)


def boot_each(lab: Any, names: Iterable[str], flavor: str = "m1.small",
              timeout: float = 180.0) -> list[dict[str, Any]]:
    """Boot one instance, wait until it is ACTIVE or ERROR, then the next: one request at
    a time, so the same seed places them on the same hosts every run. Final records."""
    return [lab.wait(lab.boot(name, flavor=flavor), timeout=timeout) for name in names]


def outcomes(records: Iterable[dict[str, Any]]) -> list[tuple[str, str, str | None, int]]:
    """``(name, status, host, attempts)`` per server record."""
    return [(r["name"], r["status"], r["OS-EXT-SRV-ATTR:host"], r["OS-EXT-LAB:num_attempts"])
            for r in records]


def computes_used(trace: Trace) -> list[str]:
    """The computes that were sent a ``build_and_run_instance``, in lane order."""
    dsts = [e["dst"] for e in trace.routed().where(method="build_and_run_instance")]
    return [short(n) for n in lane_order(dsts)]


def said_by(trace: Trace, topic: str) -> list[tuple[str, str, str]]:
    """The distinct workflow messages that services of ``topic`` sent, as
    ``(kind, receiver's topic, method)``, sorted."""
    sent = _workflow(trace).where(src=topic)
    return sorted({(e["kind"], topic_of(e["dst"]), e["method"]) for e in sent})


def sent_to(graph: networkx.MultiDiGraph, sender: str, topic: str | None = None) -> list[str]:
    """Short names of the services ``sender`` (a topic: ``scheduler``) sent anything to,
    only those of ``topic`` if given (``compute``), in lane order."""
    out = [dst for src, dst in graph.out_edges() if topic_of(src) == sender
           and (topic is None or topic_of(dst) == topic)]
    return [short(n) for n in lane_order(out)]


def links(graph: networkx.MultiDiGraph, sender: str) -> list[tuple[str, str, str]]:
    """Every edge out of the services of topic ``sender``: ``(receiver, kind, method)``,
    short names, sorted."""
    return sorted((short(dst), d["kind"], d["method"])
                  for src, dst, d in graph.out_edges(data=True) if topic_of(src) == sender)


def edges(graph: networkx.MultiDiGraph,
          workflow_only: bool = False) -> list[tuple[str, str, str, str, int]]:
    """``(src, dst, kind, method, count)`` per edge, short names, in lane order of
    (src, dst); ``workflow_only`` keeps the workflow methods and their replies."""
    rows = [(src, dst, d["kind"], d["method"], d["count"])
            for src, dst, d in graph.edges(data=True)
            if not workflow_only or d["method"] in WORKFLOW_METHODS]
    order = {name: i for i, name in enumerate(lane_order(graph.nodes))}
    rows.sort(key=lambda r: (order[r[0]], order[r[1]], r[2], r[3]))
    return [(short(s), short(d), k, m, n) for s, d, k, m, n in rows]


def edge_table(graph: networkx.MultiDiGraph, workflow_only: bool = True) -> str:
    """``edges`` as a plain-text table."""
    rows = [("from", "to", "kind", "method", "count")]
    rows += [(s, d, k, m, str(n)) for s, d, k, m, n in edges(graph, workflow_only)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(v.rjust(w) if i == 4 else v.ljust(w)
                               for i, (v, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)


def reschedules(trace: Trace) -> list[Event]:
    """The casts by which a compute hands a failed build back (``build_instances`` to the
    conductor, or in the legacy flow ``run_instance`` to the scheduler)."""
    return list(trace.routed().filter(is_reschedule).where(method=BUILD_RESCHEDULES))


def retry_roles(trace: Trace) -> dict[str, list[str]]:
    """Who does what when a build is retried (attempt 2 and later), as service topics:
    who hands the failed build back, who receives it, who asks the scheduler, who casts
    the build to the next compute."""
    retried = trace.routed().filter(lambda e: int(e["attempt"] or 0) >= 2)

    def topics(events: Trace, field: str) -> list[str]:
        return sorted({topic_of(e[field]) for e in events})

    handed = retried.filter(is_reschedule).where(method=BUILD_RESCHEDULES)
    return {
        "hands the failed build back": topics(handed, "src"),
        "receives it": topics(handed, "dst"),
        "asks the scheduler for a host": topics(
            retried.where(kind="call", method="select_destinations"), "src"),
        "casts the build to the next compute": topics(
            retried.where(kind="cast", method="build_and_run_instance"), "src"),
    }


def last_said(trace: Trace, instance: str, by: str = "compute") -> tuple[Step, int]:
    """The last message (not a reply) that a service of topic ``by`` sent about the
    instance, as a step, with its attempt number. KeyError if it sent none."""
    said = trace.routed().where(instance=instance, src=by).filter(
        lambda e: e["kind"] != "reply")
    if not said:
        raise KeyError(f"no {by} sent anything about {instance}")
    return _step(said[-1]), int(said[-1]["attempt"] or 0)


# -- drawing ---------------------------------------------------------------------------------
def lab_resources(dashboard_url: str) -> Resources:
    """BokehJS served by the lab's dashboard (a Bokeh server on 127.0.0.1): no CDN."""
    from bokeh.resources import Resources
    root = dashboard_url.split("://", 1)[-1].split("/", 1)[0]
    return Resources(mode="server", root_url=f"http://{root}/")


def _layout(names: list[str]) -> dict[str, tuple[float, float]]:
    """api on top, conductor and scheduler below it, the computes in a row at the bottom."""
    fixed = {"api": (0.0, 3.0), "conductor": (-1.4, 1.8), "scheduler": (1.4, 1.8)}
    others = [n for n in names if topic_of(n) not in fixed]
    span = max(len(others) - 1, 1)
    pos = {n: fixed[topic_of(n)] for n in names if topic_of(n) in fixed}
    pos |= {n: (-2.2 + 4.4 * i / span if len(others) > 1 else 0.0, 0.0)
            for i, n in enumerate(others)}
    return pos


def _arrow(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, ...]:
    """An arrow from a to b moved sideways (so a -> b and b -> a do not overlap) and
    stopping short of both dots; then its label: the middle, further out, and the angle
    that writes it along the arrow and never upside down."""
    (x0, y0), (x1, y1) = a, b
    length = max(math.hypot(x1 - x0, y1 - y0), 1e-9)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    sx, sy = uy * 0.06, -ux * 0.06                 # to the right of the direction of travel
    angle = math.atan2(uy, ux)
    if angle > math.pi / 2 or angle <= -math.pi / 2:
        angle -= math.copysign(math.pi, angle)
    return (x0 + sx + ux * 0.2, y0 + sy + uy * 0.2, x1 + sx - ux * 0.2, y1 + sy - uy * 0.2,
            (x0 + x1) / 2 + sx * 2.6, (y0 + y1) / 2 + sy * 2.6, angle)


NAME_SIDES = {"api": (0, 16, "center"), "conductor": (-14, 0, "right"),
              "scheduler": (14, 0, "left")}          # computes: below their dot
EDGE_COLUMNS = ("x0", "y0", "x1", "y1", "xl", "yl", "angle", "src", "dst", "kind", "color",
                "dash", "label")


def _edge_columns(rows: list[tuple[str, str, str, str, int]],
                  pos: dict[str, tuple[float, float]]) -> dict[str, list[Any]]:
    """One row per (sender, receiver): its arrow, label, and the style of the first of
    cast, call, reply... it carries."""
    pairs: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for s, d, k, m, n in rows:
        pairs.setdefault((s, d), []).append((k, m, n))
    cols: dict[str, list[Any]] = {key: [] for key in EDGE_COLUMNS}
    for (s, d), carried in pairs.items():
        kind = next(k for k in MESSAGE_KINDS if any(c[0] == k for c in carried))
        label = ", ".join(f"{m} ×{n}" for _, m, n in carried)
        values = (*_arrow(pos[s], pos[d]), s, d, kind, *_style(kind), label)
        for key, value in zip(EDGE_COLUMNS, values):
            cols[key].append(value)
    return cols


def graph_figure(graph: networkx.MultiDiGraph, title: str,
                 workflow_only: bool = True) -> figure:
    """The graph drawn in Bokeh: one arrow per (sender, receiver), casts solid, calls
    dashed, replies dotted, labelled with its methods and counts (``workflow_only``: the
    workflow methods, see ``edges``). Sources are named ``nodes`` and ``edges``."""
    from bokeh.core.properties import field
    from bokeh.models import Arrow, ColumnDataSource, LabelSet, NormalHead
    from bokeh.plotting import figure as new_figure

    rows = edges(graph, workflow_only)
    used = {r[0] for r in rows} | {r[1] for r in rows}
    names = [short(n) for n in lane_order(graph.nodes) if short(n) in used]
    pos = _layout(names)
    p = new_figure(title=title, width=520, height=440, x_range=(-2.9, 2.9),
                   y_range=(-0.6, 3.4), tools="pan,wheel_zoom,reset,save",
                   toolbar_location="below")
    p.axis.visible = False
    p.grid.visible = False
    lines = ColumnDataSource(_edge_columns(rows, pos), name="edges")
    color = field("color")
    p.add_layout(Arrow(source=lines, x_start="x0", y_start="y0", x_end="x1", y_end="y1",
                       line_color=color, line_dash=field("dash"), line_width=2,
                       end=NormalHead(size=9, fill_color=color, line_color=color)))
    p.add_layout(LabelSet(source=lines, x="xl", y="yl", text="label", angle="angle",
                          text_font_size="8pt", text_align="center", text_baseline="middle",
                          text_color=color))
    sides = [NAME_SIDES.get(n, (0, -16, "center")) for n in names]
    nodes = ColumnDataSource({"name": names, "x": [pos[n][0] for n in names],
                              "y": [pos[n][1] for n in names],
                              "dx": [s[0] for s in sides], "dy": [s[1] for s in sides],
                              "align": [s[2] for s in sides]}, name="nodes")
    p.scatter("x", "y", source=nodes, size=18, fill_color="#eeeeee", line_color="#333333")
    p.add_layout(LabelSet(source=nodes, x="x", y="y", text="name", x_offset="dx",
                          y_offset="dy", text_align=field("align"), text_baseline="middle",
                          text_font_style="bold", text_font_size="10pt"))
    return p


def _style(kind: str) -> tuple[str, str]:
    from ..trace_export import KIND_STYLE, OTHER_STYLE
    return KIND_STYLE.get(kind, OTHER_STYLE)


def show_graphs(lab: Any, graphs: Mapping[str, networkx.MultiDiGraph],
                workflow_only: bool = True) -> None:
    """The graphs side by side in the notebook, BokehJS from the lab's dashboard."""
    from bokeh.io import output_notebook, show
    from bokeh.layouts import row
    output_notebook(resources=lab_resources(lab.start_dashboard()), hide_banner=True)
    show(row([graph_figure(g, title, workflow_only) for title, g in graphs.items()]))
