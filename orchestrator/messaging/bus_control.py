"""The bus's control verbs (``kind == "control"``; protocol.py, "Control messages"):
what the lab asks the bus (``history``, ``stats``, ``peers``, ``get_faults``,
``set_faults``: each answered with a reply), and the one-way notices it takes: a
service's register/heartbeat/unregister, a caller's ``expired`` (a call it gave up on,
made visible in the trace), and a class door's ``door_report`` (whom it refused or cut
off: counted, logged and traced as the bus's own refusals, the first ten then one in
LOG_EVERY, so a stray client floods neither the log nor the dashboard).

``ControlVerbs`` is a part of ``Bus`` (its base class), kept here so the broker's module
is its loop and its routing; it works on the bus's routes, faults, stats and trace log.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from . import auth, protocol
from .protocol import BUS_IDENTITY, DOOR_IDENTITY
from .faults import FaultError, FaultTable
from .routing import RoutingTable
from .tracelog import HISTORY_PAGE, TraceLog

__all__ = ["ControlVerbs", "LOG_EVERY"]

log = logging.getLogger("orchestrator.bus")
LOG_EVERY = 100               # bad frames, refusals: log the first 10, then one in LOG_EVERY


class ControlVerbs:
    # what the bus holds that the verbs use (see Bus), and its _send, _bad, _trace and
    # _release_held
    routes: RoutingTable
    faults: FaultTable
    stats: Counter[str]
    tracelog: TraceLog
    gate: auth.Gate | None
    door_counters: dict[str, int]
    _held: list[tuple[dict, bytes, str]]
    _delayed: list[tuple[float, int, dict, bytes, str, str]]

    def process_control(self, env: dict[str, Any]) -> None:
        method, args = env["method"], env["args"]
        if method in (protocol.REGISTER, protocol.HEARTBEAT):
            return
        if method == protocol.UNREGISTER:
            self.routes.remove(env["src"])
            return
        if method == protocol.DOOR_REPORT:   # one-way, from a class's door only (door.py)
            if env["src"] == DOOR_IDENTITY and self.gate is not None:
                try:
                    self._door_report(**args)
                except (TypeError, ValueError, AttributeError) as exc:
                    self._bad(env["src"].encode(), "door_report", str(exc))
            return
        if method == protocol.EXPIRED:  # one-way: a caller's notice, answered with nothing
            try:
                self.control_expired(env["src"], **args)
            except Exception as exc:
                self._bad(env["src"].encode(), "bad_control", f"expired: {exc}")
            return
        handler = getattr(self, f"control_{method}", None)
        if env["topic"] != protocol.CONTROL_TOPIC or handler is None:
            return self._control_reply(env, error=ValueError(f"unknown control {method!r}"))
        try:
            result = handler(**args)
        except Exception as exc:  # input from outside: answer with the error, never die
            return self._control_reply(env, error=exc)
        self._control_reply(env, result=result)

    def _control_reply(self, env: dict[str, Any], **kw: Any) -> None:
        reply = protocol.reply_to(env, BUS_IDENTITY, **kw)
        self._send(env["src"], protocol.encode(reply))

    # -- control requests (the lab's side) -----------------------------------------------
    def control_history(self, since: int = 0, limit: int = HISTORY_PAGE) -> dict[str, Any]:
        return self.tracelog.page(since, limit)

    def control_stats(self) -> dict[str, Any]:
        counters = {**self.stats, **{f"door.{k}": v for k, v in self.door_counters.items()}}
        return {"counters": counters, "queued": self.routes.queued(),
                "held": len(self._held), "delayed": len(self._delayed), "seq": self.tracelog.seq}

    def control_peers(self) -> list[dict[str, Any]]:
        return self.routes.describe()

    def control_get_faults(self) -> dict[str, Any]:
        return self.faults.describe()

    def control_set_faults(self, **spec: Any) -> dict[str, Any]:
        try:
            self.faults.configure(spec)
        except FaultError as exc:
            raise ValueError(str(exc)) from None
        self._release_held()
        return self.faults.describe()

    def control_expired(self, sender: str, call: dict[str, Any]) -> None:
        """A caller gave up on ``call`` (the envelope it sent): make the timeout visible.
        Only the caller itself may say so."""
        env = protocol.decode(protocol.encode(call))  # validates every field
        if env["src"] != sender or env["kind"] != "call":
            raise ValueError(f"{sender} cannot expire a {env['kind']} sent by {env['src']}")
        self._trace(env, "expired", protocol.identity(env["topic"], env["server"]),
                    0, "call timeout")

    # -- who was turned away ----------------------------------------------------------
    def _refused(self, refusal: auth.Refusal) -> None:
        """Count, log and trace a refused connection (the first ten, then one in
        LOG_EVERY: a stray client must not flood the log or the dashboard)."""
        self.stats["auth_refused"] += 1
        self.stats[f"auth.{refusal.reason}"] += 1
        n = self.stats["auth_refused"]
        if n <= 10 or n % LOG_EVERY == 0:
            log.warning("refused connection #%d to %s claiming %r (%s): %s", n,
                        refusal.domain, refusal.claimed, refusal.peer, refusal.reason)
            env = protocol.control(refusal.claimed, protocol.CONNECT)
            self._trace(env, "dropped", BUS_IDENTITY, 0, f"auth: {refusal.reason}")

    def _door_report(self, refusals: list[dict[str, str]] = (),   # type: ignore[assignment]
                     cut_off: list[str] = (), counters: dict[str, int] | None = None,
                     **_: Any) -> None:
        """What a class's door refused and cut off since its last report, and its
        counters: counted, logged and traced here as the bus's own refusals."""
        for refusal in refusals:
            try:
                self._refused(auth.Refusal(str(refusal["domain"]), str(refusal["claimed"]),
                                           str(refusal["reason"]), str(refusal["peer"])))
            except (KeyError, TypeError):
                self.stats["bad.door_report"] += 1
        for name in cut_off:
            self._cut_off(str(name))
        if isinstance(counters, dict):
            self.door_counters = counters

    def _cut_off(self, name: str) -> None:
        """A revoked student's peer: no route to it (the door closed its uplink)."""
        self.routes.remove(name)
        self.stats["auth.revoked"] += 1
        log.warning("%s cut off: its student's key was revoked", name)
        env = protocol.control(name, protocol.CONNECT)
        self._trace(env, "dropped", BUS_IDENTITY, 0, "auth: revoked_key")
