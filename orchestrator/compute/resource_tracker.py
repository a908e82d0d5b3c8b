"""The resource tracker: a compute's vCPUs, RAM and disk, and the claims instances hold on
them. A claim that does not fit raises ComputeResourcesUnavailable (the scheduler's view
was stale), which makes the build reschedule."""
from __future__ import annotations

from typing import Any

from ..exception import ComputeResourcesUnavailable

__all__ = ["ResourceTracker"]


class ResourceTracker:
    def __init__(self, host: str, availability_zone: str, vcpus: int, memory_mb: int,
                 local_gb: int, ratios: tuple[float, float, float] = (1.0, 1.0, 1.0)):
        self.host = host
        self.availability_zone = availability_zone
        self.total = {"vcpus": vcpus, "memory_mb": memory_mb, "local_gb": local_gb}
        self.ratios = dict(zip(("vcpus", "memory_mb", "local_gb"), ratios))
        self.claims: dict[str, dict[str, int]] = {}

    def used(self) -> dict[str, int]:
        used = {"vcpus": 0, "memory_mb": 0, "local_gb": 0}
        for claim in self.claims.values():
            for key in used:
                used[key] += claim[key]
        return used

    def claim(self, instance_uuid: str, spec: dict[str, Any]) -> None:
        want = {"vcpus": spec["vcpus"], "memory_mb": spec["memory_mb"],
                "local_gb": spec["root_gb"]}
        held = self.claims.get(instance_uuid, {})   # re-claimed (after a restart): replace
        used = {k: v - held.get(k, 0) for k, v in self.used().items()}
        for key, amount in want.items():
            limit = self.total[key] * self.ratios[key]
            if used[key] + amount > limit:
                raise ComputeResourcesUnavailable(
                    f"Insufficient compute resources on {self.host}: {key} "
                    f"{used[key]} used + {amount} requested > {limit:g}")
        self.claims[instance_uuid] = want

    def release(self, instance_uuid: str) -> bool:
        return self.claims.pop(instance_uuid, None) is not None

    def report(self, failed_builds: int) -> dict[str, Any]:
        """The compute node record the conductor writes to the database."""
        used = self.used()
        return {"availability_zone": self.availability_zone, **self.total,
                "vcpus_used": used["vcpus"], "memory_mb_used": used["memory_mb"],
                "local_gb_used": used["local_gb"], "running_vms": len(self.claims),
                "failed_builds": failed_builds, "instances": sorted(self.claims)}
