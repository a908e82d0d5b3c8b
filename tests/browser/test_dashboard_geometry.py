"""The dashboard as a class sees it, measured in headless Chromium on replays of scripted
clouds (``lab.testing.scripted_trace``: 1 to 100 computes, conductor and legacy flows, a
reschedule and a resize): every node inside the figure, no message line through a node it
does not involve, no two labels over each other or over a circle (text widths measured
by the browser's own canvas, in the fonts Bokeh draws with), and the layouts at the
sizes they promise: the notebook layout inside its frame, the projector layout filling a
1366x768 and a 1920x1080 screen without a scrollbar."""
from __future__ import annotations

import json

import pytest

import lab as lab_package
from lab.dashboard.frame import FRAME_HEIGHTS, view_url
from lab.dashboard.layout import COMPACT_MAX, FULL_MAX
from lab.testing import scripted_trace
from tests.browser.geometry import measure, problems

pytestmark = pytest.mark.timeout(180)

PAGE = """
const el = document.documentElement;
const box = (name) => { const m = Bokeh.documents[0].get_model_by_name(name);
  const r = Bokeh.index.get_one(m).el.getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom]; };
const v = Bokeh.index.get_one(Bokeh.documents[0].get_model_by_name('metrics_table'));
const cells = [...(v.shadow_el || v.el).querySelectorAll('td, span')]
  .map((c) => c.getBoundingClientRect());
return {inner: [innerWidth, innerHeight], scroll: [el.scrollWidth, el.scrollHeight],
        topology: box('topology'), sequence: box('sequence'), metrics: box('metrics_table'),
        cells: cells.length, cells_bottom: Math.max(...cells.map((c) => c.bottom)),
        cells_right: Math.max(...cells.map((c) => c.right))};
"""

CASES = [(1, "conductor"), (3, "conductor"), (3, "legacy"), (FULL_MAX, "conductor"),
         (FULL_MAX, "legacy"), (COMPACT_MAX, "conductor"), (COMPACT_MAX, "legacy"),
         (100, "conductor")]


@pytest.fixture
def replayed(tmp_path, reap_pids):
    """``replayed(computes, flow)`` -> the URL of a dashboard replaying a scripted cloud."""
    started = []

    def start(computes: int, flow: str) -> str:
        path = tmp_path / f"{flow}-{computes}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n"
                                for e in scripted_trace(computes, flow, gap=0.002)))
        replay = lab_package.replay(path, speed=20)
        started.append(replay)
        reap_pids.append(replay.proc.pid)
        return replay.url
    yield start
    for replay in started:
        replay.stop()


def _settled(browser, model_data, wait_for, computes: int) -> dict:
    """The geometry once the replay has drawn every compute, its edges and its notes and
    two reads a second apart agree."""
    mode = "full" if computes <= FULL_MAX else "compact" if computes <= COMPACT_MAX \
        else "grouped"
    last = {}

    def steady():
        geo = measure(browser)
        nodes = [n["name"] for n in geo["nodes"] if n["name"].startswith("compute.")]
        ready = (len(nodes) == (computes if mode != "grouped" else 8) and geo["edges"] and
                 any("attempt 2/" in t["text"] or "rescheduled" in t["text"]
                     for t in geo["texts"] if t["kind"] == "note"))
        same = ready and geo == last.get("geo")
        last["geo"] = geo
        return same and geo
    return wait_for(steady, timeout=60, what=f"the replay of {computes} computes drawn")


def _open(browser, url: str, width: int, height: int, bokeh_page) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    bokeh_page(url)


@pytest.mark.parametrize("computes, flow", CASES)
def test_the_topology_cannot_be_misread(computes, flow, replayed, browser, bokeh_page,
                                        model_data, wait_for, screenshot):
    url = replayed(computes, flow)
    for layout, (width, height) in (("notebook", (1000, FRAME_HEIGHTS["notebook"])),
                                    ("projector", (1366, 768))):
        _open(browser, view_url(url, layout), width, height, bokeh_page)
        geo = _settled(browser, model_data, wait_for, computes)
        screenshot(layout)
        assert problems(geo) == [], layout
        # the things the test is about were drawn at all
        kinds = {t["kind"] for t in geo["texts"]}
        assert {"name", "note"} <= kinds, kinds     # (a replay has no captions: no stats)
        assert len(geo["edges"]) >= 4


def test_the_checks_catch_a_line_through_a_node_and_labels_over_each_other():
    node = {"name": "scheduler.scheduler1", "x": 50, "y": 50, "size": 40}
    geo = {"frame": [0, 0, 200, 200], "nodes": [node],
           "edges": [{"src": "api.api", "dst": "compute.compute1", "width": 2,
                      "points": [[0, 60], [200, 60]]}],
           "texts": [{"kind": "name", "owner": "a", "text": "a", "box": [100, 100, 150, 110]},
                     {"kind": "note", "owner": "b", "text": "b", "box": [140, 105, 190, 115]},
                     {"kind": "note", "owner": "c", "text": "c", "box": [190, 10, 230, 20]},
                     {"kind": "name", "owner": "d", "text": "d", "box": [60, 60, 90, 70]}]}
    found = problems(geo)
    assert any("crosses scheduler.scheduler1" in p for p in found)
    assert any("'a' of a overlaps note 'b'" in p for p in found)
    assert any("'c' of c runs off the figure" in p for p in found)
    assert any("'d' of d is drawn over the circle" in p for p in found)
    assert len(found) == 4


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_the_projector_layout_fills_a_screen_without_scrolling(size, replayed, browser,
                                                               bokeh_page, model_data,
                                                               wait_for, screenshot):
    url = view_url(replayed(COMPACT_MAX, "conductor"), "projector")
    _open(browser, url, *size, bokeh_page)
    _settled(browser, model_data, wait_for, COMPACT_MAX)
    page = browser.execute_script(PAGE)
    screenshot(f"{size[0]}x{size[1]}")
    width, height = page["inner"]
    assert page["scroll"][0] <= width and page["scroll"][1] <= height, page
    for part in ("topology", "sequence", "metrics"):
        left, top, right, bottom = page[part]
        assert 0 <= left and right <= width and 0 <= top and bottom <= height, (part, page)
        assert bottom - top > (150 if part != "metrics" else 20), (part, page)
    # side by side: the topology and the time-space diagram share the screen's height
    assert page["topology"][2] <= page["sequence"][0] + 1, page
    # every metric is on the screen, inside its box
    assert page["cells"] >= 10, page
    assert page["cells_bottom"] <= min(height, page["metrics"][3]) + 1, page
    assert page["cells_right"] <= min(width, page["metrics"][2]) + 1, page


def test_the_notebook_layout_fits_its_frame(replayed, browser, bokeh_page, model_data,
                                            wait_for):
    url = replayed(FULL_MAX, "conductor")
    _open(browser, url, 900, FRAME_HEIGHTS["notebook"], bokeh_page)
    _settled(browser, model_data, wait_for, FULL_MAX)
    page = browser.execute_script(PAGE)
    assert page["scroll"][1] <= FRAME_HEIGHTS["notebook"], page
    assert page["scroll"][0] <= 900, page
