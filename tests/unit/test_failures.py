"""Unit tests for orchestrator.compute.failures: settings validation and the seeded
decisions."""
from __future__ import annotations

import math
from collections import Counter

import pytest

from orchestrator.compute.failures import FailureSettings, Verdict, decide

UUID = "6f1c2f55-0000-4000-8000-000000000001"


def test_defaults_never_fail():
    settings = FailureSettings()
    assert settings.to_dict() == {"reschedule": 0.0, "fatal": 0.0, "crash": 0.0, "slow": 1.0}
    assert all(decide(settings, 0, f"u{i}", "compute1", 1) == Verdict(None)
               for i in range(200))


@pytest.mark.parametrize("name", ["reschedule", "fatal", "crash"])
@pytest.mark.parametrize("value", [0, 0.0, 0.5, 1, 1.0])
def test_probabilities_in_range_are_accepted(name, value):
    assert getattr(FailureSettings(**{name: value}), name) == value


@pytest.mark.parametrize("name", ["reschedule", "fatal", "crash"])
@pytest.mark.parametrize("value", [-0.01, 1.01, 2, math.nan, math.inf, True, False, "0.5",
                                   None])
def test_probabilities_out_of_range_or_not_numbers_are_rejected(name, value):
    with pytest.raises(ValueError, match=name):
        FailureSettings(**{name: value})


@pytest.mark.parametrize("value", [0.01, 1, 2.5, 100])
def test_slow_in_range_is_accepted(value):
    assert FailureSettings(slow=value).slow == value


@pytest.mark.parametrize("value", [0, 0.0, -1, 100.01, math.nan, math.inf, True, "2", None])
def test_slow_out_of_range_or_not_a_number_is_rejected(value):
    with pytest.raises(ValueError, match="slow"):
        FailureSettings(slow=value)


def test_unknown_settings_are_a_type_error():
    with pytest.raises(TypeError):
        FailureSettings(explode=1.0)


def test_settings_round_trip_through_to_dict():
    settings = FailureSettings(reschedule=0.25, fatal=0.1, crash=0.05, slow=3)
    assert FailureSettings(**settings.to_dict()) == settings


def _outcomes(settings, seed=0, instance=UUID, host="compute1", attempts=range(1, 101)):
    return [decide(settings, seed, instance, host, a).outcome for a in attempts]


HALF = FailureSettings(reschedule=0.5)


def test_decide_is_deterministic():
    assert _outcomes(HALF) == _outcomes(HALF)
    assert decide(HALF, 3, UUID, "compute2", 2) == decide(HALF, 3, UUID, "compute2", 2)


@pytest.mark.parametrize("change", [dict(seed=1), dict(instance="another-uuid"),
                                    dict(host="compute2")])
def test_decide_varies_with_seed_instance_and_host(change):
    assert _outcomes(HALF) != _outcomes(HALF, **change)


def test_decide_varies_with_the_attempt():
    per_attempt = [decide(HALF, 0, f"u{i}", "compute1", 1).outcome ==
                   decide(HALF, 0, f"u{i}", "compute1", 2).outcome for i in range(100)]
    assert not all(per_attempt)
    assert len({o for o in _outcomes(HALF)}) == 2       # over attempts: both outcomes


@pytest.mark.parametrize("name", ["reschedule", "fatal", "crash"])
def test_probability_one_always_and_zero_never(name):
    always = FailureSettings(**{name: 1.0})
    never = FailureSettings(**{name: 0.0})
    for i in range(200):
        assert decide(always, i, f"u{i}", "compute1", i % 3 + 1).outcome == name
        assert decide(never, i, f"u{i}", "compute1", i % 3 + 1).outcome is None


def test_reschedule_frequency_matches_its_probability():
    settings = FailureSettings(reschedule=0.3)
    draws = Counter(decide(settings, 11, f"instance-{i}", f"compute{i % 3 + 1}", 1).outcome
                    for i in range(2000))
    assert set(draws) == {None, "reschedule"}
    assert 0.25 <= draws["reschedule"] / 2000 <= 0.35


def test_crash_takes_precedence_over_fatal_over_reschedule():
    everything = FailureSettings(reschedule=1.0, fatal=1.0, crash=1.0)
    no_crash = FailureSettings(reschedule=1.0, fatal=1.0)
    for i in range(50):
        assert decide(everything, 0, f"u{i}", "compute1", 1).outcome == "crash"
        assert decide(no_crash, 0, f"u{i}", "compute1", 1).outcome == "fatal"


def test_the_three_draws_are_independent():
    # With crash p=0.5 and fatal p=1, an attempt that does not crash is fatal: turning
    # crash on never changes which non-crashing attempts fail.
    mixed = FailureSettings(crash=0.5, fatal=1.0)
    outcomes = _outcomes(mixed)
    assert set(outcomes) == {"crash", "fatal"}
    crashes = _outcomes(FailureSettings(crash=0.5))
    assert [o == "crash" for o in outcomes] == [o == "crash" for o in crashes]
