"""The dashboard document builds without a server or a browser: the directory app runs
against a hand-made feed, its named sources exist, and one turn of its periodic callback
streams the feed's events into them."""
from __future__ import annotations

import pytest
from bokeh.application import Application
from bokeh.application.handlers import DirectoryHandler

from lab.dashboard import feed
from lab.dashboard.server import APP_DIR
from orchestrator.messaging import protocol


def _events() -> list[dict]:
    ctx = {"request_id": "req-1", "instance_uuid": "i-1", "attempt": 1}
    steps = [("cast", "api.api", "conductor", "conductor1", "build_instances"),
             ("call", "conductor.conductor1", "scheduler", "scheduler1", "select_destinations"),
             ("cast", "conductor.conductor1", "compute", "compute1", "build_and_run_instance")]
    out = []
    for seq, (kind, src, topic, server, method) in enumerate(steps, 1):
        env = protocol.envelope(kind, src, topic, method, server=server, ctx=ctx)
        out.append(protocol.trace_event(seq, env, "routed", f"{topic}.{server}", 100))
    return out


class FakeFeed:
    mode = "live"
    generation = 0

    def __init__(self, events):
        self.events = events
        self.snapshot = {"servers": [], "hypervisors": [], "states": {}, "failures": {},
                         "latencies": [], "config": {"max_attempts": 3}}

    def events_since(self, seq):
        return [e for e in self.events if e["seq"] > seq]


@pytest.fixture
def document():
    feed.install(FakeFeed(_events()))
    try:
        yield Application(DirectoryHandler(filename=str(APP_DIR))).create_document()
    finally:
        feed.install(None)


def test_named_sources_and_controls_exist(document):
    for name in ("messages", "nodes", "instances", "timeline", "metrics", "dots", "edges",
                 "reschedule", "pause", "speed", "behind", "jump", "show",
                 "instance_filter", "topology", "sequence"):
        assert document.get_model_by_name(name) is not None, name
    assert document.get_model_by_name("seek") is None       # live mode: no seek


def test_one_turn_streams_the_feed_in_order(document):
    (callback,) = [cb for cb in document.session_callbacks]
    callback.callback()
    messages = document.get_model_by_name("messages").data
    assert messages["method"] == ["build_instances", "select_destinations",
                                  "build_and_run_instance"]
    assert messages["seq"] == [1, 2, 3]
    timeline = document.get_model_by_name("timeline").data
    assert len(timeline["seq"]) == 3
    metrics = dict(zip(*document.get_model_by_name("metrics").data.values()))
    assert metrics["select_destinations calls"] == "1"


def test_the_animation_runs_in_the_browser_only(document):
    callbacks = document.callbacks.js_event_callbacks.get("document_ready", [])
    assert callbacks and "requestAnimationFrame" in callbacks[0].code
    assert "change.emit()" in callbacks[0].code


HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "<b>bold</b>",
           "&amp;", "two\nlines"]


def test_hostile_names_reach_the_document_as_data_never_as_markup():
    """Names go verbatim into sources and option labels (text on the page); the only HTML
    the app writes (the Divs) holds none of them; no tooltip asks Bokeh not to escape."""
    from bokeh.models import Div, HoverTool
    fake = FakeFeed(_events())
    fake.snapshot["servers"] = [          # failed where no compute wrote it: the conductor
        {"id": f"{i:04d}cafe-{i}", "name": name, "status": "ERROR",
         "OS-EXT-SRV-ATTR:host": None, "OS-EXT-STS:task_state": None,
         "fault": {"message": f"NoValidHost: {name}"}}
        for i, name in enumerate(HOSTILE)]
    feed.install(fake)
    try:
        doc = Application(DirectoryHandler(filename=str(APP_DIR))).create_document()
        (callback,) = doc.session_callbacks
        callback.callback()                           # streams, then the first repaint
    finally:
        feed.install(None)
    assert set(doc.get_model_by_name("instances").data["name"]) == set(HOSTILE)
    assert doc.get_model_by_name("annotations").data["text"] == [   # the newest three
        "two\nlines: NoValidHost", "&amp;: NoValidHost", "<b>bold</b>: NoValidHost"]
    pick = doc.get_model_by_name("instance_filter")
    assert pick.options[0] == "(all)"
    assert [label.rsplit(" (", 1)[0] for _, label in pick.options[1:]] == HOSTILE
    divs = [m for m in doc.models if isinstance(m, Div)]
    assert {d.name for d in divs} >= {"metrics_table", "lab_state", "legend", "behind"}
    for div in divs:
        for needle in ("<script", "<img", "<b>bold", "&amp;amp;", "onerror"):
            assert needle not in div.text, (div.name, needle)
    tooltips = [t for tool in doc.models if isinstance(tool, HoverTool)
                for t in tool.tooltips]
    assert tooltips and all("{safe}" not in value for _, value in tooltips)
    assert any("@name" in value for _, value in tooltips)
