"""Versioned objects across a rolling upgrade, with real processes: a compute still on
Instance 1.0 asks the conductor to backport what it cannot read; with ``object_pinning``
senders send it 1.0 and nobody has to ask; old and new computes work side by side, and
an upgrade (a restart on newer code) ends the backports."""
from __future__ import annotations


import pytest

from lab.trace import short
from orchestrator import rundir
from orchestrator.conductor.rpcapi import DB_PROXY_METHODS
from orchestrator.config import ConfigError

pytestmark = pytest.mark.timeout(60)

HOST = "OS-EXT-SRV-ATTR:host"
BACKPORT = "object_backport_versions"


def set_enabled(lab, enabled: bool, *hosts: str) -> None:
    for host in hosts:
        lab.api.request("PUT", f"/os-services/{'enable' if enabled else 'disable'}",
                        {"host": host, "binary": "nova-compute"})


def backports(lab, since: int) -> list[tuple[str, str, str, str]]:
    events = lab.trace(since=since).routed().where(method=BACKPORT)
    return [(e["kind"], short(e["src"]), short(e["dst"]), e["instance_uuid"])
            for e in events]


def hops(lab, since: int, uuid: str) -> list[tuple[str, str, str, str]]:
    events = lab.trace(since=since).routed().where(instance=uuid, kind=("cast", "call"))
    return [(e["kind"], short(e["src"]), short(e["dst"]), e["method"])
            for e in events if e["method"] not in DB_PROXY_METHODS]


@pytest.fixture
def live_vms(wait_until):
    """``live_vms(lab, host, count)``: until ``host`` holds ``count`` instances."""
    def wait(lab, host: str, count: int, timeout: float = 10.0) -> None:
        wait_until(lambda: lab.bus().call("compute", "resources", server=host)
                   ["running_vms"] == count, timeout, f"{host} holding {count} instance(s)")
    return wait


def test_an_old_compute_asks_for_a_backport_unless_senders_pin(make_lab, live_vms):
    lab = make_lab(computes=2)
    assert lab.add_compute(object_version="1.0") == "compute3"
    assert lab.object_versions() == {"compute1": "1.2", "compute2": "1.2",
                                     "compute3": "1.0"}
    set_enabled(lab, False, "compute1", "compute2")
    mark = lab.mark()
    first = lab.boot("vm1")
    record = lab.wait(first)
    assert (record["status"], record[HOST]) == ("ACTIVE", "compute3")
    assert backports(lab, mark) == [("call", "compute3", "conductor", first),
                                    ("reply", "conductor", "compute3", first)]
    [unpinned] = lab.trace(since=mark).routed().where(method="build_and_run_instance")

    lab.configure(object_pinning=True)
    mark = lab.mark()
    second = lab.boot("vm2")
    record = lab.wait(second)
    assert (record["status"], record[HOST]) == ("ACTIVE", "compute3")
    assert backports(lab, mark) == []
    [pinned] = lab.trace(since=mark).routed().where(method="build_and_run_instance")
    assert short(pinned["dst"]) == "compute3"
    # the same build, sent at 1.0: without availability_zone, launched_at and
    # migration_context, so a smaller message (the trace carries no args)
    assert pinned["bytes"] < unpinned["bytes"]
    live_vms(lab, "compute3", 2)


def test_rolling_upgrade_old_and_new_computes_side_by_side(make_lab, live_vms):
    lab = make_lab(computes=2)
    lab.add_compute(object_version="1.0")
    mark = lab.mark()
    ids = [lab.boot(f"vm{i}") for i in range(3)]
    records = lab.wait(ids)
    assert [r["status"] for r in records] == ["ACTIVE"] * 3
    hosts = {r[HOST]: r["id"] for r in records}
    assert sorted(hosts) == ["compute1", "compute2", "compute3"]   # RAMWeigher spreads
    old = hosts["compute3"]
    assert backports(lab, mark) == [("call", "compute3", "conductor", old),
                                    ("reply", "conductor", "compute3", old)]

    lab.upgrade_compute("compute3")
    assert lab.object_versions()["compute3"] == "1.2"
    live_vms(lab, "compute3", 1)                 # kept its instance across the restart
    set_enabled(lab, False, "compute1", "compute2")
    mark = lab.mark()
    record = lab.wait(lab.boot("after"))
    assert (record["status"], record[HOST]) == ("ACTIVE", "compute3")
    assert backports(lab, mark) == []
    assert lab.wait(old)["status"] == "ACTIVE"


@pytest.mark.parametrize("pinning", [False, True])
def test_migration_to_an_old_compute(make_lab, pinning, live_vms):
    """The conductor sends Instance 1.2 with a migration_context; compute3 (1.0) gets it
    backported, both times it reads one (prep_resize, then finish_resize, whose instance
    the source passes on as it got it), or, pinned, is sent 1.0 in the first place."""
    lab = make_lab(computes=2)
    server = lab.boot("vm")
    assert lab.wait(server)[HOST] == "compute1"
    lab.add_compute(object_version="1.0")
    set_enabled(lab, False, "compute2")
    lab.configure(object_pinning=pinning)
    mark = lab.mark()
    lab.migrate(server)
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("VERIFY_RESIZE", "compute3")
    backport = [("call", "compute3", "conductor", BACKPORT)] if not pinning else []
    assert hops(lab, mark, server) == [
        ("cast", "api", "conductor", "migrate_server"),
        ("call", "conductor", "scheduler", "select_destinations"),
        ("cast", "conductor", "compute3", "prep_resize"), *backport,
        ("cast", "compute3", "compute1", "resize_instance"),
        ("cast", "compute1", "compute3", "finish_resize"), *backport]
    assert lab.migrations(server)[0]["status"] == "finished"
    lab.confirm_resize(server)
    assert lab.wait(server)["status"] == "ACTIVE"
    assert lab.migrations(server)[0]["status"] == "confirmed"
    live_vms(lab, "compute1", 0)
    live_vms(lab, "compute3", 1)


@pytest.mark.parametrize("case", ["migrate_from_old", "legacy_rebuild"])
def test_pinned_senders_spare_an_old_compute_every_backport(make_lab, case):
    """README: with object_pinning "senders look up the version each compute reported
    and send that one, so no backport call is needed". Every sender, not only the
    conductor: a new destination passing its (1.2) instance on to an old source in
    resize_instance, and the legacy API casting rebuild_instance straight to the
    compute."""
    lab = make_lab(computes=2)
    lab.add_compute(object_version="1.0")
    set_enabled(lab, False, "compute1", "compute2")
    server = lab.boot("vm")
    assert lab.wait(server)[HOST] == "compute3"
    lab.configure(object_pinning=True)
    mark = lab.mark()
    if case == "migrate_from_old":
        set_enabled(lab, True, "compute2")
        lab.migrate(server)
        expected = ("VERIFY_RESIZE", "compute2")
        sent = ("cast", "compute2", "compute3", "resize_instance")
    else:
        lab.configure(flow="legacy")
        lab.rebuild(server, "fedora")
        expected = ("ACTIVE", "compute3")
        sent = ("cast", "api", "compute3", "rebuild_instance")
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == expected
    assert sent in hops(lab, mark, server)
    assert backports(lab, mark) == [], "pinned, yet the 1.0 compute had to ask"


def test_a_bad_object_version_starts_nothing(make_lab):
    lab = make_lab(computes=2)
    children = {name: c.pid for name, c in lab.cluster.children.items()}
    for version, error, message in [("2.0", ConfigError, "between 1.0 and 1.2"),
                                    ("1.3", ConfigError, "between 1.0 and 1.2"),
                                    ("abc", ValueError, "'MAJOR.MINOR'"),
                                    ("1", ValueError, "'MAJOR.MINOR'"),
                                    (1.0, ValueError, "'MAJOR.MINOR'")]:
        with pytest.raises(error, match=message):
            lab.add_compute(object_version=version)
        with pytest.raises(error, match=message):
            lab.upgrade_compute("compute1", object_version=version)
    with pytest.raises(ConfigError, match="new name"):
        lab.add_compute(name="compute2", object_version="1.0")
    assert {name: c.pid for name, c in lab.cluster.children.items()} == children
    assert lab.config.compute_names() == ["compute1", "compute2"]
    assert rundir.read(lab.run_dir).get("computes", {}) == {}
    assert lab.object_versions() == {"compute1": "1.2", "compute2": "1.2"}
    assert sorted(s["host"] for s in lab.services() if s["binary"] == "nova-compute") == \
        ["compute1", "compute2"]
    assert lab.add_compute(object_version="1.1") == "compute3"    # nothing was used up
