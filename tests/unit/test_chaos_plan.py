"""The nemesis's plan is a pure function of the options: the same seed tells the same
story, and every story kills every service (the bus too), pauses a compute past
build_timeout and cuts a compute off. The report says what a run found."""
from __future__ import annotations

import pytest

from lab.chaos import ChaosOptions, format_report, plan
from lab.cli import _parser
from orchestrator.config import LabConfig

CONFIG = LabConfig(computes=4)
SERVICES = {"api", "conductor", "scheduler", "compute1", "compute2", "compute3",
            "compute4", "bus"}


@pytest.mark.parametrize("seed", [0, 1, 2, 7, 42])
def test_every_plan_kills_every_service_pauses_a_compute_and_cuts_one_off(seed):
    steps = plan(ChaosOptions(builds=300, seed=seed), CONFIG)
    assert {s.service for s in steps if s.action == "kill"} == SERVICES
    build_timeout = CONFIG.timing("build_timeout")
    assert any(s.action == "pause" and s.service.startswith("compute")
               and s.duration > build_timeout for s in steps)
    assert any(s.partition for s in steps)
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    assert all(0 < s.at < 300 for s in steps)
    assert not any(s.partition or s.slow for s in steps if s.service == "bus")


def test_the_same_seed_gives_the_same_plan_and_another_seed_another():
    options = ChaosOptions(builds=400, seed=1, moves=True)
    assert plan(options, CONFIG) == plan(options, CONFIG)
    assert plan(options, CONFIG) != plan(ChaosOptions(builds=400, seed=2, moves=True), CONFIG)


def test_more_builds_or_a_shorter_interval_mean_more_steps():
    few = plan(ChaosOptions(builds=300, kill_every=3.0), CONFIG)
    assert len(plan(ChaosOptions(builds=300, kill_every=1.0), CONFIG)) > len(few)
    assert len(plan(ChaosOptions(builds=1200, kill_every=3.0), CONFIG)) > len(few)
    assert plan(ChaosOptions(builds=300, kill_every=0), CONFIG) == []


def test_evacuations_come_only_with_moves_and_only_from_a_killed_compute():
    plain = [s for seed in range(10) for s in plan(ChaosOptions(seed=seed), CONFIG)]
    assert not any(s.evacuate for s in plain)
    moving = [s for seed in range(10)
              for s in plan(ChaosOptions(seed=seed, moves=True), CONFIG)]
    evacuating = [s for s in moving if s.evacuate]
    assert evacuating
    down = CONFIG.timing("service_down_time")
    assert all(s.action == "kill" and s.service.startswith("compute")
               and s.duration > down + 1 for s in evacuating)


def test_no_slow_links_without_a_delay():
    steps = [s for seed in range(10) for s in plan(ChaosOptions(seed=seed, delay=0), CONFIG)]
    assert not any(s.slow for s in steps)


@pytest.mark.parametrize("bad", [["--drop", "2"], ["--builds", "0"], ["--kill-every", "-1"],
                                 ["--computes", "x"]])
def test_bad_options_are_refused(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["chaos", *bad])
    assert exc.value.code == 2


def test_the_report_names_each_violation_its_evidence_and_the_seed():
    options = ChaosOptions(builds=10, seed=5, computes=2, moves=True)
    result = {
        "options": options.__dict__, "plan": ["at build    3  kill bus 0.5s"],
        "run_dir": "/tmp/lab-x", "limit_s": 16.0,
        "builds": {"sent": 10, "accepted": 9, "refused": {"no answer": 1}},
        "moves": {"accepted": {"migrate": 2}, "refused": {}},
        "faults": {"injected": {"kill bus": 1}, "messages": {"dropped (fault)": 4}},
        "outcomes": {"ACTIVE": 8, "ERROR: BuildTimeout": 1}, "migrations": {},
        "recovery": {"chaos_s": 3.0, "at_rest_after_s": 1.5,
                     "accounting_converged_after_s": None},
        "nemesis_errors": [],
        "invariants": {"1 outcomes": 0, "2 stable": 1},
        "violations": [{"invariant": 2, "name": "stable", "subject": "srv-1",
                        "what": "ERROR on - (m1.tiny) -> ACTIVE on compute1 (m1.tiny) with "
                                "no user action", "evidence": ["seen ERROR from 1 to 2"]}]}
    text = format_report(result)
    assert "outcomes: ACTIVE 8, ERROR: BuildTimeout 1" in text
    assert "accounting did NOT converge" in text
    assert "invariants: 1 outcomes ok, 2 stable 1 VIOLATED" in text
    assert "[2 stable] srv-1: ERROR on - (m1.tiny) -> ACTIVE" in text
    assert "    seen ERROR from 1 to 2" in text
    assert "reproduce: python -m lab chaos --seed 5 --builds 10 --computes 2 --moves" in text
