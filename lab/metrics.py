"""The lab's two headline metrics, defined once: *reschedules* and *messages per build*.

``lab.trace.Trace.summary`` (a whole trace at once) and the dashboard's model
(``lab.dashboard.model``, one batch of events at a time, as the bus sends them) both count
with what is here, so a student who compares a notebook's summary with the dashboard
reads the same numbers.

- ``is_reschedule(event)``: a compute handing its failed work back (RESCHEDULE_METHODS);
- ``BuildMessages``: the routed workflow and database-proxy messages of the requests that
  built something, per instance built, counted one event at a time (a request's earlier
  messages count once its ``build_and_run_instance`` is seen).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from orchestrator.conductor.rpcapi import DB_PROXY_METHODS

from .lanes import topic_of

__all__ = ["WORKFLOW_METHODS", "RESCHEDULE_METHODS", "is_reschedule", "BuildMessages"]

Event = dict[str, Any]

WORKFLOW_METHODS = frozenset({"build_instances", "select_destinations",
                              "build_and_run_instance", "run_instance",
                              # resize / migrate, rebuild / evacuate (issue #7)
                              "migrate_server", "prep_resize", "resize_instance",
                              "finish_resize", "confirm_resize", "revert_resize",
                              "finish_revert_resize", "rebuild_instance"})
# A compute handing its failed work back: a build (``build_instances`` to the conductor,
# ``run_instance`` to the scheduler in the legacy flow: casts) or a resize's destination
# (``migrate_server``, a call, as in Nova; ``prep_resize`` to the scheduler, legacy).
RESCHEDULE_METHODS = frozenset({"build_instances", "run_instance", "migrate_server",
                                "prep_resize"})
BUILD = "build_and_run_instance"
_COUNTED = WORKFLOW_METHODS | DB_PROXY_METHODS


def is_reschedule(e: Event) -> bool:
    """Whether this event is the reschedule loop's hand-back: a compute sending a
    ``RESCHEDULE_METHODS`` cast or call (never its reply)."""
    return (e["method"] in RESCHEDULE_METHODS and e["kind"] in ("cast", "call")
            and topic_of(e["src"]) == "compute")


class BuildMessages:
    """"Messages per build": of the *build requests* (request ids that got a routed
    ``build_and_run_instance``), the routed messages whose method is a workflow method
    (WORKFLOW_METHODS) or a database-proxy one, replies included, divided by the distinct
    instances built. Periodic reports, a compute's start-up and the lab's traffic carry
    their own request ids, so they are never counted; neither are moves (no build)."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self.instances: set[str] = set()         # instance uuids built
        self.messages = 0                        # counted messages of build requests
        self._requests: set[str] = set()         # build request ids
        self._before: Counter[str] = Counter()   # counted messages of other requests
        for e in events:
            self.add(e)

    def add(self, e: Event) -> None:
        """Count one trace event (only ``routed`` ones count)."""
        if e["phase"] != "routed":
            return
        method, rid = e["method"], e["request_id"]
        if method == BUILD:
            self.instances.add(e["instance_uuid"])
        if method in _COUNTED:
            if rid in self._requests:
                self.messages += 1
            else:
                self._before[rid] += 1
        if method == BUILD and rid not in self._requests:
            self._requests.add(rid)
            self.messages += self._before.pop(rid, 0)

    @property
    def builds(self) -> int:
        return len(self.instances)

    @property
    def per_build(self) -> float:
        """``messages / builds``; 0.0 before the first build."""
        return self.messages / self.builds if self.instances else 0.0
