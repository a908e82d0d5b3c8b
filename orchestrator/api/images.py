"""The image service: the lab's images (``config.IMAGES``) in Glance v2's shape, read-only,
at ``/image/v2/images[/{id}]`` on the API's port, so a real client can look an image up
by name (``openstack server create --image cirros``) and show the name of a server's.

An image has no bits here: its size is what a real one of its kind weighs, and its
checksums are made from its id. Filters are Glance's: ``name`` and ``id`` (one value,
or ``in:a,b``), ``status``, ``visibility``, any property (``os_distro=fedora``); paging
by ``limit`` and ``marker`` (with a ``next`` link); sorting options are taken and
ignored (the catalogue is in name order). Errors are answered as Glance's (webob's JSON:
``{"code": "404 Not Found", "title": ..., "message": ...}``)."""
from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from ..config import IMAGES, image_name
from ..db import NotFound
from .base import Base
from .validation import BadRequest, check_limit, shown
from .views import PROJECT_ID

__all__ = ["image_view", "find_images", "ROUTES", "IGNORED"]

CREATED = "2024-01-01T00:00:00Z"
IGNORED = frozenset({"sort", "sort_key", "sort_dir", "member_status"})
MAX_LIMIT = 1000


def image_view(name: str) -> dict[str, Any]:
    image = IMAGES[name]
    ident = str(image["id"])
    return {"id": ident, "name": name, "status": "active", "visibility": "public",
            "protected": False, "os_hidden": False,
            "checksum": hashlib.md5(ident.encode()).hexdigest(),
            "os_hash_algo": "sha512", "os_hash_value": hashlib.sha512(ident.encode()).hexdigest(),
            "container_format": "bare", "disk_format": "qcow2", "size": image["size"],
            "virtual_size": None, "min_disk": image["min_disk"], "min_ram": image["min_ram"],
            "owner": PROJECT_ID, "created_at": CREATED, "updated_at": CREATED, "tags": [],
            "os_distro": image["os_distro"], "os_version": image["os_version"],
            "self": f"/v2/images/{ident}", "file": f"/v2/images/{ident}/file",
            "schema": "/v2/schemas/image"}


def _matches(view: dict[str, Any], key: str, wanted: str) -> bool:
    have = view.get(key)
    text = str(have).lower() if isinstance(have, bool) else str(have)
    if key in ("name", "id") and wanted.startswith("in:"):
        return text in wanted[3:].split(",")
    return have is not None and text == wanted


def find_images(query: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
    """The images a list query selects, and whether more follow (paging)."""
    views = [image_view(name) for name in sorted(IMAGES)]
    for key, wanted in query.items():
        if key not in IGNORED | {"limit", "marker"}:
            views = [v for v in views if _matches(v, key, wanted)]
    if "marker" in query:
        ids = [v["id"] for v in views]
        if query["marker"] not in ids:
            raise BadRequest(f"Invalid marker. Image {shown(query['marker'])} could not be "
                             f"found.")
        views = views[ids.index(query["marker"]) + 1:]
    limit_value = min(check_limit(query.get("limit", str(MAX_LIMIT))), MAX_LIMIT)
    return views[:limit_value], len(views) > limit_value


class GlanceBase(Base):
    """The image paths: no microversions, errors in Glance's shape."""

    versioned = False

    def fault(self, code: int, message: str) -> dict[str, Any]:
        return {"code": f"{code} {self._reason}", "title": self._reason, "message": message}


class Images(GlanceBase):
    def do_get(self) -> None:
        query = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        views, more = find_images(query)
        body: dict[str, Any] = {"images": views, "first": "/v2/images",
                                "schema": "/v2/schemas/images"}
        if more:
            rest = {k: v for k, v in query.items() if k != "marker"}
            body["next"] = "/v2/images?" + urlencode({**rest, "marker": views[-1]["id"]})
        self.reply(200, body)


class Image(GlanceBase):
    def do_get(self, ident: str) -> None:
        name = image_name(ident)
        if name is None:
            raise NotFound(f"No image found with ID {shown(ident)}")
        self.reply(200, image_view(name))


class GlanceNotFound(GlanceBase):
    def do_get(self, *args: str) -> None:
        raise NotFound(f"The lab's image service has no {self.request.method} "
                       f"{shown(self.request.path)}: it lists and shows images, no more.")

    do_head = do_post = do_delete = do_patch = do_put = do_options = do_get


ROUTES = [(r"/image/v2/images/?", Images), (r"/image/v2/images/([^/]+)", Image),
          (r"/image/(.*)", GlanceNotFound)]
