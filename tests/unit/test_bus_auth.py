"""Unit tests of the bus's proof of identity (orchestrator.messaging.auth): the ZAP rule,
the handler's replies, the bus's handover of names, and, in-process over real libzmq
sockets, what a ZAP request actually carries and what an authenticating bus admits."""
from __future__ import annotations

import threading
import time

import pytest
import zmq

from orchestrator import rundir
from orchestrator.config import BusConfig
from orchestrator.messaging import auth, protocol
from orchestrator.messaging.auth import Names, ZapHandler, identity_problem, judge
from orchestrator.messaging.blocking import BlockingClient
from orchestrator.messaging.bus import Bus
from orchestrator.messaging.protocol import ZAP_DOMAIN_BUS, ZAP_DOMAIN_TRACE

SECRET = "s3cret-token"
FAST = dict(heartbeat_interval=0.1, dead_after=0.6)


# -- the rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("username", [b"api.api", b"compute.compute1", b"lab.control",
                                      "lab.étudiante".encode(), b"conductor"])
def test_the_secret_and_a_name_are_accepted_on_the_bus(username):
    assert judge(ZAP_DOMAIN_BUS, "PLAIN", username, SECRET.encode(), SECRET) == ""


@pytest.mark.parametrize("password", [b"", b"s3cret", b"s3cret-token ", b"S3CRET-TOKEN",
                                      SECRET.encode() + b"\x00"])
def test_anything_but_the_secret_is_refused(password):
    for domain in (ZAP_DOMAIN_BUS, ZAP_DOMAIN_TRACE):
        assert judge(domain, "PLAIN", b"api.api", password, SECRET) == "wrong_secret"


@pytest.mark.parametrize("username", [b"", b"bus.bus", b"bus", b".api", b"\xff\xfe",
                                      b"api.api\n", b"api\x00api", b"a." + b"x" * 254])
def test_a_username_that_cannot_name_a_peer_is_refused_on_the_bus(username):
    assert judge(ZAP_DOMAIN_BUS, "PLAIN", username, SECRET.encode(), SECRET) == "bad_username"


def test_the_trace_tap_asks_only_for_the_secret():
    assert judge(ZAP_DOMAIN_TRACE, "PLAIN", b"", SECRET.encode(), SECRET) == ""
    assert judge(ZAP_DOMAIN_TRACE, "PLAIN", b"bus.bus", SECRET.encode(), SECRET) == ""


def test_other_mechanisms_and_domains_are_refused():
    assert judge(ZAP_DOMAIN_BUS, "NULL", b"", b"", SECRET) == "no_credentials"
    assert judge(ZAP_DOMAIN_BUS, "CURVE", b"", b"", SECRET) == "no_credentials"
    assert judge("", "PLAIN", b"api.api", SECRET.encode(), SECRET) == "unknown_domain"
    assert judge("global", "PLAIN", b"api.api", SECRET.encode(), SECRET) == "unknown_domain"


def test_a_routing_id_the_peer_chose_must_be_its_username():
    assert identity_problem(b"\x00\x6b\x8b\x45\x67", "api.api") == ""   # libzmq's own
    assert identity_problem(b"api.api", "api.api") == ""
    assert identity_problem(b"api.api", "lab.student") == "identity_mismatch"
    assert identity_problem(b"compute.compute1", "compute.compute2") == "identity_mismatch"


def test_a_peer_address_in_words():
    assert auth.describe_peer("localhost:1000:1000:4242") == "pid 4242, uid 1000"
    assert auth.describe_peer("127.0.0.1") == "127.0.0.1"
    assert auth.describe_peer("") == "unknown peer"


# -- the handler's replies -----------------------------------------------------------------
def _request(username: bytes, password: bytes, *, domain: str = ZAP_DOMAIN_BUS,
             mechanism: bytes = b"PLAIN") -> list[bytes]:
    return [b"1.0", b"7", domain.encode(), b"localhost:1000:1000:4242", b"", mechanism,
            username, password]


@pytest.fixture
def handler():
    ctx = zmq.Context()
    zap = ZapHandler(ctx, SECRET)      # bound, never started: answer() is called directly
    yield zap
    zap.stop()
    ctx.term()


def test_an_accepted_peer_gets_its_username_as_user_id(handler):
    reply = handler.answer(_request(b"compute.compute1", SECRET.encode()))
    assert reply == [b"1.0", b"7", b"200", b"OK", b"compute.compute1", b""]
    assert handler.accepted == 1 and not handler.refusals


def test_a_refused_peer_is_remembered_with_the_name_it_claimed(handler):
    reply = handler.answer(_request(b"api.api", b"guess"))
    assert reply == [b"1.0", b"7", b"400", b"wrong_secret", b"", b""]
    assert list(handler.refusals) == [auth.Refusal(ZAP_DOMAIN_BUS, "api.api", "wrong_secret",
                                                   "pid 4242, uid 1000")]
    assert handler.accepted == 0


def test_a_malformed_request_is_answered_not_crashed_on(handler):
    assert handler.answer([b"2.0", b"1", b"x", b"y", b"", b"PLAIN"])[2] == b"500"
    assert handler.answer([b"1.0"])[2] == b"500"
    assert handler.answer(_request(b"", b"", mechanism=b"PLAIN")[:6])[2] == b"400"


# -- the bus's handover of names -----------------------------------------------------------
def test_a_new_connection_with_the_proof_takes_its_name_at_once():
    names = Names()
    assert names.admit(b"\x00\x00\x00\x00\x01", "compute.compute1")[1] == ""
    assert names.routes == {"compute.compute1": b"\x00\x00\x00\x00\x01"}
    # restarted: the old connection is not known dead yet; the new one takes the name
    assert names.admit(b"\x00\x00\x00\x00\x02", "compute.compute1")[1] == ""
    assert names.routes == {"compute.compute1": b"\x00\x00\x00\x00\x02"}
    assert names.admit(b"\x00\x00\x00\x00\x01", "compute.compute1")[1] == "superseded"
    assert names.admit(b"\x00\x00\x00\x00\x02", "compute.compute1")[1] == ""


def test_a_connection_gone_frees_its_name_and_only_its_own():
    names = Names()
    names.admit(b"\x00\x00\x00\x00\x01", "api.api")
    names.gone("api.api", b"\x00\x00\x00\x00\x09")      # not the holder: nothing
    assert names.routes == {"api.api": b"\x00\x00\x00\x00\x01"}
    names.gone("api.api", b"\x00\x00\x00\x00\x01")
    assert names.routes == {}
    assert names.admit(b"\x00\x00\x00\x00\x02", "api.api")[1] == ""
    # a peer that chose its routing id reconnects with it after its connection was lost
    assert names.admit(b"raw.garbage", "raw.garbage")[1] == ""
    names.gone("raw.garbage", b"raw.garbage")
    assert names.admit(b"raw.garbage", "raw.garbage")[1] == ""
    assert names.routes["raw.garbage"] == b"raw.garbage"


def test_a_connection_whose_routing_id_is_not_its_name_holds_nothing():
    names = Names()
    names.admit(b"\x00\x00\x00\x00\x01", "api.api")
    assert names.admit(b"api.api", "lab.student")[1] == "identity_mismatch"
    assert names.admit(b"api.api", "lab.student")[1] == "refused"     # counted once
    assert names.routes == {"api.api": b"\x00\x00\x00\x00\x01"}
    # libzmq hands the routing id over to a connection that does prove it
    assert names.admit(b"api.api", "api.api")[1] == ""
    assert names.routes == {"api.api": b"api.api"}


def test_names_forget_old_connections_but_never_a_holder(monkeypatch):
    monkeypatch.setattr(auth, "MAX_CONNECTIONS", 4)
    names = Names()
    assert names.admit(b"\x00\x00\x00\x00\xff", "api.api")[1] == ""
    for i in range(10):              # one client reconnecting: each connection supersedes
        assert names.admit(bytes([0, 0, 0, 0, i]), "lab.c")[1] == ""
    assert len(names._seen) <= 4
    assert names.routes == {"api.api": b"\x00\x00\x00\x00\xff",
                            "lab.c": b"\x00\x00\x00\x00\x09"}
    assert names.admit(b"\x00\x00\x00\x00\xff", "api.api")[1] == ""
    assert names.admit(b"\x00\x00\x00\x00\x09", "lab.c")[1] == ""


# -- over real libzmq sockets ---------------------------------------------------------------
class RecordingHandler(ZapHandler):
    def __init__(self, ctx: zmq.Context, secret: str):
        super().__init__(ctx, secret)
        self.requests: list[list[bytes]] = []

    def answer(self, request: list[bytes]) -> list[bytes]:
        self.requests.append(request)
        return super().answer(request)


def _dealer(ctx: zmq.Context, endpoint: str, *, identity: str | None = None,
            username: str | None = None, password: str | None = None) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if identity is not None:
        sock.setsockopt_string(zmq.IDENTITY, identity)
    if username is not None:
        sock.setsockopt_string(zmq.PLAIN_USERNAME, username)
        sock.setsockopt_string(zmq.PLAIN_PASSWORD, password or "")
    sock.connect(endpoint)
    return sock


@pytest.mark.timeout(20)
@pytest.mark.parametrize("own", [b"", b"the-bus"])
def test_a_zap_request_carries_the_servers_own_routing_id_not_the_peers(tmp_path, own):
    """What libzmq (4.3) puts in the ZAP request's identity frame: the ROUTER's own
    ZMQ_ROUTING_ID (empty for the bus), whatever the connecting DEALER asks for; the
    peer's routing id comes later in the handshake (PLAIN's INITIATE). So ZAP cannot
    judge it, and the bus does, from the User-Id libzmq attaches to every frame."""
    ctx = zmq.Context()
    zap = RecordingHandler(ctx, SECRET).start()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    socks = [router]
    try:
        if own:
            router.setsockopt(zmq.ROUTING_ID, own)
        auth.plain_server(router, ZAP_DOMAIN_BUS)
        endpoint = f"ipc://{tmp_path}/r.sock"
        router.bind(endpoint)
        dealer = _dealer(ctx, endpoint, identity="api.api", username="lab.student",
                         password=SECRET)
        socks.append(dealer)
        dealer.send(b"hello")
        assert router.poll(5000), "the authenticated frame never arrived"
        routing_id, frame = router.recv_multipart(copy=False)
        assert routing_id.bytes == b"api.api"                # what the peer asked for
        assert frame.get("User-Id") == "lab.student"         # what it proved
        [request] = zap.requests
        assert request[0] == b"1.0" and request[2] == ZAP_DOMAIN_BUS.encode()
        assert request[4] == own                             # never b"api.api"
        assert request[5:] == [b"PLAIN", b"lab.student", SECRET.encode()]
    finally:
        for sock in socks:
            sock.close(0)
        zap.stop()
        ctx.term()


@pytest.fixture
def secret_bus(tmp_path):
    run_dir = tmp_path / "lab"
    run_dir.mkdir()
    (run_dir / rundir.SECRET).write_text(SECRET)
    bus = Bus(run_dir, BusConfig(**FAST), watch_parent=False)
    bus.start()
    ctx = zmq.Context()
    socks: list[zmq.Socket] = []
    yield bus, ctx, socks, rundir.read(run_dir)["endpoints"]["bus"]
    for sock in socks:
        sock.close(0)
    ctx.term()
    bus._close()


def _pump(bus: Bus, timeout: float = 5.0) -> int:
    """Process what reached the bus's ROUTER (as serve() would); return how many."""
    n, deadline = 0, time.monotonic() + timeout
    while bus.router.poll(max(1, int((deadline - time.monotonic()) * 1000))):
        bus.process_authenticated(bus._receive())
        n += 1
        if not bus.router.poll(100):
            break
    return n


def _anonymous(bus: Bus) -> int:
    """Refused attempts without credentials: the bus sees the mechanisms differ, or the
    client hanging up first (it noticed first), whichever happens."""
    return bus.stats["auth.no_credentials"] + bus.stats["auth.bad_handshake"]


def _register(sock: zmq.Socket, name: str) -> dict:
    """Send a register, never blocking: a refused DEALER may have no pipe left to send on."""
    env = protocol.envelope("control", name, "bus", "register")
    try:
        sock.send(protocol.encode(env), zmq.NOBLOCK)
    except zmq.Again:
        pass
    return env


@pytest.mark.timeout(20)
def test_a_bus_with_a_secret_knows_peers_by_their_proof(secret_bus):
    bus, ctx, socks, endpoint = secret_bus
    assert bus.gate is not None and bus.names is bus.gate.names
    real = _dealer(ctx, endpoint, username="compute.c1", password=SECRET)
    socks.append(real)
    _register(real, "compute.c1")
    assert _pump(bus) == 1
    assert bus.routes.is_alive("compute.c1")
    rid = bus.names.routes["compute.c1"]
    assert rid[:1] == b"\x00"                                   # libzmq's, not chosen
    # no credentials, a wrong secret: nothing reaches the bus's loop, and they are counted
    for kw in ({"identity": "compute.c1"},
               {"identity": "compute.c1", "username": "compute.c1", "password": "guess"}):
        sock = _dealer(ctx, endpoint, **kw)
        socks.append(sock)
        _register(sock, "compute.c1")
    assert not bus.router.poll(500)
    deadline = time.monotonic() + 5
    while _anonymous(bus) < 1 or bus.stats["auth.wrong_secret"] < 1:
        assert time.monotonic() < deadline, dict(bus.stats)
        bus.tick(time.time())
        time.sleep(0.05)
    refused = [e for e in bus.history if e["method"] == "connect"]
    assert ("compute.c1", "auth: wrong_secret") in {(e["src"], e["reason"]) for e in refused}
    assert {e["reason"] for e in refused if e["src"] == ""} <= {"auth: no_credentials",
                                                                "auth: bad_handshake"}
    assert all(e["kind"] == "control" and e["phase"] == "dropped" and e["dst"] == "bus.bus"
               for e in refused)
    # the secret with a routing id that is not its name: refused at its first frame
    liar = _dealer(ctx, endpoint, identity="compute.c1", username="lab.x", password=SECRET)
    socks.append(liar)
    _register(liar, "compute.c1")
    liar.send(protocol.encode(protocol.envelope("control", "lab.x", "bus", "stats")))
    assert _pump(bus) == 2
    bus.tick(time.time())                                      # refusals are counted here
    assert bus.stats["auth.identity_mismatch"] == 1 and bus.stats["refused_frames"] == 1
    assert not liar.poll(200)                                  # not even an answer
    assert bus.names.routes["compute.c1"] == rid
    # what the bus sends for compute.c1 (the tick's heartbeats) reaches the real one
    assert real.poll(2000)
    assert protocol.decode(real.recv())["method"] == "heartbeat"


@pytest.mark.timeout(20)
def test_a_restarted_peer_takes_its_name_while_the_old_connection_still_looks_alive(secret_bus):
    bus, ctx, socks, endpoint = secret_bus
    old = _dealer(ctx, endpoint, username="compute.c1", password=SECRET)
    socks.append(old)
    _register(old, "compute.c1")
    _pump(bus)
    new = _dealer(ctx, endpoint, username="compute.c1", password=SECRET)
    socks.append(new)
    _register(new, "compute.c1")
    _pump(bus)
    assert bus.routes.is_alive("compute.c1")
    bus._send("compute.c1", protocol.encode(protocol.envelope("cast", "bus.bus", "compute",
                                                              "ping", server="c1")))
    assert new.poll(2000) and protocol.decode(new.recv())["method"] == "ping"
    assert not old.poll(200)
    old.send(protocol.encode(protocol.envelope("control", "compute.c1", "bus", "heartbeat")))
    _pump(bus)
    assert bus.stats["superseded_frames"] == 1


@pytest.mark.timeout(20)
def test_a_subscriber_without_the_secret_gets_nothing(secret_bus):
    bus, ctx, socks, _ = secret_bus
    trace = rundir.read(bus.run_dir)["endpoints"]["trace"]
    subs = {}
    for label, password in (("none", None), ("wrong", "guess"), ("right", SECRET)):
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        if password is not None:
            auth.plain_client(sub, "lab.tap", password, routing_id=False)
        sub.connect(trace)
        socks.append(sub)
        subs[label] = sub
    deadline = time.monotonic() + 5
    while not subs["right"].poll(50):
        assert time.monotonic() < deadline, "the subscriber with the secret got nothing"
        bus._trace(protocol.envelope("fanout", "lab.x", "nobody", "ping"), "dropped", "nobody", 0)
        bus.tracelog.publish(bus.pub)
    assert not subs["none"].poll(200) and not subs["wrong"].poll(0)
    bus.tick(time.time())
    deadline = time.monotonic() + 5
    while _anonymous(bus) < 1 or bus.stats["auth.wrong_secret"] < 1:
        assert time.monotonic() < deadline, dict(bus.stats)
        bus.tick(time.time())
        time.sleep(0.05)


@pytest.mark.timeout(20)
def test_a_client_with_a_wrong_secret_is_told_so_never_left_hanging(secret_bus):
    bus, _, _, endpoint = secret_bus
    with BlockingClient(endpoint, "student", timeout=1, secret="guess") as client:
        with pytest.raises(protocol.MessagingTimeout, match="is the lab's secret right"):
            client.control("stats")
        # refused, it has nothing to send on: a send waits its timeout, not forever
        with pytest.raises(protocol.MessagingTimeout, match="could not send"):
            client.cast("echo", "record")


def test_a_bus_without_a_secret_does_not_authenticate(tmp_path):
    bus = Bus(tmp_path, BusConfig(**FAST), watch_parent=False)
    bus.start()
    try:
        assert bus.gate is None and bus.names is None
        assert not bus.router.getsockopt(zmq.PLAIN_SERVER)
    finally:
        bus._close()


def test_the_handler_thread_stops_and_releases_the_context():
    ctx = zmq.Context()
    zap = ZapHandler(ctx, SECRET).start()
    zap.stop()
    done = threading.Event()
    threading.Thread(target=lambda: (ctx.term(), done.set()), daemon=True).start()
    assert done.wait(5), "the context did not terminate: the handler kept its socket"
