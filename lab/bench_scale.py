"""``python -m lab bench scale [--hosts 10,100,1000] [--json]``: a cloud of many hosts on
one machine, and what the scheduler's ``select_destinations`` costs as it grows.

For each size, one lab (fast preset) whose computes share processes
(``hosts_per_process``, ``--per-process`` hosts each, the way Nova's fake virt driver runs
many nodes for its scale tests; every host is still its own ``compute.HOST`` on the bus,
with its own claims, reports and heartbeats):

- **startup**: ``Lab(...).start()`` until every compute reports up; ``stop()``;
- **memory**: RSS summed over every process of the lab, once it has settled (JSON
  ``rss_total_mb``), and per service;
- **background traffic**: routed messages a second while idle (heartbeats are not routed;
  service and resource reports are), which grows with hosts;
- **select_destinations, one request at a time**: ``--sequential`` boots, each waited
  for; the scheduler's own timings (``select_timings``): reading the host states, the
  filters, the weighers, in all (JSON ``select_destinations_p50_ms`` at the largest size),
  and the filters' cost per host;
- **under concurrent requests**: ``--builds`` boots from ``--clients`` API clients at
  once: builds/s, and the call's round trip as the conductor sees it (from the trace:
  the call routed to its reply routed), which now includes waiting in line;
- **the dashboard's model at the largest size**: a scripted trace of one build per host
  (``lab.testing.scripted_trace``) fed to ``DashboardModel`` in batches of 100 events
  (what the live feed hands it a tick at 1,000 events/s), with the grouped topology's
  nodes and edges redrawn after each batch: events/s it ingests, and whether every
  counter is exact (events, routed messages, builds started).

Goals (this 2-core machine): 1,000 hosts in <= 4 GB in all; ``select_destinations``
p50 <= 5 ms at 1,000 hosts. These are figures, never timed tests.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any, Callable

from .bench_builds import boot_many, wait_at_rest
from .bench import counts
from .lab import Lab
from .procstat import memory_kb

__all__ = ["bench_scale", "format_scale", "main", "GOALS", "select_round_trips"]

GOALS = {"rss_total_mb_max": 4096.0, "select_destinations_p50_ms_max": 5.0,
         "at_hosts": 1000}
IDLE_SECONDS = 2.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def select_round_trips(events: list[dict[str, Any]]) -> list[float]:
    """Seconds from each routed ``select_destinations`` call to its routed reply."""
    calls = {e["msg_id"]: e["ts"] for e in events if e.get("phase") == "routed"
             and e["kind"] == "call" and e["method"] == "select_destinations"}
    return [e["ts"] - calls[e["reply_to"]] for e in events
            if e.get("phase") == "routed" and e["kind"] == "reply"
            and e.get("reply_to") in calls]


def lab_memory_mb(lab: Lab) -> dict[str, float]:
    """RSS (MB) of each process of the lab, by its service (computes summed)."""
    out: dict[str, float] = {}
    for child in lab.cluster.processes():
        mem = memory_kb(child.pid) if child.alive() else None
        if mem is not None:
            out[child.service] = out.get(child.service, 0.0) + mem[0] / 1024
    return out


def measure_size(hosts: int, per_process: int, sequential: int, builds: int,
                 clients: int, say: Callable[[str], None]) -> dict[str, Any]:
    room = math.ceil((sequential + builds + 20) / hosts) + 2
    lab = Lab(computes=hosts, seed=1, preset="fast", hosts_per_process=min(hosts, per_process),
              vcpus=room, memory_mb=room * 512, local_gb=room)
    started = time.perf_counter()
    try:
        lab.start(timeout=120)
        startup = time.perf_counter() - started
        say(f"{hosts} hosts: ready in {startup:.2f}s")
        # idle traffic over a whole report cycle (longer in a big cloud: load_factor),
        # once the second rounds, spread over a cycle after the first, have begun
        window = max(IDLE_SECONDS, lab.config.timing("report_interval"))
        time.sleep(IDLE_SECONDS + (window if lab.config.load_factor() > 1 else 0))
        mark = lab.mark()
        time.sleep(window)
        idle = sum(1 for e in lab.trace(since=mark) if e.get("phase") == "routed")
        memory = lab_memory_mb(lab)
        processes = len(lab.cluster.processes())
        bus = lab.bus()
        bus.call("scheduler", "select_timings", clear=True)
        for i in range(sequential):
            lab.wait(lab.boot(f"seq{i}", flavor="m1.tiny"))
        timings = bus.call("scheduler", "select_timings", clear=True)
        mark = lab.mark()
        t0 = time.perf_counter()
        accepted = boot_many(lab, [f"con{i}" for i in range(builds)], clients)
        final = wait_at_rest(lab, {s for s, _ in accepted}, 60 + builds / 10)
        wall = time.perf_counter() - t0
        trips = select_round_trips(list(lab.trace(since=mark)))
        concurrent = bus.call("scheduler", "select_timings", clear=True)
    finally:
        t1 = time.perf_counter()
        lab.stop()
        stop = time.perf_counter() - t1
    col = {k: [t[k] for t in timings] for k in ("total_ms", "host_states_ms", "filter_ms",
                                                "weigh_ms")}
    return {
        "hosts": hosts, "hosts_per_process": min(hosts, per_process),
        "processes": processes,
        "startup_s": startup, "stop_s": stop,
        "rss_total_mb": sum(memory.values()), "rss_mb": memory,
        "idle_messages_per_s": idle / window,
        "select_destinations_p50_ms": _pct(col["total_ms"], 0.5),
        "select_destinations_p99_ms": _pct(col["total_ms"], 0.99),
        "host_states_p50_ms": _pct(col["host_states_ms"], 0.5),
        "filter_p50_ms": _pct(col["filter_ms"], 0.5),
        "weigh_p50_ms": _pct(col["weigh_ms"], 0.5),
        "filter_us_per_host": _pct(col["filter_ms"], 0.5) * 1e3 / hosts,
        "concurrent": {
            "builds": builds, "clients": clients,
            "active": sum(v == "active" for v in final.values()),
            "builds_per_s": builds / wall,
            "select_p50_ms": _pct([t["total_ms"] for t in concurrent], 0.5),
            "round_trip_p50_ms": _pct(trips, 0.5) * 1e3,
            "round_trip_p99_ms": _pct(trips, 0.99) * 1e3},
    }


def dashboard_ingest(hosts: int, batch: int = 100) -> dict[str, Any]:
    """How fast the dashboard's model takes a 1,000-host cloud's events, redrawing the
    topology every batch as the live page does, and whether its counters are exact."""
    from .dashboard.model import DashboardModel
    from .testing import scripted_trace
    events = scripted_trace(hosts)
    names = sorted({n for e in events for n in (e["src"], e["dst"]) if "." in n})
    model = DashboardModel(names)
    t0 = time.perf_counter()
    for i in range(0, len(events), batch):
        model.ingest(events[i:i + batch])
        model.nodes_data()
        model.edges_data()
    took = time.perf_counter() - t0
    counters = model.counters()
    routed = sum(e["phase"] == "routed" for e in events)
    builds = len({e["instance_uuid"] for e in events if e["method"] == "build_instances"})
    return {"hosts": hosts, "events": len(events), "batch": batch,
            "events_per_s": len(events) / took,
            "exact": counters["events"] == len(events) and counters["routed"] == routed
            and counters["builds_started"] == builds,
            "drawn_nodes": len(model.nodes_data()["name"])}


def bench_scale(hosts: list[int], per_process: int = 250, sequential: int = 40,
                builds: int = 300, clients: int = 8,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    sizes = [measure_size(n, per_process, sequential, builds, clients, say)
             for n in sorted(hosts)]
    for s in sizes:
        say(f"{s['hosts']} hosts: select p50 {s['select_destinations_p50_ms']:.2f} ms, "
            f"{s['rss_total_mb']:.0f} MB")
    top = sizes[-1]
    dashboard = dashboard_ingest(top["hosts"])
    say(f"dashboard model: {dashboard['events_per_s']:,.0f} events/s at {top['hosts']} "
        f"hosts, counters {'exact' if dashboard['exact'] else 'WRONG'}")
    met = {}
    if top["hosts"] >= GOALS["at_hosts"]:
        met = {"rss_total_mb": top["rss_total_mb"] <= GOALS["rss_total_mb_max"],
               "select_destinations_p50_ms":
                   top["select_destinations_p50_ms"] <= GOALS["select_destinations_p50_ms_max"]}
    return {"sizes": sizes, "hosts": top["hosts"],
            "select_destinations_p50_ms": top["select_destinations_p50_ms"],
            "rss_total_mb": top["rss_total_mb"], "startup_s": top["startup_s"],
            "builds_per_s": top["concurrent"]["builds_per_s"],
            "dashboard": dashboard, "goals": dict(GOALS), "met": met}


def format_scale(r: dict[str, Any]) -> str:
    rows = [("hosts", "{hosts:d}"), ("processes (computes share)", "{processes:d}"),
            ("ready (s)", "{startup_s:.2f}"), ("stop (s)", "{stop_s:.2f}"),
            ("RSS in all (MB)", "{rss_total_mb:.0f}"),
            ("idle routed msgs/s", "{idle_messages_per_s:.0f}"),
            ("select p50 (ms)", "{select_destinations_p50_ms:.2f}"),
            ("select p99 (ms)", "{select_destinations_p99_ms:.2f}"),
            ("  host states p50 (ms)", "{host_states_p50_ms:.2f}"),
            ("  filters p50 (ms)", "{filter_p50_ms:.2f}"),
            ("  weighers p50 (ms)", "{weigh_p50_ms:.2f}"),
            ("  filters per host (us)", "{filter_us_per_host:.2f}")]
    width = 28
    lines = ["scale benchmark (fast preset; computes share processes)",
             f"{'':{width}}" + "".join(f"{s['hosts']:>10}" for s in r["sizes"])]
    for label, fmt in rows:
        lines.append(f"{label:{width}}" + "".join(f"{fmt.format(**s):>10}"
                                                  for s in r["sizes"]))
    for label, key, fmt in (("concurrent builds/s", "builds_per_s", "{:.0f}"),
                            ("  select p50 (ms)", "select_p50_ms", "{:.2f}"),
                            ("  call round trip p50 (ms)", "round_trip_p50_ms", "{:.1f}"),
                            ("  call round trip p99 (ms)", "round_trip_p99_ms", "{:.1f}")):
        lines.append(f"{label:{width}}" + "".join(
            f"{fmt.format(s['concurrent'][key]):>10}" for s in r["sizes"]))
    d = r.get("dashboard")
    if d:
        lines.append(f"dashboard model at {d['hosts']} hosts: {d['events_per_s']:,.0f} "
                     f"events/s ingested, topology redrawn every {d['batch']} "
                     f"({d['drawn_nodes']} nodes drawn); counters "
                     f"{'exact' if d['exact'] else 'NOT EXACT'}")
    if r["met"]:
        g = r["goals"]
        lines.append(f"goals at {g['at_hosts']} hosts: RSS <= {g['rss_total_mb_max']:.0f} MB "
                     f"{'met' if r['met']['rss_total_mb'] else 'MISSED'}; select p50 <= "
                     f"{g['select_destinations_p50_ms_max']:.0f} ms "
                     f"{'met' if r['met']['select_destinations_p50_ms'] else 'MISSED'}")
    return "\n".join(lines)


_sizes = counts("--hosts", 5000, "10,100,1000")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab bench scale",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--hosts", type=_sizes, default=[10, 100, 1000],
                        help="cloud sizes, e.g. 10,100,1000 (a single size: --hosts 1000)")
    parser.add_argument("--per-process", type=int, default=250,
                        help="compute hosts served by one process (hosts_per_process)")
    parser.add_argument("--sequential", type=int, default=40,
                        help="boots one at a time, for select_destinations' own cost")
    parser.add_argument("--builds", type=int, default=300, help="concurrent boots")
    parser.add_argument("--clients", type=int, default=8, help="API clients at once")
    args = parser.parse_args(argv)
    if min(args.per_process, args.sequential, args.builds, args.clients) < 1:
        parser.error("--per-process, --sequential, --builds and --clients must be >= 1")
    progress = None if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    result = bench_scale(args.hosts, args.per_process, args.sequential, args.builds,
                         args.clients, progress)
    print(json.dumps(result, indent=1) if args.json else format_scale(result))
    return 0
