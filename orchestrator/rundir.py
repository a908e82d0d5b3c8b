"""The run directory: one lab's home. It holds ``lab.json`` (endpoints, pids, config),
``lab.sqlite``, ``logs/<service>.log`` and ``trace.jsonl``. ``lab.json`` is shared by
several processes, so every write is a locked read-merge-write through an atomic rename:
a reader never sees half a file."""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["LAB_JSON", "read", "update", "wait_for", "log_path"]

LAB_JSON = "lab.json"


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
