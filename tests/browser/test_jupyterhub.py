"""Two students on one real JupyterHub: the hub, configurable-http-proxy and a single-user
JupyterLab server per student, each notebook run in a kernel of its student's own server
(so it lives under ``/user/<name>/``, as on a class's hub). Each student's browser is on
another machine and reaches only the hub's public port (the one-port proxy): logged in, it
loads the dashboard ``lab.show()`` embedded and sees its own builds, live, and not the
other student's. One student cannot use the other's lab API (401 without its secret) or
dashboard (refused without its token, through either Jupyter server).

The hub spawns with ``SimpleLocalProcessSpawner``: both students run as the test's own OS
user, with a home directory each under the test's temp directory. Real OS users
(LocalProcessSpawner) would also test Unix permissions on run directories, but need root,
useradd and userdel, and leave state outside the test (``/etc/passwd``, homes) that a
killed run cannot clean and that collides between suites running at once on one machine.
What this test claims (the lab's secret and token keep students apart) does not rest on
permissions: the same OS user can read every file here, so only the secret stands between
alice and bob's lab."""
from __future__ import annotations

import json
import os
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
CHP = ROOT / ".node" / "node_modules" / ".bin" / "configurable-http-proxy"
STUDENTS = {"alice": ["alice-web", "alice-db"], "bob": ["bob-build", "bob-cache", "bob-ci"]}
NOTEBOOK = "first-lab.ipynb"


def cells(names: list[str]) -> list[str]:
    """What a newcomer writes after reading the README, one short call per cell."""
    return ["from lab import Lab",
            "lab = Lab(computes=2, seed=1, dashboard=True)\nlab.start()",
            "lab.show()",
            f"servers = [lab.boot(name) for name in {names!r}]\n"
            "[lab.wait(server)['status'] for server in servers]"]


SHUTDOWN = "lab.stop()"
# Run in the student's kernel: what it knows about its lab, for the test to compare.
ABOUT = """import json, os
print(json.dumps(dict(prefix=os.environ.get("JUPYTERHUB_SERVICE_PREFIX"),
                      api=lab.api.base_url, run_dir=str(lab.run_dir),
                      dashboard=lab.dashboard_url,
                      secret=open(os.path.join(lab.run_dir, "secret")).read().strip(),
                      modes=[oct(os.stat(lab.run_dir).st_mode & 0o777),
                             oct(os.stat(os.path.join(lab.run_dir, "secret")).st_mode & 0o777)])))
"""
# Run in alice's kernel after ``mine, other = <her secret>, <bob's API>``: her own API
# with her secret, then bob's without his.
ASK_API = """import json, urllib.error, urllib.request
def status(url, token=None):
    request = urllib.request.Request(url, headers={"X-Auth-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
print(json.dumps(dict(own=status(lab.api.base_url + "/v2.1/servers", mine),
                      bare=status(other + "/v2.1/servers"),
                      wrong=status(other + "/v2.1/servers", mine))))
"""
FETCH = """const done = arguments[arguments.length - 1];
fetch(arguments[0], {credentials: 'same-origin'})
  .then(r => r.text().then(t => done([r.status, r.url, t.slice(0, 300)])))
  .catch(e => done([0, String(e), '']));"""


@dataclass
class Hub:
    url: str
    port: int
    admin_token: str
    password: str
    homes: Path
    log: Path
    http: Callable[..., tuple[int, Any]]

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.http(method, f"{self.url}/hub/api{path}", self.admin_token, body)

    def server(self, user: str) -> str:
        return f"{self.url}/user/{user}/"

    def home(self, user: str) -> Path:
        return self.homes / user

    def token_for(self, user: str) -> str:
        """A token of the student's own (what JupyterLab's page would hold)."""
        status, body = self.api("POST", f"/users/{user}/tokens",
                                {"note": "the test's notebook client", "expires_in": 3600})
        assert status == 201, f"token for {user}: {status} {body}"
        return body["token"]

    def spawn(self, user: str) -> None:
        status, body = self.api("POST", f"/users/{user}/server")
        assert status in (201, 202), f"spawn {user}: {status} {body}"

    def ready(self, user: str) -> bool:
        status, body = self.api("GET", f"/users/{user}")
        assert status == 200, f"GET user {user}: {status} {body}"
        server = body["servers"].get("")
        assert server, f"{user}'s server is gone (spawn failed?):\n{self.tail()}"
        return bool(server["ready"])

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def hub_config(tmp: Path, public: int, hub_port: int, proxy_api: int, admin_token: str,
               password: str, homes: Path, marker: dict[str, str]) -> str:
    args = ["--allow-root"] if os.getuid() == 0 else []
    return f"""# Written by tests/browser/test_jupyterhub.py for one test.
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {public}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{tmp}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = {set(STUDENTS)!r}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{homes}/{{username}}"
c.Spawner.cmd = [{str(VENV_BIN / "jupyterhub-singleuser")!r}]
c.Spawner.args = {args!r}
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {marker!r}
c.JupyterHub.services = [{{"name": "test-harness", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "test-harness", "services": ["test-harness"],
    "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"],
}}]
"""


@pytest.fixture
def hub(tmp_path, jupyter_processes, free_port, http, wait_until) -> Hub:
    """A real JupyterHub on 127.0.0.1 (public port, hub port and proxy API port all free
    ones), its database, cookie secret, config and the students' homes in tmp_path;
    stopped by ``jupyter_processes`` (SIGTERM: the hub stops the servers and the proxy)."""
    if not CHP.exists():
        pytest.skip(f"no configurable-http-proxy at {CHP}: make hub-deps installs it (npm)")
    hub_bin = VENV_BIN / "jupyterhub"
    if not hub_bin.exists():
        pytest.skip(f"{hub_bin} missing: make install puts jupyterhub into .venv")
    public, hub_port, proxy_api = free_port(), free_port(), free_port()
    admin_token, password = secrets.token_hex(32), secrets.token_urlsafe(12)
    homes = tmp_path / "home"
    homes.mkdir()
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(hub_config(tmp_path, public, hub_port, proxy_api, admin_token,
                                 password, homes, jupyter_processes.marker))
    log = tmp_path / "jupyterhub.log"
    proc = jupyter_processes.start([str(hub_bin), "-f", str(config)], log, cwd=tmp_path,
                                   CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(32))
    hub = Hub(f"http://127.0.0.1:{public}", public, admin_token, password, homes, log, http)

    def up() -> bool:
        assert proc.poll() is None, f"jupyterhub exited:\n{hub.tail()}"
        try:
            return hub.api("GET", "/")[0] == 200
        except OSError:
            return False
    wait_until(up, 90, "JupyterHub answering on its public port", 0.25)
    return hub


def log_in(browser: Any, hub: Hub, user: str, wait_for: Callable[..., Any]) -> None:
    """The hub's login form, as a student fills it in (POST /hub/login)."""
    from selenium.webdriver.common.by import By
    browser.get(f"{hub.url}/hub/login?next=%2Fhub%2Fhome")
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(hub.password)
    browser.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait_for(lambda: urllib.parse.urlsplit(browser.current_url).path == "/hub/home",
             timeout=30, what=f"{user} logged in (at {browser.current_url})")


def test_two_students_each_see_their_own_lab_through_the_hub(
        hub, write_notebook, jupyter_kernels, one_port_proxy, remote_browser, page_requests,
        bokeh_page, model_data, wait_for, screenshot):
    for user in STUDENTS:
        hub.spawn(user)
    for user in STUDENTS:
        wait_for(lambda: hub.ready(user), timeout=120, what=f"{user}'s server ready")

    labs: dict[str, dict[str, Any]] = {}
    for user, names in STUDENTS.items():
        write_notebook(hub.home(user) / NOTEBOOK, "My first lab", cells(names) + [SHUTDOWN])
        kernel = jupyter_kernels(hub.server(user), hub.token_for(user), NOTEBOOK)
        results = [kernel.run(code) for code in cells(names)]
        assert results[3].data("text/plain") == [repr(["ACTIVE"] * len(names))]
        src = results[2].iframe_src()
        match = re.fullmatch(rf"/user/{user}/proxy/absolute/(\d+)/dashboard\?token=(.+)", src)
        assert match, f"{user}'s lab.show() iframe src: {src}"
        about = json.loads(kernel.run(ABOUT).stdout)
        assert about["prefix"] == f"/user/{user}/"
        assert about["dashboard"] in (src, urllib.parse.urljoin(hub.url, src))
        assert about["modes"] == ["0o700", "0o600"], about
        assert urllib.parse.unquote(match[2]) == about["secret"]
        labs[user] = dict(kernel=kernel, src=src, port=match[1], **about)

    # alice's kernel, on the same machine as bob's lab: his API without his secret
    alice, bob = labs["alice"], labs["bob"]
    asked = json.loads(alice["kernel"].run(
        f"mine, other = {alice['secret']!r}, {bob['api']!r}\n" + ASK_API).stdout)
    assert asked == dict(own=200, bare=401, wrong=401), asked

    proxy = one_port_proxy(f"127.0.0.1:{hub.port}")
    browsers = {}
    for user, names in STUDENTS.items():
        browser = browsers[user] = remote_browser(proxy)
        log_in(browser, hub, user, wait_for)
        url = urllib.parse.urljoin(hub.url, labs[user]["src"])
        bokeh_page(url, timeout=60, driver=browser)

        def shown(browser=browser):
            return set((model_data("instances", driver=browser) or {}).get("name", []))
        wait_for(lambda: set(names) <= shown(), timeout=60, what=f"{user}'s servers shown")
        labs[user]["kernel"].run(f"lab.wait(lab.boot('{user}-late'))['status']")
        wait_for(lambda: f"{user}-late" in shown(), timeout=60,
                 what=f"{user}'s server booted after the page loaded")
        others = {n for u, ns in STUDENTS.items() if u != user for n in ns + [f"{u}-late"]}
        assert not shown() & others, f"{user} sees {shown() & others}"
        screenshot(f"{user}-dashboard", driver=browser)
        errors = [e for e in browser.get_log("browser")
                  if e["level"] == "SEVERE" and "favicon" not in e["message"]]
        assert errors == [], f"{user}'s browser console: {errors}"

    # alice's browser, logged in to the hub, asks for bob's dashboard without his token.
    # Her own server proxies any port on the machine: by proxy/PORT/ (the path passed on
    # as it is after the port) it reaches bob's Bokeh server at his page's own path, and
    # only his token stands in the way. At his path on the hub, the hub refuses her.
    bob_page = f"/user/bob/proxy/absolute/{bob['port']}/dashboard"
    asks = {f"/user/alice/proxy/{bob['port']}{bob_page}": (401, 403),
            f"/user/alice/proxy/{bob['port']}{bob_page}?token={alice['secret']}": (401, 403),
            f"/user/alice/proxy/absolute/{bob['port']}/dashboard": (401, 403, 404),
            bob_page: (403,),
            f"{bob_page}?token={alice['secret']}": (403,),
            # the control: with bob's token, the same way through alice's server works
            f"/user/alice/proxy/{bob['port']}{bob_page}?token={bob['secret']}": (200,)}
    for path, expected in asks.items():
        status, final, body = browsers["alice"].execute_async_script(FETCH, hub.url + path)
        assert status in expected, f"alice asked {path}: {status} at {final}: {body!r}"

    for user, browser in browsers.items():
        requested = page_requests(browser)
        elsewhere = [u for u in requested if u.startswith(("http", "ws")) and
                     not u.startswith((hub.url + "/", hub.url.replace("http", "ws", 1) + "/"))]
        assert elsewhere == [], f"{user}'s browser asked elsewhere: {elsewhere}"
        ws = hub.url.replace("http", "ws", 1) + labs[user]["src"].split("?")[0] + "/ws"
        assert ws in {u.split("?")[0] for u in requested}, f"{user}: no {ws} in {requested}"
    assert proxy.blocked_for_pages() == [], "\n".join(proxy.blocked_for_pages())
    assert any(line.startswith("TUNNEL") for line in proxy.lines()), proxy.lines()
    for lab in labs.values():
        lab["kernel"].run(SHUTDOWN)
