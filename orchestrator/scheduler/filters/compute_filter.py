"""ComputeFilter: only hosts whose compute service is up and enabled."""
from __future__ import annotations

from .base import BaseFilter


class ComputeFilter(BaseFilter):
    def host_passes(self, host, spec) -> bool:
        return host.service_up and not host.disabled
