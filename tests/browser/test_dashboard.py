"""The dashboard in real headless Chromium, on a real lab: the page gets the build's
casts, calls and replies in order, dots move between frames, the reschedule loop is
labelled, and a saved trace replays to the same events."""
from __future__ import annotations

import html

import subprocess
import sys
import time

import pytest

from lab.trace import HOUSEKEEPING_PREFIXES
from tests.browser.geometry import measure, problems
from orchestrator.scheduler.rpcapi import INSTANCE_INFO_METHODS

pytestmark = pytest.mark.timeout(150)

WORKFLOW = ["build_instances", "select_destinations", "build_and_run_instance"]


@pytest.fixture
def dash_lab(make_lab):
    lab = make_lab(computes=3, preset="demo", speed=4.0, dashboard=True)
    return lab


def click_button(browser, label: str) -> None:
    """Click a Bokeh button by its label (Bokeh renders widgets in shadow DOM)."""
    assert browser.execute_script("""
        const find = (root) => {
          for (const el of root.querySelectorAll('*')) {
            if (el.tagName === 'BUTTON' && el.textContent.trim() === arguments[0]) { return el; }
            if (el.shadowRoot) { const hit = find(el.shadowRoot); if (hit) { return hit; } }
          }
          return null;
        };
        const button = find(document);
        if (button) { button.click(); }
        return !!button;""", label), f"no button {label!r}"


def workflow_rows(data: dict) -> list[tuple[str, str, str, str]]:
    rows = zip(data["kind"], data["phase"], data["src"], data["dst"], data["method"])
    return [(k, s, d, m) for k, p, s, d, m in rows if p == "routed" and m in WORKFLOW]


def test_live_dashboard_animates_a_rescheduled_build(dash_lab, bokeh_page, model_data,
                                                     wait_for, screenshot, browser):
    lab = dash_lab
    page = bokeh_page(lab.dashboard_url)
    assert "BokehJS" not in page.page_source or "cdn.bokeh.org" not in page.page_source
    scripts = browser.execute_script(
        "return Array.from(document.scripts).map(s => s.src).filter(Boolean)")
    assert scripts and all(s.startswith(lab.dashboard_url.rsplit("/", 1)[0]) for s in scripts)
    for name in ("messages", "nodes", "instances", "timeline", "metrics"):
        assert model_data(name) is not None, name
    nodes = model_data("nodes")
    assert {"api.api", "conductor.conductor1", "scheduler.scheduler1",
            "compute.compute1"} <= set(nodes["name"])

    lab.set_failure("compute1", reschedule=1.0)          # ties go to compute1 first
    server = lab.boot("watched")

    def rows():
        return workflow_rows(model_data("messages"))
    seen = wait_for(lambda: (r := rows()) and len(r) >= 8 and r, timeout=60,
                    what="the build's workflow messages")
    assert seen[:4] == [
        ("cast", "api.api", "conductor.conductor1", "build_instances"),
        ("call", "conductor.conductor1", "scheduler.scheduler1", "select_destinations"),
        ("reply", "scheduler.scheduler1", "conductor.conductor1", "select_destinations"),
        ("cast", "conductor.conductor1", "compute.compute1", "build_and_run_instance"),
    ]
    assert ("cast", "compute.compute1", "conductor.conductor1", "build_instances") in seen

    # Dots move: two frames apart, the positions differ.
    first = wait_for(lambda: (d := model_data("dots")) and d["x"] and d, timeout=30,
                     what="a dot in flight")
    time.sleep(0.25)
    second = model_data("dots")
    assert (first["x"], first["y"]) != (second["x"], second["y"])

    label = wait_for(lambda: [t for t in model_data("reschedule").get("text", [])
                              if t.startswith("attempt 2/")], timeout=30,
                     what="the reschedule label")
    assert label[0] == f"attempt 2/{lab.config.max_attempts}"
    screenshot("rescheduled")
    # a live lab's topology, captions and notes as drawn: nothing over anything
    geo = measure(browser)
    assert problems(geo) == []
    assert {"name", "caption"} <= {t["kind"] for t in geo["texts"]}
    record = lab.wait(server, timeout=60)
    assert record["status"] == "ACTIVE"
    metrics = wait_for(lambda: (m := model_data("metrics")) and
                       dict(zip(m["name"], m["value"])).get("reschedules") == "1" and m,
                       timeout=20, what="metrics counting the reschedule")
    assert metrics
    # ...and what the page *shows* follows the data (a DataTable once froze on its
    # first rows: bokeh#13859): the rendered table says the same, and keeps moving
    def shown():
        return browser.execute_script(
            "const m = Bokeh.documents[0].get_model_by_name('metrics_table');"
            "const v = m && Bokeh.index.get_one(m);"
            "const root = v && (v.shadow_el || v.el);"
            "const t = root && root.querySelector('table');"
            "return t ? [...t.querySelectorAll('tr')].map(r => r.innerText) : null;")

    def row(rows, name):
        return next((r.split("\t")[-1].strip() for r in rows or [] if r.startswith(name)), None)
    rendered = wait_for(lambda: (r := shown()) and row(r, "reschedules") == "1" and r,
                        timeout=20, what="the rendered metrics showing the reschedule")
    before = int(row(rendered, "messages routed"))
    lab.wait(lab.boot("after"), timeout=60)
    wait_for(lambda: int(row(shown(), "messages routed") or 0) > before, timeout=20,
             what="the rendered metrics moving on")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def test_replay_shows_the_same_events(dash_lab, bokeh_page, model_data, wait_for,
                                      screenshot, tmp_path, reap_pids):
    lab = dash_lab
    lab.wait(lab.boot("recorded"))
    trace = lab.trace()
    path = tmp_path / "saved.jsonl"
    trace.save(path)
    proc = subprocess.Popen([sys.executable, "-m", "lab.dashboard", "--replay", str(path),
                             "--speed", "50"], stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    reap_pids.append(proc.pid)
    try:
        url = proc.stdout.readline().strip().split(" at ", 1)[1]
        bokeh_page(url)
        # what the page shows by default: no lab traffic, no heartbeats or instance info
        expected = [e["seq"] for e in trace if e["phase"] != "delayed"
                    and not e["src"].startswith("lab.") and not e["dst"].startswith("lab.")
                    and not e["request_id"].startswith(HOUSEKEEPING_PREFIXES)
                    and e["method"] not in INSTANCE_INFO_METHODS]
        got = wait_for(lambda: (d := model_data("messages")) and
                       len(d["seq"]) >= len(expected) and d["seq"], timeout=60,
                       what="the replayed messages")
        assert got == expected
        screenshot("replay")
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_lab_replay_function_serves_the_saved_trace(dash_lab, bokeh_page, model_data,
                                                    wait_for, tmp_path, browser):
    import lab as lab_package
    dash_lab.wait(dash_lab.boot("again"))
    path = tmp_path / "t.jsonl"
    dash_lab.trace().save(path)
    with lab_package.replay(path, speed=100) as replay:
        bokeh_page(replay.url)
        wait_for(lambda: "build_and_run_instance" in (model_data("messages") or {}).get(
            "method", []), timeout=60, what="replayed build")
        assert browser.execute_script(
            "return ['seek', 'replay_speed'].every("
            "n => Bokeh.documents[0].get_model_by_name(n) !== null)")
    assert replay.proc.poll() is not None


def test_a_flood_is_capped_queued_and_counted_exactly(make_lab, bokeh_page, model_data,
                                                      wait_for, browser, screenshot):
    """500 messages a second: the page keeps animating, draws at most its cap, shows how
    far behind it is, jumps to live on request, and its counters stay exact."""
    lab = make_lab(computes=2, preset="fast", dashboard=True)
    bokeh_page(lab.dashboard_url)
    browser.execute_script(   # show the lab's own traffic: the flood comes from lab.control
        "Bokeh.documents[0].get_model_by_name('show').active = [0, 2]")
    frames_before = browser.execute_script("return window.__conductorLab.frames")
    client = lab.bus()
    sent, start = 0, time.monotonic()
    while sent < 2500:                      # paced at ~500 per second
        client.cast("conductor", "get_config", server="conductor1")
        sent += 1
        if sent % 50 == 0:
            time.sleep(max(0.0, start + sent / 500 - time.monotonic()))
    behind = wait_for(lambda: browser.execute_script(
        "return window.__conductorLab.behind"), timeout=30, what="a backlog")
    assert behind > 0
    drawn = model_data("dots")
    assert len(drawn["x"]) <= 300
    assert browser.execute_script("return window.__conductorLab.frames") > frames_before
    screenshot("flood")
    skipped = browser.execute_script("return window.__conductorLab.skipped")
    click_button(browser, "Jump to live")
    wait_for(lambda: browser.execute_script("return window.__conductorLab.skipped") > skipped,
             timeout=20, what="the backlog skipped")
    wait_for(lambda: browser.execute_script("return window.__conductorLab.behind") == 0,
             timeout=20, what="back to live")
    counted = wait_for(lambda: (m := model_data("metrics")) and
                       dict(zip(m["name"], m["value"])).get("cast get_config") == "2500",
                       timeout=30, what="an exact count of the flood")
    assert counted


def test_show_embeds_the_local_dashboard(dash_lab, bokeh_page, model_data, wait_for):
    frame = dash_lab.show()
    assert "127.0.0.1" in dash_lab.dashboard_url
    assert f'<iframe src="{html.escape(dash_lab.dashboard_url, quote=True)}"' in frame.data
    dash_lab.configure(max_attempts=1)
    dash_lab.set_failure("compute1", reschedule=1.0)
    record = dash_lab.wait(dash_lab.boot("doomed"), timeout=60)
    assert record["fault"]["message"].startswith("MaxRetriesExceeded")
    bokeh_page(dash_lab.dashboard_url)
    wait_for(lambda: any("doomed: MaxRetriesExceeded" in t
                         for t in (model_data("annotations") or {}).get("text", [])),
             timeout=30, what="the fault named at the conductor")
