"""Unit tests for orchestrator.api.validation: every 400 the API can answer a create
with, before anything is written."""
from __future__ import annotations

import pytest

from orchestrator.api.validation import (MAX_COUNT, BadRequest, flavor_by_ref, parse_json,
                                         validate_create)
from orchestrator.config import FLAVORS, LabConfig

CONFIG = LabConfig(availability_zones=("nova", "az2"))


def body(**server):
    return {"server": {"name": "vm", "flavorRef": "1", "imageRef": "cirros", **server}}


def without(key):
    b = body()
    del b["server"][key]
    return b


# -- parse_json --------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [(b'{"a": 1}', {"a": 1}), (b"[1, 2]", [1, 2]),
                                          (b"null", None), ('{"é": 1}'.encode(), {"é": 1})])
def test_parse_json_accepts_any_json(raw, expected):
    assert parse_json(raw) == expected


def test_parse_json_rejects_an_empty_body():
    with pytest.raises(BadRequest, match="empty"):
        parse_json(b"")


@pytest.mark.parametrize("raw", [b"{", b"{'a': 1}", b"not json", b"\xff\xfe\x00garbage",
                                 b'{"a": 1} trailing', b"\xc3\x28"])
def test_parse_json_rejects_malformed_bodies(raw):
    with pytest.raises(BadRequest, match="Malformed request body"):
        parse_json(raw)


def test_bad_request_is_a_value_error():
    assert issubclass(BadRequest, ValueError)


# -- flavor_by_ref -----------------------------------------------------------------------

@pytest.mark.parametrize("ref", [2, "2", "m1.small", "http://api/v2.1/flavors/2",
                                 "http://api/flavors/2/", "/flavors/m1.small"])
def test_flavor_by_ref_finds_a_flavor_by_id_name_or_link(ref):
    assert flavor_by_ref(ref) == ("m1.small", FLAVORS["m1.small"])


def test_flavor_by_ref_knows_every_flavor():
    for name, flavor in FLAVORS.items():
        assert flavor_by_ref(name) == (name, flavor)
        assert flavor_by_ref(flavor["id"]) == (name, flavor)
        assert flavor_by_ref(str(flavor["id"])) == (name, flavor)


@pytest.mark.parametrize("ref", [None, True, False, 2.0, [2], {"id": 2}, "", "9", 0, -1,
                                 "m1.huge", "M1.SMALL", "http://api/flavors/"])
def test_flavor_by_ref_returns_none_for_anything_else(ref):
    assert flavor_by_ref(ref) is None


# -- validate_create: accepted ------------------------------------------------------------

def test_a_minimal_body_is_normalised():
    assert validate_create(body(), CONFIG) == {
        "name": "vm", "flavor": "m1.tiny", "sizes": FLAVORS["m1.tiny"], "image": "cirros",
        "count": 1, "availability_zone": None, "return_reservation_id": False}


@pytest.mark.parametrize("counts,expected", [
    ({}, 1), ({"min_count": 3}, 3), ({"max_count": 4}, 4), ({"min_count": 2, "max_count": 5}, 5),
    ({"min_count": "2"}, 2), ({"max_count": "7"}, 7), ({"min_count": None}, 1),
    ({"min_count": MAX_COUNT}, MAX_COUNT), ({"min_count": 3, "max_count": 3}, 3)])
def test_the_count_comes_from_min_and_max_count(counts, expected):
    assert validate_create(body(**counts), CONFIG)["count"] == expected


def test_zone_flavor_and_optional_keys_are_accepted():
    req = validate_create(body(availability_zone="az2", flavorRef="m1.large",
                               return_reservation_id=True, networks="auto",
                               metadata={"k": "v"}, key_name="k", security_groups=[],
                               description="d", adminPass="p"), CONFIG)
    assert req["availability_zone"] == "az2"
    assert (req["flavor"], req["sizes"]) == ("m1.large", FLAVORS["m1.large"])
    assert req["return_reservation_id"] is True


def test_name_and_image_limits_are_inclusive():
    req = validate_create(body(name="n" * 255, imageRef="i" * 255), CONFIG)
    assert len(req["name"]) == len(req["image"]) == 255


# -- validate_create: rejected ------------------------------------------------------------

@pytest.mark.parametrize("bad", [None, [], "server", 1, {}, {"server": None},
                                 {"server": []}, {"server": "vm"}, {"servers": {}}])
def test_the_body_must_hold_a_server_object(bad):
    with pytest.raises(BadRequest, match="'server' object"):
        validate_create(bad, CONFIG)


def test_unknown_server_keys_are_named():
    with pytest.raises(BadRequest, match=r"Additional properties.*\(bogus, zzz were unexpected"):
        validate_create(body(zzz=1, bogus=2), CONFIG)


@pytest.mark.parametrize("name", [None, "", "   ", "\t\n", 5, ["vm"], "n" * 256])
def test_bad_names_are_rejected(name):
    with pytest.raises(BadRequest, match="field/attribute name"):
        validate_create(body(name=name), CONFIG)


def test_a_missing_name_is_rejected():
    with pytest.raises(BadRequest, match="name"):
        validate_create(without("name"), CONFIG)


def test_a_missing_flavor_ref_is_rejected():
    with pytest.raises(BadRequest, match="Missing flavorRef"):
        validate_create(without("flavorRef"), CONFIG)


@pytest.mark.parametrize("ref", [None, "9", "m1.huge", True, 1.0, ""])
def test_an_unknown_flavor_is_rejected_listing_the_known_ones(ref):
    with pytest.raises(BadRequest, match="could not be found") as info:
        validate_create(body(flavorRef=ref), CONFIG)
    assert all(name in str(info.value) for name in FLAVORS)


@pytest.mark.parametrize("image", [None, "", "  ", 7, {"id": "x"}, "i" * 256])
def test_bad_images_are_rejected(image):
    with pytest.raises(BadRequest, match="imageRef"):
        validate_create(body(imageRef=image), CONFIG)


def test_a_missing_image_is_rejected():
    with pytest.raises(BadRequest, match="imageRef"):
        validate_create(without("imageRef"), CONFIG)


@pytest.mark.parametrize("key", ["min_count", "max_count"])
@pytest.mark.parametrize("value", [0, -1, MAX_COUNT + 1, "0", "-1", "abc", "", "1.5", 1.5,
                                   True, False, [1], "101"])
def test_bad_counts_are_rejected(key, value):
    with pytest.raises(BadRequest, match=f"field/attribute {key}"):
        validate_create(body(**{key: value}), CONFIG)


def test_max_count_below_min_count_is_rejected():
    with pytest.raises(BadRequest, match="min_count must be <= max_count"):
        validate_create(body(min_count=5, max_count=2), CONFIG)


@pytest.mark.parametrize("zone", ["az9", "", "NOVA", 1])
def test_an_unknown_zone_is_rejected(zone):
    with pytest.raises(BadRequest, match="availability zone is not available"):
        validate_create(body(availability_zone=zone), CONFIG)


@pytest.mark.parametrize("value", ["²", "¹⁰"])
def test_non_decimal_digit_counts_are_a_bad_request(value):
    with pytest.raises(BadRequest):
        validate_create(body(min_count=value), CONFIG)
