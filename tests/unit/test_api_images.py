"""Unit tests for orchestrator.api.images: the lab's images in Glance v2's shape, and
Glance's list filters and paging."""
from __future__ import annotations

import pytest

from orchestrator.api.images import find_images, image_view
from orchestrator.api.validation import BadRequest
from orchestrator.config import IMAGES, image_id


def names(query: dict[str, str]) -> list[str]:
    return [v["name"] for v in find_images(query)[0]]


def test_an_image_in_glances_shape():
    view = image_view("cirros")
    assert view["id"] == image_id("cirros") and view["name"] == "cirros"
    assert (view["status"], view["visibility"], view["disk_format"]) == (
        "active", "public", "qcow2")
    assert view["self"] == f"/v2/images/{view['id']}" and view["size"] > 0
    assert view["os_distro"] == "cirros"


def test_the_list_is_every_image_in_name_order():
    assert names({}) == sorted(IMAGES) and find_images({})[1] is False


@pytest.mark.parametrize("query, expected", [
    ({"name": "fedora"}, ["fedora"]), ({"name": "in:ubuntu,cirros"}, ["cirros", "ubuntu"]),
    ({"id": image_id("ubuntu")}, ["ubuntu"]),
    ({"id": f"in:{image_id('fedora')},nope"}, ["fedora"]), ({"name": "gentoo"}, []),
    ({"status": "active"}, sorted(IMAGES)), ({"status": "queued"}, []),
    ({"visibility": "public", "os_distro": "ubuntu"}, ["ubuntu"]),
    ({"protected": "false"}, sorted(IMAGES)), ({"owner_id": "x"}, []),
    ({"sort_key": "name", "sort_dir": "desc"}, sorted(IMAGES))])
def test_glances_filters(query, expected):
    assert names(query) == expected


def test_paging_by_limit_and_marker():
    first, more = find_images({"limit": "2"})
    assert [v["name"] for v in first] == sorted(IMAGES)[:2] and more
    rest, more = find_images({"limit": "2", "marker": first[-1]["id"]})
    assert [v["name"] for v in rest] == sorted(IMAGES)[2:] and not more


@pytest.mark.parametrize("query", [{"marker": "nope"}, {"limit": "-1"}, {"limit": "x"}])
def test_a_bad_marker_or_limit_is_400(query):
    with pytest.raises(BadRequest):
        find_images(query)
