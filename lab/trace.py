"""Reading the bus's trace: the events of a lab as a list you can filter, and the story of
one instance's build told from them. (The events' schema is in
``orchestrator.messaging.protocol``.)"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable

from orchestrator.conductor.rpcapi import DB_PROXY_METHODS

__all__ = ["Trace", "short"]

Event = dict[str, Any]


def short(name: str) -> str:
    """``conductor.conductor1`` -> ``conductor``; ``compute.compute2`` -> ``compute2``."""
    topic, _, server = name.partition(".")
    return server if topic == "compute" and server else topic


class Trace:
    def __init__(self, events: Iterable[Event]):
        self.events = list(events)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self):
        return iter(self.events)

    def filter(self, predicate: Callable[[Event], bool]) -> Trace:
        return Trace(e for e in self.events if predicate(e))

    def routed(self) -> Trace:
        return self.filter(lambda e: e["phase"] == "routed")

    def without_db_proxy(self) -> Trace:
        return self.filter(lambda e: e["method"] not in DB_PROXY_METHODS)

    def for_instance(self, instance_uuid: str, request_id: str = "") -> Trace:
        """Messages about one instance: tagged with it, or (a batch request's messages,
        tagged with no instance) with its request id."""
        return self.filter(lambda e: e["instance_uuid"] == instance_uuid or (
            request_id and not e["instance_uuid"] and e["request_id"] == request_id))

    def counts(self) -> Counter[tuple[str, str]]:
        """Delivered messages by (kind, method)."""
        return Counter((e["kind"], e["method"]) for e in self.routed())

    def story(self, instance_uuid: str, request_id: str = "",
              include_db_proxy: bool = False) -> list[str]:
        """The instance's build as lines: time, attempt, who sent what to whom."""
        events = self.for_instance(instance_uuid, request_id)
        events = events if include_db_proxy else events.without_db_proxy()
        events = events.filter(lambda e: e["phase"] != "delayed")  # pacing, not a fate
        lines, start = [], None
        for e in events:
            start = e["ts"] if start is None else start
            what = e["phase"] if e["phase"] != "routed" else ""
            lines.append(f"+{e['ts'] - start:7.3f}s  attempt {e['attempt']}  "
                         f"{short(e['src']):>10} -> {short(e['dst']):<10} "
                         f"{e['kind']:5} {e['method']}{'  [' + what + ']' if what else ''}")
        return lines

    def table(self) -> str:
        """Delivered messages by kind and method, as plain text."""
        rows = sorted(self.counts().items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))
        width = max([len(m) for (_, m), _ in rows] + [6])
        out = [f"{'kind':6}  {'method':{width}}  count"]
        out += [f"{k:6}  {m:{width}}  {n:5}" for (k, m), n in rows]
        return "\n".join(out)
