"""The bus's record of what happened to every message: trace events numbered by ``seq``,
kept in memory (the last ``history_size``, for the lab's ``history`` control call), in
``trace.jsonl`` (every one, for replays and exports) and published on the tap.

``record`` is on the bus's hot path (one call a message), so it only appends; once a
loop turn, ``publish`` writes that turn's events to the file first (a bus killed right
after restarts from the last seq anyone saw) and then sends them as one PUB frame.
``open`` appends to an existing file and goes on from its last complete event: a
restarted bus never reuses a seq, and half a line a killed bus left is ended.
"""
from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import IO, Any

import zmq

from . import protocol

__all__ = ["TraceLog", "TRACE_FILE", "HISTORY_PAGE"]

TRACE_FILE = "trace.jsonl"
HISTORY_PAGE = 5000           # trace events per history reply


class TraceLog:
    def __init__(self, history_size: int):
        self.seq = 0
        self.history: deque[dict[str, Any]] = deque(maxlen=history_size)
        self.file: IO[str] | None = None
        self._unpublished: list[dict[str, Any]] = []

    def open(self, path: Path) -> None:
        self.seq = last_seq(path)
        self.file = open(path, "a", encoding="utf-8")
        if self.file.tell() and not _ends_with_newline(path):
            self.file.write("\n")   # a killed bus may have left half a line

    def record(self, env: dict[str, Any], phase: str, dst: str, size: int,
               reason: str = "") -> None:
        self.seq += 1
        event = protocol.trace_event(self.seq, env, phase, dst, size, reason)
        self.history.append(event)
        self._unpublished.append(event)

    def publish(self, pub: zmq.Socket) -> None:
        """Write this turn's events to the file, then send them as one PUB frame."""
        if self._unpublished:
            if self.file is None:
                raise RuntimeError("the trace log is not open: open() it first")
            events, self._unpublished = self._unpublished, []
            self.file.write("".join(protocol.trace_json(e) + "\n" for e in events))
            self.file.flush()
            pub.send(protocol.encode_batch(events), zmq.NOBLOCK)

    def page(self, since: int = 0, limit: int = HISTORY_PAGE) -> dict[str, Any]:
        """The ``history`` control call's answer: events after ``since``, at most
        ``limit`` (and HISTORY_PAGE), with the last seq and the oldest still held."""
        events = [e for e in self.history if e["seq"] > since][:max(0, min(limit,
                                                                            HISTORY_PAGE))]
        return {"events": events, "last_seq": self.seq,
                "oldest_seq": self.history[0]["seq"] if self.history else self.seq + 1}

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def last_seq(path: Path) -> int:
    """The last complete event's seq in an existing trace file (a restarted bus goes on)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 65536))
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0
