"""``python -m lab chaos``: a seeded nemesis against a real lab, then the invariants.

Builds (and, with ``--moves``, migrations, resizes and evacuations of ACTIVE servers)
keep flowing through the API while the nemesis kills and restarts every service, the
bus included, pauses and resumes them (SIGSTOP/SIGCONT), cuts computes off and slows
links, on top of a bus rule that drops and duplicates a share of all messages. Then every
fault is lifted, every service restarted or resumed, and once the cloud is at rest (at
most ``build_timeout`` + ``scheduler_timeout`` + two ``report_interval`` later) the checks
of ``lab.invariants`` run; the servers are watched a while longer for any change nobody
asked for; the lab is closed and its processes must all be gone.

Every decision of the nemesis (what, when, which) comes from ``random.Random`` seeded by
``--seed``: the plan (``plan()``) is a pure function of the options, so the same seed
tells the same story. Its clock is the number of builds sent, not seconds, but the
processes still run on wall-clock time: the interleaving, and so the outcomes, still vary
from run to run. Which servers a move or an evacuation picks is drawn from what the API
shows at that moment.
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import math
import random
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from orchestrator import rundir
from orchestrator.compute.manager import AUDIT_EVERY
from orchestrator.db_schema import MIGRATION_MOVING

from . import invariants as inv
from .chaos_report import add_evidence, format_report, message_fates, server_actions
from .api_client import ApiError
from .housekeeping import keep
from .lab import Lab
from .nemesis import ChaosOptions, Nemesis, Step, plan

__all__ = ["ChaosOptions", "Step", "plan", "History", "ChaosRun", "snapshot", "run_chaos",
           "format_report", "add_arguments", "run_from_args"]

FLAVORS = ("m1.tiny", "m1.small")     # builds pick one; resizes go to the other
POLL = 0.5                            # seconds between the watcher's looks at the servers


# -- what the watcher saw and what users did ---------------------------------------------------
class History:
    """Each server's states as the polls saw them, and the user actions on each; times
    in seconds from ``origin`` (the start of the run)."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self.lock = threading.Lock()
        self.seen: dict[str, list[inv.Observation]] = {}
        self.actions: dict[str, list[tuple[float, float]]] = {}
        self.kinds: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def observe(self, when: float, servers: list[dict[str, Any]]) -> None:
        when -= self.origin
        with self.lock:
            for s in servers:
                seen = self.seen.setdefault(s["id"], [])
                state = inv.state_of(s)
                if seen and seen[-1].state == state:
                    seen[-1].last = when
                else:
                    seen.append(inv.Observation(when, when, state))

    def act(self, server: str, kind: str, request: Callable[[], Any]) -> bool:
        """Make a user request; a refusal (an HTTP error) changes nothing, anything else
        (accepted, or no answer) counts as a user action on ``server``."""
        start = time.time()
        try:
            request()
        except ApiError as exc:
            self.refused[f"{kind} HTTP {exc.status}"] += 1
            return False
        except OSError:
            self.refused[f"{kind} no answer"] += 1
        with self.lock:
            self.actions.setdefault(server, []).append((start - self.origin,
                                                        time.time() - self.origin))
            self.kinds[kind] += 1
        return True


class ChaosRun:
    """The builder, the watcher (which also moves servers and confirms resizes) and the
    nemesis, as threads; then healing and settling."""

    def __init__(self, lab: Lab, options: ChaosOptions, steps: list[Step]):
        self.lab, self.options = lab, options
        self.history = History(time.time())
        self.nemesis = Nemesis(lab, options, steps, self.history.act)
        self.accepted: list[str] = []
        self.refused: Counter[str] = Counter()
        self.errors = self.nemesis.errors
        self.sent = 0
        self.chaos_over = threading.Event()
        self.rng_moves = random.Random(f"{options.seed}/moves")

    def chaos(self) -> None:
        self.nemesis.start_network()
        threads = [threading.Thread(target=self._guard(f), name=f.__name__, daemon=True)
                   for f in (self._builder, self.nemesis.run)]
        watcher = threading.Thread(target=self._guard(self._watcher), daemon=True)
        for t in [*threads, watcher]:
            t.start()
        for t in threads:
            t.join()
        self.chaos_over.set()
        watcher.join()

    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except Exception as exc:     # reported, never silently lost
                self.errors.append(f"{body.__name__}: {type(exc).__name__}: {exc}")
        return run

    def _builder(self) -> None:
        rng = random.Random(f"{self.options.seed}/builds")
        start = time.monotonic()
        try:
            for i in range(self.options.builds):
                time.sleep(max(0.0, start + i / self.options.rate - time.monotonic()))
                flavor = rng.choice(FLAVORS)
                try:
                    self.accepted.append(self.lab.boot(f"chaos-{i + 1}", flavor=flavor))
                except ApiError as exc:
                    self.refused[f"HTTP {exc.status}"] += 1
                except OSError:
                    self.refused["no answer"] += 1
                self.sent = i + 1
                self.nemesis.builds_sent(i + 1)
        finally:     # the nemesis never waits for a builder that died
            self.nemesis.builds_sent(self.options.builds)

    def _watcher(self) -> None:
        while not self.chaos_over.is_set():
            self.look(moves=self.options.moves)
            self.chaos_over.wait(POLL)

    def look(self, moves: bool = False,
             resolve: bool = False) -> list[dict[str, Any]] | None:
        """Poll the servers into the history (None if the API does not answer); confirm
        or revert resizes waiting for the user (``moves`` or ``resolve``), and with
        ``moves`` maybe start one more move."""
        when = time.time()
        try:
            servers = self.lab.servers()
        except (ApiError, OSError):
            return None
        self.history.observe(when, servers)
        resting = sorted((s for s in servers if inv.at_rest(inv.state_of(s))),
                         key=lambda s: s["id"])
        if moves or resolve:
            for s in resting:
                if s["status"] == "VERIFY_RESIZE":
                    self._resolve(s["id"])
        active = [s for s in resting if s["status"] == "ACTIVE"]
        if moves and active and self.rng_moves.random() < 0.6:
            s = self.rng_moves.choice(active)
            if self.rng_moves.random() < 0.5:
                self.history.act(s["id"], "migrate", lambda: self.lab.migrate(s["id"]))
            else:
                flavor = FLAVORS[1 - FLAVORS.index(s["flavor"]["original_name"])] \
                    if s["flavor"]["original_name"] in FLAVORS else FLAVORS[0]
                self.history.act(s["id"], "resize", lambda: self.lab.resize(s["id"], flavor))
        return servers

    def _resolve(self, sid: str) -> None:
        if self.rng_moves.random() < 0.7:
            self.history.act(sid, "confirmResize", lambda: self.lab.confirm_resize(sid))
        else:
            self.history.act(sid, "revertResize", lambda: self.lab.revert_resize(sid))

    def heal_all(self) -> None:
        self.nemesis.heal_all()

    def settle(self, faults_stopped: float, limit: float) -> float | None:
        """Poll until every server is at rest (resizes confirmed or reverted, as a user
        would) and no migration is moving; seconds that took, None past ``limit``. (A
        migration left ``finished`` under a server not waiting for a confirm never moves
        again: invariant 3 reports it.)"""
        while True:
            servers = self.look(resolve=True)
            try:
                moving = [m for m in self.lab.migrations() if m["status"] in MIGRATION_MOVING]
            except (ApiError, OSError):
                moving = [{}]
            rest = [inv.state_of(s) for s in servers or ()]
            if servers is not None and not moving and len(servers) >= len(self.accepted) \
                    and all(inv.at_rest(s) and s[0] != "VERIFY_RESIZE" for s in rest):
                return time.time() - faults_stopped
            if time.time() - faults_stopped > limit:
                return None
            time.sleep(POLL / 2)


def snapshot(lab: Lab) -> inv.Snapshot:
    """Everything the checks read, as close to one moment as a few requests allow."""
    computes = {}
    for host in lab.config.compute_names():
        try:
            computes[host] = lab.bus().call("compute", "resources", server=host, timeout=5)
        except Exception:        # a compute that does not answer: the checks say so
            pass
    return inv.Snapshot(time.time(), lab.servers(), lab.hypervisors(), lab.migrations(),
                        lab.services(), computes,
                        {name: lab.service_state(name) for name in lab.service_names()})


def _converge(lab: Lab, timeout: float) -> tuple[inv.Snapshot, float | None]:
    """Wait until what the computes hold, their trackers and the database agree; the
    snapshot then (or at ``timeout``) and how long it took."""
    start = time.time()
    while True:
        snap = snapshot(lab)
        if not inv.check_accounting(snap) and not inv.check_placement(snap):
            return snap, time.time() - start
        if time.time() - start > timeout:
            return snap, None
        time.sleep(POLL / 2)


def _sized(options: ChaosOptions) -> dict[str, int]:
    """Computes big enough for every build and both ends of every move: a full cloud is
    not what this tests (NoValidHost still comes, from computes down or cut off)."""
    vcpus = math.ceil(2 * options.builds / max(1, options.computes)) + 8
    return {"vcpus": vcpus, "memory_mb": vcpus * 2048, "local_gb": vcpus * 20}


def run_chaos(options: ChaosOptions, run_dir: str | Path | None = None,
              say: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Start a lab, run the nemesis, heal, wait, check, watch, close; the figures and
    violations (``format_report`` prints them)."""
    lab = Lab(computes=options.computes, seed=options.seed, preset="fast",
              run_dir=None if run_dir is None else str(run_dir), **_sized(options))
    steps = plan(options, lab.config)
    # a call lost just before the faults stopped fails within call_timeout (< this), the
    # conductor's timeouts fire within build_timeout of the last progress and are checked
    # every report_interval, and a scheduling call may wait out scheduler_timeout
    limit = lab.config.timing("build_timeout") + lab.config.timing("scheduler_timeout") + \
        2 * lab.config.timing("report_interval")
    result: dict[str, Any] = {"options": asdict(options), "plan": [s.text() for s in steps],
                              "run_dir": str(lab.run_dir), "limit_s": limit}
    try:
        lab.start()
        run = ChaosRun(lab, options, steps)
        times, snap, violations = _run_and_check(run, limit, say)
        actions = server_actions(lab, violations, snap)
    finally:
        lab.close()
    pids = {**run.nemesis.pids, **rundir.read(lab.run_dir).get("pids", {})}
    violations += inv.check_reaped(pids, _running)
    add_evidence(violations, actions, Path(lab.run_dir), times["began"],
                 lab.config.compute_names())
    result.update(_figures(run, snap, times))
    result["violations"] = [v.to_dict() for v in violations]
    result["invariants"] = {f"{n} {name}": sum(v.invariant == n for v in violations)
                            for n, name in inv.INVARIANTS.items()}
    if violations:
        keep(lab.run_dir, why=f"chaos seed {options.seed}: {len(violations)} violation(s)")
    return result


def _run_and_check(run: ChaosRun, limit: float, say: Callable[[str], None]
                   ) -> tuple[dict[str, Any], inv.Snapshot, list[inv.Violation]]:
    """The chaos, the healing, the wait for rest, the checks and the watch after them."""
    lab, options = run.lab, run.options
    began = run.history.origin
    say(f"lab in {lab.run_dir}; chaos: {options.builds} builds, {len(run.nemesis.steps)} "
        "steps")
    run.chaos()
    run.heal_all()
    stopped = time.time()
    say(f"chaos over after {stopped - began:.1f}s; faults lifted, waiting")
    at_rest = run.settle(stopped, limit)
    # a compute may still be waiting out a call lost before the faults stopped (its final
    # save: then the claim audit mends what it holds, once two audits in a row saw it)
    mended = lab.cluster.bus_config.call_timeout + (2 * AUDIT_EVERY + 1) * \
        lab.config.timing("report_interval")
    snap, converged = _converge(lab, max(mended, stopped + limit - time.time()))
    violations = _check(run, snap, stopped, limit)
    say(f"checked; watching for {options.watch:g}s")
    watch_end = time.time() + options.watch
    while time.time() < watch_end:
        run.look()
        time.sleep(POLL)
    violations += inv.check_history(run.history.seen, run.history.actions)
    violations += inv.check_unchanged(snap, snapshot(lab))
    times = {"began": began, "stopped": stopped, "at_rest": at_rest, "converged": converged}
    return times, snap, _unique(violations)


def _check(run: ChaosRun, snap: inv.Snapshot, faults_stopped: float,
           limit: float) -> list[inv.Violation]:
    return [*inv.check_outcomes(snap, run.accepted, faults_stopped, limit),
            *inv.check_placement(snap), *inv.check_accounting(snap),
            *inv.check_services(snap, run.lab.config.compute_names())]


def _unique(violations: list[inv.Violation]) -> list[inv.Violation]:
    """One violation per (invariant, subject, what), the first kept."""
    seen, out = set(), []
    for v in violations:
        key = (v.invariant, v.subject, v.what)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


def _figures(run: ChaosRun, snap: inv.Snapshot, times: dict[str, Any]) -> dict[str, Any]:
    return {
        "builds": {"sent": run.sent, "accepted": len(run.accepted),
                   "refused": dict(run.refused)},
        "moves": {"accepted": dict(run.history.kinds), "refused": dict(run.history.refused)},
        "faults": {"injected": dict(sorted(run.nemesis.injected.items())),
                   "messages": dict(sorted(message_fates(Path(run.lab.run_dir)).items()))},
        "outcomes": dict(sorted(inv.outcomes(snap.servers).items())),
        "migrations": dict(sorted(Counter(f"{m['migration_type']} {m['status']}"
                                          for m in snap.migrations).items())),
        "recovery": {"chaos_s": times["stopped"] - times["began"],
                     "at_rest_after_s": times["at_rest"],
                     "accounting_converged_after_s": times["converged"]},
        "nemesis_skipped": dict(run.nemesis.skipped),
        "nemesis_errors": run.errors,
    }


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


def _at_least(low: float, kind: type = float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} must be at least {low:g}")
        return value
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m lab chaos`` (the CLI registers the command)."""
    p.add_argument("--builds", type=_at_least(1, int), default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--computes", type=_at_least(1, int), default=4)
    p.add_argument("--drop", type=_probability, default=0.05, help="share of messages lost")
    p.add_argument("--duplicate", type=_probability, default=0.02,
                   help="share of messages delivered twice")
    p.add_argument("--delay", type=_at_least(0), default=1.0,
                   help="seconds a slowed link adds (0: no slow links)")
    p.add_argument("--kill-every", type=_at_least(0), default=3.0,
                   help="seconds between process faults (0: none)")
    p.add_argument("--moves", action="store_true",
                   help="also migrate, resize and evacuate ACTIVE servers")
    p.add_argument("--rate", type=_at_least(0.1), default=10.0, help="builds per second")
    p.add_argument("--watch", type=_at_least(0), default=5.0,
                   help="seconds to watch for changes after the checks")
    p.add_argument("--run-dir", default=None, help="where the new lab runs (default: a "
                   "new directory, kept if anything was violated)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run_from_args(args: argparse.Namespace) -> int:
    """Run with the parsed options; 0 if no invariant was violated, else 1. (SIGUSR1
    prints every thread's stack, for a run that seems stuck.)"""
    faulthandler.register(signal.SIGUSR1)
    options = ChaosOptions(builds=args.builds, seed=args.seed, computes=args.computes,
                           drop=args.drop, duplicate=args.duplicate, delay=args.delay,
                           kill_every=args.kill_every, moves=args.moves, rate=args.rate,
                           watch=args.watch)
    result = run_chaos(options, args.run_dir,
                       say=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=1) if args.json else format_report(result))
    return 1 if result["violations"] else 0
