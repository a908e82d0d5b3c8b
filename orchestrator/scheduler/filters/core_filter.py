"""CoreFilter: enough free vCPUs, with ``cpu_allocation_ratio`` overcommit."""
from __future__ import annotations

from .base import BaseFilter


class CoreFilter(BaseFilter):
    def host_passes(self, host, spec) -> bool:
        limit = host.vcpus * self.config.cpu_allocation_ratio
        return limit - host.vcpus_used >= spec["vcpus"]
