"""RamFilter: enough free RAM, with ``ram_allocation_ratio`` overcommit."""
from __future__ import annotations

from .base import BaseFilter


class RamFilter(BaseFilter):
    def host_passes(self, host, spec) -> bool:
        limit = host.memory_mb * self.config.ram_allocation_ratio
        return limit - host.memory_mb_used >= spec["memory_mb"]
