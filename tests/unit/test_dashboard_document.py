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
