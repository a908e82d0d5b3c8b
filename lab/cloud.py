"""Talking to a running lab's cloud, as a user does: the Compute API over HTTP, and the
lab's knobs (failure injection, workflow options, network faults) over the bus.

``CloudClient`` is shared by ``Lab`` (which also owns the processes) and ``RemoteLab``
(which attaches to a lab another process started, for the CLI)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from orchestrator import rundir
from orchestrator.api.clouds import CLOUD, CLOUDS_YAML
from orchestrator.compute.failures import FailureSettings
from orchestrator.config import RUNTIME_OPTIONS, ConfigError, LabConfig
from orchestrator.messaging.blocking import BlockingClient

from .api_client import ApiClient, ApiError
from .cluster import LabError
from .progress import progress_bar

__all__ = ["CloudClient", "FINAL_STATUSES"]

# Where a server rests when no task is running (VERIFY_RESIZE waits for the user).
FINAL_STATUSES = ("ACTIVE", "ERROR", "DELETED", "VERIFY_RESIZE")


class CloudClient:
    """Needs ``self.api`` (ApiClient), ``self.config`` (LabConfig), ``self.run_dir`` and
    ``self.bus()`` (a BlockingClient)."""

    api: ApiClient | None
    config: LabConfig
    last_response_time: float = 0.0

    def bus(self) -> BlockingClient:
        raise NotImplementedError

    @property
    def api_url(self) -> str:
        return self._api().base_url

    def _api(self) -> ApiClient:
        if self.api is None:
            raise LabError("the lab is not started: use `with Lab() as lab:` or lab.start()")
        return self.api

    def openstack_env(self) -> dict[str, str]:
        """What to set so that the real ``openstack`` command and openstacksdk drive this
        lab: its ``clouds.yaml`` (written by its API) and cloud, and a ``PATH`` that
        finds this Python's own ``openstack`` first (a notebook's ``!openstack`` runs a
        shell that may not have this environment's ``bin``). In a notebook:
        ``os.environ.update(lab.openstack_env())``; in a shell: ``python -m lab env``."""
        clouds = Path(self.run_dir) / CLOUDS_YAML
        if self.api is None or not clouds.exists():
            raise LabError(f"no {clouds}: the lab's API is not running")
        here = str(Path(sys.executable).parent)
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != here]
        return {"OS_CLIENT_CONFIG_FILE": str(clouds), "OS_CLOUD": CLOUD,
                "PATH": os.pathsep.join([here, *path])}

    # -- the API, as a student uses it ----------------------------------------------------------
    def boot(self, name: str, flavor: str = "m1.small", image: str = "cirros",
             count: int = 1, availability_zone: str | None = None) -> str | list[str]:
        """POST /servers; returns the new server's id right after the 202 (a list of ids
        when ``count`` > 1, all created by one request, as Nova's ``min_count``)."""
        server: dict[str, Any] = {"name": name, "flavorRef": flavor, "imageRef": image}
        if availability_zone:
            server["availability_zone"] = availability_zone
        if count != 1:
            server.update(min_count=count, return_reservation_id=True)
        resp = self._api().post("/servers", {"server": server})
        self.last_response_time = resp.elapsed
        if count == 1:
            return resp.body["server"]["id"]
        listing = self._api().get(f"/servers?reservation_id={resp.body['reservation_id']}")
        return [s["id"] for s in listing["servers"]]

    def server(self, server_id: str) -> dict[str, Any]:
        return self._api().get(f"/servers/{server_id}")["server"]

    def servers(self) -> list[dict[str, Any]]:
        return self._api().get("/servers/detail")["servers"]

    def delete(self, server_id: str) -> None:
        self._api().delete(f"/servers/{server_id}")

    # -- moving servers (resize / migrate, rebuild / evacuate) --------------------------------
    def action(self, server_id: str, body: dict[str, Any]) -> int:
        """``POST /servers/{id}/action``; returns the HTTP status (202, 204, 200)."""
        resp = self._api().post(f"/servers/{server_id}/action", body)
        self.last_response_time = resp.elapsed
        return resp.status

    def migrate(self, server_id: str) -> int:
        """Cold-migrate to another host chosen by the scheduler (then confirm or revert)."""
        return self.action(server_id, {"migrate": None})

    def resize(self, server_id: str, flavor: str) -> int:
        """Resize to ``flavor``: on another host, ending in VERIFY_RESIZE."""
        return self.action(server_id, {"resize": {"flavorRef": flavor}})

    def confirm_resize(self, server_id: str) -> int:
        return self.action(server_id, {"confirmResize": None})

    def revert_resize(self, server_id: str) -> int:
        return self.action(server_id, {"revertResize": None})

    def rebuild(self, server_id: str, image: str) -> int:
        """Rebuild in place from ``image``."""
        return self.action(server_id, {"rebuild": {"imageRef": image}})

    def evacuate(self, server_id: str, host: str | None = None) -> int:
        """Rebuild elsewhere because its compute is down (409 while it is up)."""
        return self.action(server_id, {"evacuate": {"host": host} if host else {}})

    def migrations(self, server_id: str | None = None) -> list[dict[str, Any]]:
        """``GET /os-migrations`` (newest first), for one server if given."""
        query = f"?instance_uuid={server_id}" if server_id else ""
        return self._api().get(f"/os-migrations{query}")["migrations"]

    def actions(self, server_id: str) -> list[dict[str, Any]]:
        return self._api().get(f"/servers/{server_id}/os-instance-actions")["instanceActions"]

    def services(self) -> list[dict[str, Any]]:
        return self._api().get("/os-services")["services"]

    def hypervisors(self) -> list[dict[str, Any]]:
        return self._api().get("/os-hypervisors/detail")["hypervisors"]

    def wait(self, ids: str | Iterable[str], timeout: float = 30.0,
             statuses: tuple[str, ...] = FINAL_STATUSES, progress: bool = False) -> Any:
        """Wait until each server is at rest: ACTIVE, ERROR, VERIFY_RESIZE (or gone), with
        no task running; return the final records (one record for one id, a list for a
        list). ``progress`` shows a bar."""
        single = isinstance(ids, str)
        order = [ids] if single else list(ids)
        pending, done = list(order), {}
        deadline = time.monotonic() + timeout
        with progress_bar(len(order), "builds", enabled=progress) as bar:
            while pending:
                for sid in list(pending):
                    record = self._final_or_none(sid, statuses)
                    if record is not None:
                        done[sid] = record
                        pending.remove(sid)
                        bar.update(1)
                if pending and time.monotonic() > deadline:
                    states = {s: self.server(s)["status"] for s in pending[:5]}
                    raise LabError(f"{len(pending)} server(s) not finished after {timeout}s:"
                                   f" {states}")
                if pending:
                    time.sleep(0.05)
        records = [done[s] for s in order]
        return records[0] if single else records

    def _final_or_none(self, sid: str, statuses: tuple[str, ...]) -> dict[str, Any] | None:
        try:
            record = self.server(sid)
        except ApiError as exc:
            if exc.status != 404:
                raise
            record = {"id": sid, "status": "DELETED"}
        if record.get("OS-EXT-STS:task_state") is not None:
            return None
        return record if record["status"] in statuses else None

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

    # -- the lab's knobs ------------------------------------------------------------------------
    def set_failure(self, host: str, reschedule: float | None = None,
                    fatal: float | None = None, crash: float | None = None,
                    slow: float | None = None) -> dict[str, float]:
        """Failure injection on one compute: probabilities per build attempt (and per
        resize step: ``prep_resize`` is rescheduled; ``fatal``/``crash`` in
        ``resize_instance``/``finish_resize`` end the migration in ERROR)."""
        given = {k: v for k, v in dict(reschedule=reschedule, fatal=fatal, crash=crash,
                                       slow=slow).items() if v is not None}
        self._compute(host)
        settings = FailureSettings(**{**self.failures(host), **given})  # validate first
        if settings.crash and self.config.shares_process(host):
            raise LabError(f"{host} shares its process with other hosts (hosts_per_process"
                           f"={self.config.hosts_per_process}): a crash would end them "
                           f"all; use fatal or reschedule, or hosts_per_process=1")
        rundir.update(self.run_dir, failures={host: settings.to_dict()})
        if not self.is_up(f"compute.{host}"):
            return settings.to_dict()   # a down compute reads lab.json when it restarts
        return self.bus().call("compute", "set_failure", server=host, **settings.to_dict())

    def is_up(self, identity: str) -> bool:
        """Whether the bus hears from ``identity`` (``compute.compute1``) right now."""
        return any(p["identity"] == identity and p["alive"]
                   for p in self.bus().control("peers"))

    def failures(self, host: str) -> dict[str, float]:
        saved = rundir.read(self.run_dir).get("failures", {}).get(host, {})
        return FailureSettings(**saved).to_dict()

    def configure(self, **changes: Any) -> LabConfig:
        """Change workflow options (flow, local_mode, alternates, max_attempts, filters,
        weighers, multipliers, preset, speed) in every running service, now."""
        bad = sorted(set(changes) - set(RUNTIME_OPTIONS))
        if bad:
            raise ConfigError(f"cannot change {bad} while running; runtime options: "
                              f"{', '.join(RUNTIME_OPTIONS)}")
        new = self.config.replace(**changes)
        self.config = new
        rundir.update(self.run_dir, config={"lab": new.to_dict()})
        values = {k: new.to_dict()[k] for k in changes}
        for peer in self.bus().control("peers"):
            if peer["topic"] not in ("api", "conductor", "scheduler", "compute"):
                continue
            if self.is_up(peer["identity"]):   # confirmed before we return
                self.bus().call(peer["topic"], "set_config", server=peer["server"], **values)
            else:   # paused or gone: the bus keeps the cast until it is back
                self.bus().cast(peer["topic"], "set_config", server=peer["server"], **values)
        if {"preset", "speed"} & set(changes):
            self.bus().control("set_faults", hop_delay=new.timing("hop_delay"))
        return new

    def plug_in(self, cls: type, enable: bool = True) -> str:
        """Load your own filter or weigher class (a subclass of BaseFilter or BaseWeigher,
        defined in a cell) into the running scheduler; ``enable`` adds it to the enabled
        list. Returns "filter" or "weigher"."""
        from .plugin import write_plugin
        write_plugin(self.run_dir, cls)
        name = cls.__name__
        kind = self.bus().call("scheduler", "load_plugin", name=name)
        changes: dict[str, Any] = {"plugins": sorted({*self.config.plugins, name})}
        if enable:
            key = "filters" if kind == "filter" else "weighers"
            current = list(getattr(self.config, key))
            changes[key] = current if name in current else current + [name]
        self.configure(**changes)
        return kind

    def unplug(self, name: str) -> LabConfig:
        """Disable a plugged-in class (it stays loaded, unused)."""
        return self.configure(filters=[f for f in self.config.filters if f != name],
                              weighers=[w for w in self.config.weighers if w != name])

    def _compute(self, host: str) -> str:
        """``host`` if it is one of the lab's computes or one that joined it (a class's
        student's, known by its hypervisor record)."""
        if host not in self.config.compute_names() and \
                host not in {h["hypervisor_hostname"] for h in self.hypervisors()}:
            raise LabError(f"no compute {host!r}; computes: "
                           f"{', '.join(self.config.compute_names())}")
        return host
