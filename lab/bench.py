"""Benchmarks: ``python -m lab bench NAME [--json]``:

- ``bus`` (here): the bus against raw pyzmq;
- ``builds``: builds a second through the whole lab (``lab.bench_builds``);
- ``startup``: a lab ready and stopped, peak RSS (``lab.bench_startup``);
- ``scale``: 10 to 1,000 hosts, select_destinations' cost (``lab.bench_scale``);
- ``moves``: resize paths and object backporting (``lab.bench_moves``);
- ``classroom``: what a class costs a hub (``lab.bench_classroom``);
- ``curve``: a class's CURVE door against the lab's own bus (``lab.bench_curve``).

Speed targets live here, never in timed tests. Every figure is a ratio against a
baseline measured in the same run, because these machines are noisy: the bus is compared
with a raw pyzmq broker (``lab.bench_raw``) carrying a msgpack payload of the same size,
DEALER -> ROUTER broker -> DEALER and back. Rounds alternate between the two sides, and
the median of the rounds is reported.

- call round trip, p50 and p99 (goal: the bus's p50 within 1.25x of the baseline's);
- pipelined casts per second, N casts then one call that returns how many arrived
  (goal: at least 70% of the baseline's throughput).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import msgpack
import zmq

from orchestrator.config import BusConfig
from orchestrator.messaging import protocol
from orchestrator.messaging.blocking import BlockingClient

from .cluster import Cluster

__all__ = ["bench_bus", "main", "GOALS"]

GOALS = {"call_p50_ratio_max": 1.25, "cast_throughput_ratio_min": 0.7}
SUITES = {"builds": ".bench_builds", "startup": ".bench_startup", "scale": ".bench_scale",
          "classroom": ".bench_classroom", "curve": ".bench_curve"}


def counts(option: str, most: int, example: str) -> Callable[[str], list[int]]:
    """An argparse type for an option such as ``--hosts 10,100,1000``: distinct whole
    numbers from 1 to ``most``, smallest first."""
    def parse(text: str) -> list[int]:
        try:
            values = sorted({int(v) for v in text.split(",") if v.strip()})
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} takes numbers like {example}, "
                                             f"not {text!r}") from None
        if not values or values[0] < 1 or values[-1] > most:
            raise argparse.ArgumentTypeError(f"{option}: each between 1 and {most}, "
                                             f"not {text!r}")
        return values
    return parse


class RawPeer:
    """The baseline's client side: a DEALER talking through the raw broker to ``echo``."""

    def __init__(self, tmp: Path):
        endpoint_file = str(tmp / "raw-broker.endpoint")
        self.procs = [subprocess.Popen([sys.executable, "-m", "lab.bench_raw", "broker",
                                        endpoint_file])]
        deadline = time.monotonic() + 20
        while not os.path.exists(endpoint_file):
            if time.monotonic() > deadline:
                raise RuntimeError("raw broker did not start")
            time.sleep(0.01)
        endpoint = Path(endpoint_file).read_text()
        self.procs.append(subprocess.Popen([sys.executable, "-m", "lab.bench_raw", "echo",
                                            endpoint]))
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        self.sock.connect(endpoint)
        self.template = protocol.envelope("call", "lab.bench", "echo", "echo",
                                          server="e1", args={"i": 0})
        while True:  # until the echo peer is connected to the broker
            try:
                self.call(0, timeout_ms=200)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError("raw echo did not connect") from None

    def call(self, i: int, method: str = "echo", timeout_ms: int = 5000) -> Any:
        msg = {**self.template, "method": method, "args": {"i": i}}
        self.sock.send_multipart([b"echo", msgpack.packb(msg)])
        if not self.sock.poll(timeout_ms):
            raise TimeoutError("raw call timed out")
        _, payload = self.sock.recv_multipart()
        return msgpack.unpackb(payload)["args"]

    def cast(self, i: int) -> None:
        msg = {**self.template, "kind": "cast", "method": "sink", "args": {"payload": i}}
        self.sock.send_multipart([b"echo", msgpack.packb(msg)])

    def sunk(self) -> int:
        return self.call(0, "sunk_count")["result"]

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()
        for proc in self.procs:
            proc.terminate()
            proc.wait(5)


class BusPeer:
    """The bus's side: a lab client calling a real ``echo`` service through the bus."""

    def __init__(self, tmp: Path):
        self.cluster = Cluster(tmp / "lab", bus=BusConfig()).start()
        self.cluster.spawn("echo", "e1", wait=True)
        self.client = BlockingClient(self.cluster.endpoints["bus"], "bench",
                                     secret=self.cluster.secret)

    def call(self, i: int) -> Any:
        return self.client.call("echo", "echo", server="e1", i=i)

    def cast(self, i: int) -> None:
        self.client.cast("echo", "sink", server="e1", payload=i)

    def sunk(self) -> int:
        return self.client.call("echo", "sunk_count", server="e1")

    def close(self) -> None:
        self.client.close()
        self.cluster.stop()


def _latencies(peer: Any, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        peer.call(i)
        out.append(time.perf_counter() - t0)
    return out


def _cast_rate(peer: Any, n: int) -> float:
    before = peer.sunk()
    t0 = time.perf_counter()
    for i in range(n):
        peer.cast(i)
    while peer.sunk() < before + n:
        if time.perf_counter() - t0 > 60:
            raise RuntimeError("casts did not all arrive within 60s")
    return n / (time.perf_counter() - t0)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_bus(calls: int = 2000, casts: int = 20000, rounds: int = 3,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure both sides in alternating rounds; return medians and ratios."""
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="conductor-lab-bench-") as tmp:
        peers = {"baseline": RawPeer(Path(tmp)), "bus": BusPeer(Path(tmp))}
        try:
            rows: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": [], "casts": []}
                                                       for k in peers}
            for name, peer in peers.items():  # warm up both
                _latencies(peer, 200)
            for r in range(rounds):
                for name, peer in peers.items():
                    lat = _latencies(peer, calls)
                    rows[name]["p50"].append(_pct(lat, 0.50))
                    rows[name]["p99"].append(_pct(lat, 0.99))
                    rows[name]["casts"].append(_cast_rate(peer, casts))
                    say(f"round {r + 1}/{rounds} {name}: p50 {rows[name]['p50'][-1]*1e6:.0f}us")
        finally:
            for peer in peers.values():
                peer.close()
    med = {name: {k: statistics.median(v) for k, v in cols.items()}
           for name, cols in rows.items()}
    result = {
        "calls_per_round": calls, "casts_per_round": casts, "rounds": rounds,
        "payload_bytes": len(protocol.encode(protocol.envelope(
            "call", "lab.bench", "echo", "echo", server="e1", args={"i": 0}))),
        "baseline": {"call_p50_us": med["baseline"]["p50"] * 1e6,
                     "call_p99_us": med["baseline"]["p99"] * 1e6,
                     "casts_per_s": med["baseline"]["casts"]},
        "bus": {"call_p50_us": med["bus"]["p50"] * 1e6,
                "call_p99_us": med["bus"]["p99"] * 1e6,
                "casts_per_s": med["bus"]["casts"]},
    }
    result["ratios"] = {
        "call_p50": med["bus"]["p50"] / med["baseline"]["p50"],
        "call_p99": med["bus"]["p99"] / med["baseline"]["p99"],
        "cast_throughput": med["bus"]["casts"] / med["baseline"]["casts"],
    }
    result["goals"] = dict(GOALS)
    result["met"] = {
        "call_p50": result["ratios"]["call_p50"] <= GOALS["call_p50_ratio_max"],
        "cast_throughput": result["ratios"]["cast_throughput"] >= GOALS["cast_throughput_ratio_min"],
    }
    return result


def format_bus(r: dict[str, Any]) -> str:
    b, o, x = r["baseline"], r["bus"], r["ratios"]
    lines = [
        f"bus benchmark: {r['rounds']} rounds x {r['calls_per_round']} calls, "
        f"{r['casts_per_round']} casts; payload {r['payload_bytes']} bytes",
        f"{'':22}{'baseline':>12}{'bus':>12}{'ratio':>9}  goal",
        f"{'call p50 (us)':22}{b['call_p50_us']:12.0f}{o['call_p50_us']:12.0f}"
        f"{x['call_p50']:9.2f}  <= {GOALS['call_p50_ratio_max']} "
        f"{'met' if r['met']['call_p50'] else 'MISSED'}",
        f"{'call p99 (us)':22}{b['call_p99_us']:12.0f}{o['call_p99_us']:12.0f}{x['call_p99']:9.2f}",
        f"{'casts per second':22}{b['casts_per_s']:12.0f}{o['casts_per_s']:12.0f}"
        f"{x['cast_throughput']:9.2f}  >= {GOALS['cast_throughput_ratio_min']} "
        f"{'met' if r['met']['cast_throughput'] else 'MISSED'}",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] and argv[0] in SUITES:      # suites with their own options
        import importlib
        return importlib.import_module(SUITES[argv[0]], __package__).main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m lab bench")
    parser.add_argument("suite", choices=["bus", "moves", *SUITES], nargs="?", default="bus",
                        help="builds, startup, scale, classroom and curve take their own "
                             "options: python -m lab bench scale --help")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--calls", type=int, default=2000, help="bus: calls per round")
    parser.add_argument("--casts", type=int, default=20000, help="bus: casts per round")
    parser.add_argument("--migrations", type=int, default=20,
                        help="moves: migrations per mode and round")
    parser.add_argument("--builds", type=int, default=20,
                        help="moves: builds per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if min(args.calls, args.casts, args.rounds, args.migrations, args.builds) < 1:
        parser.error("--calls, --casts, --migrations, --builds and --rounds must be >= 1")
    progress = None if args.json else (lambda m: print(m, file=sys.stderr))
    if args.suite == "moves":
        from .bench_moves import bench_moves, format_moves
        result = bench_moves(args.migrations, args.builds, args.rounds, progress)
        print(json.dumps(result, indent=1) if args.json else format_moves(result))
        return 0
    result = bench_bus(args.calls, args.casts, args.rounds, progress)
    print(json.dumps(result, indent=1) if args.json else format_bus(result))
    return 0
