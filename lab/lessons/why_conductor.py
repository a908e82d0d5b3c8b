"""Helpers for lesson 04, *Why the conductor and not the API*
(``notebooks/04-why-the-conductor.ipynb``).

The seed: the conductor runs the build "because in order to query the scheduler in a
synchronous manner it needed to happen after the API had returned a response otherwise
API response times would increase". The lesson measures exactly that, so these helpers
time boots, summarise and draw the times, boot in the background (to watch an API that
cannot answer yet), and say which messages the API itself sent.

- ``time_boots(lab, n, prefix)``: ``n`` boots one after another; ids and response times;
- ``percentiles(samples)`` and ``latency_table(samples_by_mode)``: the numbers, as text;
- ``latency_plot(samples_by_mode, delay)``: a small Bokeh strip plot; ``show_inline(fig)``
  shows it in a notebook with BokehJS inlined (never from a CDN);
- ``boot_in_background(lab, name)``: a ``Future`` of ``(server_id, response_seconds)``;
- ``api_messages(trace)`` and ``api_messages_text(trace)``: what the API sent, by kind,
  method and receiving service; ``scheduler_callers(trace)``: who called
  ``select_destinations``; ``message_is(kind, method)``: a predicate for
  ``lab.tap.wait_for``.
"""
from __future__ import annotations

import statistics
import threading
from collections import Counter
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..trace import Trace, topic_of

if TYPE_CHECKING:
    from bokeh.plotting import figure

__all__ = ["time_boots", "percentiles", "latency_table", "latency_plot", "show_inline",
           "boot_in_background", "api_messages", "api_messages_text", "scheduler_callers",
           "message_is"]


def time_boots(lab: Any, n: int, prefix: str,
               flavor: str = "m1.tiny") -> tuple[list[str], list[float]]:
    """Boot ``n`` servers one after another (``prefix1``, ``prefix2``...); their ids and,
    for each, how long the API took to answer the POST (``lab.last_response_time``)."""
    ids, seconds = [], []
    for i in range(1, n + 1):
        ids.append(lab.boot(f"{prefix}{i}", flavor=flavor))
        seconds.append(lab.last_response_time)
    return ids, seconds


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """``n``, ``min``, ``p50``, ``p90`` and ``max`` of the samples (nearest-rank p90)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    p90 = ordered[max(0, -(-9 * len(ordered) // 10) - 1)]   # ceil(0.9 n)-th value
    return {"n": len(ordered), "min": ordered[0], "p50": statistics.median(ordered),
            "p90": p90, "max": ordered[-1]}


def latency_table(samples_by_mode: Mapping[str, Sequence[float]]) -> str:
    """One line per mode: number of boots and min/p50/p90/max response time in ms."""
    width = max([len(m) for m in samples_by_mode] + [4])
    lines = [f"{'mode':{width}}  {'boots':>5}  {'min':>7}  {'p50':>7}  {'p90':>7}  {'max':>7}"]
    for mode, samples in samples_by_mode.items():
        p = percentiles(samples)
        lines.append(f"{mode:{width}}  {p['n']:5d}  " + "  ".join(
            f"{p[k] * 1e3:4.0f} ms" for k in ("min", "p50", "p90", "max")))
    return "\n".join(lines)


def latency_plot(samples_by_mode: Mapping[str, Sequence[float]],
                 delay: float | None = None) -> figure:
    """Each boot's response time as a dot, one row per mode; a line at ``delay`` (the
    time the scheduler was made to take)."""
    from bokeh.models import Label, Span
    from bokeh.plotting import figure as new_figure

    modes = list(samples_by_mode)
    fig = new_figure(y_range=modes[::-1], height=60 + 50 * len(modes), width=640,
                     x_axis_label="API response time to POST /servers (ms)",
                     title="How long the API took to say 202", toolbar_location=None)
    palette = ("#1565c0", "#bf360c", "#2e7d32", "#6a1b9a")
    for i, mode in enumerate(modes):
        xs = [s * 1e3 for s in samples_by_mode[mode]]
        fig.scatter(xs, [mode] * len(xs), size=10, alpha=0.6, color=palette[i % len(palette)])
    if delay is not None:
        fig.add_layout(Span(location=delay * 1e3, dimension="height", line_dash="dashed",
                            line_color="#555"))
        fig.add_layout(Label(x=delay * 1e3, y=4, y_units="screen", x_offset=-4,
                             text="the scheduler's delay", text_align="right",
                             text_font_size="9pt", text_color="#555"))
    fig.x_range.start = 0
    return fig


def show_inline(fig: figure) -> None:
    """Show a Bokeh figure in the notebook, with BokehJS inlined (no CDN)."""
    from bokeh.io import output_notebook, show
    from bokeh.resources import INLINE

    output_notebook(resources=INLINE, hide_banner=True)
    show(fig)


def boot_in_background(lab: Any, name: str, flavor: str = "m1.tiny") -> Future:
    """Boot on another thread; the future holds ``(server_id, response_seconds)`` once
    the API has answered (or the exception, if it did not)."""
    future: Future = Future()
    future.set_running_or_notify_cancel()

    def run() -> None:
        try:
            server_id = lab.boot(name, flavor=flavor)
            future.set_result((server_id, lab.last_response_time))
        except BaseException as exc:   # handed to whoever waits on the future
            future.set_exception(exc)

    threading.Thread(target=run, name=f"boot-{name}", daemon=True).start()
    return future


def api_messages(trace: Trace) -> Counter[tuple[str, str, str]]:
    """Messages the API sent and the bus delivered, by (kind, method, receiving topic)."""
    return Counter((e["kind"], e["method"], topic_of(e["dst"]))
                   for e in trace.routed().where(src="api"))


def api_messages_text(trace: Trace) -> str:
    """``api_messages`` as sorted lines: ``cast build_instances -> conductor  x 8``."""
    return "\n".join(f"{kind} {method} -> {dst}  x {n}"
                     for (kind, method, dst), n in sorted(api_messages(trace).items()))


def scheduler_callers(trace: Trace) -> Counter[str]:
    """Delivered ``select_destinations`` calls, by caller (``api.api``,
    ``conductor.conductor1``)."""
    return Counter(e["src"] for e in trace.routed().where(kind="call",
                                                         method="select_destinations"))


def message_is(kind: str, method: str) -> Callable[[dict[str, Any]], bool]:
    """A trace-event predicate: ``lab.tap.wait_for(message_is("call", "select_destinations"))``."""
    return lambda e: e["kind"] == kind and e["method"] == method
