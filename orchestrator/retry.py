"""The retry bookkeeping of a request that may be tried on several hosts (builds,
migrations), written once, as Nova's ``scheduler.utils.populate_retry`` is: each pass
counts one more attempt; past ``max_attempts`` (or out of alternates) the request ends
with ``MaxRetriesExceeded``, whose message names the limit and the last failure.

``retry`` is a plain dict, as it travels in messages: ``num_attempts`` (the passes so
far), ``hosts`` (those tried), and ``exc`` (the last failure, when one was handed back).
"""
from __future__ import annotations

from typing import Any

from .exception import MaxRetriesExceeded

__all__ = ["populate_retry", "tried", "exceeded", "exhausted"]


def populate_retry(retry: dict[str, Any] | None) -> dict[str, Any]:
    """This pass's retry: a new dict with one attempt more (the one given is not
    changed: a duplicated message must not count twice)."""
    base = {"num_attempts": 0, "hosts": [], **(retry or {})}
    return {**base, "num_attempts": base["num_attempts"] + 1}


def tried(retry: dict[str, Any], host: str) -> dict[str, Any]:
    """``retry`` with ``host`` added to the hosts tried."""
    return {**retry, "hosts": [*retry["hosts"], host]}


def exceeded(max_attempts: int, instance_uuid: str, last: Any) -> MaxRetriesExceeded:
    """The error when the attempts allowed are used up."""
    return MaxRetriesExceeded(
        f"Exceeded maximum number of retries. Exceeded max scheduling attempts "
        f"{max_attempts} for instance {instance_uuid}. Last exception: {last}")


def exhausted(what: str, last: Any) -> MaxRetriesExceeded:
    """The error when no alternate host is left (``what``: ``build failures for
    instance UUID``, ``migration of instance UUID``)."""
    return MaxRetriesExceeded(
        f"Exhausted all hosts available for retrying {what}. Last exception: {last}")
