"""Resize and cold migrate with real processes: who tells whom (conductor flow, the
conductor making every hop, the seed's legacy flow), the migration record, where the
instance ends and what each hypervisor holds after every step, reschedules, roll-backs
and the API's refusals."""
from __future__ import annotations

import pytest

from lab.api_client import ApiError
from lab.dashboard.model import DashboardModel
from lab.testing import usage_of, wait_for_usage
from lab.trace import short
from orchestrator.conductor.rpcapi import DB_PROXY_METHODS

pytestmark = pytest.mark.timeout(60)

HOST = "OS-EXT-SRV-ATTR:host"
VARIANTS = {"conductor": {}, "via_conductor": {"resize_via_conductor": True},
            "legacy": {"flow": "legacy"}, "alternates": {"alternates": True}}


def wait_usage(lab, expected: dict[str, tuple[str, ...]], timeout: float = 10.0,
               live: bool = False) -> None:
    """Until each host listed holds exactly these flavors' claims."""
    wait_for_usage(lab, {host: usage_of(*flavors) for host, flavors in expected.items()},
                   live=live, timeout=timeout)


def hops(lab, since: int, uuid: str) -> list[str]:
    """The workflow messages (casts and calls, not the DB proxy) about one instance, as
    ``"cast api>conductor migrate_server 1"`` (kind src>dst method attempt)."""
    events = lab.trace(since=since).routed().where(instance=uuid, kind=("cast", "call"))
    return [f"{e['kind']} {short(e['src'])}>{short(e['dst'])} {e['method']} {e['attempt']}"
            for e in events if e["method"] not in DB_PROXY_METHODS]


def metrics_agree(lab, reschedules: int) -> None:
    """The dashboard's counters and the trace's summary, over the lab's whole trace (a
    build, a move and its reschedule), are the same numbers (lab.metrics)."""
    trace = lab.trace()
    model = DashboardModel(lab.service_names())
    model.ingest(trace.events)
    c, s = model.counters(), trace.summary()
    assert (c["reschedules"], c["builds_started"], c["messages_per_build"]) == \
        (s["reschedules"], s["builds"], s["messages_per_build"])
    assert (s["reschedules"], s["builds"]) == (reschedules, 1)


def disable(lab, host: str) -> None:
    lab.api.request("PUT", "/os-services/disable", {"host": host, "binary": "nova-compute"})


def boot_on_compute1(lab) -> str:
    server = lab.boot("vm")
    assert lab.wait(server)[HOST] == "compute1"      # empty hosts tie: first by name
    return server


SUCCESS = {   # compute1 -> compute2, attempt 1
    "conductor": ["cast api>conductor migrate_server 1",
                  "call conductor>scheduler select_destinations 1",
                  "cast conductor>compute2 prep_resize 1",
                  "cast compute2>compute1 resize_instance 1",
                  "cast compute1>compute2 finish_resize 1"],
    "via_conductor": ["cast api>conductor migrate_server 1",
                      "call conductor>scheduler select_destinations 1",
                      "call conductor>compute2 prep_resize 1",
                      "call conductor>compute1 resize_instance 1",
                      "call conductor>compute2 finish_resize 1"],
    "legacy": ["cast api>scheduler prep_resize 1", "cast scheduler>compute2 prep_resize 1",
               "cast compute2>compute1 resize_instance 1",
               "cast compute1>compute2 finish_resize 1"],
}
MOVE_TO_3 = ["cast compute3>compute1 resize_instance 2",
             "cast compute1>compute3 finish_resize 2"]
RESCHEDULED = {   # compute2 fails prep_resize: compute1 -> compute3 on attempt 2
    # as in Nova, the failed destination *calls* the conductor and waits for the answer
    "conductor": [*SUCCESS["conductor"][:3], "call compute2>conductor migrate_server 2",
                  "call conductor>scheduler select_destinations 2",
                  "cast conductor>compute3 prep_resize 2", *MOVE_TO_3],
    "via_conductor": [*SUCCESS["via_conductor"][:3],
                      "call conductor>scheduler select_destinations 2",
                      "call conductor>compute3 prep_resize 2",
                      "call conductor>compute1 resize_instance 2",
                      "call conductor>compute3 finish_resize 2"],
    "legacy": [*SUCCESS["legacy"][:2], "cast compute2>scheduler prep_resize 2",
               "cast scheduler>compute3 prep_resize 2", *MOVE_TO_3],
    # alternates: the retry takes the next host of the first answer, no second call
    "alternates": [*SUCCESS["conductor"][:3], "call compute2>conductor migrate_server 2",
                   "cast conductor>compute3 prep_resize 2", *MOVE_TO_3],
}


@pytest.mark.parametrize("variant", list(SUCCESS))
def test_migrate_then_confirm(make_lab, variant):
    lab = make_lab()
    lab.configure(**VARIANTS[variant])
    server = boot_on_compute1(lab)
    mark = lab.mark()
    assert lab.migrate(server) == 202
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("VERIFY_RESIZE", "compute2")
    assert record["flavor"]["original_name"] == "m1.small"
    assert [(m["status"], m["migration_type"], m["source_compute"], m["dest_compute"])
            for m in lab.migrations(server)] == [("finished", "migration", "compute1",
                                                  "compute2")]
    assert hops(lab, mark, server) == SUCCESS[variant]
    if variant == "via_conductor":    # no compute ever talks to another
        assert not lab.trace(since=mark).where(src="compute", dst="compute")
    # the source keeps its claim until the user confirms
    wait_usage(lab, {"compute1": ("m1.small",), "compute2": ("m1.small",), "compute3": ()})
    mark = lab.mark()
    assert lab.confirm_resize(server) == 204
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("ACTIVE", "compute2")
    assert lab.migrations(server)[0]["status"] == "confirmed"
    assert hops(lab, mark, server) == ["cast api>compute1 confirm_resize 0"]
    wait_usage(lab, {"compute1": (), "compute2": ("m1.small",), "compute3": ()})


@pytest.mark.parametrize("variant", list(RESCHEDULED))
def test_failing_destination_is_rescheduled(make_lab, variant):
    lab = make_lab()
    lab.configure(**VARIANTS[variant])
    server = boot_on_compute1(lab)
    lab.set_failure("compute2", reschedule=1.0)   # the scheduler's first pick
    mark = lab.mark()
    lab.migrate(server)
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("VERIFY_RESIZE", "compute3")
    assert record["OS-EXT-LAB:num_attempts"] == 2
    assert hops(lab, mark, server) == RESCHEDULED[variant]
    if variant == "via_conductor":    # no compute ever talks to another
        assert not lab.trace(since=mark).where(src="compute", dst="compute")
    assert [(m["status"], m["dest_compute"]) for m in lab.migrations(server)] == \
        [("finished", "compute3")]
    wait_usage(lab, {"compute1": ("m1.small",), "compute2": (), "compute3": ("m1.small",)})
    # a compute's hand-back is a reschedule; via the conductor, no compute hands back
    metrics_agree(lab, reschedules=0 if variant == "via_conductor" else 1)


@pytest.mark.parametrize("answer", ["confirm", "revert"])
def test_resize_to_medium_then_confirm_or_revert(make_lab, answer):
    lab = make_lab()
    server = boot_on_compute1(lab)
    assert lab.resize(server, "m1.medium") == 202
    record = lab.wait(server)
    assert (record["status"], record[HOST], record["flavor"]["original_name"]) == \
        ("VERIFY_RESIZE", "compute2", "m1.medium")
    [migration] = lab.migrations(server)
    assert (migration["migration_type"], migration["status"]) == ("resize", "finished")
    assert (migration["old_instance_type_id"], migration["new_instance_type_id"]) == (2, 3)
    wait_usage(lab, {"compute1": ("m1.small",), "compute2": ("m1.medium",), "compute3": ()})
    mark = lab.mark()
    if answer == "confirm":
        for host in ("compute1", "compute2"):   # each rebuilds its claims from the db
            lab.restart(host)
        wait_usage(lab, {"compute1": ("m1.small",), "compute2": ("m1.medium",)}, live=True)
        lab.confirm_resize(server)
        after = ("ACTIVE", "compute2", "m1.medium", "confirmed")
        usage = {"compute1": (), "compute2": ("m1.medium",), "compute3": ()}
        messages = ["cast api>compute1 confirm_resize 0"]
    else:
        assert lab.revert_resize(server) == 202
        after = ("ACTIVE", "compute1", "m1.small", "reverted")
        usage = {"compute1": ("m1.small",), "compute2": (), "compute3": ()}
        messages = ["cast api>compute2 revert_resize 0",
                    "cast compute2>compute1 finish_revert_resize 0"]
    record = lab.wait(server)
    assert (record["status"], record[HOST], record["flavor"]["original_name"],
            lab.migrations(server)[0]["status"]) == after
    assert hops(lab, mark, server) == messages
    wait_usage(lab, usage)
    wait_usage(lab, usage, live=True)


def test_a_migration_with_nowhere_to_go_is_rolled_back(make_lab):
    """The API asked, the scheduler found nothing (compute2 disabled): nothing moved, the
    instance stays ACTIVE where it was, with a fault saying why."""
    lab = make_lab(computes=2)
    server = boot_on_compute1(lab)
    disable(lab, "compute2")
    mark = lab.mark()
    lab.migrate(server)
    record = lab.wait(server)
    assert (record["status"], record[HOST], record["flavor"]["original_name"]) == \
        ("ACTIVE", "compute1", "m1.small")
    message = record["OS-EXT-LAB:last_fault"]["message"]
    assert message.startswith("NoValidHost") and "compute2: ComputeFilter" in message
    assert "fault" not in record                     # ACTIVE: no Nova fault shown
    assert [m["status"] for m in lab.migrations(server)] == ["error"]
    assert not [h for h in hops(lab, mark, server) if "prep_resize" in h]
    wait_usage(lab, {"compute1": ("m1.small",), "compute2": ()})


def test_a_destination_whose_reschedule_fails_writes_its_error(make_lab):
    """compute2..4 all fail prep_resize: each calls the conductor back; the third call is
    answered NoValidHost (max_attempts 3), and that destination reports its own error:
    ERROR on the source, which keeps its room (Nova's _reschedule_resize_or_reraise)."""
    lab = make_lab(computes=4)
    server = boot_on_compute1(lab)
    for host in ("compute2", "compute3", "compute4"):
        lab.set_failure(host, reschedule=1.0)
    mark = lab.mark()
    lab.migrate(server)
    record = lab.wait(server)
    assert (record["status"], record[HOST], record["flavor"]["original_name"]) == \
        ("ERROR", "compute1", "m1.small")
    message = record["fault"]["message"]
    assert message.startswith("MigrationError: RescheduledException") and \
        "rescheduling failed: NoValidHost" in message and "max scheduling attempts 3" \
        in message, message
    assert [m["status"] for m in lab.migrations(server)] == ["error"]
    path = hops(lab, mark, server)
    assert [h.split()[1] for h in path if "prep_resize" in h] == [
        "conductor>compute2", "conductor>compute3", "conductor>compute4"]
    assert [h for h in path if "migrate_server" in h] == [
        "cast api>conductor migrate_server 1", "call compute2>conductor migrate_server 2",
        "call compute3>conductor migrate_server 3", "call compute4>conductor migrate_server 4"]
    errors = lab.trace(since=mark).routed().where(kind="reply", method="migrate_server",
                                                  dst="compute.compute4")
    assert len(errors) == 1
    wait_usage(lab, {"compute1": ("m1.small",), "compute2": (), "compute3": (),
                     "compute4": ()})
    lab.restart("compute1")            # the ERROR of a failed move keeps its room
    wait_usage(lab, {"compute1": ("m1.small",)}, live=True)


def test_api_refusals_change_nothing(make_lab):
    lab = make_lab(computes=2)
    server = boot_on_compute1(lab)

    def refused(body) -> int:
        with pytest.raises(ApiError) as err:
            lab.action(server, body)
        return err.value.status

    assert refused({"resize": {"flavorRef": "m1.small"}}) == 400     # same flavor
    assert refused({"resize": {"flavorRef": "m1.huge"}}) == 400      # unknown flavor
    assert refused({"resize": {}}) == 400
    assert refused({"confirmResize": None}) == 409                   # nothing to confirm
    assert refused({"revertResize": None}) == 409
    assert refused({"shelve": None}) == 400                          # unknown action
    assert refused({"migrate": None, "resize": {"flavorRef": "m1.tiny"}}) == 400
    assert lab.migrations(server) == []
    lab.pause("conductor")           # the migration stays at resize_prep meanwhile
    try:
        assert lab.migrate(server) == 202
        assert lab.server(server)["OS-EXT-STS:task_state"] == "resize_prep"
        assert refused({"migrate": None}) == 409
        assert refused({"resize": {"flavorRef": "m1.medium"}}) == 409
        with pytest.raises(ApiError) as err:
            lab.delete(server)
        assert err.value.status == 409
    finally:
        lab.resume("conductor")
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("VERIFY_RESIZE", "compute2")
    assert [m["status"] for m in lab.migrations(server)] == ["finished"]


def test_deleting_a_resized_server_frees_both_hosts(make_lab):
    lab = make_lab(computes=2)
    server = boot_on_compute1(lab)
    lab.resize(server, "m1.medium")
    assert lab.wait(server)["status"] == "VERIFY_RESIZE"
    wait_usage(lab, {"compute1": ("m1.small",), "compute2": ("m1.medium",)})
    mark = lab.mark()
    lab.delete(server)
    assert lab.wait(server)["status"] == "DELETED"
    assert lab.migrations(server)[0]["status"] == "confirmed"
    # as Nova: the API calls the source's confirm and waits, then casts the delete
    assert hops(lab, mark, server) == ["call api>compute1 confirm_resize 0",
                                       "cast api>compute2 terminate_instance 0"]
    wait_usage(lab, {"compute1": (), "compute2": ()})


def test_a_destination_restarted_after_prep_resize_keeps_its_claim(make_lab):
    """The destination claims in prep_resize while the migration is still
    ``pre-migrating``; if it restarts before the source moves the migration on (here the
    source hangs), it must rebuild that claim, or the instance ends up running there
    uncounted."""
    lab = make_lab(computes=2)
    server = boot_on_compute1(lab)
    lab.pause("compute1")                         # resize_instance waits for the source
    try:
        lab.resize(server, "m1.medium")
        wait_usage(lab, {"compute2": ("m1.medium",)})          # prep_resize claimed
        assert lab.migrations(server)[0]["status"] == "pre-migrating"
        lab.restart("compute2")
    finally:
        lab.resume("compute1")
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("VERIFY_RESIZE", "compute2")
    wait_usage(lab, {"compute1": ("m1.small",), "compute2": ("m1.medium",)}, timeout=5,
               live=True)   # compute2 runs the instance: it must count it


@pytest.mark.parametrize("variant", ["conductor", "via_conductor", "legacy"])
@pytest.mark.parametrize("host, step", [("compute1", "resize_instance"),
                                        ("compute2", "finish_resize")])
def test_a_step_after_prep_resize_fails_for_good(make_lab, variant, host, step):
    """``fatal`` in a later step: nothing reschedules it; ERROR where the instance still is
    (compute1), the migration ``error``, the destination's claim freed. In the seed's flow
    the failing compute does that itself; orchestrated, the conductor does."""
    lab = make_lab()
    lab.configure(**VARIANTS[variant])
    server = boot_on_compute1(lab)
    # hold the step at the bus until its host is set to fail: prep_resize on compute2
    # must succeed first (there, fatal would be rescheduled)
    lab.add_fault(dst=f"compute.{host}", method=step, hold=True)
    mark = lab.mark()
    lab.migrate(server)
    lab.tap.wait_for(lambda e: e["method"] == step and e["reason"] == "held", since=mark,
                     timeout=10)
    lab.set_failure(host, fatal=1.0)
    lab.clear_faults()
    record = lab.wait(server)
    assert (record["status"], record[HOST]) == ("ERROR", "compute1")
    assert record["fault"]["message"] == (f"MigrationError: ResizeError: Resize error: "
                                          f"injected failure in {step} on {host}")
    assert [(m["status"], m["dest_compute"]) for m in lab.migrations(server)] == \
        [("error", "compute2")]
    events = {(e["event"], e["result"]) for a in lab.actions(server) for e in a["events"]}
    assert (f"compute_{step}", "Error") in events
    # no reschedule; the destination is told to free its claim, unless it failed itself
    done = SUCCESS[variant][:SUCCESS[variant].index(
        next(h for h in SUCCESS[variant] if h.split()[2] == step)) + 1]
    if variant == "via_conductor":    # the conductor got the error and cleaned up
        done = [*done, "cast conductor>compute2 terminate_instance 1"]
        assert not lab.trace(since=mark).where(src="compute", dst="compute")
    elif step == "resize_instance":   # the source tells the destination itself
        done = [*done, "cast compute1>compute2 terminate_instance 1"]
    if done[-1].endswith("terminate_instance 1"):   # cast once the ERROR is written
        lab.tap.wait_for(lambda e: e["method"] == "terminate_instance"
                         and e["phase"] == "routed", since=mark, timeout=10)
    assert hops(lab, mark, server) == done
    wait_usage(lab, {"compute1": ("m1.small",), "compute2": (), "compute3": ()})
    lab.set_failure(host, fatal=0.0)
    for restarted in ("compute1", "compute2"):   # what each holds survives a restart
        lab.restart(restarted)
    wait_usage(lab, {"compute1": ("m1.small",), "compute2": ()}, live=True)
    lab.delete(server)
    wait_usage(lab, {"compute1": (), "compute2": (), "compute3": ()})
