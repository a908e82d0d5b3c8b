"""What every filter is: ``host_passes(host_state, spec) -> bool``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..host_manager import HostState

__all__ = ["BaseFilter"]


class BaseFilter:
    """Subclass and implement ``host_passes``; ``spec`` is the request spec (flavor
    sizes, ``availability_zone``, ``retry``) and ``config`` the lab's config."""

    def __init__(self, config: Any):
        self.config = config

    def host_passes(self, host: "HostState", spec: dict[str, Any]) -> bool:
        raise NotImplementedError
