"""``python -m orchestrator <service> --run-dir DIR [--host NAME]``: run one service."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .config import ConfigError
from .service import configure_logging
from .services import SERVICES, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator",
                                     description="Run one Conductor Lab service.")
    parser.add_argument("service", choices=sorted(SERVICES),
                        help="; ".join(f"{s.name}: {s.doc}" for s in SERVICES.values()))
    parser.add_argument("--run-dir", required=True, type=Path,
                        help="the lab's run directory (holds lab.json)")
    parser.add_argument("--host", default="", help="server name (default: the service name)")
    parser.add_argument("--hosts", default="",
                        help="compute only: serve these hosts (comma-separated) in this "
                             "one process, each its own compute.HOST on the bus")
    args = parser.parse_args(argv)
    hosts = [h for h in args.hosts.split(",") if h]
    if len(set(hosts)) != len(hosts) or any(not h.isidentifier() for h in hosts):
        parser.error("--hosts takes distinct host names, comma-separated")
    if not args.run_dir.is_dir():
        parser.error(f"run directory {args.run_dir} does not exist")
    host = args.host or (args.service if args.service != "bus" else "bus")
    configure_logging(f"{args.service}.{host}")
    try:
        outcome = run(args.service, args.run_dir, host, hosts)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return outcome if isinstance(outcome, int) else 0   # a service says why; the door, a code


if __name__ == "__main__":
    code = main()
    # Stopped cleanly (sockets closed, files flushed): skip the interpreter's teardown,
    # which a lab of 36 processes stopping at once on 2 cores pays 36 times over.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
