"""Unit tests for lab.procstat: /proc read on this very process and on a child it
starts (a sleeping `sleep`, reaped at the end), and the parsers on given text."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from lab.procstat import (TICKS, Sampler, cpu_seconds, descendants, memory_kb, parse_rollup,
                          parse_stat)


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait()


def test_parse_stat_counts_fields_after_the_command_name_even_with_spaces_and_parens():
    rest = " ".join(["S", "42"] + ["0"] * 9 + [str(3 * TICKS), str(TICKS)] + ["0"] * 30)
    assert parse_stat(f"123 (odd ) name) {rest}") == (42, 4.0)


def test_parse_rollup_reads_rss_and_pss_or_rss_alone_from_status():
    rollup = ("55d0-7ffc ---p 00000000 00:00 0   [rollup]\nRss:     2048 kB\n"
              "Pss:     1024 kB\nPss_Anon:   512 kB\n")
    assert parse_rollup(rollup) == (2048, 1024)
    assert parse_rollup("Name:\tpython\nVmRSS:\t  777 kB\nThreads:\t3\n") == (777, None)
    with pytest.raises(ValueError):
        parse_rollup("Name:\tzombie\nState:\tZ (zombie)\n")


def test_this_process_has_cpu_time_that_grows():
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert before is not None and cpu_seconds(os.getpid()) > before


def test_this_process_memory_pss_at_most_rss():
    rss, pss = memory_kb(os.getpid())
    assert rss > 1024
    assert pss is None or 0 < pss <= rss


def test_a_child_is_a_descendant_and_a_reaped_one_reads_as_gone(sleeper):
    assert sleeper.pid in descendants([os.getpid()])
    assert descendants([sleeper.pid]) == []
    done = subprocess.Popen(["true"])
    done.wait()
    assert cpu_seconds(done.pid) is None and memory_kb(done.pid) is None


def test_sampler_sums_the_processes_it_names_and_skips_the_gone(sleeper):
    gone = subprocess.Popen(["true"])
    gone.wait()
    sampler = Sampler(lambda: {"me": os.getpid(), "sleep": sleeper.pid, "gone": gone.pid},
                      interval=0.01).start()
    time.sleep(0.05)
    samples = sampler.stop()
    assert len(samples) >= 2 and all(set(s) == {"me", "sleep"} for s in samples)
    mine = sampler.totals(lambda name: name == "me")
    both = sampler.totals()
    assert all(0 < m[0] < b[0] for m, b in zip(mine, both))
    assert sampler.cpu >= 0.0
