"""AvailabilityZoneFilter: the host is in the requested zone (any, if none requested)."""
from __future__ import annotations

from .base import BaseFilter


class AvailabilityZoneFilter(BaseFilter):
    def host_passes(self, host, spec) -> bool:
        zone = spec.get("availability_zone")
        return not zone or host.availability_zone == zone
