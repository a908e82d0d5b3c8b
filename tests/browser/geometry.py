"""Reading the dashboard's topology as drawn in the browser, and what a reader could
misread in it: a node cut by the figure's edge, a message line through a node it does not
involve, a label over another label or over a circle, a label off the figure."""
from __future__ import annotations

import math
from typing import Any

__all__ = ["measure", "problems"]

# Everything drawn on the topology, in canvas pixels: nodes (centre, diameter), edges
# (polylines and widths), and every text with its box measured by a canvas in Bokeh's
# font for that glyph (bold for names and notes, 8pt captions).
_GEOMETRY = """
const doc = Bokeh.documents[0];
const fig = doc.get_model_by_name('topology');
const view = Bokeh.index.get_one(fig);
const sx = (x) => view.frame.x_scale.compute(x), sy = (y) => view.frame.y_scale.compute(y);
const b = view.frame.bbox;
const ctx = document.createElement('canvas').getContext('2d');
const data = (name) => doc.get_model_by_name(name).data;
function text(kind, owner, t, x, y, dx, dy, align, font) {
  if (!t) { return null; }
  ctx.font = font;
  const width = ctx.measureText(t).width;
  const px = parseFloat(font.split(' ').find((p) => p.endsWith('pt'))) * 4 / 3;
  const cx = sx(x) + dx, cy = sy(y) + dy;
  const left = align === 'left' ? cx : align === 'right' ? cx - width : cx - width / 2;
  return {kind, owner, text: t, box: [left, cy - px / 2, left + width, cy + px / 2]};
}
const n = data('nodes'), e = data('edges'), a = data('annotations');
const out = {frame: [b.left, b.top, b.right, b.bottom], nodes: [], edges: [], texts: []};
for (let i = 0; i < n.name.length; i++) {
  out.nodes.push({name: n.name[i], x: sx(n.x[i]), y: sy(n.y[i]), size: n.size[i]});
  out.texts.push(text('name', n.name[i], n.label[i], n.x[i], n.y[i], n.label_dx[i],
                      n.label_dy[i], n.label_align[i], `bold ${n.label_size[i]} helvetica`));
  out.texts.push(text('caption', n.name[i], n.info[i], n.x[i], n.y[i], n.caption_dx[i],
                      n.caption_dy[i], n.label_align[i], '8pt helvetica'));
}
for (let i = 0; i < a.text.length; i++) {
  out.texts.push(text('note', a.node[i], a.text[i], a.x[i], a.y[i], a.dx[i], a.dy[i],
                      a.align[i], `bold ${a.size[i]} helvetica`));
}
for (let i = 0; i < e.src.length; i++) {
  out.edges.push({src: e.src[i], dst: e.dst[i], width: e.width[i],
                  points: Array.from(e.xs[i]).map((x, j) => [sx(x), sy(e.ys[i][j])])});
}
out.texts = out.texts.filter((t) => t);
return out;
"""


def measure(driver: Any) -> dict:
    """The topology's frame, nodes, edges and texts, in canvas pixels (y down)."""
    return driver.execute_script(_GEOMETRY)


def _distance(p, a, b) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy)
                                             / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def _overlap(a, b, slack: float = 0.5) -> bool:
    return (min(a[2], b[2]) - max(a[0], b[0]) > slack and
            min(a[3], b[3]) - max(a[1], b[1]) > slack)


def _box_hits_circle(box, node) -> bool:
    nx = min(max(node["x"], box[0]), box[2])
    ny = min(max(node["y"], box[1]), box[3])
    return math.hypot(nx - node["x"], ny - node["y"]) < node["size"] / 2 - 0.5


def problems(geo: dict) -> list[str]:
    """Everything on the topology a reader could misread, in words."""
    found = []
    left, top, right, bottom = geo["frame"]
    for node in geo["nodes"]:
        r = node["size"] / 2
        if not (left <= node["x"] - r and node["x"] + r <= right and
                top <= node["y"] - r and node["y"] + r <= bottom):
            found.append(f"node {node['name']} is cut by the figure's edge")
    for edge in geo["edges"]:
        pts = edge["points"]
        for node in geo["nodes"]:
            if node["name"] in (edge["src"], edge["dst"]):
                continue
            d = min(_distance((node["x"], node["y"]), a, b) for a, b in zip(pts, pts[1:]))
            if d < node["size"] / 2 + edge["width"] / 2:
                found.append(f"the line {edge['src']} -> {edge['dst']} crosses "
                             f"{node['name']} ({d:.1f} px from its centre)")
    texts = geo["texts"]
    for i, t in enumerate(texts):
        what = f"{t['kind']} {t['text']!r} of {t['owner']}"
        x0, y0, x1, y1 = t["box"]
        if x0 < left - 0.5 or x1 > right + 0.5 or y0 < top - 0.5 or y1 > bottom + 0.5:
            found.append(f"{what} runs off the figure ({[round(v) for v in t['box']]})")
        for other in texts[i + 1:]:
            if _overlap(t["box"], other["box"]):
                found.append(f"{what} overlaps {other['kind']} {other['text']!r} "
                             f"of {other['owner']}")
        for node in geo["nodes"]:
            if _box_hits_circle(t["box"], node):
                found.append(f"{what} is drawn over the circle of {node['name']}")
    return found
