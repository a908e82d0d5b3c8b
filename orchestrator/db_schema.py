"""The cloud database's tables (SQLite), and the values their state columns take: which
migration statuses are still moving, which hold resources, which ended badly; which
task states mean an instance is on its way somewhere. ``db.Database`` reads and writes
them (on a connection ``connect`` opens); the services that decide by these states
import them from here.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from .config import FLAVORS

__all__ = ["SCHEMA", "NEXT_GENERATION", "INSTANCE_COLUMNS", "MIGRATION_TYPES",
           "MIGRATION_COLUMNS", "MIGRATION_MOVING", "MIGRATION_IN_PROGRESS",
           "MIGRATION_FAILED", "MOVING_TASKS", "check_instance_values", "connect"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    uuid TEXT PRIMARY KEY, seq INTEGER NOT NULL, name TEXT NOT NULL, flavor TEXT NOT NULL,
    image TEXT NOT NULL, vm_state TEXT NOT NULL, task_state TEXT, host TEXT,
    availability_zone TEXT, request_id TEXT NOT NULL, reservation_id TEXT NOT NULL,
    num_attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, launched_at REAL, deleted INTEGER NOT NULL DEFAULT 0,
    description TEXT);
CREATE TABLE IF NOT EXISTS instance_actions (
    id INTEGER PRIMARY KEY, instance_uuid TEXT NOT NULL, action TEXT NOT NULL,
    request_id TEXT NOT NULL, start_time REAL NOT NULL, message TEXT);
CREATE TABLE IF NOT EXISTS instance_action_events (
    id INTEGER PRIMARY KEY, instance_uuid TEXT NOT NULL, request_id TEXT NOT NULL,
    event TEXT NOT NULL, host TEXT, attempt INTEGER, start_time REAL NOT NULL,
    finish_time REAL, result TEXT, details TEXT);
CREATE TABLE IF NOT EXISTS instance_faults (
    id INTEGER PRIMARY KEY, instance_uuid TEXT NOT NULL, code INTEGER NOT NULL,
    message TEXT NOT NULL, details TEXT, host TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS services (
    id INTEGER PRIMARY KEY, binary TEXT NOT NULL, host TEXT NOT NULL, topic TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0, disabled_reason TEXT, last_seen_up REAL,
    report_count INTEGER NOT NULL DEFAULT 0, object_version TEXT,
    generation INTEGER NOT NULL DEFAULT 0, UNIQUE (binary, host));
CREATE TABLE IF NOT EXISTS compute_nodes (
    host TEXT PRIMARY KEY, availability_zone TEXT NOT NULL, vcpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL, local_gb INTEGER NOT NULL, vcpus_used INTEGER NOT NULL,
    memory_mb_used INTEGER NOT NULL, local_gb_used INTEGER NOT NULL,
    running_vms INTEGER NOT NULL, failed_builds INTEGER NOT NULL DEFAULT 0,
    instances TEXT NOT NULL DEFAULT '[]', updated_at REAL NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS migrations (
    id INTEGER PRIMARY KEY, instance_uuid TEXT NOT NULL, migration_type TEXT NOT NULL,
    source_compute TEXT, dest_compute TEXT, old_flavor TEXT NOT NULL,
    new_flavor TEXT NOT NULL, status TEXT NOT NULL, request_id TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS instances_state ON instances (vm_state, deleted);
CREATE INDEX IF NOT EXISTS events_instance ON instance_action_events (instance_uuid);
CREATE INDEX IF NOT EXISTS services_generation ON services (generation);
CREATE INDEX IF NOT EXISTS compute_nodes_generation ON compute_nodes (generation);
"""
# Every write to services and compute_nodes stamps the row with the table's next
# generation, under the write lock (BEGIN IMMEDIATE): generations are in commit order, so
# a reader that has seen everything up to G and asks for rows above G misses nothing.
# The scheduler reads only what changed since its last look (``*_since``).
NEXT_GENERATION = "(SELECT COALESCE(MAX(generation), 0) + 1 FROM {table})"
INSTANCE_COLUMNS = ("vm_state", "task_state", "host", "num_attempts", "launched_at",
                    "deleted", "availability_zone", "flavor", "image", "description")
MIGRATION_TYPES = ("migration", "resize", "evacuation")
MIGRATION_COLUMNS = ("status", "source_compute", "dest_compute")
# A migration in one of these states is moving: it must keep making progress.
MIGRATION_MOVING = ("accepted", "pre-migrating", "migrating", "post-migrating",
                    "reverting", "confirming")
# ...and these still hold resources somewhere (``finished`` waits for the user).
MIGRATION_IN_PROGRESS = (*MIGRATION_MOVING, "finished")
# ...and these ended badly (a step failed, nothing could take it, a rebuild failed).
MIGRATION_FAILED = ("error", "failed")
# An instance on its way somewhere (resize, revert, confirm, rebuild, evacuate).
MOVING_TASKS = ("resize_prep", "resize_migrating", "resize_migrated", "resize_finish",
                "resize_reverting", "resize_confirming", "rebuilding", "rebuild_spawning")


def check_instance_values(values: dict[str, Any]) -> None:
    bad = set(values) - set(INSTANCE_COLUMNS)
    if bad:
        raise ValueError(f"cannot update instance field(s) {sorted(bad)}")
    if "flavor" in values and values["flavor"] not in FLAVORS:
        raise ValueError(f"unknown flavor {values['flavor']!r}")


def connect(path: Path) -> sqlite3.Connection:
    """The database file, in WAL mode (readers never block the writer), its tables
    created if missing; autocommit (``Database.transaction`` begins and commits)."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.row_factory = sqlite3.Row
    # Services start at once: the first sets WAL (persistent in the file) and the
    # others may find the file locked meanwhile; the busy timeout does not cover it.
    for attempt in range(100):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)
    conn.execute("PRAGMA synchronous=NORMAL")
    try:    # one transaction: a service starting meanwhile sees all the tables or none
        conn.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")
    except BaseException:
        conn.close()
        raise
    return conn
