"""Users' text on the dashboard: names, faults and hosts reach the page verbatim (canvas
text, option labels, ``@field`` tooltips Bokeh escapes itself: never write ``{safe}``);
only HTML built here is escaped (``metrics_html``). A name with right-to-left text or bidi
controls is isolated where other text follows it (``isolated``), so it cannot reorder
that text."""
from __future__ import annotations

import html
import unicodedata
from typing import Any

__all__ = ["isolated", "instance_options", "metrics_html", "OPTIONS", "OPTION_CHARS"]

Columns = dict[str, list]
OPTIONS, OPTION_CHARS = 50, 60       # the instance filter: newest servers, name shown
# Bidirectional classes that can reorder text following a name (RTL letters, embeddings,
# overrides, isolates); unicodedata.bidirectional's names.
BIDI_REORDERING = frozenset({"R", "AL", "RLE", "RLO", "LRE", "LRO", "RLI", "LRI", "FSI",
                             "PDF", "PDI"})
FSI, PDI = "\u2068", "\u2069"        # first-strong isolate ... pop directional isolate


def metrics_html(columns: Columns, wide: bool = False) -> str:
    """The metrics (``metrics_data``'s columns) as a small HTML table, text escaped; or,
    ``wide``, as a strip of name-value cells that wraps to the page's width (a
    projector's bottom strip)."""
    if wide:
        cells = "".join(
            f"<span style='display:inline-block;margin:0 18px 2px 0;white-space:nowrap'>"
            f"{html.escape(str(n))} <b>{html.escape(str(v))}</b></span>"
            for n, v in zip(columns.get("name", []), columns.get("value", [])))
        return f"<div style='font-size:14px;line-height:1.5'>{cells}</div>"
    rows = "".join(f"<tr><td style='padding:1px 10px 1px 4px'>{html.escape(str(n))}</td>"
                   f"<td style='text-align:right;padding:1px 4px'>{html.escape(str(v))}</td>"
                   "</tr>" for n, v in zip(columns.get("name", []), columns.get("value", [])))
    return ("<table style='border-collapse:collapse;font-size:12.5px;width:100%'>"
            "<tr><th style='text-align:left;border-bottom:1px solid #999'>metric</th>"
            "<th style='text-align:right;border-bottom:1px solid #999'>value</th></tr>"
            f"{rows}</table>")


def isolated(text: str) -> str:
    """``text`` as is, or between FSI and PDI when it holds right-to-left letters or bidi
    controls: then whatever is written after it ("vm: BuildAbortException", "(id)") keeps
    its order, as HTML's ``<bdi>`` would keep it."""
    if any(unicodedata.bidirectional(ch) in BIDI_REORDERING for ch in text):
        return f"{FSI}{text}{PDI}"
    return text


def instance_options(servers: list[dict[str, Any]], limit: int = OPTIONS) -> list[tuple[str, str]]:
    """The instance filter's choices, newest ``limit`` servers: (id, label), the label
    the name (verbatim text, cut to ``OPTION_CHARS`` with an ellipsis, isolated) and the
    id's first 8 characters, so two servers of one name stay two choices."""
    out = []
    for server in servers[-limit:] if limit else []:
        uuid = server.get("id")
        if not uuid:
            continue
        name = server.get("name") or ""
        if len(name) > OPTION_CHARS:
            name = name[:OPTION_CHARS - 1] + "…"
        out.append((uuid, f"{isolated(name)} ({uuid[:8]})" if name else uuid))
    return out
