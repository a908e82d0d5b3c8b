"""What every conductor task holds: the database, the scheduler's and the computes' RPC
clients, and the lab's current config (a callable: a task always reads the config of
the moment, so ``lab.configure`` takes effect at the next pass)."""
from __future__ import annotations

from typing import Callable

from ...compute.rpcapi import ComputeAPI
from ...config import LabConfig
from ...db import Database
from ...scheduler.rpcapi import SchedulerAPI

__all__ = ["Task"]


class Task:
    def __init__(self, db: Database, scheduler: SchedulerAPI, compute: ComputeAPI,
                 config: Callable[[], LabConfig]):
        self.db = db
        self.scheduler = scheduler
        self.compute = compute
        self.config = config
