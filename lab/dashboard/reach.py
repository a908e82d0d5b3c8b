"""How a student's browser reaches the dashboard.

A class rarely runs where its browsers are. On a JupyterHub, Binder or a university's
Jupyter server the browser is on another machine and reaches only the Jupyter server's
public port, under its base URL (``/user/alice/``). So, decided once when the dashboard
starts (the Bokeh server must know the path it is served under):

- **jupyter**: the lab runs under a Jupyter server (a kernel, or a terminal on a hub). The
  page goes through that server, by jupyter-server-proxy's ``{base_url}proxy/absolute/
  {port}/`` route, behind the server's own login. The base URL comes from
  ``JUPYTERHUB_SERVICE_PREFIX`` (JupyterHub and Binder set it) or from the ``jpserver-*.json``
  of the Jupyter server that started this kernel. ``JUPYTER_BOKEH_EXTERNAL_URL`` (Bokeh's
  convention for hubs) makes the link absolute.
- **override**: ``CONDUCTOR_LAB_DASHBOARD_URL`` is a URL template with ``{port}``, e.g.
  ``https://lab.example.edu/user/alice/proxy/absolute/{port}``, for set-ups this cannot
  guess; or ``direct`` to switch the proxy off.
- **direct**: anywhere else (the CLI's ``up`` on a laptop): ``http://127.0.0.1:{port}``.

Whichever way, the dashboard also asks for the lab's secret (``token``); see ``access``.
Everything here is pure except ``find``'s reading of the environment and ``probe``.
"""
from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = ["Reach", "OVERRIDE", "find", "decide", "jupyter_servers", "probe"]

OVERRIDE = "CONDUCTOR_LAB_DASHBOARD_URL"
HUB_PREFIX = "JUPYTERHUB_SERVICE_PREFIX"
EXTERNAL = "JUPYTER_BOKEH_EXTERNAL_URL"
APP_PATH = "/dashboard"


@dataclass(frozen=True)
class Reach:
    """Where the dashboard is served and how a browser gets there."""

    how: str                  # "direct" | "jupyter" | "override"
    prefix_template: str = ""  # the Bokeh server's URL prefix, "{port}" still unfilled
    external: str = ""        # "https://hub.example.org" when known, else ""
    server_url: str = ""      # the Jupyter server as seen from this machine (for probing)
    why: str = "not under a Jupyter server"

    def prefix(self, port: int) -> str:
        return self.prefix_template.replace("{port}", str(port)).rstrip("/")

    def page_path(self, port: int) -> str:
        """The dashboard page's path on the server that the browser talks to."""
        return f"{self.prefix(port)}{APP_PATH}"

    def browser_url(self, port: int, token: str | None = None) -> str:
        """What the browser opens: absolute when the public address is known, else a path
        (a link in a notebook resolves it against the notebook's own page)."""
        if self.how == "direct":
            base = f"http://127.0.0.1:{port}"
        else:
            base = self.external.rstrip("/")
        query = f"?token={urllib.parse.quote(token)}" if token else ""
        return f"{base}{self.page_path(port)}{query}"

    def origins(self, port: int) -> list[str]:
        """Websocket origins besides the page's own host (checked against Host)."""
        names = [f"127.0.0.1:{port}", f"localhost:{port}"]
        if self.external:
            names.append(urllib.parse.urlparse(self.external).netloc)
        return names

    def to_dict(self) -> dict[str, str]:
        return dict(how=self.how, prefix_template=self.prefix_template,
                    external=self.external, server_url=self.server_url, why=self.why)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Reach:
        fields = cls.__dataclass_fields__
        return cls(**{"how": "direct", **{k: str(v) for k, v in (data or {}).items()
                                          if k in fields}})


def find(env: Mapping[str, str] | None = None) -> Reach:
    """Look at this process's surroundings and decide (see the module docstring)."""
    env = os.environ if env is None else env
    in_kernel = "ipykernel" in sys.modules or "JPY_PARENT_PID" in env
    servers = jupyter_servers() if in_kernel and not env.get(HUB_PREFIX) else []
    return decide(env, servers, in_kernel, parent_pid=os.getppid())


def decide(env: Mapping[str, str], servers: list[dict[str, Any]], in_kernel: bool,
           parent_pid: int | None = None) -> Reach:
    """The pure rule: ``servers`` are the running Jupyter servers' ``jpserver-*.json``."""
    override = env.get(OVERRIDE, "").strip()
    if override.lower() == "direct":
        return Reach("direct", why=f"{OVERRIDE}=direct")
    if override:
        if "{port}" not in override:
            raise ValueError(f"{OVERRIDE} must contain {{port}} (or be 'direct'): {override!r}")
        parts = urllib.parse.urlsplit(override)
        external = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
        return Reach("override", parts.path.rstrip("/"), external,
                     why=f"{OVERRIDE}={override}")
    external = env.get(EXTERNAL, "").strip().rstrip("/")
    if env.get(HUB_PREFIX):
        base = _slashed(env[HUB_PREFIX])
        server = _server_for(servers, env, parent_pid, base)
        return Reach("jupyter", f"{base}proxy/absolute/{{port}}", external,
                     _local_url(server), why=f"{HUB_PREFIX}={env[HUB_PREFIX]}")
    if not in_kernel:
        return Reach("direct")
    server = _server_for(servers, env, parent_pid, None)
    if server is None:
        return Reach("direct", why="a kernel, but no Jupyter server of its own was found")
    base = _slashed(server.get("base_url", "/"))
    return Reach("jupyter", f"{base}proxy/absolute/{{port}}", external, _local_url(server),
                 why=f"the Jupyter server at {server.get('url', '?')} (pid {server.get('pid')})")


def _slashed(path: str) -> str:
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def _server_for(servers: list[dict[str, Any]], env: Mapping[str, str],
                parent_pid: int | None, base: str | None) -> dict[str, Any] | None:
    """The server that started this kernel (its pid is the kernel's JPY_PARENT_PID)."""
    pids = {p for p in (env.get("JPY_PARENT_PID"), parent_pid) if p}
    for server in servers:
        if str(server.get("pid")) in {str(p) for p in pids}:
            return server
    if base is not None:   # on a hub: the one server under our prefix, if it is unique
        mine = [s for s in servers if _slashed(s.get("base_url", "/")) == base]
        return mine[0] if len(mine) == 1 else None
    return None


def _local_url(server: dict[str, Any] | None) -> str:
    if not server or not server.get("url"):
        return ""
    parts = urllib.parse.urlsplit(server["url"])
    return f"{parts.scheme}://{parts.netloc}"


def jupyter_servers() -> list[dict[str, Any]]:
    """The ``jpserver-*.json`` files of this user's running Jupyter servers."""
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return []
    out = []
    for path in sorted(Path(jupyter_runtime_dir()).glob("jpserver-*.json")):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and _pid_alive(info.get("pid")):
            out.append(info)
    return out


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def probe(reach: Reach, port: int, timeout: float = 3.0) -> str | None:
    """Ask the Jupyter server (from this machine, without logging in) whether it has the
    proxy route: None if it seems to, else what is wrong, in words. A 404 means no
    jupyter-server-proxy; a login redirect or a 403 means the route is there."""
    if reach.how != "jupyter" or not reach.server_url:
        return None
    url = f"{reach.server_url}{reach.page_path(port)}"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None
    try:
        urllib.request.build_opener(NoRedirect).open(url, timeout=timeout).close()
    except urllib.error.HTTPError as err:
        err.close()         # its response holds the socket
        if err.code == 404:
            return (f"the Jupyter server answered 404 for {url}: it has no "
                    f"jupyter-server-proxy. Install it where the server runs (pip install "
                    f"'conductor-lab[notebook]' or jupyter-server-proxy) and restart the "
                    f"server, or set {OVERRIDE}=direct if your browser is on this machine.")
        return None
    except OSError as err:
        return f"could not ask the Jupyter server at {url}: {err}"
    return None
