"""Unit tests for lab.dashboard.layout: a topology that cannot mislead. For 1 to 32
computes and for groups beyond, in both flows, no message line passes within a node's
radius of a service it does not involve, at the figure sizes the dashboard allows; the
nodes and their labels do not overlap (labels estimated here, measured in Chromium by
tests/browser/test_dashboard_geometry.py)."""
from __future__ import annotations

import itertools
import random

import pytest

from lab.dashboard.layout import (BOX, BUS, COMPUTE_MODES, X_RANGE, arc, clearance,
                                  group_name, topology_layout)

API, COND, SCHED = "api.api", "conductor.conductor1", "scheduler.scheduler1"
LAB = "lab.control"
# Who talks to whom (trace names), and the figure's pixels per data unit: the notebook
# layout's narrowest (a 760 px wide frame: 55.9 per unit; its plot area 335 px high for
# 6 units: 55.8, 54 at the least figure) to a 1920x1080 projector's.
SCALES = [(sx, sy) for sx in (55, 70, 100, 140) for sy in (54, 75, 110)]


def computes(n: int) -> list[str]:
    return [f"compute.compute{i}" for i in range(1, n + 1)]


def conductor_flow(hosts: list[str]) -> set[tuple[str, str]]:
    pairs = {(API, COND), (COND, SCHED), (SCHED, COND)}
    for h in hosts:
        pairs |= {(COND, h), (h, COND), (h, SCHED), (API, h)}      # DB proxy, fanouts,
    for a, b in zip(hosts, hosts[1:] + hosts[:1]):                   # confirm/revert
        pairs |= {(a, b), (b, a)}                                    # resize hops
    pairs |= {(hosts[0], hosts[-1]), (hosts[-1], hosts[0])}
    return pairs


def legacy_flow(hosts: list[str]) -> set[tuple[str, str]]:
    pairs = {(API, SCHED)}
    for h in hosts:
        pairs |= {(SCHED, h), (h, SCHED), (h, COND), (COND, h), (API, h)}
    return pairs


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9, 16, 24, 32, 33, 100, 1000])
@pytest.mark.parametrize("flow", [conductor_flow, legacy_flow])
def test_no_message_line_passes_through_a_node_it_does_not_involve(n, flow):
    layout = topology_layout([API, COND, SCHED, *computes(n)])
    for sx, sy in SCALES:
        assert clearance(layout, flow(computes(n)), sx, sy) == [], (sx, sy)


def test_the_check_catches_the_old_single_row():
    """The layout before: api, conductor, scheduler and compute2 on one line, so the
    conductor -> compute2 cast ran through the scheduler's circle."""
    layout = topology_layout([API, COND, SCHED, *computes(3)])
    layout.positions.update({API: (0.9, 3.2), COND: (3.3, 3.2), SCHED: (5.7, 3.2),
                             "compute.compute2": (8.6, 3.2)})
    bad = clearance(layout, {(COND, "compute.compute2")}, 70, 70)
    assert [(s, d, node) for s, d, node, _ in bad] == [(COND, "compute.compute2", SCHED)]


def test_the_tiers_read_left_to_right_and_the_conductor_is_not_on_the_schedulers_line():
    pos = topology_layout([API, COND, SCHED, *computes(3), LAB]).positions
    assert pos[API][0] < pos[COND][0] == pos[SCHED][0] < pos["compute.compute1"][0]
    assert pos[COND][1] > pos[API][1] > pos[SCHED][1]
    ys = [pos[c][1] for c in computes(3)]
    assert ys == sorted(ys, reverse=True)                     # compute1 on top
    assert pos[BUS][1] < pos[SCHED][1] and pos[BUS][0] < pos[COND][0]
    assert pos[LAB][1] > max(p[1] for n, p in pos.items() if n != LAB)
    for x, y in pos.values():
        assert BOX[0] <= x <= BOX[1] and BOX[2] <= y <= BOX[3]


def test_the_layout_is_deterministic():
    names = [API, COND, SCHED, "echo.e1", *computes(12)]
    shuffled = names[:]
    random.Random(4).shuffle(shuffled)
    one, other = topology_layout(names), topology_layout(shuffled + [BUS, API])
    assert one.positions == other.positions and one.mode == other.mode == "compact"


@pytest.mark.parametrize("n, mode, drawn", [(1, "full", 1), (8, "full", 8),
                                            (9, "compact", 9), (32, "compact", 32),
                                            (33, "grouped", 8), (1000, "grouped", 8)])
def test_computes_are_drawn_full_compact_or_grouped(n, mode, drawn):
    layout = topology_layout([API, COND, SCHED, *computes(n)])
    assert layout.mode == mode
    column = [node for node in layout.nodes() if node.startswith("compute.")]
    assert len(column) == drawn
    if mode == "grouped":
        members = [m for g in column for m in layout.groups[g]]
        assert members == computes(n)                          # each once, in name order
        assert column[0] == group_name(layout.groups[column[0]])
        assert all(layout.positions[m] == layout.positions[layout.drawn(m)]
                   for m in computes(n))
    else:
        assert layout.drawn_as == {} and column == computes(n)


def test_a_group_is_named_by_its_first_and_last_host():
    assert group_name(["compute.compute1", "compute.compute9"]) == \
        "compute.compute1..compute9"


# -- labels: never on top of each other or of a node ---------------------------------------
CHAR_PX = {7.0: 5.8, 7.5: 6.2, 8.0: 6.6, 8.5: 7.1, 9.0: 7.6}  # generous: DejaVu-like fonts
LINE_PX = {7.0: 9.4, 7.5: 10, 8.0: 11, 8.5: 11.5, 9.0: 12}


def boxes(layout, sx: float, sy: float, texts: dict[str, tuple[str, str, str]]):
    """Estimated boxes (x0, y0, x1, y1 in px, y down) of every node and its name,
    caption and note, from the node styles: ``texts`` gives each node's three strings."""
    out = []
    for node in layout.nodes():
        style = layout.style(node)
        x, y = layout.positions[node]
        cx, cy = (x - X_RANGE[0]) * sx, (BOX[3] - y) * sy
        r = style.size / 2
        out.append((node, "node", (cx - r, cy - r, cx + r, cy + r)))
        name, caption, note = texts.get(node, ("", "", ""))
        for kind, text, dx, dy, pt in (
                ("name", name, style.name_dx, style.name_dy, style.font_pt),
                ("caption", caption, style.caption_dx, style.caption_dy, 8.0),
                ("note", note, style.annotation_dx, style.annotation_dy,
                 min(style.font_pt, 8.5))):
            if not text or (kind == "caption" and style.one_line):
                continue
            width, height = len(text) * CHAR_PX[pt], LINE_PX[pt]
            left = cx + dx - (width / 2 if style.name_align == "center" else 0)
            if kind == "note" and dx < 0:             # right-aligned at the right edge
                left = (X_RANGE[1] - X_RANGE[0]) * sx + dx - width
            out.append((node, kind, (left, cy + dy - height / 2, left + width,
                                     cy + dy + height / 2)))
    return out


def overlapping(found):
    def hit(a, b):
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    return [(p[:2], q[:2]) for p, q in itertools.combinations(found, 2)
            if not (p[0] == q[0] and "node" in (p[1], q[1])) and hit(p[2], q[2])]


@pytest.mark.parametrize("n", [1, 3, 8, 9, 16, 32, 1000])
def test_labels_fit_and_never_overlap(n):
    layout = topology_layout([API, COND, SCHED, *computes(n), "echo.e1", "echo.e2",
                              "lab.controller", "lab.tap", "lab.bench", "lab.chaos"])
    texts = {API: ("api", "", ""), COND: ("conductor", "", "vm-10: MaxRetriesExceeded"),
             SCHED: ("scheduler", "", ""), BUS: ("bus", "12 waiting", ""),
             "echo.e1": ("e1", "", ""), "echo.e2": ("e2", "", ""),
             **{f"lab.{c}": (c, "", "") for c in ("controller", "tap", "bench", "chaos")}}
    for node in layout.nodes():
        if node.startswith("compute."):
            name = node.split(".", 1)[1].replace("..", "\u2026")
            caption = ("125 hosts \u00b7 2 down \u00b7 1 failing \u00b7 3,000 vms"
                       if layout.mode == "grouped" else "12 vms, 250 GB free, fail 100%")
            if layout.mode == "compact":
                name, caption = f"{name}  12 vms \u00b7 fail 100%", ""
            texts[node] = (name, caption, "3 rescheduling, 1 failed")
    for sx, sy in SCALES:
        found = boxes(layout, sx, sy, texts)
        assert overlapping(found) == [], (n, sx, sy)
        right, bottom = (X_RANGE[1] - X_RANGE[0]) * sx, (BOX[3] - BOX[2]) * sy
        for node, kind, (x0, y0, x1, y1) in found:                         # inside
            assert 0 <= x0 and x1 <= right and 0 <= y0 and y1 <= bottom, (n, sx, sy, node,
                                                                            kind)


def test_an_arc_between_computes_bows_left_of_their_column():
    xs, ys = arc(7.0, 5.0, 1.0)
    assert xs[0] == xs[-1] == 7.0 and min(xs) < 7.0 - 0.4
    assert (ys[0], ys[-1]) == (5.0, 1.0)
    back, _ = arc(7.0, 1.0, 5.0)
    assert min(back) != min(xs)                  # the two directions are told apart
    assert COMPUTE_MODES["compact"].size < COMPUTE_MODES["full"].size
