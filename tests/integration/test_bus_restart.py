"""The bus dies and comes back: calls in flight fail with MessagingTimeout (never hang),
every service registers again by itself, builds go on, and what the dead bus had queued
is visible in the trace as queued and never routed."""
from __future__ import annotations

import threading
import time

import pytest

from orchestrator.messaging.protocol import MessagingTimeout

pytestmark = pytest.mark.timeout(120)


def test_a_killed_bus_loses_its_queue_visibly_and_the_lab_carries_on(make_lab, wait_until):
    lab = make_lab(computes=2)
    outcome: dict = {}

    def call_a_server_that_is_not_there() -> None:
        started = time.monotonic()
        try:
            lab.bus().call("compute", "resources", server="ghost", timeout=3)
            outcome["result"] = "answered"
        except MessagingTimeout:
            outcome["result"] = "MessagingTimeout"
        outcome["after"] = time.monotonic() - started

    mark = lab.mark()
    caller = threading.Thread(target=call_a_server_that_is_not_there)
    caller.start()
    wait_until(lambda: lab.trace(since=mark).where(phase="queued", dst="compute.ghost"),
               10, "the call queued at the bus")
    lab.kill("bus")
    caller.join(10)
    assert not caller.is_alive(), "a call in flight must not hang when the bus dies"
    assert outcome["result"] == "MessagingTimeout" and outcome["after"] < 6, outcome

    lab.restart("bus")
    wait_until(lambda: all(s["state"] == "up" for s in lab.services()), 30,
               "every service registered again by itself")
    record = lab.wait(lab.boot("after-restart"), timeout=60)
    assert record["status"] == "ACTIVE"

    events = lab.trace(since=mark)
    [queued] = events.where(phase="queued", dst="compute.ghost")
    fates = {e["phase"] for e in events if e["msg_id"] == queued["msg_id"]}
    assert "routed" not in fates, "the dead bus's queue is lost, and the trace shows it"


def test_the_labs_trace_outlives_a_paused_bus(make_lab, wait_until):
    lab = make_lab(computes=1)
    lab.pause("bus")
    time.sleep(6.5)          # longer than the tap's 5 s control timeout: it must not die
    lab.resume("bus")
    record = lab.wait(lab.boot("after-pause"), timeout=60)
    assert record["status"] == "ACTIVE"
    wait_until(lambda: lab.trace().where(method="build_and_run_instance",
                                         instance=record["id"]), 20,
               "the build after the pause in the lab's own trace")
    assert not lab.tap.error
