"""Over real HTTP, what the real clients discover and negotiate before anything else: the
version documents (compute, image, identity), the microversion a request gets and the
headers that say so (errors included), 406 and 400 for versions the lab does not serve,
and shapes that change with the version; the image service in Glance's shape."""
from __future__ import annotations

import json
import urllib.request

import pytest

from lab import Lab
from orchestrator.config import IMAGES, image_id

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(run_dir=str(tmp_path_factory.mktemp("versions") / "lab"), computes=1,
              seed=5, preset="fast")
    lab.start()
    yield lab
    lab.close()


def get(lab: Lab, path: str, **headers: str) -> tuple[int, dict[str, str], object]:
    """GET ``path`` (from the API's root) with the lab's token and ``headers``."""
    req = urllib.request.Request(lab.api_url + path, headers={
        "X-Auth-Token": lab.api.token, **{k.replace("_", "-"): v for k, v in headers.items()}})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw, got = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        status, raw, got = err.code, err.read(), err.headers
        err.close()
    return status, {k.lower(): ", ".join(got.get_all(k)) for k in got}, json.loads(raw)


def test_version_documents_of_the_three_services(lab):
    status, _, body = get(lab, "/")
    assert status == 200 and [v["id"] for v in body["versions"]] == ["v2.1"]
    status, headers, body = get(lab, "/v2.1/")
    assert status == 200 and (body["version"]["min_version"],
                              body["version"]["version"]) == ("2.1", "2.47")
    assert headers["openstack-api-version"] == "compute 2.1"
    status, _, body = get(lab, "/image")
    assert status == 300 and body["versions"][0]["links"][0]["href"].endswith("/image/v2/")
    status, _, body = get(lab, "/identity/v3")
    assert status == 200 and body["version"]["id"].startswith("v3")
    status, _, body = get(lab, "/identity")
    assert status == 300 and body["versions"]["values"][0]["status"] == "stable"
    status, _, body = get(lab, "/identity/v3/projects")     # only discovery
    assert status == 404 and body["error"]["code"] == 404


@pytest.mark.parametrize("header, value, version", [
    ("OpenStack_API_Version", "compute 2.19", "2.19"),
    ("X_OpenStack_Nova_API_Version", "2.26", "2.26"),
    ("OpenStack_API_Version", "compute latest", "2.47"),
    ("OpenStack_API_Version", "volume 3.40", "2.1")])
def test_every_answer_says_the_version_it_was_given(lab, header, value, version):
    status, headers, _ = get(lab, "/v2.1/flavors", **{header: value})
    assert status == 200
    assert headers["openstack-api-version"] == f"compute {version}"
    assert headers["x-openstack-nova-api-version"] == version
    assert set(headers["vary"].replace(" ", "").split(",")) == {
        "OpenStack-API-Version", "X-OpenStack-Nova-API-Version"}
    status, headers, body = get(lab, "/v2.1/servers/nope", **{header: value})
    assert status == 404 and headers["openstack-api-version"] == f"compute {version}"


@pytest.mark.parametrize("value, status, key", [("compute 2.48", 406, "computeFault"),
                                                ("compute 3.0", 406, "computeFault"),
                                                ("compute 2.x", 400, "badRequest")])
def test_a_version_the_lab_does_not_serve_is_refused_in_novas_shape(lab, value, status, key):
    got, headers, body = get(lab, "/v2.1/servers", OpenStack_API_Version=value)
    assert got == status and body[key]["code"] == status
    assert "openstack-api-version" not in headers
    if status == 406:
        assert "Minimum is 2.1 and maximum is 2.47" in body[key]["message"]


def test_the_server_shape_follows_the_version(lab):
    record = lab.wait(lab.boot("shapes"))
    at_2_1 = get(lab, f"/v2.1/servers/{record['id']}")[2]["server"]
    at_2_47 = get(lab, f"/v2.1/servers/{record['id']}",
                  OpenStack_API_Version="compute 2.47")[2]["server"]
    assert at_2_1["flavor"]["id"] == "2" and "original_name" not in at_2_1["flavor"]
    assert at_2_47["flavor"]["original_name"] == "m1.small" == record["flavor"]["original_name"]
    assert "locked" not in at_2_1 and at_2_47["locked"] is False
    assert at_2_47["host_status"] == "UP"
    assert at_2_1["image"]["id"] == at_2_47["image"]["id"] == image_id("cirros")


def test_the_image_service_lists_and_shows_the_labs_images_in_glances_shape(lab):
    status, _, body = get(lab, "/image/v2/images")
    assert status == 200 and sorted(i["name"] for i in body["images"]) == sorted(IMAGES)
    status, _, body = get(lab, "/image/v2/images?name=fedora")
    assert [i["id"] for i in body["images"]] == [image_id("fedora")]
    status, _, body = get(lab, f"/image/v2/images/{image_id('ubuntu')}")
    assert status == 200 and body["name"] == "ubuntu"
    status, _, body = get(lab, "/image/v2/images/cirros")       # ids only, as Glance
    assert status == 404 and body["code"] == "404 Not Found"


def test_a_description_from_2_19_a_status_filter_from_2_38_and_both_request_ids(lab):
    """A server's description is refused before 2.19, kept and shown from it (create and
    rebuild); a list filtered by a status Nova does not have is empty before 2.38 and a
    400 from it; every answer carries the request id under both of Nova's names."""
    create = {"server": {"name": "described", "flavorRef": "m1.tiny", "imageRef": "cirros",
                         "description": "the lesson's"}}
    refused = lab.api.request("POST", "/servers", create, check=False, microversion="2.18")
    assert refused.status == 400 and "description" in refused.body["badRequest"]["message"]
    made = lab.api.request("POST", "/servers", create, microversion="2.19")
    server = made.body["server"]["id"]
    ids = {k.lower(): v for k, v in made.headers.items()}
    assert ids["x-compute-request-id"] == ids["x-openstack-request-id"].strip()
    lab.wait(server)
    shown = lab.api.request("GET", f"/servers/{server}", microversion="2.19").body["server"]
    assert shown["description"] == "the lesson's"
    assert "description" not in lab.api.request("GET", f"/servers/{server}",
                                                microversion="2.18").body["server"]
    lab.api.request("POST", f"/servers/{server}/action", {"rebuild": {
        "imageRef": "cirros", "description": "rebuilt"}}, microversion="2.19")
    assert lab.wait(server)["description"] == "rebuilt"
    assert lab.api.request("GET", "/servers?status=BOGUS", microversion="2.37"
                           ).body == {"servers": []}
    bogus = lab.api.request("GET", "/servers?status=BOGUS", check=False, microversion="2.38")
    assert bogus.status == 400 and bogus.body["badRequest"]["message"] == \
        "Invalid status value"
