"""The instructor's side of a class's cloud: ``Lab(listen="0.0.0.0", class_keys=DIR)``.

The lab's own services stay on their private ``ipc://`` sockets; the bus adds CURVE
endpoints for the students' machines (``orchestrator/messaging/curve.py``), the dashboard
a port the class can open with the read-only token their tickets carry. The API stays on
127.0.0.1: only the instructor drives the cloud. Nothing listens beyond 127.0.0.1 unless
the class's keys (and so CURVE) are there.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from orchestrator import rundir
from orchestrator.compute.rpcapi import OWN_HOST_ARGS, SENT_BY_COMPUTES
from orchestrator.messaging import curve

from .cluster import LabError

__all__ = ["check", "configure", "Classroom", "LOCAL", "free_class_port"]

LOCAL = ("127.0.0.1", "localhost", "", None)


def free_class_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now whose next two are free too (the class's bus, its
    trace, its dashboard): for tests and benchmarks that make keys of their own."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        try:
            for other in (port + 1, port + 2):
                with socket.socket() as t:
                    t.bind((host, other))
            return port
        except OSError:
            continue
    raise LabError(f"no three free ports in a row on {host}")


def check(keys_dir: str | os.PathLike | None, listen: str | None) -> dict[str, Any] | None:
    """The class's ``class.json``, or None for a lab without a class; LabError for a
    listen address beyond 127.0.0.1 without keys, or keys that are not a class's."""
    if keys_dir is None:
        if listen not in LOCAL:
            raise LabError(f"listen={listen!r}: nothing listens beyond 127.0.0.1 without "
                           f"CURVE; give class_keys=DIR (python -m lab keys DIR)")
        return None
    try:
        return curve.read_class(keys_dir)
    except curve.KeysError as exc:
        raise LabError(str(exc)) from None


def configure(run_dir: str | os.PathLike, keys_dir: str | os.PathLike | None,
              listen: str | None) -> dict[str, Any] | None:
    """Write the ``class`` section of ``lab.json`` (read by the bus and the dashboard
    when they start)."""
    info = check(keys_dir, listen)
    if info is None:
        return None
    section = {"keys": str(Path(keys_dir).resolve()), "listen": listen or "0.0.0.0",
               "address": info["address"], "port": int(info["port"]),
               "sends": {topic: list(methods) for topic, methods in SENT_BY_COMPUTES.items()},
               "own_host_args": OWN_HOST_ARGS}
    rundir.update(run_dir, **{"class": section})
    return section


class Classroom:
    """What ``Lab`` offers the instructor of a class (mixed into ``Lab``)."""

    @property
    def classroom(self) -> dict[str, Any]:
        section = rundir.read(self.run_dir).get("class")   # type: ignore[attr-defined]
        if not section:
            raise LabError("this lab has no class: Lab(listen=..., class_keys=DIR)")
        return section

    def students(self) -> dict[str, list[dict[str, Any]]]:
        """Each student with keys: their computes on the bus (``host``, ``alive``) and
        whether their key is revoked (``students()["student07"]``)."""
        keys = Path(self.classroom["keys"])
        info = curve.read_class(keys)
        peers = self.bus().control("peers")   # type: ignore[attr-defined]
        out: dict[str, list[dict[str, Any]]] = {name: [] for name in info["students"]}
        for peer in peers:
            student = curve.student_of(peer["server"])
            if peer["topic"] == "compute" and student in out:
                out[student].append({"host": peer["server"], "alive": peer["alive"]})
        return out

    def revoked(self) -> list[str]:
        return sorted(p.stem for p in (Path(self.classroom["keys"]) / "revoked").glob("*.key"))

    def student_hosts(self, student: str) -> list[str]:
        return [c["host"] for c in self.students().get(student, [])]

    def revoke(self, student: str, evacuate: bool = True,
               timeout: float = 90.0) -> dict[str, str]:
        """Revoke a student's key while the lab runs: the bus refuses it from now on and
        cuts off their computes, which go down as any dead compute does (their service
        stops reporting). With ``evacuate``, once they are down each of their servers is
        evacuated, as an operator would (``nova evacuate``): rebuilt elsewhere, or ERROR
        when no host can take it. Returns each server's final status."""
        hosts = self.student_hosts(student)
        try:
            curve.revoke(self.classroom["keys"], student)
        except curve.KeysError as exc:
            raise LabError(str(exc)) from None
        if not evacuate or not hosts:
            return {}
        self._wait_down(hosts, timeout)
        moved = [s for s in self.servers()   # type: ignore[attr-defined]
                 if s.get("OS-EXT-SRV-ATTR:host") in hosts]
        for server in moved:
            self.evacuate(server["id"])   # type: ignore[attr-defined]
        if not moved:
            return {}
        done = self.wait([s["id"] for s in moved], timeout=timeout)   # type: ignore
        return {s["id"]: s["status"] for s in done}

    def reinstate(self, student: str) -> None:
        """Undo a revoke: the student's ticket works again (their supervisor has stopped
        knocking; they join again)."""
        try:
            curve.reinstate(self.classroom["keys"], student)
        except curve.KeysError as exc:
            raise LabError(str(exc)) from None

    def _wait_down(self, hosts: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = {s["host"]: s["state"] for s in self.services()   # type: ignore
                      if s["binary"].endswith("compute")}
            if all(states.get(h) == "down" for h in hosts):
                return
            if time.monotonic() > deadline:
                raise LabError(f"{', '.join(hosts)} still up {timeout}s after the revoke")
            time.sleep(0.2)

    def student_dashboard_url(self, student: str) -> str:
        """The read-only dashboard link ``student``'s ticket carries (theirs alone:
        revoking them closes it, and only it)."""
        section = self.classroom
        token = curve.view_token(section["keys"], student)
        return f"http://{section['address']}:{section['port'] + 2}/dashboard?token={token}"
