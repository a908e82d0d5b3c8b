"""Helpers for the integration tests (real bus and echo processes over TCP).

Helpers are handed out as fixtures: with ``--import-mode=importlib`` a test module cannot
import this file by name.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import pytest

from lab.cluster import Cluster
from orchestrator.messaging.tap import TraceTap

PROBE_TOPIC = "tap-probe"   # a fanout here has no receiver: one "dropped" event, no state


def _peers(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {p["identity"]: p for p in cluster.client().control("peers")}


@pytest.fixture
def peers() -> Callable[[Cluster], dict[str, dict[str, Any]]]:
    """``peers(cluster)`` -> the bus's peer table keyed by identity."""
    return _peers


def prime(tap: TraceTap, cluster: Cluster, timeout: float = 10.0) -> TraceTap:
    """Make sure the tap's live subscription is up before a test relies on ``wait_for``.

    ``TraceTap.start()`` returns once history is loaded, but its SUB socket may not be
    subscribed yet (zguide's slow joiner); an event published in that window reaches the
    tap late, from history (test_trace.py tests that recovery on its own). So that the
    other tests do not depend on it: send probe fanouts (each makes exactly one trace
    event and changes no bus state) until one is seen live; from then on every event
    reaches the tap on the subscription."""
    client = cluster.client()
    deadline = time.monotonic() + timeout
    while True:
        mid = client.fanout(PROBE_TOPIC, "ping")
        try:
            tap.wait_for(lambda e: e["msg_id"] == mid, timeout=0.5)
            return tap
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


@pytest.fixture
def live_tap(make_cluster) -> Iterator[Callable[[Cluster], TraceTap]]:
    """``live_tap(cluster)`` -> a started, primed TraceTap; stopped at teardown (before
    the clusters, since this fixture depends on ``make_cluster``)."""
    taps: list[TraceTap] = []

    def start(cluster: Cluster) -> TraceTap:
        tap = cluster.tap()
        taps.append(tap)
        return prime(tap, cluster)

    yield start
    for tap in taps:
        tap.stop()


@pytest.fixture
def primer() -> Callable[[TraceTap, Cluster], TraceTap]:
    return prime


def records(cluster: Cluster, host: str) -> list[dict[str, Any]]:
    """What echo ``host`` has recorded (casts and fanouts to ``record``), in order."""
    return cluster.client().call("echo", "received", server=host)


@pytest.fixture
def received() -> Callable[[Cluster, str], list[dict[str, Any]]]:
    return records


WORKFLOW_METHODS = {"build_instances", "select_destinations", "build_and_run_instance",
                    "run_instance"}


def _workflow(lab, record) -> list[dict[str, Any]]:
    """Delivered workflow messages (no DB proxy, no lab control) of one server's build."""
    trace = lab.trace().for_instance(record["id"], record["OS-EXT-LAB:request_id"])
    return [e for e in trace.routed() if e["method"] in WORKFLOW_METHODS]


@pytest.fixture
def workflow() -> Callable[..., list[dict[str, Any]]]:
    """``workflow(lab, server_record)`` -> the build's workflow messages, in order."""
    return _workflow
