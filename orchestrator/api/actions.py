"""``POST /servers/{id}/action``: migrate, resize, confirmResize, revertResize, rebuild,
evacuate. Each checks the body (400) and the instance's state (409) before writing
anything, records the action, sets the task state, and hands the work over:

- conductor flow: migrate/resize **cast** ``conductor.migrate_server``; rebuild and
  evacuate **cast** ``conductor.rebuild_instance``. The API answers at once.
- legacy flow (before the conductor ran them): migrate/resize **cast**
  ``scheduler.prep_resize``; rebuild **casts** ``rebuild_instance`` straight to the
  compute; evacuate needs the admin to name the host (as Nova's API did before 2.29)
  and is cast straight to it.

confirmResize / revertResize go from the API straight to a compute in both flows, as
they do in Nova.

The answers are Nova's: 202 with no body (migrate, resize, revertResize), 204
(confirmResize), 200 with no body (evacuate: no ``adminPass``, as Nova with ``[api]
enable_instance_password = False``), and a rebuild's 202 carries the server (the
handler's). Evacuate's body follows the request's microversion: ``onSharedStorage``
(required) only before 2.14, ``force`` from 2.29; a named host is checked by the
scheduler from 2.29 unless forced, and forced before (as Nova).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from ..db import NotFound, UnexpectedTaskState
from ..exception import Conflict
from ..manager import describe_error
from ..objects.pinning import instance_primitive
from .microversion import MIN_VERSION, Version
from .validation import (BadRequest, check_boolean, check_image, check_metadata, check_name,
                         check_text, flavor_by_ref, shown, unexpected)

if TYPE_CHECKING:
    from .manager import ApiManager

__all__ = ["ACTIONS", "run_action"]

ACTIONS = ("migrate", "resize", "confirmResize", "revertResize", "rebuild", "evacuate")


def run_action(api: ApiManager, uuid: str, body: Any, request_id: str,
               version: Version = MIN_VERSION) -> int:
    """Validate and start one action; returns the HTTP status to answer with."""
    if not isinstance(body, dict) or len(body) != 1 or next(iter(body)) not in ACTIONS:
        raise BadRequest(f"The body must be an object with exactly one action, one of: "
                         f"{', '.join(ACTIONS)}.")
    name, args = next(iter(body.items()))
    inst = api.db.instance(uuid)
    if name in ("evacuate", "rebuild"):
        return {"evacuate": _evacuate, "rebuild": _rebuild}[name](api, inst, args,
                                                                  request_id, version)
    return {"migrate": _migrate, "resize": _resize, "confirmResize": _confirm,
            "revertResize": _revert}[name](api, inst, args, request_id)


def _options(args: Any, action: str, allowed: set[str]) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise BadRequest(f"Invalid input for {action}: expected an object or null.")
    if set(args) - allowed:
        raise unexpected(set(args) - allowed)
    if "adminPass" in args and not isinstance(args["adminPass"], str):
        raise BadRequest(f"Invalid input for {action}: adminPass must be a string.")
    if "OS-DCF:diskConfig" in args and args["OS-DCF:diskConfig"] not in ("AUTO", "MANUAL"):
        raise BadRequest(f"Invalid input for {action}: OS-DCF:diskConfig must be AUTO or "
                         f"MANUAL.")
    return args


def _require(inst: dict[str, Any], action: str, vm_states: tuple[str, ...],
             task_state: Any = None) -> None:
    if inst["vm_state"] not in vm_states:
        raise Conflict(f"Cannot '{action}' instance {inst['uuid']} while it is in vm_state "
                       f"{inst['vm_state']}")
    if inst["task_state"] != task_state:
        raise Conflict(f"Cannot '{action}' instance {inst['uuid']} while it is in "
                       f"task_state {inst['task_state']}")
    if not inst["host"]:
        raise Conflict(f"Cannot '{action}' instance {inst['uuid']}: it is on no host")


def _migrate(api: ApiManager, inst: dict[str, Any], args: Any, rid: str) -> int:
    _options(args, "migrate", set())
    return _start_resize(api, inst, inst["flavor"], "migrate", rid)


def _resize(api: ApiManager, inst: dict[str, Any], args: Any, rid: str) -> int:
    args = _options(args, "resize", {"flavorRef", "OS-DCF:diskConfig"})
    if "flavorRef" not in args:
        raise BadRequest("Resize requires a flavor change: missing flavorRef.")
    found = flavor_by_ref(args["flavorRef"])
    if found is None:
        raise BadRequest(f"Flavor {shown(args['flavorRef'])} could not be found.")
    if found[0] == inst["flavor"]:
        raise BadRequest("When resizing, instances must change flavor!")
    return _start_resize(api, inst, found[0], "resize", rid)


def _start_resize(api: ApiManager, inst: dict[str, Any], flavor: str, action: str,
                  rid: str) -> int:
    _require(inst, action, ("active",))
    _host_must_be_up(api, inst, action)     # the source copies the disk: it must be up
    _set_task(api, inst, "resize_prep")
    api.db.start_action(inst["uuid"], action, rid)
    ctx = {"request_id": rid, "instance_uuid": inst["uuid"], "attempt": 1}
    with _handing_over(api, inst, action, rid, "resize_prep"):
        if api.config.flow == "legacy":
            api.scheduler.prep_resize(ctx, inst["uuid"], flavor)
        else:
            api.conductor.migrate_server(ctx, inst["uuid"], flavor)
    return 202


def _finished_migration(api: ApiManager, inst: dict[str, Any]) -> dict[str, Any]:
    found = api.db.migrations(instance_uuid=inst["uuid"], status=("finished",))
    if not found:
        raise NotFound(f"Instance {inst['uuid']} has no resize waiting to be confirmed.")
    return found[-1]


def _confirm(api: ApiManager, inst: dict[str, Any], args: Any, rid: str) -> int:
    _options(args, "confirmResize", set())
    _require(inst, "confirmResize", ("resized",))
    migration = _finished_migration(api, inst)
    _host_must_be_up(api, inst, "confirmResize", migration["source_compute"])
    _set_task(api, inst, "resize_confirming")
    api.db.update_migration(migration["id"], "finished", status="confirming")
    api.db.start_action(inst["uuid"], "confirmResize", rid)
    with _handing_over(api, inst, "confirmResize", rid, "resize_confirming",
                       (migration, "finished")):
        api.compute.confirm_resize({"request_id": rid, "instance_uuid": inst["uuid"]},
                                   migration["source_compute"], instance_uuid=inst["uuid"],
                                   migration_id=migration["id"])
    return 204


def _revert(api: ApiManager, inst: dict[str, Any], args: Any, rid: str) -> int:
    _options(args, "revertResize", set())
    _require(inst, "revertResize", ("resized",))
    migration = _finished_migration(api, inst)
    _host_must_be_up(api, inst, "revertResize", migration["source_compute"])
    _host_must_be_up(api, inst, "revertResize", migration["dest_compute"])
    _set_task(api, inst, "resize_reverting")
    api.db.update_migration(migration["id"], "finished", status="reverting")
    api.db.start_action(inst["uuid"], "revertResize", rid)
    with _handing_over(api, inst, "revertResize", rid, "resize_reverting",
                       (migration, "finished")):
        api.compute.revert_resize({"request_id": rid, "instance_uuid": inst["uuid"]},
                                  migration["dest_compute"], instance_uuid=inst["uuid"],
                                  migration_id=migration["id"])
    return 202


def _rebuild(api: ApiManager, inst: dict[str, Any], args: Any, rid: str,
             version: Version) -> int:
    args = _options(args, "rebuild", {"imageRef", "name", "adminPass", "metadata"} | (
        {"description"} if version >= (2, 19) else set()))
    if "name" in args:
        check_name(args["name"])
    if "metadata" in args:
        check_metadata(args["metadata"])
    if args.get("description") is not None:
        check_text(args["description"], "description", min_length=0)
    image = check_image(args.get("imageRef"))
    _require(inst, "rebuild", ("active", "error"))
    _host_must_be_up(api, inst, "rebuild")
    _set_task(api, inst, "rebuilding")
    if "description" in args:      # Nova saves it with the rebuild's start
        api.db.update_instance(inst["uuid"], description=args["description"])
    api.db.start_action(inst["uuid"], "rebuild", rid)
    ctx = {"request_id": rid, "instance_uuid": inst["uuid"], "attempt": 1}
    with _handing_over(api, inst, "rebuild", rid, "rebuilding"):
        if api.config.flow == "legacy":
            api.compute.rebuild_instance(ctx, inst["host"], image_ref=image,
                                         instance=instance_primitive(api.db, api.config,
                                                                     inst, [inst["host"]]))
        else:
            api.conductor.rebuild_instance(ctx, inst["uuid"], image)
    return 202


def _evacuate(api: ApiManager, inst: dict[str, Any], args: Any, rid: str,
              version: Version) -> int:
    allowed = {"host", "adminPass"} | ({"force"} if version >= (2, 29) else set()) | (
        {"onSharedStorage"} if version < (2, 14) else set())
    args = _options(args, "evacuate", allowed)
    host = args.get("host")
    for flag in ("onSharedStorage", "force"):
        if flag in args:
            check_boolean(args[flag], flag)
    if version < (2, 14) and "onSharedStorage" not in args:
        raise BadRequest("Invalid input for evacuate: 'onSharedStorage' is a required "
                         "property (until microversion 2.14).")
    # Nova: before 2.29 a named host is forced (no scheduler); from 2.29 it is checked
    # by the scheduler unless "force": true, which needs a host
    force = bool(args.get("force")) if version >= (2, 29) else host is not None
    if force and host is None:
        raise BadRequest("Can't force to a non-provided destination")
    if host is not None:
        check_name(host, "host")
        if host not in {n["host"] for n in api.db.compute_nodes()}:
            raise NotFound(f"Compute host {shown(host)} not found.")
    if api.config.flow == "legacy" and host is None:
        raise BadRequest("The old process needs the target host: {'evacuate': {'host': "
                         "...}} (the conductor flow asks the scheduler instead).")
    if host == inst["host"]:
        raise BadRequest("The target host can't be the same one.")
    _require(inst, "evacuate", ("active", "error"))
    if api.host_is_up(inst["host"]):        # Nova's ComputeServiceInUse: a 400
        raise BadRequest(f"Compute service of {inst['host']} is still in use.")
    _set_task(api, inst, "rebuilding")
    api.db.start_action(inst["uuid"], "evacuate", rid)
    migration = api.db.create_migration(inst["uuid"], "evacuation", inst["host"],
                                        inst["flavor"], inst["flavor"], rid, "accepted")
    ctx = {"request_id": rid, "instance_uuid": inst["uuid"], "attempt": 1}
    with _handing_over(api, inst, "evacuate", rid, "rebuilding", (migration, "error")):
        if api.config.flow == "legacy":
            api.db.update_migration(migration["id"], dest_compute=host,
                                    status="pre-migrating")
            api.compute.rebuild_instance(ctx, host, image_ref=inst["image"], recreate=True,
                                         migration_id=migration["id"],
                                         instance=instance_primitive(api.db, api.config,
                                                                     inst, [host]))
        else:
            api.conductor.rebuild_instance(ctx, inst["uuid"], inst["image"], evacuate=True,
                                           host=host, migration_id=migration["id"],
                                           force=force)
    return 200


@contextmanager
def _handing_over(api: ApiManager, inst: dict[str, Any], action: str, rid: str,
                  task_state: str,
                  migration: tuple[dict[str, Any], str] | None = None) -> Iterator[None]:
    """The work is sent inside this block. If sending raises, nothing went: the task set
    for it is undone, the migration goes back to (or ends in) the status given, and the
    recorded action gets its error event. Nothing is left moving with nobody on it."""
    try:
        yield
    except Exception as exc:
        name, text = describe_error(exc)
        try:
            api.db.update_instance(inst["uuid"], task_state, task_state=None)
        except NotFound:        # deleted or moved on meanwhile: not ours to undo
            pass
        if migration is not None:
            api.db.update_migration(migration[0]["id"], status=migration[1])
        api.db.add_event(inst["uuid"], rid, f"api_{action}", None, 1, "Error",
                         f"{name}: {text}")
        raise


def _set_task(api: ApiManager, inst: dict[str, Any], task_state: str) -> None:
    """Only from no task at all: two actions racing for one instance get one 409."""
    try:
        api.db.update_instance(inst["uuid"], None, task_state=task_state)
    except UnexpectedTaskState as exc:
        raise Conflict(str(exc)) from None


def _host_must_be_up(api: ApiManager, inst: dict[str, Any], action: str,
                     host: str | None = None) -> None:
    """The compute that must do the work is up, or 409 (not a cast that waits forever)."""
    host = host or inst["host"]
    if not api.host_is_up(host):
        hint = " (evacuate it instead)" if host == inst["host"] else ""
        raise Conflict(f"Cannot '{action}' instance {inst['uuid']}: compute service of "
                       f"{host} is down{hint}.")

