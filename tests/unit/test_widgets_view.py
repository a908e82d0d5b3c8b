"""Unit tests for lab.widgets.ControlPanel, the ipywidgets view, over a ControlModel bound
to a FakeLab (ipywidgets works without a kernel): a widget change is one model action,
painting is never an action, errors land in the status line."""
from __future__ import annotations

import asyncio
import html

import ipywidgets as w
import pytest

from lab.cluster import LabError
from lab.controls import STOPPED_MESSAGE, ControlModel
from lab.testing import FakeLab
from lab.widgets import CheckList, ControlPanel


def _server(sid: str, name: str, status: str = "ACTIVE", fault: str | None = None) -> dict:
    record = {"id": sid, "name": name, "status": status, "OS-EXT-STS:task_state": None,
              "OS-EXT-SRV-ATTR:host": "compute1", "OS-EXT-LAB:num_attempts": 1}
    if fault is not None:
        record["fault"] = {"code": 500, "message": fault}
    return record


@pytest.fixture
def lab() -> FakeLab:
    return FakeLab()


@pytest.fixture
def panel(lab) -> ControlPanel:
    return ControlPanel(ControlModel(lab), auto_refresh=False)


def test_building_and_painting_the_panel_fires_nothing(panel, lab):
    assert lab.calls == []
    assert set(panel.computes) == {"compute1", "compute2", "compute3"}
    assert set(panel.services) == {"api", "conductor", "scheduler", "bus"}
    assert len(panel.widget.children[2].children) == 7
    assert "up" in panel.computes["compute1"]["state"].value
    assert "16384 MB / 8 vCPU free" in panel.computes["compute1"]["state"].value
    assert panel.workflow["flow"].value == "conductor"
    assert panel.boot["progress"].description == "0/0 done"
    assert panel._timer is None
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()


# -- a widget change is one action ------------------------------------------------------------
@pytest.mark.parametrize("host", ["compute1", "compute3"])
@pytest.mark.parametrize("slider", ["reschedule", "fatal"])
def test_moving_a_failure_slider_calls_set_failure_once(panel, lab, host, slider):
    panel.computes[host][slider].value = 0.5
    assert lab.calls == [("set_failure", (host,), {slider: 0.5})]
    assert f"{host}: {slider} 50%" in panel.status.value
    assert "failing" in panel.computes[host]["state"].value    # repainted after the action
    assert panel.computes[host][slider].value == 0.5


def test_setting_a_slider_to_its_current_value_is_no_action(panel, lab):
    panel.computes["compute1"]["reschedule"].value = 0.0
    assert lab.calls == []


WIDGET_ACTIONS = [
    (lambda p: p.workflow["flow"], "legacy", {"flow": "legacy"}),
    (lambda p: p.workflow["local_mode"], True, {"local_mode": True}),
    (lambda p: p.workflow["alternates"], True, {"alternates": True}),
    (lambda p: p.workflow["max_attempts"], 5, {"max_attempts": 5}),
    (lambda p: p.workflow["filters"], ("RamFilter", "RetryFilter"),
     {"filters": ["RamFilter", "RetryFilter"]}),
    (lambda p: p.workflow["weighers"], ("RAMWeigher",), {"weighers": ["RAMWeigher"]}),
    (lambda p: p.speed["preset"], "demo", {"preset": "demo"}),
    (lambda p: p.speed["speed"], 2.0, {"speed": 2.0}),
]


@pytest.mark.parametrize("get, value, expected", WIDGET_ACTIONS)
def test_workflow_and_speed_widgets_call_configure(panel, lab, get, value, expected):
    get(panel).value = value
    assert lab.calls == [("configure", (), expected)]
    assert get(panel).value == value
    key, val = next(iter(expected.items()))
    assert html.escape(f"{key}={val}") in panel.status.value


# -- painting is never an action -----------------------------------------------------------------
def test_refresh_paints_the_lab_state_without_firing_any_action(panel, lab):
    changes: list[str] = []
    lab.failure["compute2"].update(reschedule=0.75, fatal=0.2)
    lab.states.update(compute3="down", scheduler="paused")
    lab.config = lab.config.replace(flow="legacy", local_mode=True, alternates=True,
                                    max_attempts=5, filters=("RamFilter",),
                                    weighers=("RAMWeigher",), preset="demo", speed=2.0)
    lab.server_list = [_server("a", "vm1", "ACTIVE")]
    watched = [panel.computes["compute2"]["reschedule"], panel.computes["compute2"]["fatal"],
               panel.workflow["flow"], panel.workflow["local_mode"],
               panel.workflow["alternates"], panel.workflow["max_attempts"],
               panel.workflow["filters"], panel.workflow["weighers"],
               panel.speed["preset"], panel.speed["speed"]]
    for widget in watched:
        widget.observe(lambda change: changes.append(change["name"]), names="value")

    panel.refresh()

    assert len(changes) == len(watched)   # every value changed, so every observer ran ...
    assert lab.calls == []                # ... and none of them acted
    assert panel.computes["compute2"]["reschedule"].value == 0.75
    assert panel.computes["compute2"]["fatal"].value == 0.2
    assert "failing" in panel.computes["compute2"]["state"].value
    assert "down" in panel.computes["compute3"]["state"].value
    assert "paused" in panel.services["scheduler"]["state"].value
    assert panel.workflow["flow"].value == "legacy"
    assert panel.workflow["local_mode"].value is True
    assert panel.workflow["alternates"].value is True
    assert panel.workflow["max_attempts"].value == 5
    assert panel.workflow["filters"].value == ("RamFilter",)
    assert panel.workflow["weighers"].value == ("RAMWeigher",)
    assert panel.speed["preset"].value == "demo" and panel.speed["speed"].value == 2.0
    assert "vm1" in panel.boot["table"].value
    assert panel._painting is False


def test_after_painting_widgets_act_again(panel, lab):
    lab.failure["compute1"]["reschedule"] = 0.4
    panel.refresh()
    assert lab.calls == []
    panel.computes["compute1"]["reschedule"].value = 0.0
    assert lab.calls == [("set_failure", ("compute1",), {"reschedule": 0.0})]


def test_an_unreachable_lab_shows_in_the_status_line(panel, lab):
    def down() -> list:
        raise ConnectionRefusedError("api <gone>")
    lab.hypervisors = down
    panel.refresh()
    assert "lab unreachable" in panel.status.value
    assert "api &lt;gone&gt;" in panel.status.value
    assert lab.calls == []


# -- errors are shown, never raised -------------------------------------------------------------
def test_a_failing_slider_action_shows_its_error_and_does_not_raise(panel, lab):
    lab.raises["set_failure"] = ValueError("reschedule <b>bad</b>")
    panel.computes["compute2"]["reschedule"].value = 0.3       # must not raise
    assert len(lab.calls) == 1
    assert "ValueError" in panel.status.value
    assert "reschedule &lt;b&gt;bad&lt;/b&gt;" in panel.status.value
    assert "<b>bad" not in panel.status.value
    assert panel.computes["compute2"]["reschedule"].value == 0.0   # repainted from the lab


def test_a_failing_button_action_shows_its_error_and_does_not_raise(panel, lab):
    lab.raises["restart"] = LabError("compute.compute2 exited with 1")
    panel.computes["compute2"]["restart"].click()
    assert lab.calls == [("restart", ("compute2",), {})]
    assert "LabError" in panel.status.value and "exited with 1" in panel.status.value


def test_a_bad_boot_count_shows_the_model_error(panel, lab):
    panel.boot["count"].value = 500            # the widget bounds the count to 1..100
    assert panel.boot["count"].value == 100
    panel._act(panel.model.boot, 101, "m1.tiny")   # the model refuses anything else
    assert "ValueError" in panel.status.value and "between 1 and 100" in panel.status.value
    assert lab.calls == []


# -- buttons ------------------------------------------------------------------------------------
@pytest.mark.parametrize("button, method", [("crash", "kill"), ("shutdown", "shutdown"),
                                            ("restart", "restart")])
@pytest.mark.parametrize("host", ["compute1", "compute2"])
def test_compute_buttons(panel, lab, host, button, method):
    assert panel.computes[host][button].description == button.replace("shutdown", "shut down")
    panel.computes[host][button].click()
    assert lab.calls == [(method, (host,), {})]
    assert f"{button} {host}" in panel.status.value


@pytest.mark.parametrize("button, method", [("crash", "kill"), ("shutdown", "shutdown"),
                                            ("restart", "restart"), ("pause", "pause"),
                                            ("resume", "resume")])
@pytest.mark.parametrize("service", ["api", "conductor", "scheduler", "bus"])
def test_service_buttons(panel, lab, service, button, method):
    panel.services[service][button].click()
    assert lab.calls == [(method, (service,), {})]
    assert f"{button} {service}" in panel.status.value


def test_network_apply_uses_the_chosen_link_method_drop_and_delay(panel, lab):
    net = panel.network
    net["link"].value = "conductor -> computes"
    net["method"].value = "build_and_run_instance"
    net["drop"].value, net["delay"].value = 0.5, 1.0
    assert lab.calls == []                          # choosing is not applying
    net["apply"].click()
    assert lab.calls == [("clear_faults", (), {}),
                         ("add_fault", (), {"src": "conductor", "dst": "compute", "drop": 0.5,
                                            "delay": 1.0, "method": "build_and_run_instance"})]
    assert "fault on conductor -&gt; computes" in panel.status.value


def test_network_apply_with_defaults_only_clears(panel, lab):
    panel.network["apply"].click()
    assert lab.calls == [("clear_faults", (), {})]


def test_partition_and_heal_buttons(panel, lab):
    panel.network["host"].value = "compute3"
    panel.network["partition"].click()
    panel.network["heal"].click()
    assert lab.calls == [("partition", ("compute3",), {}), ("clear_faults", (), {})]
    assert "network healed" in panel.status.value


def test_boot_button_boots_and_progress_follows(panel, lab):
    panel.boot["count"].value = 3
    panel.boot["flavor"].value = "m1.tiny"
    assert lab.calls == []
    panel.boot["button"].click()
    assert lab.calls == [("boot", ("vm1",), {"flavor": "m1.tiny", "count": 3})]
    assert "booted 3 x m1.tiny: the API accepted it in 4 ms" in panel.status.value
    assert panel.model.booted == ["id-1", "id-2", "id-3"]
    assert panel.boot["progress"].description == "0/3 done"
    lab.server_list[0]["status"] = "ACTIVE"
    lab.server_list[1]["status"] = "ERROR"
    panel.refresh()
    progress = panel.boot["progress"]
    assert (progress.value, progress.max, progress.description) == (2, 3, "2/3 done")


# -- the instances table ------------------------------------------------------------------------
def test_instances_table_escapes_names_and_faults(panel, lab):
    lab.server_list = [_server("a", "<script>alert(1)</script>", "ERROR",
                               fault="<script>steal()</script> & more")]
    panel.refresh()
    table = panel.boot["table"].value
    assert "<script>" not in table and "</script>" not in table
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert "&lt;script&gt;steal()&lt;/script&gt; &amp; more" in table


def test_instances_table_truncates_long_faults(panel, lab):
    lab.server_list = [_server("a", "vm", "ERROR", fault="x" * 200)]
    panel.refresh()
    table = panel.boot["table"].value
    assert "x" * 80 in table and "x" * 81 not in table


def test_instances_table_caps_rows_at_50_newest_with_a_note(panel, lab):
    lab.server_list = [_server(f"s{i}", f"srv-{i:03d}") for i in range(60)]
    panel.refresh()
    table = panel.boot["table"].value
    assert table.count("<tr>") == 51                  # the header and 50 rows
    assert "srv-059" in table and "srv-010" in table and "srv-009" not in table
    assert "(10 older not shown)" in table


def test_instances_table_of_exactly_50_has_no_note(panel, lab):
    lab.server_list = [_server(f"s{i}", f"srv-{i:03d}") for i in range(50)]
    panel.refresh()
    table = panel.boot["table"].value
    assert table.count("<tr>") == 51 and "not shown" not in table


# -- auto refresh ---------------------------------------------------------------------------------
def test_auto_refresh_needs_an_event_loop(panel):
    assert panel.start_auto_refresh() is False
    assert panel._timer is None
    panel.stop_auto_refresh()          # harmless without a timer


def test_auto_refresh_inside_an_event_loop_and_stop(panel):
    async def main():
        started = panel.start_auto_refresh(every=60)
        timer = panel._timer
        panel.stop_auto_refresh()
        return started, timer

    started, timer = asyncio.run(main())
    assert started is True
    assert isinstance(timer, asyncio.TimerHandle) and timer.cancelled()
    assert panel._timer is None


class Timers:
    """The running loop's ``call_later``, recorded, to wait for events instead of for
    time: ``ticks(n)`` until the panel has repainted ``n`` times; ``settle()`` until
    every timer scheduled so far (and any they schedule) has run or been cancelled."""

    def __init__(self, panel):
        self.loop = asyncio.get_running_loop()
        self.handles: list[asyncio.TimerHandle] = []
        self.count, self._wanted = 0, (0, asyncio.Event())
        real = self.loop.call_later

        def recorded(delay, callback, *args, **kw):
            handle = real(delay, callback, *args, **kw)
            self.handles.append(handle)
            return handle
        self.loop.call_later = recorded
        paint = panel.refresh

        def counted() -> None:
            self.count += 1
            if self.count >= self._wanted[0]:
                self._wanted[1].set()
            paint()
        panel.refresh = counted

    async def ticks(self, n: int) -> None:
        self._wanted = (n, asyncio.Event())
        if self.count < n:
            await asyncio.wait_for(self._wanted[1].wait(), 10)

    async def settle(self, rounds: int = 50) -> None:
        """(A chain that never ends, the bug these tests look for, is cut after
        ``rounds``: its ticks then show in ``count``.)"""
        for _ in range(rounds):
            live = [h for h in self.handles
                    if not h.cancelled() and h.when() > self.loop.time()]
            if not live:
                break
            await asyncio.sleep(max(h.when() for h in live) - self.loop.time())
        await asyncio.sleep(0)        # what fell due just now has run


def test_auto_refresh_ticks_while_the_lab_runs_and_stops_when_told(panel, lab):
    lab.cluster.running = True

    async def main():
        timers = Timers(panel)
        assert panel.start_auto_refresh(every=0.005)
        lab.states["conductor"] = "down"
        await timers.ticks(3)
        panel.stop_auto_refresh()
        seen = timers.count
        await timers.settle()               # every tick it had scheduled: cancelled
        return seen, timers.count

    seen, after = asyncio.run(main())
    assert seen >= 3 and after == seen
    assert "down" in panel.services["conductor"]["state"].value
    assert lab.calls == []


def test_auto_refresh_stops_polling_by_itself_once_the_lab_is_stopped(panel, lab):
    async def main():
        timers = Timers(panel)
        assert panel.start_auto_refresh(every=0.005)
        await timers.ticks(2)
        lab.stop()
        await timers.settle()               # the tick after the stop ran, scheduled none
        return timers.count, [h for h in timers.handles if not h.cancelled()
                              and h.when() > timers.loop.time()]

    count, pending = asyncio.run(main())    # no stop_auto_refresh() anywhere
    assert count >= 2 and pending == []
    assert panel._timer is None
    assert STOPPED_MESSAGE in panel.status.value
    assert all(widget.disabled for widget in panel.controls())


def test_auto_refresh_does_not_start_on_a_stopped_lab():
    lab = FakeLab(running=False)

    async def main():
        panel = ControlPanel(ControlModel(lab))     # auto_refresh, inside an event loop
        return panel, panel._timer, panel.start_auto_refresh(every=0.005)

    panel, timer, started = asyncio.run(main())
    assert timer is None and started is False and panel._timer is None
    assert STOPPED_MESSAGE in panel.status.value


def test_a_tick_that_found_the_lab_unreachable_as_it_stopped_ends_showing_stopped(panel, lab):
    def refused() -> list:
        raise ConnectionRefusedError(111, "Connection refused")
    lab.hypervisors = refused
    paint, painted = panel.refresh, []

    def refresh_then_stop_completes() -> None:
        paint()                                   # still running: "unreachable" ...
        painted.append(panel.status.value)
        lab.cluster.running = False               # ... and the stop finishes right after

    panel.refresh = refresh_then_stop_completes

    async def main():
        timers = Timers(panel)
        assert panel.start_auto_refresh(every=0.005)
        await timers.settle()               # its one tick ran; the stop ended the chain

    asyncio.run(main())
    assert len(painted) == 1 and "lab unreachable" in painted[0]
    assert panel._timer is None
    assert "unreachable" not in panel.status.value and STOPPED_MESSAGE in panel.status.value
    assert all(widget.disabled for widget in panel.controls())


def test_stop_after_starting_twice_stops_all_repainting(panel, lab):
    lab.cluster.running = True

    async def main():
        timers = Timers(panel)
        assert panel.start_auto_refresh(every=0.005)
        assert panel.start_auto_refresh(every=0.005)
        await timers.ticks(1)
        panel.stop_auto_refresh()
        seen = timers.count
        await timers.settle()               # a second chain would tick here
        return seen, timers.count

    seen, after = asyncio.run(main())
    assert seen >= 1
    assert after == seen, f"{after - seen} repaints after stop_auto_refresh()"


def test_the_move_tab_lists_servers_and_go_runs_the_chosen_action(panel, lab):
    lab.server_list = [_server("s1", "vm1"), _server("s2", "vm2", status="VERIFY_RESIZE")]
    panel.refresh()
    assert [v for _, v in panel.move["server"].options] == ["s1", "s2"]
    assert panel.move["server"].value == "s2"      # the newest, not a blank choice
    assert "vm2 (VERIFY_RESIZE, compute1)" in [k for k, _ in panel.move["server"].options]
    panel.move["server"].value = "s2"
    panel.move["action"].value = "confirm resize"
    assert lab.calls == []                         # choosing is not acting
    panel.move["go"].click()
    assert lab.calls == [("confirm_resize", ("s2",), {})]
    assert "confirm resize: HTTP 204" in panel.status.value
    lab.server_list.append(_server("s3", "vm3"))
    panel.refresh()
    assert panel.move["server"].value == "s2"      # a repaint keeps the choice


def test_a_compute_added_while_the_panel_is_open_gets_its_row(panel, lab):
    assert lab.add_compute() == "compute4"
    panel.refresh()
    assert "compute4" in panel.computes
    assert len(panel._computes_box.children) == 4
    assert "compute4" in panel.computes["compute4"]["state"].value
    assert "compute4" in panel.network["host"].options   # can be partitioned too


def test_the_new_workflow_switches_configure_the_lab(panel, lab):
    panel.workflow["resize_via_conductor"].value = True
    panel.workflow["object_pinning"].value = True
    assert lab.calls == [("configure", (), {"resize_via_conductor": True}),
                         ("configure", (), {"object_pinning": True})]


# -- a stopped lab --------------------------------------------------------------------------------
def _every_control(widget: w.Widget) -> list[w.Widget]:
    """Every widget in the panel's tree that can be disabled, found by walking the tree
    (not by asking the panel): a control left out of ``controls()`` is still found. A
    control made of controls (a CheckList) is one control: its own ``disabled`` rules its
    buttons."""
    if widget.has_trait("disabled"):
        return [widget]
    found = []
    for child in getattr(widget, "children", ()):
        found.extend(_every_control(child))
    return found


def _states(panel: ControlPanel) -> list[str]:
    return [row["state"].value for row in (*panel.computes.values(),
                                            *panel.services.values())]


def test_controls_lists_every_control_in_the_panel(panel):
    in_tree = _every_control(panel.widget)
    assert len(in_tree) > 40
    assert {id(x) for x in panel.controls()} == {id(x) for x in in_tree}
    kinds = {type(x) for x in in_tree}
    assert {w.Button, w.FloatSlider, w.IntSlider, w.FloatLogSlider, w.ToggleButtons,
            w.Checkbox, CheckList, w.Dropdown, w.BoundedIntText} <= kinds


def test_a_running_lab_leaves_every_control_enabled(panel, lab):
    panel.refresh()
    assert not any(x.disabled for x in _every_control(panel.widget))
    assert all(">up<" in state for state in _states(panel))
    assert "stopped" not in panel.status.value
    panel.services["conductor"]["crash"].click()
    assert lab.calls == [("kill", ("conductor",), {})] and panel.last_error is None


def test_a_stopped_lab_disables_every_control_shows_stopped_and_says_why(panel, lab):
    lab.stop()
    panel.refresh()
    controls = _every_control(panel.widget)
    assert [x for x in controls if not x.disabled] == []
    for state in _states(panel):
        assert ">stopped<" in state and ">up<" not in state
    assert len(_states(panel)) == 7
    assert STOPPED_MESSAGE in panel.status.value
    assert "unreachable" not in panel.status.value and "Error" not in panel.status.value
    assert lab.calls == [("stop", (), {})]


def test_a_refresh_refused_while_the_lab_stops_shows_stopped_not_unreachable(panel, lab):
    def refused_mid_stop() -> list:
        lab.stop()
        raise ConnectionRefusedError(111, "Connection refused")
    lab.hypervisors = refused_mid_stop
    panel.refresh()
    assert STOPPED_MESSAGE in panel.status.value
    assert "unreachable" not in panel.status.value and "Connection" not in panel.status.value
    assert all(">stopped<" in state for state in _states(panel))
    assert all(x.disabled for x in _every_control(panel.widget))


def test_a_running_lab_that_refuses_is_unreachable_and_stays_usable(panel, lab):
    def refused() -> list:
        raise ConnectionRefusedError(111, "Connection refused")
    lab.hypervisors = refused
    panel.refresh()
    assert "lab unreachable" in panel.status.value and "Connection refused" in panel.status.value
    assert not any(x.disabled for x in _every_control(panel.widget))


def test_a_stopped_panel_driven_from_code_acts_on_nothing(panel, lab):
    lab.stop()
    panel.refresh()
    panel.services["conductor"]["crash"].click()
    panel.computes["compute1"]["reschedule"].value = 0.5
    panel.workflow["flow"].value = "legacy"
    panel.boot["button"].click()
    assert lab.calls == [("stop", (), {})]
    assert isinstance(panel.last_error, LabError)
    assert str(panel.last_error) == STOPPED_MESSAGE
    assert STOPPED_MESSAGE in panel.status.value


def test_a_compute_added_just_before_the_stop_is_shown_stopped_too(panel, lab):
    lab.add_compute()
    lab.stop()
    panel.refresh()
    assert ">stopped<" in panel.computes["compute4"]["state"].value
    assert panel.computes["compute4"]["crash"].disabled


# -- hostile names: escaped in every HTML widget, verbatim in text widgets ---------------------
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "<b>bold</b>",
           "&amp;", "it's \"quoted\"", "two\nlines"]
RAW = ("<script", "<img", "<b>bold", "onerror=alert(1)>")


def _html_values(widget: w.Widget) -> list[str]:
    """The value of every HTML (or HTMLMath) widget under ``widget``: markup, on the page."""
    found = [widget.value] if isinstance(widget, (w.HTML, w.HTMLMath)) else []
    for child in getattr(widget, "children", ()):
        found += _html_values(child)
    return found


def test_hostile_names_hosts_and_faults_are_text_in_the_panel(panel, lab, monkeypatch):
    lab.server_list = [{**_server(f"id-{i}", name, "ERROR", fault=f"{name}: boom"),
                        "OS-EXT-SRV-ATTR:host": HOSTILE[-1 - i]}
                       for i, name in enumerate(HOSTILE)]
    computes = panel.model.computes
    monkeypatch.setattr(panel.model, "computes", lambda: [*computes(), {
        "host": HOSTILE[1], "state": "up", "instances": 0, "free_ram_mb": 1, "free_vcpus": 1,
        "reschedule": 0.0, "fatal": 0.0, "crash": 0.0}])
    lab.raises["set_failure"] = ValueError(HOSTILE[0])
    panel.computes["compute1"]["fatal"].value = 1.0        # fails: the error in the status
    values = _html_values(panel.widget)
    assert panel.boot["table"].value in values and panel.status.value in values
    assert panel.computes[HOSTILE[1]]["state"].value in values
    page = "\n".join(values)
    for raw in RAW:
        assert raw not in page, raw
    for name in HOSTILE:
        assert html.escape(name) in panel.boot["table"].value
    assert "&amp;amp;" in panel.boot["table"].value           # "&amp;" shows as "&amp;"
    assert html.escape(HOSTILE[1]) in panel.computes[HOSTILE[1]]["state"].value
    assert html.escape(HOSTILE[0]) in panel.status.value
    labels = [label for label, _ in panel.move["server"].options]   # a Dropdown: text
    assert all(any(label.startswith(f"{name} (ERROR, ") for label in labels)
               for name in HOSTILE)


def test_a_checklist_shows_its_choice_and_reports_one_value_per_change():
    checks = CheckList(["RamFilter", "CoreFilter", "DiskFilter"], "filters")
    seen = []
    checks.observe(lambda change: seen.append(change["new"]), names="value")
    checks.value = ("RamFilter", "DiskFilter")
    assert seen == [("RamFilter", "DiskFilter")]
    ram, core, disk = checks.buttons.values()
    assert (ram.value, core.value, disk.value) == (True, False, True)
    assert ram.description == "✓ RamFilter" and ram.button_style == "success"
    assert core.description == "CoreFilter" and core.button_style == ""
    core.value = True  # a click on a button
    assert seen[-1] == ("RamFilter", "CoreFilter", "DiskFilter")
    assert core.description == "✓ CoreFilter"
    checks.disabled = True
    assert all(b.disabled for b in checks.buttons.values())
