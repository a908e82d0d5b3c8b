"""The benchmark helpers that read figures from a trace (no lab: events by hand)."""
from __future__ import annotations

import argparse
import math

import pytest

from lab.bench_builds import _result, build_times, format_builds
from lab.bench_scale import _pct, _sizes, format_scale, select_round_trips


def ev(ts, kind, method, rid="req-1", phase="routed", **kw):
    return {"ts": ts, "kind": kind, "method": method, "request_id": rid, "phase": phase,
            **kw}


def test_build_times_span_first_message_to_the_last_save_call():
    events = [ev(1.0, "cast", "build_instances"),
              ev(1.1, "call", "select_destinations"),
              ev(1.2, "call", "instance_update"),
              ev(1.3, "reply", "instance_update"),
              ev(1.5, "call", "instance_update"),
              ev(1.6, "call", "instance_update", phase="dropped"),   # not routed
              ev(1.05, "cast", "build_instances", rid="req-2"),      # never saved
              ev(9.0, "call", "instance_update", rid="other")]       # not ours
    spans, messages = build_times(events, {"req-1", "req-2"})
    assert spans == {"req-1": (1.0, 1.5)}
    assert messages == 6


def test_builds_result_takes_medians_and_the_efficiency():
    row = {"builds": 100, "active": 100, "timed": 100, "api_accept_per_s": 400.0,
           "builds_per_s": 300.0, "wall_s": 0.33, "latency_p50_ms": 10.0,
           "latency_p99_ms": 30.0, "bus_messages_per_build": 17.0}
    r = _result([row, {**row, "builds_per_s": 500.0}, {**row, "builds_per_s": 400.0}],
                [60_000.0, 70_000.0], 8, 4, {})
    assert r["builds_per_s"] == 400.0
    assert r["efficiency"] == pytest.approx(400 * 17 / 65_000)
    assert r["met"] == {"builds_per_s": False, "moonshot": False}
    assert "builds/s                      400   goal >= 600 MISSED" in format_builds(r)


def test_select_round_trips_pair_calls_with_their_replies():
    events = [ev(1.0, "call", "select_destinations", msg_id="a"),
              ev(1.004, "reply", "select_destinations", reply_to="a"),
              ev(2.0, "call", "select_destinations", msg_id="b"),   # no reply yet
              ev(3.0, "reply", "select_destinations", reply_to="zzz"),
              ev(3.0, "call", "instance_update", msg_id="c"),
              ev(3.1, "reply", "instance_update", reply_to="c")]
    assert select_round_trips(events) == [pytest.approx(0.004)]
    assert math.isnan(_pct([], 0.5)) and _pct([3, 1, 2], 0.5) == 2


def test_sizes_are_parsed_and_bounded():
    assert _sizes("1000,10,100,10") == [10, 100, 1000]
    for bad in ("ten", "0", "10,99999", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            _sizes(bad)


def test_the_scale_table_has_a_column_per_size_and_says_the_goals():
    size = {"hosts": 1000, "processes": 8, "startup_s": 2.0, "stop_s": 0.3,
            "rss_total_mb": 374.0, "idle_messages_per_s": 400.0,
            "select_destinations_p50_ms": 3.7, "select_destinations_p99_ms": 20.0,
            "host_states_p50_ms": 1.4, "filter_p50_ms": 1.3, "weigh_p50_ms": 0.8,
            "filter_us_per_host": 1.3,
            "concurrent": {"builds_per_s": 150.0, "select_p50_ms": 4.9,
                           "round_trip_p50_ms": 600.0, "round_trip_p99_ms": 900.0}}
    text = format_scale({"sizes": [{**size, "hosts": 10}, size],
                         "goals": {"at_hosts": 1000, "rss_total_mb_max": 4096.0,
                                   "select_destinations_p50_ms_max": 5.0},
                         "met": {"rss_total_mb": True, "select_destinations_p50_ms": True}})
    assert "select p50 (ms)                   3.70      3.70" in text
    assert text.endswith("RSS <= 4096 MB met; select p50 <= 5 ms met")


def test_the_dashboard_model_counts_a_big_cloud_exactly_while_it_groups_it():
    from lab.bench_scale import dashboard_ingest
    r = dashboard_ingest(40, batch=7)
    assert r["exact"] and r["events"] > 40 * 5 and r["events_per_s"] > 0
    assert r["drawn_nodes"] < 40       # grouped: fewer nodes drawn than hosts
