"""The commands about what a lab leaves on disk: its trace (``trace``: summary or export;
``replay``: played back in the terminal or the dashboard) and its run directory
(``clean``: old labs' directories removed by ``lab.housekeeping``'s rule). Added to the
command line by ``lab.cli``."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

from orchestrator.messaging.tracelog import TRACE_FILE

from .housekeeping import KEEP_LAST, prune, survey

__all__ = ["add_commands", "cmd_trace", "cmd_replay", "cmd_clean"]

EXTENSIONS = {"jsonl": "jsonl", "chrome": "json", "shiviz": "log"}


def cmd_trace(args: argparse.Namespace) -> int:
    from .remote import resolve_run_dir
    from .trace import Trace
    path = Path(args.file) if args.file else resolve_run_dir(args.run_dir) / TRACE_FILE
    trace = Trace.load(path)
    if not args.export:
        print(trace.summary_text())
        print()
        print(trace.table())
        return 0
    out = Path(args.out or f"trace.{EXTENSIONS[args.export]}")
    if args.export == "jsonl":
        trace.save(out)
    elif args.export == "chrome":
        trace.to_chrome(out)
    else:
        trace.to_shiviz(out)
    print(f"wrote {len(trace)} events as {args.export} to {out}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Play a saved trace in the terminal, paced by its own timestamps / --speed; or, with
    --dashboard, in the dashboard (seek and speed in the page) until Ctrl-C."""
    from .trace import Trace, short
    if args.dashboard:
        return _replay_dashboard(args)
    trace = Trace.load(args.file).routed()
    if args.instance:
        trace = trace.filter(lambda e: e["instance_uuid"].startswith(args.instance))
    if not args.db_proxy:
        trace = trace.without_db_proxy()
    previous = None
    for e in trace:
        if previous is not None and args.speed > 0:
            time.sleep(min(2.0, max(0.0, e["ts"] - previous) / args.speed))
        previous = e["ts"]
        print(f"{e['seq']:6}  {short(e['src']):>10} -> {short(e['dst']):<10} "
              f"{e['kind']:6} {e['method']:24} attempt {e['attempt']}", flush=True)
    print(f"{len(trace)} messages replayed")
    return 0


def _replay_dashboard(args: argparse.Namespace) -> int:
    from .replay import ReplayDashboard
    with ReplayDashboard(args.file, args.speed or 1.0) as dash:
        print(f"replaying {args.file}: {dash.url}   (Ctrl-C stops)", flush=True)
        try:
            dash.proc.wait()
        except KeyboardInterrupt:
            pass
    return 0


def _size(nbytes: int) -> str:
    """``532 B``, ``1.4 MB``: bytes for a person."""
    size, unit = float(nbytes), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def cmd_clean(args: argparse.Namespace) -> int:
    """Remove stopped labs' run directories by ``lab.housekeeping``'s rule: running, kept
    and ones holding your own files stay, and so do the newest ``--keep`` stopped ones."""
    freed: list[int] = []
    verb = "would remove" if args.dry_run else "removed"

    def report(path: Path, nbytes: int) -> None:
        freed.append(nbytes)
        print(f"{verb} {path}  ({_size(nbytes)})", flush=True)

    removed = prune(keep_last=args.keep, dry_run=args.dry_run, report=report)
    left: dict[str, int] = {}
    for run in survey():
        if run.path not in removed:
            left[run.state] = left.get(run.state, 0) + 1
    print(f"{verb} {len(removed)} lab(s), {'would free' if args.dry_run else 'freed'} "
          f"{_size(sum(freed))}; left " +
          (", ".join(f"{n} {state}" for state, n in sorted(left.items())) or "none"))
    return 0


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """``trace``, ``replay`` and ``clean``, by ``lab.cli``'s ``add``."""
    trace = add("trace", cmd_trace, "summarise or export a lab's trace")
    trace.add_argument("--export", choices=["jsonl", "chrome", "shiviz"])
    trace.add_argument("--out", help="output file")
    trace.add_argument("--file", help="a saved trace.jsonl instead of a lab's")
    replay = add("replay", cmd_replay, "play a saved trace in the terminal", lab=False)
    replay.add_argument("file")
    replay.add_argument("--speed", type=float, default=1.0, help="0 = no pacing")
    replay.add_argument("--instance", default="", help="only this instance (uuid prefix)")
    replay.add_argument("--db-proxy", action="store_true", help="include DB proxy calls")
    replay.add_argument("--dashboard", action="store_true",
                        help="replay in the dashboard (prints its URL) instead")
    clean = add("clean", cmd_clean, "remove old labs' run directories (running, kept "
                "and the newest stopped ones stay)", lab=False)
    clean.add_argument("--keep", type=_count, default=KEEP_LAST, metavar="N",
                       help="stopped labs to leave, newest first (default %(default)s)")
    clean.add_argument("--dry-run", action="store_true", help="list, remove nothing")
