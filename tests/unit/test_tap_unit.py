"""TraceTap's bookkeeping without a bus: waiting keeps working after old events are
trimmed (a long-running lab), and events are kept in seq order without duplicates."""
from __future__ import annotations

import threading

import pytest

from orchestrator.messaging.tap import TraceTap


def ev(seq: int) -> dict:
    return {"seq": seq, "kind": "cast", "method": "m"}


def test_wait_for_sees_events_after_the_list_was_trimmed():
    tap = TraceTap("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", max_events=5)
    tap._add([ev(i) for i in range(1, 6)])
    threading.Timer(0.05, lambda: tap._add([ev(6), ev(7)])).start()
    assert tap.wait_for(lambda e: e["seq"] == 7, timeout=5)["seq"] == 7
    assert [e["seq"] for e in tap.events] == [3, 4, 5, 6, 7]


def test_duplicates_and_old_events_are_ignored_and_since_is_respected():
    tap = TraceTap("tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
    tap._add([ev(1), ev(2)])
    tap._add([ev(2), ev(1), ev(3)])
    assert [e["seq"] for e in tap.events] == [1, 2, 3]
    assert tap.wait_for(lambda e: True, since=2, timeout=1)["seq"] == 3
    with pytest.raises(TimeoutError):
        tap.wait_for(lambda e: e["seq"] == 9, timeout=0.1)
