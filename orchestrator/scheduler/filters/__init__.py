"""Scheduler filters: one small class per file, and the explicit registry. A filter says
whether a host *can* take the request (``host_passes``); the first filter a host fails
is recorded, so the lab can say why each host was turned down."""
from __future__ import annotations

from .availability_zone_filter import AvailabilityZoneFilter
from .base import BaseFilter
from .compute_filter import ComputeFilter
from .core_filter import CoreFilter
from .disk_filter import DiskFilter
from .ram_filter import RamFilter
from .retry_filter import RetryFilter

__all__ = ["BaseFilter", "FILTER_CLASSES", "ComputeFilter", "RamFilter", "CoreFilter",
           "DiskFilter", "AvailabilityZoneFilter", "RetryFilter"]

FILTER_CLASSES: dict[str, type[BaseFilter]] = {cls.__name__: cls for cls in (
    ComputeFilter, AvailabilityZoneFilter, RamFilter, CoreFilter, DiskFilter, RetryFilter)}
