"""The benchmark's baseline: the least a brokered RPC over pyzmq can cost.

A raw ROUTER broker forwards ``[dst, payload]`` frames between DEALERs without looking
inside; the echo peer unpacks the msgpack payload and packs it back (as any RPC must).
No envelope, no routing table, no trace, no faults: what the lab's bus adds on top of
this is what ``python -m lab bench bus`` measures.

    python -m lab.bench_raw broker ENDPOINT_FILE
    python -m lab.bench_raw echo BROKER_ENDPOINT
"""
from __future__ import annotations

import os
import sys

import msgpack
import zmq

__all__ = ["broker", "echo"]


def broker(endpoint_file: str) -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.SNDHWM, 100_000)
    router.setsockopt(zmq.RCVHWM, 100_000)
    router.bind("tcp://127.0.0.1:0")
    tmp = endpoint_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(router.getsockopt_string(zmq.LAST_ENDPOINT))
    os.replace(tmp, endpoint_file)
    parent = os.getppid()
    while os.getppid() == parent:
        if not router.poll(500):
            continue
        while True:
            try:
                src, dst, payload = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except ValueError:
                continue
            router.send_multipart([dst, src, payload])


def echo(endpoint: str) -> None:
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.SNDHWM, 100_000)
    dealer.setsockopt(zmq.RCVHWM, 100_000)
    dealer.setsockopt(zmq.IDENTITY, b"echo")
    dealer.connect(endpoint)
    sunk = 0
    parent = os.getppid()
    while os.getppid() == parent:
        if not dealer.poll(500):
            continue
        while True:
            try:
                src, payload = dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            msg = msgpack.unpackb(payload)
            if msg.get("kind") == "cast":
                sunk += 1
                continue
            if msg.get("method") == "sunk_count":
                msg["args"] = {"result": sunk}
            dealer.send_multipart([src, msgpack.packb(msg)])


if __name__ == "__main__":
    {"broker": broker, "echo": echo}[sys.argv[1]](sys.argv[2])
