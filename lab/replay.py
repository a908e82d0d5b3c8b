"""``lab.replay(path)``: play a recorded trace in the dashboard, with seek and speed, with
no services running (the dashboard process reads the file itself)."""
from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from .cluster import LabError
from .trace import Trace

__all__ = ["replay", "ReplayDashboard"]


class ReplayDashboard:
    """A dashboard process replaying one trace file; ``stop()`` (or leaving the ``with``
    block, or interpreter exit) ends it."""

    def __init__(self, path: str | Path, speed: float = 1.0):
        Trace.load(path)   # a clear error here, not in a child's log
        self.path = Path(path)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.dashboard", "--replay", str(self.path),
             "--speed", str(speed)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("dashboard at "):
            self.stop()
            raise LabError(f"the replay dashboard did not start (exit {self.proc.returncode})")
        self.url = line.split(" at ", 1)[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> ReplayDashboard:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            self.stop()
        except Exception:
            pass

    def show(self, layout: str = "notebook", metrics: Sequence[str] = (),
             height: int | None = None) -> Any:
        """The replay in the notebook, reached the way the live dashboard is, in
        ``layout`` with ``metrics`` first (as ``Lab.show``)."""
        from IPython.display import HTML

        from .dashboard.frame import FRAME_HEIGHTS, frame_html, view_url
        from .dashboard.reach import Reach
        how = "direct" if self.url.startswith("http://127.0.0.1:") else "jupyter"
        return HTML(frame_html(view_url(self.url, layout, metrics), Reach(how),
                               height=height or FRAME_HEIGHTS[layout]))

    def _repr_html_(self) -> str:
        url = html.escape(self.url, quote=True)
        return f"<a href='{url}' target='_blank'>replay of {html.escape(self.path.name)}</a>"


def replay(path: str | Path, speed: float = 1.0) -> ReplayDashboard:
    return ReplayDashboard(path, speed)
