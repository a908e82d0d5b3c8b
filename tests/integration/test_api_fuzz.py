"""Property-based fuzzing of the Compute API against one real running lab (hypothesis,
derandomized: the same requests on every run). Thousands of generated requests: bad
JSON, bodies over the limit, wrong types in every field of ``{"server": {...}}``, bad
counts, unknown flavors and images, bad ids in paths, unicode and HTML in names, every
server action with good and bad bodies, unknown paths and methods, wrong content types, huge headers,
missing tokens. Properties:

- every answer comes (no dropped connection, no hang: the client times out) and is a 4xx
  in Nova's error shape (one key, its ``code`` the status, a ``message`` string), or a
  2xx for a request that is valid; never a 5xx;
- nothing half-made: after each batch, the database holds exactly what the accepted
  requests made (instances per reservation, one action per accepted request, migrations
  only from accepted moves) and nothing of a refused one; at the end every instance and
  migration is at rest (ACTIVE, ERROR, VERIFY_RESIZE or deleted);
- other traffic unharmed: a bystander boots servers all through the fuzz and after it,
  and every one goes ACTIVE.

One lab serves the whole module (tests run in file order: the last one checks that
everything came to rest); the requests sent are counted and printed at the end. The
requests are the same on every run of one commit; what the lab answers a valid action
(2xx or 409) depends on timing, and the properties hold either way.
"""
from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import threading
import time
import unicodedata
import urllib.parse
import uuid as uuidlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lab import Lab
from lab.cloud import FINAL_STATUSES
from orchestrator.api.limits import HEADER_CAP_BYTES, MAX_BODY_BYTES, MAX_HEADER_BYTES
from orchestrator.api.validation import MAX_COUNT
from orchestrator.config import IMAGES, image_id
from orchestrator.db import DB_FILE
from orchestrator.db_schema import MIGRATION_MOVING

CLIENT_TIMEOUT = 15.0            # seconds: an answer slower than this is a hang
BYSTANDER = "bystander-"         # names of the normal traffic's servers
COMPUTES = ("compute1", "compute2", "compute3")
SERVICE_HOSTS = {*COMPUTES, "conductor1", "scheduler1", "api"}
# The microversion the lab's own clients ask for (lab.api_client, the openstack command):
# the shapes and rules the fuzz expects are 2.47's.
JSON_CT = {"Content-Type": "application/json", "OpenStack-API-Version": "compute 2.47"}
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                phases=(Phase.explicit, Phase.generate), print_blob=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


# -- the lab, its client and what it was asked ---------------------------------------------

@dataclass
class Call:
    """One request and what may answer it."""
    method: str
    path: str
    allowed: frozenset[int]
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_CT))
    chunked: bool = False
    kind: str = "read"           # what a 2xx writes: create, action, delete, read
    target: str | None = None    # the server an action or delete is for
    action: str | None = None
    excuse: tuple[str, ...] = ()  # 400 messages a valid body may still get


class Fuzzer:
    """Sends calls over one kept-alive connection and remembers what was accepted."""

    def __init__(self, lab: Lab):
        url = urllib.parse.urlparse(lab.api.base_url)
        self.host, self.port, self.token = url.hostname, url.port, lab.api.token
        self.db_path = f"file:{lab.run_dir}/{DB_FILE}?mode=ro"
        self.conn: http.client.HTTPConnection | None = None
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.reservations: Counter[str] = Counter()   # reservation id -> instances made
        self.writes: set[tuple[str, str, str]] = set()  # (uuid, action, request id)
        self.moves: set[str] = set()                   # request ids of accepted moves
        self.known: list[str] = []                     # servers the fuzz made
        self.deleted: set[str] = set()

    def send(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        headers = {"X-Auth-Token": self.token, **call.headers}
        headers = {k: v for k, v in headers.items() if v is not None}
        for attempt in (1, 2):
            fresh = self.conn is None
            if fresh:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=CLIENT_TIMEOUT)
            try:
                if call.chunked:
                    size = len(call.body or b"")
                    pieces = [call.body[i:i + 65536] for i in range(0, size, 65536)]
                    self.conn.request(call.method, call.path, body=iter(pieces),
                                      headers=headers, encode_chunked=True)
                else:
                    self.conn.request(call.method, call.path, body=call.body,
                                      headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                self.conn.close()
                self.conn = None
                if fresh or attempt == 2:   # a kept-alive connection may have been idle-closed
                    raise AssertionError(f"connection dropped: {exc!r} for "
                                         f"{call.method} {call.path[:80]}") from None
                continue
            if resp.will_close:
                self.conn.close()
                self.conn = None
            self.sent += 1
            self.statuses[resp.status] += 1
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, uri=True, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Instances, actions and migrations as of one moment (one read transaction)."""
        conn = self.db()
        try:
            conn.execute("BEGIN")
            return {table: [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]
                    for table in ("instances", "instance_actions", "migrations")}
        finally:
            conn.close()

    def run(self, call: Call) -> None:
        """Send, check the answer's status and shape, and note what it made."""
        status, headers, data = self.send(call)
        what = f"{call.method} {call.path[:100]} body={(call.body or b'')[:200]!r}"
        assert status in call.allowed, f"{status} for {what}: {data[:300]!r}"
        if status >= 400 and call.method != "HEAD":
            assert_error_shape(status, data, what)
            if status == 400 and call.excuse:    # a valid body, refused for the server
                message = next(iter(json.loads(data).values()))["message"]
                assert any(e in message for e in call.excuse), f"{what}: {message}"
        if status >= 300:
            return
        rid = headers.get("x-openstack-request-id", "")
        if call.kind == "create":
            reservation = json.loads(data).get("reservation_id") or \
                json.loads(data)["server"]["OS-EXT-SRV-ATTR:reservation_id"]
            conn = self.db()
            made = [r["uuid"] for r in conn.execute(
                "SELECT uuid FROM instances WHERE reservation_id=? ORDER BY seq",
                (reservation,))]
            conn.close()
            self.reservations[reservation] += len(made)
            self.known += made
        elif call.kind in ("action", "delete"):
            self.writes.add((call.target, call.action, rid))
            if call.action in ("migrate", "resize", "evacuate"):
                self.moves.add(rid)
            if call.kind == "delete":
                self.deleted.add(call.target)

    def check_db(self) -> None:
        """The database holds what the accepted requests made, and nothing else."""
        now = self.snapshot()
        rows, actions, migrations = now["instances"], now["instance_actions"], now["migrations"]
        ours = {r["uuid"]: r for r in rows if not r["name"].startswith(BYSTANDER)}
        assert Counter(r["reservation_id"] for r in ours.values()) == self.reservations
        creates = {(r["uuid"], "create", r["request_id"]) for r in rows}
        seen = {(a["instance_uuid"], a["action"], a["request_id"]) for a in actions}
        assert len(seen) == len(actions), "an action recorded twice"
        assert seen - creates == self.writes, (
            f"recorded but refused: {sorted(seen - creates - self.writes)[:5]}; "
            f"accepted but lost: {sorted(self.writes - seen)[:5]}")
        assert creates <= seen, "an instance without its create action"
        by_request = Counter(m["request_id"] for m in migrations)
        assert set(by_request) <= self.moves and max(by_request.values(), default=0) <= 1, (
            by_request, self.moves)


def assert_error_shape(status: int, data: bytes, what: str) -> None:
    """Nova's shape: one key, whose value has ``code`` == the status and a message."""
    try:
        body = json.loads(data)
    except ValueError:
        raise AssertionError(f"{status} for {what} is not JSON: {data[:200]!r}") from None
    assert isinstance(body, dict) and len(body) == 1, (what, body)
    detail = next(iter(body.values()))
    assert isinstance(detail, dict) and detail.get("code") == status, (what, body)
    assert isinstance(detail.get("message"), str), (what, body)


class Bystander(threading.Thread):
    """Normal traffic all through the fuzz: boot a server, wait for it, again."""

    def __init__(self, lab: Lab):
        super().__init__(daemon=True, name="bystander")
        self.lab, self.stop, self.records = lab, threading.Event(), []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                sid = self.lab.boot(f"{BYSTANDER}{len(self.records)}", flavor="m1.tiny")
                self.records.append(self.lab.wait(sid, timeout=30))
            except Exception as exc:    # reported by the test, not lost in a thread
                self.errors.append(repr(exc))
            self.stop.wait(0.2)


@pytest.fixture(scope="module")
def fuzz_lab(tmp_path_factory):
    """One lab for the module (make_lab is per test): room for every server the fuzz
    makes, so the bystander's boots never lack a host."""
    lab = Lab(run_dir=str(tmp_path_factory.mktemp("fuzz") / "lab"), computes=3, seed=11,
              preset="fast", vcpus=4096, memory_mb=1 << 24, local_gb=1 << 20)
    lab.start()
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def fuzzer(fuzz_lab):
    """The module's client; the bystander boots all through the module's tests."""
    f = Fuzzer(fuzz_lab)
    f.bystander = Bystander(fuzz_lab)
    f.bystander.start()
    f.started = time.monotonic()
    yield f
    f.bystander.stop.set()
    f.bystander.join(60)
    if f.conn is not None:
        f.conn.close()


# -- what is sent: valid values, and values that break a rule --------------------------------

def _nova_printable(char: str) -> bool:
    category = unicodedata.category(char)
    return not category.startswith("C") and (not category.startswith("Z") or category == "Zs")


PRINTABLE = [c for c in map(chr, range(0x20, 0x3400)) if _nova_printable(c)] + \
    ["\U0001F600", "\U0001D518", "\U00020000", "\U0001F9D1"]
GARBAGE = st.text(st.sampled_from(PRINTABLE[:200] + ["\x00", "\t", "/", "%", "?", "#", " ",
                                                     "\u00e9", "\U0001F600"]),
                  min_size=1, max_size=30)
SPACES = [c for c in map(chr, range(0x3400)) if unicodedata.category(c) == "Zs"]
HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "&lt;b&gt;&amp;",
           "\"'`; DROP TABLE instances; --", "Ω≈ç√∫˜µ≤≥÷", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀", "مرحبا بالعالم",
           "a  b", "n" * 255, "{{7*7}}", "%s%n%x", "..\\..\\etc\\passwd"]
BAD_CHARS = st.sampled_from(["\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\u200b", "\u2028",
                             "\u2029", "\ufeff", "\ud800", "\udfff", "\U000e0001"])


def _at_rest(text: str) -> bool:
    return not (text[0] in SPACES or text[-1] in SPACES)


valid_names = st.one_of(
    st.text(st.sampled_from(PRINTABLE), min_size=1, max_size=40).filter(_at_rest),
    st.sampled_from(HOSTILE)).filter(lambda n: not n.startswith(BYSTANDER))
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                 st.floats(allow_nan=False, allow_infinity=False),
                 st.lists(st.integers(0, 3), max_size=3),
                 st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2))
bad_names = st.one_of(
    JUNK.filter(lambda v: not isinstance(v, str)), st.just(""),
    st.integers(256, 400).map(lambda n: "n" * n),
    st.tuples(valid_names, BAD_CHARS, st.integers(0, 40)).map(
        lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:]),
    st.tuples(st.sampled_from(SPACES + ["\t"]), valid_names, st.booleans()).map(
        lambda t: t[0] + t[1] if t[2] else t[1] + t[0]))
FLAVOR_REFS = [1, 2, 3, 4, "1", "2", "3", "4", "m1.tiny", "m1.small", "m1.medium",
               "m1.large", "http://lab/v2.1/flavors/2", "/flavors/m1.small/"]
# An image by id (what real clients send), by link, or by the lab's name for it.
IMAGE_REFS = [*IMAGES, *(i["id"] for i in IMAGES.values()),
              f"http://lab/v2.1/images/{image_id('fedora')}",
              f"/v2/images/{image_id('cirros')}/"]
valid_images = st.sampled_from(IMAGE_REFS)
bad_images = st.one_of(bad_names, valid_names.filter(lambda n: n not in IMAGES),
                       st.uuids().map(str))
valid_flavors = st.sampled_from(FLAVOR_REFS)
bad_flavors = st.one_of(
    st.sampled_from(["9", "0", "-1", "m1.huge", "M1.SMALL", "", "http://lab/flavors/",
                     "1.0", "tiny", " 1"]),
    st.integers(-10**20, 10**20).filter(lambda i: i not in (1, 2, 3, 4)),
    JUNK.filter(lambda v: not isinstance(v, (str, int)) or isinstance(v, bool)))
bad_counts = st.one_of(
    st.integers(-10**30, 0), st.integers(MAX_COUNT + 1, 10**40),
    st.integers(20, 6000).map(lambda n: "9" * n),
    st.sampled_from(["", "0", "-1", "abc", "1.5", "1e3", " 1", "²", "٣", "0x10", "101"]),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
    st.lists(st.integers(1, 3), max_size=2), st.dictionaries(st.text(max_size=2),
                                                             st.integers(), max_size=1))
valid_metadata = st.dictionaries(
    st.text(st.sampled_from("abcXYZ019-_:. "), min_size=1, max_size=20),
    st.text(st.sampled_from(PRINTABLE), max_size=30), max_size=3)
bad_metadata = st.one_of(
    JUNK.filter(lambda v: not isinstance(v, dict) or v),
    st.sampled_from([{"ключ": "v"}, {"a/b": "v"}, {"": "v"}, {"k": 5}, {"k": None},
                     {"k": "v" * 256}, {"k": ["v"]}, {"k" * 256: "v"}, {"k": "\x00"}]))
BOOLEANS = [True, False, "True", "true", "1", "on", "YES", "no", "0", "False", "OFF"]
OPTIONAL_OK = {
    "metadata": valid_metadata,
    "description": st.one_of(st.none(), st.text(st.sampled_from(PRINTABLE), max_size=60)),
    "key_name": valid_names, "adminPass": st.text(max_size=20),
    "networks": st.sampled_from(["auto", "none", [], [{"uuid": "x"}]]),
    "security_groups": st.sampled_from([[], [{"name": "default"}]]),
    "return_reservation_id": st.sampled_from(BOOLEANS),
    "availability_zone": st.just("nova"),
}
OPTIONAL_BAD = {
    "metadata": bad_metadata,
    "description": st.one_of(st.integers(), st.just("d" * 256), st.just("a\x00b"),
                             st.lists(st.text(), max_size=1)),
    "key_name": bad_names, "adminPass": JUNK.filter(lambda v: not isinstance(v, str)),
    "networks": st.one_of(st.integers(), st.sampled_from(["some", "", [1], {"a": 1},
                                                         ["auto"]])),
    "security_groups": st.sampled_from([{}, [1], [{"name": 5}], [{"x": "y"}], "default",
                                        [{"name": ""}], None]),
    "return_reservation_id": st.one_of(st.sampled_from(["maybe", "", 2, 0, [], {}, None,
                                                        "yes please"]), st.floats()),
    "availability_zone": st.one_of(st.sampled_from(["mars", "", "NOVA", "nova "]),
                                   JUNK.filter(lambda v: v is not None)),
}


@st.composite
def valid_servers(draw) -> dict[str, Any]:
    server = {"name": draw(valid_names), "flavorRef": draw(valid_flavors),
              "imageRef": draw(valid_images)}
    low = draw(st.integers(1, 3))
    counts = draw(st.sampled_from(["none", "min", "max", "both", "strings"]))
    if counts in ("min", "both"):
        server["min_count"] = low
    if counts in ("max", "both"):
        server["max_count"] = draw(st.integers(low, 3)) if counts == "both" else low
    if counts == "strings":
        server.update(min_count=str(low), max_count=str(low))
    for key in draw(st.lists(st.sampled_from(sorted(OPTIONAL_OK)), max_size=3, unique=True)):
        server[key] = draw(OPTIONAL_OK[key])
    return server


@st.composite
def broken_servers(draw) -> Any:
    """A ``POST /servers`` body that breaks exactly one rule (or several)."""
    server = draw(valid_servers())
    how = draw(st.sampled_from(["name", "flavor", "image", "count", "min>max", "optional",
                                "unknown", "missing", "wrapper"]))
    if how == "name":
        server["name"] = draw(bad_names)
    elif how == "flavor":
        server["flavorRef"] = draw(bad_flavors)
    elif how == "image":
        server["imageRef"] = draw(bad_images)
    elif how == "count":
        server[draw(st.sampled_from(["min_count", "max_count"]))] = draw(bad_counts)
    elif how == "min>max":
        server.update(min_count=draw(st.integers(2, MAX_COUNT)), max_count=1)
    elif how == "optional":
        key = draw(st.sampled_from(sorted(OPTIONAL_BAD)))
        server[key] = draw(OPTIONAL_BAD[key])
    elif how == "unknown":
        server[draw(st.text(min_size=1, max_size=12).filter(
            lambda k: k not in server and k not in OPTIONAL_OK and
            k not in ("min_count", "max_count")))] = draw(JUNK)
    elif how == "missing":
        del server[draw(st.sampled_from(["name", "flavorRef", "imageRef"]))]
    else:
        return draw(st.one_of(JUNK, st.text(max_size=10), st.just({}),
                              st.just({"servers": server}),
                              JUNK.map(lambda v: {"server": v}).filter(
                                  lambda b: not isinstance(b["server"], dict)),
                              st.just({"server": server, "extra": None}).map(
                                  lambda b: {"server": [b["server"]]})))
    return {"server": server}


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


bad_json = st.one_of(
    st.binary(max_size=60), st.just(b""),
    st.sampled_from([b"{", b"{'server': {}}", b"NaN", b'{"server": Infinity}', b"\xff\xfe",
                     b'{"server": {"name": "\xc3\x28"}}', b'{"a": 1} trailing', b"\x00",
                     b'{"server": {"name": -}}', b"[" * 10 + b"]" * 9]),
    st.integers(100, 200_000).map(_deep),
    valid_servers().map(lambda s: json.dumps({"server": s}).encode()).flatmap(
        lambda raw: st.integers(1, max(1, len(raw) - 1)).map(lambda n: raw[:n])))


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _create(body: bytes, valid: bool) -> Call:
    return Call("POST", "/v2.1/servers", frozenset({202} if valid else {400}), body,
                kind="create")


creates = st.one_of(
    valid_servers().map(lambda s: _create(_json({"server": s}), True)),
    broken_servers().map(lambda b: _create(_json(b), False)),
    bad_json.map(lambda raw: _create(raw, False)))

# -- server actions ----------------------------------------------------------------------------
VALID_ACTIONS = {
    "migrate": st.sampled_from([None, {}]),
    "resize": st.fixed_dictionaries({"flavorRef": valid_flavors}, optional={
        "OS-DCF:diskConfig": st.sampled_from(["AUTO", "MANUAL"])}),
    "confirmResize": st.sampled_from([None, {}]),
    "revertResize": st.sampled_from([None, {}]),
    "rebuild": st.fixed_dictionaries({"imageRef": valid_images}, optional={
        "name": valid_names, "metadata": valid_metadata, "adminPass": st.text(max_size=8)}),
    "evacuate": st.fixed_dictionaries({}, optional={
        "host": st.sampled_from(COMPUTES), "adminPass": st.text(max_size=8)}),
}
# A valid body may still be refused for what the server is: these 400s, or a 409.
EXCUSES = ("must change flavor", "can't be the same one", "still in use")
BAD_ACTION_ARGS = {
    "resize": st.one_of(st.just({}), st.fixed_dictionaries({"flavorRef": bad_flavors}),
                        st.just({"flavorRef": "2", "OS-DCF:diskConfig": "auto"})),
    "rebuild": st.one_of(st.just({}), st.fixed_dictionaries({"imageRef": bad_images}),
                         st.fixed_dictionaries({"imageRef": valid_images, "name": bad_names}),
                         st.fixed_dictionaries({"imageRef": valid_images,
                                                "metadata": bad_metadata}),
                         st.just({"imageRef": "cirros", "adminPass": 7})),
    "evacuate": st.one_of(
        st.fixed_dictionaries({"host": st.one_of(
            st.text(max_size=12).filter(lambda h: h not in COMPUTES), JUNK)}),
        st.fixed_dictionaries({"onSharedStorage": st.sampled_from(BOOLEANS)}),   # < 2.14
        st.just({"force": True}),                               # forced to no host
        st.fixed_dictionaries({"force": st.sampled_from(["maybe", 2, None, []]),
                               "host": st.sampled_from(COMPUTES)})),
}


@st.composite
def action_bodies(draw) -> tuple[Any, bool, str | None]:
    """(body, valid, action)."""
    name = draw(st.sampled_from(sorted(VALID_ACTIONS)))
    how = draw(st.sampled_from(["valid"] * 5 + ["args", "type", "unknown-key", "shape"]))
    if how == "valid":
        return {name: draw(VALID_ACTIONS[name])}, True, name
    if how == "args" and name in BAD_ACTION_ARGS:
        return {name: draw(BAD_ACTION_ARGS[name])}, False, name
    if how in ("args", "type"):
        return {name: draw(JUNK.filter(lambda v: v is not None and not isinstance(v, dict))
                           | st.text(max_size=5))}, False, name
    if how == "unknown-key":
        args = draw(VALID_ACTIONS[name]) or {}
        return {name: {**args, draw(st.sampled_from(["x", "force", "hostname",
                                                     "preserve_ephemeral"])): 1}}, False, name
    return draw(st.one_of(
        JUNK, st.just({}), st.just({name: None, "migrate": None, "resize": {}}),
        st.sampled_from(["reboot", "os-start", "createImage", "MIGRATE", "pause", ""]).map(
            lambda a: {a: None}))), False, None


@dataclass
class Target:
    """A server an action, delete or read is for: one the fuzz made (by index), an id
    nobody has, or text that is no id at all."""
    kind: str
    value: Any


targets = st.one_of(
    st.integers(0, 10**6).map(lambda i: Target("known", i)),
    st.integers(0, 10**6).map(lambda i: Target("known", i)),
    st.uuids().map(lambda u: Target("unknown", str(u))),
    GARBAGE.filter(lambda t: t != "detail").map(lambda t: Target("garbage", t)))


def resolve(target: Target, fuzzer: Fuzzer) -> tuple[str, str]:
    """(id as sent in the path, "alive" | "deleted" | "absent")."""
    if target.kind in ("known", "pool") and fuzzer.known:
        sid = target.value if target.kind == "pool" else \
            fuzzer.known[target.value % len(fuzzer.known)]
        return sid, "deleted" if sid in fuzzer.deleted else "alive"
    sid = target.value if target.kind != "known" else str(uuidlib.uuid4())
    return urllib.parse.quote(sid, safe=""), "absent"


def action_call(target: Target, spec: tuple[Any, bool, str | None],
                fuzzer: Fuzzer) -> Call:
    body, valid, name = spec
    sid, state = resolve(target, fuzzer)
    excuse: tuple[str, ...] = ()
    if state == "alive":
        allowed = {200, 202, 204, 409} if valid else {400}
        if not valid and name == "evacuate":
            allowed.add(404)          # a host the lab does not have (Nova's answer)
        if valid and name in ("resize", "evacuate"):
            allowed.add(400)
            excuse = EXCUSES
    elif state == "deleted":
        allowed = {400, 404, 409}
    else:
        allowed = {404} if valid else {400, 404}
    return Call("POST", f"/v2.1/servers/{sid}/action", frozenset(allowed), _json(body),
                kind="action", target=sid, action=name, excuse=excuse)


def delete_call(target: Target, fuzzer: Fuzzer) -> Call:
    sid, state = resolve(target, fuzzer)
    allowed = {"alive": {204, 409}, "deleted": {404, 409}, "absent": {404}}[state]
    return Call("DELETE", f"/v2.1/servers/{sid}", frozenset(allowed), kind="delete",
                target=sid, action="delete")


def read_call(target: Target, what: str, fuzzer: Fuzzer) -> Call:
    sid, state = resolve(target, fuzzer)
    if what == "server":
        allowed = {"alive": {200}, "deleted": {200, 404}, "absent": {404}}[state]
        return Call("GET", f"/v2.1/servers/{sid}", frozenset(allowed))
    if what == "actions":    # a deleted server's are shown from 2.21; the fuzz asks 2.1
        allowed = {"alive": {200}, "deleted": {200, 404}, "absent": {404}}[state]
        return Call("GET", f"/v2.1/servers/{sid}/os-instance-actions", frozenset(allowed))
    return Call("GET", f"/v2.1/servers/{sid}/os-instance-actions/req-{uuidlib.uuid4()}",
                frozenset({404}))


# -- everything else: listings, flavors, services, unknown paths and methods -------------------
query_text = GARBAGE | st.just("")
LISTINGS = ["/", "/v2.1", "/v2.1/", "/v2.1/servers", "/v2.1/servers/", "/v2.1/servers/detail",
            "/v2.1/flavors", "/v2.1/flavors/detail", "/v2.1/os-services",
            "/v2.1/os-hypervisors", "/v2.1/os-hypervisors/detail", "/v2.1/os-migrations",
            "/v2.1/os-lab-metrics"]
# Route -> the methods it answers; any other known method is a 405.
ROUTE_METHODS = {**{p: {"GET"} for p in LISTINGS}, "/v2.1/servers": {"GET", "POST"},
                 "/v2.1/servers/": {"GET", "POST"}, "/v2.1/flavors/2": {"GET"}}
METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")
listings = st.one_of(
    st.sampled_from(LISTINGS).map(lambda p: Call("GET", p, frozenset({200}))),
    st.tuples(st.sampled_from(["reservation_id", "instance_uuid", "status", "host",
                               "migration_type"]), query_text,
              st.sampled_from(["/v2.1/servers", "/v2.1/servers/detail",
                               "/v2.1/os-migrations"])).map(
        lambda t: Call("GET", f"{t[2]}?{urllib.parse.urlencode({t[0]: t[1]})}",
                       # a status Nova does not have is a 400 from 2.38
                       frozenset({200, 400} if t[0] == "status" and "servers" in t[2]
                                 else {200}))),
    st.sampled_from(FLAVOR_REFS[4:] + ["1", "4"]).map(
        lambda r: Call("GET", f"/v2.1/flavors/{urllib.parse.quote(str(r), safe='')}",
                       frozenset({200} if "/" not in str(r) else {200, 404}))),
    GARBAGE.filter(lambda r: r != "detail" and r.rstrip("/").rsplit("/", 1)[-1] not in {
        "1", "2", "3", "4", "m1.tiny", "m1.small", "m1.medium", "m1.large"}).map(
        lambda r: Call("GET", f"/v2.1/flavors/{urllib.parse.quote(r, safe='')}",
                       frozenset({404}))))
wrong_methods = st.tuples(st.sampled_from(sorted(ROUTE_METHODS)), st.sampled_from(METHODS)).filter(
    lambda t: t[1] not in ROUTE_METHODS[t[0]]).map(
    lambda t: Call(t[1], t[0], frozenset({405} if not (t[0] == "/v2.1/os-services" and
                                                        t[1] == "PUT") else {404})))
odd_methods = st.tuples(st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=1,
                                max_size=9).filter(lambda m: m not in METHODS),
                        st.sampled_from(LISTINGS + ["/nowhere"])).map(
    lambda t: Call(t[0], t[1], frozenset({405}), headers={}))
TOP = {"servers", "flavors", "os-services", "os-hypervisors", "os-migrations",
       "os-lab-metrics", "os-availability-zone", "os-aggregates", "identity", "image", ""}
unknown_paths = st.tuples(
    st.sampled_from(["/v2.1/", "/", "/v2/", "/v2.1/servers/x/", "/v2.1/flavors/2/",
                     "/v2.1/os-lab-metrics/"]),
    st.lists(GARBAGE, min_size=1, max_size=3),
    st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"])).filter(
    lambda t: not (t[0] in ("/v2.1/", "/") and t[1][0] in TOP | {"v2.1"})
    and not (t[0] == "/v2.1/servers/x/" and t[1][0] in ("action", "os-instance-actions"))).map(
    lambda t: Call(t[2], t[0] + "/".join(urllib.parse.quote(s, safe="") for s in t[1]),
                   frozenset({404}), body=b"{}" if t[2] in ("POST", "PUT", "PATCH") else None))
unknown_hosts = valid_names.filter(lambda h: h not in SERVICE_HOSTS)
services = st.one_of(
    st.tuples(st.sampled_from(COMPUTES), st.sampled_from(["nova-compute", "compute"])).map(
        lambda t: Call("PUT", "/v2.1/os-services/enable",
                       frozenset({200}), _json({"host": t[0], "binary": t[1]}))),
    st.tuples(st.sampled_from(["disable", "disable-log-reason"]), unknown_hosts,
              st.sampled_from(["nova-compute", "nova-scheduler"])).map(
        lambda t: Call("PUT", f"/v2.1/os-services/{t[0]}", frozenset({404}),
                       _json({"host": t[1], "binary": t[2], "disabled_reason": "why"}))),
    st.tuples(st.sampled_from(["enable", "disable", "disable-log-reason"]), st.one_of(
        JUNK, st.just({}), st.just({"host": "compute1"}),
        st.fixed_dictionaries({"host": st.sampled_from(COMPUTES), "binary": JUNK}),
        st.fixed_dictionaries({"host": bad_names, "binary": st.just("nova-compute")}),
        st.fixed_dictionaries({"host": st.sampled_from(COMPUTES),
                               "binary": st.just("nova-compute"),
                               "disabled_reason": st.one_of(
                                   st.sampled_from(["", "r" * 256, "a\x00b", "\ud800"]),
                                   JUNK.filter(lambda v: v is not None))}),
        st.just({"host": "compute1", "binary": "nova-compute", "force": True}))).map(
        lambda t: Call("PUT", f"/v2.1/os-services/{t[0]}", frozenset({400}), _json(t[1]))),
    GARBAGE.filter(lambda a: a not in ("enable", "disable", "disable-log-reason")).map(
        lambda a: Call("PUT", f"/v2.1/os-services/{urllib.parse.quote(a, safe='')}",
                       frozenset({404}), _json({"host": "compute1", "binary": "nova-compute"}))))


# -- what may happen to any request on the way: token, headers, size, media type -------------
mutations = st.tuples(st.sampled_from(range(4)), st.one_of(
    st.tuples(st.just("token"), st.sampled_from([None, "", "guess", "x" * 64])),
    st.tuples(st.just("header"), st.integers(MAX_HEADER_BYTES + 1, 4 * MAX_HEADER_BYTES)),
    st.tuples(st.just("benign-type"), st.sampled_from([
        None, "text/plain", "application/json; charset=utf-8", "APPLICATION/JSON",
        "application/vnd.openstack.compute+json"])),
    st.tuples(st.just("media-type"), st.sampled_from([
        "application/xml", "text/html", "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x", "application/jsonx", "*/*", "json"])),
    st.tuples(st.sampled_from(["oversize", "oversize-chunked"]),
              st.integers(1, MAX_BODY_BYTES // 4)))).map(lambda t: t[1] if t[0] == 3 else None)


def _reads_body(call: Call) -> bool:
    """Whether the handler parses this request's body (so its media type matters)."""
    return call.method in ("POST", "PUT") and bool(call.body) and (
        "/action" in call.path or call.path in ("/v2.1/servers", "/v2.1/servers/")
        or ("/os-services/" in call.path and 404 not in call.allowed))


def _changed(call: Call, status: int | None = None, **changes: Any) -> Call:
    """The call with ``changes``; answered ``status`` alone, if one is given."""
    if status is not None:
        changes.update(allowed=frozenset({status}), excuse=())
    return Call(**{**call.__dict__, **changes})


def mutate(call: Call, mutation: tuple[str, Any] | None) -> Call:
    """Maybe one thing wrong with the request itself; each has its own answer."""
    if mutation is None or call.method not in METHODS:
        return call
    how, arg = mutation
    if how == "token":
        return _changed(call, 401, headers={**call.headers, "X-Auth-Token": arg})
    if how == "header":
        return _changed(call, 400, headers={**call.headers, "X-Padding": "p" * arg})
    if how == "benign-type" and _reads_body(call):
        return _changed(call, headers={**call.headers, "Content-Type": arg})
    if how == "media-type" and _reads_body(call):
        return _changed(call, 415, headers={**call.headers, "Content-Type": arg})
    if how.startswith("oversize") and call.method != "HEAD":
        body = call.body or b""
        return _changed(call, 413, body=body + b" " * (MAX_BODY_BYTES + arg - len(body)),
                        chunked=how == "oversize-chunked")
    return call


Maker = Callable[[Fuzzer], Call]   # a request made from what the fuzz has made so far


def batches(makers: st.SearchStrategy[Maker]) -> st.SearchStrategy[list[Maker]]:
    """Lists of requests, each maybe mutated."""
    return st.lists(st.tuples(makers, mutations).map(
        lambda t: lambda fuzzer: mutate(t[0](fuzzer), t[1])), min_size=4, max_size=24)


def _fixed(calls: st.SearchStrategy[Call]) -> st.SearchStrategy[Maker]:
    return calls.map(lambda c: lambda fuzzer: c)


def run_batches(fuzzer: Fuzzer, makers: st.SearchStrategy[Maker], examples: int,
                *explicit: list[Maker]) -> None:
    """``examples`` generated batches (and the explicit ones first); after each, the
    database holds exactly what the accepted requests made."""
    def batch(makes: list[Maker]) -> None:
        for make in makes:
            fuzzer.run(make(fuzzer))
        fuzzer.check_db()

    for makes in explicit:
        batch(makes)
    settings(FUZZ, max_examples=examples)(given(batches(makers))(batch))()


# -- the tests -----------------------------------------------------------------------------------
creates_made = _fixed(creates)


@pytest.mark.timeout(120)
def test_creates_get_202_or_400_and_make_exactly_what_was_accepted(fuzzer):
    run_batches(fuzzer, creates_made, 180, [
        lambda f: Call("POST", "/v2.1/servers", frozenset({400}), _deep(100_000)),
        lambda f: _create(_json({"server": {"name": "\ud800", "flavorRef": "1",
                                            "imageRef": "cirros"}}), False),
        lambda f: _create(_json({"server": {"name": "vm", "flavorRef": "1",
                                            "imageRef": "\udfff"}}), False),
        lambda f: _create(_json({"server": {"name": "a\x00b", "flavorRef": "1",
                                            "imageRef": "cirros"}}), False),
        lambda f: _create(_json({"server": {"name": "vm", "flavorRef": "1", "imageRef": "c",
                                            "min_count": "9" * 5000}}), False),
        lambda f: _create(_json({"server": {"name": "<b>vm</b> ☃", "flavorRef": "1",
                                            "imageRef": "cirros",
                                            "return_reservation_id": "false"}}), True)])
    assert len(fuzzer.known) >= 30, "too few valid creates to act on"


@pytest.mark.timeout(150)
def test_every_action_gets_a_2xx_400_404_or_409_and_writes_only_when_accepted(fuzz_lab,
                                                                              fuzzer):
    # A few servers of our own, at rest, that most actions aim at (one after another, so
    # migrate is followed by confirm or revert on the same server now and then).
    pool_start = len(fuzzer.known)
    for i in range(12):
        fuzzer.run(_create(_json({"server": {"name": f"pool-{i}", "flavorRef": "m1.small",
                                             "imageRef": "cirros"}}), True))
    pool = fuzzer.known[pool_start:]
    fuzz_lab.wait(pool, timeout=30)
    pooled = st.integers(0, 11).map(lambda i: Target("pool", pool[i]))
    aimed = st.one_of(pooled, pooled, pooled, targets)
    makers = st.one_of(
        st.tuples(aimed, action_bodies()).map(
            lambda t: lambda fuzzer: action_call(t[0], t[1], fuzzer)),
        st.tuples(aimed, action_bodies()).map(
            lambda t: lambda fuzzer: action_call(t[0], t[1], fuzzer)),
        st.tuples(aimed, action_bodies()).map(
            lambda t: lambda fuzzer: action_call(t[0], t[1], fuzzer)),
        st.tuples(aimed, st.sampled_from(["server", "actions", "action"])).map(
            lambda t: lambda fuzzer: read_call(t[0], t[1], fuzzer)),
        targets.filter(lambda t: t.kind != "known" or t.value % 3 == 0).map(
            lambda t: lambda fuzzer: delete_call(t, fuzzer)))
    run_batches(fuzzer, makers, 300)
    accepted = Counter(a for _, a, _ in fuzzer.writes)
    assert {"migrate", "resize", "rebuild", "delete"} <= set(accepted), accepted
    assert {"confirmResize", "revertResize"} & set(accepted), accepted


@pytest.mark.timeout(120)
def test_paths_methods_listings_and_services_get_what_they_should(fuzzer):
    makers = st.one_of(*map(_fixed, (listings, wrong_methods, odd_methods, unknown_paths,
                                     services)))
    run_batches(fuzzer, makers, 180, [
        lambda f: Call("PUT", "/v2.1/os-services", frozenset({404}), b"{}"),
        lambda f: Call("GET", "/v2.1/os-services/enable", frozenset({404})),
        lambda f: Call("PUT", "/v2.1/os-services/disable", frozenset({400}),
                       _json({"host": "\ud800", "binary": "nova-compute"}))])


def _raw_answer(sock: socket.socket) -> tuple[int, bytes]:
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp.status, resp.read()


BODY_TARGETS = [("POST", "/v2.1/servers"), ("PUT", "/v2.1/os-services/enable"),
                ("GET", "/v2.1/servers"), ("POST", "/v2.1/servers/x/action"),
                ("DELETE", "/v2.1/nowhere")]


@pytest.mark.timeout(120)
@settings(FUZZ, max_examples=24)
@given(size=st.integers(MAX_BODY_BYTES + 1, 4 * MAX_BODY_BYTES),
       mode=st.sampled_from(["declared", "chunked", "expect"]),
       target=st.sampled_from(BODY_TARGETS), with_token=st.booleans())
def test_a_body_over_the_limit_is_answered_in_novas_shape_on_a_connection_that_survives(
        fuzzer, size, mode, target, with_token):
    """Declared: answered after its headers, before the body is sent (a client that
    reads while it sends can stop), then read and dropped, and the connection serves the
    next request. Chunked: answered when it ends. With Expect: 100-continue: answered
    instead of the 100, and nothing of the body is sent."""
    method, path = target
    token = f"X-Auth-Token: {fuzzer.token}\r\n" if with_token else ""
    framing = "Transfer-Encoding: chunked" if mode == "chunked" else f"Content-Length: {size}"
    expect = "Expect: 100-continue\r\n" if mode == "expect" else ""
    head = (f"{method} {path} HTTP/1.1\r\nHost: lab\r\n{token}{expect}{framing}\r\n"
            f"Content-Type: application/json\r\n\r\n").encode()
    want = 413 if with_token else 401
    with socket.create_connection((fuzzer.host, fuzzer.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(head)
        if mode == "chunked":
            for start in range(0, size, 65536):
                piece = b" " * min(65536, size - start)
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        elif mode == "declared":
            sock.sendall(b" " * 65536)
        status, data = _raw_answer(sock)
        fuzzer.sent += 1
        assert status == want, (status, data[:200])
        assert_error_shape(status, data, f"{mode} {size} {method} {path}")
        if mode == "expect":
            return
        if mode == "declared":
            sock.sendall(b" " * (size - 65536))
        sock.sendall(f"GET /v2.1/flavors HTTP/1.1\r\nHost: lab\r\nX-Auth-Token: "
                     f"{fuzzer.token}\r\n\r\n".encode())
        status, data = _raw_answer(sock)
        fuzzer.sent += 1
        assert status == 200 and json.loads(data)["flavors"], (status, data[:200])


@pytest.mark.timeout(60)
def test_headers_past_tornados_cap_close_that_connection_only(fuzz_lab, fuzzer):
    """Between MAX_HEADER_BYTES and HEADER_CAP_BYTES the answer is a 400 (the fuzz sends
    those); beyond the cap tornado stops reading and closes the connection, unanswered,
    and the API serves everyone else as before."""
    with socket.create_connection((fuzzer.host, fuzzer.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(b"GET /v2.1/servers HTTP/1.1\r\nHost: lab\r\nX-Pad: ")
        try:
            sock.sendall(b"p" * (HEADER_CAP_BYTES + 1) + b"\r\n\r\n")
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
    fuzzer.sent += 1
    assert fuzz_lab.api.get("/flavors")["flavors"]


def _settled(fuzzer: Fuzzer) -> list[str]:
    """What is not at rest yet: an instance with a task or not ACTIVE/ERROR/resized, a
    migration still moving, or one finished whose instance is not waiting to confirm."""
    now = fuzzer.snapshot()
    instances = {r["uuid"]: r for r in now["instances"]}
    busy = [f"{r['uuid']} {r['vm_state']}/{r['task_state']}" for r in instances.values()
            if not r["deleted"] and (r["task_state"] is not None or
                                     r["vm_state"] not in ("active", "error", "resized"))]
    for m in now["migrations"]:
        inst = instances[m["instance_uuid"]]
        if m["status"] in MIGRATION_MOVING or (m["status"] == "finished" and (
                inst["deleted"] or inst["vm_state"] != "resized")):
            busy.append(f"migration {m['id']} {m['status']} of {inst['uuid']} "
                        f"{inst['vm_state']}/{inst['task_state']}")
    return busy


@pytest.mark.timeout(120)
def test_zz_afterwards_everything_is_at_rest_and_other_traffic_went_active(fuzz_lab, fuzzer,
                                                                         capsys, wait_until):
    """Last in the module: what the fuzz started has ended, and the bystander's boots
    (all through the module, and one more now) went ACTIVE."""
    elapsed = time.monotonic() - fuzzer.started
    fuzzer.bystander.stop.set()
    fuzzer.bystander.join(60)
    wait_until(lambda: not _settled(fuzzer), 60,
               f"at rest (still busy: {_settled(fuzzer)[:10]})", interval=0.2)
    fuzzer.check_db()
    listing = fuzz_lab.api.get("/servers/detail")["servers"]
    assert all(s["status"] in FINAL_STATUSES for s in listing), \
        Counter(s["status"] for s in listing)
    records, errors = fuzzer.bystander.records, fuzzer.bystander.errors
    assert not errors, errors[:5]
    assert records and all(r["status"] == "ACTIVE" for r in records), \
        Counter(r["status"] for r in records)
    assert fuzz_lab.wait(fuzz_lab.boot(f"{BYSTANDER}after"), timeout=30)["status"] == "ACTIVE"
    with capsys.disabled():
        print(f"\napi fuzz: {fuzzer.sent} requests in {elapsed:.1f}s "
              f"({dict(sorted(fuzzer.statuses.items()))}); {len(fuzzer.known)} servers made, "
              f"accepted actions {dict(Counter(a for _, a, _ in fuzzer.writes))}; "
              f"{len(records)} bystander boots ACTIVE; servers now "
              f"{dict(Counter(s['status'] for s in listing))}")
