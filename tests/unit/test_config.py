"""Unit tests for orchestrator.config."""
from __future__ import annotations

import dataclasses

import pytest

from orchestrator.config import BusConfig, ConfigError, from_dict

FIELDS = [f.name for f in dataclasses.fields(BusConfig)]


def test_defaults_are_valid():
    config = BusConfig()
    assert config.heartbeat_interval < config.dead_after
    assert from_dict(BusConfig, None) == config
    assert from_dict(BusConfig, {}) == config


def test_from_dict_builds_the_config():
    config = from_dict(BusConfig, {"dead_after": 3, "queue_limit": 7, "seed": 11})
    assert (config.dead_after, config.queue_limit, config.seed) == (3, 7, 11)
    assert config.heartbeat_interval == BusConfig().heartbeat_interval


def test_from_dict_does_not_mutate_its_input():
    data = {"seed": 1}
    from_dict(BusConfig, data)
    assert data == {"seed": 1}


def test_from_dict_rejects_unknown_keys_naming_them():
    with pytest.raises(ConfigError) as info:
        from_dict(BusConfig, {"dead_after": 3, "zeta": 1, "bogus_key": 2})
    message = str(info.value)
    assert "bogus_key" in message and "zeta" in message
    assert "BusConfig" in message
    assert "dead_after" in message  # the known options are listed too


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("value", [-1, -0.5])
def test_negative_values_rejected(name, value):
    with pytest.raises(ConfigError, match=name):
        from_dict(BusConfig, {name: value})


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("value", [True, False, "1", None, [1]])
def test_non_numbers_rejected(name, value):
    with pytest.raises(ConfigError, match=name):
        BusConfig(**{name: value})


@pytest.mark.parametrize("hb,dead", [(1.0, 1.0), (2.0, 1.0), (0, 1.0), (0.0, 0.0)])
def test_heartbeat_must_be_below_dead_after(hb, dead):
    with pytest.raises(ConfigError):
        BusConfig(heartbeat_interval=hb, dead_after=dead)


def test_heartbeat_just_below_dead_after_is_fine():
    BusConfig(heartbeat_interval=0.5, dead_after=0.51)


@pytest.mark.parametrize("kw", [{"queue_limit": 0}, {"history_size": 0}])
def test_limits_must_be_positive(kw):
    with pytest.raises(ConfigError):
        BusConfig(**kw)


def test_zero_is_allowed_where_it_means_off():
    config = BusConfig(queue_ttl=0, hop_delay=0, seed=0)
    assert config.queue_ttl == 0


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BusConfig().seed = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", ["heartbeat_interval", "dead_after", "call_timeout",
                                  "queue_ttl"])
def test_nan_rejected(name):
    with pytest.raises(ConfigError):
        BusConfig(**{name: float("nan")})


@pytest.mark.parametrize("name", ["queue_limit", "history_size", "max_message_bytes"])
def test_int_options_reject_fractions(name):
    with pytest.raises(ConfigError):
        BusConfig(**{name: 2000.5})


def test_computes_grouped_by_process():
    from orchestrator.config import LabConfig
    config = LabConfig(computes=5, hosts_per_process=2, extra_computes=("compute9",))
    assert config.compute_processes() == [["compute1", "compute2"], ["compute3", "compute4"],
                                          ["compute5"], ["compute9"]]
    assert config.shares_process("compute3") and not config.shares_process("compute5")
    assert not config.shares_process("compute9")
    assert LabConfig(computes=3).compute_processes() == [["compute1"], ["compute2"],
                                                          ["compute3"]]
    with pytest.raises(ConfigError, match="hosts_per_process"):
        LabConfig(hosts_per_process=0)


def test_a_big_cloud_reports_less_often():
    from orchestrator.config import LOAD_HOSTS, PRESETS, LabConfig
    small, big = LabConfig(computes=LOAD_HOSTS), LabConfig(computes=20 * LOAD_HOSTS)
    assert small.load_factor() == 1.0 and big.load_factor() == 20.0
    fast = PRESETS["fast"]
    assert small.timing("report_interval") == fast["report_interval"]
    assert big.timing("report_interval") == 20 * fast["report_interval"]
    assert big.timing("service_down_time") == 20 * fast["service_down_time"]
    assert big.timing("build_timeout") == fast["build_timeout"]    # the work is not slower
