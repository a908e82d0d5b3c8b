"""``python -m lab bench moves``: what the conductor's other workflows cost, each figure
against a baseline measured in the same run and the same lab (rounds alternate modes).

Durations come from the trace, not from polling the API: from the request's first
message at the bus to its last (its workflow and database-proxy messages).

- **Resize paths**: a cold migration, POST to VERIFY_RESIZE, in the seed's way (the
  computes hand the work on: baseline), with ``resize_via_conductor`` (the conductor
  calls each step) and in the legacy flow. Per mode: p50 seconds per migration, messages
  per migration (the request's workflow and database-proxy messages), and how many of
  them go from one compute to another.
  Goal: the conductor-run path within 2x the baseline's p50 (it waits for each step
  instead of letting the computes stream them) and with no compute-to-compute message.
- **Object backporting**: a build on a compute pinned to Instance 1.0 (it calls
  ``object_backport_versions``) and with ``object_pinning`` (the conductor sends 1.0),
  against a build on an up-to-date compute (baseline).
  Goal: a backported build's p50 within 1.5x the baseline's, and pinning removes the
  backport call (0 per build).
"""
from __future__ import annotations

import statistics
from typing import Any, Callable

from .lab import Lab
from .lessons.moving import steer

__all__ = ["bench_moves", "format_moves", "GOALS"]

GOALS = {"via_conductor_p50_ratio_max": 2.0, "backport_p50_ratio_max": 1.5}
RESIZE_MODES = {"computes (seed)": {}, "via conductor": {"resize_via_conductor": True},
                "legacy": {"flow": "legacy"}}
BUILD_MODES = ("new compute", "old compute, backport", "old compute, pinned")
NOISE = ("service_update", "compute_node_update", "instances_on_host", "evacuation_cleanup")


def _wait(lab: Lab, server: str, status: str) -> None:
    record = lab.wait(server, timeout=30)
    if record["status"] != status:
        raise RuntimeError(f"{server} ended {record['status']}, expected {status}: "
                           f"{record.get('OS-EXT-LAB:last_fault')}")


def _measure(lab: Lab, since: int, request_id: str) -> tuple[float, tuple[int, int, int]]:
    """Seconds from the request's first message to its last, and (messages,
    compute-to-compute messages, backport calls)."""
    routed = lab.trace(since=since).routed().where(request_id=request_id)
    routed = routed.filter(lambda e: e["method"] not in NOISE)
    if not len(routed):
        raise RuntimeError(f"no message of request {request_id} in the trace")
    hops = routed.where(src="compute", dst="compute", kind="cast")
    elapsed = routed[-1]["ts"] - routed[0]["ts"]
    return elapsed, (len(routed), len(hops),
                     len(routed.where(kind="call", method="object_backport_versions")))


def _migrate_once(lab: Lab, server: str) -> tuple[float, tuple[int, int, int]]:
    mark = lab.mark()
    lab.migrate(server)
    _wait(lab, server, "VERIFY_RESIZE")
    result = _measure(lab, mark, lab.migrations(server)[0]["OS-EXT-LAB:request_id"])
    lab.confirm_resize(server)
    _wait(lab, server, "ACTIVE")
    return result


def _build_once(lab: Lab, name: str) -> tuple[float, tuple[int, int, int]]:
    mark = lab.mark()
    server = lab.boot(name, flavor="m1.tiny")
    _wait(lab, server, "ACTIVE")
    result = _measure(lab, mark, lab.server(server)["OS-EXT-LAB:request_id"])
    lab.delete(server)
    lab.wait(server, timeout=30)
    return result


def bench_moves(migrations: int = 20, builds: int = 20, rounds: int = 3,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    times: dict[str, list[float]] = {m: [] for m in [*RESIZE_MODES, *BUILD_MODES]}
    counts: dict[str, list[tuple[int, int, int]]] = {m: [] for m in times}
    with Lab(computes=3, seed=11, preset="fast") as lab:
        server = lab.boot("moving", flavor="m1.tiny")
        _wait(lab, server, "ACTIVE")
        old = lab.add_compute(object_version="1.0")
        for r in range(rounds):
            steer(lab, "compute1", "compute2", "compute3")   # resizes among new computes
            for mode, options in RESIZE_MODES.items():
                lab.configure(**{"flow": "conductor", "resize_via_conductor": False,
                                 **options})
                for _ in range(migrations):
                    elapsed, c = _migrate_once(lab, server)
                    times[mode].append(elapsed)
                    counts[mode].append(c)
                say(f"round {r + 1}/{rounds} {mode}: "
                    f"p50 {statistics.median(times[mode]) * 1e3:.0f} ms")
            lab.configure(flow="conductor", resize_via_conductor=False)
            for mode in BUILD_MODES:
                lab.configure(object_pinning=mode.endswith("pinned"))
                steer(lab, "compute1" if mode == "new compute" else old)
                for i in range(builds):
                    elapsed, c = _build_once(lab, f"b{r}-{i}")
                    times[mode].append(elapsed)
                    counts[mode].append(c)
                say(f"round {r + 1}/{rounds} {mode}: "
                    f"p50 {statistics.median(times[mode]) * 1e3:.0f} ms")
    return _result(times, counts, migrations, builds, rounds)


def _result(times: dict[str, list[float]], counts: dict[str, list[tuple[int, int, int]]],
            migrations: int, builds: int, rounds: int) -> dict[str, Any]:
    rows = {}
    for mode in times:
        msgs, hops, backports = zip(*counts[mode])
        rows[mode] = {"p50_ms": statistics.median(times[mode]) * 1e3,
                      "messages": statistics.mean(msgs),
                      "compute_to_compute": statistics.mean(hops),
                      "backport_calls": statistics.mean(backports)}
    base_resize, base_build = rows["computes (seed)"], rows["new compute"]
    ratios = {"via_conductor_p50": rows["via conductor"]["p50_ms"] / base_resize["p50_ms"],
              "legacy_p50": rows["legacy"]["p50_ms"] / base_resize["p50_ms"],
              "backport_p50": rows["old compute, backport"]["p50_ms"] / base_build["p50_ms"],
              "pinned_p50": rows["old compute, pinned"]["p50_ms"] / base_build["p50_ms"]}
    met = {"via_conductor_p50": ratios["via_conductor_p50"]
           <= GOALS["via_conductor_p50_ratio_max"],
           "via_conductor_no_hops": rows["via conductor"]["compute_to_compute"] == 0,
           "backport_p50": ratios["backport_p50"] <= GOALS["backport_p50_ratio_max"],
           "pinning_no_backport": rows["old compute, pinned"]["backport_calls"] == 0}
    return {"migrations_per_round": migrations, "builds_per_round": builds,
            "rounds": rounds, "modes": rows, "ratios": ratios, "goals": dict(GOALS),
            "met": met}


def format_moves(r: dict[str, Any]) -> str:
    lines = [f"moves benchmark: {r['rounds']} rounds x {r['migrations_per_round']} "
             f"migrations and {r['builds_per_round']} builds per mode (fast preset)",
             f"{'':24}{'p50 ms':>9}{'messages':>10}{'c->c':>6}{'backports':>11}"]
    for mode, row in r["modes"].items():
        lines.append(f"{mode:24}{row['p50_ms']:9.1f}{row['messages']:10.1f}"
                     f"{row['compute_to_compute']:6.1f}{row['backport_calls']:11.1f}")
    x, m = r["ratios"], r["met"]
    lines += [
        f"via conductor / seed p50  {x['via_conductor_p50']:.2f}  <= "
        f"{GOALS['via_conductor_p50_ratio_max']} {'met' if m['via_conductor_p50'] else 'MISSED'}"
        f"; no compute-to-compute hop: {'met' if m['via_conductor_no_hops'] else 'MISSED'}",
        f"legacy / seed p50         {x['legacy_p50']:.2f}",
        f"backport / new build p50  {x['backport_p50']:.2f}  <= "
        f"{GOALS['backport_p50_ratio_max']} {'met' if m['backport_p50'] else 'MISSED'}",
        f"pinned / new build p50    {x['pinned_p50']:.2f}; no backport call: "
        f"{'met' if m['pinning_no_backport'] else 'MISSED'}"]
    return "\n".join(lines)
