"""Lesson 09, the scheduler at scale: what one ``select_destinations`` costs as the cloud
grows from 10 to 1,000 hosts, what waiting in line adds when requests come at once, and
what capping the hosts the filters see (Nova's Placement and ``max_placement_results``)
changes. The figures are the scheduler's own timings (``select_timings``) and the trace;
the lesson's checks assert only the shape of the curves."""
from __future__ import annotations

import statistics
from typing import Any

from ..bench_builds import boot_many, wait_at_rest
from ..bench_scale import lab_memory_mb, select_round_trips
from ..lab import Lab
from .why_conductor import show_inline    # BokehJS inlined: no CDN

__all__ = ["scale_lab", "measure", "crowd", "plot_sizes", "plot_crowd", "table",
           "show_inline"]

PER_PROCESS = 250    # compute hosts a process serves (hosts_per_process)


def scale_lab(hosts: int, seed: int = 7) -> Lab:
    """A started lab of ``hosts`` computes, ``PER_PROCESS`` to a process, room for the
    lesson's builds on every host. Fast preset: this lesson measures, it does not pace."""
    return Lab(computes=hosts, seed=seed, preset="fast", vcpus=4, memory_mb=4096,
               local_gb=40, hosts_per_process=min(hosts, PER_PROCESS)).start(timeout=120)


def _p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure(lab: Lab, boots: int = 15) -> dict[str, Any]:
    """Boot ``boots`` servers one at a time (each waited for) and return the median cost
    of their ``select_destinations`` by phase, in milliseconds, and the lab's size."""
    bus = lab.bus()
    bus.call("scheduler", "select_timings", clear=True)
    for i in range(boots):
        lab.wait(lab.boot(f"m{len(lab.config.compute_names())}-{i}", flavor="m1.tiny"))
    timings = bus.call("scheduler", "select_timings", clear=True)
    hosts = len(lab.config.compute_names())
    row = {"hosts": hosts, "requests": len(timings),
           "candidates": _p50([t["candidates"] for t in timings]),
           "rss_mb": round(sum(lab_memory_mb(lab).values()))}
    for key in ("total_ms", "host_states_ms", "filter_ms", "weigh_ms"):
        row[key] = _p50([t[key] for t in timings])
    row["filter_us_per_candidate"] = row["filter_ms"] * 1e3 / max(1, row["candidates"])
    return row


def crowd(lab: Lab, clients: list[int], builds: int = 48) -> list[dict[str, Any]]:
    """For each n: ``builds`` boots in rounds of n at once (n API clients, each round
    waited for), so n requests reach the scheduler together. Returns the scheduler's own
    time per request against the round trip the conductor waits (call routed to reply
    routed), which includes waiting in line behind the other requests of the round."""
    rows = []
    for n in clients:
        bus = lab.bus()
        bus.call("scheduler", "select_timings", clear=True)
        mark = lab.mark()
        for r in range(max(1, builds // n)):
            accepted = boot_many(lab, [f"c{n}-{r}-{i}" for i in range(n)], n)
            wait_at_rest(lab, {s for s, _ in accepted}, 120)
        timings = bus.call("scheduler", "select_timings", clear=True)
        trips = select_round_trips(list(lab.trace(since=mark)))
        rows.append({"clients": n, "requests": len(trips),
                     "scheduler_ms": _p50([t["total_ms"] for t in timings]),
                     "round_trip_ms": _p50(trips) * 1e3})
    return rows


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """Rows as a plain text table (numbers to two decimals)."""
    columns = columns or list(rows[0])
    cells = [[f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in columns]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def plot_sizes(rows: list[dict[str, Any]], capped: dict[str, Any] | None = None):
    """Bokeh: each phase of select_destinations (median ms) against hosts, log-log; with
    ``capped``, the 1,000-host point once Placement capped the candidates."""
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure
    fig = figure(title="select_destinations: median cost of one request by phase",
                 x_axis_type="log", y_axis_type="log", x_axis_label="hosts in the cloud",
                 y_axis_label="milliseconds", height=330, width=640,
                 tools="hover,save", tooltips=[("hosts", "@hosts"), ("ms", "@y{0.000}")])
    colors = {"total_ms": "#222222", "host_states_ms": "#1f77b4", "filter_ms": "#d62728",
              "weigh_ms": "#2ca02c"}
    for key, color in colors.items():
        src = ColumnDataSource({"hosts": [r["hosts"] for r in rows],
                                "y": [max(r[key], 1e-3) for r in rows]})
        label = key.removesuffix("_ms").replace("_", " ")
        fig.line("hosts", "y", source=src, color=color, line_width=2, legend_label=label)
        fig.scatter("hosts", "y", source=src, color=color, size=7, legend_label=label)
    if capped is not None:
        fig.scatter([capped["hosts"]], [max(capped["filter_ms"], 1e-3)], marker="star",
                    size=16, color="#d62728",
                    legend_label=f"filters, capped at {capped['candidates']:.0f} candidates")
    fig.legend.location = "bottom_right"
    return fig


def plot_crowd(rows: list[dict[str, Any]]):
    """Bokeh bars: the scheduler's own time and the conductor's wait, per crowd size."""
    from bokeh.models import ColumnDataSource, FactorRange
    from bokeh.plotting import figure
    factors = [(f"{r['clients']} at once", what) for r in rows
               for what in ("scheduler", "round trip")]
    values = [v for r in rows for v in (r["scheduler_ms"], r["round_trip_ms"])]
    src = ColumnDataSource({"x": factors, "ms": values,
                            "color": ["#d62728", "#1f77b4"] * len(rows)})
    fig = figure(x_range=FactorRange(*factors), height=300, width=640,
                 title="one request's scheduling vs what the conductor waits for it",
                 y_axis_label="milliseconds (median)", tools="hover,save",
                 tooltips=[("", "@x"), ("ms", "@ms{0.0}")])
    fig.vbar(x="x", top="ms", width=0.8, color="color", source=src)
    fig.xaxis.major_label_orientation = 0.9
    return fig
