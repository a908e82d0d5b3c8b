"""Instances as they go on the wire: an ``Instance`` object primitive, newest version,
unless ``object_pinning`` is on: then the sender looks up which version the receiving
compute reported (the services table) and sends that one, so an old compute never has to
ask the conductor to backport (Nova's ``[upgrade_levels]``, the way it went on after the
seed's conductor-as-backporter)."""
from __future__ import annotations

from typing import Any

from ...config import LabConfig
from ...db import Database
from ...objects import Instance

__all__ = ["instance_primitive", "migration_context", "pinned_version"]


def migration_context(migration: dict[str, Any] | None) -> dict[str, Any] | None:
    if migration is None:
        return None
    return {"migration_id": migration["id"], "source_compute": migration["source_compute"],
            "dest_compute": migration["dest_compute"], "old_flavor": migration["old_flavor"],
            "new_flavor": migration["new_flavor"]}


def pinned_version(db: Database, host: str) -> str | None:
    """The Instance version compute ``host`` last reported, if any."""
    for service in db.services():
        if service["binary"] == "compute" and service["host"] == host:
            return service["object_version"]
    return None


def instance_primitive(db: Database, config: LabConfig, row: dict[str, Any], host: str,
                       migration: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = Instance.from_db(row, migration_context(migration))
    target = pinned_version(db, host) if config.object_pinning else None
    return obj.obj_to_primitive(target)
