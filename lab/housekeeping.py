"""Housekeeping of the labs' home: every lab makes a run directory (``lab-XXXX`` under
``labs_home()``) and leaves it behind when it stops; ``prune()`` removes the old ones so a
term of lessons fits in a student's quota.

The rule. Only a directory named ``lab-*`` is ever considered (a symlink never), and one
is removed only when it is a stopped lab, not marked kept, holding nothing but what a lab
writes itself, and older than the newest ``keep_last`` such labs (an empty or half-made
``lab-*`` directory without ``lab.json`` goes once it is ``HALF_MADE_AGE`` old). A lab is
running, and stays, while its owner or any of its processes lives (a lab this process
owns: while its ``Cluster`` has not been stopped or collected); a live pid whose process
started after the lab last wrote ``lab.json`` is a reused pid, not the lab's (Linux, via
``/proc``; elsewhere a reused pid just keeps a lab longer).

Kept: ``keep(run_dir)`` leaves a ``KEEP`` file (``Lab(keep=True)`` does; so does saving a
trace or an export into a run directory, see ``keep_containing``). A file the lab did not
write (anything outside ``LAB_FILES``) keeps the directory too: it may be yours.

Races. A directory is first renamed to ``.pruning-<time>-<pid>-<name>`` (atomic: of two
pruners one wins, the other skips it), checked again under its new name (a lab started
or marked kept in between is renamed back) and only then deleted. Errors on one
directory are skipped, never raised; a half-deleted ``.pruning-*`` left by a pruner that
died is swept once it is ``HALF_MADE_AGE`` old.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from orchestrator import rundir
from orchestrator.api.clouds import CLOUDS_YAML
from orchestrator.db import DB_FILE
from orchestrator.messaging.tracelog import TRACE_FILE
from orchestrator.rundir import LAB_JSON, read
from orchestrator.scheduler.plugins import PLUGIN_DIR

__all__ = ["prune", "keep", "keep_containing", "survey", "RunDir", "dir_size", "labs_home",
           "LIVE_CLUSTERS",
           "KEEP_LAST", "KEEP_FILE", "HALF_MADE_AGE", "LAB_FILES"]

KEEP_LAST = 5           # stopped, unmarked labs prune() leaves, newest first
HALF_MADE_AGE = 300.0   # seconds before a lab-* dir without lab.json counts as abandoned
PID_CLOCK_SLACK = 5.0   # seconds of slack comparing a process's start with lab.json's mtime
KEEP_FILE = "KEEP"
LAB_PREFIX = "lab-"
PRUNING_PREFIX = ".pruning-"
# What a lab writes into its run directory itself (anything else keeps the directory):
# lab.json and its lock and temp files (orchestrator.rundir), the secret, the database
# and its journals, the bus's trace and its ipc:// sockets, logs/, students' plugins/,
# the API's clouds.yaml and its temp files.
LAB_FILES = frozenset({LAB_JSON, ".lab.lock", "secret", DB_FILE, TRACE_FILE, "bus.sock",
                       "trace.sock", "logs", PLUGIN_DIR, KEEP_FILE, CLOUDS_YAML})
LAB_FILE_PREFIXES = (".lab.json.", f"{DB_FILE}-", f".{CLOUDS_YAML}.")

# The states survey() gives; only the last two are ever removed.
RUNNING, KEPT, YOURS, STARTING, UNREADABLE = "running", "kept", "yours", "starting", "unreadable"
STOPPED, HALF_MADE = "stopped", "half-made"


@dataclass(frozen=True)
class RunDir:
    """One ``lab-*`` directory as ``prune()`` sees it."""

    path: Path
    state: str          # running, kept, yours, starting, unreadable, stopped, half-made
    last_used: float    # newest mtime of the directory, lab.json and trace.jsonl


# -- marking -------------------------------------------------------------------------------
def keep(run_dir: str | os.PathLike[str], why: str = "") -> None:
    """Mark a run directory kept: ``prune()`` never removes it (delete ``KEEP`` to undo)."""
    with open(Path(run_dir) / KEEP_FILE, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {why or 'kept'}\n")


def keep_containing(path: str | os.PathLike[str]) -> Path | None:
    """Before a file is saved at ``path``: if that is inside a lab's run directory (a
    ``lab-*`` directory with a ``lab.json``), mark the directory kept and return it.
    Never raises: a save must not fail for this (the file then keeps it anyway)."""
    try:
        target = Path(path).resolve()
        for folder in target.parents:
            if folder.name.startswith(LAB_PREFIX) and (folder / LAB_JSON).is_file():
                keep(folder, why=f"saved {target.relative_to(folder)}")
                return folder
    except (OSError, ValueError):
        pass
    return None


# this process's Clusters not yet stopped (each adds itself; a WeakSet, so a forgotten
# one does not stay): a lab they run is never pruned
LIVE_CLUSTERS: "weakref.WeakSet[Any]" = weakref.WeakSet()


def labs_home() -> Path:
    """Where labs live unless told otherwise, one directory each (``$CONDUCTOR_LAB_HOME``,
    else a per-user directory in the system's temp dir, private to that user); the CLI
    finds running labs here."""
    home = os.environ.get("CONDUCTOR_LAB_HOME") or \
        os.path.join(tempfile.gettempdir(), f"conductor-lab-{os.getuid()}")
    return rundir.make_private(home)


# -- is a lab running? ---------------------------------------------------------------------
def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            return next(float(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def _started(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or None if we cannot tell cheaply."""
    boot = _boot_time()
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
        return None if boot is None else boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: object, not_after: float) -> bool:
    """``pid`` is a live process (not a zombie) that started by ``not_after``."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(") ", 1)[1][:1] == "Z":
                return False
    except (OSError, IndexError):
        pass
    started = _started(pid)
    return started is None or started <= not_after + PID_CLOCK_SLACK


def _owned_here(path: Path) -> bool:
    """A ``Cluster`` of this process has ``path`` as its run directory and is not stopped."""
    try:
        return any(Path(c.run_dir).resolve() == path.resolve()
                   for c in list(LIVE_CLUSTERS))
    except OSError:
        return True


def _running(data: dict, wrote: float, named: Path) -> bool:
    """A process of the lab lives (``wrote``: when lab.json was last written)."""
    children = [*(data.get("pids") or {}).values(), (data.get("bus") or {}).get("pid")]
    if any(_alive(pid, wrote) for pid in children):
        return True
    owner = data.get("owner_pid")
    if owner == os.getpid():
        return _owned_here(named)
    return _alive(owner, wrote)


# -- looking -------------------------------------------------------------------------------
def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _only_lab_files(path: Path) -> bool:
    return all(name in LAB_FILES or name.startswith(LAB_FILE_PREFIXES)
               for name in os.listdir(path))


def _classify(path: Path, now: float, named: Path | None = None) -> RunDir:
    """What ``path`` is; ``named`` is the name the lab knows it by (before a rename)."""
    last = max(_mtime(path), _mtime(path / LAB_JSON), _mtime(path / TRACE_FILE))
    try:
        if (path / KEEP_FILE).exists():
            return RunDir(path, KEPT, last)
        if not _only_lab_files(path):
            return RunDir(path, YOURS, last)
        if not (path / LAB_JSON).exists():
            state = HALF_MADE if now - _mtime(path) > HALF_MADE_AGE else STARTING
            return RunDir(path, state, last)
        data = read(path)
        state = RUNNING if _running(data, _mtime(path / LAB_JSON), named or path) \
            else STOPPED
        return RunDir(path, state, last)
    except (OSError, ValueError, AttributeError, TypeError):
        return RunDir(path, UNREADABLE, last)


def _home(home: str | os.PathLike[str] | None) -> Path:
    if home is not None:
        return Path(home)
    return labs_home()


def survey(home: str | os.PathLike[str] | None = None) -> list[RunDir]:
    """Every ``lab-*`` directory under ``home`` (default ``labs_home()``), newest first."""
    home, now, found = _home(home), time.time(), []
    try:
        entries = sorted(os.scandir(home), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        try:
            if entry.name.startswith(LAB_PREFIX) and entry.is_dir(follow_symlinks=False):
                found.append(_classify(Path(entry.path), now))
        except OSError:
            continue
    return sorted(found, key=lambda r: (r.last_used, r.path.name), reverse=True)


def dir_size(path: str | os.PathLike[str]) -> int:
    """Bytes on disk under ``path`` (what a quota counts); symlinks not followed."""
    total = 0
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            total += getattr(info, "st_blocks", 0) * 512 or info.st_size
    return total


# -- removing ------------------------------------------------------------------------------
def _delete(path: Path) -> bool:
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def _remove(run: RunDir, report: Callable[[Path, int], None] | None) -> bool:
    """Rename, check again under the new name, then delete; False if left in place."""
    path = run.path
    aside = path.with_name(f"{PRUNING_PREFIX}{int(time.time())}-{os.getpid()}-"
                           f"{secrets.token_hex(3)}-{path.name}")
    try:
        os.rename(path, aside)
    except OSError:
        return False      # gone already (another pruner), or not ours to move
    if _classify(aside, time.time(), named=path).state not in (STOPPED, HALF_MADE):
        try:
            os.rename(aside, path)
        except OSError:
            pass
        return False
    size = dir_size(aside) if report is not None else 0
    if not _delete(aside):
        return False
    if report is not None:
        report(path, size)
    return True


def _sweep(home: Path, now: float) -> None:
    """Finish what a pruner that died mid-way left: ``.pruning-<time>-<pid>-<hex>-<name>``,
    old enough, and still a stopped lab by the rule (checked under its old name)."""
    try:
        names = [n for n in os.listdir(home) if n.startswith(PRUNING_PREFIX)]
    except OSError:
        return
    for name in names:
        parts = name[len(PRUNING_PREFIX):].split("-", 3)
        try:
            since, original = float(parts[0]), home / parts[3]
        except (ValueError, IndexError):
            continue
        aside = home / name
        if now - since > HALF_MADE_AGE and not aside.is_symlink() and aside.is_dir() \
                and _classify(aside, now, named=original).state in (STOPPED, HALF_MADE):
            _delete(aside)


def prune(home: str | os.PathLike[str] | None = None, keep_last: int = KEEP_LAST, *,
          dry_run: bool = False,
          report: Callable[[Path, int], None] | None = None) -> list[Path]:
    """Remove the run directories the module's rule lets go; return their paths.

    ``keep_last`` stopped, unmarked labs stay (newest first). ``dry_run`` removes nothing
    and returns what would go. ``report(path, bytes)`` is called for each one removed
    (or, dry, to be removed) with the space it held. Never raises for one directory."""
    home = _home(home)
    runs = survey(home)
    stopped = [r for r in runs if r.state == STOPPED]
    doomed = stopped[max(0, keep_last):] + [r for r in runs if r.state == HALF_MADE]
    removed = []
    for run in doomed:
        try:
            if dry_run:
                if report is not None:
                    report(run.path, dir_size(run.path))
                removed.append(run.path)
            elif _remove(run, report):
                removed.append(run.path)
        except Exception:   # one directory's trouble must not stop a lab from starting
            continue
    if not dry_run:
        _sweep(home, time.time())
    return removed
