"""What every weigher is: ``weigh(host_state, spec) -> float`` and a ``multiplier``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..host_manager import HostState

__all__ = ["BaseWeigher", "normalize"]


class BaseWeigher:
    def __init__(self, config: Any):
        self.config = config

    def multiplier(self) -> float:
        return 1.0

    def weigh(self, host: "HostState", spec: dict[str, Any]) -> float:
        raise NotImplementedError


def normalize(values: list[float]) -> list[float]:
    """Scale to 0..1 (all equal -> all 0), Nova's ``weights.normalize``."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return [0.0 for _ in values]
    return [(v - lo) / (hi - lo) for v in values]
