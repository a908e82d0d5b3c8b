"""Failure injection for a compute: the lab's way to make builds fail on purpose.

Per host, changeable while running: ``reschedule`` (probability a build attempt fails in
a way another host may not: it is rescheduled), ``fatal`` (fails for good: ERROR),
``crash`` (the compute process dies mid-build), ``slow`` (a factor on build step times).
Resizes read the same settings at each step (``compute/migration.py``).
Each decision is drawn from a generator seeded by (seed, instance, host, attempt), never
by timing, so the same seed tells the same story."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

__all__ = ["FailureSettings", "Verdict", "decide"]


@dataclass(frozen=True)
class FailureSettings:
    reschedule: float = 0.0
    fatal: float = 0.0
    crash: float = 0.0
    slow: float = 1.0

    def __post_init__(self) -> None:
        for name in ("reschedule", "fatal", "crash"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], not {p!r}")
        if isinstance(self.slow, bool) or not isinstance(self.slow, (int, float)) \
                or not 0 < self.slow <= 100:
            raise ValueError(f"slow must be a factor in (0, 100], not {self.slow!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """What happens to one build attempt: None, "crash", "fatal" or "reschedule"."""

    outcome: str | None


def decide(settings: FailureSettings, seed: int, instance_uuid: str, host: str,
           attempt: int) -> Verdict:
    rng = random.Random(f"{seed}|{instance_uuid}|{host}|{attempt}")
    crash, fatal, reschedule = rng.random(), rng.random(), rng.random()
    if crash < settings.crash:
        return Verdict("crash")
    if fatal < settings.fatal:
        return Verdict("fatal")
    if reschedule < settings.reschedule:
        return Verdict("reschedule")
    return Verdict(None)
