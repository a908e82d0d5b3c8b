"""Resource accounting stays honest through a mixed run (successes, reschedules, fatal
failures, NoValidHost, deletes): each hypervisor's usage equals the sum of the flavors of
the ACTIVE instances on it. And no lab process outlives its parent."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict

import pytest

from lab.testing import usage_of, wait_for_usage
from orchestrator.compute.manager import CRASH_EXIT_CODE
from orchestrator.config import FLAVORS

pytestmark = pytest.mark.timeout(90)


def test_usage_equals_sum_of_active_instances(make_lab):
    lab = make_lab(computes=3, memory_mb=8192, vcpus=4)
    lab.set_failure("compute1", reschedule=0.5)
    lab.set_failure("compute2", fatal=0.3)
    ids = []
    for i, flavor in enumerate(["m1.small", "m1.medium", "m1.tiny", "m1.large"] * 3):
        ids.append(lab.boot(f"mix{i}", flavor=flavor))
    records = lab.wait(ids, timeout=60)
    assert {r["status"] for r in records} <= {"ACTIVE", "ERROR"}
    assert all("fault" in r for r in records if r["status"] == "ERROR")
    for r in records[:3]:
        if r["status"] == "ACTIVE":
            lab.delete(r["id"])
    lab.wait([r["id"] for r in records[:3] if r["status"] == "ACTIVE"],
             statuses=("DELETED",))
    expected: dict[str, dict[str, int]] = defaultdict(lambda: {"ram": 0, "vcpus": 0, "n": 0})
    for server in lab.servers():
        if server["status"] == "ACTIVE":
            f = FLAVORS[server["flavor"]["original_name"]]
            e = expected[server["OS-EXT-SRV-ATTR:host"]]
            e["ram"] += f["memory_mb"]
            e["vcpus"] += f["vcpus"]
            e["n"] += 1
    for hyper in lab.hypervisors():
        e = expected[hyper["hypervisor_hostname"]]
        assert (hyper["memory_mb_used"], hyper["vcpus_used"], hyper["running_vms"]) == \
            (e["ram"], e["vcpus"], e["n"]), hyper
        assert hyper["memory_mb_used"] <= hyper["memory_mb"]


CHILD_SCRIPT = """
import json, sys, time
from lab import Lab
lab = Lab(computes=2, run_dir=sys.argv[1]).start()
print(json.dumps([c.pid for c in lab.cluster.children.values()]), flush=True)
time.sleep(600)
"""


def test_killing_the_labs_parent_leaves_no_process(tmp_path, pid_gone, reap_pids, processes_gone):
    script = tmp_path / "parent.py"
    script.write_text(CHILD_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")],
                              stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    reap_pids.append(parent.pid)
    pids = json.loads(parent.stdout.readline())
    reap_pids.extend(pids)
    assert len(pids) == 6 and not any(pid_gone(p) for p in pids)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    parent.stdout.close()
    processes_gone(pids, 20)


def test_a_restarted_compute_recovers_its_usage_and_fails_interrupted_builds(make_lab):
    lab = make_lab(computes=2)
    lab.configure(ram_weight_multiplier=-1.0)     # stack: everything lands on compute1
    keeper = lab.wait(lab.boot("keeper", flavor="m1.medium"))
    assert keeper["OS-EXT-SRV-ATTR:host"] == "compute1"
    lab.set_failure("compute1", crash=1.0)
    interrupted = lab.boot("interrupted")
    assert lab.cluster.children["compute.compute1"].proc.wait(20) == CRASH_EXIT_CODE
    lab.set_failure("compute1", crash=0.0)        # kept in lab.json for the restart
    lab.restart("compute1")
    record = lab.wait(interrupted, timeout=30)
    assert record["status"] == "ERROR"
    assert "interrupted: compute1 restarted" in record["fault"]["message"]
    lab.wait_computes_up(["compute1"])
    # the keeper only: in the restarted process's tracker at once, and in the database once
    # its first report lands (until then the API shows the report from before the crash)
    wait_for_usage(lab, {"compute1": usage_of("m1.medium")}, live=True, timeout=1)
    wait_for_usage(lab, {"compute1": usage_of("m1.medium")})
    assert lab.server(keeper["id"])["status"] == "ACTIVE"
