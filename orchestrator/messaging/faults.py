"""Network faults, applied inside the bus: the lab's way to make messages get lost, late,
doubled, stuck, or cut off between groups of services, while everything runs.

A *rule* matches messages by sender, receiver and method (shell patterns; a pattern also
matches a bare topic, so ``compute`` covers ``compute.compute1``) and says what happens:
``drop`` probability, ``delay`` seconds, ``duplicate`` probability, ``hold`` (keep them at
the bus until the rule is lifted). A *partition* is a list of groups; a message between
two different groups is dropped. ``hop_delay`` is added to every delivery.

Decisions are drawn from a generator seeded by (seed, src, dst, method, n), where n counts
messages on that link and method, so the same traffic meets the same fate in every run,
whatever the interleaving between different links.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

__all__ = ["Rule", "Decision", "FaultTable", "FaultError"]


class FaultError(ValueError):
    """A fault specification that makes no sense."""


@dataclass(frozen=True)
class Rule:
    src: str = "*"
    dst: str = "*"
    method: str = "*"
    drop: float = 0.0
    delay: float = 0.0
    duplicate: float = 0.0
    hold: bool = False

    def __post_init__(self) -> None:
        for name in ("src", "dst", "method"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise FaultError(f"rule {name} must be a non-empty pattern")
        for name in ("drop", "duplicate"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise FaultError(f"rule {name} must be a probability in [0, 1], not {p!r}")
        if isinstance(self.delay, bool) or not isinstance(self.delay, (int, float)) \
                or not 0 <= self.delay <= 3600:
            raise FaultError(f"rule delay must be seconds in [0, 3600], not {self.delay!r}")
        if not isinstance(self.hold, bool):
            raise FaultError("rule hold must be true or false")

    def matches(self, src: str, dst: str, method: str) -> bool:
        return _match(src, self.src) and _match(dst, self.dst) and \
            fnmatchcase(method, self.method)


@dataclass
class Decision:
    """What the bus does with one message on one link."""

    drop: str = ""          # the reason, when dropped
    delay: float = 0.0
    duplicate: bool = False
    hold: bool = False


def _match(name: str, pattern: str) -> bool:
    return fnmatchcase(name, pattern) or fnmatchcase(name.partition(".")[0], pattern)


@dataclass
class FaultTable:
    seed: int = 0
    hop_delay: float = 0.0
    rules: list[Rule] = field(default_factory=list)
    partitions: list[list[str]] = field(default_factory=list)
    _counts: dict[tuple[str, str, str], int] = field(default_factory=dict, repr=False)

    def configure(self, spec: dict[str, Any]) -> None:
        """Replace the parts named in ``spec`` (``rules``, ``partitions``, ``hop_delay``).
        Validates everything first, so a bad spec changes nothing."""
        if not isinstance(spec, dict):
            raise FaultError("fault spec must be a map")
        unknown = set(spec) - {"rules", "partitions", "hop_delay"}
        if unknown:
            raise FaultError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        rules, partitions, hop = self.rules, self.partitions, self.hop_delay
        if "rules" in spec:
            try:
                rules = [Rule(**r) for r in spec["rules"]]
            except TypeError as exc:
                raise FaultError(f"bad rule: {exc}") from None
        if "partitions" in spec:
            partitions = spec["partitions"]
            if not isinstance(partitions, list) or not all(
                    isinstance(g, list) and g and all(isinstance(p, str) and p for p in g)
                    for g in partitions):
                raise FaultError("partitions must be a list of non-empty lists of patterns")
            partitions = [list(group) for group in partitions]
        if "hop_delay" in spec:
            hop = spec["hop_delay"]
            if isinstance(hop, bool) or not isinstance(hop, (int, float)) or not 0 <= hop <= 60:
                raise FaultError(f"hop_delay must be seconds in [0, 60], not {hop!r}")
        self.rules, self.partitions, self.hop_delay = rules, partitions, float(hop)

    def describe(self) -> dict[str, Any]:
        return {"rules": [asdict(r) for r in self.rules], "partitions": self.partitions,
                "hop_delay": self.hop_delay}

    def active(self) -> bool:
        return bool(self.rules or self.partitions or self.hop_delay)

    def held(self, src: str, dst: str, method: str) -> bool:
        return any(r.hold and r.matches(src, dst, method) for r in self.rules)

    def decide(self, src: str, dst: str, method: str) -> Decision:
        """The fate of the next message from ``src`` to ``dst`` calling ``method``."""
        decision = Decision(delay=self.hop_delay)
        if self.partitioned(src, dst):
            decision.drop = "partition"
            return decision
        rules = [r for r in self.rules if r.matches(src, dst, method)]
        if not rules:
            return decision
        key = (src, dst, method)
        n = self._counts.get(key, 0)
        self._counts[key] = n + 1
        rng = random.Random(f"{self.seed}|{src}|{dst}|{method}|{n}")
        for rule in rules:
            if rule.hold:
                decision.hold = True
            if rule.drop and rng.random() < rule.drop:
                decision.drop = "fault"
            if rule.duplicate and rng.random() < rule.duplicate:
                decision.duplicate = True
            decision.delay += rule.delay
        return decision

    def partitioned(self, src: str, dst: str) -> bool:
        def group(name: str) -> int | None:
            for i, patterns in enumerate(self.partitions):
                if any(_match(name, p) for p in patterns):
                    return i
            return None
        if not self.partitions:
            return False
        a, b = group(src), group(dst)
        return a is not None and b is not None and a != b
