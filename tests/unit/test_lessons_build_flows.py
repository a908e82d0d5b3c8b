"""lab.lessons.build_flows on hand-made traces: the legacy and the conductor flow of one
build with one reschedule, as the bus would record them (no processes)."""
from __future__ import annotations

import math
from itertools import count

import pytest

from lab.lessons import build_flows as bf
from lab.trace import Trace

API, COND, SCHED = "api.api", "conductor.conductor1", "scheduler.scheduler1"
C1, C2 = "compute.compute1", "compute.compute2"


def _events(rows: list[tuple]) -> list[dict]:
    """(kind, src, dst, method, attempt[, phase]) rows -> trace events; a call's reply
    follows as the next row with kind "reply" and is paired by msg_id."""
    seq, out, last_call = count(1), [], ""
    for row in rows:
        kind, src, dst, method, attempt, *rest = row
        n = next(seq)
        msg_id = f"m{n}"
        reply_to = last_call if kind == "reply" else ""
        if kind == "call":
            last_call = msg_id
        out.append({"seq": n, "ts": 100.0 + n, "sent": 100.0 + n, "kind": kind,
                    "phase": rest[0] if rest else "routed", "src": src, "dst": dst,
                    "topic": dst.partition(".")[0], "method": method, "msg_id": msg_id,
                    "reply_to": reply_to, "request_id": "req-1", "instance_uuid": "i1",
                    "attempt": attempt, "bytes": 100, "reason": ""})
    return out


CONDUCTOR_FLOW = Trace(_events([
    ("cast", API, COND, "build_instances", 1),
    ("call", COND, SCHED, "select_destinations", 1),
    ("reply", SCHED, COND, "select_destinations", 1),
    ("cast", COND, C1, "build_and_run_instance", 1),
    ("call", C1, COND, "instance_update", 1),
    ("reply", COND, C1, "instance_update", 1),
    ("cast", C1, COND, "build_instances", 2),
    ("call", COND, SCHED, "select_destinations", 2),
    ("reply", SCHED, COND, "select_destinations", 2),
    ("cast", COND, C2, "build_and_run_instance", 2, "queued"),
    ("cast", COND, C2, "build_and_run_instance", 2),
    ("call", C2, COND, "instance_update", 2),
    ("reply", COND, C2, "instance_update", 2),
]))
LEGACY_FLOW = Trace(_events([
    ("cast", API, SCHED, "run_instance", 1),
    ("cast", SCHED, C1, "build_and_run_instance", 1),
    ("call", C1, COND, "instance_update", 1),
    ("reply", COND, C1, "instance_update", 1),
    ("cast", C1, SCHED, "run_instance", 2),
    ("cast", SCHED, C2, "build_and_run_instance", 2),
]))
LEGACY_GIVES_UP = Trace(_events([
    ("cast", API, SCHED, "run_instance", 1),
    ("cast", SCHED, C1, "build_and_run_instance", 1),
    ("call", C1, COND, "instance_fault_create", 1),
    ("reply", COND, C1, "instance_fault_create", 1),
]))


def test_steps_are_the_routed_workflow_messages_in_order():
    assert bf.steps(CONDUCTOR_FLOW) == [
        ("cast", "api", "conductor", "build_instances"),
        ("call", "conductor", "scheduler", "select_destinations"),
        ("reply", "scheduler", "conductor", "select_destinations"),
        ("cast", "conductor", "compute1", "build_and_run_instance"),
        ("cast", "compute1", "conductor", "build_instances"),
        ("call", "conductor", "scheduler", "select_destinations"),
        ("reply", "scheduler", "conductor", "select_destinations"),
        ("cast", "conductor", "compute2", "build_and_run_instance")]
    assert bf.steps(CONDUCTOR_FLOW, "i1") == bf.steps(CONDUCTOR_FLOW)
    assert bf.steps(CONDUCTOR_FLOW, "another") == []


def test_call_and_reply_pairs_by_msg_id():
    call, reply = bf.call_and_reply(CONDUCTOR_FLOW, "select_destinations", "i1")
    assert (call["seq"], reply["seq"]) == (2, 3)
    assert reply["reply_to"] == call["msg_id"]
    call, reply = bf.call_and_reply(CONDUCTOR_FLOW[:2], "select_destinations")
    assert call["seq"] == 2 and reply is None
    with pytest.raises(KeyError):
        bf.call_and_reply(LEGACY_FLOW, "select_destinations")


def test_boot_each_waits_for_one_before_booting_the_next():
    class FakeLab:
        def __init__(self):
            self.log = []

        def boot(self, name, flavor):
            self.log.append(("boot", name, flavor))
            return f"id-{name}"

        def wait(self, sid, timeout):
            self.log.append(("wait", sid))
            return {"id": sid, "status": "ACTIVE"}

    lab = FakeLab()
    records = bf.boot_each(lab, ["a", "b"], flavor="m1.tiny")
    assert [r["id"] for r in records] == ["id-a", "id-b"]
    assert lab.log == [("boot", "a", "m1.tiny"), ("wait", "id-a"),
                       ("boot", "b", "m1.tiny"), ("wait", "id-b")]


def test_who_the_scheduler_sends_to():
    legacy, conductor = LEGACY_FLOW.to_networkx(), CONDUCTOR_FLOW.to_networkx()
    assert bf.sent_to(legacy, "scheduler", "compute") == ["compute1", "compute2"]
    assert bf.sent_to(conductor, "scheduler", "compute") == []
    assert bf.sent_to(conductor, "scheduler") == ["conductor"]
    assert bf.sent_to(conductor, "conductor") == ["scheduler", "compute1", "compute2"]


def test_edges_in_lane_order_with_counts():
    rows = bf.edges(CONDUCTOR_FLOW.to_networkx(), workflow_only=True)
    assert rows == [
        ("api", "conductor", "cast", "build_instances", 1),
        ("conductor", "scheduler", "call", "select_destinations", 2),
        ("conductor", "compute1", "cast", "build_and_run_instance", 1),
        ("conductor", "compute2", "cast", "build_and_run_instance", 1),
        ("scheduler", "conductor", "reply", "select_destinations", 2),
        ("compute1", "conductor", "cast", "build_instances", 1)]
    everything = bf.edges(CONDUCTOR_FLOW.to_networkx())
    assert ("compute2", "conductor", "call", "instance_update", 1) in everything
    table = bf.edge_table(CONDUCTOR_FLOW.to_networkx()).splitlines()
    assert table[0].split() == ["from", "to", "kind", "method", "count"]
    assert table[1].split() == ["api", "conductor", "cast", "build_instances", "1"]
    assert len(table) == 1 + len(rows)


def test_reschedules_and_who_does_what_on_a_retry():
    assert [(e["dst"], e["method"]) for e in bf.reschedules(CONDUCTOR_FLOW)] == [
        (COND, "build_instances")]
    assert [(e["dst"], e["method"]) for e in bf.reschedules(LEGACY_FLOW)] == [
        (SCHED, "run_instance")]
    assert bf.retry_roles(CONDUCTOR_FLOW) == {
        "hands the failed build back": ["compute"], "receives it": ["conductor"],
        "asks the scheduler for a host": ["conductor"],
        "casts the build to the next compute": ["conductor"]}
    assert bf.retry_roles(LEGACY_FLOW) == {
        "hands the failed build back": ["compute"], "receives it": ["scheduler"],
        "asks the scheduler for a host": [],
        "casts the build to the next compute": ["scheduler"]}


def test_last_said_by_a_compute():
    assert bf.last_said(CONDUCTOR_FLOW[:9], "i1") == (
        ("cast", "compute1", "conductor", "build_instances"), 2)
    assert bf.last_said(LEGACY_GIVES_UP, "i1") == (
        ("call", "compute1", "conductor", "instance_fault_create"), 1)
    with pytest.raises(KeyError):
        bf.last_said(CONDUCTOR_FLOW[:3], "i1")


def test_bokehjs_comes_from_the_dashboard_server():
    res = bf.lab_resources("http://127.0.0.1:40123/dashboard")
    assert res.mode == "server"
    assert res.js_files and all(f.startswith("http://127.0.0.1:40123/static/")
                                for f in res.js_files)


def test_graph_figure_draws_one_arrow_per_pair_of_services():
    p = bf.graph_figure(CONDUCTOR_FLOW.to_networkx(), "conductor flow")
    nodes = p.select_one({"name": "nodes"}).data
    lines = p.select_one({"name": "edges"}).data
    assert nodes["name"] == ["api", "conductor", "scheduler", "compute1", "compute2"]
    pairs = list(zip(lines["src"], lines["dst"]))
    assert len(pairs) == len(set(pairs)) == 6
    kinds = dict(zip(pairs, lines["kind"]))
    assert kinds[("conductor", "scheduler")] == "call"
    assert kinds[("scheduler", "conductor")] == "reply"
    assert kinds[("api", "conductor")] == "cast"
    assert len(set(lines["dash"])) == 3          # casts, calls and replies look different
    there = pairs.index(("conductor", "scheduler"))
    back = pairs.index(("scheduler", "conductor"))
    assert lines["y0"][there] != lines["y1"][back]   # the two directions do not overlap
    assert all(-math.pi / 2 < a <= math.pi / 2 for a in lines["angle"])
    assert lines["label"][there] == "select_destinations ×2"


def test_graph_figure_of_an_empty_trace():
    p = bf.graph_figure(Trace([]).to_networkx(), "nothing yet")
    assert p.select_one({"name": "nodes"}).data["name"] == []
    assert p.select_one({"name": "edges"}).data["src"] == []


def test_labels_are_never_upside_down():
    for a, b in [((0, 0), (1, 0)), ((1, 0), (0, 0)), ((0, 0), (0, 1)), ((0, 1), (0, 0)),
                 ((0, 0), (-1, -1)), ((-1, -1), (0, 0))]:
        angle = bf._arrow(a, b)[-1]
        assert -math.pi / 2 < angle <= math.pi / 2


def test_reply_of_a_call_that_got_none():
    call = CONDUCTOR_FLOW[1]
    assert bf.reply_of(CONDUCTOR_FLOW, call)["seq"] == 3
    assert bf.reply_of(CONDUCTOR_FLOW[:2], call) is None


def test_wait_for_asks_the_tap_for_a_routed_or_queued_message():
    class FakeTap:
        def wait_for(self, predicate, timeout, since):
            return next(e for e in CONDUCTOR_FLOW if e["seq"] > since and predicate(e))

    class FakeLab:
        tap = FakeTap()

    assert bf.wait_for(FakeLab(), 0, "call", "select_destinations", "i1")["seq"] == 2
    assert bf.wait_for(FakeLab(), 2, "call", "select_destinations")["seq"] == 8
    assert bf.wait_for(FakeLab(), 0, "cast", "build_and_run_instance",
                       phases=("queued",))["seq"] == 10


def test_outcomes_computes_used_and_who_said_what():
    records = [{"name": "web1", "status": "ACTIVE", "OS-EXT-SRV-ATTR:host": "compute2",
                "OS-EXT-LAB:num_attempts": 2}]
    assert bf.outcomes(records) == [("web1", "ACTIVE", "compute2", 2)]
    assert bf.computes_used(CONDUCTOR_FLOW) == bf.computes_used(LEGACY_FLOW) == [
        "compute1", "compute2"]
    assert bf.said_by(CONDUCTOR_FLOW, "api") == bf.said_by(CONDUCTOR_FLOW, "compute") == [
        ("cast", "conductor", "build_instances")]
    assert bf.said_by(LEGACY_FLOW, "compute") == [("cast", "scheduler", "run_instance")]


def test_links_out_of_a_service():
    assert bf.links(CONDUCTOR_FLOW.to_networkx(), "scheduler") == [
        ("conductor", "reply", "select_destinations")]
    assert bf.links(LEGACY_FLOW.to_networkx(), "scheduler") == [
        ("compute1", "cast", "build_and_run_instance"),
        ("compute2", "cast", "build_and_run_instance")]
