"""Unit tests for lab.metrics: the one definition of reschedules and messages per build,
and its two users (``Trace.summary`` and the dashboard's model) agreeing on a trace with
builds, a build's reschedule and moves (a resize's reschedule through the conductor, a
legacy one through the scheduler)."""
from __future__ import annotations

import pytest

from lab.dashboard.model import DashboardModel
from lab.metrics import BuildMessages, is_reschedule
from lab.trace import Trace

from .test_dashboard_model import (API, C1, C2, C3, COND, R1, R2, SCHED, SERVICES, U1, U2,
                                   Wire, conductor_build, everything)

R5, R6 = "req-5", "req-6"


def moves(w: Wire) -> list[dict]:
    """U1 resized (conductor flow): compute2 fails prep and calls migrate_server back,
    compute3 takes it; U2 migrated the legacy way: compute1 casts prep_resize back to the
    scheduler. Neither is a build: their messages are not "messages per build"."""
    start = len(w.events)
    w.call("migrate_server", API, COND, U1, R5)
    w.call("select_destinations", COND, SCHED, U1, R5)
    w.cast("prep_resize", COND, C2, U1, R5)
    w.call("migrate_server", C2, COND, U1, R5, attempt=2)          # a reschedule
    w.cast("prep_resize", COND, C3, U1, R5, attempt=2)
    w.cast("resize_instance", C3, C2, U1, R5, attempt=2)
    w.call("instance_update", C3, COND, U1, R5, attempt=2)
    w.cast("prep_resize", API, SCHED, U2, R6)
    w.cast("prep_resize", SCHED, C1, U2, R6)
    w.cast("prep_resize", C1, SCHED, U2, R6, attempt=2)            # a legacy reschedule
    return w.events[start:]


def with_moves() -> list[dict]:
    events = everything()
    w = Wire(events[-1]["ts"] + 1)
    w.seq = events[-1]["seq"]
    return events + moves(w)


def test_reschedules_are_a_computes_hand_backs_of_builds_and_moves():
    events = with_moves()
    found = [(e["method"], e["src"]) for e in events if is_reschedule(e)]
    assert found == [("build_instances", C1), ("migrate_server", C2), ("prep_resize", C1)]


def test_a_reply_or_a_non_compute_sender_is_no_reschedule():
    w = Wire()
    w.call("migrate_server", C2, COND, U1)                 # the call and its reply
    w.cast("prep_resize", COND, C2, U1)
    assert [is_reschedule(e) for e in w.events] == [True, False, False]


def test_build_messages_count_a_requests_earlier_messages_once_it_builds():
    w = Wire()
    conductor_build(w)                                     # 14 messages, one instance
    counted = BuildMessages(w.events)
    assert (counted.builds, counted.messages, counted.per_build) == (1, 14, 14.0)
    late = BuildMessages()
    for e in w.events[1:] + w.events[:1]:                  # the API's cast arrives last
        late.add(e)
    assert (late.builds, late.messages) == (1, 14)


def test_build_messages_leave_out_moves_unrouted_events_and_other_requests():
    w = Wire()
    w.cast("build_and_run_instance", COND, C1, U1, R1, phase="dropped")
    w.call("select_destinations", COND, SCHED, U2, R2)     # R2 never builds
    moves(w)
    counted = BuildMessages(w.events)
    assert (counted.builds, counted.messages, counted.per_build) == (0, 0, 0.0)
    w.cast("build_and_run_instance", COND, C1, U2, R2)
    assert BuildMessages(w.events).messages == 3           # R2's call, reply, and cast


@pytest.mark.parametrize("batch", [1, 4, 1000])
def test_the_dashboard_and_the_summary_agree_on_a_trace_with_moves(batch):
    events = with_moves()
    m = DashboardModel(SERVICES)
    for i in range(0, len(events), batch):
        m.ingest(events[i:i + batch])
    c, s = m.counters(), Trace(events).summary()
    assert c["reschedules"] == s["reschedules"] == 3
    assert c["builds_started"] == s["builds"] == 3
    assert c["messages_per_build"] == s["messages_per_build"] == pytest.approx(20 / 3)
    assert c["select_destinations_calls"] == s["select_destinations_calls"] == 3
