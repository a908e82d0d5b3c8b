"""How a migration ends badly, written once for every service that runs migrations (the
conductor; the scheduler in the legacy flow):

- ``rollback``: nothing moved yet (no host, out of attempts): the instance stays where it
  was, with a fault, and the migration ends ``error``;
- ``fail``: a step after the destination was prepared failed: ERROR, and the end the
  instance is not on is told to free its claim;
- ``still_preparing``: whether a (late) reschedule may still go on.
"""
from __future__ import annotations

from typing import Any

from .compute.rpcapi import ComputeAPI
from .db import Database, NotFound
from .exception import MigrationError
from .manager import describe_error
from .messaging.protocol import RemoteError

__all__ = ["rollback", "fail", "still_preparing"]


def still_preparing(db: Database, inst: dict[str, Any], migration_id: int) -> bool:
    """A reschedule may go on only while nothing ended the migration meanwhile."""
    try:
        status = db.migration(migration_id)["status"]
    except NotFound:
        return False
    return status == "pre-migrating" and inst["task_state"] == "resize_prep"


def rollback(db: Database, ctx: dict[str, Any], migration: dict[str, Any], event: str,
             exc: BaseException) -> None:
    """Nothing moved: the instance stays where it was (its host, its old flavor), with a
    fault saying why; the migration ends ``error``. One transaction."""
    name, text = describe_error(exc)
    code = 500 if isinstance(exc, RemoteError) else getattr(exc, "code", 500)
    uuid = migration["instance_uuid"]
    try:
        db.add_fault_and_update(uuid, code, f"{name}: {text}", None,
                                {"task_state": None, "host": migration["source_compute"],
                                 "flavor": migration["old_flavor"]},
                                migration=(migration["id"], "error"))
    except NotFound:
        db.update_migration(migration["id"], status="error")
        return
    db.add_event(uuid, ctx.get("request_id", ""), event, None, int(ctx.get("attempt") or 0),
                 "Error", f"{name}: {text}")


def fail(db: Database, ctx: dict[str, Any], migration: dict[str, Any], event: str,
         exc: BaseException, compute: ComputeAPI | None = None) -> None:
    """A step after the destination was prepared failed: the instance is half-moved, so
    it goes to ERROR (as in Nova) and the migration ends ``error``. The end it is not on
    is told to free its claim (``compute``); its own host frees it when it is deleted."""
    name, text = describe_error(exc)
    uuid = migration["instance_uuid"]
    db.update_migration(migration["id"], status="error")   # first: who sees ERROR sees it
    try:
        host = db.set_error(uuid, 500, f"{MigrationError.__name__}: {name}: {text}")["host"]
    except NotFound:
        host = None
    if compute is not None:
        for other in {migration["source_compute"], migration["dest_compute"]} - {host, None}:
            compute.terminate_instance({**ctx, "instance_uuid": uuid}, other, uuid,
                                       destroy=False)
    db.add_event(uuid, ctx.get("request_id", ""), event, None, int(ctx.get("attempt") or 0),
                 "Error", f"{name}: {text}")
