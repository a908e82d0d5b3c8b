"""The control panel of a real lab after ``lab.stop()`` (the last cell of every lesson):
it says the lab is stopped, shows every service stopped, disables every control and
stops polling, instead of showing "up" beside "lab unreachable: Connection refused"."""
from __future__ import annotations

import asyncio

import ipywidgets as w
import pytest

from lab.controls import STOPPED_MESSAGE

pytestmark = pytest.mark.timeout(90)


def _every_control(widget: w.Widget) -> list[w.Widget]:
    found = [widget] if widget.has_trait("disabled") else []
    for child in getattr(widget, "children", ()):
        found.extend(_every_control(child))
    return found


def _states(panel) -> list[str]:
    return [row["state"].value for row in (*panel.computes.values(),
                                            *panel.services.values())]


def test_after_stop_the_panel_shows_a_stopped_lab_with_nothing_usable(make_lab):
    lab = make_lab(computes=2)
    panel = lab.controls()           # no event loop here: no auto refresh
    assert all(">up<" in state for state in _states(panel))
    controls = _every_control(panel.widget)
    assert controls and not any(x.disabled for x in controls)

    lab.stop()
    panel.refresh()

    assert panel.model.lab_running() is False
    assert STOPPED_MESSAGE in panel.status.value
    assert "unreachable" not in panel.status.value and "refused" not in panel.status.value
    assert len(_states(panel)) == 6
    for state in _states(panel):
        assert ">stopped<" in state and ">up<" not in state
    assert [x for x in controls if not x.disabled] == []

    panel.services["conductor"]["restart"].click()     # from code: still acts on nothing
    assert str(panel.last_error) == STOPPED_MESSAGE
    assert lab.cluster.children["conductor.conductor1"].alive() is False

    async def poll() -> bool:
        return panel.start_auto_refresh(every=0.01)
    assert asyncio.run(poll()) is False and panel._timer is None
