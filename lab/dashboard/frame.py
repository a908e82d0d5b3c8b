"""The dashboard as a notebook output: a frame, a link to open it in its own tab, and
words instead of a blank box when the browser cannot load it.

The frame checks itself once it has loaded: through the Jupyter server it has the
notebook's own origin, so the output can look inside it; if BokehJS is not there (a 404,
a 502, a login page), the note below the frame turns into an explanation with the URL.
Directly on 127.0.0.1 the frame is another origin and cannot be inspected; the link and
the note still say where it is.
"""
from __future__ import annotations

import html
import re
from typing import Iterable
from urllib.parse import quote

from .model import METRICS
from .reach import OVERRIDE, Reach

__all__ = ["frame_html", "trouble_html", "view_url", "FRAME_HEIGHTS"]

CHECK_AFTER_MS = 4000
# The frame's height per layout: the notebook layout's page is about 760 px high; a
# projector frame fills a 768-line screen below the notebook's toolbar.
FRAME_HEIGHTS = {"notebook": 770, "projector": 680}
_PAIR = re.compile(r"^(cast|call|reply|fanout|notification) [A-Za-z_][A-Za-z0-9_]*$")


def view_url(url: str, layout: str = "notebook", metrics: Iterable[str] = ()) -> str:
    """``url`` asking the dashboard for ``layout`` and for ``metrics`` first. Refuses
    (ValueError) a layout or a metric the dashboard does not have."""
    if layout not in FRAME_HEIGHTS:
        raise ValueError(f"layout must be one of {', '.join(FRAME_HEIGHTS)}, not {layout!r}")
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in METRICS and not _PAIR.match(str(m))]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}: one of {', '.join(METRICS)}, or a "
                         f"delivered kind and method (\"cast build_instances\")")
    query = [f"layout={layout}"] if layout != "notebook" else []
    if metrics:
        query.append("metrics=" + quote(",".join(metrics), safe=","))
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(query)


_CHECK_JS = (
    "var f=this;setTimeout(function(){var ok=false;"
    "try{ok=!!(f.contentWindow&&f.contentWindow.Bokeh);}catch(e){ok=true;}"
    "if(!ok){f.style.display='none';"
    "f.parentNode.querySelector('.lab-dashboard-trouble').style.display='block';}"
    "},%d);" % CHECK_AFTER_MS)


def frame_html(url: str, reach: Reach, height: int = FRAME_HEIGHTS["notebook"],
               width: str | int = "100%") -> str:
    """An iframe onto ``url`` with a link under it, and the hidden words for trouble."""
    src = html.escape(url, quote=True)
    size = f"{width}px" if isinstance(width, int) else html.escape(str(width), quote=True)
    check = f' onload="{html.escape(_CHECK_JS, quote=True)}"' if reach.how != "direct" else ""
    return (
        f'<div class="lab-dashboard">'
        f'<iframe src="{src}" style="width:{size};height:{int(height)}px;border:0"'
        f' title="Conductor Lab dashboard"{check}></iframe>'
        f'<div style="font-size:12px;color:#555">Dashboard: <a href="{src}" '
        f'target="_blank" rel="noopener">open it in its own tab</a> (drag that tab beside '
        f'the notebook, or onto the projector). {html.escape(_how_words(reach))}</div>'
        f'<div class="lab-dashboard-trouble" style="display:none">'
        f'{_trouble_body("this browser could not load the dashboard", url)}</div>'
        f'</div>')


def trouble_html(problem: str, url: str) -> str:
    """What the cell shows instead of a frame that would stay blank."""
    return f'<div class="lab-dashboard-trouble">{_trouble_body(problem, url)}</div>'


def _trouble_body(problem: str, url: str) -> str:
    tried = (f'<br>URL tried: <code>{html.escape(url)}</code>' if url else "")
    return (
        '<div style="border:1px solid #d62728;padding:8px;background:#fff5f5">'
        f'<b>The dashboard is not showing:</b> {html.escape(problem)}{tried}'
        '<br>What to do: on a JupyterHub, Binder or a remote Jupyter server the dashboard '
        'travels through the Jupyter server (jupyter-server-proxy must be installed where '
        'the server runs, then restart it). If your browser is on this machine, '
        f'<code>{OVERRIDE}=direct</code> serves it on 127.0.0.1 instead; for an unusual '
        f'set-up give the public URL as <code>{OVERRIDE}=https://HOST/PATH/{{port}}</code> '
        'before starting the lab. The lab itself is not affected: '
        '<code>lab.trace()</code> and <code>lab.servers()</code> work without it.</div>')


def _how_words(reach: Reach) -> str:
    if reach.how == "jupyter":
        return "Served through this Jupyter server, for this lab's owner only."
    if reach.how == "override":
        return f"Served at the address {OVERRIDE} gives."
    return "Served on this machine (127.0.0.1) to holders of the lab's token."
