"""What every filter is: ``host_passes(host_state, spec) -> bool``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..host_manager import HostState

__all__ = ["BaseFilter"]


class BaseFilter:
    """Subclass and implement ``host_passes``; ``spec`` is the request spec (flavor
    sizes, ``availability_zone``, ``retry``) and ``config`` the lab's config.

    ``RUN_ON_REBUILD``: whether the filter runs when a rebuild asks the scheduler to check
    the instance's own host (Nova's attribute of the same name: the instance is there
    already, so resource filters would count it twice; only image checks run)."""

    RUN_ON_REBUILD = False

    def __init__(self, config: Any):
        self.config = config

    def host_passes(self, host: "HostState", spec: dict[str, Any]) -> bool:
        raise NotImplementedError
