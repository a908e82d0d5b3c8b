"""Unit tests for orchestrator.rundir: lab.json, shared by several writers."""
from __future__ import annotations

import json
import threading
import time

import pytest

from orchestrator import rundir


def test_read_of_missing_file_is_empty(tmp_path):
    assert rundir.read(tmp_path) == {}
    assert rundir.read(tmp_path / "does" / "not" / "exist") == {}


def test_update_creates_the_directory_and_file(tmp_path):
    run_dir = tmp_path / "new" / "lab"
    assert rundir.update(run_dir, a=1) == {"a": 1}
    assert json.loads((run_dir / rundir.LAB_JSON).read_text()) == {"a": 1}
    assert rundir.read(run_dir) == {"a": 1}


def test_update_merges_dict_sections_one_level_deep(tmp_path):
    rundir.update(tmp_path, endpoints={"bus": "tcp://a", "nested": {"x": 1, "y": 2}},
                  pid=1)
    data = rundir.update(tmp_path, endpoints={"trace": "tcp://b", "nested": {"x": 9}})
    assert data == rundir.read(tmp_path)
    assert data["endpoints"] == {"bus": "tcp://a", "trace": "tcp://b",
                                 "nested": {"x": 9}}   # one level deep only
    assert data["pid"] == 1


def test_update_replaces_non_dict_values(tmp_path):
    rundir.update(tmp_path, section={"a": 1}, value=[1, 2])
    rundir.update(tmp_path, section="flat", value=[3])
    assert rundir.read(tmp_path) == {"section": "flat", "value": [3]}
    rundir.update(tmp_path, section={"b": 2})
    assert rundir.read(tmp_path)["section"] == {"b": 2}


def test_update_leaves_no_temp_files(tmp_path):
    for i in range(5):
        rundir.update(tmp_path, i=i)
    names = {p.name for p in tmp_path.iterdir()}
    assert not any(n.startswith(".lab.json.") for n in names), names


def test_concurrent_updates_do_not_lose_writes(tmp_path):
    threads, writes = 8, 50
    errors: list[BaseException] = []
    stop = threading.Event()
    reads = [0]

    def writer(t: int) -> None:
        try:
            for j in range(writes):
                rundir.update(tmp_path, writes={f"{t}-{j}": j}, **{f"last{t}": j})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                text = (tmp_path / rundir.LAB_JSON).read_text() \
                    if (tmp_path / rundir.LAB_JSON).exists() else "{}"
                json.loads(text)          # always a whole, valid document
                rundir.read(tmp_path)
                reads[0] += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    watcher = threading.Thread(target=reader)
    watcher.start()
    pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert reads[0] > 0
    data = rundir.read(tmp_path)
    assert len(data["writes"]) == threads * writes
    assert all(data[f"last{t}"] == writes - 1 for t in range(threads))


def test_wait_for_returns_a_present_value(tmp_path):
    rundir.update(tmp_path, endpoints={"bus": "tcp://x", "zero": 0})
    assert rundir.wait_for(tmp_path, "endpoints", "bus", timeout=0) == "tcp://x"
    assert rundir.wait_for(tmp_path, "endpoints", "zero", timeout=0) == 0
    assert rundir.wait_for(tmp_path, "endpoints", timeout=0) == {"bus": "tcp://x",
                                                                 "zero": 0}


def test_wait_for_returns_when_the_key_appears(tmp_path):
    rundir.update(tmp_path, endpoints={})
    timer = threading.Timer(0.1, rundir.update, args=(tmp_path,),
                            kwargs={"endpoints": {"bus": "tcp://late"}})
    timer.start()
    try:
        start = time.monotonic()
        assert rundir.wait_for(tmp_path, "endpoints", "bus", timeout=10) == "tcp://late"
        assert time.monotonic() - start < 5
    finally:
        timer.join()


def test_wait_for_times_out(tmp_path):
    rundir.update(tmp_path, endpoints="not a dict")
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="endpoints/bus"):
        rundir.wait_for(tmp_path, "endpoints", "bus", timeout=0.1)
    assert 0.1 <= time.monotonic() - start < 2


def test_wait_for_stops_when_the_process_died(tmp_path):
    calls = []

    def alive() -> bool:
        calls.append(1)
        return len(calls) < 3

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="bus"):
        rundir.wait_for(tmp_path, "bus", timeout=5, alive=alive)
    assert len(calls) == 3
    assert time.monotonic() - start < 2


def test_wait_for_prefers_the_value_over_a_dead_process(tmp_path):
    rundir.update(tmp_path, bus={"pid": 5})
    assert rundir.wait_for(tmp_path, "bus", "pid", timeout=0, alive=lambda: False) == 5


def test_log_path(tmp_path):
    path = rundir.log_path(tmp_path / "lab", "compute.c1")
    assert path == tmp_path / "lab" / "logs" / "compute.c1.log"
    assert path.parent.is_dir() and not path.exists()
