"""Where the dashboard draws each service: a topology that cannot mislead.

The services sit in tiers, left to right, the way the work flows: the **api** on the left,
the **conductor** above and the **scheduler** below the middle (never on one line with
the api and the computes: a conductor -> compute cast must not be drawn through the
scheduler's circle, as if the scheduler sent it, which only the old process does), the
**computes** in a column on the right, their names and numbers beside them in dark text.
The **bus** (where queued messages wait) is in the bottom left corner, services of other
topics in a row along the bottom, the lab's own clients in a row along the top left.

The promise, checked by ``clearance`` (unit tests) and measured on the page (browser
tests): a straight message line between two services of the lab's flows (conductor flow,
legacy flow, moves, the database proxy, the instance-info fanouts) never comes within a
node's radius of a service it does not involve. Two computes talk along an arc that bows
left of their column (``arc``), clear of the computes between them. (The lab's control
traffic, hidden unless asked for, reaches every service from the top left: it is the one
kind the promise leaves out.)

Computes are drawn three ways, by how many there are (``COMPUTE_MODES``):

- up to 8, **full**: a node each, its name, caption and annotation on three lines;
- up to 32, **compact**: small nodes, one line each (name and caption), the annotation
  in a column of its own;
- more, **grouped**: up to 8 group nodes of consecutive computes (in name order), each
  standing for its hosts with counts; messages to any host of a group go to the group.

Positions are data units in ``BOX`` (x 0..13, y 0..6); sizes and label offsets are
screen pixels, so labels keep their place whatever the figure's width (at least
``MIN_FIGURE`` px: 760 x 360, room for a compute's labels right of its column).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

from lab.trace import lane_order, short, topic_of

__all__ = ["BOX", "X_RANGE", "BUS", "BUS_POSITION", "Layout", "NodeStyle", "COMPUTE_MODES",
           "MIN_FIGURE",
           "topology_layout", "arc", "arc_bulge", "ARC", "ARC_MIN", "ARC_MAX", "clearance",
           "group_name", "FLOW_TOPICS"]

BOX = (0.0, 13.0, 0.0, 6.0)          # x_min, x_max, y_min, y_max (labels right of x 7)
BUS = "bus"                          # the node where queued messages wait
BUS_POSITION = (0.8, 1.0)            # high enough for its name and caption below it
API_AT, CONDUCTOR_AT, SCHEDULER_AT = (0.8, 3.0), (3.4, 4.9), (3.4, 1.1)
TIER_STEP = 0.8                      # several conductors (or schedulers): side by side
COMPUTE_X = 7.0
# the column's span: big nodes (and their three lines) stay clear of the edges
COLUMN_SPAN = {"full": (0.5, 5.6), "grouped": (0.5, 5.6), "compact": (0.25, 5.75)}
MAX_SPACING = 1.3                    # a few computes are not spread over the whole height
OTHER_X0, OTHER_Y, OTHER_STEP = 1.9, 0.3, 1.2
LAB_X0, LAB_Y0, LAB_STEP, LAB_PER_ROW, LAB_ROW = 0.3, 5.7, 0.95, 3, 0.3
ARC, ARC_MIN, ARC_MAX = 0.3, 0.4, 1.4   # compute-to-compute arcs: bow per unit of height
# The topics whose messages make up the flows the layout keeps clear of other nodes.
FLOW_TOPICS = ("api", "conductor", "scheduler", "compute")


@dataclass(frozen=True)
class NodeStyle:
    """How a drawn node and its labels look, in screen pixels: the circle's diameter, the
    name line and caption line (offsets from the centre, font size in points, whether
    the caption follows the name on its line), and the annotation's place."""
    size: int
    name_dx: int
    name_dy: int
    name_align: str
    caption_dx: int
    caption_dy: int
    annotation_dx: int
    annotation_dy: int
    font_pt: float = 9.0
    one_line: bool = False


# A service of the control plane: the name below its circle, centred, then the caption.
CONTROL = NodeStyle(40, 0, 30, "center", 0, 44, 0, 58)
COMPUTE_MODES = {
    "full": NodeStyle(36, 24, -8, "left", 24, 5, 24, 17),
    # compact: the note is right-aligned at the figure's right edge (annotation_dx < 0)
    "compact": NodeStyle(8, 9, 0, "left", 9, 0, -4, 0, font_pt=7.0, one_line=True),
    "grouped": NodeStyle(36, 24, -8, "left", 24, 5, 24, 17),
}
# The lab's own clients and services of other topics (an echo test double): small, named
# on their line, in rows along the top left and the bottom.
MINOR = NodeStyle(10, 8, 0, "left", 8, 0, 8, 0, font_pt=7.5, one_line=True)
FULL_MAX, COMPACT_MAX, GROUPS = 8, 32, 8
MIN_FIGURE = (760, 360)              # the topology figure's least width and height, px
X_RANGE = (BOX[0] - 0.3, BOX[1] + 0.3)   # what the figure shows of the box


def group_name(members: list[str]) -> str:
    """The node that stands for ``members`` (computes, in lane order), a compute-topic
    identity: ``compute.compute1..compute125``."""
    return f"compute.{short(members[0])}..{short(members[-1])}"


@dataclass
class Layout:
    """Every drawn node's position, the computes' mode, and (grouped) which group node
    each compute is drawn as. ``positions`` also holds every grouped compute, at its
    group's place, so a message to it is drawn to its group."""
    positions: dict[str, tuple[float, float]]
    mode: str
    groups: dict[str, list[str]] = field(default_factory=dict)   # group node -> computes
    drawn_as: dict[str, str] = field(default_factory=dict)       # compute -> group node
    lane_of: dict[str, str] = field(default_factory=dict)        # compute -> its lane

    def drawn(self, name: str) -> str:
        """The node ``name`` is drawn as (a compute's group, or itself)."""
        return self.drawn_as.get(name, name)

    def lane(self, name: str) -> str:
        """The time-space diagram's lane of ``name``: beyond ``FULL_MAX`` computes, one
        lane per run of hosts (the groups), so the lanes stay few enough to read."""
        return self.lane_of.get(name, name)

    def nodes(self) -> list[str]:
        """The nodes drawn, in lane order, the bus last."""
        shown = [n for n in self.positions if n != BUS and n not in self.drawn_as]
        return [*lane_order(shown), BUS]

    def style(self, name: str) -> NodeStyle:
        tier = _tier(name) if name != BUS else BUS
        return (COMPUTE_MODES[self.mode] if tier == "compute" else
                MINOR if tier in ("lab", "other") else CONTROL)


def _tier(name: str) -> str:
    topic = topic_of(name)
    return topic if topic in ("api", "conductor", "scheduler", "compute", "lab") else "other"


def _side_by_side(anchor: tuple[float, float], n: int, i: int) -> tuple[float, float]:
    return (round(anchor[0] + (i - (n - 1) / 2) * TIER_STEP, 3), anchor[1])


def _column(n: int, i: int, mode: str) -> float:
    """The y of the i-th of n nodes of the compute column, the first on top."""
    low, high = COLUMN_SPAN[mode]
    if n == 1:
        return round((low + high) / 2, 3)
    spacing = min(MAX_SPACING, (high - low) / (n - 1))
    return round((low + high) / 2 + ((n - 1) / 2 - i) * spacing, 3)


def topology_layout(services: Iterable[str]) -> Layout:
    """The layout of these services (``topic.server`` names) and the bus. Deterministic:
    the same names in any order give the same layout."""
    tiers: dict[str, list[str]] = {}
    for name in lane_order(s for s in services if s and s != BUS):
        tiers.setdefault(_tier(name), []).append(name)
    pos: dict[str, tuple[float, float]] = {BUS: BUS_POSITION}
    for tier, anchor in (("conductor", CONDUCTOR_AT), ("scheduler", SCHEDULER_AT)):
        names = tiers.get(tier, [])
        pos.update({n: _side_by_side(anchor, len(names), i) for i, n in enumerate(names)})
    apis = tiers.get("api", [])
    pos.update({n: (API_AT[0], round(API_AT[1] + ((len(apis) - 1) / 2 - i) * 0.8, 3))
                for i, n in enumerate(apis)})
    for i, name in enumerate(tiers.get("other", [])):
        pos[name] = (round(OTHER_X0 + i * OTHER_STEP, 3), OTHER_Y)
    for i, name in enumerate(tiers.get("lab", [])):
        row, col = divmod(i, LAB_PER_ROW)
        pos[name] = (round(LAB_X0 + col * LAB_STEP, 3), round(LAB_Y0 - row * LAB_ROW, 3))
    computes = tiers.get("compute", [])
    layout = Layout(pos, "full" if len(computes) <= FULL_MAX else
                    "compact" if len(computes) <= COMPACT_MAX else "grouped")
    column = computes
    if len(computes) > FULL_MAX:       # GROUPS runs of hosts, their sizes one apart
        size, extra = divmod(len(computes), GROUPS)
        bounds = [i * size + min(i, extra) for i in range(GROUPS + 1)]
        runs = {group_name(c): c for c in (computes[a:b] for a, b in zip(bounds, bounds[1:]))}
        layout.lane_of = {m: g for g, c in runs.items() for m in c}
    if layout.mode == "grouped":
        layout.groups, layout.drawn_as = runs, dict(layout.lane_of)
        column = list(layout.groups)
    for i, name in enumerate(column):
        pos[name] = (COMPUTE_X, _column(len(column), i, layout.mode))
    for member, group in layout.drawn_as.items():
        pos[member] = pos[group]
    return layout


# -- arcs between computes ------------------------------------------------------------------
def arc_bulge(y0: float, y1: float) -> float:
    """How far left of the column an arc between two of its nodes bows (the browser's
    dots follow the same curve: ``ARC`` in animate.py)."""
    return min(ARC_MAX, max(ARC_MIN, ARC * abs(y1 - y0)))


def arc(x: float, y0: float, y1: float, points: int = 9) -> tuple[list[float], list[float]]:
    """A message between two computes (a resize's direct hop), drawn as an arc bowing
    left of their column (into the open space before it, away from their labels), so it
    does not run through the computes in between. The way down bows further than the way
    up, so both directions show."""
    bulge = arc_bulge(y0, y1) * (1.2 if y1 < y0 else 1.0)
    ts = [i / (points - 1) for i in range(points)]
    return ([round(x - bulge * math.sin(math.pi * t), 3) for t in ts],
            [round(y0 + (y1 - y0) * t, 3) for t in ts])


# -- the promise ----------------------------------------------------------------------------
def _distance(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if not length2 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def clearance(layout: Layout, pairs: Iterable[tuple[str, str]], px_per_x: float,
              px_per_y: float, margin: float = 1.5) -> list[tuple[str, str, str, float]]:
    """Every (src, dst, node, distance in px) where the straight line between two drawn
    nodes comes within a third node's radius (plus ``margin`` px); empty when the layout
    keeps its promise. ``pairs`` are who talks to whom (identities: a grouped compute is
    its group); pairs of one column (computes) are drawn as arcs and checked as such."""
    def px(name: str) -> tuple[float, float]:
        x, y = layout.positions[name]
        return x * px_per_x, y * px_per_y

    bad = []
    nodes = layout.nodes()
    for src, dst in {(layout.drawn(s), layout.drawn(d)) for s, d in pairs}:
        if src == dst:
            continue
        (x0, y0), (x1, y1) = layout.positions[src], layout.positions[dst]
        if x0 == x1 and topic_of(src) == topic_of(dst) == "compute":
            xs, ys = arc(x0, y0, y1, points=33)
            line = [(x * px_per_x, y * px_per_y) for x, y in zip(xs, ys)]
        else:
            line = [px(src), px(dst)]
        for node in nodes:
            if node in (src, dst):
                continue
            radius = layout.style(node).size / 2 + margin
            d = min(_distance(px(node), a, b) for a, b in zip(line, line[1:]))
            if d < radius:
                bad.append((src, dst, node, round(d, 1)))
    return bad
