"""Lesson 07, your own scheduler: where builds landed, and a friendly check of a
student's prediction against what the lab measured."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

__all__ = ["placement", "check_prediction", "rejections"]


def placement(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Builds per host (ACTIVE ones), hosts in name order."""
    counts = Counter(r["OS-EXT-SRV-ATTR:host"] for r in records if r["status"] == "ACTIVE")
    return dict(sorted(counts.items()))


def check_prediction(predicted: Any, measured: Any, what: str = "result") -> str:
    """A sentence telling the student whether the prediction held, and what to do if not."""
    if predicted == measured:
        return f"✔ Your prediction holds: {what} = {measured!r}."
    return (f"✘ You predicted {what} = {predicted!r}, the lab measured {measured!r}. "
            "Look at the dashboard's time-space diagram and lab.bus().call('scheduler', "
            "'last_decisions') to see how the scheduler ranked the hosts, then adjust "
            "your class or your prediction and run the cells again.")


def rejections(decisions: list[dict[str, Any]]) -> dict[str, str]:
    """From the scheduler's ``last_decisions``: which filter turned each host down."""
    out: dict[str, str] = {}
    for decision in decisions:
        out.update(decision.get("rejected", {}))
    return dict(sorted(out.items()))
