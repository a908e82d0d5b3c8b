"""Unit tests for orchestrator.api.microversion: which version a request gets (Nova's and
microversion-parse's rules), what is refused (400, 406), and the headers every versioned
answer carries."""
from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders

from orchestrator.api.microversion import (HEADER, LEGACY_HEADER, MAX_VERSION, MIN_VERSION,
                                           InvalidVersion, NotAcceptable, Version,
                                           requested, response_headers)


def headers(*pairs: tuple[str, str]) -> HTTPHeaders:
    out = HTTPHeaders()
    for name, value in pairs:
        out.add(name, value)
    return out


def test_the_range_is_2_1_to_2_47():
    assert (MIN_VERSION, MAX_VERSION) == ((2, 1), (2, 47))
    assert str(MAX_VERSION) == "2.47" and Version.parse("2.47") == MAX_VERSION


@pytest.mark.parametrize("pairs, version", [
    ((), (2, 1)),
    (((HEADER, "compute 2.19"),), (2, 19)),
    (((HEADER, "Compute   2.3"),), (2, 3)),
    (((HEADER, "compute latest"),), MAX_VERSION),
    (((LEGACY_HEADER, "2.26"),), (2, 26)),
    (((LEGACY_HEADER, "latest"),), MAX_VERSION),
    (((HEADER, "compute 2.9"), (LEGACY_HEADER, "2.40")), (2, 9)),      # the new one wins
    (((HEADER, "volume 3.5, compute 2.16"),), (2, 16)),
    (((HEADER, "volume 3.5"), (HEADER, "compute 2.11")), (2, 11)),
    (((HEADER, "volume 3.5"), (LEGACY_HEADER, "2.21")), (2, 21)),     # none for compute
    (((HEADER, "image 2.1"),), (2, 1)),
    (((HEADER, "compute 2.0"), (HEADER, "compute 2.5")), None)])
def test_the_version_a_request_gets(pairs, version):
    if version is None:       # the first named wins: 2.0 is below the range
        with pytest.raises(NotAcceptable):
            requested(headers(*pairs))
        return
    assert requested(headers(*pairs)) == version


@pytest.mark.parametrize("asked", ["2.48", "2.104", "3.0", "1.0", "2.0", "9999.1"])
def test_a_version_outside_the_range_is_406_saying_the_range(asked):
    with pytest.raises(NotAcceptable) as info:
        requested(headers((HEADER, f"compute {asked}")))
    assert str(info.value) == (f"Version {asked} is not supported by the API. Minimum is "
                               f"2.1 and maximum is 2.47.")


@pytest.mark.parametrize("asked", ["2", "2.", ".1", "2.01", "02.1", "2.1.1", "two.one",
                                   "2.x", "-2.1", "2.-1", "LATEST", ""])
def test_a_malformed_version_is_400(asked):
    with pytest.raises(InvalidVersion, match="is of invalid format"):
        requested(headers((LEGACY_HEADER, asked)))


def test_versions_compare_as_tuples():
    assert Version(2, 9) < Version(2, 10) and Version(2, 47) >= (2, 19)
    assert sorted([Version(2, 10), Version(2, 9), Version(2, 1)]) == [(2, 1), (2, 9),
                                                                        (2, 10)]


def test_the_answer_says_its_version_both_ways_and_varies_on_both_headers():
    assert response_headers(Version(2, 19)) == [
        ("OpenStack-API-Version", "compute 2.19"),
        ("X-OpenStack-Nova-API-Version", "2.19"),
        ("Vary", "OpenStack-API-Version"), ("Vary", "X-OpenStack-Nova-API-Version")]
