"""The command line: ``python -m lab <command>`` (also installed as ``conductor-lab``).

``up`` starts a lab and keeps it running until Ctrl-C; ``bench`` runs the benchmarks."""
from __future__ import annotations

import argparse
import sys
import time

from orchestrator.config import BusConfig, ConfigError

from .cluster import Cluster, LabError

__all__ = ["main"]


def cmd_up(args: argparse.Namespace) -> int:
    try:
        config = BusConfig(seed=args.seed, hop_delay=args.hop_delay)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cluster = Cluster(args.run_dir, bus=config)
    try:
        cluster.start()
        for i in range(args.echo):
            cluster.spawn("echo", f"echo{i + 1}", wait=True)
        print(f"lab running in {cluster.run_dir}")
        for name, endpoint in cluster.endpoints.items():
            print(f"  {name:6} {endpoint}")
        print("Ctrl-C stops it.", flush=True)
        while all(c.alive() for c in cluster.children.values()):
            time.sleep(0.5)
        print("a service exited; stopping the lab", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    try:
        run_demo(preset=args.preset, computes=args.computes, instances=args.instances,
                 seed=args.seed)
    except (LabError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main
    return bench_main(args.rest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description="Conductor Lab")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a lab and keep it running until Ctrl-C")
    up.add_argument("--run-dir", default=None, help="where the lab keeps its files")
    up.add_argument("--seed", type=int, default=0)
    up.add_argument("--hop-delay", type=float, default=0.0)
    up.add_argument("--echo", type=int, default=1, help="echo services to start")
    up.set_defaults(func=cmd_up)
    demo = sub.add_parser("demo", help="boot a few instances with one failing compute and "
                          "print each one's story")
    demo.add_argument("--preset", choices=["demo", "fast"], default="demo")
    demo.add_argument("--computes", type=int, default=4)
    demo.add_argument("--instances", type=int, default=5)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    bench = sub.add_parser("bench", help="benchmarks: python -m lab bench bus [--json]",
                           add_help=False)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    args = parser.parse_args(argv)
    return args.func(args)
