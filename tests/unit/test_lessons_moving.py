"""Unit tests for lab.lessons.moving (lesson 08's helpers): resize, evacuate and upgrade
paths read from hand-built trace events in the bus's schema, the API's records, and
lab.testing.FakeLab (extended with what these helpers read): no processes."""
from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from lab.lessons import moving
from lab.lessons.moving import (RESIZE_STEPS, backports, compute_to_compute, fields,
                                hosts_tried, instance_object, last_fault_type,
                                migration_table, path_table, primitive_line,
                                hand_backs, resize_path, step_senders, steer, usage,
                                wait_down, wait_migration, wait_report,
                                wait_trace, wait_usage)
from lab.testing import FakeLab
from lab.trace import Trace
from orchestrator.messaging import protocol
from orchestrator.objects import IncompatibleObjectVersion, Instance, backport

_seq = itertools.count(1)
U1, U2 = "uuid-1", "uuid-2"
API, COND, SCHED = "api.api", "conductor.conductor1", "scheduler.scheduler1"
C1, C2, C3 = "compute.compute1", "compute.compute2", "compute.compute3"


def ev(method, src, dst, kind="cast", phase="routed", uuid=U1, attempt=1):
    env = protocol.envelope(kind, src, dst.partition(".")[0], method, ctx={
        "request_id": "req-1", "instance_uuid": uuid, "attempt": attempt})
    return protocol.trace_event(next(_seq), env, phase, dst, 100, "", ts=100.0)


def call(method, src, dst, uuid=U1, attempt=1):
    """A call and its reply, both delivered."""
    return [ev(method, src, dst, "call", uuid=uuid, attempt=attempt),
            ev(method, dst, src, "reply", uuid=uuid, attempt=attempt)]


def proxy(src, uuid=U1):
    """Database-proxy noise a compute makes during any step."""
    return [*call("instance_update", src, COND, uuid), *call("compute_node_update", src, COND,
                                                             uuid)]


def schedule(attempt=1, uuid=U1):
    return call("select_destinations", COND, SCHED, uuid, attempt)


def seed_migration(uuid=U1, dest=C2, source=C1):
    """The seed's resize: conductor -> dest, then compute to compute."""
    return [ev("migrate_server", API, COND, uuid=uuid), *schedule(uuid=uuid),
            ev("prep_resize", COND, dest, uuid=uuid), *proxy(dest, uuid),
            ev("resize_instance", dest, source, uuid=uuid), *proxy(source, uuid),
            ev("finish_resize", source, dest, uuid=uuid), *proxy(dest, uuid)]


def via_conductor(uuid=U1, dest=C1, source=C2):
    events = [ev("migrate_server", API, COND, uuid=uuid), *schedule(uuid=uuid)]
    for host, step in ((dest, "prep_resize"), (source, "resize_instance"),
                       (dest, "finish_resize")):
        events += call(step, COND, host, uuid)
    return events


def lab_traffic():
    return [ev("set_config", "lab.client1", COND, "call", uuid=""),
            ev("set_failure", "lab.client1", C2, "call", uuid="")]


# -- the trace ---------------------------------------------------------------------------------
def test_resize_path_keeps_the_workflow_and_leaves_out_proxy_lab_and_pacing():
    events = seed_migration()
    events.insert(1, ev("select_destinations", COND, SCHED, "call", phase="delayed"))
    trace = Trace([*lab_traffic(), *events, *seed_migration(uuid=U2, dest=C3)])
    assert resize_path(trace, U1) == [
        ("api", "conductor", "cast", "migrate_server"),
        ("conductor", "scheduler", "call", "select_destinations"),
        ("scheduler", "conductor", "reply", "select_destinations"),
        ("conductor", "compute2", "cast", "prep_resize"),
        ("compute2", "compute1", "cast", "resize_instance"),
        ("compute1", "compute2", "cast", "finish_resize")]
    assert resize_path(trace, "nobody") == []


def test_resize_path_does_not_show_a_dropped_message():
    trace = Trace([ev("migrate_server", API, COND), ev("prep_resize", COND, C2,
                                                      phase="dropped")])
    assert resize_path(trace, U1) == [("api", "conductor", "cast", "migrate_server")]


def test_path_table_aligns_the_arrows_and_says_when_empty():
    lines = path_table(resize_path(Trace(seed_migration()), U1)).splitlines()
    assert lines[0] == "      api -> conductor  cast   migrate_server"
    assert lines[4] == " compute2 -> compute1   cast   resize_instance"
    assert len({line.index("->") for line in lines}) == 1
    assert all(line == line.rstrip() for line in lines)
    assert path_table([]) == "(no messages)"


def test_compute_to_compute_counts_only_messages_between_computes():
    assert compute_to_compute(Trace(seed_migration())) == 2
    assert compute_to_compute(Trace(via_conductor())) == 0
    # a dropped hop did not happen; the lab talking to a compute is not a compute
    dropped = ev("resize_instance", C2, C1, phase="dropped")
    assert compute_to_compute(Trace([dropped, *lab_traffic()])) == 0
    two = Trace([*seed_migration(), *seed_migration(uuid=U2, dest=C3, source=C2)])
    assert compute_to_compute(two) == 4


def test_step_senders_says_who_sent_each_step_and_how():
    assert step_senders(Trace(seed_migration()), U1) == {
        "prep_resize": ["conductor cast"], "resize_instance": ["compute2 cast"],
        "finish_resize": ["compute1 cast"]}
    assert step_senders(Trace(via_conductor()), U1) == {
        step: ["conductor call"] for step in RESIZE_STEPS}
    assert step_senders(Trace([]), U1) == {step: [] for step in RESIZE_STEPS}
    assert step_senders(Trace(seed_migration()), U1, ["revert_resize"]) == {
        "revert_resize": []}


def rescheduled():
    """compute2 fails prep_resize and hands it back; compute3 takes it."""
    return [ev("migrate_server", API, COND), *schedule(1),
            ev("prep_resize", COND, C2), *proxy(C2),
            ev("migrate_server", C2, COND, kind="call", attempt=2), *schedule(2),
            ev("prep_resize", COND, C3, attempt=2),
            ev("migrate_server", COND, C2, kind="reply", attempt=2),
            ev("resize_instance", C3, C1, attempt=2), ev("finish_resize", C1, C3, attempt=2)]


def test_hosts_tried_and_hand_backs():
    trace = Trace(rescheduled())
    assert hosts_tried(trace, U1) == ["compute2", "compute3"]
    assert hand_backs(trace, U1) == [("compute2", "call", 2)]      # not its reply
    assert step_senders(trace, U1)["prep_resize"] == ["conductor cast", "conductor cast"]
    # the API's migrate_server is the request, not a reschedule
    assert hand_backs(Trace(seed_migration()), U1) == []
    # orchestrated: prep_resize is a call; its reply is not another try
    assert hosts_tried(Trace(via_conductor()), U1) == ["compute1"]


def test_backports_lists_each_old_computes_call_once():
    build = [ev("build_and_run_instance", COND, "compute.compute4", uuid=U2),
             *call("object_backport_versions", "compute.compute4", COND, U2)]
    other = [ev("build_and_run_instance", COND, C2), *proxy(C2)]
    lost = ev("object_backport_versions", "compute.compute4", COND, "call", "dropped", U1)
    assert backports(Trace([*other, *build, lost])) == [("compute4", U2)]
    assert backports(Trace(other)) == []


# -- the API's records -------------------------------------------------------------------------
def test_last_fault_type_reads_the_fault_of_an_active_server():
    rolled_back = {"status": "ACTIVE", "OS-EXT-LAB:last_fault": {
        "code": 500, "message": "NoValidHost: No valid host was found. (rejected: ...)"}}
    assert last_fault_type(rolled_back) == "NoValidHost"
    assert last_fault_type({"status": "ACTIVE"}) == ""
    assert last_fault_type({"OS-EXT-LAB:last_fault": {"message": "no colon here"}}) == ""


def migration(id_, mtype, status, source, dest, old=2, new=2):
    return {"id": id_, "migration_type": mtype, "status": status, "source_compute": source,
            "dest_compute": dest, "old_instance_type_id": old, "new_instance_type_id": new}


def test_migration_table_oldest_first_with_the_flavor_change():
    newest_first = [migration(3, "evacuation", "done", "compute3", "compute1", 3, 3),
                    migration(2, "resize", "reverted", "compute1", "compute2", 2, 4),
                    migration(1, "migration", "error", "compute1", None)]
    lines = migration_table(newest_first).splitlines()
    assert lines[0].split() == ["id", "type", "status", "source", "dest", "flavor"]
    assert lines[1].split() == ["1", "migration", "error", "compute1", "-", "m1.small"]
    assert lines[2].split() == ["2", "resize", "reverted", "compute1", "compute2", "m1.small",
                                "->", "m1.large"]
    assert lines[3].split() == ["3", "evacuation", "done", "compute3", "compute1", "m1.medium"]
    assert lines[1].index("error") == lines[2].index("reverted") == lines[3].index("done")
    assert migration_table([]).split() == ["id", "type", "status", "source", "dest", "flavor"]


SERVER = {
    "id": "3f0c5e2a-0000-4000-8000-000000000001", "name": "old-1", "status": "ACTIVE",
    "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:task_state": None,
    "OS-EXT-SRV-ATTR:host": "compute4", "OS-EXT-AZ:availability_zone": "nova",
    "OS-SRV-USG:launched_at": "2026-01-02T03:04:05Z", "image": {"id": "cirros"},
    "flavor": {"original_name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20},
}


def test_instance_object_from_a_server_record():
    obj = instance_object(SERVER)
    assert obj.obj_version == Instance.VERSION == "1.2"
    assert (obj.uuid, obj.name, obj.image_ref, obj.flavor, obj.host) == (
        SERVER["id"], "old-1", "cirros", "m1.small", "compute4")
    assert (obj.vcpus, obj.memory_mb, obj.root_gb) == (1, 2048, 20)
    assert obj.launched_at == 1767323045.0 and obj.migration_context is None
    assert obj.summary() == "Instance 1.2 old-1 on compute4 (active)"
    never = instance_object({**SERVER, "OS-SRV-USG:launched_at": None,
                             "OS-EXT-STS:vm_state": "building",
                             "OS-EXT-STS:task_state": "spawning"})
    assert never.launched_at is None and never.summary().endswith("(building/spawning)")


def test_fields_and_primitive_line_before_and_after_a_backport():
    newest = instance_object(SERVER).obj_to_primitive()
    older = backport(newest, "1.0")
    assert fields(newest) == [f.name for f in Instance.FIELDS]
    assert fields(older) == list(Instance.obj_fields_at("1.0"))
    assert set(fields(newest)) - set(fields(older)) == {"availability_zone", "launched_at",
                                                        "migration_context"}
    assert primitive_line(older) == ("Instance 1.0 (10 fields): uuid name image_ref flavor "
                                     "vcpus memory_mb root_gb host vm_state task_state")
    assert primitive_line(newest).startswith("Instance 1.2 (13 fields): uuid ")
    with pytest.raises(IncompatibleObjectVersion):
        Instance.obj_from_primitive(newest, max_version="1.0")
    assert Instance.obj_from_primitive(older, max_version="1.0").host == "compute4"


# -- asking the lab ----------------------------------------------------------------------------
class MovingLab(FakeLab):
    """FakeLab plus what lesson 08's helpers read: successive answers of hypervisors,
    services and migrations, and the API client's request."""

    def __init__(self, nodes=(), services=(), migrations=(), **kwargs):
        super().__init__(**kwargs)
        self.waited = []
        self._nodes = [list(n) for n in nodes]
        self._services = [list(s) for s in services]
        self._migrations = [list(m) for m in migrations]
        self.requests = []
        self.api = SimpleNamespace(request=self._request)
        self.events = []
        self.tap = SimpleNamespace(wait_for=self._wait_for)

    @staticmethod
    def _next(answers):
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def hypervisors(self):
        return self._next(self._nodes) if self._nodes else super().hypervisors()

    def services(self):
        return self._next(self._services)

    def migrations(self, server_id=None):
        return self._next(self._migrations)

    def trace(self, since=0):
        return Trace(e for e in self.events if e["seq"] > since)

    def _wait_for(self, predicate, timeout, since):
        for e in self.events:
            if e["seq"] > since and predicate(e):
                return e
        raise TimeoutError("no matching trace event")

    def wait(self, server_id, timeout=30.0):
        self.waited.append((server_id, timeout))
        return {"id": server_id, "status": "VERIFY_RESIZE"}

    def _request(self, method, path, body=None):
        self.requests.append((method, path, body))
        return SimpleNamespace(status=200, body={})


def nodes(**used):
    return [{"hypervisor_hostname": h, "vcpus_used": n} for h, n in used.items()]


def test_usage_reads_vcpus_used_per_host_in_host_order():
    lab = MovingLab(nodes=[nodes(compute2=1, compute1=0, compute3=4)])
    assert usage(lab) == {"compute1": 0, "compute2": 1, "compute3": 4}
    assert list(usage(lab)) == ["compute1", "compute2", "compute3"]
    assert usage(FakeLab()) == {"compute1": 0, "compute2": 0, "compute3": 0}


def test_wait_usage_polls_until_the_report_lands():
    lab = MovingLab(nodes=[nodes(compute1=1, compute2=1), nodes(compute1=1, compute2=1),
                           nodes(compute1=0, compute2=1)])
    assert wait_usage(lab, {"compute1": 0, "compute2": 1}, timeout=5, every=0) == {
        "compute1": 0, "compute2": 1}
    assert lab._nodes == [nodes(compute1=0, compute2=1)]


def test_wait_usage_returns_what_it_saw_after_the_deadline():
    lab = MovingLab(nodes=[nodes(compute1=1, compute2=1)])
    assert wait_usage(lab, {"compute1": 0, "compute2": 1}, timeout=0.05, every=0.01) == {
        "compute1": 1, "compute2": 1}


def service(host, state):
    return {"binary": "nova-compute", "host": host, "state": state}


def test_wait_down_waits_for_the_api_to_report_the_host_down():
    up = [service("compute1", "up"), service("compute3", "up")]
    down = [service("compute1", "up"), service("compute3", "down")]
    lab = MovingLab(services=[up, up, down])
    assert wait_down(lab, "compute3", timeout=5) >= 0
    assert moving.compute_state(lab, "compute1") == "up"
    with pytest.raises(TimeoutError, match="compute1 down"):
        wait_down(MovingLab(services=[up]), "compute1", timeout=0.05)


def test_wait_migration_returns_the_newest_record_once_it_has_the_status():
    done = [migration(2, "evacuation", "done", "compute3", "compute1"),
            migration(1, "migration", "confirmed", "compute1", "compute3")]
    completed = [{**done[0], "status": "completed"}, done[1]]
    lab = MovingLab(migrations=[[], done, completed])
    record = wait_migration(lab, "vm1", "completed", timeout=5, every=0)
    assert (record["id"], record["status"]) == (2, "completed")
    with pytest.raises(TimeoutError, match="migration of vm1 completed"):
        wait_migration(MovingLab(migrations=[done]), "vm1", "completed", timeout=0.05)


def test_steer_disables_every_other_compute_and_none_enables_all():
    lab = MovingLab(computes=3)
    assert steer(lab, "compute2") == ["compute1", "compute3"]
    assert lab.requests == [
        ("PUT", "/os-services/disable", {"host": "compute1", "binary": "nova-compute"}),
        ("PUT", "/os-services/enable", {"host": "compute2", "binary": "nova-compute"}),
        ("PUT", "/os-services/disable", {"host": "compute3", "binary": "nova-compute"})]
    lab.requests.clear()
    assert steer(lab) == []
    assert [path for _, path, _ in lab.requests] == ["/os-services/enable"] * 3


def test_steer_knows_computes_added_while_running():
    lab = MovingLab(computes=3, extra_computes=("compute4",))
    assert steer(lab, "compute4") == ["compute1", "compute2", "compute3"]
    assert steer(lab, "compute1", "compute4") == ["compute2", "compute3"]


def test_wait_trace_returns_the_trace_once_the_message_was_delivered():
    lab = MovingLab()
    lab.events = via_conductor()
    mark = lab.events[0]["seq"]
    trace = wait_trace(lab, mark, method="finish_resize", kind="reply")
    assert len(trace) == len(lab.events) - 1 and trace[-1]["method"] == "finish_resize"
    lab.events = via_conductor()[:-1] + [ev("finish_resize", C1, COND, "reply", "queued")]
    with pytest.raises(TimeoutError):
        wait_trace(lab, 0, method="finish_resize", kind="reply")


def test_wait_report_waits_for_the_conductors_answer_to_that_computes_report():
    lab = MovingLab()
    lab.events = [*proxy(C1), ev("compute_node_update", C3, COND, "call", uuid="")]
    mark = 0
    with pytest.raises(TimeoutError):      # compute3 asked, the database has not answered
        wait_report(lab, "compute3", mark, timeout=0.05)
    lab.events.append(ev("compute_node_update", COND, C3, "reply", uuid=""))
    wait_report(lab, "compute3", mark, timeout=0.05)
    with pytest.raises(TimeoutError):      # reports from before the mark do not count
        wait_report(lab, "compute3", lab.events[-1]["seq"], timeout=0.05)


def test_image_name_reads_the_glance_id_the_api_shows():
    from orchestrator.config import image_id
    assert moving.image_name({"image": {"id": image_id("ubuntu")}}) == "ubuntu"
    assert moving.image_name({"image": {"id": "not-ours"}}) == "not-ours"
    assert moving.image_name({}) == ""


def test_a_legacy_hand_back_is_a_cast_to_the_scheduler():
    trace = Trace([ev("prep_resize", API, SCHED), ev("prep_resize", SCHED, C2),
                   ev("prep_resize", C2, SCHED, attempt=2),
                   ev("prep_resize", SCHED, C3, attempt=2)])
    assert hand_backs(trace, U1) == [("compute2", "cast", 2)]


def test_only_the_requests_made_in_the_trace_count():
    """A boot's last word (its compute's fanout after the ACTIVE save) may land after the
    mark taken for the next request: it is not part of that request's path."""
    tail = ev("update_instance_info", C1, SCHED, kind="fanout")
    tail["request_id"] = "req-boot"
    trace = Trace([tail, *seed_migration()])
    assert resize_path(trace, U1) == resize_path(Trace(seed_migration()), U1)
    assert resize_path(trace, U1)[0] == ("api", "conductor", "cast", "migrate_server")
