"""Configuration, defined once: every tunable lives in one of two dataclasses, written to
the run directory's ``lab.json`` by whoever starts the lab and read back by every
service, so all processes of one lab agree. ``BusConfig`` is the message bus;
``LabConfig`` is the cloud (computes, flavors, the workflow switches, timings).

Timings come from a *preset*, ``fast`` (no artificial delays: tests, benchmarks) or
``demo`` (a hop ~0.3 s, a build step ~0.5 s: watchable in a classroom), scaled by one
``speed`` factor (2.0 = twice as fast)."""
from __future__ import annotations

import dataclasses
import math
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["BusConfig", "LabConfig", "ConfigError", "from_dict", "FLAVORS", "IMAGES",
           "image_id", "image_name", "PRESETS", "FILTERS", "WEIGHERS", "RUNTIME_OPTIONS"]


class ConfigError(ValueError):
    """A configuration value that is unknown or out of range."""


@dataclass(frozen=True)
class BusConfig:
    """The message bus and its peers' liveness rules (seconds unless named otherwise)."""

    heartbeat_interval: float = 0.5   # a peer and the bus beat this often
    dead_after: float = 2.0           # a server silent this long is down
    bus_timeout: float = 10.0         # a service exits when the bus is silent this long
    call_timeout: float = 10.0        # default RPC call timeout (oslo's rpc_response_timeout)
    queue_limit: int = 1000           # casts kept per absent receiver; overflow is dropped
    queue_ttl: float = 0.0            # queued casts older than this expire; 0 keeps them
    history_size: int = 50_000        # trace events kept for late subscribers
    max_message_bytes: int = 1 << 20  # larger frames are counted and dropped
    hop_delay: float = 0.0            # added to every routed message (demo pacing)
    seed: int = 0                     # seeds every fault decision

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            whole = f.type in (int, "int")
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
                raise ConfigError(f"{f.name} must be {'an integer' if whole else 'a number'},"
                                  f" not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{f.name} must be a finite number >= 0, not {value!r}")
        if self.heartbeat_interval <= 0 or self.dead_after <= self.heartbeat_interval:
            raise ConfigError("need 0 < heartbeat_interval < dead_after")
        if self.queue_limit < 1 or self.history_size < 1:
            raise ConfigError("queue_limit and history_size must be >= 1")


def from_dict(cls: type, data: dict[str, Any] | None) -> Any:
    """Build a config dataclass from a dict, refusing unknown keys with a clear error."""
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    return cls(**data)


# Nova's classic flavors: name -> (vcpus, memory_mb, root_gb).
FLAVORS: dict[str, dict[str, int]] = {
    "m1.tiny": {"id": 1, "vcpus": 1, "memory_mb": 512, "root_gb": 1},
    "m1.small": {"id": 2, "vcpus": 1, "memory_mb": 2048, "root_gb": 20},
    "m1.medium": {"id": 3, "vcpus": 2, "memory_mb": 4096, "root_gb": 40},
    "m1.large": {"id": 4, "vcpus": 4, "memory_mb": 8192, "root_gb": 80},
}
# The lab's images, as its image service (Glance v2's shape) lists them: name -> record.
# Like flavors, an image is known by its name inside the lab (the database stores it);
# its id is a UUID made from the name, the same in every lab and every run of a lesson.
IMAGE_NAMESPACE = uuid.UUID("6c1e5c4a-8f0d-5d7e-9a53-0c0ad0c70b1a")


def image_id(name: str) -> str:
    """The id of the lab's image ``name`` (uuid5: stable across labs and runs)."""
    return str(uuid.uuid5(IMAGE_NAMESPACE, name))


IMAGES: dict[str, dict[str, str | int]] = {
    name: {"id": image_id(name), "name": name, "size": size, "os_distro": distro,
           "os_version": version, "min_disk": 0, "min_ram": 0}
    for name, size, distro, version in (("cirros", 21430272, "cirros", "0.6.2"),
                                        ("fedora", 471531520, "fedora", "40"),
                                        ("ubuntu", 594804736, "ubuntu", "24.04"))}


def image_name(ident: str) -> str | None:
    """The name of the lab's image whose id is ``ident``, or None."""
    return next((name for name, image in IMAGES.items() if image["id"] == ident), None)


FILTERS = ("ComputeFilter", "AvailabilityZoneFilter", "RamFilter", "CoreFilter",
           "DiskFilter", "RetryFilter")
WEIGHERS = ("RAMWeigher", "BuildFailureWeigher")
# Seconds, before the speed factor. report_interval/service_down_time follow Nova's
# ratio (10 s / 60 s) scaled down so a killed compute is noticed during a lesson.
PRESETS: dict[str, dict[str, float]] = {
    "fast": {"hop_delay": 0.0, "step_time": 0.0, "report_interval": 0.5,
             "service_down_time": 3.0, "build_timeout": 10.0, "scheduler_timeout": 5.0},
    "demo": {"hop_delay": 0.3, "step_time": 0.5, "report_interval": 2.0,
             "service_down_time": 10.0, "build_timeout": 60.0, "scheduler_timeout": 15.0},
}
# Stretched by LabConfig.load_factor() in clouds of more than LOAD_HOSTS computes.
SCALED_TIMINGS = ("report_interval", "service_down_time")
LOAD_HOSTS = 50
# What ``Lab.configure`` may change while the lab runs.
RUNTIME_OPTIONS = ("flow", "local_mode", "alternates", "max_attempts", "filters",
                   "weighers", "ram_weight_multiplier", "build_failure_weight_multiplier",
                   "preset", "speed", "plugins", "resize_via_conductor", "object_pinning",
                   "max_placement_results")


@dataclass(frozen=True)
class LabConfig:
    """The simulated cloud. Options in RUNTIME_OPTIONS can change while it runs."""

    computes: int = 3
    vcpus: int = 8                       # per compute
    memory_mb: int = 16384
    local_gb: int = 200
    availability_zones: tuple[str, ...] = ("nova",)   # computes take them in turn
    cpu_allocation_ratio: float = 1.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    max_attempts: int = 3                # Nova's [scheduler] max_attempts
    flow: str = "conductor"              # "conductor" (the new process) or "legacy"
    local_mode: bool = False             # the API runs the conductor's build task
    alternates: bool = False             # select_destinations returns alternate hosts
    filters: tuple[str, ...] = FILTERS
    weighers: tuple[str, ...] = WEIGHERS
    ram_weight_multiplier: float = 1.0   # negative stacks instead of spreading
    build_failure_weight_multiplier: float = 1000000.0
    seed: int = 0
    preset: str = "fast"
    speed: float = 1.0
    plugins: tuple[str, ...] = ()        # students' own filter/weigher classes, by name
    extra_computes: tuple[str, ...] = ()  # added while running (lab.add_compute)
    resize_via_conductor: bool = False   # the conductor makes every resize hop (no
    #                                      compute-to-compute casts): how Nova went on
    object_pinning: bool = False         # senders send old computes their old object
    #                                      version (no backport call): Nova's upgrade_levels
    hosts_per_process: int = 1           # computes served by one process (scale labs):
    #                                      each still its own compute.HOST on the bus
    max_placement_results: int = 1000    # Nova's [scheduler] option: the scheduler's
    #                                      filters see at most this many hosts with room
    conductor_workers: int = 1           # conductor processes sharing the conductor
    #                                      topic (the bus round-robins it): Nova's workers

    def __post_init__(self) -> None:
        for key in ("filters", "weighers", "availability_zones", "plugins", "extra_computes"):  # JSON: lists
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))
        if self.flow not in ("conductor", "legacy"):
            raise ConfigError(f"flow must be 'conductor' or 'legacy', not {self.flow!r}")
        if self.preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, not {self.preset!r}")
        for name in ("computes", "vcpus", "memory_mb", "local_gb", "max_attempts",
                     "hosts_per_process", "conductor_workers", "max_placement_results"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, not {value!r}")
        if not 0 < self.speed <= 100:
            raise ConfigError(f"speed must be in (0, 100], not {self.speed!r}")
        for name in ("local_mode", "alternates", "resize_via_conductor", "object_pinning"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false")
        bad = [p for p in self.plugins if not isinstance(p, str) or not p.isidentifier()]
        if bad:
            raise ConfigError(f"plugin names must be Python class names, not {bad}")
        unknown = [f for f in self.filters if f not in FILTERS + self.plugins]
        if unknown:
            raise ConfigError(f"unknown filter(s) {unknown}; known: "
                              f"{', '.join(FILTERS + self.plugins)}")
        unknown = [w for w in self.weighers if w not in WEIGHERS + self.plugins]
        if unknown:
            raise ConfigError(f"unknown weigher(s) {unknown}; known: "
                              f"{', '.join(WEIGHERS + self.plugins)}")
        names = [f"compute{i + 1}" for i in range(self.computes)]
        for host in self.extra_computes:
            if not (isinstance(host, str) and host.startswith("compute")
                    and host.removeprefix("compute").isascii()
                    and host.removeprefix("compute").isdecimal()) or host in names:
                raise ConfigError(f"an added compute needs a new name like compute7, "
                                  f"not {host!r}")
            names.append(host)
        if not self.availability_zones:
            raise ConfigError("availability_zones needs at least one zone")

    def timing(self, name: str) -> float:
        """A duration from the preset, divided by ``speed``; the report cycle stretches
        with a big cloud (``load_factor``), as a real deployment's is tuned."""
        value = PRESETS[self.preset][name] / self.speed
        if name in SCALED_TIMINGS:
            value *= self.load_factor()
        return value

    def load_factor(self) -> float:
        """1 up to LOAD_HOSTS computes, then computes / LOAD_HOSTS: heartbeats, service
        reports and resource reports per second stay what LOAD_HOSTS computes send, so
        1,000 hosts on a laptop are not spent reporting that they are alive."""
        return max(1.0, len(self.compute_names()) / LOAD_HOSTS)

    def shares_process(self, host: str) -> bool:
        """Whether ``host`` runs in a process with other hosts."""
        return any(host in group and len(group) > 1 for group in self.compute_processes())

    def compute_processes(self) -> list[list[str]]:
        """The computes grouped by the process that serves them (``hosts_per_process``;
        computes added while running get a process each)."""
        first = [f"compute{i + 1}" for i in range(self.computes)]
        n = self.hosts_per_process
        return [first[i:i + n] for i in range(0, len(first), n)] + \
            [[host] for host in self.extra_computes]

    def compute_names(self) -> list[str]:
        return [f"compute{i + 1}" for i in range(self.computes)] + list(self.extra_computes)

    def zone_of(self, host: str) -> str:
        """Zones go round by the number a host's name ends in (``compute3``, a
        student's ``alice_3``); a name without one is in the first."""
        digits = host[len(host.rstrip("0123456789")):]
        index = int(digits or 1) - 1
        return self.availability_zones[index % len(self.availability_zones)]

    def replace(self, **changes: Any) -> "LabConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
