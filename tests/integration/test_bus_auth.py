"""Nobody takes a service's place on the bus without the lab's secret (real processes).

Before authentication, a DEALER connecting as ``api.api`` took that name's route (the
bus's ROUTER hands a routing id over to its newest connection): the real service heard
nothing and exited after ``bus_timeout``. Now the bus is a PLAIN server behind a ZAP
handler: without the secret a connection never gets past its handshake, with the secret
its name is its username, and a routing id it chose must be that username."""
from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
import zmq

from orchestrator.messaging import protocol
from orchestrator.messaging.tap import TraceTap

WRONG = "not-the-secret"


@contextmanager
def sockets() -> Iterator[tuple[zmq.Context, list[zmq.Socket]]]:
    ctx = zmq.Context()
    socks: list[zmq.Socket] = []
    try:
        yield ctx, socks
    finally:
        for sock in socks:
            sock.close(0)
        ctx.term()


def _impostor(ctx: zmq.Context, socks: list, endpoint: str, identity: str, *,
              username: str | None = None, password: str | None = None) -> zmq.Socket:
    """A raw DEALER asking for routing id ``identity``, with PLAIN credentials if given."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt_string(zmq.IDENTITY, identity)
    if username is not None:
        sock.setsockopt_string(zmq.PLAIN_USERNAME, username)
        sock.setsockopt_string(zmq.PLAIN_PASSWORD, password or "")
    sock.connect(endpoint)
    socks.append(sock)
    return sock


def _claim(sock: zmq.Socket, name: str) -> None:
    """What a service says on connecting: register, then heartbeat (never blocks)."""
    for method in ("register", "heartbeat"):
        try:
            sock.send(protocol.encode(protocol.envelope("control", name, "bus", method)),
                      zmq.NOBLOCK)
        except zmq.Again:       # not connected (refused): nothing to send to
            pass


def _keep_claiming(impostors: dict[zmq.Socket, str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sock, name in impostors.items():
            _claim(sock, name)
        time.sleep(0.2)


def _counters(cluster) -> dict[str, int]:
    return cluster.client().control("stats")["counters"]


def _anonymous(counters: dict[str, int]) -> int:
    """Attempts without credentials: the bus sees the mechanisms differ, or the client
    (which noticed first) hanging up; either way, refused before any name."""
    return counters.get("auth.no_credentials", 0) + counters.get("auth.bad_handshake", 0)


def _refusal_events(cluster) -> set[tuple[str, str]]:
    events = cluster.client().control("history")["events"]
    return {(e["src"], e["reason"]) for e in events
            if e["kind"] == "control" and e["method"] == "connect" and e["phase"] == "dropped"}


def _services_untouched(cluster, peers, before: dict[str, Any], pids: dict[str, int]) -> None:
    after = peers(cluster)
    for name, pid in pids.items():
        assert after[name]["alive"], f"{name} is down at the bus"
        assert after[name]["registered_at"] == before[name]["registered_at"], \
            f"someone registered as {name}"
        assert cluster.child(name).alive() and cluster.child(name).pid == pid


SERVICES = ("api.api", "compute.compute1")


@pytest.mark.timeout(90)
def test_impostors_without_the_secret_are_refused_and_the_lab_keeps_building(make_lab, peers,
                                                                            wait_until):
    lab = make_lab(computes=1)
    cluster = lab.cluster
    before = peers(cluster)
    pids = {name: cluster.child(name).pid for name in SERVICES}
    with sockets() as (ctx, socks):
        impostors = {}
        for name in SERVICES:
            impostors[_impostor(ctx, socks, cluster.endpoints["bus"], name)] = name
            impostors[_impostor(ctx, socks, cluster.endpoints["bus"], name, username=name,
                                password=WRONG)] = name
        # longer than the bus takes to call a silent peer down: a hijacked service would be
        # down by then (its heartbeats lost), and its impostor registered in its place
        _keep_claiming(impostors, 2 * cluster.bus_config.dead_after + 1)
        counters = wait_until(lambda: (c := _counters(cluster)).get("auth.wrong_secret", 0) >= 2
                              and _anonymous(c) >= 2 and c, 10, "refusals counted")
        assert counters["auth_refused"] == sum(v for k, v in counters.items()
                                               if k.startswith("auth."))
        _services_untouched(cluster, peers, before, pids)
        record = lab.wait(lab.boot("after-impostors"), timeout=30)
        assert record["status"] == "ACTIVE"
        assert record["OS-EXT-SRV-ATTR:host"] == "compute1"
        assert not any(sock.poll(0) for sock in impostors), "an impostor heard something"
    refused = _refusal_events(cluster)
    assert {("api.api", "auth: wrong_secret"),
            ("compute.compute1", "auth: wrong_secret")} <= refused
    assert {reason for src, reason in refused if src == ""} <= {"auth: no_credentials",
                                                                "auth: bad_handshake"}
    log = (lab.run_dir / "logs" / "bus.log").read_text()
    assert "claiming 'api.api'" in log and "wrong_secret" in log


@pytest.mark.timeout(90)
def test_the_secret_under_another_name_is_refused(make_lab, peers, wait_until):
    lab = make_lab(computes=1)
    cluster = lab.cluster
    before = peers(cluster)
    pids = {name: cluster.child(name).pid for name in SERVICES}
    with sockets() as (ctx, socks):
        endpoint = cluster.endpoints["bus"]
        liars = {
            _impostor(ctx, socks, endpoint, "api.api", username="lab.student",
                      password=cluster.secret): "api.api",
            # a name nobody holds as username: it gets neither that one nor compute1
            _impostor(ctx, socks, endpoint, "compute.compute1", username="compute.compute9",
                      password=cluster.secret): "compute.compute1",
        }
        _keep_claiming(liars, 2 * cluster.bus_config.dead_after + 1)
        counters = _counters(cluster)
        assert counters["auth.identity_mismatch"] == 2      # once per connection
        assert counters["refused_frames"] > 0               # and nothing it said counted
        assert counters["auth_refused"] == 2
        _services_untouched(cluster, peers, before, pids)
        assert "compute.compute9" not in peers(cluster)
        record = lab.wait(lab.boot("after-liars"), timeout=30)
        assert record["status"] == "ACTIVE" and record["OS-EXT-SRV-ATTR:host"] == "compute1"
        assert not any(sock.poll(0) for sock in liars), "a liar heard something"
    assert {("api.api", "auth: identity_mismatch"),
            ("compute.compute1", "auth: identity_mismatch")} <= _refusal_events(cluster)


@pytest.mark.timeout(90)
def test_a_killed_compute_restarted_takes_its_name_back_and_builds(make_lab, peers):
    lab = make_lab(computes=1)
    cluster = lab.cluster
    assert lab.wait(lab.boot("before"), timeout=30)["status"] == "ACTIVE"
    killed_at = time.time()
    lab.kill("compute1")                  # SIGKILL: no unregister
    lab.restart("compute1")               # returns once it has registered anew
    peer = peers(cluster)["compute.compute1"]
    assert peer["alive"] and peer["registered_at"] > killed_at
    record = lab.wait(lab.boot("after"), timeout=30)
    assert record["status"] == "ACTIVE" and record["OS-EXT-SRV-ATTR:host"] == "compute1"
    assert _counters(cluster).get("auth_refused", 0) == 0


@pytest.mark.timeout(60)
def test_a_restarted_service_takes_its_name_while_the_old_one_still_holds_it(
        make_cluster, peers, received, wait_until):
    # slow liveness: the bus would need 30 s to call the old process down
    cluster = make_cluster(heartbeat_interval=0.5, dead_after=30.0, bus_timeout=40.0)
    old = cluster.spawn("echo", "e1", wait=True)
    client = cluster.client()
    client.cast("echo", "record", server="e1", i=1)
    wait_until(lambda: received(cluster, "e1"), 10, "the old e1 recorded the cast")
    cluster.pause("echo.e1")              # its connection stays open, it looks alive
    started = time.time()
    new = subprocess.Popen([sys.executable, "-m", "orchestrator", "echo", "--run-dir",
                            str(cluster.run_dir), "--host", "e1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: peers(cluster)["echo.e1"]["registered_at"] >= started, 20,
                   "the new e1 registered")
        assert received(cluster, "e1") == []  # answered by the new process, at once
        cluster.resume("echo.e1")             # the old one speaks again: not as e1 any more
        wait_until(lambda: _counters(cluster).get("superseded_frames", 0) > 0, 10,
                   "the old connection's heartbeats dropped")
        assert received(cluster, "e1") == []
        assert old.alive() and new.poll() is None
    finally:
        new.kill()
        new.wait()


@pytest.mark.timeout(60)
def test_the_trace_tap_without_the_secret_gets_nothing(cluster, live_tap, wait_until):
    tap = live_tap(cluster)               # the lab's own, with the secret
    with sockets() as (ctx, socks):
        subs = []
        for password in (None, WRONG):
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            if password:
                sub.setsockopt_string(zmq.PLAIN_USERNAME, "lab.tap")
                sub.setsockopt_string(zmq.PLAIN_PASSWORD, password)
            sub.connect(cluster.endpoints["trace"])
            socks.append(sub)
            subs.append(sub)
        with pytest.raises((RuntimeError, TimeoutError)):
            TraceTap(cluster.endpoints["bus"], cluster.endpoints["trace"]).start()
        client = cluster.client()
        for _ in range(20):
            mid = client.fanout("nobody", "ping")
            tap.wait_for(lambda e, mid=mid: e["msg_id"] == mid, timeout=5)
            time.sleep(0.05)
        assert not any(sub.poll(200) for sub in subs), "a subscriber without the secret got events"
    counters = wait_until(lambda: (c := _counters(cluster)).get("auth.wrong_secret", 0) >= 1
                          and _anonymous(c) >= 1 and c, 10, "refused subscribers counted")
    assert counters["auth_refused"] >= 2
