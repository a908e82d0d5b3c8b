"""The class's keys, tickets and rules (orchestrator/messaging/curve.py), the ZAP
handler's CURVE answers, the bus's gate for students (auth.Gate), and the instructor's
and student's helpers that need no running lab."""
from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
import zmq
from zmq.utils import z85

from lab import classroom
from lab.cli_class import _obey, guess_address
from lab.cluster import LabError
from orchestrator.compute.rpcapi import SENT_BY_COMPUTES
from orchestrator.config import LabConfig
from orchestrator.messaging import auth, curve, protocol
from orchestrator.messaging import door as door_module
from orchestrator.messaging import door_state
from orchestrator.messaging.door import Door


@pytest.fixture
def keys(tmp_path) -> Path:
    curve.write_keys(tmp_path / "k", ["alice", "bob"], "192.0.2.7", 7755)
    return tmp_path / "k"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_keys_directory_holds_the_server_pair_a_public_key_and_a_ticket_per_student(keys):
    info = curve.read_class(keys)
    assert info == {"address": "192.0.2.7", "port": 7755, "students": ["alice", "bob"]}
    assert sorted(p.name for p in (keys / "students").iterdir()) == ["alice.key", "bob.key"]
    assert not (keys / "private").exists(), "no student's secret key left beside the tickets"
    for private in (keys, keys / "tickets", keys / "server.key_secret", keys / "view-token",
                    keys / "tickets" / "alice.ticket"):
        assert _mode(private) & 0o077 == 0, f"{private} is readable by others"
    ticket = curve.load_ticket(keys / "tickets" / "alice.ticket")
    assert ticket["bus"] == "tcp://192.0.2.7:7755"
    assert ticket["trace"] == "tcp://192.0.2.7:7756"
    view = curve.view_token(keys, "alice")
    assert ticket["dashboard"] == f"http://192.0.2.7:7757/dashboard?token={view}"
    assert view != curve.view_token(keys, "bob")
    server_public, _ = zmq.auth.load_certificate(keys / "server.key")
    assert ticket["server_key"] == server_public.decode()
    # the ticket's pair is a real pair: its public key is the registry's
    public, _ = zmq.auth.load_certificate(keys / "students" / "alice.key")
    assert ticket["public_key"] == public.decode()
    assert zmq.curve_public(ticket["secret_key"].encode()) == public
    # each student's dashboard token is theirs: revoking one closes only that link
    tokens = curve.ViewTokens(keys)
    assert tokens.current() == {view, curve.view_token(keys, "bob")}
    curve.revoke(keys, "alice")
    assert tokens.current() == {curve.view_token(keys, "bob")}


def test_keys_are_never_overwritten_and_names_are_checked(keys, tmp_path):
    before = (keys / "tickets" / "alice.ticket").read_text()
    with pytest.raises(curve.KeysError, match="already holds a class's keys"):
        curve.write_keys(keys, ["carol"], "192.0.2.7", 7755)
    with pytest.raises(curve.KeysError, match="already has keys"):
        curve.add_student(keys, "alice")
    assert (keys / "tickets" / "alice.ticket").read_text() == before
    assert curve.add_student(keys, "carol").name == "carol.ticket"
    assert curve.read_class(keys)["students"] == ["alice", "bob", "carol"]
    for bad in ("Alice", "al_ice", "1st", " , ", "x" * 32, "bob,bob"):
        with pytest.raises(curve.KeysError):
            curve.student_names(1, bad)
    assert curve.student_names(3) == ["student01", "student02", "student03"]
    with pytest.raises(curve.KeysError, match="port"):
        curve.write_keys(tmp_path / "p", ["a"], "192.0.2.7", 65535)
    with pytest.raises(curve.KeysError, match="not a class's keys directory"):
        curve.read_class(tmp_path)


@pytest.mark.parametrize("content, problem", [
    ("not json", "cannot read the ticket"),
    ("[1, 2]", "missing student, bus"),
    ('{"student": "alice", "bus": "tcp://x:1"}', "missing server_key"),
    ('{"student": "alice", "bus": "tcp://x:1", "server_key": "short", '
     '"public_key": "short", "secret_key": "short"}', "not a 40-character z85 CURVE key"),
])
def test_a_bad_ticket_says_what_is_wrong(tmp_path, content, problem):
    (tmp_path / "t").write_text(content)
    with pytest.raises(curve.KeysError, match=problem):
        curve.load_ticket(tmp_path / "t")


def test_the_registry_admits_students_names_revoked_and_unknown_keys_and_rereads(keys):
    registry = curve.Registry(keys)
    alice = curve.load_ticket(keys / "tickets" / "alice.ticket")
    alice_raw = z85.decode(alice["public_key"].encode())
    assert registry.judge(alice_raw) == ("alice", "")
    stranger, _ = zmq.curve_keypair()
    assert registry.judge(z85.decode(stranger)) == (f"key {stranger.decode()}", "unknown_key")
    assert registry.judge(b"short")[1] == "unknown_key"
    curve.revoke(keys, "alice")
    assert registry.judge(alice_raw) == ("alice", "revoked_key")
    assert registry.revoked == {"alice"}
    curve.revoke(keys, "alice")      # twice: nothing more to do
    with pytest.raises(curve.KeysError, match="no student 'zed'"):
        curve.revoke(keys, "zed")
    curve.reinstate(keys, "alice")
    assert registry.judge(alice_raw) == ("alice", "")
    with pytest.raises(curve.KeysError, match="not revoked"):
        curve.reinstate(keys, "alice")


@pytest.mark.parametrize("name, ok", [
    ("compute.alice_1", True), ("compute.alice_12", True), ("lab.alice_ctl", True),
    ("lab.alice_probe-2", True), ("compute.alice", False), ("compute.alice_x", False),
    ("compute.bob_1", False), ("conductor.alice_1", False), ("compute.alice_1_2", False),
    ("compute.alice_\u0661", False), ("lab.alice_", False), ("", False),
    ("compute.alicex_1", False), ("compute.alice_12345", False),
    ("lab.alice_" + "x" * 25, False), ("compute.alice_" + "1" * 300, False),
])
def test_a_student_may_hold_only_their_own_names(name, ok):
    assert (curve.name_problem("alice", name) == "") is ok


def _zap(domain: bytes, mechanism: bytes, *credentials: bytes) -> list[bytes]:
    return [b"1.0", b"7", domain, b"192.0.2.9", b"", mechanism, *credentials]


def test_the_zap_handler_admits_a_students_key_on_the_class_door_only(keys):
    ctx = zmq.Context()
    try:
        handler = auth.ZapHandler(ctx, "s3cret", curve.Registry(keys))
        alice = curve.load_ticket(keys / "tickets" / "alice.ticket")
        raw = z85.decode(alice["public_key"].encode())
        door = curve.ZAP_DOMAIN_CLASS_BUS.encode()
        reply = handler.answer(_zap(door, b"CURVE", raw))
        assert reply[2:5] == [b"200", b"OK", b"student:alice"]
        stranger, _ = zmq.curve_keypair()
        assert handler.answer(_zap(door, b"CURVE", z85.decode(stranger)))[2:4] == \
            [b"400", b"unknown_key"]
        assert handler.answer(_zap(door, b"PLAIN", b"u", b"s3cret"))[3] == b"no_credentials"
        # a student's key opens nothing but the class's doors
        assert handler.answer(_zap(protocol.ZAP_DOMAIN_BUS.encode(), b"CURVE", raw))[2] == \
            b"400"
        refused = list(handler.refusals)
        assert [(r.claimed, r.reason, r.peer) for r in refused][:2] == [
            (f"key {stranger.decode()}", "unknown_key", "192.0.2.9"),
            ("", "no_credentials", "192.0.2.9")]
        handler.stop()
    finally:
        ctx.term()


class _Frame:
    """A received frame's metadata (what libzmq attaches) and bytes."""

    def __init__(self, user_id: str, data: bytes = b""):
        self.user_id, self.bytes, self.more = user_id, data, False

    def get(self, key: str) -> str:
        return {"User-Id": self.user_id, "Peer-Address": "192.0.2.9"}[key]


def _env(kind: str, src: str, topic: str, method: str, server: str = "", **kw) -> dict:
    return protocol.envelope(kind, src, topic, method, server=server, **kw)


@pytest.fixture
def door(keys, tmp_path):
    """A class's door on its own run directory (its bus need not be there: what it
    would send up queues in its uplinks)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "secret").write_text("s3cret")
    classroom.configure(run, keys, "127.0.0.1")
    section = json.loads((run / "lab.json").read_text())["class"]
    section["port"] = classroom.free_class_port()
    (run / "lab.json").write_text(json.dumps({
        "class": section, "endpoints": {"bus": f"ipc://{run}/bus.sock",
                                        "trace": f"ipc://{run}/trace.sock"}}))
    d = Door(run)
    yield d
    d.close()


def _send(door, rid: bytes, student: str, env: dict) -> None:
    door.admit([rid, _Frame(f"student:{student}", protocol.encode(env))])


def test_the_door_names_a_students_connection_by_its_first_envelope(door):
    rid = b"\x00\x00\x00\x00\x05"
    _send(door, rid, "alice", _env("control", "compute.alice_1", "bus", "register"))
    assert door.names.routes == {"compute.alice_1": rid}
    assert door.door.students == {"compute.alice_1": "alice"}
    assert set(door.uplinks) == {"compute.alice_1"}
    # later frames keep that name: one claiming another is dropped as a bad envelope
    _send(door, rid, "alice", _env("cast", "compute.bob_1", "conductor", "instance_update"))
    assert door.stats["bad.bad_envelope"] == 1
    # bob's name with alice's key, a routing id of the student's choosing, garbage
    _send(door, b"\x00\x00\x00\x00\x06", "alice",
          _env("control", "compute.bob_1", "bus", "register"))
    _send(door, b"compute.alice_1", "alice",
          _env("control", "compute.alice_1", "bus", "register"))
    door.admit([b"\x00\x00\x00\x00\x07", _Frame("student:alice", b"garbage")])
    assert [(r["claimed"], r["reason"]) for r in door.report.refusals] == [
        ("compute.bob_1", "not_your_name"), ("compute.alice_1", "identity_mismatch"),
        ("", "not_your_name")]
    assert set(door.uplinks) == {"compute.alice_1"}, "nothing refused went up"


def test_a_student_holds_at_most_max_names(door):
    for i in range(door_module.MAX_NAMES + 3):
        _send(door, bytes([0, 0, 0, 1, i]), "alice",
              _env("control", f"compute.alice_{i}", "bus", "register"))
    assert len(door.uplinks) == door_module.MAX_NAMES
    reasons = [r["reason"] for r in door.report.refusals]
    assert reasons == ["too_many_names"] * 3
    # a refused connection stays refused: its next frames are counted, not re-refused
    _send(door, bytes([0, 0, 0, 1, door_module.MAX_NAMES]), "alice",
          _env("control", f"compute.alice_{door_module.MAX_NAMES}", "bus", "heartbeat"))
    assert len(door.report.refusals) == 3 and door.stats["refused_frames"] == 1


def test_a_student_answers_only_calls_made_to_them_and_only_to_their_caller(door):
    rid = b"\x00\x00\x00\x00\x05"
    _send(door, rid, "alice", _env("control", "compute.alice_1", "bus", "register"))
    door.mail.pending["compute.alice_1"] = {"m1": "conductor.conductor1"}
    forged = protocol.reply_to(_env("call", "scheduler.scheduler1", "conductor",
                                    "select_destinations"), "compute.alice_1", result={})
    _send(door, rid, "alice", forged)          # a call to someone else: refused
    assert door.stats["bad.not_allowed"] == 1
    wrong_caller = protocol.reply_to(_env("call", "api.api", "compute", "x"),
                                     "compute.alice_1", result={})
    wrong_caller["reply_to"] = "m1"
    _send(door, rid, "alice", wrong_caller)   # the right call, to the wrong caller
    assert door.stats["bad.not_allowed"] == 2
    door.mail.pending["compute.alice_1"] = {"m1": "conductor.conductor1"}
    right = protocol.reply_to(_env("call", "conductor.conductor1", "compute", "x",
                                   msg_id="m1"), "compute.alice_1", result={})
    _send(door, rid, "alice", right)
    assert door.stats["bad.not_allowed"] == 2 and door.mail.pending["compute.alice_1"] == {}


def test_a_student_may_send_what_a_compute_sends_and_drive_only_their_own(door):
    for i, name in enumerate(("compute.alice_1", "lab.alice_ctl")):
        _send(door, bytes([0, 0, 0, 2, i]), "alice", _env("control", name, "bus",
                                                           "register"))
    may = door.door.may_send
    assert may("compute.alice_1", _env("cast", "compute.alice_1", "conductor",
                                       "build_instances"))
    assert may("compute.alice_1", _env("cast", "compute.alice_1", "compute",
                                       "finish_resize", server="bob_1"))
    assert not may("compute.alice_1", _env("call", "compute.alice_1", "scheduler",
                                           "set_config"))
    assert not may("compute.alice_1", _env("cast", "compute.alice_1", "conductor",
                                           "migrate_server"))
    assert not may("compute.alice_1", _env("fanout", "compute.alice_1", "compute",
                                           "set_failure"))
    # a compute speaks for its own host only
    assert may("compute.alice_1", _env("call", "compute.alice_1", "conductor",
                                       "service_update", args={"host": "alice_1"}))
    for method, arg in (("service_update", "host"), ("compute_node_update", "host"),
                        ("update_instance_info", "host_name")):
        topic = "scheduler" if arg == "host_name" else "conductor"
        assert not may("compute.alice_1", _env("call", "compute.alice_1", topic, method,
                                               args={arg: "compute1"})), method
    assert may("lab.alice_ctl", _env("call", "lab.alice_ctl", "compute", "set_failure",
                                     server="alice_1"))
    assert not may("lab.alice_ctl", _env("call", "lab.alice_ctl", "compute", "set_failure",
                                         server="bob_1"))
    assert not may("lab.alice_ctl", _env("cast", "lab.alice_ctl", "conductor",
                                         "build_instances"))
    assert may("lab.alice_ctl", _env("control", "lab.alice_ctl", "bus", "class_config"))
    assert not may("lab.alice_ctl", _env("control", "lab.alice_ctl", "bus", "set_faults"))
    assert may("conductor.conductor1", _env("call", "conductor.conductor1", "compute",
                                            "set_config", server="bob_1"))   # not a student


def test_a_revoked_student_is_cut_off_even_when_the_zap_thread_read_the_revoke_first(
        door, keys):
    sent, report = [], door._send_report

    def record() -> None:
        sent.append({"refusals": list(door.report.refusals),
                     "cut_off": list(door.report.cut_off)})
        report()
    door._send_report = record
    rid = b"\x00\x00\x00\x00\x05"
    _send(door, rid, "alice", _env("control", "compute.alice_1", "bus", "register"))
    _send(door, b"\x00\x00\x00\x00\x06", "bob",
          _env("control", "compute.bob_1", "bus", "register"))
    door.tick()
    assert sent[-1] == {"refusals": [], "cut_off": []}
    curve.revoke(keys, "alice")
    door.door.registry.reload()     # as the ZAP handler would, judging a handshake
    door.tick()
    assert sent[-1] == {"refusals": [], "cut_off": ["compute.alice_1"]}
    assert set(door.uplinks) == {"compute.bob_1"}
    assert door.names.routes == {}, "the class's door reopened: everyone proves again"
    _send(door, rid, "alice", _env("control", "compute.alice_1", "bus", "register"))
    assert door.stats["revoked_frames"] == 1 and set(door.uplinks) == {"compute.bob_1"}


def test_a_revoked_student_who_only_watches_is_cut_off_too(door, keys):
    """No name of theirs spoke since the door last opened: the revoke still re-opens it
    (their trace subscription ends with it) and closes their uplinks."""
    _send(door, b"\x00\x00\x00\x00\x05", "alice",
          _env("control", "compute.alice_1", "bus", "register"))
    door.reopen()                         # as after another student's revoke
    opened = door.router
    curve.revoke(keys, "alice")
    door.tick()
    assert door.router is not opened and "compute.alice_1" not in door.uplinks


def test_a_flood_of_refusals_is_reported_in_part_and_counted(door):
    for i in range(door_state.MAX_REFUSALS + 50):
        _send(door, bytes([0, 0, 2, 0, i % 256]) + bytes([i // 256]), "alice",
              _env("control", "compute.bob_1", "bus", "register"))
    sent, real = [], door.control
    door.control = type("Recorder", (), {"send": lambda self, data, flags=0:
                                         sent.append(protocol.decode(data))})()
    try:
        door.tick()
    finally:
        door.control = real
    assert len(sent[-1]["args"]["refusals"]) == door_state.MAX_REFUSALS
    assert door.stats["refusals_unreported"] == 50


def test_the_door_refuses_and_keeps_its_students_when_the_keys_cannot_be_read(door, keys):
    registry = door.door.registry
    (keys / "students").rename(keys / "elsewhere")
    assert registry.reload() is False
    assert "alice" in registry.admitted.values(), "the students read before stay"
    handler_reply = door.zap.answer([b"1.0", b"1", curve.ZAP_DOMAIN_CLASS_BUS.encode(),
                                     b"192.0.2.9", b"", b"CURVE", b"x" * 32])
    assert handler_reply[2] == b"400"


def test_the_table_of_what_a_compute_sends_is_what_the_compute_package_calls():
    """Every ``self.conductor.x(`` / ``self.scheduler.x(`` / ``self.compute.x(`` in the
    compute package, and nothing else, is in SENT_BY_COMPUTES (a student's compute would
    be refused a message the table forgot)."""
    package = Path(__file__).parents[2] / "orchestrator" / "compute"
    called: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        for topic, method in re.findall(r"\b(conductor|scheduler|compute)\.([a-z_]+)\(",
                                        path.read_text()):
            called.setdefault(topic, set()).add(method)
    assert {t: set(m) for t, m in SENT_BY_COMPUTES.items()} == called


def test_nothing_listens_beyond_localhost_without_keys(keys, tmp_path):
    with pytest.raises(LabError, match="nothing listens beyond 127.0.0.1 without CURVE"):
        classroom.check(None, "0.0.0.0")
    assert classroom.check(None, "127.0.0.1") is None
    with pytest.raises(LabError, match="not a class's keys directory"):
        classroom.check(tmp_path, "0.0.0.0")
    run = tmp_path / "run"
    run.mkdir()
    section = classroom.configure(run, keys, "0.0.0.0")
    assert json.loads((run / "lab.json").read_text())["class"] == section
    assert section["port"] == 7755 and section["sends"]["scheduler"]


def test_zones_go_round_by_the_number_a_host_name_ends_in():
    config = LabConfig(availability_zones=("az1", "az2"))
    assert [config.zone_of(h) for h in ("compute1", "compute2", "alice_3", "edge", "b_12")] \
        == ["az1", "az2", "az1", "az1", "az2"]


def test_guess_address_is_an_ipv4_address():
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", guess_address())


class _Student:
    hosts = ["al_1", "al_2"]

    def __init__(self):
        self.did = []

    def status(self):
        return {"al_1": "running", "al_2": "killed"}

    def host(self, which):
        return f"al_{which}"

    def kill(self, which):
        self.did.append(("kill", which))

    def start_compute(self, which):
        self.did.append(("start", which))

    def set_failure(self, which, **knobs):
        self.did.append(("set_failure", which, knobs))
        return knobs


def test_the_join_prompt_understands_its_commands(capsys):
    student = _Student()
    assert _obey(student, ["kill", "2"]) == "kill"
    assert _obey(student, ["start", "1"]) == "start"
    assert _obey(student, ["slow", "1", "3"]) == "slow"
    assert _obey(student, ["fail", "2", "0.5"]) == "fail"
    assert _obey(student, ["quit"]) == "quit"
    assert _obey(student, ["dance"]) == ""
    assert student.did == [("kill", 2), ("start", 1), ("set_failure", 1, {"slow": 3.0}),
                           ("set_failure", 2, {"reschedule": 0.5})]
    assert "commands: status | kill N" in capsys.readouterr().out
    with pytest.raises(ValueError):
        _obey(student, ["slow", "1", "fast"])
