"""The browser half of the dashboard: the animation loop, in JavaScript.

The server streams rows into ``messages``; this loop (requestAnimationFrame) schedules
each new row to play no sooner than ``GAP / speed`` after the previous one (a burst is
queued and played at a readable pace: "behind by N"), moves a dot from sender to
receiver, bursts dropped messages red halfway, parks queued ones at the bus, and writes
the frame into ``dots`` *in place* followed by ``change.emit()``: BokehJS re-renders,
nothing is sent back to the server. Rows present when the page loads are history: the
time-space diagram shows them; only new rows are animated. ``window.__conductorLab``
exposes the loop's state for browser tests."""
from __future__ import annotations

from .layout import ARC, ARC_MAX, ARC_MIN

__all__ = ["ANIMATE_JS", "JUMP_JS"]

ANIMATE_JS = r"""
const S = window.__conductorLab || (window.__conductorLab = {
  lastSeq: null, items: [], lastStart: 0, started: false, frames: 0, played: 0,
  skipped: 0, behind: 0, jumpRequested: false, prev: null});
if (S.started) { return; }
S.started = true;
const GAP = 0.12, TRAVEL = 0.9, BURST = 0.7, LINGER = 3.0, CAP = 300;
/*ARC*/
const clock = () => performance.now() / 1000;

function take(now, speed) {
  const d = messages.data, n = d.seq.length;
  if (S.lastSeq === null) {            // history: drawn by the diagram, not animated
    S.lastSeq = n ? d.seq[n - 1] : 0;
    return;
  }
  let first = n;
  while (first > 0 && d.seq[first - 1] > S.lastSeq) { first--; }
  for (let i = first; i < n; i++) {
    const start = Math.max(now, S.lastStart + GAP / speed);
    S.lastStart = start;
    S.items.push({start: start, x0: d.x0[i], y0: d.y0[i], x1: d.x1[i], y1: d.y1[i],
                  color: d.color[i], marker: d.marker[i], phase: d.phase[i],
                  label: d.label[i], seq: d.seq[i]});
  }
  if (n) { S.lastSeq = Math.max(S.lastSeq, d.seq[n - 1]); }
}

function life(it, speed) {
  const travel = TRAVEL / speed;
  if (it.phase === "dropped" || it.phase === "expired") { return travel + BURST; }
  if (it.phase === "queued") { return travel + LINGER; }
  return travel;
}

function frame() {
  const now = clock();
  const speed = Math.max(0.05, speed_slider.value);
  if (S.prev !== null && pause.active) {       // paused: time stands still for the dots
    const dt = now - S.prev;
    for (const it of S.items) { it.start += dt; }
    S.lastStart += dt;
  }
  S.prev = now;
  if (!pause.active) { take(now, speed); }
  if (S.jumpRequested) {
    const before = S.items.length;
    S.items = S.items.filter((it) => it.start <= now);
    S.skipped += before - S.items.length;
    S.lastStart = now;
    S.jumpRequested = false;
  }
  const xs = [], ys = [], color = [], marker = [], size = [], alpha = [], label = [];
  const keep = [];
  let behind = 0;
  for (const it of S.items) {
    const age = now - it.start;
    if (age < 0) { behind++; keep.push(it); continue; }
    if (age > life(it, speed)) { S.played++; continue; }
    keep.push(it);
    if (xs.length >= CAP) { continue; }       // drawn is capped; counted is exact
    const travel = TRAVEL / speed;
    const p = Math.min(1, age / travel);
    let x = it.x0 + (it.x1 - it.x0) * p, y = it.y0 + (it.y1 - it.y0) * p;
    if (it.x0 === it.x1 && it.y0 !== it.y1) {   // compute to compute: follow the arc
      const bulge = Math.min(ARC_MAX, Math.max(ARC_MIN, ARC * Math.abs(it.y1 - it.y0)));
      x -= bulge * (it.y1 < it.y0 ? 1.2 : 1.0) * Math.sin(Math.PI * p);
    }
    let s = 12, a = 0.95, m = it.marker, c = it.color;
    if ((it.phase === "dropped" || it.phase === "expired") && p >= 1) {
      const b = Math.min(1, (age - travel) / BURST);
      s = 12 + 30 * b; a = 1 - b; m = "x"; c = "#d62728";
    } else if (it.phase === "queued" && p >= 1) {
      a = 0.6; s = 10;
    }
    xs.push(x); ys.push(y); color.push(c); marker.push(m); size.push(s); alpha.push(a);
    label.push(it.label);
  }
  S.items = keep;
  S.frames++;
  const d = dots.data;
  d.x = xs; d.y = ys; d.color = color; d.marker = marker; d.size = size; d.alpha = alpha;
  d.label = label;
  dots.change.emit();
  if (behind !== S.behind && (S.frames % 10 === 0 || behind === 0)) {
    S.behind = behind;
    behind_div.text = behind ? `behind by ${behind} events` : "live";
  }
  window.requestAnimationFrame(frame);
}
window.requestAnimationFrame(frame);
"""

# the arcs between computes are drawn by layout.arc: the dots follow the same curve
ANIMATE_JS = ANIMATE_JS.replace(
    "/*ARC*/", f"const ARC = {ARC}, ARC_MIN = {ARC_MIN}, ARC_MAX = {ARC_MAX};")

JUMP_JS = r"""
if (window.__conductorLab) { window.__conductorLab.jumpRequested = true; }
"""
