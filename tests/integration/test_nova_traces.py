"""The lab's messages against real Nova's: each scenario of ``tests/nova_traces/`` (RPC
sequences captured from Nova 34 running its own functional tests, and ``derived/``, move
paths read from Nova's code) played on a real lab with alternates, as Nova always asks
for them. The lab's normalized trace must equal the file itself, request by request (who
sends what kind of message to whom); a reply Nova shows carrying an error (``ERROR
NoValidHost``) must be named by the fault the lab's server ends with. Every file must
have its play here."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from lab import nova_traces
from lab.lab import Lab
from lab.testing import wait_for_service

pytestmark = pytest.mark.timeout(90)

TRACES = Path(__file__).resolve().parents[1] / "nova_traces"
FILES = sorted(TRACES.rglob("*.norm.txt"))
HOST = "OS-EXT-SRV-ATTR:host"


def fault(lab: Lab, server: str) -> str:
    record = lab.server(server)
    shown = record.get("fault") or record.get("OS-EXT-LAB:last_fault") or {}
    return shown.get("message", "")


def boot_on_compute1(lab: Lab) -> str:
    server = lab.boot("vm1")
    assert lab.wait(server)[HOST] == "compute1"
    return server


# -- the plays: what the test in Nova did, done to a lab ------------------------------------------
# Each takes a lab with alternates on and returns its server and the computes it left
# down. Computes are chosen in name order when nothing else differs (compute1 first).
Played = tuple[str, tuple[str, ...]]


def a_plain_boot(lab: Lab) -> Played:
    server = lab.boot("vm1")
    assert lab.wait(server)["status"] == "ACTIVE"
    return server, ()


def b_reschedule_boot(lab: Lab) -> Played:
    lab.set_failure("compute1", reschedule=1.0)
    server = lab.boot("vm1")
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("ACTIVE", "compute2")
    return server, ()


def c2_build_fails_all_hosts(lab: Lab) -> Played:
    for host in ("compute1", "compute2"):
        lab.set_failure(host, reschedule=1.0)
    server = lab.boot("vm1")
    assert lab.wait(server)["status"] == "ERROR"
    assert fault(lab, server).startswith("MaxRetriesExceeded: Exhausted all hosts")
    return server, ()


def c4_no_valid_host(lab: Lab) -> Played:
    server = lab.boot("vm1")
    assert lab.wait(server)["status"] == "ERROR"
    return server, ()


def d1_cold_migrate_confirm(lab: Lab) -> Played:
    server = boot_on_compute1(lab)
    assert lab.migrate(server) == 202
    assert lab.wait(server)["status"] == "VERIFY_RESIZE"
    assert lab.confirm_resize(server) == 204
    assert lab.wait(server)[HOST] == "compute2"
    lab.delete(server)
    assert lab.wait(server)["status"] == "DELETED"
    return server, ()


def d2_migrate_reschedule(lab: Lab) -> Played:
    server = boot_on_compute1(lab)
    lab.set_failure("compute2", reschedule=1.0)
    assert lab.migrate(server) == 202
    record = lab.wait(server)
    # the destination's call was answered NoValidHost: ERROR, where the instance still is
    # (Nova's _reschedule_resize_or_reraise)
    assert (record["status"], record[HOST]) == ("ERROR", "compute1")
    assert [m["status"] for m in lab.migrations(server)] == ["error"]
    return server, ()


def e1_resize_reschedule_alternate(lab: Lab) -> Played:
    server = boot_on_compute1(lab)
    lab.set_failure("compute2", reschedule=1.0)
    assert lab.resize(server, "m1.medium") == 202
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("VERIFY_RESIZE", "compute3")
    return server, ()


def e2_resize_revert(lab: Lab) -> Played:
    server = boot_on_compute1(lab)
    assert lab.resize(server, "m1.medium") == 202
    assert lab.wait(server)["status"] == "VERIFY_RESIZE"
    assert lab.revert_resize(server) == 202
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("ACTIVE", "compute1")
    return server, ()


def e3_rebuild_new_image(lab: Lab) -> Played:
    server = boot_on_compute1(lab)
    assert lab.rebuild(server, "fedora") == 202
    assert lab.wait(server)["status"] == "ACTIVE"
    return server, ()


def e4_evacuate(lab: Lab) -> Played:
    server = boot_on_compute1(lab)
    lab.kill("compute1")
    wait_for_service(lab, "compute1", "down", timeout=20)
    assert lab.evacuate(server) == 200
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("ACTIVE", "compute2")
    return server, ("compute1",)


PLAYS: dict[str, tuple[Callable[[Lab], Played], dict]] = {
    "a_plain_boot": (a_plain_boot, {}),
    "b_reschedule_boot": (b_reschedule_boot, {}),
    "c2_build_fails_all_hosts": (c2_build_fails_all_hosts, {}),
    "c4_no_valid_host": (c4_no_valid_host, {"memory_mb": 1024}),   # m1.small fits nowhere
    "d1_cold_migrate_confirm": (d1_cold_migrate_confirm, {}),
    "d2_migrate_reschedule": (d2_migrate_reschedule, {}),
    "e1_resize_reschedule_alternate": (e1_resize_reschedule_alternate, {"computes": 3}),
    "e2_resize_revert": (e2_resize_revert, {}),
    "e3_rebuild_new_image": (e3_rebuild_new_image, {}),
    "e4_evacuate": (e4_evacuate, {}),
}


@pytest.mark.parametrize("path", FILES, ids=[p.name.split(".")[0] for p in FILES])
def test_the_lab_sends_what_nova_sends(path, make_lab, wait_until):
    name = path.name.split(".")[0]
    assert name in PLAYS, f"{path.name} has no play in this test"
    play, options = PLAYS[name]
    lab = make_lab(**{"computes": 2, **options})
    lab.configure(alternates=True)
    nova = nova_traces.load(path)
    mark = lab.mark()
    server, down = play(lab)
    for error in (e for request in nova for e in request.errors):
        assert error in fault(lab, server), f"Nova's reply said {error}"

    def differences() -> list[str]:
        return nova_traces.compare(nova_traces.normalize(lab.trace(since=mark)), nova)

    try:    # the last messages (a fanout) may still be on their way
        wait_until(lambda: not differences(), timeout=20)
    except AssertionError:
        pass    # the assertion below says what differs
    # every live compute reports once more: a compute's messages reach the bus in the
    # order it sent them, so nothing it sent for these requests is still on its way,
    # and a message too many fails too
    seen = lab.mark()
    computes = {f"compute.{h}" for h in lab.config.compute_names() if h not in down}
    wait_until(lambda: computes <= {e["src"] for e in lab.trace(since=seen).where(
        method="service_update")}, timeout=20)
    assert differences() == [], "\n".join(differences())


def test_a_rebuild_with_the_same_image_asks_no_scheduler(make_lab, wait_until):
    """Nova's API passes the instance's host when the image does not change: the conductor
    casts straight to it."""
    lab = make_lab(computes=2)
    server = boot_on_compute1(lab)
    mark = lab.mark()
    assert lab.rebuild(server, "cirros") == 202
    assert lab.wait(server)["status"] == "ACTIVE"
    wait_until(lambda: lab.trace(since=mark).where(method="update_instance_info"), 20)
    [request] = nova_traces.normalize(lab.trace(since=mark))
    assert [(h.src, h.dst, h.kind, h.method) for h in request.hops] == [
        ("api", "conductor", "CAST", "rebuild_instance"),
        ("conductor", "compute[HOST_A]", "CAST", "rebuild_instance"),
        ("compute[HOST_A]", "scheduler(*fanout*)", "FANOUT", "update_instance_info")]
