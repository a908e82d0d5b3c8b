"""``python -m lab bench curve [--calls 500] [--builds 20] [--rounds 3] [--json]``: what a
class's CURVE door costs, measured against the lab's own PLAIN door in the same run.

One class lab (2 computes of its own) and one student (2 computes joined over CURVE on
loopback TCP, from their own run directory and processes):

- **call**: round trips to the student's first compute (``set_failure`` with nothing to
  change: a read), from the lab owner's client (PLAIN over ``ipc://`` to the bus, which
  reaches the compute through the class's door) and from the student's own (CURVE over
  TCP to the door, which relays through the bus: two more hops, and the door's checks),
  alternating, ``--calls`` each a round; p50/p95 and ratio;
- **builds**: ``--builds`` servers (at most 16: what two computes hold) booted at once onto the lab's
  computes only, then onto
  the student's only (the others disabled through the API), alternating each round;
  builds per second and the ratio;
- **join**: seconds from ``Student(...).start()`` to both computes serving, and from a
  revoke to the bus cutting them off.

Goals (this 2-core machine): a CURVE round trip at most 1.5x a PLAIN one; builds on the
students' computes at least 0.8x as many per second as on the lab's; join <= 2 s.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from orchestrator.messaging import curve
from orchestrator.messaging.blocking import BlockingClient

from .classroom import free_class_port
from .join import Student
from .lab import Lab

__all__ = ["bench_curve", "format_curve", "main", "GOALS"]

GOALS = {"call_ratio_max": 1.5, "build_ratio_min": 0.8, "join_s_max": 2.0}


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _calls(client: BlockingClient, host: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.call("compute", "set_failure", server=host)
        out.append(time.perf_counter() - t0)
    return out


def _builds_per_s(lab: Lab, n: int, enabled: list[str], disabled: list[str],
                  tag: str) -> float:
    api = lab._api()
    for host in disabled:
        api.request("PUT", "/os-services/disable", {"host": host, "binary": "nova-compute"})
    for host in enabled:
        api.request("PUT", "/os-services/enable", {"host": host, "binary": "nova-compute"})
    time.sleep(lab.config.timing("report_interval") * 2)   # the scheduler sees the switch
    t0 = time.perf_counter()
    ids = lab.boot(tag, flavor="m1.tiny", count=n)
    records = lab.wait(ids if isinstance(ids, list) else [ids], timeout=120)
    took = time.perf_counter() - t0
    wrong = [r["OS-EXT-SRV-ATTR:host"] for r in records
             if r["status"] != "ACTIVE" or r["OS-EXT-SRV-ATTR:host"] not in enabled]
    if wrong:
        raise RuntimeError(f"{tag}: builds that did not land as switched: {wrong[:5]}")
    for r in records:
        lab.delete(r["id"])
    return n / took


def bench_curve(calls: int = 500, builds: int = 12, rounds: int = 3,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="bench-curve-") as tmp:
        keys = Path(tmp) / "keys"
        curve.write_keys(keys, ["ada"], "127.0.0.1", free_class_port())
        with Lab(computes=2, seed=1, preset="fast", listen="127.0.0.1",
                 class_keys=str(keys), run_dir=str(Path(tmp) / "lab")) as lab:
            t0 = time.perf_counter()
            student = Student(keys / "tickets" / "ada.ticket", computes=2,
                              run_dir=Path(tmp) / "ada").start()
            join_s = time.perf_counter() - t0
            try:
                lab.wait_computes_up(student.hosts, timeout=30)
                host = student.hosts[0]
                plain, curved, local, joined = [], [], [], []
                for r in range(rounds):
                    plain += _calls(lab.bus(), host, calls)
                    curved += _calls(student.bus(), host, calls)
                    own = lab.config.compute_names()
                    local.append(_builds_per_s(lab, builds, own, student.hosts, f"l{r}"))
                    joined.append(_builds_per_s(lab, builds, student.hosts, own, f"j{r}"))
                    say(f"round {r + 1}: call p50 PLAIN {_p(plain, .5) * 1e3:.2f} ms, "
                        f"CURVE {_p(curved, .5) * 1e3:.2f} ms; builds/s lab's "
                        f"{local[-1]:.1f}, student's {joined[-1]:.1f}")
                t1 = time.perf_counter()
                lab.revoke("ada", evacuate=False)
                while any(p["identity"].startswith("compute.ada_") and p["alive"]
                          for p in lab.bus().control("peers")):
                    time.sleep(0.01)
                cut_s = time.perf_counter() - t1
            finally:
                student.stop()
    result = {
        "calls_per_round": calls, "builds_per_round": builds, "rounds": rounds,
        "call_ms": {"plain_p50": _p(plain, .5) * 1e3, "plain_p95": _p(plain, .95) * 1e3,
                    "curve_p50": _p(curved, .5) * 1e3, "curve_p95": _p(curved, .95) * 1e3},
        "builds_per_s": {"lab": statistics.median(local),
                         "student": statistics.median(joined)},
        "join_s": join_s, "revoke_cut_off_s": cut_s, "goals": GOALS}
    result["call_ratio"] = result["call_ms"]["curve_p50"] / result["call_ms"]["plain_p50"]
    result["build_ratio"] = result["builds_per_s"]["student"] / result["builds_per_s"]["lab"]
    result["met"] = {"call": result["call_ratio"] <= GOALS["call_ratio_max"],
                     "builds": result["build_ratio"] >= GOALS["build_ratio_min"],
                     "join": join_s <= GOALS["join_s_max"]}
    return result


def format_curve(r: dict[str, Any]) -> str:
    c, b, met = r["call_ms"], r["builds_per_s"], r["met"]
    verdict = {True: "met", False: "MISSED"}
    return "\n".join([
        f"class door benchmark: {r['rounds']} rounds, {r['calls_per_round']} calls and "
        f"{r['builds_per_round']} builds each way a round (fast preset, loopback)",
        f"  call p50/p95 ms   PLAIN ipc {c['plain_p50']:.2f}/{c['plain_p95']:.2f}   "
        f"CURVE tcp {c['curve_p50']:.2f}/{c['curve_p95']:.2f}   ratio "
        f"{r['call_ratio']:.2f}x (goal <= {GOALS['call_ratio_max']}x: "
        f"{verdict[met['call']]})",
        f"  builds/s (median) on the lab's {b['lab']:.1f}, on the student's {b['student']:.1f}"
        f"   ratio {r['build_ratio']:.2f}x (goal >= {GOALS['build_ratio_min']}x: "
        f"{verdict[met['builds']]})",
        f"  join {r['join_s']:.2f} s (goal <= {GOALS['join_s_max']:.0f} s: "
        f"{verdict[met['join']]}); revoke to cut off {r['revoke_cut_off_s']:.2f} s"])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab bench curve",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--calls", type=int, default=500, help="calls each way a round")
    parser.add_argument("--builds", type=int, default=12, help="builds each way a round "
                        "(at most 16)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if min(args.calls, args.builds, args.rounds) < 1 or args.builds > 16:
        parser.error("--calls, --builds and --rounds must be >= 1, --builds <= 16")
    progress = None if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    result = bench_curve(args.calls, args.builds, args.rounds, progress)
    print(json.dumps(result, indent=1) if args.json else format_curve(result))
    return 0
