"""Service names as the lab draws them: short names, topics, and the lane order every
view shares (api, conductor, scheduler, computes, then the rest). Used by the trace, its
exports and the dashboard; depends on nothing of theirs."""
from __future__ import annotations

import re
from typing import Any, Iterable

__all__ = ["LANE_TOPICS", "short", "topic_of", "lane_key", "lane_order"]

LANE_TOPICS = ("api", "conductor", "scheduler", "compute")


def short(name: str) -> str:
    """``conductor.conductor1`` -> ``conductor``; ``compute.compute2`` -> ``compute2``."""
    topic, _, server = name.partition(".")
    return server if topic == "compute" and server else topic


def topic_of(name: str) -> str:
    """``compute.compute2`` -> ``compute``; a bare topic is its own topic."""
    return name.partition(".")[0]


def lane_key(name: str) -> tuple[int, str, list[Any]]:
    """Sort key of a service: api, conductor, scheduler, computes, then the others;
    numbers inside a name sort as numbers (``compute2`` before ``compute10``)."""
    topic = topic_of(name)
    rank = LANE_TOPICS.index(topic) if topic in LANE_TOPICS else len(LANE_TOPICS)
    parts = [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]
    return rank, topic if rank == len(LANE_TOPICS) else "", parts


def lane_order(names: Iterable[str]) -> list[str]:
    """Distinct service identities in lane order."""
    return sorted(set(names), key=lane_key)
