"""What the API takes from a request before any handler sees it: a bounded header
section, a bounded body, and a body that says it is JSON (or says nothing). A request
over a bound is answered with a 4xx in Nova's shape, not a dropped connection:

- a body over ``MAX_BODY_BYTES`` is answered 413 (``overLimit``), and read to its end and
  dropped before the connection is used again. Answering and closing while the client is
  still sending (what tornado's own ``max_body_size`` does) makes the client see a reset
  instead of the answer. A body that declares its length is answered as soon as its
  headers are in (a client that reads while it sends can stop); one sent in chunks, once
  it passes the limit and ends. Reading is bounded by ``BODY_TIMEOUT``, and a chunked
  body by ``DRAIN_BODY_BYTES`` (beyond it tornado answers a bare 400 and closes);
- a header section over ``MAX_HEADER_BYTES`` is answered 400. Beyond
  ``HEADER_CAP_BYTES`` tornado stops reading and closes the connection: that request
  never reaches the API;
- a body whose Content-Type is neither JSON nor one Nova treats as unsaid
  (``text/plain``, none) is answered 415 (``badMediaType``), as Nova does.
"""
from __future__ import annotations

from typing import Any

from .validation import BadRequest

__all__ = ["MAX_BODY_BYTES", "DRAIN_BODY_BYTES", "MAX_HEADER_BYTES", "HEADER_CAP_BYTES",
           "BODY_TIMEOUT", "PayloadTooLarge", "UnsupportedMediaType", "declared_length",
           "check_body_size", "check_headers", "check_content_type"]

MAX_BODY_BYTES = 1 << 20          # the API's limit: 413 above it
DRAIN_BODY_BYTES = 1 << 30        # a chunked body read and dropped, to answer 413
MAX_HEADER_BYTES = 64 << 10       # request line and headers: 400 above it
HEADER_CAP_BYTES = 1 << 20        # tornado's max_header_size: closed unanswered above it
BODY_TIMEOUT = 30.0               # seconds to send a body before the connection is closed
# Nova's wsgi.Request.get_content_type: these are JSON; text/plain or none is unsaid.
JSON_TYPES = ("application/json", "application/vnd.openstack.compute+json")
UNSAID_TYPES = ("", "text/plain")


class PayloadTooLarge(Exception):
    """HTTP 413 with Nova's ``overLimit`` body."""


class UnsupportedMediaType(Exception):
    """HTTP 415 with Nova's ``badMediaType`` body."""


def declared_length(headers: Any) -> int | None:
    """The Content-Length a request declares, or None (none, chunked, or not a number:
    tornado refuses the last kind itself)."""
    value = headers.get("Content-Length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def check_body_size(size: int) -> None:
    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Request is too large: a body of {size} bytes or more; the "
                              f"API takes at most {MAX_BODY_BYTES}.")


def check_headers(uri: str, headers: Any) -> None:
    size = len(uri) + sum(len(k) + len(v) + 4 for k, v in headers.get_all())
    if size > MAX_HEADER_BYTES:
        raise BadRequest(f"Request header fields too large: {size} bytes; the API takes "
                         f"at most {MAX_HEADER_BYTES}.")


def check_content_type(headers: Any) -> None:
    """Nova's rule for a request with a body: JSON, or no media type said."""
    media = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media not in JSON_TYPES + UNSAID_TYPES:
        raise UnsupportedMediaType(f"Unsupported Content-Type {media[:100]!r}: the body "
                                   f"must be {JSON_TYPES[0]}.")
