"""RAMWeigher: more free RAM weighs more (spread); a negative multiplier stacks."""
from __future__ import annotations

from .base import BaseWeigher


class RAMWeigher(BaseWeigher):
    def multiplier(self) -> float:
        return self.config.ram_weight_multiplier

    def weigh(self, host, spec) -> float:
        return host.memory_mb * self.config.ram_allocation_ratio - host.memory_mb_used
