"""``python -m lab demo``: the seed's new process in one minute. Four computes, one of them
failing half its builds; a handful of instances boot; each one's story is printed (its
attempts, the hosts it tried, how it ended), then every message by kind and method."""
from __future__ import annotations

from typing import Callable

from .lab import Lab

__all__ = ["run_demo"]


def run_demo(preset: str = "demo", computes: int = 4, instances: int = 5, seed: int = 0,
             failing: str = "compute2", rate: float = 0.5,
             say: Callable[[str], None] = print) -> list[dict]:
    with Lab(computes=computes, seed=seed, preset=preset) as lab:
        say(f"lab up in {lab.run_dir}: {computes} computes, preset {preset}, seed {seed}")
        lab.set_failure(failing, reschedule=rate)
        say(f"{failing} fails {rate:.0%} of its builds (reschedulable)\n")
        ids = [lab.boot(f"demo-{i + 1}") for i in range(instances)]
        records = lab.wait(ids, timeout=60 + 20 * instances)
        for record in records:
            tried = [e["host"] for a in lab.actions(record["id"]) for e in a["events"]
                     if e["event"] == "compute_build_and_run_instance"]
            say(f"{record['name']}: {record['status']} on {record['OS-EXT-SRV-ATTR:host']} "
                f"after {record['OS-EXT-LAB:num_attempts']} attempt(s); tried {tried}")
            if "fault" in record:
                say(f"  fault: {record['fault']['message']}")
            for line in lab.story(record["id"]):
                say(f"    {line}")
        say("\nmessages by kind and method (delivered):")
        say(lab.trace().table())
        return records
