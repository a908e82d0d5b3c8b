"""Configuration, defined once: every tunable of the bus lives in one dataclass, written
to the run directory's ``lab.json`` by whoever starts the lab and read back by every
service, so all processes of one lab agree."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["BusConfig", "ConfigError", "from_dict"]


class ConfigError(ValueError):
    """A configuration value that is unknown or out of range."""


@dataclass(frozen=True)
class BusConfig:
    """The message bus and its peers' liveness rules (seconds unless named otherwise)."""

    heartbeat_interval: float = 0.5   # a peer and the bus beat this often
    dead_after: float = 2.0           # a server silent this long is down
    bus_timeout: float = 10.0         # a service exits when the bus is silent this long
    call_timeout: float = 10.0        # default RPC call timeout (oslo's rpc_response_timeout)
    queue_limit: int = 1000           # casts kept per absent receiver; overflow is dropped
    queue_ttl: float = 0.0            # queued casts older than this expire; 0 keeps them
    history_size: int = 50_000        # trace events kept for late subscribers
    max_message_bytes: int = 1 << 20  # larger frames are counted and dropped
    hop_delay: float = 0.0            # added to every routed message (demo pacing)
    seed: int = 0                     # seeds every fault decision

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{f.name} must be a number, not {value!r}")
            if value < 0:
                raise ConfigError(f"{f.name} must be >= 0, not {value!r}")
        if self.heartbeat_interval <= 0 or self.dead_after <= self.heartbeat_interval:
            raise ConfigError("need 0 < heartbeat_interval < dead_after")
        if self.queue_limit < 1 or self.history_size < 1:
            raise ConfigError("queue_limit and history_size must be >= 1")


def from_dict(cls: type, data: dict[str, Any] | None) -> Any:
    """Build a config dataclass from a dict, refusing unknown keys with a clear error."""
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    return cls(**data)
