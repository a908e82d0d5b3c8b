"""What a class's door (door.py) keeps between messages, bounded whatever students send:

- ``Mailboxes``: per student's name, the calls the door delivered to it that still await
  its reply (only a reply to one of them, to its caller, may go up to the bus: at most
  ``MAX_PENDING``, oldest forgotten first), and what the bus sent it while its student
  was reconnecting (at most ``MAX_WAITING``, oldest dropped first);
- ``Report``: what the door refused and cut off since it last told the bus (at most
  ``MAX_REFUSALS`` refusals a report; a flood beyond that is counted, not listed).
"""
from __future__ import annotations

from collections import Counter, OrderedDict, deque
from typing import Any

from . import auth, curve, protocol

__all__ = ["Mailboxes", "Report", "MAX_PENDING", "MAX_WAITING", "MAX_REFUSALS"]

MAX_PENDING = 4096          # calls awaiting a student's reply, per name
MAX_WAITING = 256           # messages held for a name while its student reconnects
MAX_REFUSALS = 200          # refusals per report (the rest are counted)


class Mailboxes:
    def __init__(self, stats: Counter[str]):
        self.stats = stats
        self.pending: dict[str, OrderedDict[str, str]] = {}    # name -> msg_id -> caller
        self.waiting: dict[str, deque[bytes]] = {}

    def delivered(self, name: str, env: dict[str, Any]) -> None:
        """The bus sent ``name`` this envelope: if a call, its reply is now allowed."""
        if env["kind"] == "call":
            calls = self.pending.setdefault(name, OrderedDict())
            calls[env["msg_id"]] = env["src"]
            if len(calls) > MAX_PENDING:
                calls.popitem(last=False)

    def answers_a_call(self, name: str, env: dict[str, Any]) -> bool:
        """Whether ``env`` from ``name`` may go up: anything but a reply, or a reply to a
        call delivered to ``name``, addressed to its caller (once)."""
        if env["kind"] != "reply":
            return True
        caller = self.pending.get(name, {}).pop(env["reply_to"], None)
        return caller is not None and caller == protocol.identity(env["topic"], env["server"])

    def hold(self, name: str, data: bytes) -> None:
        """Keep a message for a name whose student is reconnecting."""
        held = self.waiting.setdefault(name, deque(maxlen=MAX_WAITING))
        if len(held) == MAX_WAITING:
            self.stats["undeliverable"] += 1
        held.append(data)

    def held(self, name: str) -> deque[bytes] | tuple[()]:
        """What waited for ``name`` (now back), taken."""
        return self.waiting.pop(name, ())

    def forget(self, name: str) -> None:
        self.pending.pop(name, None)
        self.waiting.pop(name, None)


class Report:
    def __init__(self, stats: Counter[str]):
        self.stats = stats
        self.refusals: list[dict[str, str]] = []
        self.cut_off: list[str] = []

    def refuse(self, claimed: str, reason: str, peer: str,
               domain: str = curve.ZAP_DOMAIN_CLASS_BUS) -> None:
        self.refusals.append({"domain": domain, "claimed": claimed[:auth.CLAIM_CHARS],
                              "reason": reason, "peer": peer[:200]})

    def take(self) -> dict[str, Any]:
        """The ``door_report`` control's arguments (with the door's counters), and a new
        report begun."""
        refusals = self.refusals
        if len(refusals) > MAX_REFUSALS:      # a flood: the first ones, the rest counted
            self.stats["refusals_unreported"] += len(refusals) - MAX_REFUSALS
            refusals = refusals[:MAX_REFUSALS]
        report = {"refusals": refusals, "cut_off": self.cut_off,
                  "counters": dict(self.stats)}
        self.refusals, self.cut_off = [], []
        return report
