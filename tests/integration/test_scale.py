"""Many compute hosts in one process (``hosts_per_process``): each host is still its own
``compute.HOST`` on the bus, with its own claims, reports and heartbeats; process faults
are refused with a clear error because they would hit every host of the process."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from lab.cluster import LabError

pytestmark = pytest.mark.timeout(90)


def test_hosts_of_one_process_are_each_their_own_compute(make_lab, peers):
    lab = make_lab(computes=6, hosts_per_process=3, vcpus=2)
    processes = [c for c in lab.cluster.processes() if c.service == "compute"]
    assert [c.hosts for c in processes] == [("compute1", "compute2", "compute3"),
                                            ("compute4", "compute5", "compute6")]
    table = peers(lab.cluster)
    assert all(table[f"compute.compute{i}"]["alive"] for i in range(1, 7))
    # Every host reports its own node: six hypervisors, six nova-compute services up.
    assert sorted(h["hypervisor_hostname"] for h in lab.hypervisors()) == \
        [f"compute{i}" for i in range(1, 7)]
    # Claims are per host: 12 one-vcpu servers fill six two-vcpu hosts exactly.
    ids = [lab.boot(f"vm{i}", flavor="m1.tiny") for i in range(12)]
    records = [lab.wait(sid) for sid in ids]
    assert all(r["status"] == "ACTIVE" for r in records)
    hosts = [r["OS-EXT-SRV-ATTR:host"] for r in records]
    assert sorted(set(hosts)) == [f"compute{i}" for i in range(1, 7)]
    assert all(hosts.count(h) == 2 for h in set(hosts))
    # Each build was cast to its own host's name and saved by it.
    for record in records:
        host = record["OS-EXT-SRV-ATTR:host"]
        routed = lab.trace().for_instance(record["id"]).routed()
        assert any(e["dst"] == f"compute.{host}" and e["method"] == "build_and_run_instance"
                   for e in routed)
        assert {e["src"] for e in routed if e["method"] == "instance_update"
                and e["kind"] == "call"} == \
            {f"compute.{host}"}
    over = lab.wait(lab.boot("one-too-many", flavor="m1.tiny"))
    assert over["status"] == "ERROR"


def test_process_faults_on_a_shared_host_are_refused(make_lab):
    lab = make_lab(computes=4, hosts_per_process=2)
    for fault in (lab.kill, lab.pause, lab.restart, lab.shutdown):
        with pytest.raises(LabError, match="shares its process .* with 1 other hosts"):
            fault("compute3")
    with pytest.raises(LabError, match="a crash would end them all"):
        lab.set_failure("compute3", crash=0.5)
    assert lab.failures("compute3")["crash"] == 0.0     # the refusal wrote nothing
    assert lab.set_failure("compute3", fatal=1.0)["fatal"] == 1.0
    # A compute added while running gets its own process: it can be killed.
    added = lab.add_compute()
    lab.kill(added)
    assert not lab.is_up(f"compute.{added}")


def test_a_shared_process_stops_all_its_hosts_at_once(make_lab, pid_gone, wait_until):
    lab = make_lab(computes=40, hosts_per_process=20)
    shared = lab.cluster.children["compute.compute21"]
    assert shared is lab.cluster.children["compute.compute40"] and len(shared.hosts) == 20
    os.kill(shared.pid, signal.SIGTERM)     # it used to hang on a swallowed cancel
    wait_until(lambda: pid_gone(shared.pid), 10, "the shared process to exit")
    log = (Path(lab.run_dir) / "logs" / "compute.compute21.log").read_text()
    assert "compute stopped: SIGTERM" in log
    gone = {f"compute.compute{i}" for i in range(21, 41)}
    wait_until(lambda: not any(p["alive"] for p in lab.bus().control("peers")
                               if p["identity"] in gone), 20, "the bus to see them gone")
    assert lab.is_up("compute.compute1")


def test_conductor_workers_share_the_conductor_topic(make_lab, peers):
    lab = make_lab(computes=2, conductor_workers=2)
    table = peers(lab.cluster)
    assert table["conductor.conductor1"]["alive"] and table["conductor.conductor2"]["alive"]
    ids = [lab.boot(f"vm{i}", flavor="m1.tiny") for i in range(6)]
    assert all(lab.wait(sid)["status"] == "ACTIVE" for sid in ids)
    routed = lab.trace().routed()
    builds = [e["dst"] for e in routed if e["method"] == "build_instances"]
    assert sorted(set(builds)) == ["conductor.conductor1", "conductor.conductor2"]
    # the computes' database-proxy calls go to either worker too
    saves = {e["dst"] for e in routed if e["method"] == "instance_update"
             and e["kind"] == "call"}
    assert saves == {"conductor.conductor1", "conductor.conductor2"}
