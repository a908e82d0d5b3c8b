"""Helpers for lesson 05, *When things break*: wait until a killed service is gone (its
process and the bus agree) or a compute has a given state in the API, boot and keep the
HTTP status, read one instance's messages as phases, and say how every instance ended:
its status and the fault that explains it.

Everything waits for a state or an event, never for a fixed time."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from lab.lab import Lab
    from lab.trace import Trace

__all__ = ["wait_until", "bus_sees", "wait_gone", "wait_event", "compute_state",
           "wait_compute_state", "boot_status", "fault_type", "phases", "outcomes",
           "outcome_table", "unexplained"]

Record = dict[str, Any]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str = "condition",
               every: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:g}s")
        time.sleep(every)


def bus_sees(lab: Lab, service: str) -> bool:
    """Whether the bus counts ``service`` (``scheduler``, ``compute2``) as a live peer."""
    identity = lab.child_name(service)
    return any(p["identity"] == identity and p["alive"] for p in lab.bus().control("peers"))


def wait_gone(lab: Lab, service: str, timeout: float = 10.0) -> None:
    """Wait until ``service``'s process is down *and* the bus has stopped routing to it,
    so what is sent next waits in the bus's queue instead of going to a dead socket."""
    wait_until(lambda: lab.service_state(service) == "down" and not bus_sees(lab, service),
               timeout, f"{service} gone")


def wait_event(lab: Lab, since: int, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
    """The first trace event after the mark ``since`` whose fields have the values given
    (``instance_uuid=..., phase="queued"``); TimeoutError if none comes in ``timeout``."""
    return lab.tap.wait_for(lambda e: all(e.get(k) == v for k, v in fields.items()),
                            timeout=timeout, since=since)


def compute_state(lab: Lab, host: str) -> str:
    """``up`` or ``down`` as the API tells it (``GET /os-services``): whether the host's
    heartbeats landed within ``service_down_time``."""
    for service in lab.services():
        if service["binary"] == "nova-compute" and service["host"] == host:
            return service["state"]
    return "unknown"


def wait_compute_state(lab: Lab, host: str, state: str, timeout: float) -> None:
    wait_until(lambda: compute_state(lab, host) == state, timeout, f"{host} {state}")


def boot_status(lab: Lab, name: str, flavor: str = "m1.small") -> tuple[int, str]:
    """``POST /servers`` as ``lab.boot`` does, keeping the HTTP status: (202, id)."""
    resp = lab.api.post("/servers", {"server": {"name": name, "flavorRef": flavor,
                                                "imageRef": "cirros"}})
    return resp.status, resp.body["server"]["id"]


def fault_type(record: Record) -> str:
    """The exception named by an instance's fault (``MessagingTimeout``), "" if none.
    Fault messages read ``Type: text``."""
    message = (record.get("fault") or {}).get("message", "")
    if not message:
        return ""
    head, sep, _ = message.partition(":")
    return head.strip() if sep and head.strip().isidentifier() else "Exception"


def phases(trace: Trace, instance: str, method: str) -> list[str]:
    """What happened to one instance's ``method`` messages, in order (``queued``,
    ``routed``, ``dropped``, ``expired``); ``delayed`` is pacing, left out."""
    return [e["phase"] for e in trace.where(instance=instance, method=method)
            if e["phase"] != "delayed"]


def outcomes(records: Iterable[Record]) -> list[tuple[str, str, str]]:
    """(name, status, fault type) per instance, in the order given."""
    return [(r["name"], r["status"], fault_type(r)) for r in records]


def outcome_table(rows: Iterable[tuple[str, str, str]]) -> str:
    """The outcomes as aligned text, one instance a line."""
    rows = list(rows)
    width = max([len(name) for name, _, _ in rows] + [8])
    lines = [f"{'instance':{width}}  {'status':6}  fault"]
    lines += [f"{name:{width}}  {status:6}  {fault or '-'}" for name, status, fault in rows]
    return "\n".join(lines)


def unexplained(records: Iterable[Record]) -> list[str]:
    """Names of instances that did not end well-explained: not ACTIVE, and not ERROR
    with a fault."""
    return [r["name"] for r in records
            if not (r["status"] == "ACTIVE" or (r["status"] == "ERROR" and r.get("fault")))]
