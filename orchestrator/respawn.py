"""Serve a function in a child process and start it again when it dies of anything but a
clean stop: for a process that faces input it cannot fully trust (a class's door, where
a student can make libzmq abort), so that one bad peer costs a restart, not the service.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from typing import Any, Callable

__all__ = ["serve", "alive", "RESTART_AFTER"]

log = logging.getLogger("orchestrator.respawn")
RESTART_AFTER = 1.0     # seconds between a death and the next start
STOP_GRACE = 3          # seconds a stopping child has before SIGKILL


def alive(pid: object) -> bool:
    """Whether process ``pid`` runs (an int; a zombie, exited but not yet reaped, does
    not; another user's process does)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


def _term_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies (it waits in ``waitpid`` and
    would not notice), so the child it serves stops too."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve(main: Callable[[Callable[[], None]], None], what: str) -> int:
    """Run ``main(ready)`` in a forked child until it returns (exit 0) or this process
    gets SIGTERM (passed on to the child) or loses its parent; a child that dies
    otherwise (a signal, an exception) is logged and started again, unless it died
    before calling ``ready()`` the first time (it cannot start: exit 1, and say so).
    Call it before any thread or ZeroMQ context exists in this process: only the child
    makes them."""
    parent, child = os.getppid(), {"pid": 0}
    stopping: list[bool] = []

    def signal_child(sig: int) -> None:
        if child["pid"]:
            try:
                os.kill(child["pid"], sig)
            except ProcessLookupError:
                pass

    def on_term(*_: Any) -> None:
        stopping.append(True)
        signal_child(signal.SIGTERM)
        signal.alarm(STOP_GRACE)          # a child that does not stop by then is killed
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGALRM, lambda *_: signal_child(signal.SIGKILL))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _term_with_parent()
    ever_ready = False
    while not stopping and os.getppid() == parent:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)   # until main() says otherwise
            signal.signal(signal.SIGALRM, signal.SIG_DFL)

            def ready() -> None:
                os.write(write_end, b"r")
            try:
                main(ready)
            except BaseException:   # noqa: BLE001 - the parent logs and restarts
                log.exception("%s failed", what)
                os._exit(1)
            os._exit(0)
        os.close(write_end)
        child["pid"] = pid
        if stopping:                      # the SIGTERM came between fork() and now
            signal_child(signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        child["pid"] = 0
        ever_ready = ever_ready or bool(os.read(read_end, 1))
        os.close(read_end)
        code = os.waitstatus_to_exitcode(status)
        if stopping or code == 0:
            break
        if not ever_ready:
            log.error("%s could not start (%s): giving up", what, code)
            return 1
        log.error("%s died (%s): starting it again", what,
                  f"signal {-code}" if code < 0 else f"exit {code}")
        time.sleep(RESTART_AFTER)
    return 0
