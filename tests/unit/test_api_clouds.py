"""Unit tests for orchestrator.api.clouds and orchestrator.api.versions: the clouds.yaml the
real clients read (YAML they parse, the secret as keystoneauth's admin_token, its owner's
alone) and the version documents they discover the services from."""
from __future__ import annotations

import os
import stat

import yaml

from orchestrator.api import clouds
from orchestrator.api.versions import compute_version

URL = "http://127.0.0.1:8774"


def test_clouds_yaml_names_each_service_and_carries_the_secret_as_admin_token():
    cloud = yaml.safe_load(clouds.clouds_yaml(URL, 's"ecr\\et'))["clouds"][clouds.CLOUD]
    assert cloud["auth_type"] == "admin_token"
    assert cloud["auth"] == {"endpoint": f"{URL}/v2.1", "token": 's"ecr\\et'}
    assert (cloud["compute_endpoint_override"], cloud["image_endpoint_override"],
            cloud["identity_endpoint_override"]) == (f"{URL}/v2.1", f"{URL}/image",
                                                     f"{URL}/identity/v3")
    assert (cloud["compute_api_version"], cloud["image_api_version"],
            cloud["identity_api_version"]) == ("2", "2", "3")
    assert cloud["has_network"] is cloud["has_block_storage"] is False
    assert "no networks" in cloud["network_disabled_reason"]
    assert "no volumes" in cloud["block_storage_disabled_reason"]


def test_without_a_secret_the_cloud_needs_no_auth():
    cloud = yaml.safe_load(clouds.clouds_yaml(URL, None))["clouds"][clouds.CLOUD]
    assert cloud["auth_type"] == "none" and cloud["auth"] == {"endpoint": f"{URL}/v2.1"}


def test_it_is_written_whole_and_private_and_rewritten_in_place(tmp_path):
    path = clouds.write(tmp_path, URL, "one")
    assert path == tmp_path / clouds.CLOUDS_YAML
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    clouds.write(tmp_path, "http://127.0.0.1:9999", "one")
    assert "9999" in path.read_text() and sorted(os.listdir(tmp_path)) == ["clouds.yaml"]


def test_the_compute_version_document_says_the_microversion_range():
    doc = compute_version(URL)
    assert (doc["id"], doc["status"], doc["min_version"], doc["version"]) == (
        "v2.1", "CURRENT", "2.1", "2.47")
    assert doc["links"][0] == {"rel": "self", "href": f"{URL}/v2.1/"}
    assert set(compute_version(URL, detail=False)) == {"id", "status", "version",
                                                       "min_version", "updated", "links"}
