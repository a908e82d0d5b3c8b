"""Who may open the dashboard: whoever holds the lab's secret, and nobody else (in a
class, also the students, with the read-only token their tickets carry: the dashboard
shows the cloud and drives nothing, and the token opens nothing else).

The dashboard listens on 127.0.0.1, where every user of a shared machine can connect; on a
hub, jupyter-server-proxy lets any logged-in student reach any local port. So every page,
metadata and websocket request must show the lab's secret:

- ``?token=SECRET`` on the first load (the link ``lab.dashboard_url`` gives), which sets a
  cookie for the rest of the visit (HttpOnly, SameSite=Strict, scoped to the page's path
  and named after the lab, since cookies ignore ports and several labs share 127.0.0.1);
- or that cookie; or ``Authorization: token SECRET`` for scripts.

BokehJS and its static files are public (they are Bokeh's own, the same for every lab).

Websockets are also checked for their Origin, the way Jupyter checks its own: the page's
origin must be the host the request came to (``Origin`` matches ``Host``: true through
jupyter-server-proxy, which forwards both unchanged), or one of the lab's own addresses. A
page elsewhere cannot open a student's dashboard with their cookie, and no
``allow_websocket_origin=*`` is ever needed.
"""
from __future__ import annotations

import hmac
import logging
import re
import urllib.parse
from typing import Any, Callable

from bokeh.server.auth_provider import AuthProvider
from bokeh.server.views.ws import WSHandler
from tornado.web import HTTPError, RequestHandler
from tornado.websocket import WebSocketHandler

__all__ = ["LabAccess", "cookie_name", "install_origin_check"]

log = logging.getLogger("lab.dashboard")

DENIED_PATH = "/denied"


def cookie_name(lab_id: str) -> str:
    return "conductor-lab-" + re.sub(r"[^A-Za-z0-9_-]", "_", lab_id)[:60]


class DeniedHandler(RequestHandler):
    """Where an unauthenticated browser is sent: a page in words, not a blank one."""

    def get(self) -> None:
        self.set_status(403)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish("<!doctype html><title>Conductor Lab: not your lab</title>"
                    "<h1>403: this dashboard needs its lab's token</h1>"
                    "<p>Open the link your notebook gives (<code>lab.show()</code> or "
                    "<code>lab.dashboard_url</code>), or <code>python -m lab status</code> "
                    "in a terminal: it carries the token of your own lab.</p>")


class LabAccess(AuthProvider):
    """Bokeh's authentication hook, checking the lab's secret."""

    def __init__(self, secret: str, lab_id: str, cookie_path: str = "/",
                 viewers: Callable[[], frozenset[str]] | None = None):
        self.secret = secret
        self.viewers = viewers    # a class's students' read-only tokens: the dashboard only
        self.cookie = cookie_name(lab_id)
        self.cookie_path = cookie_path or "/"
        self.refused = 0
        super().__init__()

    def _known(self, token: str) -> bool:
        if _same(token, self.secret):
            return True
        return self.viewers is not None and \
            any(_same(token, view) for view in self.viewers())

    def allowed(self, handler: RequestHandler) -> bool:
        given = handler.get_argument("token", None)
        if given is not None and self._known(given):
            if not isinstance(handler, WebSocketHandler):
                handler.set_cookie(self.cookie, given, path=self.cookie_path,
                                   httponly=True, samesite="Strict")
            return True
        header = handler.request.headers.get("Authorization", "")
        if header.lower().startswith("token ") and self._known(header[6:].strip()):
            return True
        cookie = handler.get_cookie(self.cookie)
        return cookie is not None and self._known(cookie)

    def _get_user(self, handler: RequestHandler) -> str | None:
        if self.allowed(handler):
            return "owner"
        self.refused += 1
        log.warning("refused %s %s from %s: no or wrong token (%d refused)",
                    handler.request.method, handler.request.path, handler.request.remote_ip,
                    self.refused)
        return None

    @property
    def get_user(self) -> Any:
        return self._get_user

    @property
    def login_url(self) -> str:
        return DENIED_PATH

    @property
    def login_handler(self) -> type[RequestHandler]:
        return DeniedHandler


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class LabWSHandler(WSHandler):
    """Bokeh's websocket, refused at the handshake (403) unless authenticated and
    same-origin or from an allowed origin."""

    async def prepare(self) -> None:
        pending = super().prepare()
        if pending is not None:
            await pending
        if self.get_current_user() is None:
            raise HTTPError(403, "no or wrong token")

    def check_origin(self, origin: str) -> bool:
        """Called for an Origin that is not the Host (tornado >= 6.6 lets those through
        itself; older tornado asks here too)."""
        origin_host = urllib.parse.urlparse(origin).netloc.lower()
        host = (self.request.headers.get("Host") or "").lower()
        allowed = {h.lower() for h in self.application.websocket_origins}
        if origin_host == host or origin_host in allowed:
            return True
        log.warning("refused a websocket from origin %r (host %r)", origin, host)
        return False


def install_origin_check(app: Any) -> None:
    """Serve Bokeh's websocket route with ``LabWSHandler`` (same path, same arguments)."""
    swapped = 0
    for rule in app.wildcard_router.rules:
        if rule.target is WSHandler:
            rule.target = LabWSHandler
            swapped += 1
    if not swapped:
        raise RuntimeError("no Bokeh websocket route found to protect")
