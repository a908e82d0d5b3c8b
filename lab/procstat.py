"""What processes cost the host, read from ``/proc`` (Linux): CPU seconds, resident and
proportional memory, and a sampler that watches a changing set of processes.

- ``cpu_seconds(pid)``: user + system time from ``/proc/PID/stat`` (all its threads);
- ``memory_kb(pid)``: RSS and PSS from ``/proc/PID/smaps_rollup``, or RSS alone from
  ``/proc/PID/status`` where the rollup cannot be read (PSS is ``None`` then). PSS
  splits each shared page between the processes that map it, so PSS sums over processes
  add up to what they really hold; RSS sums count shared pages once per process;
- ``descendants(pids)``: every process below them;
- ``Sampler``: on a thread of its own, ``memory_kb`` of each named process every
  ``interval`` seconds; its own CPU time is kept so a caller can leave it out of its
  process's figures.

A process that has exited is simply missing from a reading (``None``), never an error.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional

__all__ = ["Memory", "parse_stat", "parse_rollup", "cpu_seconds", "memory_kb",
           "descendants", "Sampler"]

TICKS = os.sysconf("SC_CLK_TCK")
Memory = tuple[int, Optional[int]]   # (rss kB, pss kB or None)


def parse_stat(text: str) -> tuple[int, float]:
    """``/proc/PID/stat`` -> (parent pid, utime + stime in seconds). The command name
    is in parentheses and may hold spaces, so fields are counted after the last ``)``."""
    fields = text.rpartition(")")[2].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def parse_rollup(text: str) -> Memory:
    """``/proc/PID/smaps_rollup`` (or ``status``) -> (RSS kB, PSS kB or None)."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "VmRSS") and rest.split():
            values[key] = int(rest.split()[0])
    rss = values.get("Rss", values.get("VmRSS"))
    if rss is None:
        raise ValueError("no Rss or VmRSS line")
    return rss, values.get("Pss")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None


def cpu_seconds(pid: int) -> float | None:
    text = _read(f"/proc/{pid}/stat")
    return None if text is None else parse_stat(text)[1]


def memory_kb(pid: int) -> Memory | None:
    try:
        text = _read(f"/proc/{pid}/smaps_rollup")
    except PermissionError:
        text = None
    if text is None or "Rss:" not in text:
        text = _read(f"/proc/{pid}/status")
    if text is None or not text.strip():
        return None
    try:
        return parse_rollup(text)
    except ValueError:      # a zombie's status has no VmRSS
        return None


def descendants(pids: list[int]) -> list[int]:
    """The children of ``pids``, their children, and so on (not ``pids`` themselves)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            text = _read(f"/proc/{entry}/stat")
            if text is not None:
                parents.setdefault(parse_stat(text)[0], []).append(int(entry))
    found, todo = [], list(pids)
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Sampler:
    """``memory_kb`` of the processes ``processes()`` names, every ``interval`` seconds,
    from ``start()`` to ``stop()``. ``samples`` is one ``{name: Memory}`` per reading;
    ``cpu`` is the CPU time this sampler's own thread used."""

    def __init__(self, processes: Callable[[], dict[str, int]], interval: float = 0.5):
        self.processes = processes
        self.interval = interval
        self.samples: list[dict[str, Memory]] = []
        self.cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procstat-sampler",
                                        daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Memory]]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def _run(self) -> None:
        began = time.thread_time()
        while True:
            reading = {}
            for name, pid in self.processes().items():
                memory = memory_kb(pid)
                if memory is not None:
                    reading[name] = memory
            self.samples.append(reading)
            if self._stop.wait(self.interval):
                break
        self.cpu = time.thread_time() - began

    def totals(self, names: Callable[[str], bool] = lambda _n: True
               ) -> list[tuple[float, float | None]]:
        """Per reading, (RSS MB, PSS MB or None) summed over the names ``names`` keeps."""
        out = []
        for reading in self.samples:
            kept = [m for n, m in reading.items() if names(n)]
            pss = None if any(p is None for _, p in kept) else sum(p for _, p in kept)
            out.append((sum(r for r, _ in kept) / 1024, None if pss is None else pss / 1024))
        return out
