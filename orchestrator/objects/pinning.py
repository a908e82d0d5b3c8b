"""Instances as senders put them on the wire (conductor, and the API and scheduler in the
legacy flow): an ``Instance`` object primitive, newest version, unless ``object_pinning``
is on: then the sender looks up which version each receiving compute reported (the
services table) and sends the oldest of them, so no old compute has to ask the conductor
to backport (Nova's ``[upgrade_levels]`` "auto", the way it went on after the seed's
conductor-as-backporter). A resize's copy travels on from compute to compute, so it is
pinned for both ends."""
from __future__ import annotations

from typing import Any

from ..config import LabConfig
from ..db import Database
from .base import parse_version
from .instance import Instance

__all__ = ["instance_primitive", "migration_context", "pinned_version", "usable_version"]


def migration_context(migration: dict[str, Any] | None) -> dict[str, Any] | None:
    if migration is None:
        return None
    return {"migration_id": migration["id"], "source_compute": migration["source_compute"],
            "dest_compute": migration["dest_compute"], "old_flavor": migration["old_flavor"],
            "new_flavor": migration["new_flavor"]}


def usable_version(version: object) -> bool:
    """Whether ``version`` is an Instance version we can send (same major, not newer)."""
    try:
        major, minor = parse_version(version)
    except ValueError:
        return False
    newest = parse_version(Instance.VERSION)
    return major == newest[0] and minor <= newest[1]


def pinned_version(db: Database, host: str) -> str | None:
    """The Instance version compute ``host`` last reported, if any (and usable: anything
    else is ignored, and the newest is sent; the compute can still ask for a backport)."""
    for service in db.services():
        if service["binary"] == "compute" and service["host"] == host:
            version = service["object_version"]
            return version if usable_version(version) else None
    return None


def instance_primitive(db: Database, config: LabConfig, row: dict[str, Any],
                       hosts: list[str | None],
                       migration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The instance for ``hosts`` (every compute that will read this copy)."""
    obj = Instance.from_db(row, migration_context(migration))
    target = None
    if config.object_pinning:
        versions = [v for h in hosts if h and (v := pinned_version(db, h))]
        target = min(versions, key=parse_version, default=None)
    return obj.obj_to_primitive(target)
