"""Unit tests for lab.lessons.why_conductor (lesson 04): timing boots against a stand-in
lab, percentiles and the table, the plot's shape, booting in the background, and what
the API sent in the conductor flow and in local mode (hand-built trace events)."""
from __future__ import annotations

import itertools
import threading

import pytest

from lab.lessons.why_conductor import (api_messages, api_messages_text, boot_in_background,
                                       latency_plot, latency_table, message_is,
                                       percentiles, scheduler_callers, time_boots)
from lab.trace import Trace
from orchestrator.messaging import protocol

_seq = itertools.count(1)


def ev(method, src, dst, kind="cast", phase="routed"):
    env = protocol.envelope(kind, src, dst.partition(".")[0], method,
                            ctx={"request_id": "req-1", "instance_uuid": "u", "attempt": 1})
    return protocol.trace_event(next(_seq), env, phase, dst, 100, "", ts=100.0)


class FakeLab:
    """Answers boots with ids and a response time per call; can hold a boot back."""

    def __init__(self, times=(0.1, 0.2, 0.3), gate: threading.Event | None = None,
                 error: Exception | None = None):
        self.times = iter(times)
        self.gate, self.error = gate, error
        self.booted: list[tuple[str, str]] = []
        self.last_response_time = 0.0

    def boot(self, name, flavor="m1.small"):
        if self.gate is not None:
            assert self.gate.wait(5)
        if self.error is not None:
            raise self.error
        self.booted.append((name, flavor))
        self.last_response_time = next(self.times)
        return f"id-{name}"


def test_time_boots_collects_ids_and_response_times_in_order():
    lab = FakeLab()
    ids, seconds = time_boots(lab, 3, "cond")
    assert ids == ["id-cond1", "id-cond2", "id-cond3"]
    assert seconds == [0.1, 0.2, 0.3]
    assert lab.booted[0] == ("cond1", "m1.tiny")


def test_percentiles():
    p = percentiles([0.5, 0.1, 0.3, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert p == {"n": 10, "min": 0.1, "p50": pytest.approx(0.55), "p90": 0.9, "max": 1.0}
    assert percentiles([2.0])["p90"] == 2.0
    with pytest.raises(ValueError):
        percentiles([])


def test_latency_table_in_milliseconds():
    text = latency_table({"conductor": [0.002, 0.004, 0.003], "local_mode": [0.5, 0.6]})
    head, cond, local = text.splitlines()
    assert head.split() == ["mode", "boots", "min", "p50", "p90", "max"]
    assert cond.split()[:4] == ["conductor", "3", "2", "ms"]
    assert local.split()[:2] == ["local_mode", "2"] and "550 ms" in local


def test_latency_plot_has_a_row_per_mode_and_a_line_at_the_delay():
    from bokeh.models import Span

    fig = latency_plot({"conductor": [0.002, 0.003], "local_mode": [0.51, 0.52]}, delay=0.5)
    assert list(fig.y_range.factors) == ["local_mode", "conductor"]
    assert len(fig.renderers) == 2
    spans = [m for m in fig.center if isinstance(m, Span)]
    assert [s.location for s in spans] == [500.0]


def test_boot_in_background_is_pending_until_the_api_answers():
    gate = threading.Event()
    future = boot_in_background(FakeLab(times=[0.7], gate=gate), "late")
    assert not future.done()
    gate.set()
    assert future.result(timeout=5) == ("id-late", 0.7)


def test_boot_in_background_hands_over_errors():
    future = boot_in_background(FakeLab(error=RuntimeError("HTTP 500")), "bad")
    with pytest.raises(RuntimeError, match="HTTP 500"):
        future.result(timeout=5)


def test_api_messages_and_scheduler_callers_conductor_flow_and_local_mode():
    conductor_flow = Trace([ev("build_instances", "api.api", "conductor.conductor1"),
                            ev("select_destinations", "conductor.conductor1",
                               "scheduler.scheduler1", "call")])
    local = Trace([ev("select_destinations", "api.api", "scheduler.scheduler1", "call",
                      phase="delayed"),
                   ev("select_destinations", "api.api", "scheduler.scheduler1", "call"),
                   ev("build_and_run_instance", "api.api", "compute.compute2"),
                   ev("build_and_run_instance", "api.api", "compute.compute3")])
    assert api_messages(conductor_flow) == {("cast", "build_instances", "conductor"): 1}
    assert api_messages(local) == {("call", "select_destinations", "scheduler"): 1,
                                   ("cast", "build_and_run_instance", "compute"): 2}
    assert api_messages_text(local).splitlines() == [
        "call select_destinations -> scheduler  x 1",
        "cast build_and_run_instance -> compute  x 2"]
    assert scheduler_callers(local) == {"api.api": 1}
    assert scheduler_callers(conductor_flow) == {"conductor.conductor1": 1}


def test_message_is_matches_kind_and_method():
    call = ev("select_destinations", "api.api", "scheduler.scheduler1", "call")
    reply = ev("select_destinations", "scheduler.scheduler1", "api.api", "reply")
    assert message_is("call", "select_destinations")(call)
    assert not message_is("call", "select_destinations")(reply)
    assert not message_is("call", "build_instances")(call)
