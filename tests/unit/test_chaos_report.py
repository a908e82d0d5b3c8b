"""Unit tests for lab.chaos_report: the evidence a violation carries (its server's instance
actions, in Nova's shape: times as ISO 8601, UTC)."""
from __future__ import annotations

import datetime

from lab import invariants as inv
from lab.chaos_report import add_evidence

UUID = "aaaa1111-2222-3333-4444-555566667777"


def test_evidence_reads_the_actions_times_as_nova_writes_them(tmp_path):
    began = datetime.datetime(2026, 12, 6, 21, 0, 0, tzinfo=datetime.UTC).timestamp()
    violation = inv.Violation(1, UUID, "not at rest")
    actions = {UUID: [{"action": "create", "request_id": "req-1",
                       "start_time": "2026-12-06T21:00:02.500000",
                       "events": [{"event": "compute_build_and_run_instance",
                                   "host": "compute1", "attempt": 1, "result": "Error",
                                   "details": "RescheduledException: boom"}]}]}
    add_evidence([violation], actions, tmp_path, began, ["compute1"])
    assert f"server {UUID}: instance actions" in violation.evidence
    assert "  create req-1 at 2.500s" in violation.evidence
    assert any("compute_build_and_run_instance compute1 attempt 1 Error Rescheduled" in line
               for line in violation.evidence)
