"""The dashboard document, built once per browser session (a Bokeh directory app).

Two layouts, chosen by the page's ``?layout=``: ``notebook`` (the default: about 760 px
high, so it fits a screen beside the lesson: the topology with the controls beside it,
then the time-space diagram with the metrics, then the instances) and ``projector`` (it
fills its window, 1366x768 or 1920x1080: the topology and the time-space diagram side by
side between a strip of controls and a strip of metrics). ``?metrics=a,b`` puts those
metrics first (``lab.show(metrics=[...])``: what a lesson is about).

The server only streams: every 100 ms the session's model turns new trace events into
rows for the named sources (``messages``, ``timeline``), and once a second it repaints
``nodes``, ``edges``, ``reschedule``, ``instances`` and ``metrics``. All motion is
computed in the browser (``animate.js``, requestAnimationFrame) into the ``dots`` source,
changed in place so nothing travels back to the server.

Server names, faults and hosts are users' text: they reach the page as glyph text (drawn
on a canvas), option labels (text nodes) and ``@field`` tooltip values, which Bokeh 3
HTML-escapes unless the field says ``{safe}`` (never here). The Divs' HTML is built from
constants and numbers, or escaped (``metrics_html``).
"""
from __future__ import annotations

import time

from bokeh.io import curdoc
from bokeh.layouts import column, row
from bokeh.models import (Button, CDSView, CheckboxGroup, ColumnDataSource, CustomJS,
                          DataRange1d, Div, GroupFilter, HoverTool, Select, Slider, Toggle)
from bokeh.plotting import figure

from lab.dashboard import feed as feeds
from lab.dashboard.animate import ANIMATE_JS, JUMP_JS
from lab.dashboard.layout import BOX, MIN_FIGURE, X_RANGE
from lab.dashboard.model import MESSAGE_COLUMNS, TIMELINE_COLUMNS, DashboardModel
from lab.dashboard.palette import CAPTION_COLOR, KIND_COLORS, KIND_MARKERS, LABEL_COLOR
from lab.dashboard.text import instance_options, metrics_html
from lab.dashboard.topology import ANNOTATION_COLUMNS, captions

ROLLOVER = 3000
LIVE_NOTE = "<b style='color:#2e8b57'>&#9679; live</b>"
LAYOUTS = ("notebook", "projector")
doc = curdoc()
source = feeds.current()
doc.title = "Conductor Lab"


def page_argument(name: str) -> str:
    """A query argument of the page that opened this session ("" if none)."""
    context = doc.session_context
    values = context.request.arguments.get(name) if context and context.request else None
    return values[0].decode("utf-8", "replace") if values else ""


LAYOUT = page_argument("layout") if page_argument("layout") in LAYOUTS else "notebook"
FIRST_METRICS = [m for m in page_argument("metrics").split(",") if m]
PROJECTOR = LAYOUT == "projector"


def empty(columns) -> dict:
    return {c: [] for c in columns}


def initial_services() -> list[str]:
    names = list(source.snapshot.get("states", {}))
    names += [e[k] for e in source.events_since(0)[:2000] for k in ("src", "dst")]
    return sorted({n for n in names if n and n != "bus" and "." in n})


config = source.snapshot.get("config", {})
state = {"seq": 0, "generation": source.generation, "last_slow": 0.0,
         "model": DashboardModel(initial_services(), max_attempts=config.get("max_attempts", 3))}
model = state["model"]   # the first one builds the figures; rebuilds replace state["model"]

messages = ColumnDataSource(empty(MESSAGE_COLUMNS), name="messages")
timeline = ColumnDataSource(empty(TIMELINE_COLUMNS), name="timeline")
dots = ColumnDataSource({"x": [], "y": [], "color": [], "marker": [], "size": [],
                         "alpha": [], "label": []}, name="dots")
nodes = ColumnDataSource(model.nodes_data(), name="nodes")
edges = ColumnDataSource(model.edges_data(), name="edges")
reschedule = ColumnDataSource(model.reschedule_data(), name="reschedule")
instances = ColumnDataSource(model.instances_data([], time.time()), name="instances")
metrics = ColumnDataSource(model.metrics_data(time.time(), first=FIRST_METRICS),
                           name="metrics")
annotations = ColumnDataSource(empty(ANNOTATION_COLUMNS), name="annotations")

# -- topology: services, edges that traffic used, dots in flight, the reschedule loop ----
topo = figure(title="Who talks to whom, live", tools="pan,wheel_zoom,reset",
              min_width=MIN_FIGURE[0], min_height=MIN_FIGURE[1], x_range=X_RANGE,
              y_range=(BOX[2], BOX[3]), toolbar_location="above", name="topology",
              **({"sizing_mode": "stretch_both"} if PROJECTOR else
                 {"sizing_mode": "stretch_width", "height": 370}))
topo.xgrid.visible = topo.ygrid.visible = False
topo.axis.visible = False
topo.multi_line("xs", "ys", source=edges, line_color="color", line_width="width",
                line_alpha=0.35)
topo.multi_line("xs", "ys", source=reschedule, line_color="color", line_width=5,
                line_alpha=0.45, line_dash="dashed")
topo.scatter("x", "y", source=nodes, size="size", fill_color="color", line_color="#333",
             fill_alpha=0.9, name="node_glyphs")
# Names and captions beside their nodes, dark on white (layout.NodeStyle says where):
# never white text spilling off a circle.
topo.text("x", "y", text="label", source=nodes, x_offset="label_dx", y_offset="label_dy",
          text_align="label_align", text_baseline="middle", text_color=LABEL_COLOR,
          text_font_size="label_size", text_font_style="bold", name="node_names")
topo.text("x", "y", text="info", source=nodes, x_offset="caption_dx",
          y_offset="caption_dy", text_align="label_align", text_baseline="middle",
          text_font_size="8pt", text_color=CAPTION_COLOR, name="node_captions")
# Never drawn: keeps the streamed messages in the document's model graph, so the
# browser (and a browser test) can find them by name.
topo.scatter("x0", "y0", source=messages, visible=False, name="messages_anchor")
topo.scatter("x", "y", source=dots, marker="marker", size="size", fill_color="color",
             line_color="color", fill_alpha="alpha", line_alpha="alpha")
# One note per compute ("attempt 2/3", "3 rescheduling", a fault), the conductor's faults
topo.text("x", "y", text="text", source=annotations, x_offset="dx", y_offset="dy",
          text_align="align", text_baseline="middle", text_color="color",
          text_font_style="bold", text_font_size="size", name="node_notes")
SYMBOLS = {"circle": "●", "square": "■", "triangle": "▲", "diamond": "◆",
           "inverted_triangle": "▼"}
legend = Div(name="legend", text=" ".join(
    f"<span style='color:{color};font-size:15px'>{SYMBOLS[KIND_MARKERS[kind]]}</span>&nbsp;{kind}"
    for kind, color in KIND_COLORS.items()) +
    " <span style='color:#d62728;font-size:15px'>✖</span>&nbsp;dropped / timed out"
    " &nbsp; <i>dashed orange: the reschedule loop</i>")

# -- time-space diagram: one lane per service, one segment per message -----------------
seq = figure(title="Time-space diagram (time runs right; hover for details)",
             min_width=420, tools="xpan,xwheel_zoom,reset,tap", name="sequence",
             **({"sizing_mode": "stretch_both", "min_height": 360} if PROJECTOR else
                {"sizing_mode": "stretch_width", "height": 200}),
             x_range=DataRange1d(follow="end", follow_interval=20, range_padding=0.02),
             y_range=(-0.5, max(1, len(model.lanes())) - 0.5))
seq.yaxis.ticker = list(range(len(model.lanes())))
seq.yaxis.major_label_overrides = model.lane_labels()
seq.xaxis.axis_label = "seconds"
for dash in ("solid", "dashed", "dotted"):
    view = CDSView(filter=GroupFilter(column_name="dash", group=dash))
    seq.segment("t0", "y0", "t1", "y1", source=timeline, view=view, line_color="color",
                line_width=2, line_dash=dash, nonselection_line_alpha=0.25,
                selection_line_width=4, name=f"timeline_{dash}")
seq.scatter("t1", "y1", source=timeline, size=5, color="color")
seq.add_tools(HoverTool(tooltips=[("", "@kind @method"), ("from", "@src"), ("to", "@dst"),
                                  ("instance", "@instance"), ("attempt", "@attempt"),
                                  ("phase", "@phase")]))

# -- instances: one lane per instance, its task states as segments --------------------
lanes = figure(title="Instances (click one to highlight its messages)",
               sizing_mode="stretch_width", min_width=420, height=130, tools="tap,reset",
               name="instance_lanes",
               x_range=DataRange1d(follow="end", follow_interval=30))
bars = lanes.hbar(y="y", left="start", right="end", height=0.7, color="color",
                  source=instances, nonselection_alpha=0.35)
lanes.text("start", "y", text="name", source=instances, text_font_size="8pt",
           text_baseline="middle", x_offset=2)
lanes.yaxis.visible = False
lanes.add_tools(HoverTool(renderers=[bars],       # one tooltip per lane, not one per glyph
                          tooltips=[("", "@name @state"), ("fault", "@fault")]))

# -- metrics and controls -------------------------------------------------------------
# A Div, not a DataTable: Bokeh's DataTable stops redrawing once its row count stops
# changing (bokeh#13859), and a metrics table that freezes misleads a class.
# Never an inner scroll bar: the table is as tall as its rows (a strip on a projector).
table = Div(text=metrics_html(metrics.data, wide=PROJECTOR), name="metrics_table",
            **({"sizing_mode": "stretch_width"} if PROJECTOR else {"width": 250}))
pause = Toggle(label="Pause display", button_type="default", name="pause")
speed = Slider(title="Playback speed", start=0.1, end=4.0, value=1.0, step=0.1,
               name="speed")
behind = Div(text="live", name="behind")
jump = Button(label="Jump to live", button_type="primary", name="jump")
show = CheckboxGroup(labels=["DB-proxy traffic", "heartbeats & instance info",
                             "lab control traffic"],
                     active=[0], name="show", inline=PROJECTOR)
pick = Select(title="Instance", value="(all)", options=["(all)"], name="instance_filter")
lab_state = Div(text=LIVE_NOTE, name="lab_state", width=230)
controls = [lab_state, pause, speed, behind, jump, show, pick]
if source.mode == "replay":
    seek = Slider(title="Seek (s)", start=0, end=max(source.duration, 0.1), value=0,
                  step=0.1, name="seek")
    replay_speed = Slider(title="Replay speed", start=0.1, end=10, value=source.speed,
                          step=0.1, name="replay_speed")
    seek.on_change("value_throttled", lambda a, o, n: source.seek(n))
    replay_speed.on_change("value", lambda a, o, n: source.set_speed(n))
    controls += [seek, replay_speed]
for control in controls:      # inside the 250 px column (a strip's cell), never wider
    if isinstance(control, (Slider, Select)):
        control.width = 140 if PROJECTOR else 230

anim = CustomJS(args=dict(messages=messages, dots=dots, pause=pause, speed_slider=speed,
                          behind_div=behind), code=ANIMATE_JS)
doc.js_on_event("document_ready", anim)
jump.js_on_event("button_click", CustomJS(code=JUMP_JS))


def rebuild() -> None:
    """Start the view over (new filters, or a replay seek): a fresh model re-reads the
    whole history, so counters stay exact and rows match the filters."""
    old = state["model"]
    fresh = DashboardModel(old.services, max_attempts=old.max_attempts)
    fresh.set_filters(show_db_proxy=0 in show.active, show_heartbeats=1 in show.active,
                      show_lab=2 in show.active,
                      instance="" if pick.value == "(all)" else pick.value)
    state["model"] = fresh
    for src, cols in ((messages, MESSAGE_COLUMNS), (timeline, TIMELINE_COLUMNS)):
        src.data = empty(cols)
    state["seq"] = 0


def apply_filters(attr, old, new) -> None:
    rebuild()


show.on_change("active", apply_filters)
pick.on_change("value", apply_filters)
apply_filters(None, None, None)


def highlight_instance(attr, old, new) -> None:
    """Clicking an instance lane selects its messages in the time-space diagram."""
    if not new:
        timeline.selected.indices = []
        return
    chosen = instances.data["instance"][new[0]]
    timeline.selected.indices = [i for i, inst in enumerate(timeline.data["instance"])
                                 if inst == chosen]


instances.selected.on_change("indices", highlight_instance)


def stream() -> None:
    if source.generation != state["generation"]:   # a replay seek: start over
        state["generation"] = source.generation
        rebuild()
    model = state["model"]
    events = source.events_since(state["seq"])
    if events:
        state["seq"] = events[-1]["seq"]
        for identity in {e[k] for e in events for k in ("src", "dst")} - set(model.positions):
            if "." in identity and not identity.startswith("bus"):
                model.add_service(identity)
        update = model.ingest(events)
        if len(update):
            messages.stream(update.messages, rollover=ROLLOVER)
        if update.timeline.get("seq"):
            timeline.stream(update.timeline, rollover=ROLLOVER)
    now = time.time()
    if now - state["last_slow"] >= 1.0:
        state["last_slow"] = now
        repaint(now)


def stopped_note() -> str:
    """Said once the lab has stopped and its trace is being replayed."""
    stopped = getattr(source, "stopped_at", None)
    if stopped is None:
        return LIVE_NOTE if source.mode == "live" else "<b>replaying a recorded trace</b>"
    at = time.strftime("%H:%M:%S", time.localtime(stopped))
    return (f"<div style='background:#fff3cd;border:1px solid #b8860b;padding:4px 6px'>"
            f"<b>lab stopped at {at}, replaying</b> its recorded trace from the start "
            f"({len(source.events)} messages)</div>")


def repaint(now: float) -> None:
    model = state["model"]
    snap = source.snapshot
    note = stopped_note()
    if lab_state.text != note:
        lab_state.text = note
    for identity in set(snap.get("states", {})) - set(model.positions):
        if "." in identity:            # a service that has not sent anything visible yet
            model.add_service(identity)
    cfg = snap.get("config", {})
    if cfg.get("max_attempts"):
        model.set_max_attempts(cfg["max_attempts"])
    states, stats = captions(snap)
    nodes.data = model.nodes_data(states, None, stats)
    edges.data = model.edges_data()
    instances.data = model.instances_data(snap.get("servers", []), now)
    reschedule.data = model.reschedule_data()
    metrics.data = model.metrics_data(now, snap.get("latencies"), first=FIRST_METRICS)
    table.text = metrics_html(metrics.data, wide=PROJECTOR)
    annotations.data = model.annotations_data(snap.get("servers", []), stats)
    choices = ["(all)", *instance_options(snap.get("servers", []))]
    if choices != pick.options:
        pick.options = choices
    seq.yaxis.ticker = list(range(len(model.lanes())))
    seq.yaxis.major_label_overrides = model.lane_labels()
    seq.y_range.end = max(1, len(model.lanes())) - 0.5


if PROJECTOR:   # fills the window: controls on top, the two diagrams, the metrics below
    replay = controls[len(controls) - 2:] if source.mode == "replay" else []
    strip = column(row(legend, lab_state, sizing_mode="stretch_width"),
                   row(pause, speed, behind, jump, show, pick, *replay,
                       sizing_mode="stretch_width"),
                   name="top_row", sizing_mode="stretch_width")
    body = column(strip, row(topo, seq, name="middle_row", sizing_mode="stretch_both"),
                  row(table, name="bottom_row", sizing_mode="stretch_width"),
                  name="dashboard", sizing_mode="stretch_both", styles={"height": "100vh"})
else:           # a notebook's frame: about 760 px high, the plots as wide as the page
    body = column(
        row(column(legend, topo, sizing_mode="stretch_width"), column(*controls, width=250),
            name="top_row", sizing_mode="stretch_width"),
        row(column(seq, lanes, sizing_mode="stretch_width"), table, name="middle_row",
            sizing_mode="stretch_width"),
        name="dashboard", sizing_mode="stretch_width")
doc.add_root(body)
doc.add_root(metrics)   # the numbers stay a named source (tests and notebooks read it)
doc.add_periodic_callback(stream, 100)
