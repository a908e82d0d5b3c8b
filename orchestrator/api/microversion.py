"""Microversions: which of the Compute API's shapes a request gets, as Nova decides it.

A client names the version it wants in ``OpenStack-API-Version: compute 2.47`` (since
2.27) or the older ``X-OpenStack-Nova-API-Version: 2.47``; no header means the minimum,
2.1, and ``latest`` the maximum. A version outside the range is refused with 406, a
malformed one with 400; every answer to a versioned request says which version it is
(both headers, and ``Vary`` on both, errors included), as Nova's ``wsgi`` layer does.

**The lab serves 2.1 to 2.47.** 2.47 is the least version whose server shape the lab's
own code reads: the flavor embedded in a server (``flavor.original_name``, its sizes)
instead of a link to it, so ``lab.api_client.ApiClient`` asks for 2.47. Every change Nova
made up to 2.47 to what the lab serves is served at its version:

==========  ===============================================================================
2.3         servers show ``OS-EXT-SRV-ATTR:`` hostname, launch_index, kernel_id, ramdisk_id,
            reservation_id, root_device_name, user_data
2.9         servers show ``locked``
2.11        services show ``forced_down`` (always false: ``force-down`` is refused, 400)
2.14        evacuate takes no ``onSharedStorage`` and answers no ``adminPass``
2.16        servers show ``host_status`` (UP, UNKNOWN, MAINTENANCE, or "" with no host)
2.19        servers take and show a ``description`` (create, rebuild)
2.21        instance actions of a deleted server are shown
2.23        migrations show ``migration_type``
2.26        servers show ``tags`` (the lab has none)
2.28        a hypervisor's ``cpu_info`` is an object, not a string
2.29        evacuate takes ``force``
2.33        hypervisors are paged (``limit``, ``marker``)
2.38        a server list filtered by a status Nova does not have is a 400
2.41        aggregates (one per availability zone) show a ``uuid``
2.47        a server's ``flavor`` is the flavor itself (with ``original_name``), not a link
==========  ===============================================================================

The other versions up to 2.47 change APIs the lab does not have (keypairs, consoles,
volumes, networks, server groups, quotas, live migration...) or its requests in ways
that only widen them; 2.37 makes ``networks`` required in a create, which the lab, having no
networks, leaves optional at every version (it takes ``"auto"``, ``"none"`` or a list).
Why not more: 2.53 turns service and hypervisor ids into UUIDs, 2.88 drops a
hypervisor's sizes (the lab's lessons read them), and 2.95 stops an evacuated server
(the lab's come back ACTIVE); each would be a shape the lab does not have.
"""
from __future__ import annotations

import re
from typing import Any, NamedTuple

__all__ = ["Version", "MIN_VERSION", "MAX_VERSION", "NotAcceptable", "InvalidVersion",
           "requested", "HEADER", "LEGACY_HEADER", "response_headers"]

HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
SERVICE_TYPE = "compute"
_FORMAT = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


class InvalidVersion(ValueError):
    """HTTP 400: the version is not of the form ``X.Y``."""


class NotAcceptable(Exception):
    """HTTP 406: a version outside what the lab serves."""


class Version(NamedTuple):
    """``Version(2, 47)``; compares with tuples: ``version >= (2, 19)``."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _FORMAT.match(text)
        if match is None:
            raise InvalidVersion(f"API Version String {text[:40]} is of invalid format. "
                                 f"Must be of format MajorNum.MinorNum.")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


MIN_VERSION = Version(2, 1)
MAX_VERSION = Version(2, 47)


def _asked(headers: Any) -> str | None:
    """The version text a request names for ``compute`` (microversion-parse's rule: the
    new header first, a comma-separated list of ``service version``; else the legacy)."""
    for line in headers.get_list(HEADER):
        for item in line.split(","):
            parts = item.split()
            if len(parts) == 2 and parts[0].lower() == SERVICE_TYPE:
                return parts[1]
    legacy = headers.get_list(LEGACY_HEADER)
    return ",".join(legacy).strip() if legacy else None


def requested(headers: Any) -> Version:
    """The version a request gets (tornado's ``HTTPHeaders``), or InvalidVersion /
    NotAcceptable."""
    asked = _asked(headers)
    if asked is None:
        return MIN_VERSION
    if asked == "latest":
        return MAX_VERSION
    version = Version.parse(asked)
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise NotAcceptable(f"Version {version} is not supported by the API. Minimum is "
                            f"{MIN_VERSION} and maximum is {MAX_VERSION}.")
    return version


def response_headers(version: Version) -> list[tuple[str, str]]:
    """What every answer to a versioned request carries (``Vary`` twice, as Nova adds it)."""
    return [(HEADER, f"{SERVICE_TYPE} {version}"), (LEGACY_HEADER, str(version)),
            ("Vary", HEADER), ("Vary", LEGACY_HEADER)]
