"""Unit tests for orchestrator.compute.resource_tracker.ResourceTracker."""
from __future__ import annotations

import pytest

from orchestrator.exception import ComputeResourcesUnavailable, RescheduledException
from orchestrator.compute.resource_tracker import ResourceTracker

TINY = {"vcpus": 1, "memory_mb": 512, "root_gb": 1}
SMALL = {"vcpus": 1, "memory_mb": 2048, "root_gb": 20}
MEDIUM = {"vcpus": 2, "memory_mb": 4096, "root_gb": 40}
ZERO = {"vcpus": 0, "memory_mb": 0, "local_gb": 0}


def tracker(vcpus=8, memory_mb=16384, local_gb=200, ratios=(1.0, 1.0, 1.0)):
    return ResourceTracker("compute1", "az1", vcpus, memory_mb, local_gb, ratios)


def test_a_new_tracker_uses_nothing():
    rt = tracker()
    assert rt.used() == ZERO
    assert rt.report(0) == {"availability_zone": "az1", "vcpus": 8, "memory_mb": 16384,
                            "local_gb": 200, "vcpus_used": 0, "memory_mb_used": 0,
                            "local_gb_used": 0, "running_vms": 0, "failed_builds": 0,
                            "instances": []}


def test_claims_add_up_and_release_gives_back():
    rt = tracker()
    rt.claim("b", SMALL)
    rt.claim("a", MEDIUM)
    assert rt.used() == {"vcpus": 3, "memory_mb": 6144, "local_gb": 60}
    report = rt.report(2)
    assert (report["vcpus_used"], report["memory_mb_used"], report["local_gb_used"]) == (
        3, 6144, 60)
    assert report["running_vms"] == 2 and report["failed_builds"] == 2
    assert report["instances"] == ["a", "b"]                 # sorted
    assert rt.release("b") is True
    assert rt.used() == {"vcpus": 2, "memory_mb": 4096, "local_gb": 40}
    assert rt.release("b") is False                          # already gone
    assert rt.release("never") is False
    assert rt.release("a") is True
    assert rt.used() == ZERO and rt.report(0)["instances"] == []


def test_a_claim_stores_the_root_disk_as_local_gb():
    rt = tracker()
    rt.claim("u", {**SMALL, "flavor": "m1.small", "retry": {"hosts": []}})
    assert rt.claims == {"u": {"vcpus": 1, "memory_mb": 2048, "local_gb": 20}}


def test_an_exact_fit_is_accepted():
    rt = tracker(vcpus=2, memory_mb=4096, local_gb=40)
    rt.claim("u", MEDIUM)
    assert rt.used() == {"vcpus": 2, "memory_mb": 4096, "local_gb": 40}


@pytest.mark.parametrize("resource,sizes", [
    ("vcpus", dict(vcpus=2, memory_mb=8192, local_gb=80)),
    ("memory_mb", dict(vcpus=4, memory_mb=4096, local_gb=80)),
    ("local_gb", dict(vcpus=4, memory_mb=8192, local_gb=40)),
])
def test_a_claim_that_does_not_fit_names_the_resource_and_changes_nothing(resource, sizes):
    rt = tracker(**sizes)
    rt.claim("first", MEDIUM)
    before = rt.used()
    with pytest.raises(ComputeResourcesUnavailable) as info:
        rt.claim("second", MEDIUM)
    message = str(info.value)
    assert "compute1" in message and resource in message
    requested = MEDIUM["root_gb" if resource == "local_gb" else resource]
    assert f"{resource} {before[resource]} used + {requested} requested" in message
    assert rt.used() == before
    assert set(rt.claims) == {"first"}
    assert isinstance(info.value, RescheduledException)      # so the build reschedules


def test_the_first_resource_that_does_not_fit_is_named():
    rt = tracker(vcpus=1, memory_mb=256, local_gb=0)
    with pytest.raises(ComputeResourcesUnavailable, match="vcpus"):
        rt.claim("u", MEDIUM)


@pytest.mark.parametrize("index,key,spec_key", [(0, "vcpus", "vcpus"),
                                                (1, "memory_mb", "memory_mb"),
                                                (2, "local_gb", "root_gb")])
def test_allocation_ratios_scale_each_limit(index, key, spec_key):
    ratios = [1.0, 1.0, 1.0]
    ratios[index] = 1.5
    rt = tracker(vcpus=10, memory_mb=10, local_gb=10, ratios=tuple(ratios))
    small = {"vcpus": 0, "memory_mb": 0, "root_gb": 0}
    rt.claim("a", {**small, spec_key: 15})                   # 10 * 1.5: exactly fits
    with pytest.raises(ComputeResourcesUnavailable, match=rf"{key} 15 used \+ 1 requested > 15"):
        rt.claim("b", {**small, spec_key: 1})
    others = [k for k in ("vcpus", "memory_mb", "root_gb") if k != spec_key]
    with pytest.raises(ComputeResourcesUnavailable):
        tracker(vcpus=10, memory_mb=10, local_gb=10, ratios=tuple(ratios)).claim(
            "c", {**small, others[0]: 11})                    # ratio 1.0 there


def test_a_ratio_below_one_undercommits():
    rt = tracker(vcpus=8, memory_mb=1000, local_gb=100, ratios=(1.0, 0.5, 1.0))
    rt.claim("a", {"vcpus": 1, "memory_mb": 500, "root_gb": 1})
    with pytest.raises(ComputeResourcesUnavailable, match="> 500"):
        rt.claim("b", {"vcpus": 1, "memory_mb": 1, "root_gb": 1})


def test_the_report_does_not_share_state_with_the_tracker():
    rt = tracker()
    rt.claim("a", TINY)
    report = rt.report(0)
    report["instances"].append("x")
    report["vcpus"] = 99
    assert rt.report(0)["instances"] == ["a"] and rt.total["vcpus"] == 8


def test_claiming_again_for_the_same_instance_replaces_its_claim():
    """A destination that rebuilt its claims after a restart, then gets the (late)
    prep_resize: the instance must not count twice, nor be refused for its own room."""
    rt = ResourceTracker("c1", "nova", 2, 4096, 40)
    rt.claim("u1", {"vcpus": 2, "memory_mb": 4096, "root_gb": 40})
    rt.claim("u1", {"vcpus": 2, "memory_mb": 4096, "root_gb": 40})
    assert rt.used() == {"vcpus": 2, "memory_mb": 4096, "local_gb": 40}
    with pytest.raises(ComputeResourcesUnavailable):
        rt.claim("u2", {"vcpus": 1, "memory_mb": 512, "root_gb": 1})
