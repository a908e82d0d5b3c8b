"""Unit tests for lab.trace_export through the Trace methods: JSON Lines save/load, the
Chrome trace-event export (Perfetto), the ShiViz log with vector clocks, and the Bokeh
time-space diagram (built, never shown). Events are hand-built in the bus's trace-event
schema with a small ``Wire``, as in test_trace.py."""
from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest
from bokeh.embed import json_item
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from lab.trace import Trace
from lab.trace_export import SHIVIZ_REGEX, lane_labels
from orchestrator.messaging import protocol

API, COND, SCHED = "api.api", "conductor.conductor1", "scheduler.scheduler1"
C1, C2, LAB = "compute.compute1", "compute.compute2", "lab.control"
LANES = [API, COND, SCHED, C1, C2, LAB]


class Wire:
    """Hand-made bus traffic: one trace event per message; ``sent`` and ``ts`` 10 ms apart."""

    def __init__(self, t: float = 1000.0):
        self.events: list[dict] = []
        self.t = t

    def send(self, kind, src, dst, method, *, uuid="uuid-1", attempt=1, phase="routed",
             reason="", call=None):
        topic, server = protocol.split_identity(dst)
        ctx = {"request_id": "req-1", "instance_uuid": uuid, "attempt": attempt}
        env = (protocol.reply_to(call, src) if call else
               protocol.envelope(kind, src, topic, method, server=server, ctx=ctx))
        env["sent"] = self.t
        self.t += 0.01
        self.events.append(protocol.trace_event(len(self.events) + 1, env, phase, dst,
                                                100, reason, ts=self.t))
        self.t += 0.01
        return env

    def call(self, src, dst, method, **kw):
        self.send("reply", dst, src, method, call=self.send("call", src, dst, method, **kw))

    def fanout(self, src, dsts, method):
        """One envelope delivered to each of ``dsts``, 1 ms apart."""
        self.send("fanout", src, dsts[0], method, uuid="", attempt=0)
        for dst in dsts[1:]:
            last = self.events[-1]
            self.events.append({**last, "seq": last["seq"] + 1, "dst": dst,
                                "ts": last["ts"] + 0.001})


def conductor_flow() -> Wire:
    """compute1 reschedules to the conductor, compute2 builds; the lab fans out to the
    computes; a cast is dropped and a call expires. 14 routed messages."""
    w = Wire()
    w.send("cast", API, COND, "build_instances")
    w.call(COND, SCHED, "select_destinations")
    w.send("cast", COND, C1, "build_and_run_instance")
    w.call(C1, COND, "instance_update")
    w.send("cast", C1, COND, "build_instances", attempt=2)
    w.call(COND, SCHED, "select_destinations", attempt=2)
    w.send("cast", COND, C2, "build_and_run_instance", attempt=2)
    w.call(C2, COND, "instance_update", attempt=2)
    w.fanout(LAB, [C1, C2], "set_failures")
    w.send("cast", COND, C1, "build_and_run_instance", uuid="uuid-2", phase="dropped",
           reason="drop 1.0")
    w.send("call", COND, SCHED, "select_destinations", uuid="uuid-2", phase="expired",
           reason="call timeout")
    w.send("cast", COND, "compute", "build_and_run_instance", uuid="uuid-2",
           phase="queued", reason="no live server")
    return w


def legacy_flow() -> Wire:
    """The old process: the scheduler casts to both computes. 6 routed messages."""
    w = Wire()
    w.send("cast", API, SCHED, "run_instance")
    w.send("cast", SCHED, C1, "build_and_run_instance")
    w.call(C1, COND, "instance_update")
    w.send("cast", C1, SCHED, "run_instance", attempt=2)
    w.send("cast", SCHED, C2, "build_and_run_instance", attempt=2)
    return w


@pytest.fixture
def trace() -> Trace:
    return Trace(conductor_flow().events)


ROUTED = 14


def test_the_fixture_is_what_its_docstring_says(trace):
    assert len(trace.routed()) == ROUTED and len(trace) == ROUTED + 3
    fanout = trace.where(kind="fanout")
    assert [e["dst"] for e in fanout] == [C1, C2]
    assert fanout[0]["msg_id"] == fanout[1]["msg_id"] and fanout[0]["sent"] == fanout[1]["sent"]
    assert len(Trace(legacy_flow().events).routed()) == 6


# -- JSON Lines -------------------------------------------------------------------------------
def test_save_load_round_trip(trace, tmp_path):
    path = tmp_path / "trace.jsonl"
    trace.save(path)
    lines = path.read_text().splitlines()
    assert len(lines) == len(trace)
    assert all(list(json.loads(line)) == list(protocol.TRACE_FIELDS) for line in lines)
    assert lines[0] == protocol.trace_json(trace[0])
    loaded = Trace.load(path)
    assert isinstance(loaded, Trace) and loaded.events == trace.events
    Trace([]).save(path)
    assert path.read_text() == "" and len(Trace.load(str(path))) == 0


def test_load_skips_a_partial_last_line(trace, tmp_path):
    path = tmp_path / "trace.jsonl"
    trace.save(path)
    whole = path.read_bytes()
    path.write_bytes(whole + protocol.trace_json(trace[0]).encode()[:40])
    assert Trace.load(path).events == trace.events
    path.write_bytes(whole + "{\"method\": \"caf\u00e9".encode()[:-1])  # cut inside a char
    assert Trace.load(path).events == trace.events
    path.write_bytes(whole[:-1])                 # complete, only the newline missing
    assert Trace.load(path).events == trace.events


def test_load_skips_blank_lines(trace, tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(protocol.trace_json(e) + "\n" for e in trace[:3]) + "\n")
    assert Trace.load(path).events == trace[:3].events


@pytest.mark.parametrize("line,message", [
    ("not json", "line 3: not JSON"),
    ("[1, 2]", "line 3: a list, not a trace event"),
    ('{"seq": 3}', "line 3: trace event missing fields ts, kind"),
])
def test_load_rejects_a_bad_line_in_the_middle(trace, tmp_path, line, message):
    lines = [protocol.trace_json(e) for e in trace]
    lines[2] = line
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(message)):
        Trace.load(path)


def test_load_rejects_an_event_missing_sent_and_a_bad_terminated_last_line(trace, tmp_path):
    path = tmp_path / "trace.jsonl"
    old = {k: v for k, v in trace[0].items() if k != "sent"}
    path.write_text(protocol.trace_json(trace[1]) + "\n" + json.dumps(old) + "\n")
    with pytest.raises(ValueError, match="line 2: trace event missing fields sent$"):
        Trace.load(path)
    path.write_text(protocol.trace_json(trace[1]) + "\n{\"seq\": \n")
    with pytest.raises(ValueError, match="line 2: not JSON"):
        Trace.load(path)
    path.write_text(protocol.trace_json(trace[1]) + "\n" + json.dumps(old))  # unterminated
    with pytest.raises(ValueError, match="line 2: trace event missing fields sent$"):
        Trace.load(path)


# -- Chrome trace-event format ----------------------------------------------------------------
def _by_ph(doc, ph):
    return [e for e in doc["traceEvents"] if e["ph"] == ph]


def test_chrome_export_is_json(trace, tmp_path):
    doc = trace.to_chrome()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["displayTimeUnit"] == "ms"
    assert {e["pid"] for e in doc["traceEvents"]} == {1}
    path = tmp_path / "trace.json"
    assert trace.to_chrome(path) == doc
    assert json.loads(path.read_text()) == doc


def test_chrome_export_has_one_thread_per_service_in_lane_order(trace):
    doc = trace.to_chrome()
    names = {e["tid"]: e["args"]["name"] for e in _by_ph(doc, "M")
             if e["name"] == "thread_name"}
    order = {e["tid"]: e["args"]["sort_index"] for e in _by_ph(doc, "M")
             if e["name"] == "thread_sort_index"}
    assert sorted(names.values()) == sorted(LANES) and set(order) == set(names)
    tid = {name: t for t, name in names.items()}
    indices = [order[tid[name]] for name in LANES]
    assert indices == sorted(set(indices))                 # distinct, in lane order
    process = [e for e in _by_ph(doc, "M") if e["name"] == "process_name"]
    assert len(process) == 1


def test_chrome_flows_pair_up_from_sender_to_receiver(trace):
    doc = trace.to_chrome()
    tid = {e["args"]["name"]: e["tid"] for e in _by_ph(doc, "M") if e["name"] == "thread_name"}
    starts = {e["id"]: e for e in _by_ph(doc, "s")}
    ends = {e["id"]: e for e in _by_ph(doc, "f")}
    assert len(starts) == len(ends) == ROUTED and set(starts) == set(ends)
    t0 = min(min(e["sent"], e["ts"]) for e in trace)
    for e in trace.routed():
        s, f = starts[e["seq"]], ends[e["seq"]]
        assert (s["tid"], f["tid"]) == (tid[e["src"]], tid[e["dst"]])
        assert s["cat"] == f["cat"] == e["kind"] and f["bp"] == "e"
        assert s["ts"] == pytest.approx((e["sent"] - t0) * 1e6)
        assert f["ts"] == pytest.approx((e["ts"] - t0) * 1e6) and f["ts"] > s["ts"]


def test_chrome_slices_carry_the_message_and_never_overlap_on_a_thread(trace):
    doc = trace.to_chrome()
    slices = _by_ph(doc, "X")
    assert len(slices) == 2 * ROUTED - 1               # the fanout is sent once
    assert min(e["ts"] for e in slices) == 0
    first = [e for e in slices if e["args"]["seq"] == 1]
    assert [e["args"]["method"] for e in first] == ["build_instances"] * 2
    assert {"method", "kind", "msg_id", "instance", "attempt", "phase"} <= first[0]["args"].keys()
    assert first[0]["args"]["instance"] == "uuid-1" and first[0]["args"]["phase"] == "routed"
    threads = defaultdict(list)
    for e in slices:
        threads[e["tid"]].append(e)
    for group in threads.values():
        group.sort(key=lambda e: e["ts"])
        assert all(a["ts"] + a["dur"] <= b["ts"] for a, b in zip(group, group[1:]))
        assert all(e["dur"] > 0 for e in group)


def test_chrome_slices_are_cut_short_by_the_next_one_on_their_thread():
    w = Wire()
    w.send("cast", API, COND, "build_instances")
    w.send("cast", API, COND, "build_instances")
    second = w.events[-1]
    w.events[-1] = {**second, "ts": w.events[0]["ts"] + 0.0001}     # 100 us later
    slices = [e for e in _by_ph(Trace(w.events).to_chrome(), "X")
              if e["args"]["dst"] == COND and e["tid"] == 2]
    assert [e["dur"] for e in sorted(slices, key=lambda e: e["ts"])] == [
        pytest.approx(100), 500]


def test_chrome_fanout_is_one_send_with_a_flow_to_each_receiver(trace):
    doc = trace.to_chrome()
    lab = [e for e in _by_ph(doc, "M") if e["args"].get("name") == LAB][0]["tid"]
    sends = [e for e in _by_ph(doc, "X") if e["tid"] == lab]
    assert len(sends) == 1 and sends[0]["args"]["dst"] == f"{C1}, {C2}"
    flows = [e for e in _by_ph(doc, "s") if e["tid"] == lab]
    assert len(flows) == 2 and {f["ts"] for f in flows} == {sends[0]["ts"]}
    ends = {e["id"]: e for e in _by_ph(doc, "f")}
    assert len({ends[f["id"]]["tid"] for f in flows}) == 2


def test_chrome_marks_dropped_and_expired_messages(trace):
    instants = _by_ph(trace.to_chrome(), "i")
    assert [e["name"] for e in instants] == ["dropped build_and_run_instance",
                                             "expired select_destinations"]
    assert instants[0]["args"]["reason"] == "drop 1.0"


def test_chrome_export_of_an_empty_trace():
    assert Trace([]).to_chrome()["traceEvents"] == [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0,
         "args": {"name": "Conductor Lab"}}]


# -- ShiViz -----------------------------------------------------------------------------------
def _shiviz_events(text):
    """(description, host, clock) per event, parsed with the log's own regex."""
    regex, blank, body = text.split("\n", 2)
    assert blank == ""
    pattern = re.compile(regex.replace("(?<", "(?P<"))
    return [(m["event"], m["host"], json.loads(m["clock"])) for m in pattern.finditer(body)]


def _dominates(a, b):
    return all(a.get(host, 0) >= n for host, n in b.items()) and a != b


def test_shiviz_log_starts_with_its_regex(trace, tmp_path):
    text = trace.to_shiviz()
    assert text.split("\n")[0] == r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})" == SHIVIZ_REGEX
    assert text.split("\n")[1] == ""
    assert len(text.rstrip("\n").split("\n")) == 2 + 4 * ROUTED
    path = tmp_path / "trace.shiviz"
    assert trace.to_shiviz(path) == text == path.read_text()


def test_shiviz_has_a_send_and_a_receive_per_delivered_message(trace):
    events = _shiviz_events(trace.to_shiviz())
    assert len(events) == 2 * ROUTED
    routed = trace.routed()
    assert [h for _, h, _ in events[0::2]] == [e["src"] for e in routed]
    assert [h for _, h, _ in events[1::2]] == [e["dst"] for e in routed]
    assert events[0][0] == ("send cast build_instances (instance uuid-1, attempt 1, seq 1) "
                            "to conductor.conductor1")
    assert events[1][0].startswith("receive cast build_instances") and API in events[1][0]


def test_shiviz_receive_dominates_its_send(trace):
    events = _shiviz_events(trace.to_shiviz())
    for (_, _, send), (_, host, receive) in zip(events[0::2], events[1::2]):
        assert _dominates(receive, send)
        assert receive[host] > send.get(host, 0)      # news to the sender: the receipt


def test_shiviz_each_hosts_own_entry_counts_its_events(trace):
    seen = defaultdict(int)
    for _, host, clock in _shiviz_events(trace.to_shiviz()):
        seen[host] += 1
        assert clock[host] == seen[host]
    assert set(seen) == set(LANES)


def test_shiviz_clocks_carry_causality_through_the_conductor():
    events = _shiviz_events(Trace(conductor_flow().events).to_shiviz())
    last_build = [c for d, h, c in events if h == C2 and "build_and_run_instance" in d][-1]
    assert last_build[API] == 1 and last_build[C1] == 4   # the API's request, the reschedule
    lab = [c for _, h, c in events if h == LAB][0]
    assert lab == {LAB: 1}                                # concurrent with all of the build
    legacy = _shiviz_events(Trace(legacy_flow().events).to_shiviz())
    assert [c for _, h, c in legacy if h == C2][0][SCHED] == 4


def test_shiviz_of_an_empty_trace_is_its_header():
    assert Trace([]).to_shiviz() == SHIVIZ_REGEX + "\n\n"


# -- the time-space diagram -------------------------------------------------------------------
def _source(fig, name) -> ColumnDataSource:
    source = fig.select_one({"name": name})
    assert isinstance(source, ColumnDataSource)
    return source


def test_sequence_is_a_figure_with_one_row_per_delivered_message(trace):
    fig = trace.sequence()
    assert isinstance(fig, figure)
    data = _source(fig, "sequence").data
    assert data["seq"] == [e["seq"] for e in trace.routed()]
    assert fig.xaxis[0].major_label_overrides == {
        0: "api", 1: "conductor", 2: "scheduler", 3: "compute1", 4: "compute2", 5: "lab"}
    assert (data["x0"][0], data["x1"][0]) == (0, 1)                    # api -> conductor
    assert data["y0"][0] == 0 and data["y1"][0] == pytest.approx(0.01)  # sent -> ts
    assert all(b > a for a, b in zip(data["y0"], data["y1"]))
    assert fig.y_range.flipped                                          # time runs down
    json.dumps(json_item(fig))                                          # serialisable


def test_sequence_styles_messages_by_kind(trace):
    data = _source(trace.sequence(), "sequence").data
    style = {k: (c, d) for k, c, d in zip(data["kind"], data["color"], data["dash"])}
    assert {k: d for k, (_, d) in style.items()} == {
        "cast": "solid", "call": "dashed", "reply": "dotted", "fanout": "dashdot"}
    assert len({c for c, _ in style.values()}) == 4


def test_sequence_hover_and_legend(trace):
    fig = trace.sequence()
    tips = " ".join(v for tool in fig.select(type=HoverTool) for _, v in tool.tooltips)
    for column in ("@method", "@kind", "@instance_uuid", "@attempt"):
        assert column in tips
    assert fig.legend[0].items


def test_sequence_marks_dropped_messages_at_the_sender(trace):
    fig = trace.sequence()
    data = _source(fig, "dropped").data
    assert data["seq"] == [e["seq"] for e in trace.where(phase="dropped")]
    assert data["x0"] == [1]                                           # the conductor's lane
    marks = [r for r in fig.renderers if getattr(r, "data_source", None) is
             _source(fig, "dropped")][0]
    assert marks.glyph.marker == "x" and marks.glyph.line_color == "red"


def test_sequence_windows_services_and_caps(trace):
    t = trace.routed()
    window = _source(trace.sequence(start=t[2]["ts"], end=t[5]["ts"]), "sequence").data
    assert window["seq"] == [3, 4, 5]
    only = _source(trace.sequence(services=["conductor", SCHED]), "sequence").data
    assert set(only["method"]) == {"select_destinations"} and len(only["seq"]) == 4
    fig = trace.sequence(max_events=5)
    assert len(_source(fig, "sequence").data["seq"]) == 5
    assert "5 of 14" in fig.title.text
    empty = Trace([]).sequence()
    assert _source(empty, "sequence").data["seq"] == []
    json.dumps(json_item(empty))


def test_lane_labels_are_short_unless_ambiguous():
    assert lane_labels([API, SCHED, "scheduler.scheduler2", C1, "lab.a", "lab.b", LAB]) == [
        "api", SCHED, "scheduler.scheduler2", "compute1", "lab.a", "lab.b", LAB]
    assert lane_labels([COND, LAB]) == ["conductor", "lab"]
