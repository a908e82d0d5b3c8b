"""Request validation for the API: every bad input becomes a clear 400 before anything is
written, so a rejected request leaves no half-created instance. The rules are Nova's
schemas (nova/api/validation/parameter_types.py) for the fields the lab takes: a name
is 1-255 printable characters, no leading or trailing space; a count is a positive
integer or a string of digits; a boolean is one of Nova's spellings. Whatever passes is
text that the database and the bus can carry (no lone surrogates, no control
characters).

An image is named by its id (what the real clients send), a link ending in it, or, as a
lab convenience, its name (``"cirros"``); an unknown one is Nova's 400, checked after
everything else in the request."""
from __future__ import annotations

import json
import reprlib
import unicodedata
from typing import Any

from ..config import FLAVORS, IMAGES, LabConfig, image_name

__all__ = ["BadRequest", "parse_json", "validate_create", "flavor_by_ref", "image_by_ref",
           "check_image", "MAX_COUNT",
           "is_printable", "check_name", "check_text", "check_boolean", "check_metadata",
           "check_limit",
           "shown", "unexpected"]

MAX_COUNT = 100
MAX_TEXT = 255
KNOWN_SERVER_KEYS = {"name", "flavorRef", "imageRef", "min_count", "max_count",
                     "availability_zone", "return_reservation_id", "networks", "metadata",
                     "key_name", "security_groups", "description", "adminPass",
                     "block_device_mapping_v2"}
# A block device the lab can have: the image, on the instance's local disk (what the
# `openstack` command sends with --image). The lab has no volumes.
BDM_KEYS = {"uuid", "boot_index", "source_type", "destination_type",
            "delete_on_termination", "device_name", "disk_bus", "device_type",
            "guest_format", "volume_size"}
LOCAL_IMAGE = {"source_type": "image", "destination_type": "local"}
# parameter_types.boolean: the spellings Nova takes for true and false.
TRUE = ("True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes")
FALSE = ("False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no")
METADATA_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789-_:. ")
_shown = reprlib.Repr()
_shown.maxstring = _shown.maxother = 80


class BadRequest(ValueError):
    """HTTP 400 with Nova's ``badRequest`` body."""


def shown(value: Any) -> str:
    """A value as an error message quotes it: short, whatever its size or depth."""
    return _shown.repr(value)


def unexpected(keys: set[str]) -> BadRequest:
    """Nova's message for keys its schema does not name (cut short if long)."""
    listed = ", ".join(sorted(keys))
    listed = listed if len(listed) <= 200 else listed[:200] + "..."
    return BadRequest(f"Additional properties are not allowed ({listed} were unexpected)")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    if not body:
        raise BadRequest("The request body is empty; expected a JSON object.")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Malformed request body: {exc}") from None
    except RecursionError:
        raise BadRequest("Malformed request body: nested too deeply.") from None


def is_printable(char: str) -> bool:
    """Nova's ``_is_printable``: not a control, format, surrogate or unassigned code point
    (category C*), and no separator but the horizontal space kind (Zs)."""
    category = unicodedata.category(char)
    return not category.startswith("C") and (not category.startswith("Z")
                                             or category == "Zs")


def check_text(value: Any, field: str, *, max_length: int = MAX_TEXT,
               min_length: int = 1) -> str:
    """A string of printable characters (spaces anywhere), within the lengths."""
    if not isinstance(value, str) or not min_length <= len(value) <= max_length \
            or not all(map(is_printable, value)):
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {shown(value)}."
                         f" It must be a string of {min_length} to {max_length} printable "
                         f"characters.")
    return value


def check_name(value: Any, field: str = "name") -> str:
    """Nova's ``parameter_types.name``: 1-255 printable characters, not starting or
    ending with a space."""
    check_text(value, field)
    if unicodedata.category(value[0]) == "Zs" or unicodedata.category(value[-1]) == "Zs":
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {shown(value)}."
                         f" It must not start or end with a space.")
    return value


def check_boolean(value: Any, field: str) -> bool:
    if value is True or value in TRUE:
        return True
    if value is False or value in FALSE:
        return False
    raise BadRequest(f"Invalid input for field/attribute {field}. Value: {shown(value)}. "
                     f"It must be a boolean.")


def check_limit(value: str) -> int:
    """A ``limit`` query parameter: a non-negative integer, or 400."""
    if not (value.isascii() and value.isdigit()):
        raise BadRequest(f"limit param must be an integer, not {shown(value)}")
    return int(value)


def check_metadata(value: Any, field: str = "metadata") -> dict[str, str]:
    """Nova's ``parameter_types.metadata``: keys of 1-255 of ``[a-zA-Z0-9-_:. ]``,
    string values of at most 255 characters."""
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid input for field/attribute {field}: an object is required.")
    for key, item in value.items():
        if not 1 <= len(key) <= MAX_TEXT or not set(key) <= METADATA_KEY_CHARS:
            raise BadRequest(f"Invalid input for field/attribute {field}: key {shown(key)} "
                             "must be 1-255 of a-z A-Z 0-9 - _ : . and space.")
        check_text(item, f"{field}.{key}", min_length=0)
    return value


def flavor_by_ref(ref: Any) -> tuple[str, dict[str, int]] | None:
    """A flavor by id (1, "1"), name ("m1.small") or link (".../flavors/2")."""
    if isinstance(ref, bool) or not isinstance(ref, (str, int)):
        return None
    text = str(ref).rstrip("/").rsplit("/", 1)[-1]
    for name, flavor in FLAVORS.items():
        if text in (name, str(flavor["id"])):
            return name, flavor
    return None


def image_by_ref(ref: str) -> str | None:
    """The lab's name of an image given by id, link (".../images/<id>") or name."""
    text = ref.rstrip("/").rsplit("/", 1)[-1]
    return text if text in IMAGES else image_name(text)


def check_image(value: Any, field: str = "imageRef") -> str:
    """An image the lab has (its name), or 400 as Nova answers an unknown image."""
    ref = check_name(value, field)
    name = image_by_ref(ref)
    if name is None:
        known = ", ".join(f"{n} ({image['id']})" for n, image in IMAGES.items())
        raise BadRequest(f"Image {shown(ref)} could not be found. Known: {known}.")
    return name


def _count(server: dict[str, Any], key: str) -> int | None:
    value = server.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdecimal() \
            and len(value.lstrip("0")) <= len(str(MAX_COUNT)):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {shown(value)}. "
                         f"It must be an integer between 1 and {MAX_COUNT}.")
    return value


def _check_optional(server: dict[str, Any]) -> None:
    """The keys the lab takes and ignores still have Nova's types."""
    if "key_name" in server:
        check_name(server["key_name"], "key_name")
    if "adminPass" in server and not isinstance(server["adminPass"], str):
        raise BadRequest("Invalid input for field/attribute adminPass: a string is required.")
    if server.get("description") is not None:
        check_text(server["description"], "description", min_length=0)
    if "metadata" in server:
        check_metadata(server["metadata"])
    networks = server.get("networks", "auto")
    if networks not in ("auto", "none") and not (
            isinstance(networks, list) and all(isinstance(n, dict) for n in networks)):
        raise BadRequest("Invalid input for field/attribute networks: 'auto', 'none' or a "
                         "list of objects is required.")
    groups = server.get("security_groups", [])
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and set(g) == {"name"} for g in groups):
        raise BadRequest("Invalid input for field/attribute security_groups: a list of "
                         "{'name': ...} objects is required.")
    for group in groups:
        check_name(group["name"], "security_groups.name")


def _check_block_devices(devices: Any, image: str) -> None:
    """``block_device_mapping_v2``: only the server's own image on its local disk."""
    if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
        raise BadRequest("Invalid input for field/attribute block_device_mapping_v2: a "
                         "list of objects is required.")
    for device in devices:
        if set(device) - BDM_KEYS:
            raise unexpected(set(device) - BDM_KEYS)
        if {k: device.get(k) for k in LOCAL_IMAGE} != LOCAL_IMAGE or \
                str(device.get("boot_index")) != "0" or \
                image_by_ref(str(device.get("uuid", ""))) != image:
            raise BadRequest("Block Device Mapping is Invalid: the lab has no volumes; it "
                             "takes only the server's image (imageRef) as its local boot "
                             "disk (source_type image, destination_type local, boot_index 0).")


def validate_create(body: Any, config: LabConfig,
                    version: tuple[int, int] = (2, 1)) -> dict[str, Any]:
    """The checked request: name, flavor (name), flavor sizes, image, count, zone,
    description (from microversion 2.19, as Nova: refused before it)."""
    if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
        raise BadRequest("Invalid input: the body must be an object with a 'server' object.")
    server = body["server"]
    allowed = KNOWN_SERVER_KEYS - ({"description"} if version < (2, 19) else set())
    unknown = set(server) - allowed
    if unknown:
        raise unexpected(unknown)
    if "name" not in server:
        raise BadRequest("Invalid input for field/attribute name: 'name' is a required "
                         "property.")
    name = check_name(server["name"])
    if "flavorRef" not in server:
        raise BadRequest("Missing flavorRef attribute.")
    flavor = flavor_by_ref(server["flavorRef"])
    if flavor is None:
        raise BadRequest(f"Flavor {shown(server['flavorRef'])} could not be found. Known: "
                         f"{', '.join(FLAVORS)}.")
    check_name(server.get("imageRef"), "imageRef")
    min_count = _count(server, "min_count") or 1
    max_count = _count(server, "max_count") or min_count
    if max_count < min_count:
        raise BadRequest("min_count must be <= max_count")
    zone = server.get("availability_zone")
    if zone is not None and (not isinstance(zone, str)
                             or zone not in config.availability_zones):
        raise BadRequest(f"The requested availability zone is not available: {shown(zone)}")
    reservation = check_boolean(server.get("return_reservation_id", False),
                                "return_reservation_id")
    _check_optional(server)
    image = check_image(server["imageRef"])
    if "block_device_mapping_v2" in server:
        _check_block_devices(server["block_device_mapping_v2"], image)
    flavor_name, sizes = flavor
    return {"name": name, "flavor": flavor_name, "sizes": sizes, "image": image,
            "count": max_count, "availability_zone": zone,
            "return_reservation_id": reservation, "description": server.get("description")}
