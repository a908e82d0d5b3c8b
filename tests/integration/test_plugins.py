"""A student's own scheduler class, plugged into a running lab (lesson 07's machinery)."""
from __future__ import annotations

import pytest

from orchestrator.scheduler.filters.base import BaseFilter
from orchestrator.scheduler.weighers.base import BaseWeigher

pytestmark = pytest.mark.timeout(90)


class NotCompute1(BaseFilter):
    def host_passes(self, host, spec):
        return host.host != "compute1"


class Packer(BaseWeigher):
    def weigh(self, host, spec):
        return float(host.memory_mb_used)


def test_a_plugged_in_filter_and_weigher_steer_builds_and_survive_a_restart(make_lab):
    lab = make_lab(computes=3)
    assert lab.plug_in(NotCompute1) == "filter"
    hosts = [r["OS-EXT-SRV-ATTR:host"] for r in lab.wait([lab.boot(f"f{i}") for i in range(3)])]
    assert "compute1" not in hosts
    decisions = lab.bus().call("scheduler", "last_decisions")
    assert decisions[0]["rejected"] == {"compute1": "NotCompute1"}
    lab.configure(weighers=[])
    assert lab.plug_in(Packer) == "weigher"
    lab.restart("scheduler")                       # plugins are reloaded from the run dir
    placed = [r["OS-EXT-SRV-ATTR:host"] for r in lab.wait([lab.boot(f"p{i}") for i in range(3)])]
    assert len(set(placed)) == 1 and placed[0] != "compute1"
    lab.unplug("NotCompute1")
    assert "NotCompute1" not in lab.config.filters


def test_a_broken_plugin_is_a_clear_error(make_lab, tmp_path):
    from orchestrator.messaging import RemoteError
    lab = make_lab(computes=2)
    (lab.run_dir / "plugins").mkdir()
    (lab.run_dir / "plugins" / "Broken.py").write_text("class Broken(:\n")
    with pytest.raises(RemoteError) as err:
        lab.bus().call("scheduler", "load_plugin", name="Broken")
    assert err.value.exc_type == "PluginError" and "SyntaxError" in err.value.message
    assert lab.wait(lab.boot("still-works"))["status"] == "ACTIVE"
