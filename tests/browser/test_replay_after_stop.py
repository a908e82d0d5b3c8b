"""The end of a lesson: after ``lab.stop()`` the dashboard says the lab stopped and
replays its recorded trace; a page first opened after the stop (Run All) shows it too."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(180)


def lab_state(browser) -> str:
    return browser.execute_script(
        "const m = Bokeh.documents[0].get_model_by_name('lab_state'); return m ? m.text : '';")


def test_an_open_dashboard_switches_to_the_replay_when_the_lab_stops(
        make_lab, bokeh_page, model_data, wait_for, screenshot):
    lab = make_lab(computes=2, dashboard=True)
    browser = bokeh_page(lab.dashboard_url)
    assert "live" in lab_state(browser)
    records = lab.wait([lab.boot(f"end{i}") for i in range(2)])
    assert {r["status"] for r in records} == {"ACTIVE"}
    live = wait_for(lambda: len((model_data("messages") or {}).get("seq", [])) or None,
                    what="live messages")
    lab.stop()
    wait_for(lambda: "lab stopped" in lab_state(browser), what="the 'lab stopped' note")
    assert "replaying" in lab_state(browser)
    # the replay starts over and plays the lab's messages again
    wait_for(lambda: len((model_data("messages") or {}).get("seq", [])) >= min(live, 5),
             timeout=60, what="replayed messages")
    # and, replayed at the pace they happened, the lesson's servers come back on screen
    wait_for(lambda: set((model_data("instances") or {}).get("name", [])) >= {"end0", "end1"},
             timeout=60, what="the replayed servers' lanes")
    screenshot("replaying")


def test_a_page_opened_after_the_stop_shows_the_whole_lesson(
        make_lab, bokeh_page, model_data, wait_for):
    # Run All: the last cell stops the lab before the browser has loaded BokehJS.
    lab = make_lab(computes=2, dashboard=True)
    url = lab.dashboard_url
    lab.wait(lab.boot("runall"))
    lab.stop()
    browser = bokeh_page(url)
    wait_for(lambda: "lab stopped" in lab_state(browser), what="the 'lab stopped' note")
    wait_for(lambda: "build_instances" in (model_data("messages") or {}).get("method", []),
             timeout=60, what="the lesson's first build, replayed")
