"""Helpers for lesson 08, *Resize, evacuate, upgrade*
(``notebooks/08-resize-evacuate-upgrade.ipynb``): the seed's other workflows that
involve the scheduler, and the conductor as object backporter.

Reading the trace (pure, on a ``lab.trace.Trace``):

- ``resize_path(trace, uuid)``: one instance's workflow messages as (src, dst, kind,
  method), without the database proxy and the lab's own traffic; ``path_table`` as text;
- ``compute_to_compute(trace)``: the messages one compute sent to another (the hops that
  bypass the conductor); ``step_senders(trace, uuid)``: who sent each resize step, how;
- ``hosts_tried(trace, uuid)`` and ``hand_backs(trace, uuid)``: where ``prep_resize``
  went, and how each failing destination handed the move back (``migrate_server``: a call
  in the conductor flow, as in Nova);
- ``backports(trace)``: the ``object_backport_versions`` calls, by compute and instance.

Reading the API's records (pure): ``last_fault_type``, ``image_name``, ``migration_table``,
``instance_object`` (an ``Instance`` object built from a server record), ``fields`` and
``primitive_line`` (what a primitive carries).

Asking the lab (polling with a deadline, never sleeping a fixed time): ``wait_trace``
(the trace since a mark, once a given message has been delivered), ``wait_report``
(until a compute's resource report since a mark has landed), ``usage`` /
``wait_usage`` (vCPUs used per host), ``wait_down`` (until the API reports a compute
down), ``wait_migration`` (until a server's newest migration has a status), and
``steer`` (disable every compute but one, so the scheduler has one choice).
"""
from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from orchestrator import config
from orchestrator.config import FLAVORS
from orchestrator.objects import Instance

from ..trace import is_reschedule, short, topic_of
from .breaking import compute_state, wait_until

if TYPE_CHECKING:
    from lab.lab import Lab
    from lab.trace import Trace

__all__ = ["RESIZE_STEPS", "resize_path", "path_table", "compute_to_compute",
           "step_senders", "hosts_tried", "hand_backs", "backports", "last_fault_type",
           "image_name", "migration_table", "instance_object", "fields", "primitive_line",
           "wait_trace", "wait_report", "usage", "wait_usage", "compute_state", "wait_down",
           "wait_migration", "steer"]

Record = Mapping[str, Any]
Hop = tuple[str, str, str, str]

# The three steps of a resize or cold migration, in order: claim on the destination,
# "copy the disk" from the source, start it on the destination.
RESIZE_STEPS = ("prep_resize", "resize_instance", "finish_resize")
HOST = "OS-EXT-SRV-ATTR:host"
LAST_FAULT = "OS-EXT-LAB:last_fault"
_FLAVOR_BY_ID = {spec["id"]: name for name, spec in FLAVORS.items()}


# -- the trace ---------------------------------------------------------------------------------
def _workflow(trace: Trace, instance_uuid: str) -> Trace:
    """The instance's delivered messages of the requests made in this trace: a request
    (one ``request_id``) belongs to it if its first message here came from the API. The
    last words of an earlier request (a compute's messages after the save the API already
    showed, landing after the mark) are not this trace's."""
    routed = trace.routed().without_lab()
    first: dict[str, str] = {}
    for e in routed:
        first.setdefault(e["request_id"], topic_of(e["src"]))
    made_here = {rid for rid, sender in first.items() if sender == "api"}
    return routed.where(instance=instance_uuid, request_id=made_here).without_db_proxy()


def resize_path(trace: Trace, instance_uuid: str) -> list[Hop]:
    """The instance's delivered messages, in order, as (sender, receiver, kind, method)
    with short names (``conductor``, ``compute2``), of the requests made in this trace;
    the database-proxy calls (saves, resource reports, events) and the lab's own messages
    are left out, replies kept."""
    return [(short(e["src"]), short(e["dst"]), e["kind"], e["method"])
            for e in _workflow(trace, instance_uuid)]


def path_table(path: Iterable[Hop]) -> str:
    """A path as aligned lines: ``api -> conductor  cast  migrate_server``."""
    path = list(path)
    if not path:
        return "(no messages)"
    src_w = max(len(src) for src, _, _, _ in path)
    dst_w = max(len(dst) for _, dst, _, _ in path)
    return "\n".join(f"{src:>{src_w}} -> {dst:<{dst_w}}  {kind:5}  {method}".rstrip()
                     for src, dst, kind, method in path)


def compute_to_compute(trace: Trace) -> int:
    """How many delivered messages went from one compute straight to another: the
    hops the conductor does not see (replies included, if a compute ever called another)."""
    return len(trace.routed().filter(
        lambda e: topic_of(e["src"]) == "compute" and topic_of(e["dst"]) == "compute"))


def step_senders(trace: Trace, instance_uuid: str,
                 steps: Iterable[str] = RESIZE_STEPS) -> dict[str, list[str]]:
    """For each resize step, who sent it and how, in order: ``{"prep_resize":
    ["conductor cast"], "resize_instance": ["compute2 cast"], ...}`` (a step sent twice,
    after a reschedule, lists both). Replies are left out; a step never sent is ``[]``."""
    steps = tuple(steps)
    out: dict[str, list[str]] = {step: [] for step in steps}
    for e in _workflow(trace, instance_uuid).where(method=steps):
        if e["kind"] != "reply":
            out[e["method"]].append(f"{short(e['src'])} {e['kind']}")
    return out


def hosts_tried(trace: Trace, instance_uuid: str) -> list[str]:
    """The destinations ``prep_resize`` was sent to, attempt after attempt."""
    return [short(e["dst"]) for e in _workflow(trace, instance_uuid).where(method="prep_resize")
            if e["kind"] != "reply"]


def hand_backs(trace: Trace, instance_uuid: str) -> list[tuple[str, str, int]]:
    """How each destination whose ``prep_resize`` failed handed the move back, as
    (compute, kind, attempt it asks for): a ``migrate_server`` call to the conductor (the
    conductor flow, as Nova's compute does), a ``prep_resize`` cast to the scheduler (the
    legacy flow)."""
    return [(short(e["src"]), e["kind"], e["attempt"])
            for e in _workflow(trace, instance_uuid).filter(is_reschedule)]


def backports(trace: Trace) -> list[tuple[str, str]]:
    """The conductor's work as object backporter: one (compute, instance uuid) per
    ``object_backport_versions`` call a compute made (it got an object newer than it
    understands), in order."""
    calls = trace.routed().where(method="object_backport_versions", kind="call",
                                 src="compute")
    return [(short(e["src"]), e["instance_uuid"]) for e in calls]


# -- the API's records -------------------------------------------------------------------------
def image_name(record: Record) -> str:
    """The name of the server's image (the API shows its id, as Glance's)."""
    ident = (record.get("image") or {}).get("id", "")
    return config.image_name(ident) or ident


def last_fault_type(record: Record) -> str:
    """The exception named by the server's last fault, ``""`` if none: also for an
    instance that is ACTIVE again (a migration rolled back keeps the reason here)."""
    message = (record.get(LAST_FAULT) or {}).get("message", "")
    head, sep, _ = message.partition(":")
    return head.strip() if sep else ""


def _flavor_name(flavor_id: Any) -> str:
    return _FLAVOR_BY_ID.get(flavor_id, str(flavor_id))


def migration_table(migrations: Iterable[Record]) -> str:
    """Migration records (``lab.migrations()``, newest first) as text, oldest first: id,
    type, status, source, destination and the flavor change."""
    rows = []
    for m in sorted(migrations, key=lambda m: m["id"]):
        old, new = (_flavor_name(m["old_instance_type_id"]),
                    _flavor_name(m["new_instance_type_id"]))
        rows.append((str(m["id"]), m["migration_type"], m["status"],
                     m["source_compute"] or "-", m["dest_compute"] or "-",
                     old if old == new else f"{old} -> {new}"))
    header = ("id", "type", "status", "source", "dest", "flavor")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [header, *rows])


def _iso_to_unix(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC).timestamp()


def instance_object(record: Record) -> Instance:
    """The ``Instance`` object (newest version) for a server as the API shows it
    (``lab.server(id)``): what the conductor sends a compute about it."""
    flavor = record["flavor"]
    return Instance(uuid=record["id"], name=record["name"], image_ref=record["image"]["id"],
                    flavor=flavor["original_name"], vcpus=flavor["vcpus"],
                    memory_mb=flavor["ram"], root_gb=flavor["disk"],
                    host=record.get(HOST), vm_state=record["OS-EXT-STS:vm_state"],
                    task_state=record.get("OS-EXT-STS:task_state"),
                    availability_zone=record.get("OS-EXT-AZ:availability_zone"),
                    launched_at=_iso_to_unix(record.get("OS-SRV-USG:launched_at")),
                    migration_context=None)


def fields(primitive: Record) -> list[str]:
    """The fields a primitive carries, in the object's declaration order."""
    data = primitive["nova_object.data"]
    order = [f.name for f in Instance.FIELDS]
    return sorted(data, key=lambda name: (order.index(name) if name in order else len(order),
                                          name))


def primitive_line(primitive: Record) -> str:
    """``Instance 1.0 (10 fields): uuid name ...``: one primitive, at a glance."""
    names = fields(primitive)
    return (f"{primitive['nova_object.name']} {primitive['nova_object.version']}"
            f" ({len(names)} fields): {' '.join(names)}")


# -- asking the lab ----------------------------------------------------------------------------
def wait_trace(lab: Lab, since: int, timeout: float = 10.0, **fields: Any) -> Trace:
    """``lab.trace(since=since)`` once a message with these fields (``method=...,
    kind="reply"``) has been delivered after the mark: a message sent after the server
    came to rest (the reply that ends a conductor's call) may still be on its way."""
    lab.tap.wait_for(lambda e: e["phase"] == "routed"
                     and all(e.get(k) == v for k, v in fields.items()),
                     timeout=timeout, since=since)
    return lab.trace(since=since)


def wait_report(lab: Lab, host: str, since: int, timeout: float = 30.0) -> None:
    """Wait until compute ``host`` has reported its resources after the mark ``since``
    (the conductor's reply to its ``compute_node_update`` was delivered, so the database
    has it): after a restart, ``usage`` shows what the compute holds now."""
    wait_trace(lab, since, timeout, method="compute_node_update", kind="reply",
               dst=f"compute.{host}")


def usage(lab: Lab) -> dict[str, int]:
    """vCPUs used per compute, as the computes last reported them (``GET
    /os-hypervisors/detail``). A host that is down keeps its last report."""
    return {h["hypervisor_hostname"]: h["vcpus_used"]
            for h in sorted(lab.hypervisors(), key=lambda h: h["hypervisor_hostname"])}


def wait_usage(lab: Lab, expected: Mapping[str, int], timeout: float = 10.0,
               every: float = 0.05) -> dict[str, int]:
    """``usage(lab)`` once it equals ``expected``; after ``timeout`` the last one read
    (a compute's report lands a moment after the API shows the server at rest), so an
    assert cell shows what differed instead of a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        seen = usage(lab)
        if seen == dict(expected) or time.monotonic() > deadline:
            return seen
        time.sleep(every)


def wait_down(lab: Lab, host: str, timeout: float) -> float:
    """Wait until the API reports compute ``host`` down (no heartbeat landed within
    ``service_down_time``); the seconds it took. TimeoutError after ``timeout``."""
    start = time.monotonic()
    wait_until(lambda: compute_state(lab, host) == "down", timeout, f"{host} down")
    return time.monotonic() - start


def wait_migration(lab: Lab, server_id: str, status: str, timeout: float = 10.0,
                   every: float = 0.05) -> dict[str, Any]:
    """The server's newest migration record once its status is ``status``."""
    found: dict[str, Any] = {}

    def reached() -> bool:
        records = lab.migrations(server_id)
        if records:
            found.update(max(records, key=lambda m: m["id"]))
        return found.get("status") == status

    wait_until(reached, timeout, f"migration of {server_id} {status}", every)
    return found


def steer(lab: Lab, *hosts: str) -> list[str]:
    """Disable every compute but ``hosts`` for scheduling (``PUT /os-services/disable``),
    so the scheduler has only those to choose from; no hosts enables them all again.
    Returns the computes now disabled."""
    disabled = []
    for name in lab.config.compute_names():
        action = "enable" if not hosts or name in hosts else "disable"
        lab.api.request("PUT", f"/os-services/{action}",
                        {"host": name, "binary": "nova-compute"})
        if action == "disable":
            disabled.append(name)
    return disabled
