"""BuildFailureWeigher: hosts with recent build failures sink (the count resets when the
host builds successfully), so a failing compute stops attracting builds."""
from __future__ import annotations

from .base import BaseWeigher


class BuildFailureWeigher(BaseWeigher):
    def multiplier(self) -> float:
        return self.config.build_failure_weight_multiplier

    def weigh(self, host, spec) -> float:
        return -float(host.failed_builds)
