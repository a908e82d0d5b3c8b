"""The real `openstack` command (python-openstackclient, as installed from PyPI) drives a
real lab, unchanged: every command the lab supports, run as a subprocess with only what
``lab.openstack_env()`` gives it (its clouds.yaml, its cloud, a PATH that finds the
command), checked by what it prints (``-f json``) and by what the lab then holds. Its bad
requests get Nova's 4xx, never a 5xx.

One lab serves the module (each test makes its own servers); the evacuation, which kills a
compute, has a lab of its own. `server evacuate --wait` is not used: python-openstackclient
10.5 waits for status ``ACTIVE`` against a lowercased status, so it never returns against
any cloud; the test waits through the lab instead."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lab import Lab
from lab.testing import wait_for_service
from orchestrator.config import IMAGES, image_id

pytestmark = pytest.mark.timeout(120)
HOST = "OS-EXT-SRV-ATTR:host"


class OpenStack:
    """``openstack ARGS -f json`` with the lab's environment and nothing else of ours."""

    def __init__(self, lab: Lab):
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("OS_")},
                    **lab.openstack_env()}

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["openstack", *args], env=self.env, capture_output=True,
                              text=True, timeout=90)

    def __call__(self, *args: str, output: bool = True) -> Any:
        """What the command printed, as JSON (``output``: after any progress lines, such
        as ``--wait``'s "Complete"), or its stdout; it must succeed."""
        done = self.run(*args, *(("-f", "json") if output else ()))
        assert done.returncode == 0, f"openstack {' '.join(args)}: {done.stderr[-2000:]}"
        if not output:
            return done.stdout
        lines = done.stdout.splitlines(keepends=True)
        first = next(i for i, line in enumerate(lines) if line[:1] in "{[")
        return json.loads("".join(lines[first:]))

    def refused(self, *args: str) -> str:
        """The command fails, and not for a 5xx (openstacksdk says "Server Error" for
        those, "Client Error" for a 4xx): what it printed."""
        done = self.run(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "Server Error" not in done.stderr, done.stderr
        return done.stderr


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    lab = Lab(run_dir=str(tmp_path_factory.mktemp("osc") / "lab"), computes=3, seed=13,
              preset="fast")
    lab.start()
    yield lab, OpenStack(lab)
    lab.close()


def create(osc: OpenStack, lab: Lab, name: str) -> dict[str, Any]:
    """A server made by ``server create`` (without ``--wait``, which polls every 5 s: the
    lab says sooner when it is ACTIVE), as ``server show`` then shows it."""
    made = osc("server", "create", "--flavor", "m1.small", "--image", "cirros",
               "--no-network", name)
    assert lab.wait(made["id"])["status"] == "ACTIVE"
    return osc("server", "show", made["id"])


def test_server_create_list_show_delete(cloud):
    lab, osc = cloud
    made = osc("server", "create", "--flavor", "m1.small", "--image", "cirros",
               "--no-network", "--wait", "cli-vm1")
    assert made["status"] == "ACTIVE" and made["name"] == "cli-vm1"
    assert made["image"] == f"cirros ({image_id('cirros')})"
    assert made["flavor"]["original_name"] == "m1.small"      # 2.47's embedded flavor
    record = lab.server(made["id"])
    assert (record["status"], record[HOST]) == ("ACTIVE", made[HOST])

    listed = {s["Name"]: s for s in osc("server", "list")}
    assert listed["cli-vm1"]["Status"] == "ACTIVE" and listed["cli-vm1"]["ID"] == made["id"]
    assert (listed["cli-vm1"]["Image"], listed["cli-vm1"]["Flavor"]) == ("cirros", "m1.small")
    shown = osc("server", "show", "cli-vm1")
    assert (shown["id"], shown[HOST], shown["host_status"]) == (made["id"], made[HOST], "UP")

    # the same messages as any boot: the create's request is the trace's
    story = lab.trace().for_instance(made["id"], record["OS-EXT-LAB:request_id"]).routed()
    assert [e["method"] for e in story.where(src="api")][:1] == ["build_instances"]

    assert osc("server", "delete", "--wait", "cli-vm1", output=False) == ""
    assert lab.wait(made["id"], statuses=("DELETED",))["status"] == "DELETED"
    assert "cli-vm1" not in {s["Name"] for s in osc("server", "list")}


def test_migrate_and_confirm_then_resize_and_revert(cloud):
    lab, osc = cloud
    made = create(osc, lab, "cli-mover")
    source = made[HOST]
    osc("server", "migrate", "cli-mover", output=False)
    lab.wait(made["id"])
    moved = osc("server", "show", "cli-mover")
    assert moved["status"] == "VERIFY_RESIZE" and moved[HOST] != source
    osc("server", "resize", "confirm", "cli-mover", output=False)
    assert lab.wait(made["id"])[HOST] == moved[HOST]

    osc("server", "resize", "--flavor", "m1.medium", "cli-mover", output=False)
    lab.wait(made["id"])
    resized = osc("server", "show", "cli-mover")
    assert resized["status"] == "VERIFY_RESIZE"
    assert resized["flavor"]["original_name"] == "m1.medium"
    osc("server", "resize", "revert", "cli-mover", output=False)
    back = lab.wait(made["id"])
    assert (back["status"], back[HOST], back["flavor"]["original_name"]) == (
        "ACTIVE", moved[HOST], "m1.small")

    migrations = osc("server", "migration", "list", "--server", "cli-mover")
    assert [(m["Type"], m["Status"]) for m in migrations] == [("resize", "reverted"),
                                                              ("migration", "confirmed")]
    assert {m["Server UUID"] for m in migrations} == {made["id"]}
    assert [m["Id"] for m in migrations] == [m["id"] for m in lab.migrations(made["id"])]


def test_rebuild_and_the_servers_events(cloud):
    lab, osc = cloud
    made = create(osc, lab, "cli-rebuilt")
    rebuilt = osc("server", "rebuild", "--image", "fedora", "cli-rebuilt")
    assert rebuilt["image"] == f"fedora ({image_id('fedora')})"     # Nova's answer
    assert rebuilt["status"] == "REBUILD"
    record = lab.wait(made["id"])
    assert (record["status"], record["image"]["id"]) == ("ACTIVE", image_id("fedora"))
    assert record[HOST] == made[HOST]

    events = osc("server", "event", "list", "cli-rebuilt")
    assert [e["Action"] for e in events] == ["create", "rebuild"]
    assert {e["Server ID"] for e in events} == {made["id"]}
    shown = osc("server", "event", "show", "cli-rebuilt", events[1]["Request ID"])
    assert shown["action"] == "rebuild" and shown["request_id"] == events[1]["Request ID"]
    assert all(e["result"] == "Success" for e in shown["events"]) and shown["events"]
    assert [e["event"] for e in shown["events"]] == [
        e["event"] for e in lab.actions(made["id"])[1]["events"]]


def test_services_hypervisors_flavors_images_and_zones(cloud):
    lab, osc = cloud
    services = osc("compute", "service", "list")
    assert {(s["Binary"], s["Host"], s["State"]) for s in services} == {
        (s["binary"], s["host"], s["state"]) for s in lab.services()}
    osc("compute", "service", "set", "--disable", "--disable-reason", "maintenance",
        "compute3", "nova-compute", output=False)
    try:
        disabled = {s["host"]: s for s in lab.services()}["compute3"]
        assert (disabled["status"], disabled["disabled_reason"]) == ("disabled",
                                                                     "maintenance")
        shown = osc("compute", "service", "list", "--service", "nova-compute", "--host",
                    "compute3")
        assert [s["Status"] for s in shown] == ["disabled"]
        assert create(osc, lab, "cli-placed")[HOST] != "compute3"   # the scheduler skips it
    finally:
        osc("compute", "service", "set", "--enable", "compute3", "nova-compute",
            output=False)
    assert {s["host"]: s for s in lab.services()}["compute3"]["status"] == "enabled"

    hypervisors = osc("hypervisor", "list")
    assert sorted(h["Hypervisor Hostname"] for h in hypervisors) == [
        "compute1", "compute2", "compute3"]
    node = osc("hypervisor", "show", "compute1")
    lab_node = {h["hypervisor_hostname"]: h for h in lab.hypervisors()}["compute1"]
    assert {k: node[k] for k in ("vcpus", "memory_mb", "memory_mb_used", "running_vms")} == \
        {k: lab_node[k] for k in ("vcpus", "memory_mb", "memory_mb_used", "running_vms")}
    assert node["state"] == "up" and node["service_host"] == "compute1"

    flavors = {f["Name"]: f for f in osc("flavor", "list")}
    assert list(flavors) == ["m1.tiny", "m1.small", "m1.medium", "m1.large"]
    small = osc("flavor", "show", "m1.small")
    assert (small["id"], small["ram"], small["vcpus"], small["disk"]) == ("2", 2048, 1, 20)

    images = {i["Name"]: i for i in osc("image", "list")}
    assert {n: i["ID"] for n, i in images.items()} == {n: i["id"] for n, i in IMAGES.items()}
    assert {i["Status"] for i in images.values()} == {"active"}

    zones = osc("availability", "zone", "list", "--compute")
    assert {"Zone Name": "nova", "Zone Status": "available"} in zones


def test_bad_requests_get_novas_errors(cloud):
    lab, osc = cloud
    made = create(osc, lab, "cli-target")
    message = osc.refused("server", "resize", "--flavor", "m1.small", "cli-target")
    assert "400: Client Error" in message and "instances must change flavor" in message
    message = osc.refused("server", "resize", "confirm", "cli-target")
    assert "409" in message and "Cannot 'confirmResize'" in message
    message = osc.refused("server", "evacuate", "cli-target")      # its compute is up
    assert "400" in message and "still in use" in message
    message = osc.refused("server", "create", "--flavor", "m1.small", "--image", "cirros",
                          "--no-network", " cli-spaced")
    assert "400" in message and "must not start or end with a space" in message
    assert "Failed to set service status" in osc.refused(
        "compute", "service", "set", "--disable", "nowhere", "nova-compute")
    assert "No Image found for gentoo" in osc.refused(
        "server", "create", "--flavor", "m1.small", "--image", "gentoo", "--no-network", "x")
    assert lab.server(made["id"])["status"] == "ACTIVE"        # refusals changed nothing
    assert "cli-spaced" not in {s["name"].strip() for s in lab.servers()}


def test_a_restarted_api_keeps_the_clouds_yaml_valid(cloud):
    lab, osc = cloud
    clouds = Path(lab.openstack_env()["OS_CLIENT_CONFIG_FILE"])
    before = clouds.stat().st_mtime_ns
    lab.restart("api")
    assert clouds.stat().st_mtime_ns > before            # written again at its start
    assert stat.S_IMODE(clouds.stat().st_mode) == 0o600
    assert {s["ID"] for s in osc("server", "list")} == {s["id"] for s in lab.servers()}


def test_server_evacuate(make_lab):
    lab = make_lab(computes=2)
    osc = OpenStack(lab)
    made = create(osc, lab, "cli-evacuee")
    dead = made[HOST]
    lab.kill(dead)
    wait_for_service(lab, dead, "down")
    assert {s["Host"]: s["State"] for s in osc("compute", "service", "list")}[dead] == "down"
    osc("server", "evacuate", "cli-evacuee")
    record = lab.wait(made["id"], timeout=30)
    assert record["status"] == "ACTIVE" and record[HOST] not in (dead, None)
    [migration] = osc("server", "migration", "list", "--type", "evacuation")
    assert (migration["Source Compute"], migration["Dest Compute"], migration["Status"]) == (
        dead, record[HOST], "done")
    assert osc("server", "show", "cli-evacuee")[HOST] == record[HOST]
