"""Unit tests for SchedulerManager.rank and select_destinations, in-process: a real
Database in tmp_path, a stand-in transport (the scheduler only stores it), no bus."""
from __future__ import annotations

import pytest

from orchestrator import rundir
from orchestrator.config import ConfigError, LabConfig
from orchestrator.exception import NoValidHost
from orchestrator.messaging.fake import FakeTransport
from orchestrator.scheduler.host_manager import HostState
from orchestrator.scheduler.manager import SchedulerManager

TINY = {"vcpus": 1, "memory_mb": 512, "root_gb": 1}
SMALL = {"vcpus": 1, "memory_mb": 2048, "root_gb": 20}
CTX = {"request_id": "req-test"}


@pytest.fixture
def make_scheduler(tmp_path):
    made: list[SchedulerManager] = []

    def make(**options) -> SchedulerManager:
        run_dir = tmp_path / f"lab{len(made)}"
        rundir.update(run_dir, config={"lab": LabConfig(**options).to_dict()})
        sm = SchedulerManager(FakeTransport("scheduler", "scheduler1"), run_dir,
                              "scheduler1")
        made.append(sm)
        return sm

    yield make
    for sm in made:
        sm.db.close()
        assert sm.transport.sent == [], "ranking sends nothing"


def add_compute(sm: SchedulerManager, host: str, *, memory_mb: int = 16384,
                memory_mb_used: int = 0, failed_builds: int = 0, zone: str = "nova",
                vcpus: int = 8, up: bool = True, instances=()) -> None:
    sm.db.compute_node_update(host, {
        "availability_zone": zone, "vcpus": vcpus, "memory_mb": memory_mb,
        "local_gb": 200, "vcpus_used": 0, "memory_mb_used": memory_mb_used,
        "local_gb_used": 0, "running_vms": 0, "failed_builds": failed_builds,
        "instances": list(instances)})
    if up:
        sm.db.service_update("compute", host, "compute")


def state(host: str, **overrides) -> HostState:
    values = dict(host=host, availability_zone="nova", vcpus=8, memory_mb=16384,
                  local_gb=200, vcpus_used=0, memory_mb_used=0, local_gb_used=0,
                  failed_builds=0, service_up=True, disabled=False)
    return HostState(**{**values, **overrides})


# -- rank ---------------------------------------------------------------------------------

def test_construction_reads_the_config_from_lab_json(make_scheduler):
    sm = make_scheduler(computes=2, max_attempts=4, seed=9)
    assert (sm.config.computes, sm.config.max_attempts, sm.config.seed) == (2, 4, 9)
    assert sm.db.seed == 9
    assert sm.hosts.service_down_time == sm.config.timing("service_down_time")
    assert sm.hosts.claim_ttl >= 5.0


def test_ties_are_broken_by_host_name(make_scheduler):
    sm = make_scheduler()
    ranked, rejected = sm.rank([state("compute3"), state("compute1"), state("compute2")], TINY)
    assert [s.host for s in ranked] == ["compute1", "compute2", "compute3"]
    assert rejected == {}


def test_more_free_ram_ranks_first(make_scheduler):
    sm = make_scheduler()
    states = [state("compute1", memory_mb_used=8192), state("compute2", memory_mb_used=0),
              state("compute3", memory_mb_used=4096)]
    ranked, _ = sm.rank(states, TINY)
    assert [s.host for s in ranked] == ["compute2", "compute3", "compute1"]


def test_failed_builds_outweigh_free_ram(make_scheduler):
    sm = make_scheduler()
    states = [state("compute1", failed_builds=1), state("compute2", memory_mb_used=8192)]
    ranked, _ = sm.rank(states, TINY)
    assert [s.host for s in ranked] == ["compute2", "compute1"]


def test_rejections_name_the_first_failing_filter_per_host(make_scheduler):
    sm = make_scheduler(availability_zones=("az1", "az2"))
    states = [state("compute1", service_up=False, memory_mb_used=16384),  # Compute first
              state("compute2", availability_zone="az2"),
              state("compute3", memory_mb_used=16000),
              state("compute4", vcpus_used=8, local_gb_used=200),          # Core before Disk
              state("compute5", local_gb_used=200),
              state("compute6"),
              state("compute7")]
    spec = {**TINY, "availability_zone": "nova",
            "retry": {"num_attempts": 2, "hosts": ["compute6"]}}
    ranked, rejected = sm.rank(states, spec)
    assert [s.host for s in ranked] == ["compute7"]
    assert rejected == {"compute1": "ComputeFilter", "compute2": "AvailabilityZoneFilter",
                        "compute3": "RamFilter", "compute4": "CoreFilter",
                        "compute5": "DiskFilter", "compute6": "RetryFilter"}


def test_nothing_passes_nothing_ranked(make_scheduler):
    sm = make_scheduler()
    ranked, rejected = sm.rank([state("compute1", disabled=True)], TINY)
    assert ranked == [] and rejected == {"compute1": "ComputeFilter"}
    assert sm.rank([], TINY) == ([], {})


# -- select_destinations -----------------------------------------------------------------

def test_select_destinations_spreads_two_instances_of_one_request(make_scheduler):
    sm = make_scheduler()
    add_compute(sm, "compute1", memory_mb_used=1024)
    add_compute(sm, "compute2")
    add_compute(sm, "compute3", memory_mb_used=4096)
    picks = sm.select_destinations(CTX, SMALL, ["u1", "u2"])
    # u1 takes compute2 (most free); its claim leaves compute2 behind compute1 for u2
    assert picks == [["compute2"], ["compute1"]]
    assert {u: c.host for u, c in sm.hosts.in_flight.items()} == {"u1": "compute2",
                                                                   "u2": "compute1"}
    assert [d["instance_uuid"] for d in sm.last_decision] == ["u1", "u2"]
    assert sm.last_decisions(CTX)[1]["ranked"] == ["compute1", "compute2", "compute3"]


def test_select_destinations_stacks_with_a_negative_ram_multiplier(make_scheduler):
    sm = make_scheduler(ram_weight_multiplier=-1.0)
    add_compute(sm, "compute1", memory_mb_used=1024)
    add_compute(sm, "compute2")
    assert sm.select_destinations(CTX, SMALL, ["u1", "u2"]) == [["compute1"], ["compute1"]]


def test_a_second_request_sees_the_first_requests_claims(make_scheduler):
    sm = make_scheduler()
    add_compute(sm, "compute1", memory_mb=4096)
    add_compute(sm, "compute2", memory_mb=4096)
    assert sm.select_destinations(CTX, SMALL, ["u1"]) == [["compute1"]]
    assert sm.select_destinations(CTX, SMALL, ["u2"]) == [["compute2"]]
    assert sm.select_destinations(CTX, SMALL, ["u3"]) == [["compute1"]]
    assert sm.select_destinations(CTX, SMALL, ["u4"]) == [["compute2"]]
    with pytest.raises(NoValidHost, match="RamFilter"):
        sm.select_destinations(CTX, SMALL, ["u5"])


def test_no_valid_host_when_not_all_instances_fit_and_claims_are_forgotten(make_scheduler):
    sm = make_scheduler()
    add_compute(sm, "compute1", memory_mb=4096)
    add_compute(sm, "compute2", memory_mb=2048)
    sm.select_destinations(CTX, SMALL, ["earlier"])
    with pytest.raises(NoValidHost) as info:
        sm.select_destinations(CTX, SMALL, ["u1", "u2", "u3"])
    message = str(info.value)
    assert message.startswith("No valid host was found.")
    assert "compute1: RamFilter" in message and "compute2: RamFilter" in message
    assert set(sm.hosts.in_flight) == {"earlier"}            # u1, u2 forgotten
    assert [d["instance_uuid"] for d in sm.last_decision] == ["u1", "u2", "u3"]
    assert sm.last_decision[-1]["ranked"] == []
    assert sm.select_destinations(CTX, SMALL, ["u4"]) != []  # the room is back


def test_no_valid_host_without_compute_nodes(make_scheduler):
    sm = make_scheduler()
    with pytest.raises(NoValidHost, match="no compute nodes"):
        sm.select_destinations(CTX, TINY, ["u1"])
    assert sm.hosts.in_flight == {}


def test_a_down_compute_is_not_chosen(make_scheduler):
    sm = make_scheduler()
    add_compute(sm, "compute1", up=False)
    add_compute(sm, "compute2", memory_mb_used=8192)
    assert sm.select_destinations(CTX, TINY, ["u1"]) == [["compute2"]]
    assert sm.last_decision[0]["rejected"] == {"compute1": "ComputeFilter"}


def test_return_alternates_gives_up_to_max_attempts_hosts(make_scheduler):
    sm = make_scheduler(max_attempts=3)
    for i, used in enumerate([0, 1024, 2048, 3072]):
        add_compute(sm, f"compute{i + 1}", memory_mb_used=used)
    picks = sm.select_destinations(CTX, TINY, ["u1"], return_alternates=True)
    assert picks == [["compute1", "compute2", "compute3"]]
    assert sm.select_destinations(CTX, TINY, ["u2"]) == [["compute1"]]  # no alternates


def test_return_alternates_with_fewer_hosts_than_max_attempts(make_scheduler):
    sm = make_scheduler(max_attempts=5)
    add_compute(sm, "compute1")
    add_compute(sm, "compute2", memory_mb_used=1024)
    assert sm.select_destinations(CTX, TINY, ["u1"], return_alternates=True) == [
        ["compute1", "compute2"]]


def test_the_retry_hosts_are_excluded(make_scheduler):
    sm = make_scheduler()
    add_compute(sm, "compute1")
    add_compute(sm, "compute2", memory_mb_used=8192)
    spec = {**TINY, "retry": {"num_attempts": 2, "hosts": ["compute1"]}}
    assert sm.select_destinations(CTX, spec, ["u1"]) == [["compute2"]]


# -- configuration ---------------------------------------------------------------------------

def test_only_the_enabled_filters_run(make_scheduler):
    sm = make_scheduler()
    add_compute(sm, "compute1", memory_mb=1024)                     # too small for SMALL
    with pytest.raises(NoValidHost, match="RamFilter"):
        sm.select_destinations(CTX, SMALL, ["u1"])
    returned = sm.set_config(CTX, filters=["ComputeFilter"])
    assert returned["filters"] == ["ComputeFilter"]
    assert sm.config.filters == ("ComputeFilter",)
    assert sm.select_destinations(CTX, SMALL, ["u2"]) == [["compute1"]]


def test_no_filters_at_all_passes_even_a_disabled_host(make_scheduler):
    sm = make_scheduler(filters=())
    ranked, rejected = sm.rank([state("compute1", disabled=True)], TINY)
    assert [s.host for s in ranked] == ["compute1"] and rejected == {}


def test_only_the_enabled_weighers_count(make_scheduler):
    sm = make_scheduler()
    states = [state("compute1", memory_mb_used=8192), state("compute2", failed_builds=1)]
    assert [s.host for s in sm.rank(states, TINY)[0]] == ["compute1", "compute2"]
    sm.set_config(CTX, weighers=["RAMWeigher"])
    assert [s.host for s in sm.rank(states, TINY)[0]] == ["compute2", "compute1"]
    sm.set_config(CTX, weighers=[])
    assert [s.host for s in sm.rank(states, TINY)[0]] == ["compute1", "compute2"]


def test_set_config_changes_the_weight_multiplier(make_scheduler):
    sm = make_scheduler()
    states = [state("compute1", memory_mb_used=8192), state("compute2")]
    assert sm.rank(states, TINY)[0][0].host == "compute2"
    sm.set_config(CTX, ram_weight_multiplier=-2.0)
    assert sm.rank(states, TINY)[0][0].host == "compute1"
    assert sm.get_config(CTX)["ram_weight_multiplier"] == -2.0


@pytest.mark.parametrize("changes", [{"computes": 5}, {"seed": 1}, {"vcpus": 4},
                                     {"bogus": 1}])
def test_set_config_refuses_non_runtime_options(make_scheduler, changes):
    sm = make_scheduler()
    before = sm.config
    with pytest.raises(ConfigError, match="cannot change"):
        sm.set_config(CTX, **changes)
    assert sm.config == before


def test_set_config_refuses_an_unknown_filter(make_scheduler):
    sm = make_scheduler()
    before = sm.config
    with pytest.raises(ConfigError, match="NoSuchFilter"):
        sm.set_config(CTX, filters=["ComputeFilter", "NoSuchFilter"])
    assert sm.config == before


def test_scheduling_an_instance_again_drops_its_own_earlier_claim(make_scheduler):
    """A reverted resize (or a failed attempt) left u1's claim on compute2: scheduling u1
    again must not see compute2 as fuller because of u1 itself."""
    sm = make_scheduler()
    add_compute(sm, "compute1", memory_mb=4096)
    add_compute(sm, "compute2", memory_mb=4096)
    assert sm.select_destinations(CTX, SMALL, ["u1"]) == [["compute1"]]   # ties by name
    sm.hosts.in_flight["u1"].host = "compute2"       # the claim sits on compute2 now
    sm.select_destinations(CTX, SMALL, ["other"])    # compute2 looks fuller: compute1
    assert sm.hosts.in_flight["other"].host == "compute1"
    # u1 again: its own claim is dropped first, so compute2 (2 GB claimed by nobody but
    # u1) ranks like compute1 minus "other" and wins
    assert sm.select_destinations(CTX, SMALL, ["u1"]) == [["compute2"]]


def _resizing(sm):
    _, _, [uuid] = sm.db.create_instances(["vm"], "m1.small", "cirros", None)
    sm.db.update_instance(uuid, vm_state="active", task_state="resize_prep", host="compute1")
    return uuid


def test_legacy_prep_resize_ignores_a_late_reschedule_of_an_ended_migration(make_scheduler):
    sm = make_scheduler(flow="legacy")
    add_compute(sm, "compute1")
    add_compute(sm, "compute2")
    uuid = _resizing(sm)
    m = sm.db.create_migration(uuid, "migration", "compute1", "m1.small", "m1.small", "r")
    sm.db.update_migration(m["id"], status="error")        # the timeout check ended it
    sm.prep_resize(CTX, uuid, "m1.small", {"num_attempts": 1, "hosts": ["compute2"]},
                   m["id"])                                 # FakeTransport: nothing sent
    assert sm.db.migration(m["id"])["status"] == "error"
    assert sm.hosts.in_flight == {}


def test_legacy_prep_resize_with_nowhere_to_go_rolls_back_itself(make_scheduler):
    sm = make_scheduler(flow="legacy")
    add_compute(sm, "compute1")                             # only the source: ignored
    uuid = _resizing(sm)
    sm.prep_resize(CTX, uuid, "m1.small")
    inst = sm.db.instance(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["host"]) == ("active", None, "compute1")
    [m] = sm.db.migrations(instance_uuid=uuid)
    assert m["status"] == "error" and "NoValidHost" in sm.db.fault(uuid)["message"]


# -- requested_destination and rebuild ---------------------------------------------------------
def test_a_requested_destination_is_the_only_host_considered(make_scheduler):
    sm = make_scheduler()
    add_compute(sm, "compute1")
    add_compute(sm, "compute2", memory_mb_used=8192)
    spec = {**SMALL, "requested_destination": "compute2"}
    assert sm.select_destinations(CTX, spec, ["u1"], return_alternates=True) == [["compute2"]]
    add_compute(sm, "compute3", up=False)
    with pytest.raises(NoValidHost, match="compute3: ComputeFilter"):
        sm.select_destinations(CTX, {**SMALL, "requested_destination": "compute3"}, ["u2"])


def test_a_rebuild_runs_only_the_filters_that_run_on_rebuild_and_claims_nothing(
        make_scheduler):
    """The instance is on the host already: a full host must not refuse its own rebuild
    (Nova's RUN_ON_REBUILD), and nothing new arrives there."""
    sm = make_scheduler()
    add_compute(sm, "compute1", memory_mb=2048, memory_mb_used=2048)
    spec = {**SMALL, "requested_destination": "compute1", "rebuild": True}
    assert sm.select_destinations(CTX, spec, ["u1"]) == [["compute1"]]
    assert sm.hosts.in_flight == {}
    with pytest.raises(NoValidHost, match="RamFilter"):          # not a rebuild: full
        sm.select_destinations(CTX, {**SMALL, "requested_destination": "compute1"}, ["u2"])


def test_the_instance_info_fanouts_reach_the_host_states(make_scheduler):
    sm = make_scheduler()
    add_compute(sm, "compute1")
    sm.update_instance_info(CTX, "compute1", ["u1", "u2"])     # the database, then these
    sm.delete_instance_info(CTX, "compute1", "u1")
    [state] = sm.hosts.host_states()
    assert state.instances == ["u2"]
    sm.sync_instance_info(CTX, "compute1", ["u2"])                # matches: kept
    assert sm.hosts.instance_info["compute1"] == {"u2"}
    sm.sync_instance_info(CTX, "compute1", ["u2", "u3"])          # differs: from the db
    assert sm.hosts.instance_info["compute1"] == set()


def test_placement_hands_the_filters_at_most_max_placement_results_hosts(make_scheduler):
    sm = make_scheduler(computes=6, max_placement_results=3)
    for i in range(1, 7):    # compute2 is full: placement skips it, as it has no room
        add_compute(sm, f"compute{i}", memory_mb=16384 + 1024 * i,
                    memory_mb_used=16384 + 1024 * i if i == 2 else 0)
    [[host]] = sm.select_destinations(CTX, {**SMALL, "num_instances": 1}, ["u1"])
    # RAMWeigher spreads to the most free RAM, but compute6 was never a candidate
    assert host == "compute4"
    [timing] = sm.select_timings(CTX)
    assert (timing["hosts"], timing["candidates"]) == (6, 3)
    assert sm.last_decision[0]["ranked"] == ["compute4", "compute3", "compute1"]


def test_placement_changes_nothing_below_its_limit(make_scheduler):
    sm = make_scheduler(computes=3)
    for i in range(1, 4):
        add_compute(sm, f"compute{i}", memory_mb=16384 + 1024 * i)
    [[host]] = sm.select_destinations(CTX, {**SMALL, "num_instances": 1}, ["u1"])
    assert host == "compute3" and sm.select_timings(CTX)[0]["candidates"] == 3
