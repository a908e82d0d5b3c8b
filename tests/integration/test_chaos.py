"""A short seeded chaos run against real processes: 300 builds on 3 computes while every
service is killed once (the bus too), a compute is paused past build_timeout, computes
are cut off, links slowed, 5% of all messages dropped and 2% duplicated. Once the faults
stop, nothing may be lost, nothing resurrected, nothing claimed twice, and no process
may outlive the lab."""
from __future__ import annotations

import pytest

from lab.chaos import ChaosOptions, format_report, run_chaos

pytestmark = pytest.mark.timeout(300)

OPTIONS = ChaosOptions(builds=300, seed=1, computes=3, drop=0.05, duplicate=0.02,
                       delay=1.0, kill_every=3.0, rate=10.0, watch=5.0)


def test_a_seeded_chaos_run_breaks_no_invariant(tmp_path):
    result = run_chaos(OPTIONS, run_dir=tmp_path / "lab")
    report = format_report(result)
    injected = result["faults"]["injected"]
    for service in ("api", "conductor", "scheduler", "compute1", "compute2", "compute3",
                    "bus"):
        assert injected.get(f"kill {service}"), (service, report)
    assert any(k.startswith("pause compute") for k in injected), report
    assert injected.get("partition"), report
    messages = result["faults"]["messages"]
    assert messages.get("dropped (fault)") and messages.get("duplicated"), report
    assert result["builds"]["accepted"] >= 200, report
    assert result["nemesis_errors"] == [], report
    assert result["recovery"]["at_rest_after_s"] is not None, report
    assert result["violations"] == [], report
