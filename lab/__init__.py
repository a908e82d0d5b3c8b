"""Conductor Lab's instruments: start a lab's processes, drive them, watch their messages.
Imports go one way: notebooks -> lab -> orchestrator."""
from __future__ import annotations

from .api_client import ApiClient, ApiError
from .cluster import Child, Cluster, LabError
from .lab import Lab
from .replay import replay

__all__ = ["ApiClient", "ApiError", "Child", "Cluster", "Lab", "LabError", "replay"]
