"""Scheduler weighers: one small class per file, and the explicit registry. Each weigher
gives every host a raw weight; weights are normalised to 0..1 across the candidate hosts
and multiplied by the weigher's multiplier (as Nova does); the heaviest host wins, ties
broken by host name so a run is reproducible."""
from __future__ import annotations

from .base import BaseWeigher
from .build_failure import BuildFailureWeigher
from .ram import RAMWeigher

__all__ = ["BaseWeigher", "WEIGHER_CLASSES", "RAMWeigher", "BuildFailureWeigher"]

WEIGHER_CLASSES: dict[str, type[BaseWeigher]] = {cls.__name__: cls for cls in (
    RAMWeigher, BuildFailureWeigher)}
