"""Where the dashboard's data comes from, shared by every browser session of one
dashboard process: a live lab (the bus's trace tap plus a poll of the API and the bus's
peer table) or a recorded trace played back with seek and speed. Sessions read from it
with their own cursor; nothing here knows about Bokeh."""
from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator import rundir
from orchestrator.messaging.blocking import BlockingClient
from orchestrator.messaging.tracelog import TRACE_FILE
from orchestrator.messaging.tap import TraceTap

from ..api_client import ApiClient
from ..trace import Trace

__all__ = ["LiveFeed", "ReplayFeed", "FollowFeed", "current", "install"]

log = logging.getLogger("lab.dashboard.feed")
POLL_SECONDS = 0.5
_feed: Any = None


def install(feed: Any) -> None:
    global _feed
    _feed = feed


def current() -> Any:
    if _feed is None:
        raise RuntimeError("no feed installed: start the dashboard with python -m lab.dashboard")
    return _feed


def _proc_state(pid: Any) -> str:
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            code = f.read().rsplit(") ", 1)[1][:1]
    except (OSError, ValueError, IndexError, TypeError):
        return "down"
    return {"Z": "down", "T": "paused", "t": "paused"}.get(code, "up")


class LiveFeed:
    """A running lab: every trace event (history first), and its state twice a second."""

    mode = "live"
    generation = 0

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        data = rundir.read(self.run_dir)
        endpoints = data["endpoints"]
        self.tap = TraceTap(endpoints["bus"], endpoints["trace"],
                            secret=rundir.secret(self.run_dir)).start()
        self.api = ApiClient(endpoints["api"], timeout=5, token=rundir.secret(self.run_dir)) \
            if "api" in endpoints else None
        self._bus_endpoint = endpoints["bus"]
        self.snapshot: dict[str, Any] = {"servers": [], "hypervisors": [], "states": {},
                                         "failures": {}, "latencies": [], "config": {}}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="dashboard-poll", daemon=True)
        self._thread.start()

    def events_since(self, seq: int) -> list[dict[str, Any]]:
        return self.tap.snapshot(seq)

    def stop(self) -> None:
        self._stop.set()
        self.tap.stop()

    def _poll(self) -> None:
        client = BlockingClient(self._bus_endpoint, f"dashboard-{os.getpid()}", timeout=2,
                                secret=rundir.secret(self.run_dir))
        try:
            while not self._stop.wait(POLL_SECONDS):
                try:
                    self.snapshot = self._read(client)
                except Exception as exc:  # the lab may be restarting a service: keep going
                    log.debug("poll failed: %s", exc)
        finally:
            client.close()

    def _read(self, client: BlockingClient) -> dict[str, Any]:
        data = rundir.read(self.run_dir)
        peers = {p["identity"]: p["alive"] for p in client.control("peers")}
        states = {}
        for name, pid in data.get("pids", {}).items():
            state = _proc_state(pid)
            if state == "up" and name != "bus" and not peers.get(name, False):
                state = "unreachable"
            states[name] = state
        api = self.api
        latencies = api.get("/os-lab-metrics")["create_latency_ms"] if api else []
        return {"servers": api.get("/servers/detail")["servers"] if api else [],
                "hypervisors": api.get("/os-hypervisors/detail")["hypervisors"] if api else [],
                "states": states, "failures": data.get("failures", {}),
                "latencies": latencies, "config": data.get("config", {}).get("lab", {})}


class ReplayFeed:
    """A recorded trace, played back as if live: ``speed`` scales time, ``seek`` jumps."""

    mode = "replay"

    def __init__(self, path: str | Path, speed: float = 1.0):
        self.trace = Trace.load(path)
        self.events = self.trace.events
        self.times = [e["ts"] for e in self.events]
        self.seqs = [e["seq"] for e in self.events]
        self.speed = speed
        self.generation = 0                    # bumps on every seek: sessions start over
        self.snapshot = {"servers": [], "hypervisors": [], "states": {}, "failures": {},
                         "latencies": [], "config": {}}
        self._origin = self.times[0] if self.times else 0.0
        self._position = self._origin          # trace time shown so far
        self._wall = time.monotonic()
        self._lock = threading.Lock()

    @property
    def duration(self) -> float:
        return (self.times[-1] - self._origin) if self.times else 0.0

    def position(self) -> float:
        """Seconds into the recording."""
        with self._lock:
            now = time.monotonic()
            self._position = min(self._origin + self.duration,
                                 self._position + (now - self._wall) * self.speed)
            self._wall = now
            return self._position - self._origin

    def seek(self, seconds: float) -> None:
        with self._lock:
            self._position = self._origin + max(0.0, min(seconds, self.duration))
            self._wall = time.monotonic()
            self.generation += 1

    def set_speed(self, speed: float) -> None:
        self.position()
        self.speed = max(0.0, speed)

    def events_since(self, seq: int) -> list[dict[str, Any]]:
        end = bisect.bisect_right(self.times, self._origin + self.position())
        start = bisect.bisect_right(self.seqs, seq, 0, end)
        return self.events[start:end]

    def stop(self) -> None:
        pass


def _final_servers(run_dir: Path) -> list[dict[str, Any]] | None:
    """Every server as the API would show it, read from the stopped lab's database."""
    from orchestrator.api.views import server_view
    from orchestrator.db import Database
    try:
        db = Database(run_dir)
    except Exception as exc:   # no database (a lab that never started): the poll's view
        log.info("no final server list: %s", exc)
        return None
    try:
        return [server_view(inst, db.fault(inst["uuid"]), "") for inst in db.instances()]
    finally:
        db.close()


class FollowFeed:
    """One lab from start to end: live while it runs; once ``Lab.stop()`` has written
    ``stopped_at`` into ``lab.json``, a replay of the lab's own recorded trace from its
    first event, with the last state the lab showed. A page opened after the stop (Run
    All reaches ``lab.stop()`` before BokehJS has loaded) shows the whole lesson.
    Everything else is the current feed's (``mode`` says which)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.stopped_at: float | None = rundir.read(self.run_dir).get("stopped_at")
        self.current: LiveFeed | ReplayFeed = (
            self._replay({}) if self.stopped_at else LiveFeed(self.run_dir))
        self._switches = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="dashboard-follow",
                                        daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)

    @property
    def mode(self) -> str:
        return self.current.mode

    @property
    def generation(self) -> int:
        return self._switches + self.current.generation

    def _watch(self) -> None:
        while self.stopped_at is None and not self._stop.wait(POLL_SECONDS):
            stopped = rundir.read(self.run_dir).get("stopped_at")
            if stopped:
                self.switch_to_replay(float(stopped))
                return

    def switch_to_replay(self, stopped_at: float) -> None:
        live = self.current
        if not isinstance(live, LiveFeed):
            return
        live.stop()
        replay = self._replay(live.snapshot)
        self.stopped_at = stopped_at
        self.current = replay
        self._switches += 1
        log.info("lab stopped at %.3f: replaying %d events", stopped_at, len(replay.events))

    def _replay(self, last: dict[str, Any]) -> ReplayFeed:
        """The recorded trace, with the last state the live lab showed (its services
        marked stopped) and the servers as the database left them: the last poll may
        predate the lesson's last builds by half a second."""
        replay = ReplayFeed(self.run_dir / TRACE_FILE)
        states = {n: "stopped" for n in last.get("states", {})}
        servers = _final_servers(self.run_dir)
        replay.snapshot = {**replay.snapshot, **last, "states": states,
                           "servers": servers if servers is not None
                           else last.get("servers", [])}
        return replay

    def stop(self) -> None:
        self._stop.set()
        self.current.stop()
