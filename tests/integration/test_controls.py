"""The control panel driven through its widgets, headless (as nbval runs a notebook):
set a slider's value or click a button, and the running lab changes."""
from __future__ import annotations


import pytest

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def panel(make_lab):
    lab = make_lab(computes=3)
    return lab.controls()


def test_the_whole_panel_is_there(panel):
    lab = panel.model.lab
    assert set(panel.computes) == set(lab.config.compute_names())
    for row in panel.computes.values():
        assert {"state", "reschedule", "fatal", "crash", "shutdown", "restart"} <= set(row)
        assert "up" in row["state"].value
    assert set(panel.services) == {"api", "conductor", "scheduler", "bus"}
    assert {"flow", "local_mode", "alternates", "max_attempts", "filters",
            "weighers"} <= set(panel.workflow)
    assert {"link", "method", "drop", "delay", "apply", "host", "partition",
            "heal"} <= set(panel.network)
    assert {"count", "flavor", "button", "progress", "table"} <= set(panel.boot)
    assert {"preset", "speed"} <= set(panel.speed)
    assert panel.workflow["flow"].value == "conductor"
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_failure_slider_makes_the_next_boot_reschedule_away(panel):
    lab = panel.model.lab
    panel.computes["compute1"]["reschedule"].value = 1.0
    assert lab.failures("compute1")["reschedule"] == 1.0
    assert "orange" in panel.computes["compute1"]["state"].value or \
        "failing" in panel.computes["compute1"]["state"].value
    record = lab.wait(lab.boot("away"))
    assert record["status"] == "ACTIVE"
    assert record["OS-EXT-SRV-ATTR:host"] != "compute1"
    assert record["OS-EXT-LAB:num_attempts"] == 2
    panel.computes["compute1"]["reschedule"].value = 0.0
    assert lab.failures("compute1")["reschedule"] == 0.0


def test_boot_button_and_live_table(panel):
    lab = panel.model.lab
    panel.boot["count"].value = 3
    panel.boot["flavor"].value = "m1.tiny"
    panel.boot["button"].click()
    assert "booted 3 x m1.tiny" in panel.status.value
    lab.wait(panel.model.booted)
    panel.refresh()
    assert panel.boot["progress"].value == 3 and "3/3" in panel.boot["progress"].description
    assert panel.boot["table"].value.count("ACTIVE") == 3


def test_service_buttons_crash_restart_pause_resume(panel, wait_until):
    lab = panel.model.lab
    panel.computes["compute2"]["crash"].click()
    assert "down" in panel.computes["compute2"]["state"].value
    panel.computes["compute2"]["restart"].click()
    assert "up" in panel.computes["compute2"]["state"].value
    panel.services["scheduler"]["pause"].click()
    assert "paused" in panel.services["scheduler"]["state"].value
    panel.services["scheduler"]["resume"].click()
    wait_until(lambda: panel.refresh() or "up" in panel.services["scheduler"]["state"].value,
               10, "the panel shows the scheduler up again")
    assert lab.wait(lab.boot("after"))["status"] == "ACTIVE"


def test_workflow_switches_reach_every_service(panel):
    lab = panel.model.lab
    panel.workflow["flow"].value = "legacy"
    panel.workflow["max_attempts"].value = 4
    assert lab.config.flow == "legacy" and lab.config.max_attempts == 4
    assert lab.bus().call("conductor", "get_config", server="conductor1")["max_attempts"] == 4
    record = lab.wait(lab.boot("old-way"))
    methods = [e["method"] for e in lab.trace().for_instance(record["id"]).routed()]
    assert "run_instance" in methods and "select_destinations" not in methods
    panel.workflow["flow"].value = "conductor"
    panel.workflow["filters"].value = ("ComputeFilter", "RamFilter")
    assert lab.bus().call("scheduler", "get_config", server="scheduler1")["filters"] == [
        "ComputeFilter", "RamFilter"]


def test_network_faults_and_partition(panel):
    lab = panel.model.lab
    net = panel.network
    net["link"].value = "conductor -> computes"
    net["method"].value = "build_and_run_instance"
    net["delay"].value = 0.5
    net["apply"].click()
    mark = lab.mark()
    lab.wait(lab.boot("slow-link"))
    delayed = lab.trace(since=mark).where(phase="delayed", method="build_and_run_instance")
    assert len(delayed) == 1 and delayed[0]["reason"] == "0.500s"
    net["host"].value = "compute3"
    net["partition"].click()
    assert lab.bus().control("get_faults")["partitions"] == [["compute.compute3"], ["*"]]
    net["heal"].click()
    faults = lab.bus().control("get_faults")
    assert faults["rules"] == [] and faults["partitions"] == []


def test_speed_controls_and_errors_in_the_status_line(panel):
    lab = panel.model.lab
    panel.speed["speed"].value = 2.0
    assert lab.config.speed == 2.0
    panel.speed["preset"].value = "demo"
    assert lab.bus().control("get_faults")["hop_delay"] == pytest.approx(0.15)
    panel.speed["preset"].value = "fast"
    assert lab.bus().control("get_faults")["hop_delay"] == 0.0
    panel._act(panel.model.boot, 0, "m1.small")
    assert "ValueError" in panel.status.value
    assert isinstance(panel.last_error, ValueError)
    panel.speed["speed"].value = 1.0
    assert panel.last_error is None
