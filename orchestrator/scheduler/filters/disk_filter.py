"""DiskFilter: enough free local disk for the root disk."""
from __future__ import annotations

from .base import BaseFilter


class DiskFilter(BaseFilter):
    def host_passes(self, host, spec) -> bool:
        limit = host.local_gb * self.config.disk_allocation_ratio
        return limit - host.local_gb_used >= spec["root_gb"]
