"""Who talks to whom, in the old process and in the new, from real runs: the seed's
claim that in the old process "the scheduler needs to be able to communicate with all
computes", and that in the new one the scheduler only deals with scheduling."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(90)


def run(make_lab, name: str, flow: str):
    lab = make_lab(name, computes=3, seed=5)
    lab.configure(flow=flow)
    lab.set_failure("compute1", reschedule=1.0)
    mark = lab.mark()
    lab.wait([lab.boot(f"{flow}-{i}") for i in range(4)])
    trace = lab.trace(since=mark)
    lab.stop()
    return trace


def out_edges(graph, node):
    return {(dst, key) for _, dst, key in graph.out_edges(node, keys=True)}


def test_legacy_and_conductor_graphs_differ_as_the_seed_says(make_lab):
    legacy = run(make_lab, "legacy", "legacy").to_networkx()
    new = run(make_lab, "new", "conductor").to_networkx()
    scheduler = "scheduler.scheduler1"

    # Old process: the scheduler casts builds to the computes, computes cast back to it.
    legacy_targets = {d for d, k in out_edges(legacy, scheduler)
                      if k == "cast:build_and_run_instance"}
    assert {"compute.compute1", "compute.compute2", "compute.compute3"} & legacy_targets
    assert len(legacy_targets) >= 2
    assert ("scheduler.scheduler1", "cast:run_instance") in out_edges(legacy, "compute.compute1")
    assert not [k for _, _, k in legacy.edges(keys=True) if k.endswith("build_instances")]

    # New process: the scheduler talks to no compute; it only answers the conductor.
    assert {d for d, _ in out_edges(new, scheduler)} == {"conductor.conductor1"}
    assert {k for _, k in out_edges(new, scheduler)} == {"reply:select_destinations"}
    # The compute's reschedule is a cast to the conductor naming build_instances,
    # the same method the API used.
    assert ("conductor.conductor1", "cast:build_instances") in out_edges(new, "compute.compute1")
    assert ("conductor.conductor1", "cast:build_instances") in out_edges(new, "api.api")


def test_summary_counts_reschedules_and_scheduler_peers(make_lab):
    legacy = run(make_lab, "legacy", "legacy").summary()
    new = run(make_lab, "new", "conductor").summary()
    assert new["scheduler_peers_sent_to"] == []
    assert len(legacy["scheduler_peers_sent_to"]) >= 2
    assert new["reschedules"] >= 1 and legacy["reschedules"] >= 1
    assert new["builds"] == legacy["builds"] == 4
    assert new["select_destinations_calls"] == 4 + new["reschedules"]
    assert legacy["select_destinations_calls"] == 0
