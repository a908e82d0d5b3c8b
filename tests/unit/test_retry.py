"""orchestrator.retry: the retry bookkeeping every pass of a build or a migration uses
(the conductor's tasks, the legacy scheduler, the compute)."""
from __future__ import annotations

from orchestrator.exception import MaxRetriesExceeded, NoValidHost
from orchestrator.retry import exceeded, exhausted, populate_retry, tried


def test_each_pass_counts_one_more_attempt_without_changing_the_message_it_came_in():
    first = populate_retry(None)
    assert first == {"num_attempts": 1, "hosts": []}
    came = {"num_attempts": 1, "hosts": ["compute1"], "exc": "RescheduledException: x"}
    second = populate_retry(came)
    assert second == {"num_attempts": 2, "hosts": ["compute1"],
                      "exc": "RescheduledException: x"}
    assert came["num_attempts"] == 1, "a duplicated message must not count twice"
    assert tried(second, "compute2")["hosts"] == ["compute1", "compute2"]
    assert second["hosts"] == ["compute1"]


def test_the_errors_name_the_limit_and_the_last_failure_as_novas_do():
    error = exceeded(3, "uuid-1", "RescheduledException: disk full")
    assert isinstance(error, MaxRetriesExceeded) and isinstance(error, NoValidHost)
    assert str(error) == ("Exceeded maximum number of retries. Exceeded max scheduling "
                          "attempts 3 for instance uuid-1. Last exception: "
                          "RescheduledException: disk full")
    assert str(exhausted("build failures for instance uuid-1", "unknown")) == (
        "Exhausted all hosts available for retrying build failures for instance uuid-1. "
        "Last exception: unknown")
