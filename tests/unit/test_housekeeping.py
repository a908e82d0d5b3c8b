"""Unit tests for lab.housekeeping: pruning the labs' home. Real directories in tmp_path;
real processes (a sleeping Python, a reaped or unreaped `true`) stand in for a lab's
owner and services, so "still running" means what it means on a student's machine."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from lab import housekeeping
from lab.cli import main
from lab.cluster import Cluster
from lab.housekeeping import KEEP_FILE, KEEP_LAST, RunDir, keep, keep_containing, prune, survey
from lab.trace import Trace
from orchestrator import rundir

HOUR = 3600.0


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("CONDUCTOR_LAB_HOME", str(path))
    return path


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def sleeper() -> Iterator[Callable[[], int]]:
    """``sleeper()`` -> the pid of a live process, killed and reaped after the test."""
    procs: list[subprocess.Popen] = []

    def start() -> int:
        procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]))
        return procs[-1].pid

    try:
        yield start
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def age(path: Path, seconds: float) -> None:
    """Make ``path`` and the files prune() dates a lab by look ``seconds`` old."""
    then = time.time() - seconds
    for p in (path / "lab.json", path / "trace.jsonl", path):
        if p.exists():
            os.utime(p, (then, then))


def make_lab(home: Path, name: str, owner: int | None, pids: dict | None = None,
             old: float | None = HOUR) -> Path:
    """A run directory as a lab leaves it: lab.json, database, trace, logs."""
    path = home / name
    rundir.update(path, path=str(path), owner_pid=owner, pids=pids or {},
                  config={"bus": {}})
    (path / "lab.sqlite").write_bytes(b"x" * 5000)
    (path / "trace.jsonl").write_text("{}\n" * 100)
    rundir.log_path(path, "bus").write_text("bus up\n")
    if old is not None:
        age(path, old)
    return path


def names(paths) -> set[str]:
    return {Path(p).name for p in paths}


# -- running labs stay -----------------------------------------------------------------------
@pytest.mark.parametrize("where", ["owner", "pids", "bus"])
def test_a_running_lab_stays(home, sleeper, dead_pid, where):
    pid = sleeper()                       # started before its lab wrote lab.json, as in life
    running = make_lab(home, "lab-running", owner=pid if where == "owner" else dead_pid,
                       pids={"compute.compute1": pid} if where == "pids" else {}, old=None)
    if where == "bus":
        rundir.update(running, bus={"pid": pid, "started": time.time()})
    make_lab(home, "lab-stopped", owner=dead_pid, pids={"bus": dead_pid})
    assert names(prune(home, keep_last=0)) == {"lab-stopped"}
    assert running.is_dir() and (running / "lab.json").exists()
    assert not (home / "lab-stopped").exists()


def test_a_reused_pid_does_not_keep_a_lab(home, sleeper):
    if not Path("/proc/self/stat").exists():
        pytest.skip("process start times come from /proc")
    stale = make_lab(home, "lab-stale", owner=sleeper(), old=None)
    age(stale, HOUR)   # its lab.json was last written an hour before that process started
    assert names(prune(home, keep_last=0)) == {"lab-stale"}


def test_a_zombie_is_not_running(home, zombie):
    rundir.update(home / "lab-z", owner_pid=zombie.pid, pids={"bus": zombie.pid})
    assert names(prune(home, keep_last=0)) == {"lab-z"}


def test_a_lab_of_this_process_runs_until_its_cluster_stops(home):
    cluster = Cluster(home / "lab-mine")     # never started: no processes, only lab.json
    try:
        assert rundir.read(cluster.run_dir)["owner_pid"] == os.getpid()
        assert prune(home, keep_last=0) == []
        assert [r.state for r in survey(home)] == ["running"]
    finally:
        cluster.stop()
    assert names(prune(home, keep_last=0)) == {"lab-mine"}


def test_a_lab_that_starts_between_look_and_removal_is_put_back(home, sleeper, monkeypatch):
    path = make_lab(home, "lab-late", owner=sleeper(), old=None)
    monkeypatch.setattr(housekeeping, "survey",
                        lambda home: [RunDir(path, "stopped", 0.0)])   # a stale look
    assert prune(home, keep_last=0) == []
    assert (path / "lab.json").exists()
    assert sorted(os.listdir(home)) == ["lab-late"]


# -- kept ones stay --------------------------------------------------------------------------
def test_a_lab_marked_kept_stays(home, dead_pid):
    kept = make_lab(home, "lab-kept", owner=dead_pid, old=2 * HOUR)
    make_lab(home, "lab-other", owner=dead_pid, old=2 * HOUR)
    keep(kept, why="lesson 3 answers")
    assert "lesson 3 answers" in (kept / KEEP_FILE).read_text()
    assert names(prune(home, keep_last=0)) == {"lab-other"}
    assert (kept / "lab.sqlite").exists()


def test_the_newest_stopped_labs_stay(home, dead_pid):
    for minutes in (40, 30, 20, 10):
        make_lab(home, f"lab-{minutes}m", owner=dead_pid, old=minutes * 60)
    assert names(prune(home, keep_last=2)) == {"lab-40m", "lab-30m"}
    assert sorted(os.listdir(home)) == ["lab-10m", "lab-20m"]


def test_by_default_five_stay(home, dead_pid):
    for i in range(KEEP_LAST + 2):
        make_lab(home, f"lab-{i}", owner=dead_pid, old=HOUR + i * 60)   # lab-0 newest
    assert KEEP_LAST == 5
    assert names(prune()) == {"lab-5", "lab-6"}
    assert len(os.listdir(home)) == KEEP_LAST


# -- what is not a lab is never touched -------------------------------------------------------
def test_nothing_but_lab_directories_is_touched(home, tmp_path, dead_pid):
    (home / "notes.txt").write_text("mine")
    (home / "lab-notes.txt").write_text("mine too")                 # lab-*, but a file
    make_lab(home, "mylab", owner=dead_pid)                          # a lab, not lab-*
    elsewhere = make_lab(tmp_path, "lab-elsewhere", owner=dead_pid)
    (home / "lab-link").symlink_to(elsewhere)                        # lab-*, a symlink
    stray = home / ".pruning-1-1-aa-lab-x"                           # not ours to judge:
    stray.mkdir()                                                    # holds a foreign file
    (stray / "thesis.tex").write_text("mine")
    before = sorted(os.listdir(home))
    assert prune(home, keep_last=0) == []
    assert sorted(os.listdir(home)) == before
    assert (elsewhere / "lab.sqlite").exists() and (stray / "thesis.tex").exists()


def test_a_file_of_yours_keeps_the_directory(home, dead_pid):
    mine = make_lab(home, "lab-mine", owner=dead_pid)
    (mine / "answers.ipynb").write_text("{}")
    age(mine, HOUR)
    make_lab(home, "lab-plain", owner=dead_pid)
    assert names(prune(home, keep_last=0)) == {"lab-plain"}
    assert (mine / "answers.ipynb").exists()


def test_a_half_made_directory_goes_once_it_is_old(home):
    old, new, mine = home / "lab-old", home / "lab-new", home / "lab-mine"
    for path in (old, new, mine):
        path.mkdir()
    (old / ".lab.lock").touch()         # the lab died between the lock and lab.json
    (mine / "notes.txt").write_text("mine")
    age(old, HOUR)
    age(mine, HOUR)
    assert names(prune(home, keep_last=5)) == {"lab-old"}   # not counted among the five
    assert new.is_dir() and (mine / "notes.txt").exists()


# -- traces saved on purpose ----------------------------------------------------------------
@pytest.mark.parametrize("save", [
    lambda t, p: t.save(p / "tour.jsonl"),
    lambda t, p: t.to_chrome(p / "tour.chrome.json"),
    lambda t, p: t.to_shiviz(p / "tour.shiviz.log"),
    lambda t, p: t.save(p / "trace.jsonl"),           # even over the lab's own trace
], ids=["jsonl", "chrome", "shiviz", "own-name"])
def test_a_trace_saved_in_a_run_directory_keeps_it(home, dead_pid, save):
    run = make_lab(home, "lab-saved", owner=dead_pid)
    make_lab(home, "lab-other", owner=dead_pid)
    save(Trace([]), run)
    assert (run / KEEP_FILE).exists()
    age(run, HOUR)
    assert names(prune(home, keep_last=0)) == {"lab-other"}


def test_a_trace_saved_elsewhere_marks_nothing(home, tmp_path, dead_pid):
    run = make_lab(home, "lab-x", owner=dead_pid)
    Trace([]).save(tmp_path / "tour.jsonl")
    assert keep_containing(tmp_path / "tour.jsonl") is None
    assert not (run / KEEP_FILE).exists() and not (tmp_path / KEEP_FILE).exists()


def test_a_save_deeper_inside_marks_the_run_directory(home, dead_pid):
    run = make_lab(home, "lab-deep", owner=dead_pid)
    assert keep_containing(run / "exports" / "a" / "tour.jsonl") == run
    assert "exports/a/tour.jsonl" in (run / KEEP_FILE).read_text()


# -- races and errors -------------------------------------------------------------------------
def test_two_pruners_at_once_remove_each_directory_once(home, dead_pid):
    for i in range(20):
        make_lab(home, f"lab-{i:02}", owner=dead_pid, old=HOUR + i)
    results: list[list[Path]] = []
    threads = [threading.Thread(target=lambda: results.append(prune(home, keep_last=3)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    removed = [p for r in results for p in r]
    assert len(results) == 4
    assert sorted(names(removed)) == sorted(p.name for p in removed)   # none twice
    assert names(removed) == {f"lab-{i:02}" for i in range(3, 20)}
    assert sorted(os.listdir(home)) == ["lab-00", "lab-01", "lab-02"]


def test_a_broken_directory_is_skipped_not_raised(home, dead_pid):
    (home / "lab-garbage").mkdir()
    (home / "lab-garbage" / "lab.json").write_text("{not json")
    (home / "lab-list").mkdir()
    (home / "lab-list" / "lab.json").write_text("[1, 2]")
    make_lab(home, "lab-fine", owner=dead_pid)
    assert names(prune(home, keep_last=0)) == {"lab-fine"}
    assert {r.path.name: r.state for r in survey(home)} == {
        "lab-garbage": "unreadable", "lab-list": "unreadable"}


def test_what_a_dead_pruner_left_is_swept_when_old(home, dead_pid):
    old = make_lab(home, f".pruning-{int(time.time() - HOUR)}-1-aa-lab-a", owner=dead_pid)
    new = make_lab(home, f".pruning-{int(time.time())}-1-bb-lab-b", owner=dead_pid)
    assert prune(home) == []
    assert not old.exists() and new.exists()


def test_dry_run_removes_nothing_and_reports_the_space(home, dead_pid):
    for minutes in (30, 20, 10):
        make_lab(home, f"lab-{minutes}m", owner=dead_pid, old=minutes * 60)
    seen: dict[str, int] = {}
    dry = prune(home, keep_last=1, dry_run=True,
                report=lambda p, n: seen.setdefault(p.name, n))
    assert names(dry) == set(seen) == {"lab-30m", "lab-20m"}
    assert all(n >= 5000 for n in seen.values())
    assert len(os.listdir(home)) == 3
    freed: dict[str, int] = {}
    assert names(prune(home, keep_last=1, report=lambda p, n: freed.setdefault(p.name, n))) \
        == names(dry)
    assert freed == seen
    assert os.listdir(home) == ["lab-10m"]


# -- the command line -------------------------------------------------------------------------
def test_clean_prints_what_it_removed_and_the_space_freed(home, dead_pid, capsys):
    for minutes in (30, 20, 10):
        make_lab(home, f"lab-{minutes}m", owner=dead_pid, old=minutes * 60)
    keep(make_lab(home, "lab-kept", owner=dead_pid))
    assert main(["clean", "--keep", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and f"{home / 'lab-30m'}" in out
    assert len(os.listdir(home)) == 4
    assert main(["clean", "--keep", "1"]) == 0
    out = capsys.readouterr().out
    assert f"removed {home / 'lab-20m'}" in out and "removed 2 lab(s), freed" in out
    assert "1 kept, 1 stopped" in out and " KB" in out
    assert sorted(os.listdir(home)) == ["lab-10m", "lab-kept"]


def test_clean_refuses_a_negative_count(home, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["clean", "--keep", "-1"])
    assert exc.value.code == 2
