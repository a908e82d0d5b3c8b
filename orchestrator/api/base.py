"""The request handler every API resource is built on: the lab's secret checked on every
request, the body streamed in within the API's limits (``limits``), and every refusal
answered in Nova's error shape (``{"badRequest": {"code": 400, "message": ...}}``),
never an HTML page, never a 500 for bad input, never a dropped connection.

Tornado calls ``get``/``post``/... once the whole body is in; here each of those is
``_dispatch``, which checks the token, the header section's and the body's size, picks a
Compute API resource's microversion (``microversion``), then calls the resource's
``do_get``/``do_post``/... (405 if it has none). Resources define ``do_*``, never
tornado's verbs, so nothing of theirs runs before those checks."""
from __future__ import annotations

import hmac
import json
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

import tornado.web

from ..db import NotFound
from ..exception import Conflict
from . import limits, microversion
from .validation import BadRequest, parse_json
from .views import error_body

if TYPE_CHECKING:
    from .manager import ApiManager

__all__ = ["Base", "Unauthorized", "STATUS_OF", "VERBS"]

VERBS = ("get", "head", "post", "delete", "patch", "put", "options")


class Unauthorized(Exception):
    """HTTP 401: no ``X-Auth-Token``, or not the lab's secret."""


# Each refusal's status; the first match wins (UnexpectedTaskState is a NotFound).
STATUS_OF: tuple[tuple[type[BaseException], int], ...] = (
    (Unauthorized, 401), (BadRequest, 400), (microversion.InvalidVersion, 400),
    (NotFound, 404), (Conflict, 409), (microversion.NotAcceptable, 406),
    (limits.PayloadTooLarge, 413), (limits.UnsupportedMediaType, 415))


def _status_of(exc: BaseException | None) -> int | None:
    return next((code for kind, code in STATUS_OF if isinstance(exc, kind)), None)


@tornado.web.stream_request_body
class Base(tornado.web.RequestHandler):
    """Every request must carry the lab's secret as ``X-Auth-Token`` (as Keystone's token
    is carried), whatever its path: a stranger on the same machine learns nothing."""

    manager: ApiManager
    rid: str            # this request's id, on every answer (x-openstack-request-id)
    versioned = True    # a Compute API resource: it has microversions
    version = microversion.MIN_VERSION   # this request's, once the request is checked
    _version_said = False

    def initialize(self, manager: ApiManager) -> None:
        self.manager = manager
        self._chunks: list[bytes] = []
        self._received = 0
        self._answered = False

    def set_default_headers(self) -> None:
        # Nova answers every request with its request id, errors included; and every
        # versioned one with its version (tornado calls this again to answer an error).
        if not hasattr(self, "rid"):
            self.rid = "req-" + str(uuidlib.uuid4())
        self.set_header("x-openstack-request-id", self.rid)
        self.set_header("x-compute-request-id", self.rid)     # Nova's older name, still sent
        if self._version_said:
            for name, value in microversion.response_headers(self.version):
                self.add_header(name, value)

    async def prepare(self) -> None:
        """Before the body. A body declared over the limit is refused at once (a client
        that reads while it sends can stop), and still read and dropped before the
        request ends (one that sends first, then reads, hears the answer too)."""
        declared = limits.declared_length(self.request.headers)
        self.request.connection.set_max_body_size(max(declared or 0,
                                                      limits.DRAIN_BODY_BYTES))
        if declared is None or declared <= limits.MAX_BODY_BYTES:
            return
        try:
            self.check_token()
            limits.check_body_size(declared)
        except (Unauthorized, limits.PayloadTooLarge) as exc:
            if self.request.headers.get("Expect", "").lower() == "100-continue":
                raise     # the client waits before sending: answer and close, nothing sent
            await self._answer_early(exc)

    def data_received(self, chunk: bytes) -> None:
        if self._received + len(chunk) <= limits.MAX_BODY_BYTES:
            self._chunks.append(chunk)
        self._received += len(chunk)

    async def _dispatch(self, *args: str) -> None:
        if self._answered:
            return self.finish()
        self.check_token()
        limits.check_headers(self.request.uri or "", self.request.headers)
        limits.check_body_size(self._received)
        if self.versioned:
            self.version = microversion.requested(self.request.headers)
            self._version_said = True
            self.set_default_headers()
        self.request.body = b"".join(self._chunks)
        handler = getattr(self, f"do_{self.request.method.lower()}", None)
        if handler is None:
            raise tornado.web.HTTPError(405)
        result = handler(*args)
        if result is not None:
            await result

    get = head = post = delete = patch = put = options = _dispatch

    def check_token(self) -> None:
        want = self.manager.secret
        given = self.request.headers.get("X-Auth-Token", "")
        if want and not hmac.compare_digest(given.encode(), want.encode()):
            raise Unauthorized("The request you have made requires authentication "
                               "(X-Auth-Token: the lab's secret, from its run directory).")

    def json_body(self) -> Any:
        """The body as JSON, if its Content-Type allows (Nova's rule: 415 otherwise)."""
        if self.request.body:
            limits.check_content_type(self.request.headers)
        return parse_json(self.request.body)

    @property
    def base(self) -> str:
        return self.manager.url

    def reply(self, code: int, body: Any = None) -> None:
        """Answer ``body`` as JSON; with no body, nothing (Nova's 202s and 204s)."""
        self.set_status(code)
        if body is None:
            return self.finish()
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def fault(self, code: int, message: str) -> dict[str, Any]:
        """An error's body: Nova's shape (the image service answers in Glance's)."""
        return error_body(code, message)

    # -- refusals ---------------------------------------------------------------------
    def _error(self, status_code: int, exc: BaseException | None) -> bytes:
        """Set the status and headers of an error answer; its body."""
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json")
        if isinstance(exc, Unauthorized):
            # keystonemiddleware's answer, not Nova's: the token is checked before Nova
            self.set_header("WWW-Authenticate", "Keystone uri='lab-secret'")
            return json.dumps({"error": {"code": 401, "title": "Unauthorized",
                                         "message": str(exc)}}).encode()
        if _status_of(exc) is not None:
            message = str(exc)
        elif isinstance(exc, tornado.web.HTTPError):
            message = exc.log_message or self._reason
        else:
            message = "Unexpected API error; see logs/api.*.log"
        return json.dumps(self.fault(status_code, message)).encode()

    async def _answer_early(self, exc: Exception) -> None:
        """The whole answer now (its length said, so the client knows it is complete);
        the request is finished once its body is in (``_dispatch``)."""
        body = self._error(_status_of(exc) or 400, exc)
        self.set_header("Content-Length", str(len(body)))
        self.write(body)
        self._answered = True
        await self.flush()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(self._error(status_code, kwargs.get("exc_info", (None, None))[1]))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if _status_of(value) is None and not isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        code = _status_of(kwargs.get("exc_info", (None, None))[1])
        super().send_error(code or status_code, **kwargs)
