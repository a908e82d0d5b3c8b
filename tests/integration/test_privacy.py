"""Many students on one machine, each alone in their lab: the run directory is private,
the bus and its tap are Unix sockets inside it, and the API and the dashboard answer only
requests that carry the lab's secret. Tried from a second OS user (created here, as
root) and from a client of our own that lacks the secret."""
from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import stat
import subprocess
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from orchestrator import rundir

pytestmark = pytest.mark.timeout(120)
STRANGER = "labstranger"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read(), dict(err.headers)


def test_the_run_directory_and_its_secret_are_private(make_lab):
    lab = make_lab(computes=1)
    assert stat.S_IMODE(os.stat(lab.run_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(Path(lab.run_dir) / rundir.SECRET).st_mode) == 0o600
    endpoints = rundir.read(lab.run_dir)["endpoints"]
    for name in ("bus", "trace"):
        assert endpoints[name].startswith("ipc://"), endpoints
        sock_dir = Path(endpoints[name].removeprefix("ipc://")).parent
        assert stat.S_IMODE(os.stat(sock_dir).st_mode) == 0o700
    assert endpoints["api"].startswith("http://127.0.0.1:")


def test_the_api_refuses_requests_without_the_labs_secret(make_lab):
    lab = make_lab(computes=1)
    url = f"{lab.api_url}/v2.1/servers"
    for headers in ({}, {"X-Auth-Token": "guess"}, {"X-Auth-Token": lab.api.token + "x"}):
        status, body, reply_headers = _get(url, headers)
        assert status == 401, (headers, status)
        assert json.loads(body)["error"]["code"] == 401
        assert "www-authenticate" in {k.lower() for k in reply_headers}
    status, body, _ = _get(url, {"X-Auth-Token": lab.api.token})
    assert status == 200 and json.loads(body) == {"servers": []}
    # refusing changed nothing, and a POST without the token makes nothing
    req = urllib.request.Request(url, method="POST", data=b'{"server": {"name": "x"}}',
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    err.value.close()
    assert err.value.code == 401
    assert lab.servers() == []


def test_the_dashboard_asks_for_the_token_then_keeps_it_in_a_cookie(make_lab):
    lab = make_lab(computes=1, dashboard=True)
    url = lab.dashboard_url
    bare = url.split("?")[0]
    status, body, _ = _get(bare)
    assert status == 403 and b"needs its lab's token" in body     # redirected, in words
    assert _get(bare + "?token=wrong")[0] == 403
    status, body, headers = _get(url)
    assert status == 200 and b"bokeh" in body.lower()
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert _get(bare, {"Cookie": cookie})[0] == 200
    assert _get(bare, {"Authorization": f"token {lab.cluster.secret}"})[0] == 200
    # BokehJS itself is public: the same for every lab, and needed before any login
    static = bare.replace("/dashboard", "/static/js/bokeh.min.js")
    assert _get(static)[0] == 200


def _ws(url: str, headers: dict[str, str]) -> str:
    async def attempt() -> str:
        try:
            conn = await websocket_connect(HTTPRequest(url, headers=headers))
        except HTTPClientError as exc:
            return f"refused {exc.code}"
        conn.close()
        return "open"
    return asyncio.run(asyncio.wait_for(attempt(), 10))


def test_the_dashboards_websocket_wants_its_own_origin_and_the_token(make_lab):
    lab = make_lab(computes=1, dashboard=True)
    status, _, headers = _get(lab.dashboard_url)
    cookie = headers["Set-Cookie"].split(";")[0]
    page = lab.dashboard_url.split("?")[0]
    ws = page.replace("http://", "ws://") + "/ws"
    host = page.split("/")[2]
    assert _ws(ws, {"Cookie": cookie, "Origin": f"http://{host}"}) == "open"
    # a page on another site, with the student's cookie: refused (no CSWSH)
    assert _ws(ws, {"Cookie": cookie, "Origin": "http://evil.example"}) == "refused 403"
    # the right origin but no token: refused
    assert _ws(ws, {"Origin": f"http://{host}"}) == "refused 403"


STRANGER_SCRIPT = textwrap.dedent("""
    import json, socket, sys, urllib.error, urllib.request
    run_dir, api, dashboard, bus = sys.argv[1:5]
    out = {}
    try:
        open(run_dir + "/lab.json").read(); out["lab.json"] = "read"
    except OSError as e:
        out["lab.json"] = type(e).__name__
    for name in ("secret", "clouds.yaml"):     # clouds.yaml carries the secret too
        try:
            open(run_dir + "/" + name).read(); out[name] = "read"
        except OSError as e:
            out[name] = type(e).__name__
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(bus); out["bus"] = "connected"
    except OSError as e:
        out["bus"] = type(e).__name__
    for name, url in (("api", api + "/v2.1/servers"), ("dashboard", dashboard)):
        try:
            urllib.request.urlopen(url, timeout=10); out[name] = 200
        except urllib.error.HTTPError as e:
            out[name] = e.code
    req = urllib.request.Request(api + "/v2.1/servers", method="POST",
                                 data=b'{"server": {"name": "intruder", "flavorRef": "1"}}',
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10); out["boot"] = 202
    except urllib.error.HTTPError as e:
        out["boot"] = e.code
    print(json.dumps(out))
""")


def _stranger() -> pwd.struct_passwd:
    if os.getuid() != 0 or not shutil.which("useradd") or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root, useradd and /usr/bin/python3 to act as a second OS user")
    try:
        return pwd.getpwnam(STRANGER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        STRANGER], check=False, capture_output=True)
        return pwd.getpwnam(STRANGER)


def test_another_os_user_on_the_machine_is_refused_by_every_endpoint(make_lab, tmp_path):
    user = _stranger()
    lab = make_lab(computes=1, dashboard=True)
    endpoints = rundir.read(lab.run_dir)["endpoints"]
    script = Path("/tmp") / f"conductor-lab-stranger-{os.getpid()}.py"
    script.write_text(STRANGER_SCRIPT)
    script.chmod(0o644)
    try:
        out = subprocess.run(
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
             "/usr/bin/python3", str(script), str(lab.run_dir), lab.api_url,
             endpoints["dashboard"], endpoints["bus"].removeprefix("ipc://")],
            capture_output=True, text=True, timeout=60, cwd="/")
    finally:
        script.unlink()
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen == {"lab.json": "PermissionError", "secret": "PermissionError",
                    "clouds.yaml": "PermissionError", "bus": "PermissionError", "api": 401,
                    "dashboard": 403, "boot": 401}
    assert (lab.run_dir / "clouds.yaml").stat().st_mode & 0o777 == 0o600
    assert lab.servers() == []      # nothing the stranger tried made anything
