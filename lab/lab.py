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

import time
from typing import Any, Iterable

from orchestrator import rundir
from orchestrator.compute.failures import FailureSettings
from orchestrator.config import (RUNTIME_OPTIONS, BusConfig, ConfigError, LabConfig,
                                 from_dict)

from .client import ApiClient, ApiError
from .cluster import Cluster, LabError
from .trace import Trace

__all__ = ["Lab", "FINAL_STATUSES"]

FINAL_STATUSES = ("ACTIVE", "ERROR", "DELETED")
SERVICE_HOSTS = {"api": "api", "conductor": "conductor1", "scheduler": "scheduler1"}


class Lab:
    def __init__(self, computes: int = 3, seed: int = 0, preset: str = "fast",
                 speed: float = 1.0, run_dir: str | None = None, **options: Any):
        self.config = LabConfig(computes=computes, seed=seed, preset=preset, speed=speed,
                                **options)
        bus = BusConfig(seed=seed, hop_delay=self.config.timing("hop_delay"))
        self.cluster = Cluster(run_dir, bus=bus, config={"lab": self.config.to_dict()})
        self.api: ApiClient | None = None
        self._tap = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> Lab:
        try:
            self.cluster.start()
            self._tap = self.cluster.tap()
            for service in ("conductor", "scheduler"):
                self.cluster.spawn(service, SERVICE_HOSTS[service], wait=True, timeout=timeout)
            for host in self.config.compute_names():
                self.cluster.spawn("compute", host, wait=True, timeout=timeout)
            self.cluster.spawn("api", "api", wait=True, timeout=timeout)
            url = rundir.wait_for(self.run_dir, "endpoints", "api", timeout=timeout)
            self.api = ApiClient(url)
            self.wait_computes_up(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._tap is not None:
            self._tap.stop()
        self.cluster.stop()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def run_dir(self):
        return self.cluster.run_dir

    @property
    def api_url(self) -> str:
        return self._api().base_url

    def _api(self) -> ApiClient:
        if self.api is None:
            raise LabError("the lab is not started: use `with Lab() as lab:` or lab.start()")
        return self.api

    def wait_computes_up(self, hosts: Iterable[str] | None = None,
                         timeout: float = 30.0) -> None:
        wanted = set(hosts or self.config.compute_names())
        deadline = time.monotonic() + timeout
        while True:
            up = {s["host"] for s in self.services()
                  if s["binary"] == "nova-compute" and s["state"] == "up"}
            nodes = {h["hypervisor_hostname"] for h in self.hypervisors()}
            if wanted <= up and wanted <= nodes:
                return
            if time.monotonic() > deadline:
                raise LabError(f"computes not up after {timeout}s: {sorted(wanted - up)}")
            time.sleep(0.05)

    # -- the API, as a student uses it ----------------------------------------------------------
    def boot(self, name: str, flavor: str = "m1.small", image: str = "cirros",
             count: int = 1, availability_zone: str | None = None) -> str | list[str]:
        """POST /servers; returns the new server's id right after the 202 (a list of ids
        when ``count`` > 1, all created by one request, as Nova's ``min_count``)."""
        server: dict[str, Any] = {"name": name, "flavorRef": flavor, "imageRef": image}
        if availability_zone:
            server["availability_zone"] = availability_zone
        if count == 1:
            resp = self._api().post("/servers", {"server": server})
            self.last_response_time = resp.elapsed
            return resp.body["server"]["id"]
        server.update(min_count=count, return_reservation_id=True)
        resp = self._api().post("/servers", {"server": server})
        self.last_response_time = resp.elapsed
        listing = self._api().get(f"/servers?reservation_id={resp.body['reservation_id']}")
        return [s["id"] for s in listing["servers"]]

    def server(self, server_id: str) -> dict[str, Any]:
        return self._api().get(f"/servers/{server_id}")["server"]

    def servers(self) -> list[dict[str, Any]]:
        return self._api().get("/servers/detail")["servers"]

    def delete(self, server_id: str) -> None:
        self._api().delete(f"/servers/{server_id}")

    def actions(self, server_id: str) -> list[dict[str, Any]]:
        return self._api().get(f"/servers/{server_id}/os-instance-actions")["instanceActions"]

    def services(self) -> list[dict[str, Any]]:
        return self._api().get("/os-services")["services"]

    def hypervisors(self) -> list[dict[str, Any]]:
        return self._api().get("/os-hypervisors/detail")["hypervisors"]

    def wait(self, ids: str | Iterable[str], timeout: float = 30.0,
             statuses: tuple[str, ...] = FINAL_STATUSES) -> Any:
        """Wait until each server is ACTIVE or ERROR (or gone); return the final records
        (one record for one id, a list for a list)."""
        single = isinstance(ids, str)
        pending = [ids] if single else list(ids)
        done: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while pending:
            for sid in list(pending):
                try:
                    record = self.server(sid)
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                    record = {"id": sid, "status": "DELETED"}
                if record["status"] in statuses:
                    done[sid] = record
                    pending.remove(sid)
            if pending and time.monotonic() > deadline:
                states = {s: self.server(s)["status"] for s in pending[:5]}
                raise LabError(f"{len(pending)} server(s) not finished after {timeout}s: {states}")
            if pending:
                time.sleep(0.05)
        records = [done[s] for s in ([ids] if single else ids)]
        return records[0] if single else records

    # -- changing the cloud while it runs ---------------------------------------------------------
    def configure(self, **changes: Any) -> LabConfig:
        """Change workflow options (flow, local_mode, alternates, max_attempts, filters,
        weighers, multipliers) in every running service, now."""
        bad = sorted(set(changes) - set(RUNTIME_OPTIONS))
        if bad:
            raise ConfigError(f"cannot change {bad} while running; runtime options: "
                              f"{', '.join(RUNTIME_OPTIONS)}")
        new = self.config.replace(**changes)
        self.config = new
        rundir.update(self.run_dir, config={"lab": new.to_dict()})
        client = self.cluster.client()
        for child in self.cluster.children.values():
            if child.service in ("api", "conductor", "scheduler", "compute") and child.alive():
                client.call(child.service, "set_config", server=child.host,
                            **{k: new.to_dict()[k] for k in changes})
        return new

    def set_failure(self, host: str, reschedule: float | None = None,
                    fatal: float | None = None, crash: float | None = None,
                    slow: float | None = None) -> dict[str, float]:
        """Failure injection on one compute: probabilities per build attempt."""
        given = {k: v for k, v in dict(reschedule=reschedule, fatal=fatal, crash=crash,
                                       slow=slow).items() if v is not None}
        self._compute(host)
        saved = rundir.read(self.run_dir).get("failures", {}).get(host, {})
        settings = FailureSettings(**{**saved, **given})  # validates before anything moves
        rundir.update(self.run_dir, failures={host: settings.to_dict()})
        return self.cluster.client().call("compute", "set_failure", server=host,
                                          **settings.to_dict())

    def _compute(self, host: str) -> str:
        if host not in self.config.compute_names():
            raise LabError(f"no compute {host!r}; computes: "
                           f"{', '.join(self.config.compute_names())}")
        return host

    def _child_name(self, service: str) -> str:
        if service == "bus":
            return "bus"
        if service in SERVICE_HOSTS:
            return f"{service}.{SERVICE_HOSTS[service]}"
        return f"compute.{self._compute(service)}"

    def kill(self, service: str) -> None:
        """SIGKILL a service (``conductor``, ``scheduler``, ``api``, ``compute2``, ``bus``)."""
        self.cluster.kill(self._child_name(service))

    def restart(self, service: str) -> None:
        self.cluster.restart(self._child_name(service))

    def pause(self, service: str) -> None:
        self.cluster.pause(self._child_name(service))

    def resume(self, service: str) -> None:
        self.cluster.resume(self._child_name(service))

    # -- what happened ----------------------------------------------------------------------------
    def trace(self) -> Trace:
        """Every trace event since the lab started (the DESIGN.md schema, as dicts)."""
        if self._tap is None:
            raise LabError("the lab is not started")
        return Trace(self._tap.snapshot())

    def story(self, server_id: str, include_db_proxy: bool = False) -> list[str]:
        """One instance's build, message by message."""
        record = self.server(server_id)
        return self.trace().story(server_id, record["OS-EXT-LAB:request_id"],
                                  include_db_proxy)

    @property
    def tap(self):
        return self._tap

    @classmethod
    def config_of(cls, run_dir: str) -> LabConfig:
        return from_dict(LabConfig, rundir.read(run_dir).get("config", {}).get("lab"))
