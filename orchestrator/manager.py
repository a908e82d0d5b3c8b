"""What every service's manager shares: the lab's config (changeable while it runs, via
the lab's ``set_config`` call), a database handle for the services that may have one,
the periodic service heartbeat, and writing an instance to ERROR with a fault."""
from __future__ import annotations

import asyncio
import logging
import zlib
from pathlib import Path
from typing import Any, Awaitable, Callable

from . import rundir
from .config import RUNTIME_OPTIONS, ConfigError, LabConfig, from_dict
from .db import Database, NotFound, UnexpectedTaskState
from .messaging.protocol import RemoteError
from .messaging.transport import Transport

__all__ = ["Manager", "load_lab_config", "record_error", "describe_error"]

log = logging.getLogger("orchestrator.manager")


def load_lab_config(run_dir: str | Path) -> LabConfig:
    return from_dict(LabConfig, rundir.read(run_dir).get("config", {}).get("lab"))


class Manager:
    binary = ""
    uses_db = True       # computes set this False: they reach the DB only via conductor

    def __init__(self, transport: Transport, run_dir: Path, host: str):
        self.transport = transport
        self.run_dir = Path(run_dir)
        self.host = host
        self.config = load_lab_config(run_dir)
        self.db = Database(run_dir, self.config.seed) if self.uses_db else None

    async def start(self) -> None:
        self.periodic(self.report_state, "report_interval")

    def periodic(self, job: Callable[[], Awaitable[None] | None], timing: str,
                 initial_rounds: int = 0) -> None:
        """Run ``job`` every ``timing`` seconds (a preset duration, re-read each round so a
        change of preset or speed takes effect), first after ``initial_rounds`` rounds."""
        async def loop() -> None:
            for _ in range(initial_rounds):
                await asyncio.sleep(self.config.timing(timing))
            # A big cloud's hosts start together: after the first round, spread their
            # rounds over the interval (Nova's periodic_fuzzy_delay), not all in one
            # burst; by host name, so the same lab spreads them the same way every run.
            spread = zlib.crc32(f"{self.host}/{timing}".encode()) / 2 ** 32 \
                if self.config.load_factor() > 1 else 0.0
            while True:
                try:
                    result = job()
                    if result is not None:
                        await result
                except Exception:  # a periodic job must not die of one bad round
                    log.exception("periodic %s failed", getattr(job, "__name__", job))
                await asyncio.sleep((1 + spread) * self.config.timing(timing))
                spread = 0.0
        self.transport.spawn(loop())

    def report_state(self) -> Awaitable[None] | None:
        """Nova's servicegroup heartbeat: the service is 'up' while this keeps landing."""
        self.db.service_update(self.binary, self.host, self.binary)
        return None

    # -- the lab's knobs ----------------------------------------------------------------------
    def set_config(self, ctx: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """Change runtime options (RUNTIME_OPTIONS) of this service, right now."""
        bad = sorted(set(changes) - set(RUNTIME_OPTIONS))
        if bad:
            raise ConfigError(f"cannot change {bad} while running; runtime options: "
                              f"{', '.join(RUNTIME_OPTIONS)}")
        self.config = self.config.replace(**changes)
        self.configured()
        return self.config.to_dict()

    def get_config(self, ctx: dict[str, Any]) -> dict[str, Any]:
        return self.config.to_dict()

    def configured(self) -> None:
        """Hook: the config changed."""

    def set_error(self, uuid: str, exc: BaseException, ctx: dict[str, Any], event: str,
                  host: str | None = None, expected: dict[str, Any] | None = None) -> None:
        record_error(self.db, uuid, exc, ctx, event, host, expected)


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(type name, message); a RemoteError is named by the remote exception's type."""
    if isinstance(exc, RemoteError):
        return exc.exc_type, exc.message
    return type(exc).__name__, str(exc)


def record_error(db: Database, uuid: str, exc: BaseException, ctx: dict[str, Any],
                 event: str, host: str | None = None,
                 expected: dict[str, Any] | None = None) -> None:
    """The instance goes to ERROR with a fault naming the exception (a RemoteError is
    named by the remote exception's type: NoValidHost, not RemoteError). ``expected``:
    only if the instance still has these values (``{"vm_state": "building"}`` for a
    build's failure): a late or duplicated failure never rewrites a final state."""
    name, text = describe_error(exc)
    try:
        db.set_error(uuid, getattr(exc, "code", 500), f"{name}: {text}", host,
                     expected=expected, event={"request_id": ctx.get("request_id", ""),
                                               "event": event, "attempt": ctx.get("attempt")})
    except UnexpectedTaskState as refused:
        log.info("instance %s: %s: %s refused (%s)", uuid, event, name, refused)
        return
    except NotFound:
        return  # deleted meanwhile: nothing to report on
    log.warning("instance %s -> ERROR: %s: %s", uuid, name, text)
