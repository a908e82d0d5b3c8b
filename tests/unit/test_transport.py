"""The transport's call on its own (a DEALER connected to nothing: no bus answers)."""
from __future__ import annotations

import asyncio

import pytest

from orchestrator.config import BusConfig
from orchestrator.messaging import protocol
from orchestrator.messaging.transport import Transport


def _transport(tmp_path) -> Transport:
    return Transport(f"ipc://{tmp_path}/nobody.sock", "compute", "c1", BusConfig(),
                     watch_parent=False)


def test_a_call_with_no_reply_times_out_and_tells_the_bus(tmp_path):
    async def go():
        t = _transport(tmp_path)
        sent = []
        t.send = sent.append
        env = t.envelope("call", "conductor", "ping")
        with pytest.raises(protocol.MessagingTimeout, match="conductor.ping within 0.05s"):
            await t.call(env, timeout=0.05)
        assert [e["method"] for e in sent] == ["ping", "expired"]
        assert t._pending == {}
        t._sock.close(0)
        t._ctx.term()
    asyncio.run(go())


def test_a_cancelled_call_is_cancelled_and_forgotten(tmp_path):
    async def go():
        t = _transport(tmp_path)
        t.send = lambda env: None
        task = asyncio.ensure_future(t.call(t.envelope("call", "conductor", "ping"), 5))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert t._pending == {}
        t._sock.close(0)
        t._ctx.term()
    asyncio.run(go())


def test_run_ends_even_when_a_task_swallows_its_cancel(tmp_path):
    """3.11's wait_for can swallow a cancel; run() cancels such a task again, so a stop
    (SIGTERM) never leaves a many-host compute waiting for it forever."""
    async def go():
        t = _transport(tmp_path)
        t.send = lambda env: None
        rounds = []

        async def stubborn():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                rounds.append("swallowed")
            await asyncio.sleep(30)
        t.spawn(stubborn())
        asyncio.get_running_loop().call_later(0.05, t.stop, "test")
        assert await asyncio.wait_for(t.run(), 10) == "test"
        assert rounds == ["swallowed"]
    asyncio.run(go())
