"""``Lab``: one small cloud you can hold in a notebook cell.

    with Lab(computes=3, seed=7, preset="fast") as lab:
        server = lab.boot("vm1", flavor="m1.small")
        lab.wait(server)

It starts the bus, conductor, scheduler, N computes and the API as separate processes
(in that order, so nothing the API accepts is lost), waits until every compute reports
up, and gives plain methods for everything a lesson does: boot, wait, look, break things,
change the workflow, read the trace. Every widget in ``lab.controls()`` calls one of them.
"""
from __future__ import annotations

import os
import signal
from typing import Any, Sequence

from orchestrator import rundir
from orchestrator.config import BusConfig, ConfigError, LabConfig, from_dict
from orchestrator.db import Database
from orchestrator.messaging.blocking import BlockingClient
from orchestrator.objects import Instance, parse_version

from .api_client import ApiClient
from .cloud import FINAL_STATUSES, CloudClient
from . import classroom, housekeeping
from .cluster import Cluster, LabError
from .dashboard import reach
from .remote import SERVICE_HOSTS, child_name
from .trace import Trace

__all__ = ["Lab", "FINAL_STATUSES"]


class Lab(classroom.Classroom, CloudClient):
    def __init__(self, computes: int = 3, seed: int = 0, preset: str = "fast",
                 speed: float = 1.0, run_dir: str | None = None, dashboard: bool = False,
                 keep: bool = False, listen: str | None = None,
                 class_keys: str | os.PathLike | None = None, **options: Any):
        """``listen`` and ``class_keys``: a class's cloud across machines (students'
        computes join with CURVE; ``lab.classroom``)."""
        # $LAB_PRESET overrides: CI runs lessons written for "demo" at "fast" speed.
        preset = os.environ.get("LAB_PRESET") or preset
        self.config = LabConfig(computes=computes, seed=seed, preset=preset, speed=speed,
                                **options)
        factor, usual = self.config.load_factor(), BusConfig()   # a big cloud beats less
        bus = BusConfig(seed=seed, hop_delay=self.config.timing("hop_delay"),  # often
                        heartbeat_interval=usual.heartbeat_interval * factor,
                        dead_after=usual.dead_after * factor,
                        bus_timeout=usual.bus_timeout * factor)
        classroom.check(class_keys, listen)   # before anything is made
        self.cluster = Cluster(run_dir, bus=bus, config={"lab": self.config.to_dict()})
        classroom.configure(self.run_dir, class_keys, listen)
        if keep:    # never pruned: see lab.housekeeping
            housekeeping.keep(self.run_dir, why="Lab(keep=True)")
        self.api: ApiClient | None = None
        self.want_dashboard = dashboard
        self.fault_rules: list[dict[str, Any]] = []
        self.partitions: list[list[str]] = []
        self._tap = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> Lab:
        try:
            self.cluster.start()
            if rundir.read(self.run_dir).get("class"):   # the students' way in
                door = self.cluster.spawn("door", "door")
                rundir.wait_for(self.run_dir, "endpoints", "class_bus", timeout=timeout,
                                alive=door.alive)
            self._tap = self.cluster.tap()
            Database(self.run_dir, self.config.seed).close()   # schema and WAL, once
            # Every process at once (each imports for ~0.1 s of CPU: in parallel they
            # overlap), then one wait for all: a compute that comes up before the
            # conductor retries its start-up calls, as Nova's does.
            names = []
            for service in ("conductor", "scheduler", "api"):
                names.append(self.cluster.spawn(service, SERVICE_HOSTS[service]).name)
            for i in range(2, self.config.conductor_workers + 1):   # conductor2, ...
                names.append(self.cluster.spawn("conductor", f"conductor{i}").name)
            for hosts in self.config.compute_processes():
                self.cluster.spawn("compute", hosts[0], hosts=hosts)
                names += [f"compute.{h}" for h in hosts]
            self.cluster.wait_registered(names, timeout=timeout)
            url = rundir.wait_for(self.run_dir, "endpoints", "api", timeout=timeout)
            self.api = ApiClient(url, token=rundir.secret(self.run_dir))
            self.wait_computes_up(timeout=timeout)
            if self.want_dashboard:
                self.start_dashboard(timeout=timeout)
        except BaseException:
            self.close()
            raise
        return self

    def stop(self, keep_dashboard: bool = True) -> None:
        """Stop every service and reap its process. A dashboard that is open stays, to
        replay the lab's recorded trace ("lab stopped, replaying"), until no browser has
        watched it for a minute, this kernel exits, or ``close()``."""
        if self._tap is not None:
            self._tap.stop()
        self.cluster.stop(keep_dashboard=keep_dashboard)

    def close(self) -> None:
        """Stop everything, the replaying dashboard included."""
        self.stop(keep_dashboard=False)
        self.cluster.close()

    @property
    def running(self) -> bool:
        """Started and not yet stopped."""
        return self.cluster.running

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def run_dir(self):
        return self.cluster.run_dir

    def bus(self) -> BlockingClient:
        return self.cluster.client()

    # -- processes --------------------------------------------------------------------------------
    def child_name(self, service: str) -> str:
        """``conductor`` -> ``conductor.conductor1``; ``compute2`` -> ``compute.compute2``."""
        return child_name(service, self.config.compute_names())

    def is_up(self, identity: str) -> bool:
        """The process is running, not paused, and the bus hears from it."""
        child = self.cluster.children.get(identity)
        if child is not None and (not child.alive() or child.paused):
            return False
        return super().is_up(identity)

    def service_names(self) -> list[str]:
        return ["api", "conductor", "scheduler", *self.config.compute_names(), "bus"]

    def add_compute(self, name: str | None = None, object_version: str | None = None,
                    timeout: float = 60.0) -> str:
        """Start one more compute (``compute4``, ... or ``name``), optionally running
        older code: ``object_version="1.0"`` pins the Instance object version it
        understands (a compute not yet upgraded). Returns its name once it reports up."""
        version = _object_version(object_version)
        names = self.config.compute_names()
        name = name or f"compute{max(int(n.removeprefix('compute')) for n in names) + 1}"
        new = self.config.replace(extra_computes=[*self.config.extra_computes, name])
        rundir.update(self.run_dir, config={"lab": new.to_dict()},
                      computes={name: {"object_version": version}})
        self.config = new
        self.cluster.spawn("compute", name, wait=True, timeout=timeout)
        self.wait_computes_up([name], timeout=timeout)
        return name

    def object_versions(self) -> dict[str, str]:
        """The Instance object version each compute understands."""
        pinned = rundir.read(self.run_dir).get("computes", {})
        return {h: pinned.get(h, {}).get("object_version", Instance.VERSION)
                for h in self.config.compute_names()}

    def upgrade_compute(self, host: str, object_version: str | None = None,
                        timeout: float = 60.0) -> None:
        """Restart ``host`` running newer code (the newest object version, or the one
        given): one step of a rolling upgrade."""
        rundir.update(self.run_dir, computes={self._compute(host): {
            "object_version": _object_version(object_version)}})
        self.cluster.restart(self.child_name(host))
        self.wait_computes_up([host], timeout=timeout)

    def kill(self, service: str) -> None:
        """SIGKILL a service (``conductor``, ``scheduler``, ``api``, ``compute2``, ``bus``):
        a crash, the process gets no chance to say goodbye."""
        self.cluster.kill(self.child_name(service))

    crash = kill

    def shutdown(self, service: str) -> None:
        """SIGTERM: a clean stop (the service unregisters from the bus first)."""
        self.cluster.kill(self.child_name(service), signal.SIGTERM)

    def restart(self, service: str) -> None:
        self.cluster.restart(self.child_name(service))

    def pause(self, service: str) -> None:
        """SIGSTOP: the process hangs (heartbeats stop, messages wait at the bus)."""
        self.cluster.pause(self.child_name(service))

    def resume(self, service: str) -> None:
        self.cluster.resume(self.child_name(service))

    def service_state(self, service: str) -> str:
        """``up``, ``paused``, ``down`` (process gone) or ``unreachable`` (running but the
        bus has not heard from it within ``dead_after``)."""
        child = self.cluster.children.get(self.child_name(service))
        if child is None or not child.alive():
            return "down"
        if child.paused:
            return "paused"
        if service == "bus":
            return "up"
        peers = {p["identity"]: p["alive"] for p in self.bus().control("peers")}
        return "up" if peers.get(child.name) else "unreachable"

    # -- network faults (applied in the bus) ------------------------------------------------------
    def add_fault(self, src: str = "*", dst: str = "*", method: str = "*", drop: float = 0.0,
                  delay: float = 0.0, duplicate: float = 0.0, hold: bool = False) -> dict:
        """Add a fault rule on a link and/or method (patterns: ``compute``, ``compute.compute2``,
        ``select_*``). Returns the bus's whole fault table."""
        rule = dict(src=src, dst=dst, method=method, drop=drop, delay=delay,
                    duplicate=duplicate, hold=hold)
        table = self.bus().control("set_faults", rules=[*self.fault_rules, rule])
        self.fault_rules.append(rule)
        return table

    def partition(self, *hosts: str) -> dict:
        """Cut computes off from everything else (their messages are dropped both ways)."""
        isolated = [f"compute.{self._compute(h)}" for h in hosts]
        table = self.bus().control("set_faults", partitions=[isolated, ["*"]])
        self.partitions = [isolated, ["*"]]
        return table

    def clear_faults(self) -> dict:
        """Lift every fault rule and partition (held messages are released)."""
        self.fault_rules, self.partitions = [], []
        return self.bus().control("set_faults", rules=[], partitions=[])

    # -- what happened ----------------------------------------------------------------------------
    def mark(self) -> int:
        """A bookmark in the trace: ``lab.trace(since=mark)`` is what happened after it."""
        if self._tap is None:
            raise LabError("the lab is not started")
        self._tap.wait_seq(self.bus().control("stats")["seq"])
        return self._tap.last_seq

    def trace(self, since: int | None = None) -> Trace:
        """The trace events since the lab started, or since a ``mark()``."""
        if self._tap is None:
            raise LabError("the lab is not started")
        self._tap.wait_seq(self.bus().control("stats")["seq"])
        return Trace(self._tap.snapshot(since or 0))

    def story(self, server_id: str, include_db_proxy: bool = False) -> list[str]:
        """One instance's build, message by message."""
        record = self.server(server_id)
        return self.trace().story(server_id, record["OS-EXT-LAB:request_id"],
                                  include_db_proxy)

    @property
    def tap(self):
        return self._tap

    # -- the dashboard ------------------------------------------------------------------------
    def start_dashboard(self, timeout: float = 60.0) -> str:
        """Start the live dashboard (a Bokeh server, one more child process) if it is not
        running, served where this notebook's browser can reach it (``dashboard.reach``);
        its URL. After ``stop()`` it starts straight into the replay."""
        child = self.cluster.children.get("dashboard")
        if child is None or not child.alive():
            rundir.update(self.run_dir, endpoints={"dashboard": None},
                          dashboard={"reach": reach.find().to_dict()})
            child = self.cluster.spawn("dashboard", "dashboard")
            rundir.wait_for(self.run_dir, "endpoints", "dashboard", timeout=timeout,
                            alive=child.alive)
        return self.dashboard_url

    @property
    def dashboard_url(self) -> str:
        """The dashboard's address for this notebook's browser, with the lab's token:
        through the Jupyter server when the lab runs under one (a path under its base
        URL, absolute when ``JUPYTER_BOKEH_EXTERNAL_URL`` says where the hub is), else
        ``http://127.0.0.1:PORT/dashboard``."""
        data = rundir.read(self.run_dir)
        port = data.get("dashboard", {}).get("port")
        if not data.get("endpoints", {}).get("dashboard") or not port:
            raise LabError("no dashboard: Lab(dashboard=True), or lab.start_dashboard()")
        how = reach.Reach.from_dict(data["dashboard"].get("reach"))
        return how.browser_url(port, self.cluster.secret)

    def show(self, layout: str = "notebook", metrics: Sequence[str] = (),
             height: int | None = None, width: str | int = "100%"):
        """The dashboard inside the notebook: a frame onto the lab's Bokeh server (BokehJS
        comes from it, never from a CDN), reached through the Jupyter server when there is
        one, with a link to open it in its own tab. If the frame cannot load, the cell
        says why in words, with the URL it tried.

        ``layout``: ``"notebook"`` (about 760 px high: it fits a screen beside the lesson)
        or ``"projector"`` (the topology and the time-space diagram side by side, filling
        the frame, or the whole window when the link opens in its own tab: 1366x768 or
        1920x1080). ``metrics``: the metrics the lesson is about, shown first
        (``"API create p50 (ms)"``, ``"reschedules"``...; ``dashboard.model.METRICS``)."""
        from IPython.display import HTML

        from .dashboard.frame import FRAME_HEIGHTS, frame_html, trouble_html, view_url
        try:
            url = view_url(self.start_dashboard(), layout, metrics)
        except (LabError, TimeoutError, RuntimeError) as exc:
            return HTML(trouble_html(str(exc), ""))
        data = rundir.read(self.run_dir)
        how = reach.Reach.from_dict(data["dashboard"].get("reach"))
        problem = reach.probe(how, data["dashboard"]["port"])
        if problem:
            return HTML(trouble_html(problem, url))
        return HTML(frame_html(url, how, height=height or FRAME_HEIGHTS[layout],
                               width=width))

    def controls(self):
        """The ipywidgets control panel bound to this lab."""
        from .controls import ControlModel
        from .widgets import ControlPanel
        return ControlPanel(ControlModel(self))

    @classmethod
    def config_of(cls, run_dir: str) -> LabConfig:
        return from_dict(LabConfig, rundir.read(run_dir).get("config", {}).get("lab"))


def _object_version(version: str | None) -> str:
    """A version this lab's Instance object can be sent at (1.0 up to the newest)."""
    if version is None:
        return Instance.VERSION
    major, minor = parse_version(version)
    newest = parse_version(Instance.VERSION)
    if major != newest[0] or minor > newest[1]:
        raise ConfigError(f"object_version must be between {newest[0]}.0 and "
                          f"{Instance.VERSION}, not {version!r}")
    return version
