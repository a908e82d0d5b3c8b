"""The Compute API v2.1 subset: shapes a student can read with plain HTTP, and bad input
answered with Nova's error bodies (400/404/405/409), never a 500, never a half-created
instance."""
from __future__ import annotations

import json
import urllib.request

import pytest

from lab.api_client import ApiError
from lab.testing import usage_of, wait_for_service, wait_for_usage

pytestmark = pytest.mark.timeout(60)


def raw(lab, method: str, path: str, data: bytes | None = None):
    return lab.api.request(method, path, raw=data, check=False)


BAD_BODIES = [
    (b"{not json", "Malformed"),
    (b"", "empty"),
    (b"[]", "server"),
    (b'{"server": "vm"}', "server"),
    (b'{"server": {"flavorRef": "m1.small", "imageRef": "cirros"}}', "name"),
    (b'{"server": {"name": "  ", "flavorRef": "m1.small", "imageRef": "cirros"}}', "name"),
    (b'{"server": {"name": "x", "flavorRef": "m9.huge", "imageRef": "cirros"}}', "Flavor"),
    (b'{"server": {"name": "x", "imageRef": "cirros"}}', "flavorRef"),
    (b'{"server": {"name": "x", "flavorRef": "m1.small"}}', "imageRef"),
    (b'{"server": {"name": "x", "flavorRef": "m1.small", "imageRef": "c", "min_count": 0}}',
     "min_count"),
    (b'{"server": {"name": "x", "flavorRef": "m1.small", "imageRef": "c", "min_count": 1000}}',
     "min_count"),
    (b'{"server": {"name": "x", "flavorRef": "m1.small", "imageRef": "c", "bogus": 1}}',
     "bogus"),
    (b'{"server": {"name": "x", "flavorRef": true, "imageRef": "c"}}', "Flavor"),
    (b'{"server": {"name": "x", "flavorRef": "1", "imageRef": "c",'
     b' "availability_zone": "mars"}}', "availability zone"),
    ("{\"server\": {\"name\": \"\\ud800\"}}".encode(), ""),
]


def test_bad_create_requests_get_400_and_create_nothing(make_lab):
    lab = make_lab()
    for body, words in BAD_BODIES:
        resp = raw(lab, "POST", "/servers", body)
        assert resp.status == 400, (body, resp.body)
        assert resp.body["badRequest"]["code"] == 400
        assert words.lower() in resp.body["badRequest"]["message"].lower(), (body, resp.body)
    assert lab.servers() == []
    # The API is still serving.
    assert lab.wait(lab.boot("fine"))["status"] == "ACTIVE"


def test_unknown_ids_and_paths_are_404_json(make_lab):
    lab = make_lab()
    for method, path in [("GET", "/servers/nope"), ("DELETE", "/servers/nope"),
                         ("GET", "/servers/nope/os-instance-actions"),
                         ("GET", "/flavors/99"), ("GET", "/no/such/thing")]:
        resp = raw(lab, method, path)
        assert resp.status == 404, (method, path)
        assert resp.body["itemNotFound"]["code"] == 404
    resp = raw(lab, "PUT", "/servers")
    assert resp.status == 405 and "badMethod" in resp.body


def test_server_shapes(make_lab):
    lab = make_lab()
    resp = lab.api.post("/servers", {"server": {"name": "shape", "flavorRef": "2",
                                                "imageRef": "cirros"}})
    assert resp.status == 202 and resp.body["server"]["id"]
    assert resp.headers["Location"].endswith(resp.body["server"]["id"])
    record = lab.wait(resp.body["server"]["id"])
    for key in ("status", "OS-EXT-STS:vm_state", "OS-EXT-STS:task_state",
                "OS-EXT-SRV-ATTR:host", "flavor", "image", "created", "updated"):
        assert key in record
    assert (record["status"], record["OS-EXT-STS:vm_state"]) == ("ACTIVE", "active")
    assert record["flavor"]["original_name"] == "m1.small"
    listing = lab.api.get("/servers")["servers"]
    assert [s["id"] for s in listing] == [record["id"]] and set(listing[0]) == {"id", "name",
                                                                                 "links"}
    flavors = lab.api.get("/flavors/detail")["flavors"]
    assert [f["name"] for f in flavors] == ["m1.tiny", "m1.small", "m1.medium", "m1.large"]
    services = {(s["binary"], s["host"]): s for s in lab.services()}
    assert {b for b, _ in services} == {"nova-api", "nova-conductor", "nova-scheduler",
                                        "nova-compute"}
    assert all(s["state"] == "up" and s["status"] == "enabled" for s in services.values())
    hyper = {h["hypervisor_hostname"]: h for h in lab.hypervisors()}
    assert hyper[record["OS-EXT-SRV-ATTR:host"]]["memory_mb_used"] == 2048
    totals = lab.api.get("/os-hypervisors/statistics")["hypervisor_statistics"]
    assert (totals["count"], totals["memory_mb_used"], totals["running_vms"]) == (3, 2048, 1)
    actions = lab.actions(record["id"])
    assert actions[0]["action"] == "create"
    assert actions[0]["events"][-1]["result"] == "Success"


def test_multi_create_with_reservation_id(make_lab):
    lab = make_lab()
    ids = lab.boot("batch", count=4)
    records = lab.wait(ids)
    assert sorted(r["name"] for r in records) == ["batch-1", "batch-2", "batch-3", "batch-4"]
    assert all(r["status"] == "ACTIVE" for r in records)
    # One request: one build_instances cast and one select_destinations call for all four.
    trace = lab.trace().routed()
    assert sum(1 for e in trace if e["method"] == "build_instances") == 1
    assert sum(1 for e in trace if e["method"] == "select_destinations"
               and e["kind"] == "call") == 1


def test_delete_frees_resources_and_conflicts_are_409(make_lab):
    lab = make_lab()
    record = lab.wait(lab.boot("short-lived", flavor="m1.medium"))
    host = record["OS-EXT-SRV-ATTR:host"]
    lab.delete(record["id"])
    with pytest.raises(ApiError) as err:
        lab.delete(record["id"])          # already deleting (or gone)
    assert err.value.status in (404, 409)
    assert lab.wait(record["id"], statuses=("DELETED",))["status"] == "DELETED"
    used = {h["hypervisor_hostname"]: h["memory_mb_used"] for h in lab.hypervisors()}
    assert used[host] == 0, used
    assert lab.servers() == []


def test_a_server_on_a_dead_host_is_deleted_at_once_and_its_host_lets_go(make_lab):
    """Nova's local delete: nobody to ask, so the API deletes the record (no message
    waits at the bus for the dead compute); back, the compute holds no claim for it."""
    lab = make_lab(computes=2)
    record = lab.wait(lab.boot("doomed"))
    host = record["OS-EXT-SRV-ATTR:host"]
    lab.kill(host)
    wait_for_service(lab, host, "down")
    mark = lab.mark()
    lab.delete(record["id"])
    assert lab.wait(record["id"], timeout=1)["status"] == "DELETED"    # no waiting
    assert not lab.trace(since=mark).where(method="terminate_instance")
    lab.restart(host)
    lab.wait_computes_up([host])
    wait_for_usage(lab, {host: usage_of()}, live=True)


def test_deleting_a_server_in_error_on_a_live_host_goes_through_its_compute(make_lab,
                                                                           wait_until):
    lab = make_lab(computes=1)
    lab.set_failure("compute1", fatal=1.0)
    record = lab.wait(lab.boot("broken"))
    assert (record["status"], record["OS-EXT-SRV-ATTR:host"]) == ("ERROR", "compute1")
    mark = lab.mark()
    lab.delete(record["id"])
    assert lab.wait(record["id"])["status"] == "DELETED"
    sent = wait_until(lambda: [(e["kind"], e["method"]) for e in lab.trace(since=mark).where(
        phase="routed", method=("terminate_instance", "delete_instance_info"))] or None, 10)
    assert sent == [("cast", "terminate_instance"), ("fanout", "delete_instance_info")]


def test_disabled_compute_is_filtered_out(make_lab):
    lab = make_lab(computes=2)
    body = json.dumps({"host": "compute1", "binary": "nova-compute"}).encode()
    req = urllib.request.Request(f"{lab.api_url}/v2.1/os-services/disable", data=body,
                                 method="PUT", headers={"Content-Type": "application/json",
                                                         "X-Auth-Token": lab.api.token})
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read())["service"]["status"] == "disabled"
    records = lab.wait([lab.boot(f"d{i}") for i in range(3)])
    assert {r["OS-EXT-SRV-ATTR:host"] for r in records} == {"compute2"}
