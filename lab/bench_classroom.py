"""``python -m lab bench classroom``: what a class costs a shared host (a JupyterHub, a
Binder), so an admin can size one. Each student's notebook starts one lab as a lesson
does (``Lab(computes=3, preset="demo", dashboard=True)``) and runs a lesson's work in it:
``lab.set_failure("compute1", reschedule=0.5)``, boot a batch of servers, wait, delete
them, wait, as lesson 03 does; a lesson is that round repeated for ``--lesson-seconds``.

1. **Per student**, the dashboard open in a headless Chromium (whose memory and CPU are
   the student's machine's and are not counted): RSS and PSS summed over every process
   of the lab (every ``lab.cluster.children`` and anything below them; the dashboard
   server is one), peak over the lesson and steady (median) while idle; CPU seconds over
   the lesson and as % of one core; idle CPU % over ``--idle-seconds`` with nothing
   happening; each process's share. The notebook kernel (this process, which drives
   the lab as a kernel would) is reported apart, beside a fresh ipykernel that has run
   the lesson's imports: a student's kernel is estimated as that ipykernel plus what
   the lab added to this process. The browser's CPU is shown, never counted.
2. **Setup cell to drawn dashboard**: from calling ``Lab(..., dashboard=True).start()``
   to the browser holding ``lab.dashboard_url``'s document idle and drawing what the
   trace says (every service a node, or rows in ``messages``: a quiet lab's start-up
   traffic is all filtered out of it); min and median over ``--runs``.
3. **N labs side by side** (``--labs``; N = 1 is always measured, as the baseline):
   started in parallel threads, idle together, then every lab's lesson (as many rounds
   as part 1's lesson took) at once, no browser. Each lesson's time is a ratio against
   N = 1's in the same run; every build must end ACTIVE, or ERROR with a fault.

No goal is asserted: these are figures for the README, and a sizing rule worked out
from them (``lab.bench_classroom_figures``). All labs are closed in ``finally`` blocks.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

from .bench_classroom_figures import (format_classroom, kernel_estimate, setup_figures,
                                      sizing_rule, summarize_side_by_side)
from .bench import counts
from .lab import Lab
from .procstat import Sampler, cpu_seconds, descendants, memory_kb

__all__ = ["main", "bench_classroom", "outcomes", "run_lesson", "lab_processes"]

FAILING, FAIL_RATE = "compute1", 0.5
# What lesson 03's setup cell imports, plus the control panel's widgets.
KERNEL_IMPORTS = "from lab import Lab\nimport lab.lessons.reschedule, lab.widgets, ipywidgets"
DRAWN_JS = """
const doc = window.Bokeh && Bokeh.documents.length ? Bokeh.documents[0] : null;
if (!doc) { return null; }
const rows = name => { const m = doc.get_model_by_name(name);
  return m ? Math.max(0, ...Object.values(m.data).map(v => v.length)) : 0; };
return {idle: doc.is_idle, messages: rows("messages"), nodes: rows("nodes")};"""


# -- the lesson --------------------------------------------------------------------------
def run_lesson(lab: Lab, servers: int, rounds: int | None = None, seconds: float = 0.0,
               timeout: float = 600.0) -> tuple[list[dict[str, Any]], int]:
    """Rounds of: boot ``servers`` in one request with compute1 failing half its builds,
    wait for each to end, delete them all, wait. ``rounds`` of them, or (``None``) as
    many as start within ``seconds`` (at least one). Returns the final records and the
    number of rounds."""
    lab.set_failure(FAILING, reschedule=FAIL_RATE)
    began, records, done = time.monotonic(), [], 0
    while True:
        ids = lab.boot(f"class{done}", count=servers)
        ids = [ids] if isinstance(ids, str) else ids
        records += lab.wait(ids, timeout=timeout)
        for server in ids:
            lab.delete(server)
        lab.wait(ids, timeout=timeout, statuses=("DELETED",))
        done += 1
        if done >= rounds if rounds is not None else time.monotonic() - began >= seconds:
            return records, done


def outcomes(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How builds ended: ACTIVE, ERROR with a fault (ran out of attempts: expected with
    a failing compute), or anything else (a bug)."""
    counts = {"active": 0, "error_with_fault": 0, "other": 0}
    for r in records:
        if r["status"] == "ACTIVE":
            counts["active"] += 1
        elif r["status"] == "ERROR" and (r.get("fault") or {}).get("message"):
            counts["error_with_fault"] += 1
        else:
            counts["other"] += 1
    return counts


# -- processes ---------------------------------------------------------------------------
def lab_processes(lab: Lab, prefix: str = "") -> dict[str, int]:
    """Every live process of the lab by name: its children, and anything below them."""
    named = {prefix + name: c.pid for name, c in lab.cluster.children.items() if c.alive()}
    below = descendants(list(named.values()))
    return {**named, **{f"{prefix}pid{pid}": pid for pid in below}}


def _cpu(processes: dict[str, int]) -> dict[str, float]:
    readings = {name: cpu_seconds(pid) for name, pid in processes.items()}
    return {name: s for name, s in readings.items() if s is not None}


class _Window:
    """CPU and memory of the lab processes and of this process (the kernel) over a span
    of wall time; the sampler's own CPU is left out of the kernel's. The CPU of
    ``others`` (the browser) is kept apart, in ``others_cpu``."""

    def __init__(self, processes: dict[str, int], interval: float = 0.5,
                 others: dict[str, int] | None = None):
        self.processes, self.others = processes, others or {}
        self.sampler = Sampler(lambda: {**processes, "kernel": os.getpid()}, interval)

    def __enter__(self) -> _Window:
        self.cpu0, self.me0 = _cpu(self.processes), cpu_seconds(os.getpid())
        self.others0 = _cpu(self.others)
        self.t0 = time.monotonic()
        self.sampler.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sampler.stop()
        self.wall = time.monotonic() - self.t0
        after = _cpu(self.processes)
        self.cpu_by = {n: after[n] - self.cpu0[n] for n in after if n in self.cpu0}
        self.cpu = sum(self.cpu_by.values())
        others = _cpu(self.others)
        self.others_cpu = sum(others[n] - self.others0[n] for n in others if n in self.others0)
        self.kernel_cpu = cpu_seconds(os.getpid()) - self.me0 - self.sampler.cpu

    def memory(self, kernel: bool = False) -> list[tuple[float, float | None]]:
        return self.sampler.totals(lambda n: (n == "kernel") == kernel)

    def peaks(self) -> dict[str, tuple[float, float | None]]:
        """Each process's own peak (RSS MB, PSS MB or None)."""
        return {name: (_peak(self.sampler.totals(lambda n: n == name), 0),
                       _peak(self.sampler.totals(lambda n: n == name), 1))
                for name in self.processes}

    def percent(self, seconds: float) -> float:
        return 100.0 * seconds / self.wall


def _peak(totals: list[tuple[float, float | None]], i: int) -> float | None:
    values = [t[i] for t in totals]
    return None if not values or None in values else round(max(values), 1)


def _steady(totals: list[tuple[float, float | None]], i: int) -> float | None:
    values = [t[i] for t in totals]
    return None if not values or None in values else round(statistics.median(values), 1)


# -- the browser -------------------------------------------------------------------------
def _browser() -> tuple[Any, str]:
    """Headless Debian Chromium through selenium, as tests/browser does; (driver, profile)."""
    from selenium import webdriver
    profile = tempfile.mkdtemp(prefix="lab-chromium-")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,1000",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    service = webdriver.ChromeService(
        executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    driver.set_page_load_timeout(60)
    return driver, profile


def _wait_drawn(driver: Any, t0: float, services: int, timeout: float = 60.0
                ) -> tuple[float, float]:
    """Seconds since ``t0`` until the document is idle, and until it also draws what the
    lab's trace says: every service as a node (``services``, the bus included), or
    message rows. (A quiet lab's start-up traffic is all filtered out of ``messages``.)"""
    idle_at, state = None, None
    while time.perf_counter() - t0 < timeout + 120:
        state = driver.execute_script(DRAWN_JS)
        now = time.perf_counter() - t0
        if state and state["idle"]:
            idle_at = idle_at if idle_at is not None else now
            if state["messages"] > 0 or state["nodes"] >= services:
                return idle_at, now
        if idle_at is not None and now - idle_at > timeout:
            break
        time.sleep(0.05)
    raise RuntimeError(f"dashboard not drawn (last state {state}) after {timeout}s")


def _setup_to_dashboard(driver: Any, preset: str, seed: int) -> tuple[Lab, dict[str, float]]:
    """Start a lab as a lesson's setup cell does and load its dashboard; the lab (running)
    and the times since the call."""
    t0 = time.perf_counter()
    lab = Lab(computes=3, seed=seed, preset=preset, dashboard=True)
    try:
        lab.start(timeout=120)
        times = {"lab_start_s": time.perf_counter() - t0}
        if driver is not None:
            driver.get(lab.dashboard_url)
            times["page_idle_s"], times["drawn_s"] = _wait_drawn(
                driver, t0, len(lab.service_names()))
    except BaseException:
        lab.close()
        raise
    return lab, times


# -- the three parts ---------------------------------------------------------------------
def _per_student(lab: Lab, servers: int, lesson_seconds: float, idle_seconds: float,
                 say: Callable[[str], None]) -> tuple[dict[str, Any], int]:
    processes = lab_processes(lab)
    ours = set(processes.values())       # anything else below this process: the browser
    browser = {f"pid{p}": p for p in descendants([os.getpid()]) if p not in ours}
    with _Window(processes, others=browser) as lesson:
        records, rounds = run_lesson(lab, servers, seconds=lesson_seconds)
    say(f"lesson: {rounds} round(s) in {lesson.wall:.1f} s")
    time.sleep(1.0)                       # the last deletes' messages settle
    with _Window(processes, others=browser) as idle:
        time.sleep(idle_seconds)
    mem, kmem = lesson.memory() + idle.memory(), lesson.memory(True) + idle.memory(True)
    peaks = lesson.peaks()
    result = {
        "per_student_rss_mb": {"peak": _peak(mem, 0), "steady": _steady(idle.memory(), 0)},
        "per_student_pss_mb": {"peak": _peak(mem, 1), "steady": _steady(idle.memory(), 1)},
        "kernel_rss_mb": {"peak": _peak(kmem, 0), "steady": _steady(idle.memory(True), 0)},
        "kernel_pss_mb": {"peak": _peak(kmem, 1), "steady": _steady(idle.memory(True), 1)},
        "lesson_wall_s": round(lesson.wall, 2), "lesson_rounds": rounds,
        "lesson_cpu_s": round(lesson.cpu, 2),
        "lesson_cpu_percent": round(lesson.percent(lesson.cpu), 1),
        "kernel_lesson_cpu_percent": round(lesson.percent(lesson.kernel_cpu), 1),
        "idle_cpu_percent": round(idle.percent(idle.cpu), 2),
        "kernel_idle_cpu_percent": round(idle.percent(idle.kernel_cpu), 2),
        "lesson_builds": outcomes(records),
        "browser_cpu_percent": {"lesson": round(lesson.percent(lesson.others_cpu), 1),
                                "idle": round(idle.percent(idle.others_cpu), 1)},
        "by_process": {name: {"rss_mb": peaks[name][0], "pss_mb": peaks[name][1],
                              "lesson_cpu_percent": round(
                                  lesson.percent(lesson.cpu_by.get(name, 0.0)), 1),
                              "idle_cpu_percent": round(
                                  idle.percent(idle.cpu_by.get(name, 0.0)), 2)}
                       for name in sorted(processes)}}
    return result, rounds


def _ipykernel_memory(code: str = KERNEL_IMPORTS) -> tuple[float, float | None] | None:
    """(RSS MB, PSS MB) of a fresh ipykernel once it has run a lesson's imports: what a
    student's kernel holds before it starts a lab. ``None`` without jupyter_client."""
    try:
        from jupyter_client.manager import start_new_kernel
    except ImportError:
        return None
    km, kc = start_new_kernel(kernel_name="python3", stderr=subprocess.DEVNULL)
    try:
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda _m: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the kernel could not run {code!r}")
        time.sleep(0.5)
        memory = memory_kb(km.provisioner.pid)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return None if memory is None else (
        round(memory[0] / 1024, 1), None if memory[1] is None else round(memory[1] / 1024, 1))


def _side_by_side(n: int, preset: str, servers: int, rounds: int, idle_seconds: float
                  ) -> dict[str, Any]:
    labs = [Lab(computes=3, seed=100 + i, preset=preset, dashboard=True) for i in range(n)]
    pids: list[int] = []
    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda lab: lab.start(timeout=180), labs))
        started = time.monotonic() - t0
        processes = {k: v for i, lab in enumerate(labs)
                     for k, v in lab_processes(lab, f"lab{i}/").items()}
        pids = list(processes.values())
        with _Window(processes, interval=1.0) as idle:
            time.sleep(idle_seconds)
        with _Window(processes, interval=1.0) as busy, ThreadPoolExecutor(n) as pool:
            runs = list(pool.map(lambda lab: _timed(run_lesson, lab, servers, rounds), labs))
    finally:
        for lab in labs:
            lab.close()
    return {"labs": n, "start_all_s": round(started, 2),
            "lesson_s": [round(s, 2) for s, _ in runs],
            "idle_cpu_percent_per_lab": round(idle.percent(idle.cpu) / n, 2),
            "lesson_cpu_percent_all": round(busy.percent(busy.cpu), 1),
            "kernel_lesson_cpu_percent": round(busy.percent(busy.kernel_cpu), 1),
            "rss_total_mb": _peak(busy.memory(), 0), "pss_total_mb": _peak(busy.memory(), 1),
            "builds": outcomes(r for _, (records, _) in runs for r in records),
            "leftover_processes": sum(os.path.exists(f"/proc/{p}") for p in pids)}


def _timed(func: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    t0 = time.monotonic()
    result = func(*args)
    return time.monotonic() - t0, result


def bench_classroom(labs: list[int], lesson_seconds: float = 30.0, servers: int = 20,
                    runs: int = 3, idle_seconds: float = 10.0, preset: str = "demo",
                    browser: bool = True, progress: Callable[[str], None] | None = None
                    ) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    load_before = os.getloadavg()
    ipykernel = _ipykernel_memory()
    say(f"a fresh ipykernel after the lesson's imports: {ipykernel} MB (RSS, PSS)")
    student, setups, rounds = _one_student(browser, preset, servers, lesson_seconds,
                                           idle_seconds, runs, say)
    rows = []
    for n in sorted({1, *labs}):
        rows.append(_side_by_side(n, preset, servers, rounds, idle_seconds))
        say(f"{n} lab(s) side by side: lessons {rows[-1]['lesson_s']}")
    result = {"preset": os.environ.get("LAB_PRESET") or preset, "computes": 3,
              "servers_per_round": servers, "failing": f"{FAILING} {FAIL_RATE:.0%}",
              "browser": browser, "idle_seconds": idle_seconds, **student,
              "ipykernel_mb": ipykernel and {"rss": ipykernel[0], "pss": ipykernel[1]},
              "setup_to_dashboard_s": setup_figures(setups),
              "side_by_side": summarize_side_by_side(rows),
              "conditions": {"cpus": os.cpu_count(), "load_before": load_before,
                             "load_after": os.getloadavg()}}
    result["kernel_estimate_mb"] = kernel_estimate(result)
    result["sizing_rule"] = sizing_rule(result)
    return result


def _one_student(browser: bool, preset: str, servers: int, lesson_seconds: float,
                 idle_seconds: float, runs: int, say: Callable[[str], None]
                 ) -> tuple[dict[str, Any], list[dict[str, float]], int]:
    """Parts 1 and 2: the first setup run's lab runs the lesson, the others only start."""
    driver, profile = _browser() if browser else (None, "")
    setups = []
    try:
        rss, pss = memory_kb(os.getpid())
        before = {"rss": round(rss / 1024, 1), "pss": pss and round(pss / 1024, 1)}
        lab, times = _setup_to_dashboard(driver, preset, seed=9)
        setups.append(times)
        say(f"setup run 1: {times}")
        try:
            student, rounds = _per_student(lab, servers, lesson_seconds, idle_seconds, say)
        finally:
            lab.close()
        for i in range(1, runs):
            if driver is not None:
                driver.get("about:blank")
            lab, times = _setup_to_dashboard(driver, preset, seed=9 + i)
            lab.close()
            setups.append(times)
            say(f"setup run {i + 1}: {times}")
    finally:
        if driver is not None:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
    return {**student, "kernel_before_lab_mb": before}, setups, rounds


_labs = counts("--labs", 1000, "1,5,10")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab bench classroom",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--labs", type=_labs, default=[1, 5, 10],
                        help="labs side by side, e.g. 1,5,10 (1 is always measured)")
    parser.add_argument("--lesson-seconds", type=float, default=30.0,
                        help="a lesson repeats its round until this long (at least once)")
    parser.add_argument("--servers", type=int, default=20, help="servers booted per round")
    parser.add_argument("--runs", type=int, default=3, help="setup-to-dashboard runs")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--preset", choices=["demo", "fast"], default="demo")
    parser.add_argument("--no-browser", action="store_true",
                        help="no Chromium: setup time ends at Lab.start()")
    args = parser.parse_args(argv)
    if args.servers < 1 or args.runs < 1 or args.idle_seconds <= 0 or args.lesson_seconds < 0:
        parser.error("--servers and --runs must be >= 1, --idle-seconds > 0, "
                     "--lesson-seconds >= 0")
    progress = None if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    result = bench_classroom(args.labs, args.lesson_seconds, args.servers, args.runs,
                             args.idle_seconds, args.preset, not args.no_browser, progress)
    print(json.dumps(result, indent=1) if args.json else format_classroom(result))
    return 0
