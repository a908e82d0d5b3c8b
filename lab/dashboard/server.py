"""The dashboard process: a Bokeh server running the directory app next to this file,
bound to 127.0.0.1 on a port the OS picks, served under the path a student's browser
reaches it by (``reach``: directly, or through the Jupyter server) and only to whoever
holds the lab's secret (``access``). BokehJS comes from this server's own static route:
no CDN, no internet.

    python -m lab.dashboard --run-dir DIR        live: a running lab's traffic
    python -m lab.dashboard --replay trace.jsonl [--speed 2]

In live mode it writes its URL to the run directory's ``lab.json`` (``endpoints.dashboard``,
without the token) and, like every service, exits when its parent process dies. When the
lab stops, it stays and replays the lab's own recorded trace (``feed.FollowFeed``)."""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bokeh.application import Application
from bokeh.application.handlers import DirectoryHandler
from bokeh.server.server import BaseServer
from bokeh.server.tornado import BokehTornado
from bokeh.server.util import bind_sockets
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop, PeriodicCallback

from orchestrator import rundir
from orchestrator.messaging.curve import ViewTokens

from . import feed
from .access import LabAccess, install_origin_check
from .reach import Reach, find

__all__ = ["main", "APP_DIR", "PATH"]

APP_DIR = Path(__file__).parent / "app"
PATH = "/dashboard"
REPLAY_LINGER = 60.0   # seconds a stopped lab's replay waits for a browser
log = logging.getLogger("lab.dashboard")


def serve(source: feed.LiveFeed | feed.ReplayFeed | feed.FollowFeed, run_dir: Path | None,
          port: int = 0, reach: Reach | None = None, secret: str | None = None) -> None:
    """Serve the dashboard on 127.0.0.1 under ``reach``'s prefix, asking for ``secret``
    (a fresh one when none is given: a replay's URL carries its own)."""
    feed.install(source)
    sockets, port = bind_sockets("127.0.0.1", port)
    classroom = rundir.read(run_dir).get("class") if run_dir is not None else None
    viewers = None
    if classroom:   # the class's door: the read-only links in the students' tickets
        viewers = ViewTokens(classroom["keys"]).current
        sockets += bind_sockets(classroom["listen"], int(classroom["port"]) + 2)[0]
    reach = reach or Reach("direct")
    secret = secret or secrets.token_urlsafe(32)
    prefix = reach.prefix(port)
    access = LabAccess(secret, run_dir.name if run_dir else f"replay-{port}",
                       cookie_path=prefix or "/", viewers=viewers)
    app = BokehTornado({PATH: Application(DirectoryHandler(filename=str(APP_DIR)))},
                       prefix=prefix, extra_websocket_origins=reach.origins(port),
                       auth_provider=access, exclude_cookies=[access.cookie],
                       keep_alive_milliseconds=10000)
    install_origin_check(app)
    http = HTTPServer(app, xheaders=False)
    http.add_sockets(sockets)
    server = BaseServer(IOLoop.current(), app, http)
    server.start()
    direct = f"http://127.0.0.1:{port}{prefix}{PATH}"
    if run_dir is not None:
        rundir.update(run_dir, endpoints={"dashboard": direct},
                      dashboard={"port": port, "pid": os.getpid()})
        print(f"dashboard at {direct} ({reach.how}: {reach.why})", flush=True)
        if classroom:
            print(f"class dashboard (read-only token) on {classroom['listen']}:"
                  f"{int(classroom['port']) + 2}", flush=True)
    else:
        print(f"dashboard at {reach.browser_url(port, secret)}", flush=True)
    parent = os.getppid()

    def watch_parent() -> None:
        if os.getppid() != parent:
            log.warning("parent process gone: stopping")
            IOLoop.current().stop()
    PeriodicCallback(watch_parent, 1000).start()
    PeriodicCallback(_linger_check(source, server), 1000).start()
    signal.signal(signal.SIGTERM, lambda *_: IOLoop.current().add_callback_from_signal(
        IOLoop.current().stop))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        IOLoop.current().start()
    finally:
        source.stop()
        server.stop()


def _linger_check(source: Any, server: BaseServer) -> Callable[[], None]:
    """After the lab has stopped, the replay stays while a browser watches it and for
    ``REPLAY_LINGER`` seconds after the last one left (or none came): then it exits."""
    unwatched: dict[str, float] = {}

    def check() -> None:
        if getattr(source, "stopped_at", None) is None:
            return
        watched = any(s.connection_count for s in server.get_sessions(PATH))
        now = time.monotonic()
        if watched:
            unwatched.clear()
        elif now - unwatched.setdefault("since", now) > replay_linger():
            log.info("lab stopped and nobody watching its replay: exiting")
            IOLoop.current().stop()
    return check


def replay_linger() -> float:
    return float(os.environ.get("CONDUCTOR_LAB_REPLAY_LINGER", REPLAY_LINGER))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.dashboard")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--run-dir", type=Path, help="a running lab's run directory")
    mode.add_argument("--replay", type=Path, help="a saved trace (JSON Lines)")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed factor")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="", help="ignored (the lab passes it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s dashboard %(levelname)s %(name)s: %(message)s")
    try:
        if args.replay:
            source: feed.FollowFeed | feed.ReplayFeed = feed.ReplayFeed(args.replay,
                                                                        args.speed)
            reach, secret = find(), None
        else:
            rundir.wait_for(args.run_dir, "endpoints", "api", timeout=60)
            source = feed.FollowFeed(args.run_dir)
            reach = Reach.from_dict(rundir.read(args.run_dir).get("dashboard", {}).get("reach"))
            secret = rundir.secret(args.run_dir)
    except (OSError, ValueError, TimeoutError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    serve(source, None if args.replay else args.run_dir, args.port, reach, secret)
    return 0
