"""The figures of ``python -m lab bench classroom`` (``lab.bench_classroom`` measures):
pure arithmetic on what was measured, so it is tested on given numbers.

- ``summarize_side_by_side(rows)``: each N's lesson times as median and max, and as
  ratios against N = 1's (measured in the same run); memory per lab; whether every build
  ended ACTIVE or ERROR with a fault and every process went;
- ``kernel_estimate(r)``: a student's kernel, from a fresh ipykernel and what running the
  lab added to the benchmark's own process;
- ``sizing_rule(r)``: the one line an admin sizes a hub by;
- ``format_classroom(r)``: the printed report.
"""
from __future__ import annotations

import statistics
from typing import Any

__all__ = ["summarize_side_by_side", "kernel_estimate", "sizing_rule", "setup_figures",
           "format_classroom"]


def summarize_side_by_side(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add medians, maxima, ratios against the N = 1 row, per-lab memory, and whether
    every build ended as it may (ACTIVE, or ERROR with a fault) and every process went."""
    base = statistics.median(next(r for r in rows if r["labs"] == 1)["lesson_s"])
    out = []
    for r in rows:
        med, top, n = statistics.median(r["lesson_s"]), max(r["lesson_s"]), r["labs"]
        out.append({**r, "lesson_median_s": round(med, 2), "lesson_max_s": round(top, 2),
                    "lesson_ratio_median": round(med / base, 2),
                    "lesson_ratio_max": round(top / base, 2),
                    "rss_per_lab_mb": None if r["rss_total_mb"] is None
                    else round(r["rss_total_mb"] / n, 1),
                    "pss_per_lab_mb": None if r["pss_total_mb"] is None
                    else round(r["pss_total_mb"] / n, 1),
                    "builds_ok": r["builds"]["other"] == 0 and sum(r["builds"].values()) > 0,
                    "all_stopped": r["leftover_processes"] == 0})
    return out


def kernel_estimate(r: dict[str, Any]) -> dict[str, float | None]:
    """A student's kernel, RSS and PSS MB: a fresh ipykernel after the lesson's imports
    (``ipykernel_mb``) plus what running the lab added to this process (its peak less
    its size before the first lab); this process's peak where no ipykernel was measured."""
    ipykernel, before, out = r.get("ipykernel_mb"), r["kernel_before_lab_mb"], {}
    for key in ("rss", "pss"):
        peak = r[f"kernel_{key}_mb"]["peak"]
        if ipykernel is None:
            out[key] = peak
        elif None in (ipykernel[key], peak, before[key]):
            out[key] = None
        else:
            out[key] = round(ipykernel[key] + max(0.0, peak - before[key]), 1)
    return out


def sizing_rule(r: dict[str, Any]) -> str:
    """One line from the per-student figures: memory from the peak PSS (RSS where PSS
    could not be read) of the lab plus the kernel (``kernel_estimate_mb``); students per
    core from the lab's plus the kernel's CPU, idle and during a lesson."""
    lab_rss, lab_pss = r["per_student_rss_mb"]["peak"], r["per_student_pss_mb"]["peak"]
    kernel = r["kernel_estimate_mb"]
    lab_mb = lab_pss if lab_pss is not None else lab_rss
    kernel_mb = kernel["pss"] if kernel["pss"] is not None else kernel["rss"]
    idle = r["idle_cpu_percent"] + r["kernel_idle_cpu_percent"]
    busy = r["lesson_cpu_percent"] + r["kernel_lesson_cpu_percent"]
    per_core = lambda pct: f"{100 / pct:.0f}" if pct > 0 else "unbounded"
    return (f"RAM ≈ peak concurrent students × {_round_up(lab_mb + kernel_mb)} MB "
            f"(lab {lab_mb:.0f} + kernel {kernel_mb:.0f}; RSS, an upper bound: "
            f"{_round_up(lab_rss + kernel['rss'])} MB) + hub overhead; CPU: about "
            f"{per_core(idle)} students per core while idle ({idle:.1f}% each), "
            f"{per_core(busy)} while all run a lesson at once ({busy:.0f}% each)")


def _round_up(mb: float, step: int = 10) -> int:
    return int(-(-mb // step) * step)


def setup_figures(setups: list[dict[str, float]]) -> dict[str, Any]:
    key = "drawn_s" if "drawn_s" in setups[0] else "lab_start_s"
    out: dict[str, Any] = {"measured_to": "dashboard drawn" if key == "drawn_s"
                           else "lab started (no browser)"}
    for name in setups[0]:
        values = [s[name] for s in setups]
        out[name] = {"min": round(min(values), 2),
                     "median": round(statistics.median(values), 2),
                     "runs": [round(v, 2) for v in values]}
    out["min"], out["median"] = out[key]["min"], out[key]["median"]
    return out


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def format_classroom(r: dict[str, Any]) -> str:
    rss, pss = r["per_student_rss_mb"], r["per_student_pss_mb"]
    krss, kpss, kest = r["kernel_rss_mb"], r["kernel_pss_mb"], r["kernel_estimate_mb"]
    s, b, c = r["setup_to_dashboard_s"], r["lesson_builds"], r["conditions"]
    ipk = r["ipykernel_mb"] or {"rss": None, "pss": None}
    lines = [
        f"classroom benchmark: {r['preset']} preset, {r['computes']} computes, dashboard; "
        f"lesson = {r['lesson_rounds']} round(s) of {r['servers_per_round']} servers, "
        f"{r['failing']} of builds failing; {c['cpus']} CPUs, load average "
        f"{c['load_before'][0]:.1f} -> {c['load_after'][0]:.1f}",
        f"per student ({len(r['by_process'])} lab processes"
        f"{'; dashboard open in headless Chromium, not counted' if r['browser'] else ''}):",
        f"  memory      RSS peak {_mb(rss['peak'])} MB, steady {_mb(rss['steady'])} MB; "
        f"PSS peak {_mb(pss['peak'])} MB, steady {_mb(pss['steady'])} MB",
        f"  kernel      this process RSS/PSS peak {_mb(krss['peak'])}/{_mb(kpss['peak'])} MB"
        f" (steady {_mb(krss['steady'])}/{_mb(kpss['steady'])}); a fresh ipykernel with the "
        f"lesson's imports {_mb(ipk['rss'])}/{_mb(ipk['pss'])}; estimate "
        f"{_mb(kest['rss'])}/{_mb(kest['pss'])} MB",
        f"  lesson CPU  {r['lesson_cpu_s']:.1f} s over {r['lesson_wall_s']:.1f} s = "
        f"{r['lesson_cpu_percent']:.1f}% of a core "
        f"(kernel {r['kernel_lesson_cpu_percent']:.1f}%)"
        f"; builds {b['active']} ACTIVE, {b['error_with_fault']} ERROR with fault, "
        f"{b['other']} other",
        f"  idle CPU    {r['idle_cpu_percent']:.2f}% of a core over {r['idle_seconds']:g} s "
        f"(kernel {r['kernel_idle_cpu_percent']:.2f}%)"]
    if r["browser"]:
        lines.append(f"  (the browser, on the student's machine on a hub, used "
                     f"{r['browser_cpu_percent']['lesson']:.0f}% of a core here during the "
                     f"lesson, {r['browser_cpu_percent']['idle']:.0f}% idle)")
    lines.append(f"  {'by process':24}{'RSS MB':>6} {'PSS MB':>7} {'lesson %':>9} {'idle %':>7}")
    for name, p in r["by_process"].items():
        lines.append(f"    {name:22} {_mb(p['rss_mb']):>5} {_mb(p['pss_mb']):>7} "
                     f"{p['lesson_cpu_percent']:9.1f} {p['idle_cpu_percent']:7.2f}")
    lines += [
        f"setup cell -> {s['measured_to']}: min {s['min']:.2f} s, median {s['median']:.2f} s "
        f"over {len(s['lab_start_s']['runs'])} run(s) (Lab.start() returned after median "
        f"{s['lab_start_s']['median']:.2f} s)",
        "side by side (started in parallel threads, idle together, then every lesson at "
        "once; no browser):", _SIDE_HEADER]
    lines += [_side_row(row) for row in r["side_by_side"]]
    lines.append(f"sizing: {r['sizing_rule']}")
    return "\n".join(lines)


_SIDE_HEADER = (f"  {'N':>3} {'start s':>8} {'lesson med/max s':>17} {'x N=1 med/max':>14} "
                f"{'idle %/lab':>10} {'lesson %CPU':>11} {'kernel %':>8} {'RSS MB':>7} "
                f"{'/lab':>5} {'PSS/lab':>7}  builds")


def _side_row(row: dict[str, Any]) -> str:
    builds = row["builds"]
    return (f"  {row['labs']:3} {row['start_all_s']:8.1f} "
            f"{row['lesson_median_s']:8.1f}/{row['lesson_max_s']:<8.1f} "
            f"{row['lesson_ratio_median']:6.2f}/{row['lesson_ratio_max']:<7.2f} "
            f"{row['idle_cpu_percent_per_lab']:10.2f} {row['lesson_cpu_percent_all']:11.0f} "
            f"{row['kernel_lesson_cpu_percent']:8.0f} "
            f"{_mb(row['rss_total_mb']):>7} {_mb(row['rss_per_lab_mb']):>5} "
            f"{_mb(row['pss_per_lab_mb']):>7}  {builds['active']} ACTIVE, "
            f"{builds['error_with_fault']} ERROR+fault, {builds['other']} other"
            f"{'' if row['all_stopped'] else ', PROCESSES LEFT'}")
