"""Unit tests for orchestrator.api.validation's images: an image named by id (what the real
clients send), link or, in the lab, name, and kept by its name; an unknown one is Nova's
400, found out last; the one block device the lab takes (the image as the local boot disk,
what `openstack server create --image` sends)."""
from __future__ import annotations

import pytest

from orchestrator.api.validation import BadRequest, check_image, image_by_ref, validate_create
from orchestrator.config import IMAGES, LabConfig, image_id

CONFIG = LabConfig(availability_zones=("nova", "az2"))


def body(**server):
    return {"server": {"name": "vm", "flavorRef": "1", "imageRef": "cirros", **server}}


@pytest.mark.parametrize("ref", [image_id("fedora"), "fedora",
                                 f"http://api/v2.1/images/{image_id('fedora')}",
                                 f"http://glance/v2/images/{image_id('fedora')}/"])
def test_an_image_is_found_by_id_link_or_name_and_kept_by_name(ref):
    assert image_by_ref(ref) == check_image(ref) == "fedora"
    assert validate_create(body(imageRef=ref), CONFIG)["image"] == "fedora"


def test_every_image_has_a_stable_uuid_of_its_name():
    for name, image in IMAGES.items():
        assert image["id"] == image_id(name) and image["name"] == name
        assert image_by_ref(str(image["id"]).upper()) is None    # ids are exact
    assert len({i["id"] for i in IMAGES.values()}) == len(IMAGES)


@pytest.mark.parametrize("ref", ["gentoo", "Cirros", "i" * 255, image_id("gentoo"),
                                 "http://api/images/"])
def test_an_unknown_image_is_novas_400_listing_the_known_ones(ref):
    with pytest.raises(BadRequest, match="could not be found") as info:
        validate_create(body(imageRef=ref), CONFIG)
    assert all(f"{n} ({i['id']})" in str(info.value) for n, i in IMAGES.items())


def test_the_image_is_looked_up_after_every_other_check():
    with pytest.raises(BadRequest, match="min_count"):
        validate_create(body(imageRef="gentoo", min_count=0), CONFIG)
    with pytest.raises(BadRequest, match="availability zone"):
        validate_create(body(imageRef="gentoo", availability_zone="mars"), CONFIG)


LOCAL = {"uuid": image_id("cirros"), "boot_index": 0, "source_type": "image",
         "destination_type": "local", "delete_on_termination": True}


@pytest.mark.parametrize("devices", [[], [LOCAL], [{**LOCAL, "boot_index": "0"}]])
def test_the_image_as_its_local_boot_disk_is_the_block_device_the_lab_takes(devices):
    """What ``openstack server create --image`` sends beside imageRef."""
    assert validate_create(body(block_device_mapping_v2=devices), CONFIG)["image"] == "cirros"


@pytest.mark.parametrize("devices", [
    [{**LOCAL, "destination_type": "volume"}], [{**LOCAL, "source_type": "volume"}],
    [{**LOCAL, "uuid": image_id("fedora")}], [{**LOCAL, "boot_index": 1}],
    [LOCAL, {"source_type": "blank", "destination_type": "local", "boot_index": -1}],
    [{"source_type": "image", "destination_type": "local", "boot_index": 0}]])
def test_any_other_block_device_is_refused_the_lab_has_no_volumes(devices):
    with pytest.raises(BadRequest, match="no volumes"):
        validate_create(body(block_device_mapping_v2=devices), CONFIG)


@pytest.mark.parametrize("devices", [{}, "x", [1], [{**LOCAL, "volume_id": "v"}]])
def test_block_devices_of_other_shapes_are_refused(devices):
    with pytest.raises(BadRequest, match="block_device_mapping_v2|volume_id"):
        validate_create(body(block_device_mapping_v2=devices), CONFIG)
