"""Unit tests for orchestrator.api.validation and orchestrator.api.limits: every 400 (and
413, 415) the API can answer with before anything is written: Nova's name rule, its
booleans, counts, metadata; the body, header and media type limits; action bodies; and
that no handler runs before the token and the limits are checked."""
from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders

from orchestrator.api import limits
from orchestrator.api.actions import run_action
from orchestrator.api.base import VERBS, Base
from orchestrator.api.handlers import make_app
from orchestrator.api.validation import (MAX_COUNT, BadRequest, check_boolean,
                                         check_metadata, check_name, check_text,
                                         flavor_by_ref, is_printable, parse_json, shown,
                                         validate_create)
from orchestrator.api.views import error_body
from orchestrator.config import FLAVORS, LabConfig
from orchestrator.db import Database

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


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000,
                                 b'{"a":' * 50_000 + b"1" + b"}" * 50_000])
def test_parse_json_refuses_nesting_too_deep_for_the_parser(raw):
    with pytest.raises(BadRequest, match="nested too deeply"):
        parse_json(raw)


@pytest.mark.parametrize("raw", [b"NaN", b'{"min_count": Infinity}', b"[-Infinity]"])
def test_parse_json_refuses_what_is_not_json(raw):
    with pytest.raises(BadRequest, match="is not JSON"):
        parse_json(raw)


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
        "count": 1, "availability_zone": None, "return_reservation_id": False,
        "description": None}


def test_a_description_is_taken_from_microversion_2_19():
    with pytest.raises(BadRequest, match="description were unexpected"):
        validate_create(body(description="mine"), CONFIG, (2, 18))
    assert validate_create(body(description="mine"), CONFIG, (2, 19))["description"] == "mine"


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
                               description="d", adminPass="p"), CONFIG, (2, 47))
    assert req["availability_zone"] == "az2"
    assert (req["flavor"], req["sizes"]) == ("m1.large", FLAVORS["m1.large"])
    assert req["return_reservation_id"] is True


def test_the_name_limit_is_inclusive():
    assert len(validate_create(body(name="n" * 255), CONFIG)["name"]) == 255


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


# -- Nova's name rule (parameter_types.name) ----------------------------------------------------

@pytest.mark.parametrize("name", ["vm", "a b", "<script>alert(1)</script>", "Ω≈ç√",
                                  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀", "مرحبا", "名前", "x" * 255, "é" * 255,
                                  "a\u00a0b", "a\u3000b", "'; DROP TABLE x; --", "%s{{7}}"])
def test_printable_unicode_and_html_names_are_valid(name):
    assert check_name(name) == name
    assert validate_create(body(name=name), CONFIG)["name"] == name


@pytest.mark.parametrize("name", [
    "a\x00b", "tab\there", "new\nline", "\x1b[31m", "del\x7f", "zero\u200bwidth",
    "line\u2028sep", "para\u2029sep", "bom\ufeff", "lone\ud800", "\udfff", "tag\U000e0001",
    "private\ue000", "unassigned\u0378", " vm", "vm ", "\u00a0vm", "vm\u3000", "\u2003",
    "", "x" * 256, None, 5, 1.5, True, ["vm"], {"vm": 1}])
def test_control_format_surrogate_and_edge_space_names_are_refused(name):
    with pytest.raises(BadRequest, match="field/attribute name"):
        check_name(name)
    with pytest.raises(BadRequest, match="field/attribute name"):
        validate_create(body(name=name), CONFIG)


@pytest.mark.parametrize("image", [" cirros", "cirros\n", "ci\x00rros", "\ud83d"])
def test_images_follow_the_name_rule(image):
    with pytest.raises(BadRequest, match="imageRef"):
        validate_create(body(imageRef=image), CONFIG)


@pytest.mark.parametrize("char,printable", [("a", True), (" ", True), ("\u00a0", True),
                                            ("\u3000", True), ("\u0301", True),
                                            ("😀", True), ("\t", False), ("\u2028", False),
                                            ("\u200b", False), ("\ud800", False),
                                            ("\ue000", False), ("\u0378", False)])
def test_is_printable_is_novas_definition(char, printable):
    assert is_printable(char) is printable


def test_text_allows_spaces_at_its_edges_and_the_lengths_given():
    assert check_text(" reason ", "disabled_reason") == " reason "
    assert check_text("", "description", min_length=0) == ""
    with pytest.raises(BadRequest, match="1 to 255"):
        check_text("", "disabled_reason")
    with pytest.raises(BadRequest, match="printable"):
        check_text("a\x00", "disabled_reason")


def test_a_long_value_is_quoted_short():
    assert len(shown("x" * 10_000)) < 100 and len(shown([[[[[[[[1]]]]]]]])) < 100
    with pytest.raises(BadRequest) as info:
        validate_create(body(**{f"k{i}" * 50: 1 for i in range(50)}), CONFIG)
    assert len(str(info.value)) < 300


# -- booleans, counts, the optional fields -----------------------------------------------------

@pytest.mark.parametrize("value,expected", [(True, True), ("True", True), ("true", True),
                                            ("1", True), ("on", True), ("YES", True),
                                            (False, False), ("false", False), ("0", False),
                                            ("Off", False), ("no", False)])
def test_novas_booleans(value, expected):
    assert check_boolean(value, "b") is expected
    assert validate_create(body(return_reservation_id=value),
                           CONFIG)["return_reservation_id"] is expected


@pytest.mark.parametrize("value", ["maybe", "", 1, 0, None, [], {}, 1.0, "t", "Y"])
def test_anything_else_is_not_a_boolean(value):
    with pytest.raises(BadRequest, match="return_reservation_id"):
        validate_create(body(return_reservation_id=value), CONFIG)


@pytest.mark.parametrize("value", ["9" * 5000, "1" + "0" * 4400, 10 ** 400, -(10 ** 400)])
def test_huge_counts_are_a_bad_request_not_a_crash(value):
    with pytest.raises(BadRequest, match="min_count"):
        validate_create(body(min_count=value), CONFIG)


def test_a_count_may_have_leading_zeros():
    assert validate_create(body(min_count="007"), CONFIG)["count"] == 7


@pytest.mark.parametrize("extra", [
    {"metadata": {"a-Z_0:. ": "v", "k": ""}}, {"description": None}, {"description": ""},
    {"description": " anything, printable "}, {"key_name": "key"}, {"adminPass": ""},
    {"networks": "none"}, {"networks": []}, {"networks": [{"uuid": "x"}]},
    {"security_groups": [{"name": "default"}]}])
def test_optional_fields_of_novas_types_are_accepted(extra):
    validate_create(body(**extra), CONFIG, (2, 47))


@pytest.mark.parametrize("extra,field", [
    ({"metadata": []}, "metadata"), ({"metadata": {"ключ": "v"}}, "metadata"),
    ({"metadata": {"": "v"}}, "metadata"), ({"metadata": {"k": 1}}, "metadata"),
    ({"metadata": {"k": "v" * 256}}, "metadata"), ({"description": 5}, "description"),
    ({"description": "d" * 256}, "description"), ({"description": "a\x00"}, "description"),
    ({"key_name": ""}, "key_name"), ({"adminPass": 5}, "adminPass"),
    ({"networks": "some"}, "networks"), ({"networks": [1]}, "networks"),
    ({"networks": 5}, "networks"), ({"security_groups": {}}, "security_groups"),
    ({"security_groups": [{"name": 5}]}, "security_groups"),
    ({"security_groups": [{"x": "y"}]}, "security_groups"),
    ({"availability_zone": ["nova"]}, "availability zone")])
def test_optional_fields_of_other_types_are_refused(extra, field):
    with pytest.raises(BadRequest, match=field):
        validate_create(body(**extra), CONFIG)


def test_metadata_is_checked_on_its_own():
    assert check_metadata({"k": "v"}) == {"k": "v"}
    with pytest.raises(BadRequest, match="rebuild.metadata"):
        check_metadata({"k": None}, "rebuild.metadata")


# -- limits: body size, header size, media type --------------------------------------------------

def headers(**values):
    out = HTTPHeaders()
    for key, value in values.items():
        out.add(key.replace("_", "-"), value)
    return out


@pytest.mark.parametrize("value,expected", [("10", 10), ("007", 7), ("", None),
                                            ("abc", None), ("-1", None), ("1e3", None),
                                            ("0x10", None)])
def test_declared_length(value, expected):
    assert limits.declared_length(headers(Content_Length=value)) == expected
    assert limits.declared_length(headers()) is None


def test_the_body_limit_is_inclusive():
    limits.check_body_size(limits.MAX_BODY_BYTES)
    with pytest.raises(limits.PayloadTooLarge, match="at most 1048576"):
        limits.check_body_size(limits.MAX_BODY_BYTES + 1)


def test_the_header_limit_counts_the_uri_and_every_header():
    limits.check_headers("/v2.1/servers", headers(X_Auth_Token="t" * 1000))
    with pytest.raises(BadRequest, match="header fields too large"):
        limits.check_headers("/", headers(X_Pad="p" * limits.MAX_HEADER_BYTES))
    with pytest.raises(BadRequest, match="header fields too large"):
        limits.check_headers("/" + "u" * limits.MAX_HEADER_BYTES, headers())
    assert limits.MAX_HEADER_BYTES < limits.HEADER_CAP_BYTES


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/json",
                                          "application/json; charset=utf-8",
                                          "Application/JSON",
                                          "application/vnd.openstack.compute+json"])
def test_json_or_unsaid_media_types_are_read(content_type):
    limits.check_content_type(headers() if content_type is None
                              else headers(Content_Type=content_type))


@pytest.mark.parametrize("content_type", ["application/xml", "text/html", "*/*", "json",
                                          "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_other_media_types_are_415(content_type):
    with pytest.raises(limits.UnsupportedMediaType, match="Unsupported Content-Type"):
        limits.check_content_type(headers(Content_Type=content_type))
    assert error_body(415, "m") == {"badMediaType": {"code": 415, "message": "m"}}


def test_no_handler_runs_before_the_token_and_the_limits_are_checked():
    """Resources define do_get/do_post/...; tornado's verbs are Base's dispatcher."""
    classes = {rule.target for rule in make_app(None).wildcard_router.rules}
    classes |= {make_app(None).settings["default_handler_class"]}
    assert classes and all(issubclass(c, Base) for c in classes)
    for cls in classes:
        for verb in VERBS:
            assert getattr(cls, verb) is Base._dispatch, (cls.__name__, verb)
        assert any(hasattr(cls, f"do_{verb}") for verb in VERBS), cls.__name__


# -- action bodies ---------------------------------------------------------------------------------

class Recorder:
    def __init__(self, fail: bool = False):
        self.sent, self.fail = [], fail

    def __getattr__(self, method):
        def send(*args, **kwargs):
            if self.fail:
                raise RuntimeError("the bus refused the message")
            self.sent.append(method)
        return send


class FakeApi:
    def __init__(self, db, fail=False, up=("compute1", "compute2")):
        self.db, self.up, self.config = db, set(up), LabConfig()
        self.conductor = self.scheduler = self.compute = Recorder(fail)

    def host_is_up(self, host):
        return host in self.up


@pytest.fixture
def db(tmp_path):
    db = Database(tmp_path, seed=1)
    for host in ("compute1", "compute2"):
        db.compute_node_update(host, {"availability_zone": "nova", "vcpus": 8,
                                      "memory_mb": 16384, "local_gb": 200, "vcpus_used": 0,
                                      "memory_mb_used": 0, "local_gb_used": 0,
                                      "running_vms": 0, "failed_builds": 0})
    yield db
    db.close()


def active(db, host="compute1", vm_state="active"):
    _, _, [uuid] = db.create_instances(["vm"], "m1.small", "cirros", None)
    db.update_instance(uuid, vm_state=vm_state, task_state=None, host=host)
    return uuid


def state(db, uuid):
    return db.instance(uuid), db.migrations(instance_uuid=uuid), db.actions(uuid)


@pytest.mark.parametrize("action_body, field", [
    ({"rebuild": {"imageRef": " cirros"}}, "imageRef"),
    ({"rebuild": {"imageRef": "\ud800"}}, "imageRef"),
    ({"rebuild": {"imageRef": "cirros", "name": "a\x00"}}, "name"),
    ({"rebuild": {"imageRef": "cirros", "name": 5}}, "name"),
    ({"rebuild": {"imageRef": "cirros", "metadata": {"k": 1}}}, "metadata"),
    ({"rebuild": {"imageRef": "cirros", "adminPass": 5}}, "adminPass"),
    ({"resize": {"flavorRef": "2", "OS-DCF:diskConfig": "auto"}}, "diskConfig"),
    ({"evacuate": {"onSharedStorage": "maybe"}}, "onSharedStorage"),
    ({"evacuate": {"adminPass": []}}, "adminPass"),
    ({"migrate": {"x" * 1000: 1}}, r"Additional properties are not allowed \(x+\.\.\.")])
def test_bad_action_fields_are_400_and_write_nothing(db, action_body, field):
    api, uuid = FakeApi(db), active(db)
    before = state(db, uuid)
    with pytest.raises(BadRequest, match=field):
        run_action(api, uuid, action_body, "req-x")
    assert state(db, uuid) == before and api.compute.sent == []


def test_valid_optional_action_fields_are_accepted(db):
    api = FakeApi(db)
    assert run_action(api, active(db), {"rebuild": {
        "imageRef": "fedora", "name": "<b>new</b>", "metadata": {"k": "v"},
        "adminPass": "p"}}, "req-r") == 202
    assert run_action(api, active(db), {"resize": {
        "flavorRef": "3", "OS-DCF:diskConfig": "AUTO"}}, "req-s") == 202


@pytest.mark.parametrize("action_body, up", [
    ({"migrate": None}, ("compute1",)), ({"rebuild": {"imageRef": "fedora"}}, ("compute1",)),
    ({"evacuate": {"onSharedStorage": False}}, ("compute2",))])
def test_a_hand_over_that_fails_leaves_nothing_moving(db, action_body, up):
    """If the cast raises (nothing was sent), the task is undone, a migration made for it
    ends in error, and the recorded action gets its error event."""
    api, uuid = FakeApi(db, fail=True, up=up), active(db)
    with pytest.raises(RuntimeError, match="refused"):
        run_action(api, uuid, action_body, "req-f")
    assert db.instance(uuid)["task_state"] is None
    assert all(m["status"] == "error" for m in db.migrations(instance_uuid=uuid))
    [*_, action] = db.actions(uuid)
    assert [e["result"] for e in action["events"]] == ["Error"]


def test_a_failed_confirm_hand_over_puts_the_migration_back(db):
    api, uuid = FakeApi(db, fail=True), active(db, "compute2", "resized")
    m = db.create_migration(uuid, "resize", "compute1", "m1.small", "m1.medium", "r")
    db.update_migration(m["id"], dest_compute="compute2", status="finished")
    with pytest.raises(RuntimeError):
        run_action(api, uuid, {"confirmResize": None}, "req-c")
    assert db.migration(m["id"])["status"] == "finished"
    assert db.instance(uuid)["task_state"] is None
