"""Request validation for the API: every bad input becomes a clear 400 before anything is
written, so a rejected request leaves no half-created instance."""
from __future__ import annotations

import json
from typing import Any

from ..config import FLAVORS, LabConfig

__all__ = ["BadRequest", "parse_json", "validate_create", "flavor_by_ref", "MAX_COUNT"]

MAX_COUNT = 100
KNOWN_SERVER_KEYS = {"name", "flavorRef", "imageRef", "min_count", "max_count",
                     "availability_zone", "return_reservation_id", "networks", "metadata",
                     "key_name", "security_groups", "description", "adminPass"}


class BadRequest(ValueError):
    """HTTP 400 with Nova's ``badRequest`` body."""


def parse_json(body: bytes) -> Any:
    if not body:
        raise BadRequest("The request body is empty; expected a JSON object.")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Malformed request body: {exc}") from None


def flavor_by_ref(ref: Any) -> tuple[str, dict[str, int]] | None:
    """A flavor by id (1, "1"), name ("m1.small") or link (".../flavors/2")."""
    if isinstance(ref, bool) or not isinstance(ref, (str, int)):
        return None
    text = str(ref).rstrip("/").rsplit("/", 1)[-1]
    for name, flavor in FLAVORS.items():
        if text in (name, str(flavor["id"])):
            return name, flavor
    return None


def _count(server: dict[str, Any], key: str) -> int | None:
    value = server.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value!r}. "
                         f"It must be an integer between 1 and {MAX_COUNT}.")
    return value


def validate_create(body: Any, config: LabConfig) -> dict[str, Any]:
    """The checked request: name, flavor (name), flavor sizes, image, count, zone."""
    if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
        raise BadRequest("Invalid input: the body must be an object with a 'server' object.")
    server = body["server"]
    unknown = sorted(set(server) - KNOWN_SERVER_KEYS)
    if unknown:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(unknown)} "
                         "were unexpected)")
    name = server.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise BadRequest("Invalid input for field/attribute name: a non-blank string of at "
                         "most 255 characters is required.")
    if "flavorRef" not in server:
        raise BadRequest("Missing flavorRef attribute.")
    flavor = flavor_by_ref(server["flavorRef"])
    if flavor is None:
        raise BadRequest(f"Flavor {server['flavorRef']!r} could not be found. Known: "
                         f"{', '.join(FLAVORS)}.")
    image = server.get("imageRef")
    if not isinstance(image, str) or not image.strip() or len(image) > 255:
        raise BadRequest("Invalid input for field/attribute imageRef: a non-blank string is "
                         "required.")
    min_count = _count(server, "min_count") or 1
    max_count = _count(server, "max_count") or min_count
    if max_count < min_count:
        raise BadRequest("min_count must be <= max_count")
    zone = server.get("availability_zone")
    if zone is not None and zone not in config.availability_zones:
        raise BadRequest(f"The requested availability zone is not available: {zone!r}")
    flavor_name, sizes = flavor
    return {"name": name, "flavor": flavor_name, "sizes": sizes, "image": image,
            "count": max_count, "availability_zone": zone,
            "return_reservation_id": bool(server.get("return_reservation_id", False))}
