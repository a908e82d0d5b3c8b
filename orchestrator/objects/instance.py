"""The ``Instance`` object: one server, as it travels between services.

Its version history is the lesson (each minor version only adds fields):

- **1.0**: uuid, name, image_ref, flavor (the flavor's name), vcpus, memory_mb, root_gb,
  host, vm_state, task_state
- **1.1**: adds availability_zone and launched_at
- **1.2**: adds migration_context; during a resize or migration it is
  ``{"migration_id": int, "source_compute": str, "dest_compute": str,
  "old_flavor": str, "new_flavor": str}``, otherwise None

A compute that knows only 1.0 refuses an ``Instance`` 1.2; the conductor backports it to
1.0, which drops migration_context, availability_zone and launched_at and keeps the rest.
"""
from __future__ import annotations

from typing import Any

from orchestrator.config import FLAVORS
from orchestrator.objects.base import Field, ObjectFieldError, VersionedObject

__all__ = ["Instance"]

_STR, _OPT_STR = (str,), (str, type(None))


class Instance(VersionedObject):
    OBJ_NAME = "Instance"
    VERSION = "1.2"
    VERSION_HISTORY = {
        "1.0": "initial: uuid, name, image_ref, flavor, vcpus, memory_mb, root_gb, host,"
               " vm_state, task_state",
        "1.1": "added availability_zone, launched_at",
        "1.2": "added migration_context",
    }
    FIELDS = (
        Field("uuid", "1.0", _STR, "the instance's id"),
        Field("name", "1.0", _STR, "display name"),
        Field("image_ref", "1.0", _STR, "the image it boots from"),
        Field("flavor", "1.0", _STR, "the flavor's name, e.g. m1.small"),
        Field("vcpus", "1.0", (int,), "from the flavor"),
        Field("memory_mb", "1.0", (int,), "from the flavor"),
        Field("root_gb", "1.0", (int,), "from the flavor"),
        Field("host", "1.0", _OPT_STR, "the compute it runs on; None until scheduled"),
        Field("vm_state", "1.0", _STR, "building, active, error, ..."),
        Field("task_state", "1.0", _OPT_STR, "scheduling, spawning, ...; None when idle"),
        Field("availability_zone", "1.1", _OPT_STR, "the zone asked for, if any"),
        Field("launched_at", "1.1", (float, type(None)), "unix time it became active"),
        Field("migration_context", "1.2", (dict, type(None)),
              "source/dest computes and flavors of a resize or migration in progress"),
    )

    @classmethod
    def from_db(cls, row: dict[str, Any],
                migration_context: dict[str, Any] | None = None) -> Instance:
        """Build from a row of the ``instances`` table; sizes come from the flavor."""
        try:
            sizes = FLAVORS[row["flavor"]]
        except KeyError:
            raise ObjectFieldError(f"unknown flavor {row['flavor']!r}; known:"
                                   f" {', '.join(FLAVORS)}") from None
        return cls(uuid=row["uuid"], name=row["name"], image_ref=row["image"],
                   flavor=row["flavor"], vcpus=sizes["vcpus"],
                   memory_mb=sizes["memory_mb"], root_gb=sizes["root_gb"],
                   host=row.get("host"), vm_state=row["vm_state"],
                   task_state=row.get("task_state"),
                   availability_zone=row.get("availability_zone"),
                   launched_at=row.get("launched_at"), migration_context=migration_context)

    def summary(self) -> str:
        """One line for a lesson: ``Instance 1.2 vm1 on compute1 (active)``."""
        v = self._values
        state = v.get("vm_state", "?")
        if v.get("task_state"):
            state += f"/{v['task_state']}"
        line = (f"{self.OBJ_NAME} {self.obj_version} {v.get('name', '?')}"
                f" on {v.get('host') or 'no host'} ({state})")
        context = v.get("migration_context")
        if context:
            line += (f", migrating {context.get('source_compute')} ->"
                     f" {context.get('dest_compute')}")
        return line
