"""The control panel's model: everything the panel shows and does, with no widget imports
(the ipywidgets tutorial's model/view split). ``lab.widgets.ControlPanel`` is the thin
view; a test or a notebook cell can drive this model, or the widgets, and get the same
effect, because every action is one call to a plain ``Lab`` method.

A stopped lab (``lab.stop()``, the last cell of every lesson) is shown as stopped, not as
unreachable: ``lab_running()`` asks the lab without a network call, and ``snapshot()`` of a
stopped lab asks it nothing else."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.config import FILTERS, FLAVORS, PRESETS, WEIGHERS
from orchestrator.messaging.curve import student_of

if TYPE_CHECKING:
    from .lab import Lab

__all__ = ["ControlModel", "LINKS", "FAULT_METHODS", "FLAVOR_NAMES", "MOVE_ACTIONS",
           "SERVICES", "STOPPED_MESSAGE"]

SERVICES = ("api", "conductor", "scheduler", "bus")     # the panel's rows besides computes
STOPPED_MESSAGE = "lab stopped: controls disabled; start a new lab to use them"

# The links a student is likely to break, as (label, src pattern, dst pattern).
LINKS = {
    "any link": ("*", "*"),
    "api -> conductor": ("api", "conductor"),
    "conductor -> scheduler": ("conductor", "scheduler"),
    "scheduler -> conductor": ("scheduler", "conductor"),
    "conductor -> computes": ("conductor", "compute"),
    "computes -> conductor": ("compute", "conductor"),
    "scheduler -> computes": ("scheduler", "compute"),
    "computes -> computes": ("compute", "compute"),      # a resize's direct hops
}
FAULT_METHODS = ("any method", "build_instances", "select_destinations",
                 "build_and_run_instance", "run_instance", "instance_update",
                 "service_update", "compute_node_update", "migrate_server", "prep_resize",
                 "resize_instance", "finish_resize", "confirm_resize", "revert_resize",
                 "finish_revert_resize", "rebuild_instance", "object_backport_versions")
# What the panel's Move tab can do to a server (each one Lab method).
MOVE_ACTIONS = ("migrate", "resize", "confirm resize", "revert resize", "rebuild",
                "evacuate")
FLAVOR_NAMES = tuple(FLAVORS)


class ControlModel:
    def __init__(self, lab: "Lab"):
        self.lab = lab
        self.booted: list[str] = []
        self.message = ""

    # -- what the panel shows ----------------------------------------------------------------
    def lab_running(self) -> bool:
        """Started and not yet stopped; read from the lab's own bookkeeping
        (``Lab.running``), never over the network."""
        return bool(self.lab.running)

    def computes(self) -> list[dict[str, Any]]:
        """The lab's computes, then any a class's students joined from their machines
        (``NAME_N``: no process here, so up is what the bus hears)."""
        nodes = {h["hypervisor_hostname"]: h for h in self.lab.hypervisors()}
        names = self.lab.config.compute_names()
        joined = sorted(h for h in set(nodes) - set(names) if student_of(h))
        peers = {p["identity"]: p["alive"] for p in self.lab.bus().control("peers")} \
            if joined else {}
        out = []
        for host in [*names, *joined]:
            node = nodes.get(host, {})
            failure = self.lab.failures(host)
            state = self.lab.service_state(host) if host in names else \
                "up" if peers.get(f"compute.{host}") else "down"
            if state == "up" and (failure["reschedule"] or failure["fatal"] or failure["crash"]):
                state = "failing"
            out.append({"host": host, "state": state,
                        "instances": node.get("running_vms", 0),
                        "free_ram_mb": node.get("free_ram_mb", 0),
                        "free_vcpus": node.get("vcpus", 0) - node.get("vcpus_used", 0),
                        "failed_builds": node.get("OS-EXT-LAB:failed_builds", 0), **failure})
        return out

    def services(self) -> list[dict[str, str]]:
        return [{"name": name, "state": self.lab.service_state(name)}
                for name in SERVICES]

    def instances(self) -> list[dict[str, Any]]:
        rows = []
        for s in self.lab.servers():
            rows.append({"id": s["id"], "name": s["name"], "status": s["status"],
                         "task_state": s["OS-EXT-STS:task_state"] or "",
                         "host": s["OS-EXT-SRV-ATTR:host"] or "",
                         "attempts": s["OS-EXT-LAB:num_attempts"],
                         "fault": (s.get("fault") or s.get("OS-EXT-LAB:last_fault")
                                   or {}).get("message", "")})
        return rows

    def workflow(self) -> dict[str, Any]:
        c = self.lab.config
        return {"flow": c.flow, "local_mode": c.local_mode, "alternates": c.alternates,
                "max_attempts": c.max_attempts, "filters": list(c.filters),
                "weighers": list(c.weighers), "preset": c.preset, "speed": c.speed,
                "resize_via_conductor": c.resize_via_conductor,
                "object_pinning": c.object_pinning}

    def progress(self) -> tuple[int, int]:
        """(finished, total) of the builds booted from the panel."""
        if not self.booted:
            return 0, 0
        status = {s["id"]: s["status"] for s in self.lab.servers()}
        done = sum(1 for i in self.booted if status.get(i, "DELETED") != "BUILD")
        return done, len(self.booted)

    def snapshot(self) -> dict[str, Any]:
        """Everything the panel paints, with ``running`` True; a stopped lab's (see
        ``stopped_snapshot``) when the lab is stopped, or stopped while being asked (its
        processes refuse connections then: that is not an unreachable lab). A lab that
        fails to answer while it should be running raises."""
        if not self.lab_running():
            return self.stopped_snapshot()
        try:
            return {"running": True, "computes": self.computes(),
                    "services": self.services(), "instances": self.instances(),
                    "workflow": self.workflow(), "progress": self.progress(),
                    "message": self.message}
        except Exception:
            if not self.lab_running():
                return self.stopped_snapshot()
            raise

    def stopped_snapshot(self) -> dict[str, Any]:
        """What a stopped lab shows: every compute and service "stopped", and why the
        controls no longer act. Asks the lab nothing but its configuration."""
        return {"running": False, "message": STOPPED_MESSAGE,
                "computes": [{"host": h, "state": "stopped"}
                             for h in self.lab.config.compute_names()],
                "services": [{"name": n, "state": "stopped"} for n in SERVICES]}

    # -- what the panel does -------------------------------------------------------------------
    def set_failure(self, host: str, **rates: float) -> dict[str, float]:
        settings = self.lab.set_failure(host, **rates)
        self.message = f"{host}: " + ", ".join(f"{k} {v:.0%}" for k, v in rates.items())
        return settings

    def service_action(self, name: str, action: str) -> None:
        """``crash`` (SIGKILL: ``lab.kill``), ``shutdown`` (SIGTERM: a clean stop),
        ``restart``, ``pause``, ``resume``."""
        actions = {"crash": self.lab.kill, "shutdown": self.lab.shutdown,
                   "restart": self.lab.restart, "pause": self.lab.pause,
                   "resume": self.lab.resume}
        if action not in actions:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(actions)}")
        actions[action](name)
        self.message = f"{action} {name}"

    def configure(self, **options: Any) -> None:
        self.lab.configure(**options)
        self.message = ", ".join(f"{k}={v}" for k, v in options.items())

    def network_fault(self, link: str, method: str, drop: float, delay: float) -> None:
        """The panel's one fault rule: replaces the previous one."""
        src, dst = LINKS[link]
        self.lab.clear_faults()
        if drop or delay:
            self.lab.add_fault(src=src, dst=dst, drop=drop, delay=delay,
                               method="*" if method == FAULT_METHODS[0] else method)
        self.message = f"fault on {link} / {method}: drop {drop:.0%}, delay {delay:g}s"

    def partition(self, host: str) -> None:
        self.lab.partition(host)
        self.message = f"{host} partitioned"

    def heal(self) -> None:
        self.lab.clear_faults()
        self.message = "network healed"

    def boot(self, count: int, flavor: str, name: str = "vm") -> list[str]:
        if not 1 <= count <= 100:
            raise ValueError("boot between 1 and 100 instances at a time")
        ids = self.lab.boot(f"{name}{len(self.booted) + 1}", flavor=flavor, count=count)
        ids = [ids] if isinstance(ids, str) else ids
        self.booted.extend(ids)
        self.message = (f"booted {count} x {flavor}: the API accepted it in "
                        f"{self.lab.last_response_time * 1e3:.0f} ms")
        return ids

    def move(self, server_id: str, action: str, flavor: str = "m1.medium",
             image: str = "cirros") -> int:
        """One of MOVE_ACTIONS on a server; returns the API's status code."""
        if not server_id:
            raise ValueError("pick a server first")
        calls = {"migrate": lambda: self.lab.migrate(server_id),
                 "resize": lambda: self.lab.resize(server_id, flavor),
                 "confirm resize": lambda: self.lab.confirm_resize(server_id),
                 "revert resize": lambda: self.lab.revert_resize(server_id),
                 "rebuild": lambda: self.lab.rebuild(server_id, image),
                 "evacuate": lambda: self.lab.evacuate(server_id)}
        if action not in calls:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(MOVE_ACTIONS)}")
        status = calls[action]()
        self.message = (f"{action}: HTTP {status} in "
                        f"{self.lab.last_response_time * 1e3:.0f} ms")
        return status

    def set_speed(self, preset: str | None = None, speed: float | None = None) -> None:
        changes = {k: v for k, v in dict(preset=preset, speed=speed).items() if v is not None}
        self.lab.configure(**changes)
        self.message = ", ".join(f"{k}={v}" for k, v in changes.items())

    choices = {"filters": FILTERS, "weighers": WEIGHERS, "presets": tuple(PRESETS),
               "flavors": FLAVOR_NAMES, "links": tuple(LINKS), "methods": FAULT_METHODS,
               "moves": MOVE_ACTIONS}
