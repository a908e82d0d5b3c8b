"""Unit tests for the scheduler's filters, each alone, on hand-built HostStates."""
from __future__ import annotations

import pytest

from orchestrator.config import FILTERS, LabConfig
from orchestrator.scheduler.filters import (FILTER_CLASSES, AvailabilityZoneFilter,
                                            BaseFilter, ComputeFilter, CoreFilter,
                                            DiskFilter, RamFilter, RetryFilter)
from orchestrator.scheduler.host_manager import HostState

TINY = {"vcpus": 1, "memory_mb": 512, "root_gb": 1}


def host(name: str = "compute1", **overrides) -> HostState:
    values = dict(host=name, availability_zone="nova", vcpus=8, memory_mb=16384,
                  local_gb=200, vcpus_used=0, memory_mb_used=0, local_gb_used=0,
                  failed_builds=0, service_up=True, disabled=False)
    return HostState(**{**values, **overrides})


def spec(**overrides):
    return {**TINY, **overrides}


def test_the_registry_matches_the_configs_filter_names():
    assert set(FILTER_CLASSES) == set(FILTERS)
    for name, cls in FILTER_CLASSES.items():
        assert cls.__name__ == name and issubclass(cls, BaseFilter)


def test_the_base_filter_is_abstract():
    with pytest.raises(NotImplementedError):
        BaseFilter(LabConfig()).host_passes(host(), spec())


@pytest.mark.parametrize("up,disabled,passes", [(True, False, True), (False, False, False),
                                                (True, True, False), (False, True, False)])
def test_compute_filter_wants_an_up_and_enabled_service(up, disabled, passes):
    state = host(service_up=up, disabled=disabled)
    assert ComputeFilter(LabConfig()).host_passes(state, spec()) is passes


# (filter, resource field on HostState, spec key, allocation ratio option)
RESOURCES = [(RamFilter, "memory_mb", "memory_mb", "ram_allocation_ratio"),
             (CoreFilter, "vcpus", "vcpus", "cpu_allocation_ratio"),
             (DiskFilter, "local_gb", "root_gb", "disk_allocation_ratio")]


@pytest.mark.parametrize("cls,field,key,ratio", RESOURCES)
def test_resource_filter_exact_fit_passes_one_more_fails(cls, field, key, ratio):
    f = cls(LabConfig())
    state = host(**{field: 10, f"{field}_used": 4})
    assert f.host_passes(state, spec(**{key: 6}))
    assert not f.host_passes(state, spec(**{key: 7}))
    assert f.host_passes(host(**{field: 10}), spec(**{key: 10}))
    assert not f.host_passes(host(**{field: 10, f"{field}_used": 10}), spec(**{key: 1}))


@pytest.mark.parametrize("cls,field,key,ratio", RESOURCES)
def test_resource_filter_honours_its_allocation_ratio(cls, field, key, ratio):
    state = host(**{field: 10, f"{field}_used": 4})
    overcommit = cls(LabConfig(**{ratio: 1.5}))        # limit 15: 11 free
    assert overcommit.host_passes(state, spec(**{key: 11}))
    assert not overcommit.host_passes(state, spec(**{key: 12}))
    undercommit = cls(LabConfig(**{ratio: 0.5}))       # limit 5: 1 free
    assert undercommit.host_passes(state, spec(**{key: 1}))
    assert not undercommit.host_passes(state, spec(**{key: 2}))


@pytest.mark.parametrize("cls,field,key,ratio", RESOURCES)
def test_resource_filter_ignores_the_other_resources(cls, field, key, ratio):
    others = {k: 1 for _, _, k, _ in RESOURCES}
    full = {f"{fld}_used": 10 ** 6 for _, fld, _, _ in RESOURCES if fld != field}
    assert cls(LabConfig()).host_passes(host(**full), {**others, key: 1})


@pytest.mark.parametrize("cls,field,key,ratio", RESOURCES)
def test_resource_filter_rejects_an_overcommitted_host(cls, field, key, ratio):
    state = host(**{field: 10, f"{field}_used": 12})   # ratio lowered while running
    assert not cls(LabConfig()).host_passes(state, spec(**{key: 1}))


@pytest.mark.parametrize("requested", [None, ""])
def test_availability_zone_filter_passes_every_host_when_none_requested(requested):
    f = AvailabilityZoneFilter(LabConfig(availability_zones=("az1", "az2")))
    request = spec() if requested is None else spec(availability_zone=requested)
    assert f.host_passes(host(availability_zone="az1"), request)
    assert f.host_passes(host(availability_zone="az2"), request)


def test_availability_zone_filter_wants_the_requested_zone():
    f = AvailabilityZoneFilter(LabConfig(availability_zones=("az1", "az2")))
    assert f.host_passes(host(availability_zone="az1"), spec(availability_zone="az1"))
    assert not f.host_passes(host(availability_zone="az2"), spec(availability_zone="az1"))


def test_retry_filter_skips_the_hosts_already_tried():
    f = RetryFilter(LabConfig())
    request = spec(retry={"num_attempts": 2, "hosts": ["compute1", "compute3"]})
    assert not f.host_passes(host("compute1"), request)
    assert f.host_passes(host("compute2"), request)
    assert not f.host_passes(host("compute3"), request)


@pytest.mark.parametrize("retry", ["absent", None, {}, {"num_attempts": 1, "hosts": []}])
def test_retry_filter_passes_everything_on_a_first_attempt(retry):
    f = RetryFilter(LabConfig())
    request = spec() if retry == "absent" else spec(retry=retry)
    assert f.host_passes(host("compute1"), request)
