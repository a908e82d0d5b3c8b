"""Version discovery: the documents a real client (keystoneauth, under the ``openstack``
command and openstacksdk) reads first, to learn where each service's API is and which
versions it speaks. The lab serves three services on the API's one port:

- ``/`` and ``/v2.1/``: the Compute API, v2.1 with microversions 2.1 to the maximum
  (``microversion``);
- ``/image``: the image service, Glance v2's shape (``images``), the lab's images;
- ``/identity``: only Keystone v3's discovery documents. The lab has no users and no
  tokens to issue (its one token is its secret); the clients still ask an identity v3
  endpoint to exist before some commands (``server list``).

Like every path of the API, discovery needs the lab's token (keystoneauth asks once
without it, hears 401, and asks again with it).
"""
from __future__ import annotations

from typing import Any

from ..db import NotFound
from .base import Base
from .validation import shown
from .microversion import MAX_VERSION, MIN_VERSION

__all__ = ["compute_version", "ROUTES", "KeystoneBase"]

COMPUTE_UPDATED = "2013-07-23T11:33:21Z"     # Nova's date for v2.1
IDENTITY_VERSION = "v3.14"
IDENTITY_UPDATED = "2020-04-07T00:00:00Z"
IMAGE_VERSION = "v2.0"


def compute_version(base: str, detail: bool = True) -> dict[str, Any]:
    """The v2.1 version document: ``version`` is the maximum microversion."""
    doc: dict[str, Any] = {"id": "v2.1", "status": "CURRENT", "version": str(MAX_VERSION),
                           "min_version": str(MIN_VERSION), "updated": COMPUTE_UPDATED,
                           "links": [{"rel": "self", "href": f"{base}/v2.1/"}]}
    if detail:
        doc["links"].append({"rel": "describedby", "type": "text/html",
                             "href": "https://docs.openstack.org/api-ref/compute/"})
        doc["media-types"] = [{"base": "application/json",
                               "type": "application/vnd.openstack.compute+json;version=2.1"}]
    return doc


def identity_version(base: str) -> dict[str, Any]:
    return {"id": IDENTITY_VERSION, "status": "stable", "updated": IDENTITY_UPDATED,
            "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.identity-v3+json"}]}


class ComputeVersions(Base):
    """``GET /``: every version of the Compute API (Nova's root is not versioned)."""

    versioned = False

    def do_get(self) -> None:
        self.reply(200, {"versions": [compute_version(self.base, detail=False)]})


class ComputeVersion(Base):
    """``GET /v2.1/``: this version, with its microversion range."""

    def do_get(self) -> None:
        self.reply(200, {"version": compute_version(self.base)})


class KeystoneBase(Base):
    """The identity paths answer errors as Keystone does."""

    versioned = False

    def fault(self, code: int, message: str) -> dict[str, Any]:
        return {"error": {"code": code, "title": self._reason, "message": message}}


class IdentityVersions(KeystoneBase):
    """``GET /identity``: 300 Multiple Choices, as Keystone answers its root."""

    def do_get(self) -> None:
        self.reply(300, {"versions": {"values": [identity_version(self.base)]}})


class IdentityVersion(KeystoneBase):
    def do_get(self) -> None:
        self.reply(200, {"version": identity_version(self.base)})


class IdentityNotFound(KeystoneBase):
    """Any other identity path: the lab has no identity API beyond discovery."""

    def do_get(self, *args: str) -> None:
        raise NotFound(f"The lab serves no identity API, only its version document: "
                       f"{self.request.method} {shown(self.request.path)}")

    do_head = do_post = do_delete = do_patch = do_put = do_options = do_get


class ImageVersions(Base):
    """``GET /image`` (300, as Glance answers its root) or ``/image/versions`` (200)."""

    versioned = False

    def do_get(self, versions: str | None = None) -> None:
        self.reply(200 if versions else 300, {"versions": [{
            "id": IMAGE_VERSION, "status": "CURRENT",
            "links": [{"rel": "self", "href": f"{self.base}/image/v2/"}]}]})


ROUTES = [(r"/", ComputeVersions), (r"/v2\.1/?", ComputeVersion),
          (r"/identity/?", IdentityVersions), (r"/identity/v3/?", IdentityVersion),
          (r"/identity/(.*)", IdentityNotFound),
          (r"/image/?(versions)?/?", ImageVersions)]
