"""orchestrator.respawn: a child that dies is started again; one that cannot start is
not; a clean return ends it. Each case runs in a process of its own (it forks and
handles signals)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from orchestrator import respawn
    respawn.RESTART_AFTER = 0.05
    runs, mode = sys.argv[1], sys.argv[2]

    def main(ready):
        with open(runs, "a") as f:
            f.write("x")
        n = len(open(runs).read())
        if mode == "broken":
            raise RuntimeError("cannot bind")
        ready()
        if n < 3:
            os.kill(os.getpid(), signal.SIGABRT)   # as libzmq's assertion would
    sys.exit(respawn.serve(main, "the thing"))
""")


def _run(tmp_path: Path, mode: str) -> tuple[int, int, str]:
    runs = tmp_path / f"runs-{mode}"
    runs.write_text("")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(runs), mode],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[2])
    return done.returncode, len(runs.read_text()), done.stderr


def test_a_child_that_dies_is_started_again_until_it_returns(tmp_path):
    code, runs, err = _run(tmp_path, "dies")
    assert (code, runs) == (0, 3), err
    assert err.count("the thing died (signal 6): starting it again") == 2


def test_a_child_that_cannot_start_is_not_started_again(tmp_path):
    code, runs, err = _run(tmp_path, "broken")
    assert (code, runs) == (1, 1), err
    assert "RuntimeError: cannot bind" in err and "could not start" in err
