"""The command line: ``python -m lab <command>`` (also installed as ``conductor-lab``).

``up`` starts a lab and keeps it running until Ctrl-C; ``demo`` tells the seed's story
in a minute; ``bench`` runs the benchmarks."""
from __future__ import annotations

import argparse
import sys
import time

from orchestrator.config import ConfigError

from .cluster import LabError
from .lab import Lab

__all__ = ["main"]


def cmd_up(args: argparse.Namespace) -> int:
    """Start a lab and keep it until Ctrl-C (services may be killed meanwhile: that is
    what lessons do; only losing the bus ends it)."""
    try:
        lab = Lab(computes=args.computes, seed=args.seed, preset=args.preset,
                  flow=args.flow, run_dir=args.run_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        lab.start()
        print(f"lab running in {lab.run_dir}", flush=True)
        print(f"  api     {lab.api_url}/v2.1")
        for name, endpoint in lab.cluster.endpoints.items():
            print(f"  {name:7} {endpoint}")
        print(f"  {args.computes} computes, preset {args.preset}, flow {args.flow}, "
              f"seed {args.seed}")
        print("Ctrl-C stops it.", flush=True)
        while lab.cluster.children["bus"].alive():
            time.sleep(0.5)
        print("the bus exited; stopping the lab", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        lab.stop()


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
    up.add_argument("--computes", type=int, default=3)
    up.add_argument("--seed", type=int, default=0)
    up.add_argument("--preset", choices=["fast", "demo"], default="demo")
    up.add_argument("--flow", choices=["conductor", "legacy"], default="conductor")
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
