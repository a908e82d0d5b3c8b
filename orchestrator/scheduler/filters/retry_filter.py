"""RetryFilter: never the hosts this build already tried (the reschedule loop's memory)."""
from __future__ import annotations

from .base import BaseFilter


class RetryFilter(BaseFilter):
    def host_passes(self, host, spec) -> bool:
        return host.host not in (spec.get("retry") or {}).get("hosts", [])
