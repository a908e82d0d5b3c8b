"""A class's cloud across machines: the instructor's lab, students' computes joining it
with CURVE from their own run directories and processes (``lab.join.Student``), over
loopback TCP; where the test can be root, from their own network namespace and address.
``pytest -k "curve or multi_machine"`` selects them."""
from __future__ import annotations

import asyncio
import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import zmq

from lab.classroom import free_class_port
from lab.cluster import LabError
from lab.controls import ControlModel
from lab.join import JoinError, Student, probe
from lab.lessons import build_flows as bf
from lab import Lab
from orchestrator.messaging import curve, protocol
from orchestrator.messaging.blocking import BlockingClient

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def keys(tmp_path) -> Path:
    curve.write_keys(tmp_path / "keys", ["alice", "bob", "carol"], "127.0.0.1",
                     free_class_port())
    return tmp_path / "keys"


@pytest.fixture
def class_lab(make_lab, keys):
    return lambda **kw: make_lab(**{"computes": 1, "listen": "127.0.0.1",
                                    "class_keys": str(keys), **kw})


@pytest.fixture
def join(keys, tmp_path):
    """``join("alice", computes=2, ticket=None)`` -> a started Student; stopped at
    teardown, every compute process checked gone."""
    joined: list[Student] = []

    def make(name: str, computes: int = 2, ticket: Path | None = None) -> Student:
        student = Student(ticket or keys / "tickets" / f"{name}.ticket", computes,
                          run_dir=tmp_path / f"join-{name}-{len(joined)}")
        joined.append(student)
        return student.start()

    yield make
    for student in joined:
        procs = list(student.procs.values())
        student.stop()
        assert all(p.poll() is not None for p in procs), "a student's compute outlived them"


def counters(lab) -> dict:
    return lab.bus().control("stats")["counters"]


def on_hosts(records, hosts) -> list:
    return [r for r in records if r["OS-EXT-SRV-ATTR:host"] in hosts]


def test_curve_a_joined_compute_takes_builds_moves_and_its_owners_knobs(class_lab, join,
                                                                        wait_until):
    lab = class_lab()
    alice = join("alice", computes=2)
    lab.wait_computes_up(alice.hosts, timeout=30)
    records = lab.wait([lab.boot(f"vm{i}") for i in range(6)], timeout=60)
    assert {r["status"] for r in records} == {"ACTIVE"}
    assert on_hosts(records, alice.hosts), "the class's scheduler placed builds on alice's"
    assert set(lab.students()) == {"alice", "bob", "carol"}
    assert {c["host"] for c in lab.students()["alice"]} == set(alice.hosts)

    # a move between machines: the computes talk to each other through the bus
    server = on_hosts(records, alice.hosts)[0]
    lab.resize(server["id"], "m1.medium")
    moved = lab.wait(server["id"], timeout=60)
    assert moved["status"] == "VERIFY_RESIZE", moved.get("fault")
    lab.confirm_resize(server["id"])
    assert lab.wait(server["id"], timeout=60)["status"] == "ACTIVE"

    # the owner's knob: alice's first compute now fails every build it is given
    assert alice.set_failure(1, reschedule=1.0)["reschedule"] == 1.0
    assert lab.bus().call("compute", "set_failure", server=alice.hosts[0]) \
        ["reschedule"] == 1.0, "the instructor sees the knob the student set"
    # the instructor's control panel: alice's computes, under her name, up; its knobs
    # reach them too (the lab's owner may drive every compute of the class)
    panel = ControlModel(lab)
    rows = {c["host"]: c for c in panel.computes()}
    assert list(rows) == ["compute1", *alice.hosts]
    assert {rows[h]["state"] for h in alice.hosts} == {"up"}
    panel.set_failure(alice.hosts[1], fatal=0.25)
    assert alice.set_failure(2)["fatal"] == 0.25, "the student sees the instructor's knob"
    alice.kill(2)
    wait_until(lambda: {c["host"]: c["state"] for c in panel.computes()}[alice.hosts[1]]
               == "down", 20, "the panel shows alice's killed compute down")
    stats = counters(lab)
    assert stats.get("door.bad.not_allowed", 0) == 0, stats   # a compute's traffic, all allowed
    assert stats.get("auth_refused", 0) == 0, stats


def test_curve_wrong_no_or_plain_credentials_are_refused_and_logged_while_the_class_builds(
        class_lab, join, keys, tmp_path, wait_until):
    lab = class_lab()
    bob = join("bob", computes=1)
    endpoint = rundir_class_bus(lab)

    # a ticket with keys the class never issued
    forged = json.loads((keys / "tickets" / "carol.ticket").read_text())
    public, secret = zmq.curve_keypair()
    forged.update(public_key=public.decode(), secret_key=secret.decode())
    (tmp_path / "forged.ticket").write_text(json.dumps(forged))
    with pytest.raises(JoinError, match="refused carol's key"):
        Student(tmp_path / "forged.ticket", 1, run_dir=tmp_path / "forged").start()
    # a client with no credentials, and one with the lab's own secret (PLAIN): neither
    # gets through the handshake, as each one's own monitor says, and the lab counts it
    ctx = zmq.Context()
    try:
        bare = ctx.socket(zmq.DEALER)
        plain = ctx.socket(zmq.DEALER)
        plain.plain_username = b"compute.bob_1"
        plain.plain_password = (lab.run_dir / "secret").read_text().encode()
        outcomes = []
        for sock in (bare, plain):
            sock.setsockopt(zmq.LINGER, 0)
            monitor = sock.get_monitor_socket()
            sock.connect(endpoint)
            outcomes.append(handshake_outcome(monitor))
            sock.disable_monitor()
            monitor.close(0)
        assert outcomes == ["refused", "refused"], outcomes
        wait_until(lambda: counters(lab).get("auth.no_credentials", 0) +
                   counters(lab).get("auth.bad_handshake", 0) >= 1, 20,
                   "the credential-less connections counted")
    finally:
        ctx.destroy(0)
    stats = counters(lab)
    assert stats["auth.unknown_key"] >= 1, stats
    log = (lab.run_dir / "logs" / "bus.log").read_text()
    assert f"claiming 'key {public.decode()}'" in log, "the bus names the refused key"
    refusals = lab.trace().where(method="connect", phase="dropped")
    assert any(e["reason"] == "auth: unknown_key" for e in refusals)

    # meanwhile the class goes on building, on bob's machine too
    lab.set_failure("compute1", reschedule=1.0)
    records = lab.wait([lab.boot(f"b{i}") for i in range(3)], timeout=60)
    assert [r["OS-EXT-SRV-ATTR:host"] for r in records] == ["bob_1"] * 3
    assert {r["status"] for r in records} == {"ACTIVE"}
    assert bob.status() == {"bob_1": "running"}


def handshake_outcome(monitor, timeout: float = 20.0) -> str:
    """``refused`` once the client's monitor sees its handshake fail or the server hang
    up on it, ``admitted`` if it succeeds, ``nothing`` if neither within ``timeout``."""
    deadline = time.monotonic() + timeout
    while monitor.poll(max(1, int((deadline - time.monotonic()) * 1000))):
        event = struct.unpack("=HI", monitor.recv_multipart()[0][:6])[0]
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return "admitted"
        if event in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_AUTH,
                     zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_DISCONNECTED):
            return "refused"
        if time.monotonic() > deadline:
            break
    return "nothing"


def rundir_class_bus(lab) -> str:
    return json.loads((lab.run_dir / "lab.json").read_text())["endpoints"]["class_bus"]


def test_curve_a_student_holds_only_their_names_and_sends_only_what_a_compute_sends(
        class_lab, join, keys, wait_until):
    lab = class_lab()
    alice, bob = join("alice", 1), join("bob", 1)
    stats = lambda: counters(lab)   # noqa: E731
    faults_before = lab.bus().control("get_faults")
    endpoint = rundir_class_bus(lab)
    alice_keys = curve.client_keys(curve.load_ticket(keys / "tickets" / "alice.ticket"))

    # alice's own client: the lab owner's verbs, another's compute, the bus's knobs
    with BlockingClient(endpoint, "alice_x", timeout=2, secret=alice_keys) as mine:
        for topic, method, server, args in (
                ("scheduler", "set_config", "", {"max_attempts": 1}),
                ("compute", "set_failure", "bob_1", {"reschedule": 1.0}),
                ("conductor", "build_instances", "", {}),
                ("conductor", "service_update", "", {"binary": "nova-compute",
                                                     "host": "compute1"})):
            with pytest.raises(protocol.MessagingTimeout):
                mine.call(topic, method, server=server, timeout=1, **args)
        with pytest.raises(protocol.MessagingTimeout):
            mine.control("set_faults", timeout=1, drop=1.0)
        assert mine.call("compute", "set_failure", server="alice_1", slow=2.0)["slow"] == 2.0
        assert mine.control("class_config")["lab"]["seed"] == lab.config.seed
    assert stats()["door.bad.not_allowed"] >= 5
    assert lab.bus().control("get_faults") == faults_before
    assert lab.bus().call("compute", "set_failure", server="bob_1")["reschedule"] == 0.0
    assert lab.bus().call("scheduler", "get_config")["max_attempts"] == \
        lab.config.max_attempts

    # alice's keys claiming bob's compute, and one naming its connection after it (the
    # ROUTER would hand that routing id over): both refused at their first frame
    ctx, thieves = zmq.Context(), []
    try:
        for chosen in (None, b"compute.bob_1"):
            thief = ctx.socket(zmq.DEALER)
            thieves.append(thief)
            thief.setsockopt(zmq.LINGER, 0)
            curve.curve_client(thief, alice_keys)
            if chosen:
                thief.setsockopt(zmq.ROUTING_ID, chosen)
            thief.connect(endpoint)
            thief.send(protocol.encode(protocol.envelope("control", "compute.bob_1", "bus",
                                                         "register")))
        wait_until(lambda: stats().get("auth.not_your_name", 0) >= 1 and
                   stats().get("auth.identity_mismatch", 0) >= 1, 20,
                   "the stolen name refused")
    finally:
        ctx.destroy(0)
    assert "claiming 'compute.bob_1'" in (lab.run_dir / "logs/bus.log").read_text()
    lab.set_failure("compute1", reschedule=1.0)
    records = lab.wait([lab.boot(f"v{i}") for i in range(4)], timeout=60)
    assert {r["status"] for r in records} == {"ACTIVE"}
    assert {r["OS-EXT-SRV-ATTR:host"] for r in records} <= {"alice_1", "bob_1"}
    assert bob.status() == {"bob_1": "running"} and alice.status() == {"alice_1": "running"}


def test_curve_a_revoked_student_is_cut_off_their_servers_evacuate_the_class_goes_on(
        class_lab, join, wait_until):
    lab = class_lab(computes=1)
    alice, bob = join("alice", 2), join("bob", 1)
    lab.wait_computes_up([*alice.hosts, *bob.hosts], timeout=30)
    records = lab.wait([lab.boot(f"r{i}") for i in range(8)], timeout=60)
    theirs = on_hosts(records, alice.hosts)
    assert theirs, "some servers on alice's computes"

    moved = lab.revoke("alice")
    assert set(moved) == {r["id"] for r in theirs}
    assert set(moved.values()) == {"ACTIVE"}
    after = {s["id"]: s["OS-EXT-SRV-ATTR:host"] for s in lab.servers()}
    assert not set(after.values()) & set(alice.hosts), "nothing left on alice's"
    assert lab.revoked() == ["alice"]
    assert "compute.alice_1 cut off" in (lab.run_dir / "logs/bus.log").read_text()

    # alice's machine hears it: the computes lose the bus, knocking again is refused
    def refused() -> str:
        alice.tend()
        return alice.refused
    wait_until(refused, 60, "alice's machine told it was refused", interval=0.2)
    assert "refused alice's key" in alice.refused
    wait_until(lambda: counters(lab).get("auth.revoked_key", 0) >= 1, 10,
               "the bus counted the revoked key's knock")
    # bob never noticed
    lab.set_failure("compute1", reschedule=1.0)
    record = lab.wait(lab.boot("after"), timeout=60)
    assert (record["status"], record["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", "bob_1")

    lab.reinstate("alice")
    assert probe(alice.ticket["bus"], alice.keys, timeout=10) == ""


def test_curve_the_instructors_bus_restarts_and_the_students_computes_come_back(
        class_lab, join, wait_until):
    lab = class_lab()
    alice = join("alice", 2)
    lab.wait_computes_up(alice.hosts, timeout=30)
    lab.kill("bus")
    time.sleep(1.0)
    lab.restart("bus")

    def alive_again():
        alice.tend()
        peers = {p["identity"]: p["alive"] for p in lab.bus().control("peers")}
        return all(peers.get(f"compute.{h}") for h in [*alice.hosts, "compute1"])
    wait_until(alive_again, 60, "alice's computes (and compute1) registered again")
    lab.set_failure("compute1", reschedule=1.0)
    records = lab.wait([lab.boot(f"a{i}") for i in range(3)], timeout=60)
    assert {r["status"] for r in records} == {"ACTIVE"}
    assert {r["OS-EXT-SRV-ATTR:host"] for r in records} <= set(alice.hosts)


class Latency:
    """A TCP relay that holds every chunk ``delay`` seconds each way: two machines that
    far apart (what ``tc netem`` would do, without needing the kernel module)."""

    def __init__(self, target: tuple[str, int], delay: float):
        self.target, self.delay = target, delay
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _shutdown(self) -> None:
        self.server.close()
        for _ in range(3):    # the connections' tasks, then what their closing started
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0.01)    # transports' connection_lost: sockets closed
        await self.server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(self._pump(reader, up_writer),
                                 self._pump(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, up_writer):     # closed for real: the sockets too
                w.close()
                try:
                    await w.wait_closed()
                except (OSError, asyncio.CancelledError):
                    pass

    async def _pump(self, reader, writer) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            writer.close()
        task = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((self.loop.time() + self.delay, data))
                if not data:
                    break
            await task
        finally:
            task.cancel()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_multi_machine_lesson_checks_hold_with_50ms_between_machines(
        class_lab, join, keys, tmp_path):
    """Lesson 02's checks (notebooks/02-old-and-new-process.ipynb), with the computes
    that build on a student's machine 50 ms away (each way) from the control plane."""
    lab = class_lab(computes=1, weighers=["RAMWeigher"])
    bus_port = json.loads((keys / "class.json").read_text())["port"]
    relay = Latency(("127.0.0.1", bus_port), 0.050)
    try:
        far = json.loads((keys / "tickets" / "alice.ticket").read_text())
        far["bus"] = f"tcp://127.0.0.1:{relay.port}"
        (tmp_path / "far.ticket").write_text(json.dumps(far))
        started = time.monotonic()
        with BlockingClient(far["bus"], "alice_rtt", timeout=5,
                            secret=curve.client_keys(far)) as c:
            c.control("class_config")
            rtt = time.monotonic() - started
        assert rtt >= 0.1, f"the relay must hold each way ({rtt:.3f}s)"
        alice = join("alice", computes=2, ticket=tmp_path / "far.ticket")
        lab.wait_computes_up(alice.hosts, timeout=30)
        # one server on each of alice's first (compute1 disabled meanwhile), so that the
        # scheduler's first choice is always compute1, which has the most RAM free...
        services = lab._api()
        body = {"host": "compute1", "binary": "nova-compute"}
        services.request("PUT", "/os-services/disable", body)
        fillers = lab.wait([lab.boot(f"filler{i}") for i in range(2)], timeout=60)
        assert {r["OS-EXT-SRV-ATTR:host"] for r in fillers} == set(alice.hosts)
        services.request("PUT", "/os-services/enable", body)
        lab.set_failure("compute1", reschedule=1.0)     # ...and fails every build

        outcomes, traces = {}, {}
        for flow in ("legacy", "conductor"):
            lab.configure(flow=flow)
            mark = lab.mark()
            records = bf.boot_each(lab, [f"{flow}1", f"{flow}2"])
            outcomes[flow] = [(s, h, n) for _, s, h, n in bf.outcomes(records)]
            traces[flow] = lab.trace(since=mark).without_lab()
        # the same outcome for the user both ways: ACTIVE on alice's, after compute1 failed
        assert [(s, n) for s, _, n in outcomes["legacy"]] == [("ACTIVE", 2)] * 2
        assert outcomes["legacy"] == outcomes["conductor"]
        assert {h for _, h, _ in outcomes["conductor"]} <= set(alice.hosts)
        old, new = traces["legacy"], traces["conductor"]
        # new: the compute hands the failed build back to the conductor, as the API did
        assert bf.said_by(new, "compute") == bf.said_by(new, "api") == \
            [("cast", "conductor", "build_instances")]
        assert [(e["src"], e["attempt"]) for e in bf.reschedules(new)] == \
            [("compute.compute1", 2)] * 2
        assert bf.said_by(old, "compute") == bf.said_by(old, "api") == \
            [("cast", "scheduler", "run_instance")]
        # and the end of the loop: one attempt allowed, the conductor says no
        lab.configure(max_attempts=1)
        [doomed] = bf.boot_each(lab, ["doomed"])
        assert doomed["status"] == "ERROR"
        assert doomed["fault"]["message"].startswith("MaxRetriesExceeded")
    finally:
        relay.close()


def test_curve_nothing_listens_beyond_localhost_without_keys_and_the_class_doors_are_curve(
        make_lab, keys, tmp_path):
    with pytest.raises(LabError, match="nothing listens beyond 127.0.0.1 without CURVE"):
        Lab(listen="0.0.0.0", run_dir=str(tmp_path / "open"))
    lab = make_lab(computes=1, listen="0.0.0.0", class_keys=str(keys), dashboard=True)
    port = json.loads((keys / "class.json").read_text())["port"]
    pids = [c.pid for c in lab.cluster.processes()]
    pids += children_of(pids)           # the door serves from a child it restarts
    listening = listening_sockets(pids)
    wide = {at for address, at in listening if address not in ("127.0.0.1", "::1")}
    assert wide == {port, port + 1, port + 2}, listening
    # the dashboard's class door: the students' read-only token opens the dashboard...
    view = curve.view_token(keys, "alice")
    url = f"http://127.0.0.1:{port + 2}/dashboard"
    with urllib.request.urlopen(f"{url}?token={view}", timeout=20) as page:
        assert page.status == 200 and b"bokeh" in page.read().lower()
    # ...and nothing else: not the dashboard without it, not the API
    with pytest.raises(urllib.error.HTTPError) as wrong:
        urllib.request.urlopen(f"{url}?token=wrong", timeout=20)
    wrong.value.close()
    request = urllib.request.Request(f"{lab.api_url}/v2.1/servers",
                                     headers={"X-Auth-Token": view})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=20)
    refused.value.close()
    assert refused.value.code == 401
    assert lab.student_dashboard_url("alice").endswith(f":{port + 2}/dashboard?token={view}")
    assert curve.load_ticket(keys / "tickets" / "alice.ticket")["dashboard"] == \
        lab.student_dashboard_url("alice")


def children_of(pids: list[int]) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) in pids:
            found.append(int(stat.parent.name))
    return found


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket listening in these processes (from /proc)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:
                continue
            hex_address, hex_port = local.split(":")
            raw = bytes.fromhex(hex_address)
            if width == 8:
                address = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:   # four little-endian words
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                address = socket.inet_ntop(socket.AF_INET6, words)
            found.add((address, int(hex_port, 16)))
    return found


def test_curve_a_ticket_for_another_bus_or_an_unreachable_one_says_so(class_lab, keys):
    lab = class_lab()
    ticket = curve.load_ticket(keys / "tickets" / "alice.ticket")
    mine = curve.client_keys(ticket)
    other_bus = curve.ClientKeys(zmq.curve_keypair()[0].decode(), mine.public_key,
                                 mine.secret_key, "alice")
    assert "the server there is not this class's bus" in probe(ticket["bus"], other_bus, 10)
    nowhere = f"tcp://127.0.0.1:{free_class_port()}"
    assert f"cannot reach the class's bus at {nowhere} within 1s" in probe(nowhere, mine, 1)
    assert probe(ticket["bus"], mine, 10) == ""
    assert lab.students()["alice"] == [], "a knock is not a join"


def test_curve_the_class_door_benchmark_runs_and_reports_what_it_measured():
    from lab.bench_curve import bench_curve, format_curve
    result = bench_curve(calls=20, builds=2, rounds=1)
    assert result["call_ms"]["curve_p50"] > 0 and result["call_ms"]["plain_p50"] > 0
    assert result["call_ratio"] == pytest.approx(result["call_ms"]["curve_p50"] /
                                                 result["call_ms"]["plain_p50"])
    assert result["builds_per_s"]["student"] > 0 and result["join_s"] > 0
    assert "CURVE tcp" in format_curve(result)


def test_curve_join_from_the_command_line_obeys_its_student_and_stops_clean(
        class_lab, keys, tmp_path, wait_until):
    lab = class_lab()
    env = {**os.environ, "CONDUCTOR_LAB_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "lab", "join",
                             str(keys / "tickets" / "carol.ticket"), "--computes", "2"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "carol joined the class" in proc.stdout.readline()
        lab.wait_computes_up(["carol_1", "carol_2"], timeout=30)
        proc.stdin.write("slow 1 4\nkill 2\nstatus\n")
        proc.stdin.flush()
        # (set_failure with nothing to change answers what the compute has)
        wait_until(lambda: lab.bus().call("compute", "set_failure",
                                          server="carol_1")["slow"] == 4.0,
                   20, "carol slowed her compute")
        wait_until(lambda: not lab.is_up("compute.carol_2"), 20, "carol killed her second")
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "carol_2: killed" in out and "carol_2              killed" in out
    wait_until(lambda: not lab.is_up("compute.carol_1"), 20, "quit stopped her computes")


def test_curve_a_bad_ticket_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.ticket"
    bad.write_text('{"student": "x"}')
    done = subprocess.run([sys.executable, "-m", "lab", "join", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "is not a class ticket (missing bus, server_key" in done.stderr
    assert "Traceback" not in done.stderr


NETNS = shutil.which("ip") and os.geteuid() == 0


@pytest.mark.skipif(not NETNS, reason="needs root and ip(8) for a network namespace")
def test_multi_machine_a_student_in_their_own_network_namespace(make_lab, tmp_path,
                                                                wait_until):
    """The student's machine has its own network stack and address (a namespace joined
    to ours by a veth pair): their compute joins from 10.X.Y.2, a forger from there is
    refused with that address in the bus's log."""
    tag = f"{os.getpid() % 10000}{int(time.time() * 1000) % 1000}"
    ns, a, b = f"cl{tag}", f"cla{tag}", f"clb{tag}"
    net = f"10.{200 + os.getpid() % 50}.{int(tag) % 250}"
    setup = [["ip", "netns", "add", ns],
             ["ip", "link", "add", a, "type", "veth", "peer", "name", b],
             ["ip", "link", "set", b, "netns", ns],
             ["ip", "addr", "add", f"{net}.1/24", "dev", a], ["ip", "link", "set", a, "up"],
             ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{net}.2/24", "dev", b],
             ["ip", "netns", "exec", ns, "ip", "link", "set", b, "up"],
             ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]]
    try:
        for cmd in setup:
            if subprocess.run(cmd, capture_output=True).returncode:
                pytest.skip(f"cannot make a network namespace here: {' '.join(cmd)}")
        keys = tmp_path / "keys"
        curve.write_keys(keys, ["dora", "eve"], f"{net}.1", free_class_port())
        lab = make_lab(computes=1, listen=f"{net}.1", class_keys=str(keys))
        forged = json.loads((keys / "tickets" / "eve.ticket").read_text())
        forged["public_key"], forged["secret_key"] = \
            (k.decode() for k in zmq.curve_keypair())
        (tmp_path / "forged.ticket").write_text(json.dumps(forged))
        env = {**os.environ, "CONDUCTOR_LAB_HOME": str(tmp_path / "home")}
        student = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "lab", "join",
             str(keys / "tickets" / "dora.ticket"), "--computes", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env)
        try:
            assert "dora joined the class" in student.stdout.readline()
            lab.wait_computes_up(["dora_1"], timeout=30)
            lab.set_failure("compute1", reschedule=1.0)
            record = lab.wait(lab.boot("far"), timeout=60)
            assert (record["status"], record["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", "dora_1")
            refused = subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "lab", "join",
                 str(tmp_path / "forged.ticket")], capture_output=True, text=True,
                timeout=60, env=env)
            assert refused.returncode == 1 and "refused eve's key" in refused.stderr
            log = lab.run_dir / "logs" / "bus.log"
            wait_until(lambda: f"({net}.2): unknown_key" in log.read_text(), 10,
                       "the refusal names the student's machine")
        finally:
            try:
                student.communicate("quit\n", timeout=30)
            except subprocess.TimeoutExpired:
                student.kill()
                student.communicate()
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", a], capture_output=True)


def test_curve_the_instructors_commands_keys_up_class_and_revoke(tmp_path, reap_pids,
                                                                 pid_gone, wait_until):
    env = {**os.environ, "CONDUCTOR_LAB_HOME": str(tmp_path / "home")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path, env=env)
    port = free_class_port()
    made = cli("keys", "k", "--names", "ada,ben", "--address", "127.0.0.1", "--port",
               str(port))
    assert made.returncode == 0 and "2 students" in made.stdout, made.stderr
    again = cli("keys", "k", "--names", "zed")
    assert again.returncode == 1 and "already holds a class's keys" in again.stderr
    assert "must be lower-case" in cli("keys", "k2", "--names", "Zed").stderr
    up = subprocess.Popen([sys.executable, "-m", "lab", "up", "--class", "--keys", "k",
                           "--listen", "127.0.0.1", "--computes", "1", "--preset", "fast",
                           "--no-dashboard"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    reap_pids.append(up.pid)
    try:
        lines = [up.stdout.readline()]
        while lines[-1] and "Ctrl-C stops it" not in lines[-1]:
            lines.append(up.stdout.readline())
        text = "".join(lines)
        assert f"students join at tcp://127.0.0.1:{port}" in text, text
        run_dir = lines[0].split(" in ", 1)[1].strip()
        reap_pids.extend(json.loads(Path(run_dir, "lab.json").read_text())["pids"].values())
        ada = Student(tmp_path / "k" / "tickets" / "ada.ticket", 1,
                      run_dir=tmp_path / "ada").start()
        try:
            status = cli("status", "--run-dir", run_dir)
            wait_until(lambda: "ada_1" in cli("status", "--run-dir", run_dir).stdout, 30,
                       "ada's compute in the instructor's status")
            revoked = cli("revoke", "ada", "--run-dir", run_dir, "--no-evacuate")
            assert revoked.returncode == 0, revoked.stderr
            assert "ada revoked" in revoked.stdout and "ada_1" in revoked.stdout
            assert "not revoked" in cli("revoke", "ben", "--reinstate", "--run-dir",
                                        run_dir).stderr
            assert cli("revoke", "ada", "--reinstate", "--run-dir", run_dir).returncode == 0
        finally:
            ada.stop()
        assert status.returncode == 0
        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0
    finally:
        if up.poll() is None:
            up.kill()
        up.stdout.close()
        up.stderr.close()
    pids = json.loads(Path(run_dir, "lab.json").read_text())["pids"].values()
    wait_until(lambda: all(pid_gone(p) for p in pids), 10, "every process of the class gone")


def unseeded_routing_ids(routers: int = 12, each: int = 3) -> list[int]:
    """The ids an unseeded libzmq gives: each socket that draws ``generate_random()``
    (two ``rand()``: low | high << 31) before the ROUTER moves its start; take the first
    ``routers`` starts and ``each`` ids from each (glibc's rand() with seed 1)."""
    libc = ctypes.CDLL(None)
    libc.srand(1)
    ids = []
    for _ in range(routers):
        low, high = libc.rand(), libc.rand()
        start = (low | (high << 31)) & 0xFFFFFFFF
        ids += [(start + k) & 0xFFFFFFFF for k in range(each)]
    libc.srand(int.from_bytes(os.urandom(4), "little"))
    return ids


def test_curve_a_student_cannot_take_routing_ids_or_bring_the_lab_down(class_lab, join,
                                                                      keys, wait_until):
    """libzmq gives a ROUTER's connections ids counting up from ``rand()``, unseeded
    ``00 6b8b4567`` first, and aborts the process when a peer has already chosen the id
    it gives next. The door seeds it and refuses chosen ids; and if a student still
    brought it down, it comes back while the lab's bus and services never notice."""
    lab = class_lab()
    bus_pid = lab.cluster.children["bus"].pid
    door_pid = json.loads((lab.run_dir / "lab.json").read_text())["door"]["pid"]
    alice_keys = curve.client_keys(curve.load_ticket(keys / "tickets" / "alice.ticket"))
    ctx, thieves = zmq.Context(), []
    try:
        for n in unseeded_routing_ids():
            thief = ctx.socket(zmq.DEALER)
            thieves.append(thief)
            thief.setsockopt(zmq.LINGER, 0)
            curve.curve_client(thief, alice_keys)
            thief.setsockopt(zmq.ROUTING_ID, b"\x00" + n.to_bytes(4, "big"))
            thief.connect(rundir_class_bus(lab))
        time.sleep(1.0)      # their handshakes done (nothing to wait on: they say nothing)
        bob = join("bob", 1)                  # honest connections come after them
        lab.wait_computes_up(bob.hosts, timeout=30)
    finally:
        ctx.destroy(0)
    door = json.loads((lab.run_dir / "lab.json").read_text())["door"]["pid"]
    assert door == door_pid, "the door was not brought down"

    # and were it brought down (an abort), it is started again; the bus never notices
    child = [p for p in children_of([lab.cluster.children["door"].pid])]
    assert child == [door_pid]
    os.kill(door_pid, signal.SIGABRT)
    wait_until(lambda: json.loads((lab.run_dir / "lab.json").read_text())["door"]["pid"]
               not in (door_pid,), 30, "the door started again")

    def back() -> bool:
        bob.tend()
        return lab.is_up("compute.bob_1")
    wait_until(back, 60, "bob's compute through the new door")
    assert lab.cluster.children["bus"].pid == bus_pid and lab.is_up("conductor.conductor1")
    lab.set_failure("compute1", reschedule=1.0)
    record = lab.wait(lab.boot("after-abort"), timeout=60)
    assert (record["status"], record["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", "bob_1")
    assert "the class's door died (signal 6): starting it again" in \
        (lab.run_dir / "logs" / "door.log").read_text()
