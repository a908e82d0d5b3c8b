"""The run directory: one lab's home. It holds ``lab.json`` (endpoints, pids, config),
``lab.sqlite``, ``logs/<service>.log``, ``trace.jsonl`` and ``secret``. ``lab.json`` is
shared by several processes, so every write is a locked read-merge-write through an atomic
rename: a reader never sees half a file.

The directory is private to its owner (0700): it holds the lab's **secret** (0600), the
token every HTTP endpoint of the lab asks for, and the ``ipc://`` sockets of the bus and
its trace tap, which only a process that can enter the directory can connect to."""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["LAB_JSON", "SECRET", "read", "update", "wait_for", "log_path", "make_private",
           "create_secret", "secret", "PrivacyError"]

LAB_JSON = "lab.json"
SECRET = "secret"


class PrivacyError(RuntimeError):
    """A directory the lab would keep its secret or sockets in is not private to us."""


def make_private(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) if needed and make it ours alone (0700). Refuses a
    directory another user owns: someone may have made it first to read what we put in."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.lstat()
    if path.is_symlink() or info.st_uid != os.getuid():
        raise PrivacyError(f"{path} belongs to another user (uid {info.st_uid}) or is a "
                           f"symlink; set CONDUCTOR_LAB_HOME to a directory of your own")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def create_secret(run_dir: str | os.PathLike) -> str:
    """The lab's secret: made once (0600, never rewritten), then read back."""
    path = Path(run_dir) / SECRET
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        token = secrets.token_urlsafe(32)
        f.write(token)
    return token


def secret(run_dir: str | os.PathLike) -> str | None:
    """The lab's secret, or None for a run directory made without one."""
    try:
        return (Path(run_dir) / SECRET).read_text().strip() or None
    except FileNotFoundError:
        return None


@contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    with open(run_dir / ".lab.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The current ``lab.json`` (an empty dict if there is none yet)."""
    try:
        return json.loads((Path(run_dir) / LAB_JSON).read_text())
    except FileNotFoundError:
        return {}


def update(run_dir: str | os.PathLike, **sections: Any) -> dict[str, Any]:
    """Merge top-level ``sections`` into ``lab.json`` (dict sections merge one level deep)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _locked(run_dir):
        data = read(run_dir)
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".lab.json.")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, run_dir / LAB_JSON)
    return data


def wait_for(run_dir: str | os.PathLike, *path: str, timeout: float = 10.0,
             alive: Any = None) -> Any:
    """Wait until ``lab.json`` has ``path`` (e.g. ``"endpoints", "bus"``) and return it.
    ``alive`` is an optional callable; when it returns False we stop waiting early."""
    deadline = time.monotonic() + timeout
    while True:
        node: Any = read(run_dir)
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return node
        if alive is not None and not alive():
            raise RuntimeError(f"process exited before writing {'/'.join(path)} to lab.json")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{'/'.join(path)} not in {run_dir}/lab.json after {timeout}s")
        time.sleep(0.02)


def log_path(run_dir: str | os.PathLike, name: str) -> Path:
    """``logs/<name>.log`` inside the run directory (the directory is created)."""
    logs = Path(run_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{name}.log"
