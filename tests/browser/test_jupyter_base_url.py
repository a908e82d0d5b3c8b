"""A class's own Jupyter server: plain JupyterLab under a base URL (``/user/alice/``), and
a student's browser on another machine that reaches nothing but that server's port (the
one-port proxy). A notebook run in the server's kernel starts a lab and shows its
dashboard; the browser opens the dashboard's address through the Jupyter server, gets the
page, BokehJS and the websocket from it, and sees the lab's builds arrive. Nothing it
needed was blocked."""
from __future__ import annotations

import urllib.parse

import pytest

pytestmark = pytest.mark.timeout(300)

BASE_URL = "/user/alice/"
NAMES = ["web-1", "db-1"]
# What a newcomer writes after reading the README: one short call per cell.
CELLS = [
    "from lab import Lab",
    "lab = Lab(computes=2, seed=1, dashboard=True)\nlab.start()",
    "lab.show()",
    f"servers = [lab.boot(name) for name in {NAMES!r}]\n"
    "[lab.wait(server)['status'] for server in servers]",
]
SHUTDOWN = "lab.stop()"


@pytest.fixture
def jupyter_lab(start_jupyter_lab):
    return start_jupyter_lab(BASE_URL)


def test_dashboard_through_the_jupyter_server_under_a_base_url(
        jupyter_lab, write_notebook, jupyter_kernels, one_port_proxy, remote_browser,
        page_requests, bokeh_page, model_data, wait_for, screenshot):
    write_notebook(jupyter_lab["notebooks"] / "first-lab.ipynb", "My first lab",
                   CELLS + [SHUTDOWN])
    kernel = jupyter_kernels(jupyter_lab["server"], jupyter_lab["token"], "first-lab.ipynb")
    results = [kernel.run(code) for code in CELLS[:3]]
    src = results[2].iframe_src()
    path = urllib.parse.urlsplit(src).path
    assert path.startswith(f"{BASE_URL}proxy/absolute/"), src
    assert path.endswith("/dashboard"), src
    url = urllib.parse.urljoin(jupyter_lab["origin"] + "/", src)
    assert kernel.run("print(lab.dashboard_url)").stdout.strip() in (src, url)
    assert "'ACTIVE'" in "".join(kernel.run(CELLS[3]).data("text/plain"))

    proxy = one_port_proxy(f"127.0.0.1:{jupyter_lab['port']}")
    browser = remote_browser(proxy)
    # A student opens the link the server printed (token in it), then the dashboard.
    browser.get(f"{jupyter_lab['server']}lab?token={jupyter_lab['token']}")
    bokeh_page(url, timeout=60, driver=browser)
    requested = page_requests(browser)
    scripts = browser.execute_script(
        "return Array.from(document.scripts).map(s => s.src).filter(Boolean)")
    page_dir = url.split("?")[0].rsplit("/", 1)[0]
    assert scripts and all(s.startswith(page_dir) for s in scripts), scripts

    def names():
        return set((model_data("instances", driver=browser) or {}).get("name", []))
    wait_for(lambda: set(NAMES) <= names(), timeout=60, what="the notebook's servers")
    kernel.run("late = lab.boot('late-1')\nlab.wait(late)['status']")   # and it is live
    wait_for(lambda: "late-1" in names(), timeout=60, what="a server booted after loading")
    methods = set(model_data("messages", driver=browser)["method"])
    assert {"build_instances", "select_destinations", "build_and_run_instance"} <= methods
    screenshot("dashboard", driver=browser)

    requested += page_requests(browser)
    origin = jupyter_lab["origin"]
    elsewhere = [u for u in requested if u.startswith(("http", "ws")) and not u.startswith(
        (origin + "/", origin.replace("http", "ws", 1) + "/"))]
    assert elsewhere == [], elsewhere
    assert f"{page_dir.replace('http', 'ws', 1)}/dashboard/ws" in {
        u.split("?")[0] for u in requested}, requested
    assert proxy.blocked_for_pages() == [], "\n".join(proxy.blocked_for_pages())
    tunnels = [line for line in proxy.lines() if line.startswith("TUNNEL")]
    assert tunnels, f"no websocket went through the proxy:\n{proxy.lines()}"
    errors = [e for e in browser.get_log("browser")
              if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert errors == [], errors
    kernel.run(SHUTDOWN)
