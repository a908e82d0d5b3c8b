"""Unit tests for lab.controls.ControlModel, against a hand-written FakeLab: what the
panel shows (rows computed from the lab's state) and what it does (each action is one
call to the right Lab method, with the right arguments, and a message)."""
from __future__ import annotations

from typing import Any

import pytest

from lab.controls import (FAULT_METHODS, FLAVOR_NAMES, LINKS, SERVICES, STOPPED_MESSAGE,
                          ControlModel)
from lab.lab import Lab
from lab.testing import FakeLab as _FakeLab
from orchestrator.config import FILTERS, PRESETS, WEIGHERS, LabConfig

ACTIONS = ("set_failure", "kill", "shutdown", "restart", "pause", "resume", "configure",
           "clear_faults", "add_fault", "partition", "boot", "stop")


class FakeLab(_FakeLab):
    """The shared test double with this file's defaults: no hypervisors until a test adds
    them, answers in 12 ms, boots not listed as servers."""

    def __init__(self, computes: int = 3, **options: Any):
        super().__init__(computes, nodes=False, last_response_time=0.0123,
                         booted_servers=False, **options)


def server(sid: str, status: str = "ACTIVE", name: str | None = None, task_state=None,
           host: str | None = "compute1", attempts: int = 1, fault=None) -> dict[str, Any]:
    record = {"id": sid, "name": name or sid, "status": status,
              "OS-EXT-STS:task_state": task_state, "OS-EXT-SRV-ATTR:host": host,
              "OS-EXT-LAB:num_attempts": attempts}
    if fault is not None:
        record["fault"] = fault
    return record


@pytest.fixture
def lab() -> FakeLab:
    return FakeLab()


@pytest.fixture
def model(lab) -> ControlModel:
    return ControlModel(lab)


def test_fake_lab_only_fakes_methods_the_real_lab_has():
    for name in (*ACTIONS, "hypervisors", "servers", "failures", "service_state"):
        assert callable(getattr(Lab, name)), name
    assert isinstance(FakeLab().config, LabConfig)


# -- what the panel shows ----------------------------------------------------------------------
def test_computes_rows_one_per_configured_compute_with_free_resources(model, lab):
    lab.nodes = [
        {"hypervisor_hostname": "compute2", "running_vms": 3, "free_ram_mb": 9000,
         "vcpus": 8, "vcpus_used": 3, "OS-EXT-LAB:failed_builds": 2},
        {"hypervisor_hostname": "compute1", "running_vms": 0, "free_ram_mb": 16384,
         "vcpus": 8, "vcpus_used": 0},
        {"hypervisor_hostname": "not-configured", "running_vms": 9},
    ]
    rows = model.computes()
    assert [r["host"] for r in rows] == ["compute1", "compute2", "compute3"]
    by_host = {r["host"]: r for r in rows}
    assert by_host["compute2"] == {
        "host": "compute2", "state": "up", "instances": 3, "free_ram_mb": 9000,
        "free_vcpus": 5, "failed_builds": 2,
        "reschedule": 0.0, "fatal": 0.0, "crash": 0.0, "slow": 1.0}
    assert by_host["compute1"]["free_vcpus"] == 8
    assert by_host["compute1"]["failed_builds"] == 0
    # a compute the API does not list yet: zeros, not a KeyError
    assert {k: by_host["compute3"][k] for k in
            ("instances", "free_ram_mb", "free_vcpus", "failed_builds")} == \
        {"instances": 0, "free_ram_mb": 0, "free_vcpus": 0, "failed_builds": 0}


@pytest.mark.parametrize("rate", ["reschedule", "fatal", "crash"])
def test_an_up_compute_with_any_failure_rate_is_failing(model, lab, rate):
    lab.failure["compute2"][rate] = 0.05
    states = {r["host"]: r["state"] for r in model.computes()}
    assert states == {"compute1": "up", "compute2": "failing", "compute3": "up"}
    assert model.computes()[1][rate] == 0.05


def test_a_slow_factor_alone_is_not_failing(model, lab):
    lab.failure["compute1"]["slow"] = 4.0
    row = model.computes()[0]
    assert row["state"] == "up" and row["slow"] == 4.0


@pytest.mark.parametrize("state", ["down", "paused", "unreachable"])
def test_other_states_pass_through_even_with_failure_rates(model, lab, state):
    lab.states["compute3"] = state
    lab.failure["compute3"].update(reschedule=1.0, fatal=1.0, crash=1.0)
    assert model.computes()[2]["state"] == state


def test_services_rows_in_fixed_order(model, lab):
    lab.states.update(api="up", conductor="down", scheduler="paused", bus="unreachable")
    assert model.services() == [
        {"name": "api", "state": "up"}, {"name": "conductor", "state": "down"},
        {"name": "scheduler", "state": "paused"}, {"name": "bus", "state": "unreachable"}]


def test_instances_rows_with_fault_message_and_empty_strings_for_none(model, lab):
    lab.server_list = [
        server("a", "BUILD", name="vm1", task_state="scheduling", host=None, attempts=0),
        server("b", "ERROR", name="vm2", host=None, attempts=3,
               fault={"code": 500, "message": "No valid host was found."}),
        server("c", "ACTIVE", name="vm3", host="compute2", attempts=2, fault=None),
        server("d", "ACTIVE", name="vm4", host="compute1", fault={"code": 500}),
    ]
    assert model.instances() == [
        {"id": "a", "name": "vm1", "status": "BUILD", "task_state": "scheduling",
         "host": "", "attempts": 0, "fault": ""},
        {"id": "b", "name": "vm2", "status": "ERROR", "task_state": "", "host": "",
         "attempts": 3, "fault": "No valid host was found."},
        {"id": "c", "name": "vm3", "status": "ACTIVE", "task_state": "", "host": "compute2",
         "attempts": 2, "fault": ""},
        {"id": "d", "name": "vm4", "status": "ACTIVE", "task_state": "", "host": "compute1",
         "attempts": 1, "fault": ""},
    ]


def test_instances_empty(model):
    assert model.instances() == []


def test_workflow_reflects_the_lab_config():
    lab = FakeLab(flow="legacy", local_mode=True, alternates=True, max_attempts=5,
                  filters=("RamFilter", "RetryFilter"), weighers=("RAMWeigher",),
                  preset="demo", speed=2.5)
    wf = ControlModel(lab).workflow()
    assert wf == {"flow": "legacy", "local_mode": True, "alternates": True,
                  "max_attempts": 5, "filters": ["RamFilter", "RetryFilter"],
                  "weighers": ["RAMWeigher"], "preset": "demo", "speed": 2.5,
                  "resize_via_conductor": False, "object_pinning": False}
    assert isinstance(wf["filters"], list) and isinstance(wf["weighers"], list)


def test_workflow_defaults(model):
    wf = model.workflow()
    assert wf["flow"] == "conductor" and wf["max_attempts"] == 3
    assert wf["filters"] == list(FILTERS) and wf["weighers"] == list(WEIGHERS)
    assert (wf["preset"], wf["speed"]) == ("fast", 1.0)


def test_workflow_follows_configure(model):
    model.configure(flow="legacy", filters=["RamFilter"])
    wf = model.workflow()
    assert wf["flow"] == "legacy" and wf["filters"] == ["RamFilter"]


def test_progress_before_any_boot_is_zero_of_zero(model, lab):
    lab.server_list = [server("x", "BUILD")]     # not booted from the panel: not counted
    assert model.progress() == (0, 0)


def test_progress_counts_finished_builds_among_booted_ids(model, lab):
    ids = model.boot(5, "m1.tiny")
    assert ids == ["id-1", "id-2", "id-3", "id-4", "id-5"]
    lab.server_list = [server("id-1", "BUILD"), server("id-2", "ACTIVE"),
                       server("id-3", "ERROR"), server("id-5", "BUILD"),
                       server("other", "ACTIVE")]   # id-4 deleted: finished
    assert model.progress() == (3, 5)
    lab.server_list = [server(i, "ACTIVE") for i in ids]
    assert model.progress() == (5, 5)
    lab.server_list = []
    assert model.progress() == (5, 5)


def test_snapshot_bundles_every_view(model, lab):
    lab.server_list = [server("s1", "ACTIVE")]
    model.message = "hello"
    snap = model.snapshot()
    assert set(snap) == {"running", "computes", "services", "instances", "workflow",
                         "progress", "message"}
    assert snap["running"] is True
    assert snap["computes"] == model.computes() and snap["services"] == model.services()
    assert snap["instances"] == model.instances() and snap["workflow"] == model.workflow()
    assert snap["progress"] == (0, 0) and snap["message"] == "hello"
    assert lab.calls == []        # looking changes nothing


def test_choices():
    ch = ControlModel.choices
    assert ch["filters"] == FILTERS and ch["weighers"] == WEIGHERS
    assert ch["presets"] == tuple(PRESETS) and ch["flavors"] == FLAVOR_NAMES
    assert ch["links"] == tuple(LINKS) and ch["methods"] == FAULT_METHODS
    assert FAULT_METHODS[0] == "any method"


# -- what the panel does -------------------------------------------------------------------------
def test_set_failure_delegates_and_reports(model, lab):
    result = model.set_failure("compute2", reschedule=0.25, fatal=0.1)
    assert lab.calls == [("set_failure", ("compute2",), {"reschedule": 0.25, "fatal": 0.1})]
    assert result == {"reschedule": 0.25, "fatal": 0.1, "crash": 0.0, "slow": 1.0}
    assert model.message == "compute2: reschedule 25%, fatal 10%"


def test_a_failing_action_propagates_and_leaves_the_message(model, lab):
    model.message = "before"
    lab.raises["set_failure"] = ValueError("reschedule must be a probability")
    with pytest.raises(ValueError, match="probability"):
        model.set_failure("compute1", reschedule=2.0)
    assert model.message == "before"


@pytest.mark.parametrize("action, method", [("crash", "kill"), ("shutdown", "shutdown"),
                                            ("restart", "restart"), ("pause", "pause"),
                                            ("resume", "resume")])
@pytest.mark.parametrize("service", ["conductor", "compute3", "bus"])
def test_service_action_maps_to_the_lab_method(model, lab, action, method, service):
    assert model.service_action(service, action) is None
    assert lab.calls == [(method, (service,), {})]
    assert model.message == f"{action} {service}"


# "kill" is no action of the panel's: a lab's kill is SIGKILL, the panel's crash
@pytest.mark.parametrize("action", ["explode", "", "Crash", "kill", "stop"])
def test_service_action_unknown_raises_and_calls_nothing(model, lab, action):
    model.message = "before"
    with pytest.raises(ValueError, match="unknown action"):
        model.service_action("conductor", action)
    assert lab.calls == []
    assert model.message == "before"


def test_configure_delegates_and_reports(model, lab):
    model.configure(flow="legacy", max_attempts=5)
    assert lab.calls == [("configure", (), {"flow": "legacy", "max_attempts": 5})]
    assert model.message == "flow=legacy, max_attempts=5"


@pytest.mark.parametrize("link", list(LINKS))
def test_network_fault_replaces_the_rule_on_each_link(model, lab, link):
    model.network_fault(link, "any method", drop=0.5, delay=0.0)
    src, dst = LINKS[link]
    assert lab.calls == [
        ("clear_faults", (), {}),
        ("add_fault", (), {"src": src, "dst": dst, "drop": 0.5, "delay": 0.0,
                           "method": "*"})]
    assert model.message == f"fault on {link} / any method: drop 50%, delay 0s"


def test_network_fault_link_mapping():
    assert LINKS["any link"] == ("*", "*")
    assert LINKS["conductor -> computes"] == ("conductor", "compute")
    assert LINKS["computes -> conductor"] == ("compute", "conductor")


@pytest.mark.parametrize("method", FAULT_METHODS[1:])
def test_network_fault_passes_a_named_method(model, lab, method):
    model.network_fault("conductor -> scheduler", method, drop=0.0, delay=1.5)
    assert lab.calls == [
        ("clear_faults", (), {}),
        ("add_fault", (), {"src": "conductor", "dst": "scheduler", "drop": 0.0,
                           "delay": 1.5, "method": method})]
    assert model.message == f"fault on conductor -> scheduler / {method}: drop 0%, delay 1.5s"


def test_network_fault_twice_clears_before_each_rule(model, lab):
    model.network_fault("api -> conductor", "any method", drop=1.0, delay=0)
    model.network_fault("scheduler -> computes", "run_instance", drop=0.2, delay=0.3)
    assert [c[0] for c in lab.calls] == ["clear_faults", "add_fault",
                                         "clear_faults", "add_fault"]
    assert lab.calls[-1][2]["src"] == "scheduler" and lab.calls[-1][2]["dst"] == "compute"


def test_network_fault_with_no_drop_and_no_delay_only_clears(model, lab):
    model.network_fault("api -> conductor", "build_instances", drop=0, delay=0)
    assert lab.calls == [("clear_faults", (), {})]
    assert model.message == "fault on api -> conductor / build_instances: drop 0%, delay 0s"


def test_network_fault_unknown_link_calls_nothing(model, lab):
    with pytest.raises(KeyError):
        model.network_fault("nowhere", "any method", drop=0.5, delay=0)
    assert lab.calls == []


def test_partition_and_heal(model, lab):
    model.partition("compute2")
    assert lab.calls == [("partition", ("compute2",), {})]
    assert model.message == "compute2 partitioned"
    model.heal()
    assert lab.calls[1:] == [("clear_faults", (), {})]
    assert model.message == "network healed"


@pytest.mark.parametrize("count", [0, 101, -1, 1000])
def test_boot_out_of_bounds_raises_and_boots_nothing(model, lab, count):
    model.message = "before"
    with pytest.raises(ValueError, match="between 1 and 100"):
        model.boot(count, "m1.small")
    assert lab.calls == [] and model.booted == [] and model.message == "before"


def test_boot_one_gets_a_single_id_as_a_list(model, lab):
    lab.last_response_time = 0.0123
    assert model.boot(1, "m1.tiny") == ["id-1"]
    assert lab.calls == [("boot", ("vm1",), {"flavor": "m1.tiny", "count": 1})]
    assert model.booted == ["id-1"]
    assert model.message == "booted 1 x m1.tiny: the API accepted it in 12 ms"


def test_boot_many_extends_booted_and_numbers_names_on(model, lab):
    assert model.boot(1, "m1.small") == ["id-1"]
    assert model.boot(3, "m1.large", name="web") == ["id-2", "id-3", "id-4"]
    assert model.boot(100, "m1.tiny")[-1] == "id-104"
    assert [c[1][0] for c in lab.calls] == ["vm1", "web2", "vm5"]
    assert lab.calls[1] == ("boot", ("web2",), {"flavor": "m1.large", "count": 3})
    assert model.booted[:4] == ["id-1", "id-2", "id-3", "id-4"] and len(model.booted) == 104
    assert model.message.startswith("booted 100 x m1.tiny: the API accepted it in ")


@pytest.mark.parametrize("given, expected", [
    ({"preset": "demo"}, {"preset": "demo"}),
    ({"speed": 2.0}, {"speed": 2.0}),
    ({"preset": "fast", "speed": 0.5}, {"preset": "fast", "speed": 0.5}),
    ({"preset": None, "speed": 3.0}, {"speed": 3.0}),
])
def test_set_speed_passes_only_given_values(model, lab, given, expected):
    model.set_speed(**given)
    assert lab.calls == [("configure", (), expected)]
    assert model.message == ", ".join(f"{k}={v}" for k, v in expected.items())


@pytest.mark.parametrize("action, call", [
    ("migrate", ("migrate", ("s1",))), ("resize", ("resize", ("s1", "m1.large"))),
    ("confirm resize", ("confirm_resize", ("s1",))),
    ("revert resize", ("revert_resize", ("s1",))),
    ("rebuild", ("rebuild", ("s1", "cirros"))), ("evacuate", ("evacuate", ("s1",)))])
def test_each_move_is_one_lab_call(model, lab, action, call):
    status = model.move("s1", action, flavor="m1.large")
    assert [(name, args) for name, args, _ in lab.calls] == [call]
    assert status in (200, 202, 204) and f"{action}: HTTP {status}" in model.message


@pytest.mark.parametrize("server, action", [("", "migrate"), ("s1", "teleport")])
def test_a_move_without_a_server_or_with_an_unknown_action_does_nothing(model, lab, server,
                                                                         action):
    with pytest.raises(ValueError):
        model.move(server, action)
    assert lab.calls == []


def test_a_rolled_back_migrations_fault_is_shown_for_an_active_server(model, lab):
    lab.server_list = [{**server("a", "ACTIVE", name="vm1"),
                        "OS-EXT-LAB:last_fault": {"message": "NoValidHost: none"}}]
    assert model.instances()[0]["fault"] == "NoValidHost: none"


# -- a stopped lab -------------------------------------------------------------------------------
def _reads_fail(lab: FakeLab) -> None:
    """Every read the panel makes now fails the test: a stopped lab is not asked."""
    def asked(*_args: Any) -> None:
        raise AssertionError("a stopped lab was asked")
    for name in ("hypervisors", "servers", "failures", "service_state"):
        setattr(lab, name, asked)


def test_lab_running_follows_the_labs_own_bookkeeping(model, lab):
    assert model.lab_running() is True
    lab.stop()
    _reads_fail(lab)
    assert model.lab_running() is False
    assert lab.calls == [("stop", (), {})]


@pytest.mark.parametrize("own, cluster", [(False, True), (True, False)])
def test_lab_running_prefers_a_running_property_where_the_lab_has_one(own, cluster):
    class RunningLab(FakeLab):
        running = own
    lab = RunningLab()
    lab.cluster.running = cluster
    assert ControlModel(lab).lab_running() is own


def test_a_stopped_labs_snapshot_is_all_stopped_and_asks_nothing(model, lab):
    lab.stop()
    _reads_fail(lab)
    assert model.snapshot() == {
        "running": False, "message": STOPPED_MESSAGE,
        "computes": [{"host": h, "state": "stopped"}
                     for h in ("compute1", "compute2", "compute3")],
        "services": [{"name": n, "state": "stopped"} for n in SERVICES]}
    assert model.stopped_snapshot() == model.snapshot()
    assert "Error" not in STOPPED_MESSAGE and "stopped" in STOPPED_MESSAGE


def test_a_refusal_while_the_lab_is_being_stopped_is_stopped_not_an_error(model, lab):
    def refused_mid_stop() -> list:
        lab.stop()                                  # the stop finishes meanwhile ...
        raise ConnectionRefusedError(111, "Connection refused")   # ... so the API refuses
    lab.hypervisors = refused_mid_stop
    snap = model.snapshot()
    assert snap["running"] is False and snap["message"] == STOPPED_MESSAGE
    assert {s["state"] for s in snap["services"] + snap["computes"]} == {"stopped"}


def test_a_refusal_while_the_lab_should_be_running_still_raises(model, lab):
    def refused() -> list:
        raise ConnectionRefusedError(111, "Connection refused")
    lab.hypervisors = refused
    with pytest.raises(ConnectionRefusedError):
        model.snapshot()
    assert model.lab_running() is True
