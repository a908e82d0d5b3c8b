"""The cloud's database: SQLite in the run directory (WAL, so readers never block the
writer). In the conductor flow the API creates instances and the conductor writes the
rest; computes never open it: everything they save goes through the conductor
(the *database proxy*). The scheduler reads compute nodes and services.

Every multi-row change is one transaction (``BEGIN IMMEDIATE``), so a failed request
leaves nothing half-written.
"""
from __future__ import annotations

import json
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .db_schema import (INSTANCE_COLUMNS, MIGRATION_COLUMNS, MIGRATION_MOVING,
                        MIGRATION_TYPES, NEXT_GENERATION, check_instance_values, connect)

__all__ = ["Database", "DB_FILE", "NotFound", "UnexpectedTaskState"]

DB_FILE = "lab.sqlite"
_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


class NotFound(LookupError):
    """No such row."""


class Database:
    def __init__(self, run_dir: str | Path, seed: int = 0):
        self.path = Path(run_dir) / DB_FILE
        self.seed = seed
        self.conn = connect(self.path)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- instances ------------------------------------------------------------------------
    def create_instances(self, names: list[str], flavor: str, image: str,
                         availability_zone: str | None,
                         description: str | None = None) -> tuple[str, str, list[str]]:
        """Create instances in BUILD/scheduling with their ``create`` action, all or
        nothing. UUIDs and ids derive from the seed and a counter: same seed, same ids.
        Returns (request_id, reservation_id, uuids)."""
        now = time.time()
        with self.transaction() as c:
            start = self._bump(c, "instances", len(names))
            request_id = "req-" + str(uuid.uuid5(_NAMESPACE, f"{self.seed}:req:{start}"))
            reservation_id = "r-" + uuid.uuid5(_NAMESPACE, f"{self.seed}:r:{start}").hex[:8]
            uuids = []
            for i, name in enumerate(names):
                seq = start + i
                inst = str(uuid.uuid5(_NAMESPACE, f"{self.seed}:instance:{seq}"))
                c.execute("INSERT INTO instances (uuid, seq, name, flavor, image, vm_state,"
                          " task_state, availability_zone, request_id, reservation_id,"
                          " created_at, updated_at, description)"
                          " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                          (inst, seq, name, flavor, image, "building", "scheduling",
                           availability_zone, request_id, reservation_id, now, now,
                           description))
                c.execute("INSERT INTO instance_actions (instance_uuid, action, request_id,"
                          " start_time) VALUES (?,?,?,?)", (inst, "create", request_id, now))
                uuids.append(inst)
        return request_id, reservation_id, uuids

    def _bump(self, c: sqlite3.Connection, name: str, n: int) -> int:
        c.execute("INSERT INTO counters VALUES (?, 0) ON CONFLICT(name) DO NOTHING", (name,))
        value = c.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()[0]
        c.execute("UPDATE counters SET value=? WHERE name=?", (value + n, name))
        return value + 1

    def instance(self, uuid_: str, *, deleted: bool = False) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM instances WHERE uuid=? AND deleted<=?",
                                (uuid_, int(deleted))).fetchone()
        if row is None:
            raise NotFound(f"Instance {uuid_} could not be found.")
        return dict(row)

    def instances(self, *, reservation_id: str | None = None, vm_state: str | None = None,
                  task_states: tuple[str, ...] | None = None,
                  host: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM instances WHERE deleted=0", []
        if reservation_id:
            sql, args = sql + " AND reservation_id=?", args + [reservation_id]
        if host:
            sql, args = sql + " AND host=?", args + [host]
        if vm_state:
            sql, args = sql + " AND vm_state=?", args + [vm_state]
        if task_states:
            sql += f" AND task_state IN ({', '.join('?' * len(task_states))})"
            args += list(task_states)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY seq", args)]

    def instance_states(self, uuids: list[str]) -> dict[str, dict[str, Any]]:
        """uuid -> vm_state, task_state, host, deleted (deleted rows included)."""
        if not uuids:
            return {}
        rows = self.conn.execute(
            "SELECT uuid, vm_state, task_state, host, deleted FROM instances WHERE uuid IN"
            f" ({', '.join('?' * len(uuids))})", uuids)
        return {r["uuid"]: dict(r) for r in rows}

    def update_instance(self, uuid_: str, expected_task_state: Any = "<any>",
                        expected_vm_state: str | None = None, **values: Any) -> dict[str, Any]:
        """Save instance fields. With ``expected_task_state`` (and/or ``expected_vm_state``)
        the save only happens if the instance is still in that state (Nova's guard against
        racing updates: a late or duplicated save changes nothing); otherwise it raises
        ``NotFound``-like ``UnexpectedTaskState``."""
        check_instance_values(values)
        values["updated_at"] = time.time()
        sets = ", ".join(f"{k}=?" for k in values)
        with self.transaction() as c:
            current = c.execute("SELECT task_state, vm_state, deleted FROM instances"
                                " WHERE uuid=?", (uuid_,)).fetchone()
            if current is None or current["deleted"]:
                raise NotFound(f"Instance {uuid_} could not be found.")
            if expected_task_state != "<any>" and current["task_state"] != expected_task_state:
                raise UnexpectedTaskState(
                    f"instance {uuid_} is in task_state {current['task_state']}, "
                    f"expected {expected_task_state}")
            if expected_vm_state is not None and current["vm_state"] != expected_vm_state:
                raise UnexpectedTaskState(
                    f"instance {uuid_} is {current['vm_state']}, expected {expected_vm_state}")
            c.execute(f"UPDATE instances SET {sets} WHERE uuid=?", (*values.values(), uuid_))
        return self.instance(uuid_, deleted=True)   # the update may have deleted it

    def claim_attempt(self, uuid_: str, attempt: int, *, vm_state: str | None = None,
                      task_state: Any = "<any>") -> bool:
        """Record scheduling attempt ``attempt`` only if the instance is on attempt
        ``attempt - 1`` and still in the state the (re)schedule was sent for: of a
        duplicated, replayed or late build_instances, run_instance or migrate_server only
        the first moves it on; the rest find it moved and do nothing."""
        where, args = ["uuid=?", "deleted=0", "num_attempts=?"], [uuid_, attempt - 1]
        if vm_state is not None:
            where.append("vm_state=?")
            args.append(vm_state)
        if task_state != "<any>":
            where.append("task_state IS ?")
            args.append(task_state)
        cur = self.conn.execute(f"UPDATE instances SET num_attempts=?, updated_at=? WHERE "
                                f"{' AND '.join(where)}", (attempt, time.time(), *args))
        return cur.rowcount == 1

    # -- faults, actions, events ----------------------------------------------------------
    def add_fault(self, uuid_: str, code: int, message: str, details: str = "",
                  host: str | None = None) -> None:
        self.conn.execute("INSERT INTO instance_faults (instance_uuid, code, message,"
                          " details, host, created_at) VALUES (?,?,?,?,?,?)",
                          (uuid_, code, message, details, host, time.time()))

    def set_error(self, uuid_: str, code: int, message: str, host: str | None = None,
                  details: str = "", expected: dict[str, Any] | None = None,
                  event: dict[str, Any] | None = None) -> dict[str, Any]:
        """ERROR and its fault in one transaction: nobody sees an ERROR without its
        reason. ``expected`` (e.g. ``{"vm_state": "building"}``) are column values the
        instance must still have: a late timeout or a duplicated failure report cannot
        turn an instance that has moved on (ACTIVE, already ERROR) into a new ERROR; it
        raises UnexpectedTaskState. Raises NotFound if the instance is gone. ``event``
        (``request_id``, ``event``, ``attempt``) is the instance action event that says
        so, written in the same transaction: whoever sees the ERROR sees why and where."""
        now = time.time()
        bad = set(expected or {}) - {*INSTANCE_COLUMNS, "updated_at"}
        if bad:
            raise ValueError(f"cannot expect instance field(s) {sorted(bad)}")
        conds = "".join(f" AND {k} IS ?" for k in (expected or {}))
        with self.transaction() as c:
            cur = c.execute("UPDATE instances SET vm_state='error', task_state=NULL,"
                            f" updated_at=? WHERE uuid=? AND deleted=0{conds}",
                            (now, uuid_, *(expected or {}).values()))
            if cur.rowcount == 0:
                gone = c.execute("SELECT 1 FROM instances WHERE uuid=? AND deleted=0",
                                 (uuid_,)).fetchone() is None
                if gone:
                    raise NotFound(f"Instance {uuid_} could not be found.")
                raise UnexpectedTaskState(f"instance {uuid_} is no longer "
                                          f"{expected}: not set to ERROR ({message})")
            c.execute("INSERT INTO instance_faults (instance_uuid, code, message, details,"
                      " host, created_at) VALUES (?,?,?,?,?,?)",
                      (uuid_, code, message, details, host, now))
            if event is not None:
                _insert_event(c, uuid_, event.get("request_id", ""), event["event"], host,
                              int(event.get("attempt") or 0), "Error", message)
        return self.instance(uuid_)

    def add_fault_and_update(self, uuid_: str, code: int, message: str, host: str | None,
                             values: dict[str, Any],
                             migration: tuple[int, str] | None = None,
                             expected_task_state: Any = "<any>") -> None:
        """A fault that does not mean ERROR (a migration that failed and rolled back: the
        instance keeps running where it was), its instance update, and optionally a
        migration's new status: one transaction. With ``expected_task_state``, only from
        that task state (UnexpectedTaskState otherwise, and nothing written)."""
        check_instance_values(values)
        now = time.time()
        sets = ", ".join(f"{k}=?" for k in [*values, "updated_at"])
        guard = "" if expected_task_state == "<any>" else " AND task_state IS ?"
        with self.transaction() as c:
            cur = c.execute(f"UPDATE instances SET {sets} WHERE uuid=? AND deleted=0{guard}",
                            (*values.values(), now, uuid_,
                             *(() if not guard else (expected_task_state,))))
            if cur.rowcount == 0:
                if not guard or c.execute("SELECT 1 FROM instances WHERE uuid=? AND "
                                          "deleted=0", (uuid_,)).fetchone() is None:
                    raise NotFound(f"Instance {uuid_} could not be found.")
                raise UnexpectedTaskState(f"instance {uuid_} is no longer in task_state "
                                          f"{expected_task_state}: fault not written")
            c.execute("INSERT INTO instance_faults (instance_uuid, code, message, details,"
                      " host, created_at) VALUES (?,?,?,?,?,?)",
                      (uuid_, code, message, "", host, now))
            if migration is not None:
                c.execute("UPDATE migrations SET status=?, updated_at=? WHERE id=?",
                          (migration[1], now, migration[0]))

    def fault(self, uuid_: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM instance_faults WHERE instance_uuid=?"
                                " ORDER BY id DESC LIMIT 1", (uuid_,)).fetchone()
        return dict(row) if row else None

    def start_action(self, uuid_: str, action: str, request_id: str) -> None:
        self.conn.execute("INSERT INTO instance_actions (instance_uuid, action, request_id,"
                          " start_time) VALUES (?,?,?,?)", (uuid_, action, request_id,
                                                            time.time()))

    def add_event(self, uuid_: str, request_id: str, event: str, host: str | None,
                  attempt: int, result: str, details: str = "",
                  start_time: float | None = None) -> None:
        _insert_event(self.conn, uuid_, request_id, event, host, attempt, result, details,
                      start_time)

    def actions(self, uuid_: str) -> list[dict[str, Any]]:
        out = []
        for action in self.conn.execute("SELECT * FROM instance_actions WHERE"
                                        " instance_uuid=? ORDER BY id", (uuid_,)):
            events = self.conn.execute(
                "SELECT event, host, attempt, start_time, finish_time, result, details"
                " FROM instance_action_events WHERE instance_uuid=? AND request_id=?"
                " ORDER BY id", (uuid_, action["request_id"]))
            out.append({**dict(action), "events": [dict(e) for e in events]})
        return out

    # -- migrations -----------------------------------------------------------------------
    def create_migration(self, uuid_: str, migration_type: str, source: str | None,
                         old_flavor: str, new_flavor: str, request_id: str,
                         status: str = "pre-migrating",
                         expected_task_state: str | None = None) -> dict[str, Any]:
        """A new migration record. With ``expected_task_state``, only while the instance
        is in that task state and has no other migration moving (one transaction): a
        duplicated ``migrate_server`` finds the first one's record and makes none
        (UnexpectedTaskState)."""
        if migration_type not in MIGRATION_TYPES:
            raise ValueError(f"migration_type must be one of {MIGRATION_TYPES}")
        now = time.time()
        with self.transaction() as c:
            if expected_task_state is not None:
                row = c.execute("SELECT task_state FROM instances WHERE uuid=? AND deleted=0",
                                (uuid_,)).fetchone()
                moving = c.execute(
                    "SELECT id FROM migrations WHERE instance_uuid=? AND status IN "
                    f"({', '.join('?' * len(MIGRATION_MOVING))})",
                    (uuid_, *MIGRATION_MOVING)).fetchone()
                if row is None or row["task_state"] != expected_task_state or moving:
                    raise UnexpectedTaskState(
                        f"instance {uuid_} is not waiting for a migration (task_state "
                        f"{row['task_state'] if row else 'gone'}, moving "
                        f"{moving['id'] if moving else None})")
            cur = c.execute(
                "INSERT INTO migrations (instance_uuid, migration_type, source_compute,"
                " old_flavor, new_flavor, status, request_id, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)", (uuid_, migration_type, source, old_flavor,
                                              new_flavor, status, request_id, now, now))
        return self.migration(cur.lastrowid)

    def migration(self, migration_id: int) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM migrations WHERE id=?",
                                (migration_id,)).fetchone()
        if row is None:
            raise NotFound(f"Migration {migration_id} could not be found.")
        return dict(row)

    def migrations(self, *, instance_uuid: str | None = None, host: str | None = None,
                   status: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM migrations WHERE 1=1", []
        if instance_uuid:
            sql, args = sql + " AND instance_uuid=?", args + [instance_uuid]
        if host:
            sql, args = sql + " AND (source_compute=? OR dest_compute=?)", args + [host, host]
        if status:
            sql += f" AND status IN ({', '.join('?' * len(status))})"
            args += list(status)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def update_migration(self, migration_id: int, expected_status: str | None = None,
                         **values: Any) -> dict[str, Any]:
        """Save migration fields; with ``expected_status`` only from that status
        (UnexpectedTaskState otherwise: someone else moved it on)."""
        bad = set(values) - set(MIGRATION_COLUMNS)
        if bad:
            raise ValueError(f"cannot update migration field(s) {sorted(bad)}")
        values["updated_at"] = time.time()
        sets = ", ".join(f"{k}=?" for k in values)
        with self.transaction() as c:
            row = c.execute("SELECT status FROM migrations WHERE id=?",
                            (migration_id,)).fetchone()
            if row is None:
                raise NotFound(f"Migration {migration_id} could not be found.")
            if expected_status is not None and row["status"] != expected_status:
                raise UnexpectedTaskState(f"migration {migration_id} is {row['status']}, "
                                          f"expected {expected_status}")
            c.execute(f"UPDATE migrations SET {sets} WHERE id=?",
                      (*values.values(), migration_id))
        return self.migration(migration_id)

    # -- services and compute nodes -------------------------------------------------------
    def service_update(self, binary: str, host: str, topic: str,
                       object_version: str | None = None) -> None:
        """A service's heartbeat (Nova's servicegroup DB driver): bump ``report_count``;
        a compute also says which object version it understands."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO services (binary, host, topic, last_seen_up, report_count,"
                " object_version, generation) VALUES (?,?,?,?,1,?,"
                f"{NEXT_GENERATION.format(table='services')}) ON CONFLICT(binary, host) DO"
                " UPDATE SET last_seen_up=excluded.last_seen_up, report_count=report_count"
                "+1, object_version=excluded.object_version, generation=excluded.generation",
                (binary, host, topic, time.time(), object_version))

    def set_service_disabled(self, binary: str, host: str, disabled: bool,
                             reason: str | None = None) -> None:
        with self.transaction() as c:
            cur = c.execute("UPDATE services SET disabled=?, disabled_reason=?, generation="
                            f"{NEXT_GENERATION.format(table='services')} WHERE binary=? AND"
                            " host=?", (int(disabled), reason, binary, host))
        if cur.rowcount == 0:
            raise NotFound(f"Service {binary} on host {host} could not be found.")

    def services(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM services ORDER BY id")]

    def services_since(self, generation: int) -> list[dict[str, Any]]:
        """The services written after ``generation`` (all of them for 0)."""
        return [dict(r) for r in self.conn.execute(
            "SELECT * FROM services WHERE generation > ? ORDER BY generation", (generation,))]

    def compute_node_update(self, host: str, resources: dict[str, Any]) -> None:
        keys = ("availability_zone", "vcpus", "memory_mb", "local_gb", "vcpus_used",
                "memory_mb_used", "local_gb_used", "running_vms", "failed_builds")
        values = [resources[k] for k in keys]
        instances = json.dumps(sorted(resources.get("instances", [])))
        with self.transaction() as c:
            c.execute(
                f"INSERT INTO compute_nodes (host, {', '.join(keys)}, instances, updated_at,"
                f" generation) VALUES (?, {', '.join('?' * len(keys))}, ?, ?,"
                f" {NEXT_GENERATION.format(table='compute_nodes')}) ON CONFLICT(host) DO"
                f" UPDATE SET {', '.join(f'{k}=excluded.{k}' for k in keys)},"
                " instances=excluded.instances, updated_at=excluded.updated_at,"
                " generation=excluded.generation", (host, *values, instances, time.time()))

    def compute_nodes(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM compute_nodes ORDER BY host")
        return [{**dict(r), "instances": json.loads(r["instances"])} for r in rows]

    def compute_nodes_since(self, generation: int) -> list[dict[str, Any]]:
        """The compute nodes written after ``generation`` (all of them for 0)."""
        rows = self.conn.execute("SELECT * FROM compute_nodes WHERE generation > ?"
                                 " ORDER BY generation", (generation,))
        return [{**dict(r), "instances": json.loads(r["instances"])} for r in rows]


def _insert_event(c: sqlite3.Connection, uuid_: str, request_id: str, event: str,
                  host: str | None, attempt: int, result: str, details: str = "",
                  start_time: float | None = None) -> None:
    now = time.time()
    c.execute("INSERT INTO instance_action_events (instance_uuid, request_id, event, host,"
              " attempt, start_time, finish_time, result, details)"
              " VALUES (?,?,?,?,?,?,?,?,?)",
              (uuid_, request_id, event, host, attempt, start_time or now, now, result,
               details))


class UnexpectedTaskState(NotFound):
    """The instance moved on (deleted, rescheduled) while we were working on it."""
