"""Unit tests for orchestrator.messaging.server.RPCServer.dispatch, with a fake transport."""
from __future__ import annotations

import asyncio
import inspect
import logging

import pytest

from orchestrator.messaging import protocol
from orchestrator.messaging.fake import FakeTransport
from orchestrator.messaging.server import NoSuchMethod, RPCServer

CALLER = "conductor.k0"


class Manager:
    colour = "blue"   # public, but not callable

    def __init__(self) -> None:
        self.secret_called = False
        self.casts: list[tuple] = []

    def add(self, ctx, a, b):
        self.casts.append((ctx, a, b))
        return a + b

    async def slow_add(self, ctx, a, b):
        await asyncio.sleep(0)
        return a + b

    def fail(self, ctx):
        raise ValueError("no valid host")

    async def afail(self, ctx):
        await asyncio.sleep(0)
        raise RuntimeError("async boom")

    def _secret(self, ctx):
        self.secret_called = True
        return "secret"

    def unencodable(self, ctx):
        return object()

    def int_keys(self, ctx):
        return {1: "one"}

    def nothing(self, ctx):
        return None


class Other:
    def add(self, ctx, a, b):  # shadowed by Manager.add (first endpoint wins)
        return "other"

    def only_here(self, ctx):
        return "other endpoint"


@pytest.fixture
def rig():
    transport = FakeTransport("compute", "c1")    # sends through the wire format
    manager = Manager()
    server = RPCServer(transport, [manager, Other()])
    return server, transport, manager


def _msg(kind, method, **args):
    return protocol.envelope(kind, CALLER, "compute", method, server="c1", args=args,
                             ctx={"request_id": "req-9"})


def _assert_reply_to(reply, env):
    assert reply["kind"] == "reply"
    assert reply["src"] == "compute.c1"
    assert (reply["topic"], reply["server"]) == ("conductor", "k0")
    assert reply["reply_to"] == env["msg_id"]
    assert reply["ctx"] == env["ctx"]


def test_server_installs_itself_as_the_handler(rig):
    server, transport, _ = rig
    assert transport.handler == server.dispatch


def test_sync_call_replies_with_the_result(rig):
    server, transport, manager = rig
    env = _msg("call", "add", a=2, b=3)
    assert server.dispatch(env) is None
    assert len(transport.sent) == 1
    _assert_reply_to(transport.sent[0], env)
    assert transport.sent[0]["args"] == {"result": 5}
    assert manager.casts == [({"request_id": "req-9"}, 2, 3)]


def test_call_returning_none_replies(rig):
    server, transport, _ = rig
    server.dispatch(_msg("call", "nothing"))
    assert transport.sent[0]["args"] == {"result": None}


def test_sync_cast_runs_without_reply(rig):
    server, transport, manager = rig
    assert server.dispatch(_msg("cast", "add", a=1, b=1)) is None
    assert transport.sent == []
    assert len(manager.casts) == 1


def test_async_call_returns_an_awaitable_that_replies(rig):
    server, transport, _ = rig
    env = _msg("call", "slow_add", a=20, b=22)
    pending = server.dispatch(env)
    assert inspect.isawaitable(pending)
    assert transport.sent == []   # nothing until it runs
    asyncio.run(pending)
    assert len(transport.sent) == 1
    _assert_reply_to(transport.sent[0], env)
    assert transport.sent[0]["args"] == {"result": 42}


def test_async_cast_runs_without_reply(rig):
    server, transport, _ = rig
    pending = server.dispatch(_msg("cast", "slow_add", a=1, b=2))
    assert inspect.isawaitable(pending)
    asyncio.run(pending)
    assert transport.sent == []


def test_exception_becomes_an_error_reply(rig):
    server, transport, _ = rig
    env = _msg("call", "fail")
    assert server.dispatch(env) is None
    _assert_reply_to(transport.sent[0], env)
    assert transport.sent[0]["args"] == {
        "error": {"type": "ValueError", "message": "no valid host"}}


def test_async_exception_becomes_an_error_reply(rig):
    server, transport, _ = rig
    asyncio.run(server.dispatch(_msg("call", "afail")))
    assert transport.sent[0]["args"] == {
        "error": {"type": "RuntimeError", "message": "async boom"}}


def test_bad_arguments_become_an_error_reply(rig):
    server, transport, _ = rig
    server.dispatch(_msg("call", "add", a=1))
    assert transport.sent[0]["args"]["error"]["type"] == "TypeError"


def test_failed_cast_is_logged_not_replied(rig, caplog):
    server, transport, _ = rig
    with caplog.at_level(logging.ERROR, logger="orchestrator.server"):
        assert server.dispatch(_msg("cast", "fail")) is None
    assert transport.sent == []
    assert "no valid host" in caplog.text


@pytest.mark.parametrize("method", ["no_such_method", "colour", "_secret", "__init__",
                                    "__class__", ""])
def test_unknown_or_private_method_call_gets_an_error_reply(rig, method):
    server, transport, manager = rig
    env = _msg("call", method)
    assert server.dispatch(env) is None
    assert len(transport.sent) == 1
    _assert_reply_to(transport.sent[0], env)
    error = transport.sent[0]["args"]["error"]
    assert error["type"] == "NoSuchMethod"
    assert repr(method) in error["message"]
    assert not manager.secret_called


@pytest.mark.parametrize("method", ["no_such_method", "_secret"])
def test_unknown_or_private_method_cast_gets_no_reply(rig, method, caplog):
    server, transport, manager = rig
    with caplog.at_level(logging.ERROR, logger="orchestrator.server"):
        assert server.dispatch(_msg("cast", method)) is None
    assert transport.sent == []
    assert not manager.secret_called
    assert method in caplog.text


def test_find_walks_the_endpoints_in_order(rig):
    server, transport, _ = rig
    server.dispatch(_msg("call", "add", a=1, b=2))
    server.dispatch(_msg("call", "only_here"))
    assert [r["args"]["result"] for r in transport.sent] == [3, "other endpoint"]
    with pytest.raises(NoSuchMethod):
        server.find("_secret")
    assert issubclass(NoSuchMethod, AttributeError)


def test_unencodable_result_becomes_an_error_reply(rig):
    server, transport, _ = rig
    env = _msg("call", "unencodable")
    assert server.dispatch(env) is None   # no crash
    assert len(transport.sent) == 1
    _assert_reply_to(transport.sent[0], env)
    assert transport.sent[0]["args"]["error"]["type"] == "ProtocolError"
    assert transport.sent[0]["reply_to"] == env["msg_id"]


def test_every_reply_can_be_decoded_by_the_caller(rig):
    server, transport, _ = rig
    server.dispatch(_msg("call", "int_keys"))
    reply = transport.sent[0]
    assert "result" in reply["args"] or "error" in reply["args"]
