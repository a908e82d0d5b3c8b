"""``python -m lab bench startup [--computes 8,32] [--json]``: how long ``Lab(computes=N)``
takes to be ready (every compute reporting up through the API) and ``stop()`` to leave
nothing running, and each service's peak RSS while it starts and settles.

Every process of a lab starts at once and the lab waits for all of them in one look at
the bus's peers a round (``Lab.start``); each process still imports Python, pyzmq and
its service's modules, about 0.1 s of CPU, so on 2 cores N computes cost about
N x 0.05 s however they are started, unless they share processes: ``--per-process``
(``hosts_per_process``) is measured beside one process per compute.

Goals (this 2-core machine): 8 computes ready <= 1 s, 32 <= 2 s, stop <= 0.5 s.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from typing import Any, Callable

from .bench import counts
from .lab import Lab
from .procstat import memory_kb

__all__ = ["bench_startup", "format_startup", "main", "GOALS"]

GOALS = {"ready_s_max": {8: 1.0, 32: 2.0}, "stop_s_max": 0.5}


class PeakRss:
    """Samples every process of a lab every 20 ms; keeps each service's peak RSS (MB)."""

    def __init__(self, lab: Lab):
        self.lab, self.peak = lab, {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(0.02):
            for child in list(self.lab.cluster.children.values()):
                mem = memory_kb(child.pid) if child.alive() else None
                if mem is not None:
                    self.peak[child.name] = max(self.peak.get(child.name, 0.0), mem[0] / 1024)


def one_start(computes: int, per_process: int) -> dict[str, Any]:
    lab = Lab(computes=computes, seed=1, preset="fast", hosts_per_process=per_process)
    with PeakRss(lab) as rss:
        t0 = time.perf_counter()
        lab.start()
        ready = time.perf_counter() - t0
        time.sleep(1.0)         # settle: the first reports and audits
        t1 = time.perf_counter()
        lab.stop()
        stop = time.perf_counter() - t1
    left = [c.name for c in lab.cluster.processes() if c.alive()]
    if left:
        raise RuntimeError(f"still running after stop(): {left}")
    by_service: dict[str, list[float]] = {}
    for name, mb in rss.peak.items():
        by_service.setdefault(name.split(".")[0], []).append(mb)
    return {"ready_s": ready, "stop_s": stop,
            "processes": len({id(c) for c in lab.cluster.children.values()}),
            "peak_rss_mb": {s: max(v) for s, v in sorted(by_service.items())},
            "peak_rss_total_mb": sum(rss.peak.values())}


def bench_startup(computes: list[int], per_process: int = 8, runs: int = 3,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    rows = []
    for n in computes:
        for share in sorted({1, min(n, per_process)}):
            runs_ = [one_start(n, share) for _ in range(runs)]
            row = {"computes": n, "hosts_per_process": share,
                   "processes": runs_[0]["processes"],
                   "ready_s": statistics.median(r["ready_s"] for r in runs_),
                   "ready_s_min": min(r["ready_s"] for r in runs_),
                   "stop_s": statistics.median(r["stop_s"] for r in runs_),
                   "peak_rss_mb": runs_[-1]["peak_rss_mb"],
                   "peak_rss_total_mb": statistics.median(r["peak_rss_total_mb"]
                                                          for r in runs_)}
            goal = GOALS["ready_s_max"].get(n)
            row["met"] = {"ready": None if goal is None else row["ready_s"] <= goal,
                          "stop": row["stop_s"] <= GOALS["stop_s_max"]}
            rows.append(row)
            say(f"{n} computes, {share} per process: ready {row['ready_s']:.2f}s, "
                f"stop {row['stop_s']:.2f}s")
    return {"runs": runs, "rows": rows, "goals": {"ready_s_max": GOALS["ready_s_max"],
                                                  "stop_s_max": GOALS["stop_s_max"]}}


def format_startup(r: dict[str, Any]) -> str:
    lines = [f"startup benchmark: median of {r['runs']} runs (fast preset)",
             f"{'computes':>9}{'per proc':>9}{'procs':>7}{'ready s':>9}{'stop s':>8}"
             f"{'RSS MB':>8}  peak RSS per process (MB)   goal"]
    for row in r["rows"]:
        goal = GOALS["ready_s_max"].get(row["computes"])
        verdict = "" if goal is None else \
            f"ready <= {goal:.0f}s {'met' if row['met']['ready'] else 'MISSED'}, "
        verdict += f"stop {'met' if row['met']['stop'] else 'MISSED'}"
        per = ", ".join(f"{k} {v:.0f}" for k, v in row["peak_rss_mb"].items())
        lines.append(f"{row['computes']:>9}{row['hosts_per_process']:>9}{row['processes']:>7}"
                     f"{row['ready_s']:>9.2f}{row['stop_s']:>8.2f}"
                     f"{row['peak_rss_total_mb']:>8.0f}  {per}   {verdict}")
    return "\n".join(lines)


_sizes = counts("--computes", 500, "8,32")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab bench startup",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--computes", type=_sizes, default=[8, 32])
    parser.add_argument("--per-process", type=int, default=8,
                        help="also measure computes sharing processes, this many each")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.per_process < 1 or args.runs < 1:
        parser.error("--per-process and --runs must be >= 1")
    progress = None if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    result = bench_startup(args.computes, args.per_process, args.runs, progress)
    print(json.dumps(result, indent=1) if args.json else format_startup(result))
    return 0
