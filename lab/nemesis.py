"""The nemesis of ``python -m lab chaos``: what it does to a running lab, and when.

``plan()`` writes the story from the seed: every service killed once (the bus too), one
compute paused past ``build_timeout``, more kills and pauses to fill ``kill_every``, and
alongside them computes cut off (partitions) and links slowed (a delay rule); with moves,
a killed compute may have some of its servers evacuated. Its clock is the number of
builds sent, so the same options give the same plan, step for step.

``Nemesis`` plays it against a lab, as a thread beside the builds: a step starts once its
build has been sent, its service is not still down from an earlier step and (for the
bus) nothing else is broken; each fault is healed (restart, resume, window closed) after
its duration. ``Network`` keeps the bus's fault table as the nemesis wants it: the base
rule that drops and duplicates a share of every message, plus the windows open now.
"""
from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Callable

from orchestrator.config import LabConfig

from .api_client import ApiError
from .lab import Lab

__all__ = ["ChaosOptions", "Step", "plan", "Network", "Nemesis", "RESTART"]

RESTART = 1.5          # seconds a restart takes, for planning
POLL = 0.5             # the longest the nemesis sleeps without looking at its clock


@dataclass(frozen=True)
class ChaosOptions:
    """What a chaos run is asked to do (``python -m lab chaos``'s options)."""

    builds: int = 400
    seed: int = 0
    computes: int = 4
    drop: float = 0.05            # share of every message dropped (the bus's base rule)
    duplicate: float = 0.02       # ... and delivered twice
    delay: float = 1.0            # seconds added on a slowed link, while its window is open
    kill_every: float = 3.0       # seconds between process faults (0: none)
    moves: bool = False
    rate: float = 10.0            # builds sent per second
    watch: float = 5.0            # seconds watched after the checks


@dataclass(frozen=True)
class Step:
    """One nemesis move: at build ``at``, ``action`` (kill or pause) ``service`` for
    ``duration`` seconds; meanwhile maybe a compute cut off, a link slowed, and (a
    killed compute, with moves) some of its servers evacuated."""

    at: int
    action: str
    service: str
    duration: float
    partition: str | None = None
    partition_for: float = 0.0
    slow: tuple[str, str] | None = None      # ("dst" | "method", pattern)
    slow_for: float = 0.0
    evacuate: int = 0

    def text(self) -> str:
        out = f"at build {self.at:4}  {self.action} {self.service} {self.duration:.1f}s"
        if self.partition:
            out += f"; partition {self.partition} {self.partition_for:.1f}s"
        if self.slow:
            out += f"; slow {self.slow[0]} {self.slow[1]} {self.slow_for:.1f}s"
        if self.evacuate:
            out += f"; evacuate {self.evacuate} of its servers"
        return out


def plan(options: ChaosOptions, config: LabConfig) -> list[Step]:
    """The nemesis's story: every service killed once (the bus too), one compute paused
    past ``build_timeout``, more kills and pauses to fill ``kill_every``, at least one
    partition. Same options, same plan."""
    if options.kill_every <= 0:
        return []
    rng = random.Random(options.seed)
    computes = config.compute_names()
    services = ["api", "conductor", "scheduler", *computes, "bus"]
    chosen = [("kill", s) for s in services] + [("long pause", rng.choice(computes))]
    wanted = round(options.builds / options.rate / options.kill_every)
    while len(chosen) < wanted:
        chosen.append((rng.choice(["kill", "pause"]), rng.choice(services)))
    rng.shuffle(chosen)
    items = [_step(rng, options, config, 0, action, service) for action, service in chosen]
    if not any(s.partition for s in items) and items:
        first = next((i for i, s in enumerate(items) if s.service != "bus"), None)
        if first is not None:
            items[first] = _with_partition(rng, items[first], computes)
    return _schedule_steps(rng, options, items)


def _schedule_steps(rng: random.Random, options: ChaosOptions,
                    items: list[Step]) -> list[Step]:
    """Spread the steps over the builds, in their order unless a step's service would
    still be down from an earlier one (by the nominal clock, ``rate`` builds a second):
    then the first one that is free goes first. The bus goes alone."""
    spacing = options.builds / (len(items) + 1)
    busy: dict[str, float] = {}          # service (or "windows") -> nominal end
    steps = []
    for i in range(len(items)):
        at = max(1, min(options.builds - 1, round(spacing * (i + 1 + rng.uniform(-.3, .3)))))
        now = at / options.rate

        def free(step: Step) -> bool:
            if step.service == "bus":
                return all(end <= now for end in busy.values())
            return busy.get(step.service, 0) <= now and busy.get("bus", 0) <= now
        pick = next((s for s in items if free(s)), items[0])
        items.remove(pick)
        steps.append(_replace(pick, at=at))
        busy[pick.service] = now + pick.duration + RESTART
        busy["windows"] = max(busy.get("windows", 0),
                              now + max(pick.partition_for, pick.slow_for))
    return steps


def _step(rng: random.Random, options: ChaosOptions, config: LabConfig, at: int,
          action: str, service: str) -> Step:
    down = config.timing("service_down_time")
    evacuate = 0
    if action == "long pause":
        action, duration = "pause", config.timing("build_timeout") + rng.uniform(1, 2)
    elif service == "bus":
        return Step(at, action, service, rng.uniform(0.3, 1.5))   # alone, no windows
    elif action == "pause":
        duration = rng.uniform(1, 3)
    elif options.moves and service.startswith("compute") and rng.random() < 0.6:
        duration, evacuate = down + rng.uniform(2, 3), rng.randint(1, 3)
    else:
        duration = rng.uniform(0.5, 2)
    step = Step(at, action, service, duration, evacuate=evacuate)
    if rng.random() < 0.5:
        step = _with_partition(rng, step, config.compute_names())
    if options.delay > 0 and rng.random() < 0.4:
        methods = ["build_and_run_instance", "build_instances", "select_destinations",
                   "instance_update"] + (["prep_resize", "resize_instance", "finish_resize",
                                          "confirm_resize"] if options.moves else [])
        targets = [("dst", f"compute.{c}") for c in config.compute_names()] + \
            [("dst", "conductor"), ("dst", "scheduler")] + [("method", m) for m in methods]
        step = _replace(step, slow=rng.choice(targets), slow_for=rng.uniform(2, 5))
    return step


def _with_partition(rng: random.Random, step: Step, computes: list[str]) -> Step:
    return _replace(step, partition=rng.choice(computes), partition_for=rng.uniform(1.5, 4))


def _replace(step: Step, **changes: Any) -> Step:
    return Step(**{**asdict(step), **changes})


class Network:
    """The base rule (drop, duplicate) plus the windows open now. Sent whole on every
    change, and again after the bus restarts (a new bus starts with no faults)."""

    def __init__(self, lab: Lab, options: ChaosOptions):
        self.lab = lab
        self.base = dict(drop=options.drop, duplicate=options.duplicate)
        self.delay = options.delay
        self.on = False
        self.partitions: Counter[str] = Counter()
        self.slow: Counter[tuple[str, str]] = Counter()

    def apply(self) -> None:
        self.lab.clear_faults()
        if not self.on:
            return
        if any(self.base.values()):
            self.lab.add_fault(**self.base)
        for (kind, pattern), n in sorted(self.slow.items()):
            if n:
                self.lab.add_fault(delay=self.delay, **{kind: pattern})
        hosts = sorted(h for h, n in self.partitions.items() if n)
        if hosts:
            self.lab.partition(*hosts)


class Nemesis:
    """Plays ``steps`` against ``lab``. The builder calls ``builds_sent(n)``; ``run()``
    returns when every step was played and healed. ``act(server, kind, request)`` makes a
    user request (an evacuation) on the caller's record; failures of the nemesis's own
    actions land in ``errors``, ``injected`` counts what it did and ``skipped`` what it
    could not do because of another fault."""

    def __init__(self, lab: Lab, options: ChaosOptions, steps: list[Step],
                 act: Callable[[str, str, Callable[[], Any]], Any]):
        self.lab, self.steps, self.act = lab, steps, act
        self.network = Network(lab, options)
        self.injected: Counter[str] = Counter()
        self.errors: list[str] = []
        self.skipped: Counter[str] = Counter()
        self.pids: dict[str, int] = {}
        self.busy: set[str] = set()
        self.heals: list[tuple[float, int, str, Any]] = []
        self.order = itertools.count()
        self.rng_pick = random.Random(f"{options.seed}/evacuate")
        self.sent = 0
        self.sent_changed = threading.Condition()
        self.note_pids()

    def builds_sent(self, n: int) -> None:
        with self.sent_changed:
            self.sent = n
            self.sent_changed.notify_all()

    def start_network(self) -> None:
        self.network.on = True
        self._attempt("faults on", self.network.apply)

    def run(self) -> None:
        for step in self.steps:
            while True:          # heal outside the lock: the builder must not wait
                with self.sent_changed:
                    if self.sent >= step.at:
                        break
                    self.sent_changed.wait(self._next_heal())
                self._heal_due()
            exclusive = step.service == "bus"
            while self.heals and (exclusive or step.service in self.busy):
                self._sleep_until(self.heals[0][0])
                self._heal_due()
            self._inject(step)
        while self.heals:
            self._sleep_until(self.heals[0][0])
            self._heal_due()

    def _sleep_until(self, due: float) -> None:
        time.sleep(max(0.0, due - time.monotonic()))

    def _schedule(self, after: float, kind: str, arg: Any) -> None:
        heapq.heappush(self.heals, (time.monotonic() + after, next(self.order), kind, arg))

    def _next_heal(self) -> float:
        """Seconds until the next heal is due (at most one POLL)."""
        return min(POLL, max(0.0, self.heals[0][0] - time.monotonic())) if self.heals \
            else POLL

    def _heal_due(self) -> None:
        while self.heals and self.heals[0][0] <= time.monotonic():
            _, _, kind, arg = heapq.heappop(self.heals)
            self._attempt(f"{kind} {arg}", lambda: self._heal(kind, arg))

    def _heal(self, kind: str, arg: Any) -> None:
        if kind == "restart":
            self.lab.restart(arg)
            self.note_pids()
            self.busy.discard(arg)
        elif kind == "resume":
            self.lab.resume(arg)
            self.busy.discard(arg)
        elif kind == "unpartition":
            self.network.partitions[arg] -= 1
            self.network.apply()
        elif kind == "unslow":
            self.network.slow[arg] -= 1
            self.network.apply()
        elif kind == "evacuate":
            self._evacuate(*arg)

    def _inject(self, step: Step) -> None:
        self.injected[f"{step.action} {step.service}"] += 1
        if step.service == "bus":      # alone: nothing else is broken meanwhile
            self._attempt(f"{step.action} bus", lambda: self._bus(step))
            return
        self.busy.add(step.service)
        if step.action == "kill":
            self._attempt(f"kill {step.service}", lambda: self.lab.kill(step.service))
            self._schedule(step.duration, "restart", step.service)
            if step.evacuate:
                self._schedule(self.lab.config.timing("service_down_time") + 1.0,
                               "evacuate", (step.service, step.evacuate))
        else:
            self._attempt(f"pause {step.service}", lambda: self.lab.pause(step.service))
            self._schedule(step.duration, "resume", step.service)
        if step.partition:
            self.injected["partition"] += 1
            self.network.partitions[step.partition] += 1
            self._attempt("partition", self.network.apply)
            self._schedule(step.partition_for, "unpartition", step.partition)
        if step.slow:
            self.injected["slow link"] += 1
            self.network.slow[step.slow] += 1
            self._attempt("slow link", self.network.apply)
            self._schedule(step.slow_for, "unslow", step.slow)

    def _bus(self, step: Step) -> None:
        (self.lab.kill if step.action == "kill" else self.lab.pause)("bus")
        time.sleep(step.duration)
        if step.action == "kill":
            self.lab.restart("bus")
            self.note_pids()
            self.network.apply()         # the new bus knows no faults
        else:
            self.lab.resume("bus")

    def _evacuate(self, host: str, count: int) -> None:
        try:
            listed = self.lab.servers()
        except (ApiError, OSError):      # the API is down too: no user gets in now
            self.skipped["evacuate: the API did not answer"] += 1
            return
        servers = sorted(s["id"] for s in listed
                         if s["OS-EXT-SRV-ATTR:host"] == host and s["status"] == "ACTIVE"
                         and s["OS-EXT-STS:task_state"] is None)
        for sid in self.rng_pick.sample(servers, min(count, len(servers))):
            self.act(sid, "evacuate", lambda: self.lab.evacuate(sid))

    def _attempt(self, what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")

    def note_pids(self) -> None:
        self.pids.update({c.name: c.pid for c in self.lab.cluster.children.values()})

    def heal_all(self) -> None:
        """Every fault lifted, every service running and resumed (the bus first)."""
        self.network.on = False
        for name in ["bus", *[n for n in self.lab.service_names() if n != "bus"]]:
            try:
                state = self.lab.service_state(name)
            except Exception as exc:
                self.errors.append(f"state of {name}: {type(exc).__name__}: {exc}")
                continue
            if state == "down":
                self._attempt(f"restart {name}", lambda: self.lab.restart(name))
            elif state == "paused":
                self._attempt(f"resume {name}", lambda: self.lab.resume(name))
            if name == "bus":
                self._attempt("clear faults", self.network.apply)
        self.note_pids()
