"""A lesson as a student opens it: JupyterLab 4 in Chromium at 1600x1000, a notebook that
starts a lab, shows its dashboard and its control panel, run from the Run menu's "Run
All Cells". Measured on the page: each compute's row of the control panel on one line at
JupyterLab's default width, the dashboard's frame whole in the notebook's view, and the
Workflow tab's chosen filters unmistakable (a check mark, a coloured button) and
unchosen by a real click."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.timeout(300)

CELLS = [
    "from lab import Lab\n"
    "lab = Lab(computes=3, seed=9, preset='fast', dashboard=True).start()",
    "lab.show()",
    "panel = lab.controls()\npanel",
]

KERNEL_IDLE = """
const app = window.jupyterapp; const w = app && app.shell.currentWidget;
const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
return !!(k && k.status === 'idle' && w.content && w.content.widgets.length);"""

ROWS = """
return [...document.querySelectorAll('.lab-compute-row')].map((row) => {
  const parts = [...row.children].map((c) => c.getBoundingClientRect());
  const box = row.getBoundingClientRect();
  return {tops: parts.map((r) => Math.round(r.top)), right: Math.max(...parts.map((r) => r.right)),
          row_right: box.right, parent_right: row.parentElement.getBoundingClientRect().right,
          text: row.innerText.split('\\n')[0]};
});"""

CHECKS = """
return [...document.querySelectorAll('.lab-checklist button')].map((b) => ({
  text: b.innerText.trim(), chosen: b.classList.contains('mod-success'),
  background: getComputedStyle(b).backgroundColor, color: getComputedStyle(b).color,
  visible: b.getBoundingClientRect().width > 0}));"""

FRAME = """
const f = document.querySelector('.lab-dashboard iframe');
const view = document.querySelector('.jp-WindowedPanel-outer') ||
             document.querySelector('.jp-NotebookPanel-notebook');
if (!f || !view) { return null; }
const r = f.getBoundingClientRect(), v = view.getBoundingClientRect();
return {frame: r.height, view: v.height};"""

DASHBOARD_LOADED = """
const f = document.querySelector('.lab-dashboard iframe');
const B = f && f.contentWindow && f.contentWindow.Bokeh;
return !!(B && B.documents.length && B.documents[0].is_idle);"""


def _click_tab(browser, title: str) -> None:
    """A real click (pointer events, as a mouse) on the control panel's tab ``title``."""
    from selenium.webdriver.common.by import By
    tabs = [t for t in browser.find_elements(By.CSS_SELECTOR, ".widget-tab .lm-TabBar-tab")
            if t.text.strip() == title]
    assert tabs, f"no tab {title!r}"
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", tabs[0])
    tabs[0].click()


def _luminance(css: str) -> float:
    r, g, b = (int(float(v)) / 255 for v in css[css.index("(") + 1:].rstrip(")").split(",")[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_a_lesson_page_at_jupyterlabs_default_width(start_jupyter_lab, write_notebook,
                                                     browser, wait_for, screenshot):
    jupyter = start_jupyter_lab("/", expose_app=True)
    write_notebook(jupyter["notebooks"] / "lesson.ipynb", "A lesson", CELLS)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1600, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
    browser.get(f"{jupyter['server']}lab/tree/lesson.ipynb?token={jupyter['token']}")
    wait_for(lambda: browser.execute_script(KERNEL_IDLE), timeout=120,
             what="the notebook open with its kernel idle")
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    try:
        rows = wait_for(lambda: (r := browser.execute_script(ROWS)) and len(r) == 3 and
                        all(x["text"] for x in r) and r, timeout=120,
                        what="the control panel's three compute rows")
        browser.execute_script("document.querySelector('.lab-compute-row')"
                               ".scrollIntoView({block: 'center'})")
        screenshot("computes", driver=browser)
        for row in rows:     # one line: every part at the same height, none past the edge
            assert max(row["tops"]) - min(row["tops"]) <= 4, row
            assert row["right"] <= row["parent_right"] + 1, row
        frame = wait_for(lambda: browser.execute_script(FRAME), timeout=30,
                         what="the dashboard's frame")
        assert frame["frame"] <= frame["view"], frame      # seen whole, beside nothing else
        wait_for(lambda: browser.execute_script(DASHBOARD_LOADED), timeout=60,
                 what="the dashboard loaded in its frame (through the Jupyter server)")
        browser.execute_script("document.querySelector('.lab-dashboard iframe')"
                               ".scrollIntoView({block: 'start'})")
        screenshot("dashboard", driver=browser)

        _click_tab(browser, "Workflow")
        checks = wait_for(lambda: (c := browser.execute_script(CHECKS)) and
                          all(x["visible"] for x in c) and c, timeout=30,
                          what="the Workflow tab's filters and weighers")
        chosen = [c for c in checks if c["chosen"]]
        assert chosen, checks
        assert all(c["text"].startswith("✓ ") == c["chosen"] for c in checks), checks
        assert _contrast(chosen[0]["background"], chosen[0]["color"]) >= 3.0, chosen[0]
        screenshot("workflow", driver=browser)

        # a real click on a chosen filter takes it off, on the page and in the lab
        from selenium.webdriver.common.by import By
        name = chosen[0]["text"][2:]
        [button] = [b for b in browser.find_elements(By.CSS_SELECTOR, ".lab-checklist button")
                    if b.text.strip() == chosen[0]["text"]]
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        after = wait_for(lambda: (c := browser.execute_script(CHECKS)) and
                         any(x["text"] == name and not x["chosen"] for x in c) and c,
                         timeout=30, what=f"{name} unchosen")
        [off] = [c for c in after if c["text"] == name]
        assert not off["text"].startswith("✓"), off
        assert _contrast(chosen[0]["background"], off["background"]) >= 2.0, (chosen[0], off)
        [lab_json] = (jupyter["notebooks"].parent / "labs").glob("*/lab.json")
        wait_for(lambda: name not in json.loads(lab_json.read_text())["config"]["lab"][
            "filters"], timeout=30, what=f"the lab configured without {name}")
        screenshot("unchosen", driver=browser)
    finally:
        browser.execute_script(
            "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
            ".requestExecute({code: 'lab.stop()'})")
