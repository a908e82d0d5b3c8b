"""Unit tests for orchestrator.messaging.protocol: the wire spec."""
from __future__ import annotations

import json
import random

import msgpack
import pytest

from orchestrator.messaging import protocol
from orchestrator.messaging.protocol import ProtocolError

REASONS = {"oversized", "not_msgpack", "bad_envelope", "bad_version", "unknown_kind"}


def _env(**kw):
    base = dict(kind="call", src="conductor.c0", topic="compute", method="build",
                server="c1", args={"flavor": "m1.tiny", "n": 2},
                ctx={"request_id": "req-1", "instance_uuid": "uuid-1", "attempt": 1})
    base.update(kw)
    return protocol.envelope(base.pop("kind"), base.pop("src"), base.pop("topic"),
                             base.pop("method"), **base)


def _raw(env) -> bytes:
    """Bytes built without going through protocol.encode (which validates nothing)."""
    return msgpack.packb(env, use_bin_type=True)


def _reason(data: bytes, **kw) -> str:
    with pytest.raises(ProtocolError) as info:
        protocol.decode(data, **kw)
    assert info.value.reason in REASONS
    return info.value.reason


# -- envelope / encode / decode ------------------------------------------------------------

def test_envelope_has_every_field_with_its_type():
    env = _env()
    assert set(env) == set(protocol.ENVELOPE_FIELDS)
    for key, types in protocol.ENVELOPE_FIELDS.items():
        assert type(env[key]) in types, key
    assert env["v"] == protocol.VERSION
    assert env["reply_to"] == ""


def test_envelope_defaults_are_fresh_empty_maps():
    a = protocol.envelope("cast", "api.a", "conductor", "m")
    b = protocol.envelope("cast", "api.a", "conductor", "m")
    assert a["args"] == {} and a["ctx"] == {} and a["server"] == ""
    assert a["args"] is not b["args"]
    assert a["msg_id"] != b["msg_id"]


def test_envelope_rejects_unknown_kind():
    with pytest.raises(ProtocolError) as info:
        protocol.envelope("shout", "api.a", "conductor", "m")
    assert info.value.reason == "unknown_kind"


@pytest.mark.parametrize("kind", sorted(protocol.KINDS))
def test_encode_decode_round_trip(kind):
    env = _env(kind=kind, args={"s": "ü\n\"", "i": -3, "f": 1.5, "none": None,
                                "l": [1, "two", [3.0]], "m": {"k": {"deep": True}},
                                "b": b"\x00\xff"})
    data = protocol.encode(env)
    assert isinstance(data, bytes)
    assert protocol.decode(data) == env


def test_decode_rejects_random_bytes_as_not_msgpack():
    assert _reason(b"\xc1\xc1\xc1") == "not_msgpack"   # 0xc1 is never used by msgpack
    assert _reason(b"") == "not_msgpack"


def test_decode_rejects_truncated_frame():
    data = protocol.encode(_env())
    for cut in (1, 5, len(data) // 2, len(data) - 1):
        assert _reason(data[:cut]) == "not_msgpack", cut


def test_decode_rejects_trailing_garbage():
    assert _reason(protocol.encode(_env()) + b"\x00") == "not_msgpack"


@pytest.mark.parametrize("value", [[1, 2, 3], "a string", 42, None, 1.5])
def test_decode_rejects_non_map_as_bad_envelope(value):
    assert _reason(_raw(value)) == "bad_envelope"


@pytest.mark.parametrize("field", sorted(set(protocol.ENVELOPE_FIELDS) - {"v"}))
def test_decode_rejects_missing_field(field):
    env = _env()
    del env[field]
    assert _reason(_raw(env)) == "bad_envelope"


def test_decode_missing_version_is_bad_version():
    env = _env()
    del env["v"]
    assert _reason(_raw(env)) == "bad_version"


@pytest.mark.parametrize("field,value", [
    ("args", [1, 2]), ("args", None), ("ctx", "x"), ("v", True), ("v", 1.0),
    ("kind", 1), ("msg_id", b"bytes"), ("reply_to", None), ("src", 5),
    ("topic", ["compute"]), ("server", {}), ("method", 0), ("sent", "now"),
    ("sent", True), ("sent", None),
])
def test_decode_rejects_wrong_types(field, value):
    env = _env()
    env[field] = value
    assert _reason(_raw(env)) == "bad_envelope"


def test_decode_accepts_int_sent():
    env = _env()
    env["sent"] = 1700000000
    assert protocol.decode(_raw(env))["sent"] == 1700000000


@pytest.mark.parametrize("version", [0, 2, -1, 999])
def test_decode_rejects_wrong_version(version):
    env = _env()
    env["v"] = version
    assert _reason(_raw(env)) == "bad_version"


def test_decode_rejects_unknown_kind():
    env = _env()
    env["kind"] = "shout"
    assert _reason(_raw(env)) == "unknown_kind"


def test_decode_rejects_oversized_before_parsing():
    data = protocol.encode(_env())
    assert protocol.decode(data, max_bytes=len(data)) is not None  # the limit is inclusive
    assert _reason(data, max_bytes=len(data) - 1) == "oversized"
    big = protocol.encode(_env(args={"blob": "x" * protocol.MAX_MESSAGE_BYTES}))
    assert _reason(big) == "oversized"
    assert _reason(b"\xc1" * (protocol.MAX_MESSAGE_BYTES + 1)) == "oversized"


@pytest.mark.parametrize("value", [object(), {1, 2}, 2 ** 70, complex(1, 2)])
def test_encode_rejects_non_msgpack_values(value):
    with pytest.raises(ProtocolError) as info:
        protocol.encode(_env(args={"x": value}))
    assert info.value.reason == "bad_envelope"


def test_whatever_encode_accepts_decode_accepts():
    """A reply whose result is keyed by integers (msgpack maps may be): the sender
    encodes it and the receiver decodes the very same value back."""
    env = _env(kind="reply", args={"result": {1: "one", 2: "two"}})
    assert protocol.decode(protocol.encode(env))["args"] == {"result": {1: "one", 2: "two"}}


# -- the trace tap's batches and the control verbs ----------------------------------------
def _event(seq: int, **kw) -> dict:
    return protocol.trace_event(seq, _env(**kw), "routed", "compute.compute1", 10)


def test_a_trace_batch_round_trips_in_seq_order():
    events = [_event(1), _event(2, kind="call"), _event(5)]
    assert protocol.decode_batch(protocol.encode_batch(events)) == events
    assert protocol.decode_batch(protocol.encode_batch([])) == []


@pytest.mark.parametrize("batch, problem", [
    ({"seq": 1}, "not a list"),
    ([1, 2], "not a map"),
    ([{**_event(1), "seq": "1"}], "'seq'"),
    ([{**_event(1), "attempt": 1.5}], "'attempt'"),
    ([{k: v for k, v in _event(1).items() if k != "phase"}], "'phase'"),
    ([_event(2), _event(1)], "out of order"),
])
def test_a_bad_trace_batch_is_a_protocol_error(batch, problem):
    with pytest.raises(ProtocolError, match=problem):
        protocol.decode_batch(protocol.encode_batch(batch))
    with pytest.raises(ProtocolError) as garbage:
        protocol.decode_batch(b"\xc1\xc1")
    assert garbage.value.reason == "not_msgpack"


def test_control_envelopes_go_to_the_bus_itself():
    env = protocol.control("compute.compute1", protocol.EXPIRED, call={"x": 1})
    assert (env["kind"], env["topic"], env["method"], env["args"]) == \
        ("control", protocol.CONTROL_TOPIC, "expired", {"call": {"x": 1}})
    assert protocol.decode(protocol.encode(env))["src"] == "compute.compute1"


def test_protocol_error_is_a_value_error_with_default_reason():
    exc = ProtocolError("x")
    assert isinstance(exc, ValueError)
    assert exc.reason == "bad_envelope"


# -- fuzz ---------------------------------------------------------------------------------

def test_fuzz_random_bytes_only_raise_protocol_error():
    rng = random.Random(1)
    reasons = set()
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(0, 80))
        with pytest.raises(ProtocolError) as info:  # any other exception escapes
            protocol.decode(data)
        reasons.add(info.value.reason)
    assert reasons <= REASONS
    assert {"not_msgpack", "bad_envelope"} <= reasons


def test_fuzz_mutated_frames_decode_or_raise_protocol_error():
    rng = random.Random(2)
    base = bytearray(protocol.encode(_env()))
    outcomes = {"ok": 0, "error": 0}
    for _ in range(2000):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            env = protocol.decode(bytes(data))
        except ProtocolError as exc:
            assert exc.reason in REASONS
            outcomes["error"] += 1
        else:
            assert set(env) >= set(protocol.ENVELOPE_FIELDS)
            outcomes["ok"] += 1
    assert outcomes["error"] > 0


# -- replies and identities ----------------------------------------------------------------

def test_reply_to_addresses_the_caller_and_carries_the_result():
    call = _env(src="conductor.c0")
    reply = protocol.reply_to(call, "compute.c1", result={"host": "c1"})
    assert reply["kind"] == "reply"
    assert (reply["topic"], reply["server"]) == ("conductor", "c0")
    assert reply["src"] == "compute.c1"
    assert reply["reply_to"] == call["msg_id"]
    assert reply["msg_id"] != call["msg_id"]
    assert reply["method"] == call["method"]
    assert reply["ctx"] == call["ctx"]
    assert reply["args"] == {"result": {"host": "c1"}}
    assert protocol.decode(protocol.encode(reply)) == reply


def test_reply_to_a_bare_topic_caller():
    call = _env(src="api")
    reply = protocol.reply_to(call, "compute.c1", result=None)
    assert (reply["topic"], reply["server"]) == ("api", "")
    assert reply["args"] == {"result": None}


def test_reply_to_carries_the_error_type_and_message():
    reply = protocol.reply_to(_env(), "compute.c1", error=ValueError("no valid host"))
    assert reply["args"] == {"error": {"type": "ValueError", "message": "no valid host"}}
    assert "result" not in reply["args"]


@pytest.mark.parametrize("name,parts", [
    ("compute.compute2", ("compute", "compute2")), ("conductor", ("conductor", "")),
    ("a.b.c", ("a", "b.c")), ("", ("", "")),
])
def test_split_identity(name, parts):
    assert protocol.split_identity(name) == parts


def test_identity_and_split_are_inverse():
    assert protocol.identity("compute", "c2") == "compute.c2"
    assert protocol.identity("conductor", "") == "conductor"
    for topic, server in [("compute", "c2"), ("conductor", "")]:
        assert protocol.split_identity(protocol.identity(topic, server)) == (topic, server)


# -- trace events ---------------------------------------------------------------------------

def test_trace_event_has_exactly_the_trace_fields():
    env = _env()
    e = protocol.trace_event(7, env, "routed", "compute.c1", 123, ts=5.5)
    assert tuple(e) == protocol.TRACE_FIELDS
    assert e["seq"] == 7 and e["ts"] == 5.5 and e["phase"] == "routed"
    assert e["dst"] == "compute.c1" and e["bytes"] == 123 and e["reason"] == ""
    assert (e["request_id"], e["instance_uuid"], e["attempt"]) == ("req-1", "uuid-1", 1)
    assert e["msg_id"] == env["msg_id"] and e["kind"] == "call"


def test_trace_event_defaults_for_empty_ctx():
    env = protocol.envelope("cast", "api.a", "conductor", "m")
    e = protocol.trace_event(1, env, "queued", "conductor", 10, "no live server")
    assert (e["request_id"], e["instance_uuid"], e["attempt"]) == ("", "", 0)
    assert e["reason"] == "no live server"
    assert isinstance(e["ts"], float)


def test_trace_event_non_int_attempt_is_zero():
    env = _env(ctx={"attempt": "3"})
    assert protocol.trace_event(1, env, "routed", "x", 1)["attempt"] == 0


def test_trace_event_attempt_is_always_an_int():
    e = protocol.trace_event(1, _env(ctx={"attempt": True}), "routed", "x", 1, ts=1.0)
    assert type(e["attempt"]) is int
    parsed = json.loads(protocol.trace_json(e))
    assert {k: type(v) for k, v in parsed.items()} == {k: type(v) for k, v in e.items()}


NASTY = ['he said "hi"', "back\\slash\\", "ünïcödé ☃ 🚀 中文", "line\nbreak\r\ttab",
         "\x00\x01\x1f\x7f", "</script>", "\u2028\u2029", "", "'single'", "\\u0041"]


@pytest.mark.parametrize("text", NASTY)
def test_trace_json_parses_back_to_the_event(text):
    env = _env(src=text, topic=text, method=text, server=text,
               ctx={"request_id": text, "instance_uuid": text, "attempt": 3})
    e = protocol.trace_event(2 ** 40, env, "dropped", text, 99, reason=text,
                             ts=1712345678.123456789)
    line = protocol.trace_json(e)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed == e
    assert list(parsed) == list(protocol.TRACE_FIELDS)
    assert type(parsed["ts"]) is float and parsed["ts"] == e["ts"]


def test_trace_json_matches_json_dumps_semantics():
    e = protocol.trace_event(1, _env(), "routed", "compute.c1", 5, ts=0.1)
    assert json.loads(protocol.trace_json(e)) == json.loads(json.dumps(e))


def test_new_id_is_unique_hex():
    ids = [protocol.new_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    for i in ids[:10] + ids[-10:]:
        int(i, 16)
