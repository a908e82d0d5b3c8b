"""lab.lessons.scheduler: placement counts, prediction checks, rejection summaries."""
from __future__ import annotations

from lab.lessons.scheduler import check_prediction, placement, rejections


def rec(host, status="ACTIVE"):
    return {"OS-EXT-SRV-ATTR:host": host, "status": status}


def test_placement_counts_active_builds_per_host_in_order():
    assert placement([rec("compute2"), rec("compute1"), rec("compute2"),
                      rec("compute3", "ERROR")]) == {"compute1": 1, "compute2": 2}
    assert list(placement([rec("compute2"), rec("compute1")])) == ["compute1", "compute2"]


def test_check_prediction_says_yes_or_explains():
    assert check_prediction(1, 1, "hosts used").startswith("✔")
    message = check_prediction(3, 1, "hosts used")
    assert message.startswith("✘") and "predicted hosts used = 3" in message
    assert "measured 1" in message


def test_rejections_merges_decisions():
    decisions = [{"rejected": {"compute1": "RamFilter"}},
                 {"rejected": {"compute3": "NoCompute3"}}, {}]
    assert rejections(decisions) == {"compute1": "RamFilter", "compute3": "NoCompute3"}
