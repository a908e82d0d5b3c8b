"""A stopped lab's dashboard: it stays to replay, then leaves by itself when nobody
watches (``CONDUCTOR_LAB_REPLAY_LINGER``), and ``close()`` ends it at once."""
from __future__ import annotations

import pytest

from orchestrator import rundir

pytestmark = pytest.mark.timeout(90)


def test_the_replay_outlives_stop_until_nobody_watches(make_lab, monkeypatch, wait_until):
    monkeypatch.setenv("CONDUCTOR_LAB_REPLAY_LINGER", "2")
    lab = make_lab(computes=1, dashboard=True)
    dashboard = lab.cluster.children["dashboard"]
    services = [c for c in lab.cluster.children.values() if c.service != "dashboard"]
    lab.stop()
    assert all(not c.alive() for c in services)
    assert dashboard.alive(), "the dashboard should stay to replay the lab's trace"
    assert rundir.read(lab.run_dir)["stopped_at"] > 0
    assert not lab.running
    wait_until(lambda: not dashboard.alive(), 30, "the unwatched replay to exit")


def test_close_ends_the_replay_at_once(make_lab):
    lab = make_lab(computes=1, dashboard=True)
    dashboard = lab.cluster.children["dashboard"]
    lab.stop()
    assert dashboard.alive()
    lab.close()
    assert not dashboard.alive()


def test_show_after_stop_starts_a_replay(make_lab):
    lab = make_lab(computes=1)
    lab.wait(lab.boot("late"))
    lab.stop()
    frame = lab.show()
    assert "<iframe" in frame.data and lab.dashboard_url.split("?")[0].split("/")[-1] in frame.data
    assert lab.cluster.children["dashboard"].alive()
