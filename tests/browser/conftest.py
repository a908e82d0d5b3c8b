"""Browser fixtures: real headless Chromium (Debian's chromium + chromium-driver, never a
downloaded browser) driven by selenium. Screenshots go to test-artifacts/.

For the tests of a class's set-up (a Jupyter server under a base URL, a JupyterHub), a
student's browser is on another machine and reaches only the Jupyter server's public port:
``remote_browser(proxy)`` is a Chromium whose every request goes through ``one_port_proxy``
(this directory's copy of the team's tool), which lets one host:port through and logs a
BLOCKED line for anything else. ``jupyter_kernels`` runs code in a kernel of a real Jupyter
server (its REST API and kernel websocket), and ``jupyter_processes`` makes sure nothing a
Jupyter server started (kernels, labs) outlives the test."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ONE_PORT_PROXY = Path(__file__).with_name("one_port_proxy.py")
JUPYTER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "jupyter"
# Every process a Jupyter test starts carries this in its environment, so the teardown
# can find what was left (a kernel's lab, a server the hub lost track of) and say so.
TAG_VARIABLE = "CONDUCTOR_LAB_TEST_TAG"


@pytest.fixture
def make_browser() -> Iterator[Callable[..., Any]]:
    """``make_browser(*chromium_args)`` -> a selenium driver; all quit at teardown."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are required (make test installs them)")
    from selenium import webdriver
    made: list[tuple[Any, str]] = []

    def make(*extra: str, log_requests: bool = False) -> Any:
        profile = tempfile.mkdtemp(prefix="lab-chromium-")
        options = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--window-size=1500,1000", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--disable-sync",
                    "--disable-quic", f"--user-data-dir={profile}", *extra):
            options.add_argument(arg)
        if log_requests:     # every request a page makes, for page_requests()
            options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        options.binary_location = CHROMIUM
        try:
            driver = webdriver.Chrome(
                service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
                options=options)
        except BaseException:
            shutil.rmtree(profile, ignore_errors=True)
            raise
        made.append((driver, profile))
        driver.set_page_load_timeout(30)
        return driver

    yield make
    for driver, profile in made:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(make_browser) -> Any:
    return make_browser()


def _bokeh_ready(driver: Any) -> bool:
    return driver.execute_script(
        "return !!(window.Bokeh && Bokeh.documents.length && Bokeh.documents[0].is_idle)")


@pytest.fixture
def bokeh_page(request, wait_until) -> Callable[..., Any]:
    """Open a Bokeh server page and wait until its document is loaded and idle
    (in ``driver``, default the ``browser``)."""
    def open_page(url: str, timeout: float = 30.0, driver: Any = None) -> Any:
        driver = driver or request.getfixturevalue("browser")
        driver.get(url)
        wait_until(lambda: _bokeh_ready(driver), timeout, f"Bokeh document at {url} ready",
                   interval=0.1)
        return driver
    return open_page


@pytest.fixture
def model_data(request) -> Callable[..., dict]:
    """The columns of a named ColumnDataSource, as the browser (or ``driver``) holds them."""
    def read(name: str, driver: Any = None) -> dict:
        return (driver or request.getfixturevalue("browser")).execute_script(
            "const m = Bokeh.documents[0].get_model_by_name(arguments[0]);"
            "if (!m) { return null; }"
            "const out = {}; for (const [k, v] of Object.entries(m.data)) { out[k] = Array.from(v); }"
            "return out;", name)
    return read


@pytest.fixture
def wait_for(wait_until) -> Callable[..., Any]:
    """``wait_until`` with a page's pace: 30 s by default, polled every 0.1 s."""
    def wait(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
        return wait_until(predicate, timeout, what, interval=0.1)
    return wait


@pytest.fixture
def screenshot(request) -> Callable[..., Path]:
    def save(label: str, driver: Any = None) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}-{label}.png"
        (driver or request.getfixturevalue("browser")).save_screenshot(str(path))
        return path
    return save


# -- a student's browser on another machine ---------------------------------------------------
def free_port() -> int:
    """A port the OS says is free on 127.0.0.1 now (for servers that want a number)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class OnePortProxy:
    """A running one_port_proxy.py: the one host:port it lets through, and its log."""

    port: int
    allowed: str
    log: Path
    proc: subprocess.Popen = field(repr=False)

    @property
    def chromium_args(self) -> tuple[str, ...]:
        # Without the bypass-list rule Chromium never proxies 127.0.0.1.
        return (f"--proxy-server=http://127.0.0.1:{self.port}",
                "--proxy-bypass-list=<-loopback>")

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def blocked(self) -> list[str]:
        """Everything a remote student's browser could not have reached."""
        return [line for line in self.lines() if line.startswith("BLOCKED")]

    def blocked_for_pages(self) -> list[str]:
        """``blocked()`` less Chromium's own calls home (sign-in, autofill, clock, search
        engine, updates), which no page asked for and flags do not silence for good.
        Anything a page wanted (an asset, a websocket, the lab's own port) stays."""
        return [line for line in self.blocked()
                if not CHROMIUM_OWN.search(_target_host(line.split(" ", 2)[2]))]


# Hosts Chromium itself calls, whatever page is open (seen in the proxy's log).
CHROMIUM_OWN = re.compile(r"(^|\.)(google\.com|googleapis\.com|gvt1\.com|duckduckgo\.com)$")


def _target_host(target: str) -> str:
    """The host of a proxy request's target: ``host:port`` (CONNECT) or a URL."""
    if "://" in target:
        return urllib.parse.urlsplit(target).hostname or ""
    return target.rsplit(":", 1)[0]


def page_requests(driver: Any) -> list[str]:
    """The URLs the page asked for since the last call (documents, scripts, styles, XHR,
    websockets), from Chromium's own log (a ``make_browser(log_requests=True)`` driver);
    unlike the proxy's log, none of Chromium's background traffic."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


@pytest.fixture
def one_port_proxy(tmp_path, wait_until) -> Iterator[Callable[[str], OnePortProxy]]:
    """``one_port_proxy("127.0.0.1:PORT")`` -> a proxy letting only that through."""
    started: list[subprocess.Popen] = []

    def start(allowed: str) -> OnePortProxy:
        for _ in range(5):                 # the port may be taken between pick and bind
            port = free_port()
            log = tmp_path / f"one-port-proxy-{port}.log"
            with open(tmp_path / f"one-port-proxy-{port}.err", "w") as err:
                proc = subprocess.Popen([sys.executable, str(ONE_PORT_PROXY), str(port),
                                         allowed, str(log)], stdout=err, stderr=err)
            started.append(proc)
            wait_until(lambda: proc.poll() is not None or
                       (log.exists() and "listening on" in log.read_text()), 10,
                       "the one-port proxy listening")
            if proc.poll() is None:
                return OnePortProxy(port, allowed, log, proc)
        raise AssertionError("the one-port proxy could not bind a port")

    yield start
    for proc in started:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def remote_browser(make_browser) -> Callable[[OnePortProxy], Any]:
    """``remote_browser(proxy)``: a Chromium that reaches the world only through ``proxy``
    (its pages' requests logged for ``page_requests``)."""
    return lambda proxy: make_browser(*proxy.chromium_args, log_requests=True)


@pytest.fixture(name="page_requests")
def page_requests_fixture() -> Callable[[Any], list[str]]:
    return page_requests


# -- Jupyter servers and their kernels --------------------------------------------------------
def _tagged(tag: str) -> list[tuple[int, str]]:
    marker = f"{TAG_VARIABLE}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append((int(entry.name), cmdline.strip()))
        except OSError:
            continue
    return found


class JupyterProcesses:
    """The servers a Jupyter test starts (``start``: its own session, a log file) and
    everything they start in turn (kernels, labs): all carry ``tag`` in their environment,
    so they can be found after a parent lost track of them."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex
        self.started: list[subprocess.Popen] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **self.marker, **extra}

    @property
    def marker(self) -> dict[str, str]:
        """The tag as environment, for a server that hands its children a clean one (a
        hub's spawner: ``c.Spawner.environment``)."""
        return {TAG_VARIABLE: self.tag}

    def start(self, cmd: list[str], log: Path, cwd: Path, **env: str) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, cwd=cwd, env=self.env(**env), stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 30.0) -> None:
        """SIGTERM (a server's graceful stop: its kernels, its children); SIGKILL its
        process group if it has not exited in ``timeout``."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(10)

    def alive(self) -> list[tuple[int, str]]:
        return _tagged(self.tag)


@pytest.fixture
def jupyter_processes(wait_until) -> Iterator[JupyterProcesses]:
    """At teardown every started server is stopped (newest first), then every tagged
    process must be gone within 30 s; any left is SIGKILLed and the test errors, naming it."""
    procs = JupyterProcesses()
    yield procs
    for proc in reversed(procs.started):
        procs.stop(proc)
    try:
        wait_until(lambda: not procs.alive(), 30, "every Jupyter test process gone", 0.2)
    except AssertionError:
        left = procs.alive()
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            pytest.fail("left behind after a graceful stop (now killed):\n" +
                        "\n".join(f"  {pid} {cmd}" for pid, cmd in left))


def http(method: str, url: str, token: str | None = None, body: Any = None,
         timeout: float = 30.0) -> tuple[int, Any]:
    """(status, decoded JSON or text) for one request; errors are statuses, not raised."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"token {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
        err.close()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class CellResult:
    outputs: list[dict[str, Any]]

    @property
    def stdout(self) -> str:
        return "".join(o["text"] for o in self.outputs
                       if o["output_type"] == "stream" and o["name"] == "stdout")

    def data(self, mime: str) -> list[str]:
        return [o["data"][mime] for o in self.outputs
                if o["output_type"] in ("display_data", "execute_result") and mime in o["data"]]

    def iframe_src(self) -> str:
        """The ``src`` of the one iframe among the cell's HTML outputs."""
        found = re.findall(r"<iframe[^>]*\ssrc=\"([^\"]+)\"", "".join(self.data("text/html")))
        assert len(found) == 1, f"expected one iframe in the cell's HTML: {self.outputs}"
        return html.unescape(found[0])


class Kernel:
    """A kernel of a Jupyter server as a notebook page holds one: a session for ``path``
    (POST api/sessions) and the kernel's websocket (the JSON protocol). ``run(code)``
    executes a cell and returns its outputs; an error in the cell raises, traceback and
    all. ``server`` is the server's URL with its base URL (``http://h:p/user/alice/``)."""

    def __init__(self, server: str, token: str, path: str, timeout: float = 120.0):
        import websocket
        self.server, self.token, self.path = server, token, path
        status, session = http("POST", f"{server}api/sessions", token,
                               {"path": path, "name": Path(path).name, "type": "notebook",
                                "kernel": {"name": "python3"}}, timeout=timeout)
        assert status == 201, f"POST {server}api/sessions: {status} {session}"
        self.session_id, self.kernel_id = session["id"], session["kernel"]["id"]
        self.client_session = uuid.uuid4().hex
        ws_url = re.sub(r"^http", "ws", server)
        self.ws = websocket.create_connection(
            f"{ws_url}api/kernels/{self.kernel_id}/channels?session_id={self.client_session}",
            header=[f"Authorization: token {token}"], timeout=timeout)
        self._request("kernel_info_request", {}, "kernel_info_reply", timeout)

    def _send(self, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        header = dict(msg_id=msg_id, msg_type=msg_type, session=self.client_session,
                      username="student", version="5.3",
                      date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.ws.send(json.dumps(dict(header=header, parent_header={}, metadata={},
                                     content=content, channel="shell", buffers=[])))
        return msg_id

    def _messages(self, msg_id: str, deadline: float) -> Iterator[dict[str, Any]]:
        """The messages answering ``msg_id`` until ``deadline`` (then AssertionError)."""
        import websocket
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no answer from kernel {self.kernel_id} in time")
            self.ws.settimeout(left)
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if isinstance(frame, bytes):  # a message with buffers: offsets, then the JSON
                count = int.from_bytes(frame[:4], "big")
                offsets = [int.from_bytes(frame[4 + 4 * i:8 + 4 * i], "big")
                           for i in range(count)]
                frame = frame[offsets[0]:offsets[1] if count > 1 else None].decode()
            msg = json.loads(frame)
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                yield msg

    def _request(self, msg_type: str, content: dict[str, Any], reply: str,
                 timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:   # a fresh kernel may miss the first request: ask again every 2 s
            msg_id = self._send(msg_type, content)
            try:
                for msg in self._messages(msg_id, min(deadline, time.monotonic() + 2)):
                    if msg["header"]["msg_type"] == reply:
                        return msg["content"]
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def run(self, code: str, timeout: float = 180.0) -> CellResult:
        msg_id = self._send("execute_request", dict(
            code=code, silent=False, store_history=True, user_expressions={},
            allow_stdin=False, stop_on_error=True))
        outputs: list[dict[str, Any]] = []
        reply, idle = None, False
        try:
            for msg in self._messages(msg_id, time.monotonic() + timeout):
                kind, content = msg["header"]["msg_type"], msg["content"]
                if kind in ("stream", "display_data", "execute_result", "error"):
                    outputs.append({"output_type": kind, **content})
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
                elif kind == "execute_reply":
                    reply = content
                if idle and reply is not None:
                    break
        except AssertionError:
            raise AssertionError(f"cell still running after {timeout}s:\n{code}\n"
                                 f"outputs so far: {outputs}") from None
        if reply["status"] != "ok":
            trace = ANSI.sub("", "\n".join(reply.get("traceback", [])))
            raise AssertionError(f"cell failed: {reply.get('ename')}: {reply.get('evalue')}"
                                 f"\n{trace}\n--- the cell:\n{code}")
        return CellResult(outputs)

    def close(self) -> None:
        """Close the websocket and delete the session (the server shuts the kernel down)."""
        try:
            self.ws.close()
        finally:
            http("DELETE", f"{self.server}api/sessions/{self.session_id}", self.token,
                 timeout=60)


def write_notebook(path: Path, title: str, cells: list[str]) -> Path:
    """A notebook as a student saves one: a title, then one code cell per string."""
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}")]
    nb.cells += [nbformat.v4.new_code_cell(code) for code in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(name="write_notebook")
def write_notebook_fixture() -> Callable[[Path, str, list[str]], Path]:
    return write_notebook


@pytest.fixture(name="http")
def http_fixture() -> Callable[..., tuple[int, Any]]:
    """``http(method, url, token=None, body=None)`` -> (status, JSON or text)."""
    return http


@pytest.fixture(name="free_port")
def free_port_fixture() -> Callable[[], int]:
    return free_port


@pytest.fixture
def jupyter_kernels(jupyter_processes) -> Iterator[Callable[..., Kernel]]:
    """``open_kernel(server, token, path)`` -> a Kernel; each closed at teardown, before
    the servers are stopped."""
    opened: list[Kernel] = []

    def open_kernel(server: str, token: str, path: str) -> Kernel:
        kernel = Kernel(server, token, path)
        opened.append(kernel)
        return kernel

    yield open_kernel
    for kernel in reversed(opened):
        try:
            kernel.close()
        except Exception as exc:  # the server may be gone already: the reaper checks
            print(f"closing kernel {kernel.kernel_id}: {exc!r}")


@pytest.fixture
def start_jupyter_lab(tmp_path, jupyter_processes, wait_until) -> Callable[..., dict]:
    """``start_jupyter_lab(base_url="/", expose_app=False)``: JupyterLab on a free port of
    127.0.0.1 under ``base_url`` with a random token, its notebooks, config, runtime files
    and labs in this test's directory. ``expose_app`` gives the page ``window.jupyterapp``
    (its commands: run every cell as the Run menu does)."""
    def start(base_url: str = "/", expose_app: bool = False) -> dict:
        import secrets
        if not JUPYTER.exists():
            pytest.skip(f"{JUPYTER} missing: make install puts JupyterLab into .venv")
        token, port = secrets.token_hex(16), free_port()
        notebooks = tmp_path / "notebooks"
        for sub in ("notebooks", "config", "runtime", "labs"):
            (tmp_path / sub).mkdir(mode=0o700)
        cmd = [str(JUPYTER), "lab", "--no-browser", f"--ServerApp.base_url={base_url}",
               f"--ServerApp.token={token}", "--ServerApp.ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--ServerApp.root_dir={notebooks}"]
        if expose_app:
            cmd.append("--LabApp.expose_app_in_browser=True")
        if os.getuid() == 0:
            cmd.append("--allow-root")
        log = tmp_path / "jupyter-server.log"
        proc = jupyter_processes.start(
            cmd, log, cwd=tmp_path, JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
            JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
            CONDUCTOR_LAB_HOME=str(tmp_path / "labs"))
        server = f"http://127.0.0.1:{port}{base_url}"

        def up() -> bool:
            assert proc.poll() is None, f"jupyter lab exited:\n{log.read_text()[-3000:]}"
            try:
                return http("GET", f"{server}api/status", token, timeout=5)[0] == 200
            except OSError:
                return False
        wait_until(up, 60, "JupyterLab answering under its base URL", 0.2)
        return dict(server=server, origin=f"http://127.0.0.1:{port}", token=token,
                    notebooks=notebooks, log=log, port=port)
    return start
