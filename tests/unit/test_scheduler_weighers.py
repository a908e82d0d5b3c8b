"""Unit tests for the scheduler's weighers and ``normalize``."""
from __future__ import annotations

import pytest

from orchestrator.config import WEIGHERS, LabConfig
from orchestrator.scheduler.host_manager import HostState
from orchestrator.scheduler.weighers import (WEIGHER_CLASSES, BaseWeigher,
                                             BuildFailureWeigher, RAMWeigher)
from orchestrator.scheduler.weighers.base import normalize

SPEC = {"vcpus": 1, "memory_mb": 512, "root_gb": 1}


def host(name: str = "compute1", **overrides) -> HostState:
    values = dict(host=name, availability_zone="nova", vcpus=8, memory_mb=16384,
                  local_gb=200, vcpus_used=0, memory_mb_used=0, local_gb_used=0,
                  failed_builds=0, service_up=True, disabled=False)
    return HostState(**{**values, **overrides})


def best(weigher: BaseWeigher, hosts: list[HostState]) -> str:
    """The winner as the scheduler computes it: normalised weight times multiplier."""
    weights = normalize([weigher.weigh(h, SPEC) for h in hosts])
    scored = [(-weigher.multiplier() * w, h.host) for w, h in zip(weights, hosts)]
    return min(scored)[1]


def test_the_registry_matches_the_configs_weigher_names():
    assert set(WEIGHER_CLASSES) == set(WEIGHERS)
    for name, cls in WEIGHER_CLASSES.items():
        assert cls.__name__ == name and issubclass(cls, BaseWeigher)


def test_the_base_weigher():
    base = BaseWeigher(LabConfig())
    assert base.multiplier() == 1.0
    with pytest.raises(NotImplementedError):
        base.weigh(host(), SPEC)


@pytest.mark.parametrize("values,expected", [
    ([0, 5, 10], [0.0, 0.5, 1.0]),
    ([-10, 10], [0.0, 1.0]),
    ([3, 3, 3], [0.0, 0.0, 0.0]),
    ([7], [0.0]),
    ([2.0, 1.0, 4.0], [1 / 3, 0.0, 1.0]),
])
def test_normalize(values, expected):
    assert normalize(values) == pytest.approx(expected)


def test_normalize_keeps_the_order_and_range():
    out = normalize([5, -1, 100, 42])
    assert min(out) == 0.0 and max(out) == 1.0
    assert sorted(range(4), key=out.__getitem__) == [1, 0, 3, 2]


def test_ram_weigher_weighs_free_ram_with_the_allocation_ratio():
    state = host(memory_mb=1000, memory_mb_used=300)
    assert RAMWeigher(LabConfig()).weigh(state, SPEC) == 700
    assert RAMWeigher(LabConfig(ram_allocation_ratio=2.0)).weigh(state, SPEC) == 1700


def test_ram_weigher_spreads_by_default():
    hosts = [host("compute1", memory_mb_used=4096), host("compute2", memory_mb_used=1024),
             host("compute3", memory_mb_used=8192)]
    weigher = RAMWeigher(LabConfig())
    assert weigher.multiplier() == 1.0
    assert best(weigher, hosts) == "compute2"


def test_ram_weigher_stacks_with_a_negative_multiplier():
    hosts = [host("compute1", memory_mb_used=4096), host("compute2", memory_mb_used=1024),
             host("compute3", memory_mb_used=8192)]
    weigher = RAMWeigher(LabConfig(ram_weight_multiplier=-1.0))
    assert weigher.multiplier() == -1.0
    assert best(weigher, hosts) == "compute3"


def test_build_failure_weigher_sinks_hosts_with_failed_builds():
    config = LabConfig()
    weigher = BuildFailureWeigher(config)
    assert weigher.multiplier() == config.build_failure_weight_multiplier
    assert weigher.weigh(host(failed_builds=3), SPEC) == -3.0
    assert weigher.weigh(host(failed_builds=0), SPEC) == 0.0
    hosts = [host("compute1", failed_builds=2), host("compute2", failed_builds=5),
             host("compute3", failed_builds=0)]
    assert best(weigher, hosts) == "compute3"
    assert best(weigher, hosts[:2]) == "compute1"


def test_build_failure_weigher_multiplier_comes_from_the_config():
    weigher = BuildFailureWeigher(LabConfig(build_failure_weight_multiplier=2.5))
    assert weigher.multiplier() == 2.5
