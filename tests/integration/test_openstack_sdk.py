"""openstacksdk (as installed from PyPI) drives a real lab through the lab's clouds.yaml,
unchanged: the calls behind every `openstack` command the lab supports, checked against
what the lab then holds, and the SDK's own microversion negotiation; a version or an
image the lab does not have is Nova's 4xx.

openstacksdk warns about its own deprecations (its cloud layer reading its own objects by
key, a metrics option it always sets); those are not ours and are ignored here. Its
cloud layer's ``create_server(wait=True)`` insists on an IP address, which the lab's
servers (no networks) never get; the proxy layer (``conn.compute``) is what is used."""
from __future__ import annotations

import openstack
import pytest
from openstack import exceptions
from openstack.config.loader import OpenStackConfig

from lab import Lab
from lab.testing import wait_for_service
from orchestrator.api.clouds import CLOUD
from orchestrator.config import IMAGES, image_id

pytestmark = [pytest.mark.timeout(90),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:openstack"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack")]
WAIT = 30


def connect(lab: Lab) -> openstack.connection.Connection:
    """The SDK's connection to the cloud the lab's clouds.yaml names (and nothing from
    this process's OS_* variables)."""
    config = OpenStackConfig(config_files=[lab.openstack_env()["OS_CLIENT_CONFIG_FILE"]],
                             load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud=CLOUD))


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    lab = Lab(run_dir=str(tmp_path_factory.mktemp("sdk") / "lab"), computes=3, seed=17,
              preset="fast")
    lab.start()
    conn = connect(lab)
    yield lab, conn
    conn.close()
    lab.close()


def boot(conn: openstack.connection.Connection, name: str, image: str = "cirros"):
    server = conn.compute.create_server(
        name=name, image_id=conn.image.find_image(image, ignore_missing=False).id,
        flavor_id=conn.compute.find_flavor("m1.small", ignore_missing=False).id,
        networks="none")
    return conn.compute.wait_for_server(server, wait=WAIT, interval=0.2)


def test_the_sdk_negotiates_the_labs_microversions(cloud):
    _, conn = cloud
    data = conn.compute.get_endpoint_data()
    assert (data.min_microversion, data.max_microversion) == ((2, 1), (2, 47))
    assert conn.image.get_endpoint().endswith("/image/v2/")


def test_create_wait_list_get_delete(cloud):
    lab, conn = cloud
    server = boot(conn, "sdk-vm1")
    assert (server.status, server.flavor.original_name) == ("ACTIVE", "m1.small")
    assert (server.image.id, server.host_status) == (image_id("cirros"), "UP")
    record = lab.server(server.id)
    assert (record["status"], record["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE",
                                                                  server.compute_host)
    assert server.id in {s.id for s in conn.compute.servers()}
    assert conn.compute.get_server(server.id).name == "sdk-vm1"
    assert conn.compute.find_server("sdk-vm1", ignore_missing=False).id == server.id
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=0.2, wait=WAIT)
    assert lab.wait(server.id, statuses=("DELETED",))["status"] == "DELETED"
    assert server.id not in {s.id for s in conn.compute.servers()}


def test_migrate_confirm_resize_revert_rebuild_and_actions(cloud):
    lab, conn = cloud
    server = boot(conn, "sdk-mover")
    source = server.compute_host
    conn.compute.migrate_server(server)
    assert lab.wait(server.id)["status"] == "VERIFY_RESIZE"
    moved = conn.compute.get_server(server.id)
    assert moved.status == "VERIFY_RESIZE" and moved.compute_host != source
    conn.compute.confirm_server_resize(server)
    assert lab.wait(server.id)["status"] == "ACTIVE"
    conn.compute.resize_server(server, conn.compute.find_flavor("m1.medium").id)
    assert lab.wait(server.id)["status"] == "VERIFY_RESIZE"
    assert conn.compute.get_server(server.id).flavor.original_name == "m1.medium"
    conn.compute.revert_server_resize(server)
    reverted = lab.wait(server.id)
    assert (reverted["status"], reverted["flavor"]["original_name"]) == ("ACTIVE",
                                                                        "m1.small")
    answer = conn.compute.rebuild_server(server, image_id("fedora"))
    assert (answer.status, answer.image.id) == ("REBUILD", image_id("fedora"))
    assert lab.wait(server.id)["image"]["id"] == image_id("fedora")

    actions = list(conn.compute.server_actions(server))
    assert [a.action for a in actions] == ["create", "migrate", "confirmResize", "resize",
                                           "revertResize", "rebuild"]
    rebuild = conn.compute.get_server_action(actions[-1].request_id, server)
    assert rebuild.events and all(e.result == "Success" for e in rebuild.events)
    migrations = [(m.migration_type, m.status) for m in conn.compute.migrations()
                  if m.server_id == server.id]
    assert migrations == [("resize", "reverted"), ("migration", "confirmed")]


def test_services_hypervisors_flavors_images_zones(cloud):
    lab, conn = cloud
    services = {(s.binary, s.host): s for s in conn.compute.services()}
    assert set(services) == {(s["binary"], s["host"]) for s in lab.services()}
    compute2 = services[("nova-compute", "compute2")]
    conn.compute.disable_service(compute2, "compute2", "nova-compute", "maintenance")
    assert {s["host"]: s["status"] for s in lab.services()}["compute2"] == "disabled"
    conn.compute.enable_service(compute2, "compute2", "nova-compute")
    assert {s["host"]: s["status"] for s in lab.services()}["compute2"] == "enabled"

    hypervisors = {h.name: h for h in conn.compute.hypervisors(details=True)}
    assert sorted(hypervisors) == ["compute1", "compute2", "compute3"]
    found = conn.compute.find_hypervisor("compute3", ignore_missing=False)
    assert conn.compute.get_hypervisor(found.id).vcpus == 8
    assert [f.name for f in conn.compute.flavors()] == ["m1.tiny", "m1.small", "m1.medium",
                                                        "m1.large"]
    assert conn.compute.find_flavor("m1.large", ignore_missing=False).ram == 8192
    assert {i.name: i.id for i in conn.image.images()} == {n: i["id"]
                                                           for n, i in IMAGES.items()}
    zones = list(conn.compute.availability_zones(details=True))
    assert {z.name: z.state["available"] for z in zones} == {"nova": True,
                                                             "internal": True}


def test_what_the_lab_does_not_have_is_a_4xx(cloud):
    _, conn = cloud
    with pytest.raises(exceptions.BadRequestException, match="could not be found"):
        conn.compute.create_server(name="x", image_id=image_id("gentoo"), flavor_id="2",
                                   networks="none")
    answer = conn.compute.get("/servers", microversion="2.60")
    assert answer.status_code == 406
    assert answer.json()["computeFault"]["message"].endswith("maximum is 2.47.")
    with pytest.raises(exceptions.NotFoundException):
        conn.compute.get_server("no-such-server")


def test_evacuate(make_lab):
    lab = make_lab(computes=2)
    conn = connect(lab)
    server = boot(conn, "sdk-evacuee")
    lab.kill(server.compute_host)
    wait_for_service(lab, server.compute_host, "down")
    conn.compute.evacuate_server(server)
    record = lab.wait(server.id, timeout=WAIT)
    assert record["status"] == "ACTIVE"
    assert record["OS-EXT-SRV-ATTR:host"] not in (server.compute_host, None)
    conn.close()
