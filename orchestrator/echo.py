"""The echo service: a test double shipped as public API (like httpx's MockTransport).

It exercises the bus from the outside: it answers calls, raises on request, sleeps,
records the casts and fanouts it receives, and counts them for the benchmark. Tests and
``python -m lab bench bus`` start it as a real process: ``python -m orchestrator echo``.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from .messaging.transport import Transport

__all__ = ["EchoManager", "EchoFailure"]


class EchoFailure(Exception):
    """Raised on purpose by ``fail``; its type name travels back in RemoteError."""


class EchoManager:
    def __init__(self, transport: Transport, run_dir: Path, host: str):
        self.host = host
        self.records: list[dict[str, Any]] = []
        self.sunk = 0

    def echo(self, ctx: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"host": self.host, "args": kwargs, "ctx": ctx}

    def fail(self, ctx: dict[str, Any], message: str = "asked to fail") -> None:
        raise EchoFailure(message)

    async def sleep(self, ctx: dict[str, Any], seconds: float = 0.0) -> str:
        await asyncio.sleep(float(seconds))
        return self.host

    def record(self, ctx: dict[str, Any], **kwargs: Any) -> None:
        self.records.append({"ctx": ctx, "args": kwargs})

    def received(self, ctx: dict[str, Any]) -> list[dict[str, Any]]:
        return self.records

    def sink(self, ctx: dict[str, Any], payload: Any = None) -> None:
        self.sunk += 1

    def sunk_count(self, ctx: dict[str, Any]) -> int:
        return self.sunk
