"""Helpers for lesson 03, *The reschedule loop* (``notebooks/03-reschedule-loop.ipynb``).

They read what the API says about a batch of instances and what the trace says about
the messages, so that a cell can set one beside the other: the numbers the seed's new
process implies for the attempts that were made, and the numbers the bus counted.

- ``fault_type(record)``: ``"MaxRetriesExceeded"`` for an instance that ran out of
  attempts (the text before the first colon of its fault message), ``""`` without one;
- ``outcome_table(records)``: name, status, host, attempts and fault type, as text;
- ``hosts_tried(trace, uuid)``: the computes its ``build_and_run_instance`` casts went to;
- ``loop_counts(trace)``: the reschedule loop's messages, by role;
- ``expected_counts(records, ...)``: the same numbers, worked out from the records alone;
- ``failed_builds(hypervisors)``: what ``BuildFailureWeigher`` reads, per host;
- ``last_error(actions)``: which service's event recorded an instance's fatal error.

All of them are pure: records are the API's server dicts, a trace is a ``lab.trace.Trace``.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..trace import Trace, short

__all__ = ["LOOP_MESSAGES", "fault_type", "outcome_table", "hosts_tried", "loop_counts",
           "expected_counts", "failed_builds", "last_error"]

Record = Mapping[str, Any]

# The reschedule loop's messages, by role, in the order the seed tells them.
LOOP_MESSAGES = ("api_build_instances",     # API -> conductor cast (the request)
                 "select_destinations",     # conductor -> scheduler call (pick a host)
                 "build_and_run_instance",  # -> compute cast (one per attempt)
                 "reschedule_casts")        # compute -> conductor build_instances cast

ATTEMPTS = "OS-EXT-LAB:num_attempts"
HOST = "OS-EXT-SRV-ATTR:host"


def fault_type(record: Record) -> str:
    """The fault's exception name (``MaxRetriesExceeded``, ``NoValidHost``...), or ``""``."""
    message = (record.get("fault") or {}).get("message", "")
    return message.split(":", 1)[0].strip() if message else ""


def outcome_table(records: Iterable[Record]) -> str:
    """One line per instance: name, status, host, attempts, fault type (plain text)."""
    header = ("name", "status", "host", "attempts", "fault")
    rows = [(r["name"], r["status"], r.get(HOST) or "-", str(r[ATTEMPTS]),
             fault_type(r) or "-") for r in records]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in [header, *rows])


def hosts_tried(trace: Trace, instance_uuid: str) -> list[str]:
    """The computes the instance's builds were cast to, attempt after attempt."""
    casts = trace.where(kind="cast", method="build_and_run_instance", phase="routed",
                        instance=instance_uuid)
    return [short(e["dst"]) for e in casts]


def loop_counts(trace: Trace) -> dict[str, int]:
    """Delivered messages of the reschedule loop, by role (keys: ``LOOP_MESSAGES``).

    ``reschedule_casts`` are ``build_instances`` casts sent by a compute: the message the
    seed says a failed build sends back, "the same RPC message that was sent by the API"."""
    routed = trace.routed()
    casts = routed.where(kind="cast")
    return {
        "api_build_instances": len(casts.where(method="build_instances", src="api")),
        "select_destinations": len(routed.where(kind="call", method="select_destinations")),
        "build_and_run_instance": len(casts.where(method="build_and_run_instance")),
        "reschedule_casts": len(casts.where(method="build_instances", src="compute")),
    }


def expected_counts(records: Iterable[Record], requests: int = 1,
                    alternates: bool = False) -> dict[str, int]:
    """What ``loop_counts`` must be for these instances, booted in ``requests`` API
    requests, if the seed's new process is what ran. Every build attempt is one
    ``build_and_run_instance`` cast; every failed attempt casts ``build_instances`` back
    (an ACTIVE instance failed all but its last attempt, a MaxRetriesExceeded one failed
    them all); the conductor asks the scheduler once per request and, without alternates,
    once more per reschedule within ``max_attempts``.

    Only reschedulable failures are covered: an instance in ERROR for another reason
    (a fatal build, NoValidHost) raises ``ValueError``."""
    attempts = failed = reschedules = 0
    for r in records:
        kind = fault_type(r)
        if r["status"] == "ACTIVE":
            failed += r[ATTEMPTS] - 1
        elif r["status"] == "ERROR" and kind == "MaxRetriesExceeded":
            failed += r[ATTEMPTS]
        else:
            raise ValueError(f"{r['name']}: {r['status']} {kind or ''} is not the end of a "
                             "reschedule loop (ACTIVE, or ERROR with MaxRetriesExceeded)")
        attempts += r[ATTEMPTS]
        reschedules += r[ATTEMPTS] - 1
    return {"api_build_instances": requests,
            "select_destinations": requests + (0 if alternates else reschedules),
            "build_and_run_instance": attempts,
            "reschedule_casts": failed}


def failed_builds(hypervisors: Iterable[Record]) -> dict[str, int]:
    """Recent failed builds per host, as the computes reported them (the count goes back
    to 0 when a host builds successfully): ``BuildFailureWeigher``'s input."""
    return {h["hypervisor_hostname"]: h["OS-EXT-LAB:failed_builds"] for h in hypervisors}


def last_error(actions: Iterable[Record]) -> tuple[str, int, str]:
    """The last failed event of an instance's actions (``lab.actions(id)``) as (event,
    attempt, exception name): ``("conductor_schedule_and_build_instances", 3,
    "MaxRetriesExceeded")`` says the conductor gave up on its third pass. ``("", 0, "")``
    when no event failed."""
    failed = [e for a in actions for e in a["events"] if e["result"] == "Error"]
    if not failed:
        return "", 0, ""
    last = max(failed, key=lambda e: e["start_time"])
    return last["event"], last["attempt"], last["details"].split(":", 1)[0].strip()
