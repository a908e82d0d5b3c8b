"""Test support shipped as public API (like httpx's MockTransport): ``FakeLab`` stands in
for the part of ``Lab`` the control panel uses, so the panel's model and view can be
tested, or prototyped, without starting a single process; ``wait_for_usage`` waits until
the computes of a real lab hold exactly the claims expected (their reports land a moment
after an instance's state does), ``wait_for_service`` until a service is up or down."""
from __future__ import annotations

import inspect
import time
from types import SimpleNamespace
from typing import Any

from orchestrator.config import FLAVORS, LabConfig

from .lab import Lab

__all__ = ["FakeLab", "USAGE", "usage_of", "wait_for_usage", "wait_for_service",
           "scripted_trace"]

USAGE = ("vcpus_used", "memory_mb_used", "local_gb_used", "running_vms")


def usage_of(*flavors: str) -> tuple[int, ...]:
    """The ``USAGE`` values of a host holding claims of these flavors."""
    return tuple(sum(FLAVORS[f][k] for f in flavors)
                 for k in ("vcpus", "memory_mb", "root_gb")) + (len(flavors),)


def wait_for_usage(lab: Lab, expected: dict[str, tuple[int, ...]],
                   keys: tuple[str, ...] = USAGE, live: bool = False,
                   timeout: float = 10.0) -> None:
    """Until each host listed reports these ``keys`` values: from the hypervisors (the
    database), or, ``live``, from each compute's own tracker (a process that just
    restarted has no stale record there). AssertionError, saying what differed, after
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if live:
            got = {host: tuple(lab.bus().call("compute", "resources", server=host)[k]
                               for k in keys) for host in expected}
        else:
            got = {h["hypervisor_hostname"]: tuple(h[k] for k in keys)
                   for h in lab.hypervisors()}
        if all(got.get(host) == want for host, want in expected.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"usage {got} never matched {expected}")
        time.sleep(0.05)


def wait_for_service(lab: Lab, host: str, state: str, timeout: float = 15.0) -> None:
    """Until ``host``'s service reports ``state`` (``up``, or ``down``: killed, it is
    down once it has been silent for ``service_down_time``)."""
    deadline = time.monotonic() + timeout
    while {s["host"]: s["state"] for s in lab.services()}.get(host) != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"{host} never reported {state} within {timeout}s")
        time.sleep(0.1)


class FakeLab:
    """Reads answer from plain attributes (``states``, ``failure``, ``nodes``,
    ``server_list``); actions are recorded in ``calls`` as ``(method, args, kwargs)``
    after checking they bind to the real ``Lab`` method's signature; ``raises[name]``
    makes an action fail. ``booted_servers`` adds each boot to ``server_list`` as BUILD.
    It is a started lab (``cluster.running``) until ``stop()``, or ``running=False``."""

    def __init__(self, computes: int = 3, *, nodes: bool = True,
                 last_response_time: float = 0.004, booted_servers: bool = True,
                 running: bool = True, **options: Any):
        self.config = LabConfig(computes=computes, **options)
        self.cluster = SimpleNamespace(children={}, running=running)
        self.calls: list[tuple[str, tuple, dict]] = []
        self.states = {n: "up" for n in ("api", "conductor", "scheduler", "bus",
                                         *self.config.compute_names())}
        self.failure = {h: {"reschedule": 0.0, "fatal": 0.0, "crash": 0.0, "slow": 1.0}
                        for h in self.config.compute_names()}
        self.nodes: list[dict[str, Any]] = [
            {"hypervisor_hostname": h, "running_vms": 0, "free_ram_mb": 16384, "vcpus": 8,
             "vcpus_used": 0} for h in self.config.compute_names()] if nodes else []
        self.server_list: list[dict[str, Any]] = []
        self.last_response_time = last_response_time
        self.booted_servers = booted_servers
        self.raises: dict[str, BaseException] = {}
        self._n = 0

    def _record(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        inspect.signature(getattr(Lab, name)).bind(self, *args, **kwargs)
        self.calls.append((name, args, kwargs))
        if name in self.raises:
            raise self.raises[name]

    # -- reads ----------------------------------------------------------------------------
    def hypervisors(self) -> list[dict[str, Any]]:
        return [dict(n) for n in self.nodes]

    def servers(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.server_list]

    def failures(self, host: str) -> dict[str, float]:
        return dict(self.failure[host])

    def service_state(self, name: str) -> str:
        return self.states[name]

    def openstack_env(self) -> dict[str, str]:
        return {"OS_CLIENT_CONFIG_FILE": "/nonexistent/clouds.yaml",
                "OS_CLOUD": "conductor-lab", "PATH": "/nonexistent/bin"}

    @property
    def running(self) -> bool:
        return self.cluster.running

    # -- actions --------------------------------------------------------------------------
    def stop(self) -> None:
        self._record("stop")
        self.cluster.running = False

    def set_failure(self, host: str, **rates: float) -> dict[str, float]:
        self._record("set_failure", host, **rates)
        self.failure[host].update(rates)
        return dict(self.failure[host])

    def kill(self, service: str) -> None:
        self._record("kill", service)

    def shutdown(self, service: str) -> None:
        self._record("shutdown", service)

    def restart(self, service: str) -> None:
        self._record("restart", service)

    def pause(self, service: str) -> None:
        self._record("pause", service)

    def resume(self, service: str) -> None:
        self._record("resume", service)

    def configure(self, **changes: Any) -> LabConfig:
        self._record("configure", **changes)
        self.config = self.config.replace(**changes)
        return self.config

    def clear_faults(self) -> dict:
        self._record("clear_faults")
        return {}

    def add_fault(self, **rule: Any) -> dict:
        self._record("add_fault", **rule)
        return {}

    def partition(self, *hosts: str) -> dict:
        self._record("partition", *hosts)
        return {}

    def add_compute(self, name: str | None = None, object_version: str | None = None,
                    timeout: float = 60.0) -> str:
        self._record("add_compute", name, object_version=object_version)
        name = name or f"compute{len(self.config.compute_names()) + 1}"
        self.config = self.config.replace(extra_computes=[*self.config.extra_computes, name])
        self.states[name] = "up"
        self.failure[name] = {"reschedule": 0.0, "fatal": 0.0, "crash": 0.0, "slow": 1.0}
        self.nodes.append({"hypervisor_hostname": name, "running_vms": 0,
                           "free_ram_mb": 16384, "vcpus": 8, "vcpus_used": 0})
        return name

    # -- moving servers: recorded, answered as the API would (202; confirm 204) ----------
    def migrate(self, server_id: str) -> int:
        self._record("migrate", server_id)
        return 202

    def resize(self, server_id: str, flavor: str) -> int:
        self._record("resize", server_id, flavor)
        return 202

    def confirm_resize(self, server_id: str) -> int:
        self._record("confirm_resize", server_id)
        return 204

    def revert_resize(self, server_id: str) -> int:
        self._record("revert_resize", server_id)
        return 202

    def rebuild(self, server_id: str, image: str) -> int:
        self._record("rebuild", server_id, image)
        return 202

    def evacuate(self, server_id: str, host: str | None = None) -> int:
        self._record("evacuate", server_id)
        return 200

    def boot(self, name: str, flavor: str = "m1.small", count: int = 1) -> str | list[str]:
        self._record("boot", name, flavor=flavor, count=count)
        ids = []
        for _ in range(count):
            self._n += 1
            ids.append(f"id-{self._n}")
            if self.booted_servers:
                self.server_list.append({
                    "id": f"id-{self._n}", "name": f"{name}-{self._n}", "status": "BUILD",
                    "OS-EXT-STS:task_state": None, "OS-EXT-SRV-ATTR:host": "compute1",
                    "OS-EXT-LAB:num_attempts": 1})
        return ids[0] if count == 1 else ids


def scripted_trace(computes: int, flow: str = "conductor", t0: float = 1000.0,
                   gap: float = 0.01) -> list[dict[str, Any]]:
    """A trace of a cloud of ``computes`` hosts (``compute1`` ...) as the bus would record
    it, for a dashboard replay without a lab (pictures, geometry, 1,000 hosts): one build
    per host in ``flow`` ("conductor" or "legacy"), each with its saves through the
    conductor and its instance-info fanout; compute1's build fails once and is
    rescheduled to compute2; a resize hops compute1 -> compute2 -> compute1 and the API
    confirms it on compute1."""
    from orchestrator.messaging import protocol

    events: list[dict[str, Any]] = []
    api, cond, sched = "api.api", "conductor.conductor1", "scheduler.scheduler1"

    def send(kind: str, src: str, dst: str, method: str, uuid: str, attempt: int = 1,
             reply_kind: str | None = None) -> None:
        topic, server = protocol.split_identity(dst)
        env = protocol.envelope(kind, src, topic, method, server=server, ctx={
            "request_id": f"req-{uuid}", "instance_uuid": uuid, "attempt": attempt})
        for e, to in ((env, dst),) + (((protocol.reply_to(env, dst), src),)
                                      if kind == "call" else ()):
            t = t0 + gap * (len(events) + 1)
            e["sent"] = t - gap / 2
            events.append(protocol.trace_event(len(events) + 1, e, "routed", to, 200, ts=t))

    hosts = [f"compute.compute{i}" for i in range(1, computes + 1)]
    for i, host in enumerate(hosts, 1):
        uuid = f"{i:08d}-0000-4000-8000-{i:012d}"
        attempts = [(1, hosts[0]), (2, hosts[min(1, computes - 1)])] if i == 1 else [(1, host)]
        for attempt, where in attempts:
            if flow == "legacy":
                send("cast", api if attempt == 1 else hosts[0], sched, "run_instance", uuid,
                     attempt)
                send("cast", sched, where, "build_and_run_instance", uuid, attempt)
            else:
                send("cast", api if attempt == 1 else hosts[0], cond, "build_instances",
                     uuid, attempt)
                send("call", cond, sched, "select_destinations", uuid, attempt)
                send("cast", cond, where, "build_and_run_instance", uuid, attempt)
            send("call", where, cond, "instance_update", uuid, attempt)
        send("fanout", attempts[-1][1], sched, "update_instance_info", uuid)
        send("call", attempts[-1][1], cond, "compute_node_update", uuid)
    if computes > 1:
        resized = "00000001-0000-4000-8000-000000000001"
        send("cast", hosts[1], hosts[0], "resize_instance", resized)
        send("cast", hosts[0], hosts[1], "finish_resize", resized)
        send("cast", api, hosts[0], "confirm_resize", resized)
    return events
