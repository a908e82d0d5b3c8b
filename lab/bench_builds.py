"""``python -m lab bench builds``: how many builds a second the whole lab sustains, and how
much of the bus's capacity becomes useful work.

One lab (fast preset, computes big enough never to run out of room) takes ``--builds``
single boots, ``POST /servers`` from ``--clients`` threads each on a kept-alive HTTP
connection, as fast as the API answers. Figures come from the trace, not from polling:

- **builds/s**: builds that ended ACTIVE ÷ the time from the first build's first message
  to the last build's final save (JSON ``builds_per_s``);
- **latency**, p50 and p99: from a build's first message (the API's cast, sent just
  before its 202) to its final save, the one that makes it ACTIVE;
- **bus messages per build**: every routed message of the build's request (the workflow,
  the database proxy's calls and replies, the compute's instance-info fanout): what the
  bus carries, so more than the lessons' "messages per build" (``lab.metrics``: the
  workflow and database-proxy methods only) by the fanouts;
- **efficiency**: builds/s × bus messages per build ÷ the bus's raw capacity, messages a
  second through a raw pyzmq broker (``lab.bench_raw``) measured in the same run just
  before and after the lab's rounds: how much of what the machine can move as messages
  the lab turns into builds.

The goal (this 2-core machine): 600 builds/s with 8 computes; the moonshot is 1,000.
"""
from __future__ import annotations

import http.client
import json
import math
import statistics
import sqlite3
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable

from .lab import Lab

__all__ = ["bench_builds", "format_builds", "GOALS", "boot_many", "build_times"]

GOALS = {"builds_per_s_min": 600.0, "moonshot_builds_per_s": 1000.0}
FLAVOR = "m1.tiny"
FINAL_SAVE = "instance_update"


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)


def boot_many(lab: Lab, names: list[str], clients: int) -> list[tuple[str, str]]:
    """``POST /servers`` for each name from ``clients`` threads, each on one kept-alive
    connection; returns (server id, request id) per accepted build, in no set order.
    Raises on the first refusal: a benchmark that loses builds measures nothing."""
    url = lab.api.base_url
    path = urllib.parse.urlsplit(url).path.rstrip("/") + "/v2.1/servers"
    headers = {"Content-Type": "application/json", "X-Auth-Token": lab.api.token,
               "OpenStack-API-Version": f"compute {lab.api.microversion}"}
    accepted: list[tuple[str, str]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(mine: list[str]) -> None:
        conn = _connection(url)
        try:
            for name in mine:
                body = json.dumps({"server": {"name": name, "flavorRef": FLAVOR,
                                              "imageRef": "cirros"}})
                conn.request("POST", path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 202:
                    with lock:
                        errors.append(f"{name}: HTTP {resp.status} {data[:200]!r}")
                    return
                server = json.loads(data)["server"]["id"]
                with lock:
                    accepted.append((server, resp.getheader("x-compute-request-id", "")))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(names[i::clients],), daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} builds refused; first: {errors[0]}")
    return accepted


def wait_at_rest(lab: Lab, ids: set[str], timeout: float) -> dict[str, str]:
    """Each server's final vm_state, read from the lab's database (one cheap query a
    tenth of a second, no load on the API being measured)."""
    conn = sqlite3.connect(f"file:{Path(lab.run_dir) / 'lab.sqlite'}?mode=ro", uri=True,
                           timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = dict(conn.execute("SELECT uuid, vm_state FROM instances "
                                     "WHERE vm_state IN ('active', 'error')").fetchall())
            done = {u: rows[u] for u in ids if u in rows}
            if len(done) == len(ids):
                return done
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ids) - len(done)} of {len(ids)} builds not at "
                                   f"rest after {timeout:.0f}s")
            time.sleep(0.1)
    finally:
        conn.close()


def build_times(events: list[dict[str, Any]], request_ids: set[str]
                ) -> tuple[dict[str, tuple[float, float]], int]:
    """Per request: (time of its first routed message, time of its final save, the
    routed ``instance_update`` call last seen); and how many routed messages the
    requests made in all."""
    spans: dict[str, list[float]] = {}
    messages = 0
    for e in events:
        rid = e.get("request_id", "")
        if e.get("phase") != "routed" or rid not in request_ids:
            continue
        messages += 1
        span = spans.setdefault(rid, [e["ts"], 0.0])
        if e["kind"] == "call" and e["method"] == FINAL_SAVE:
            span[1] = e["ts"]
    return {r: (a, b) for r, (a, b) in spans.items() if b}, messages


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def raw_capacity(casts: int = 20000) -> float:
    """Messages a second a raw pyzmq broker moves on this machine right now (pipelined
    casts, ``lab.bench``'s baseline)."""
    from .bench import RawPeer, _cast_rate
    with tempfile.TemporaryDirectory(prefix="conductor-lab-bench-") as tmp:
        peer = RawPeer(Path(tmp))
        try:
            _cast_rate(peer, 2000)
            return _cast_rate(peer, casts)
        finally:
            peer.close()


def bench_builds(computes: int = 8, builds: int = 2000, clients: int = 4,
                 rounds: int = 1, progress: Callable[[str], None] | None = None,
                 **lab_options: Any) -> dict[str, Any]:
    """``lab_options`` go to ``Lab`` (``conductor_workers``, ``hosts_per_process``,
    ``flow``...)."""
    say = progress or (lambda _m: None)
    per_host = math.ceil(builds * rounds / computes) + 16
    capacity = [raw_capacity()]
    say(f"raw broker: {capacity[0]:,.0f} messages/s")
    rows = []
    with Lab(computes=computes, seed=1, preset="fast", vcpus=per_host,
             memory_mb=per_host * 512, local_gb=per_host, **lab_options) as lab:
        warm = boot_many(lab, [f"warm{i}" for i in range(20)], clients)
        wait_at_rest(lab, {s for s, _ in warm}, 60)
        for r in range(rounds):
            mark = lab.mark()
            started = time.perf_counter()
            accepted = boot_many(lab, [f"r{r}-{i}" for i in range(builds)], clients)
            posted = time.perf_counter() - started
            final = wait_at_rest(lab, {s for s, _ in accepted}, 60 + builds / 20)
            spans, messages = build_times(list(lab.trace(since=mark)),
                                          {rid for _, rid in accepted})
            active = sum(v == "active" for v in final.values())
            starts, ends = zip(*spans.values())
            wall = max(ends) - min(starts)
            latencies = [b - a for a, b in spans.values()]
            rows.append({"builds": builds, "active": active, "timed": len(spans),
                         "api_accept_per_s": builds / posted,
                         "builds_per_s": active / wall, "wall_s": wall,
                         "latency_p50_ms": _pct(latencies, 0.5) * 1e3,
                         "latency_p99_ms": _pct(latencies, 0.99) * 1e3,
                         "bus_messages_per_build": messages / builds})
            say(f"round {r + 1}/{rounds}: {rows[-1]['builds_per_s']:.0f} builds/s, "
                f"p50 {rows[-1]['latency_p50_ms']:.0f} ms")
    capacity.append(raw_capacity())
    say(f"raw broker: {capacity[1]:,.0f} messages/s")
    return _result(rows, capacity, computes, clients, lab_options)


def _result(rows: list[dict[str, Any]], capacity: list[float], computes: int,
            clients: int, options: dict[str, Any]) -> dict[str, Any]:
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    raw = statistics.median(capacity)
    efficiency = med["builds_per_s"] * med["bus_messages_per_build"] / raw
    return {"computes": computes, "clients": clients, "rounds": len(rows),
            "options": options, **{k: med[k] for k in (
                "builds", "active", "builds_per_s", "api_accept_per_s", "wall_s",
                "latency_p50_ms", "latency_p99_ms", "bus_messages_per_build")},
            "raw_messages_per_s": raw, "raw_runs": capacity, "efficiency": efficiency,
            "per_round": rows, "goals": dict(GOALS),
            "met": {"builds_per_s": med["builds_per_s"] >= GOALS["builds_per_s_min"],
                    "moonshot": med["builds_per_s"] >= GOALS["moonshot_builds_per_s"]}}


def format_builds(r: dict[str, Any]) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "defaults"
    return "\n".join([
        f"builds benchmark: {r['builds']} builds x {r['rounds']} round(s), {r['computes']} "
        f"computes, {r['clients']} API clients ({opts}; fast preset)",
        f"builds/s                 {r['builds_per_s']:8.0f}   goal >= "
        f"{GOALS['builds_per_s_min']:.0f} {'met' if r['met']['builds_per_s'] else 'MISSED'}"
        f" (moonshot {GOALS['moonshot_builds_per_s']:.0f}: "
        f"{'met' if r['met']['moonshot'] else 'not yet'})",
        f"ended ACTIVE             {r['active']:8.0f} of {r['builds']}",
        f"API accepted/s           {r['api_accept_per_s']:8.0f}",
        f"202 -> ACTIVE p50 (ms)   {r['latency_p50_ms']:8.1f}",
        f"202 -> ACTIVE p99 (ms)   {r['latency_p99_ms']:8.1f}",
        f"bus messages per build   {r['bus_messages_per_build']:8.1f}",
        f"raw broker messages/s    {r['raw_messages_per_s']:8.0f}",
        f"efficiency               {r['efficiency']:8.1%}  (builds/s x bus messages per "
        f"build / raw messages/s)"])


def main(argv: list[str]) -> int:
    import argparse
    import sys
    parser = argparse.ArgumentParser(prog="python -m lab bench builds",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--computes", type=int, default=8)
    parser.add_argument("--builds", type=int, default=2000, help="builds per round")
    parser.add_argument("--clients", type=int, default=4, help="API clients at once")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--conductor-workers", type=int, default=1,
                        help="conductor processes sharing the conductor topic")
    parser.add_argument("--per-process", type=int, default=1,
                        help="compute hosts served by one process (hosts_per_process)")
    args = parser.parse_args(argv)
    if min(args.computes, args.builds, args.clients, args.rounds, args.conductor_workers,
           args.per_process) < 1:
        parser.error("every number must be >= 1")
    options = {k: v for k, v in (("conductor_workers", args.conductor_workers),
                                 ("hosts_per_process", args.per_process)) if v != 1}
    progress = None if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    result = bench_builds(args.computes, args.builds, args.clients, args.rounds, progress,
                          **options)
    print(json.dumps(result, indent=1) if args.json else format_builds(result))
    return 0
