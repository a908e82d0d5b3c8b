"""Conductor Lab's instruments: start a lab's processes, drive them, watch their messages.
Imports go one way: notebooks -> lab -> orchestrator."""
from __future__ import annotations

from .cluster import Child, Cluster, LabError

__all__ = ["Child", "Cluster", "LabError"]
