"""What the dashboard remembers of the polled instances (the API's server records): each
one's state segments across polls, for the "Instances" lanes, and when it first reached
ACTIVE or ERROR, for the build rate. Pure Python, as the rest of the model."""
from __future__ import annotations

from typing import Any

from .palette import TASK_STATE_COLORS, UNKNOWN_STATE_COLOR

__all__ = ["InstanceRecords", "INSTANCE_COLUMNS", "INSTANCE_LANES", "REMEMBERED_INSTANCES",
           "BUILT_STATUSES"]

Columns = dict[str, list]
INSTANCE_COLUMNS = ("instance", "name", "y", "start", "end", "state", "color", "fault",
                    "host", "attempts")
INSTANCE_LANES, REMEMBERED_INSTANCES = 30, 500
# A server seen in one of these was built: its build counts as a success.
BUILT_STATUSES = ("ACTIVE", "RESIZE", "VERIFY_RESIZE", "REVERT_RESIZE", "REBUILD")


class _Instance:
    """What the model remembers of one polled instance."""
    __slots__ = ("uuid", "name", "created", "first_seen", "last_seen", "fault", "host",
                 "attempts", "segments")

    def __init__(self, uuid: str, now: float):
        self.uuid, self.first_seen, self.last_seen = uuid, now, now
        self.name = self.created = self.fault = self.host = ""
        self.attempts = 0
        self.segments: list[list[Any]] = []          # [state, start, end or None]


class InstanceRecords:
    """The polled instances of one dashboard session."""

    def __init__(self) -> None:
        self._instances: dict[str, _Instance] = {}
        self.finals: dict[str, tuple[str, float]] = {}   # uuid -> (ACTIVE|ERROR, when)

    def poll(self, servers: list[dict[str, Any]], now: float, origin: float) -> Columns:
        """Remember the state of each polled server record (API shape) and return one row
        per state segment of the newest ``INSTANCE_LANES`` instances, the oldest of them at
        ``y`` 0. An instance's state is its task_state while BUILD, else its status; a
        segment starts when a poll first shows the state (first sight = ``now``), the open
        one ends at ``now`` (or when the instance was last polled, if it is gone)."""
        polled = set()
        for server in servers:
            uuid = server.get("id")
            if not uuid:
                continue
            polled.add(uuid)
            inst = self._instances.get(uuid)
            if inst is None:
                inst = self._instances[uuid] = _Instance(uuid, now)
            status = server.get("status") or "UNKNOWN"
            state = (server.get("OS-EXT-STS:task_state") or "BUILD") if status == "BUILD" \
                else status
            inst.name = server.get("name") or uuid[:8]
            inst.created = server.get("created") or ""
            inst.fault = (server.get("fault") or {}).get("message", "")
            inst.host = server.get("OS-EXT-SRV-ATTR:host") or ""
            inst.attempts = server.get("OS-EXT-LAB:num_attempts") or 0
            inst.last_seen = now
            if not inst.segments or inst.segments[-1][0] != state:
                if inst.segments:
                    inst.segments[-1][2] = now
                inst.segments.append([state, now, None])
            final = "ACTIVE" if status in BUILT_STATUSES else status
            if final in ("ACTIVE", "ERROR") and self.finals.get(uuid, ("",))[0] != final:
                self.finals[uuid] = (final, now)
        order = sorted(self._instances.values(),
                       key=lambda i: (i.first_seen, i.created, i.name, i.uuid))
        for gone in order[:-REMEMBERED_INSTANCES]:
            del self._instances[gone.uuid]
        out: Columns = {c: [] for c in INSTANCE_COLUMNS}
        for y, inst in enumerate(order[-INSTANCE_LANES:]):
            until = now if inst.uuid in polled else inst.last_seen
            for state, start, end in inst.segments:
                row = (inst.uuid, inst.name, y, start - origin,
                       (until if end is None else end) - origin, state,
                       TASK_STATE_COLORS.get(state, UNKNOWN_STATE_COLOR), inst.fault,
                       inst.host, inst.attempts)
                for column, value in zip(INSTANCE_COLUMNS, row):
                    out[column].append(value)
        return out
