"""Browser fixtures: real headless Chromium (Debian's chromium + chromium-driver, never a
downloaded browser) driven by selenium. Screenshots go to test-artifacts/."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are required (make test installs them)")
    from selenium import webdriver
    profile = tempfile.mkdtemp(prefix="lab-chromium-")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,1000",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync", "--disable-quic",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
                              options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def bokeh_page(browser, wait_until) -> Callable[[str], Any]:
    """Open a Bokeh server page and wait until its document is loaded and idle."""
    def open_page(url: str, timeout: float = 30.0) -> Any:
        browser.get(url)
        wait_until(lambda: browser.execute_script(
            "return !!(window.Bokeh && Bokeh.documents.length && Bokeh.documents[0].is_idle)"),
            timeout, f"Bokeh document at {url} ready", interval=0.1)
        return browser
    return open_page


@pytest.fixture
def model_data(browser) -> Callable[[str], dict]:
    """The columns of a named ColumnDataSource, as the browser holds them."""
    def read(name: str) -> dict:
        return browser.execute_script(
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
def screenshot(browser, request) -> Callable[[str], Path]:
    def save(label: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}-{label}.png"
        browser.save_screenshot(str(path))
        return path
    return save
