"""What ``python -m lab chaos`` shows: the evidence attached to each violation (the
server's instance actions and events from the API, its lines of the bus's trace, a
service's last errors in its log), the figures of a run and the text report."""
from __future__ import annotations

import datetime
import re
from collections import Counter
from pathlib import Path
from typing import Any

from orchestrator import rundir

from . import invariants as inv
from .api_client import ApiError
from .lab import Lab
from .remote import child_name
from .trace import Trace, short

__all__ = ["server_actions", "add_evidence", "message_fates", "format_report"]

NOISE = frozenset({"service_update", "compute_node_update", "resources"})
EVIDENCE_LIMIT = 25                   # violations given actions and trace lines
TRACE_LINES = 30                      # a server's last trace lines shown
SEVERE = (" ERROR ", " WARNING ", " CRITICAL ", "exception=")
TRACEBACK_END = re.compile(r"^[A-Za-z_][\w.]*: ")   # "zmq.error.Again: ..."


def _servers_of(v: inv.Violation, known: set[str]) -> list[str]:
    """The server a violation is about (none for a host or a service)."""
    return [v.subject] if v.subject in known else []


def server_actions(lab: Lab, violations: list[inv.Violation],
                   snap: inv.Snapshot) -> dict[str, list[dict[str, Any]]]:
    """The instance actions and events of the servers the first violations are about
    (read from the API before the lab closes)."""
    known = {s["id"] for s in snap.servers}
    out: dict[str, list[dict[str, Any]]] = {}
    for v in violations[:EVIDENCE_LIMIT]:
        for sid in _servers_of(v, known):
            if sid not in out:
                try:
                    out[sid] = lab.actions(sid)
                except (ApiError, OSError) as exc:
                    out[sid] = [{"action": f"(unreadable: {exc})", "events": []}]
    return out


def add_evidence(violations: list[inv.Violation], actions: dict[str, list[dict[str, Any]]],
                 run_dir: Path, began: float, computes: list[str]) -> None:
    """Each server's actions and events, and its trace lines from ``trace.jsonl``; for
    a service, the errors and warnings at the end of its log."""
    for v in violations:
        if v.invariant == 5:
            v.evidence += _log_tail(run_dir, _log_name(v.subject, computes))
    if not actions:
        return
    lines = _trace_lines(run_dir, set(actions), began)
    for v in violations:
        for sid in _servers_of(v, set(actions)):
            v.evidence.append(f"server {sid}: instance actions")
            for a in actions[sid]:
                v.evidence.append(f"  {a['action']} {a.get('request_id', '')} "
                                  f"at {_seconds(a.get('start_time')) - began:.3f}s")
                v.evidence += [f"    {ev['event']} {ev['host'] or '-'} attempt "
                               f"{ev['attempt']} {ev['result']} "
                               f"{(ev.get('details') or '')[:110]}" for ev in a["events"]]
            shown = lines[sid][-TRACE_LINES:]
            v.evidence.append(f"server {sid}: trace ({len(lines[sid])} lines"
                              + (f", the last {len(shown)})" if len(shown) < len(lines[sid])
                                 else ")"))
            v.evidence += shown


def _seconds(iso: str | None) -> float:
    """An API time (Nova's ISO 8601, UTC, no zone) as unix seconds; 0 if none."""
    if not iso:
        return 0.0
    return datetime.datetime.fromisoformat(iso).replace(tzinfo=datetime.UTC).timestamp()


def _trace_lines(run_dir: Path, uuids: set[str], began: float) -> dict[str, list[str]]:
    """Each instance's messages in ``trace.jsonl`` (no heartbeats or reports), one line
    each, times from the start of the chaos."""
    try:
        trace = Trace.load(run_dir / "trace.jsonl")
    except OSError:
        trace = Trace([])
    lines: dict[str, list[str]] = {uuid: [] for uuid in uuids}
    for e in trace:
        if e["instance_uuid"] in lines and e["method"] not in NOISE:
            lines[e["instance_uuid"]].append(
                f"  {e['seq']:6} {e['ts'] - began:8.3f}s {short(e['src']):>10} -> "
                f"{short(e['dst']):<10} {e['kind']:5} {e['method']:24} {e['phase']:7} "
                f"{e['reason'] or '':14} attempt {e['attempt']}")
    return lines


def message_fates(run_dir: Path) -> Counter[str]:
    """What the bus did to messages because of the faults, from ``trace.jsonl``."""
    fates: Counter[str] = Counter()
    try:
        trace = Trace.load(run_dir / "trace.jsonl")
    except OSError:
        return fates
    for e in trace:
        if e["phase"] == "dropped" and e["reason"] in ("fault", "partition"):
            fates[f"dropped ({e['reason']})"] += 1
        elif e["phase"] == "routed" and e["reason"] == "duplicate":
            fates["duplicated"] += 1
        elif e["phase"] == "delayed":
            fates["delayed"] += 1
    return fates


def _log_name(subject: str, computes: list[str]) -> str:
    """The log of the service a violation of invariant 5 names: ``nova-compute compute2``
    (the API's services), ``compute2`` (a process), ``compute.compute2`` (a pid)."""
    if subject.startswith("nova-"):
        binary, _, host = subject.partition(" ")
        return f"{binary.removeprefix('nova-')}.{host}"
    return subject if "." in subject else child_name(subject, computes)


def _log_tail(run_dir: Path, name: str, lines: int = 8) -> list[str]:
    """The last errors and warnings of a service's log (``compute.compute2``)."""
    try:
        text = rundir.log_path(run_dir, name).read_text(errors="replace").splitlines()
    except OSError:
        return []
    found = [line[:220] for line in text if any(w in line for w in SEVERE)
             or TRACEBACK_END.match(line)]
    return [f"log {name}: {line}" for line in found[-lines:]]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def format_report(r: dict[str, Any]) -> str:
    o, rec = r["options"], r["recovery"]
    lines = [
        f"chaos: seed {o['seed']}, {o['computes']} computes, {o['builds']} builds at "
        f"{o['rate']:g}/s, drop {o['drop']:.0%}, duplicate {o['duplicate']:.0%}, slow links "
        f"+{o['delay']:g}s, a process fault every ~{o['kill_every']:g}s, moves "
        f"{'on' if o['moves'] else 'off'}",
        f"nemesis plan ({len(r['plan'])} steps; the same seed gives the same plan, the "
        f"wall-clock interleaving still varies):", *[f"  {line}" for line in r["plan"]],
        f"builds: {r['builds']['sent']} sent, {r['builds']['accepted']} accepted; refused: "
        f"{_counts(r['builds']['refused'])}",
        f"moves and user actions accepted: {_counts(r['moves']['accepted'])}; refused: "
        f"{_counts(r['moves']['refused'])}",
        f"faults injected: {_counts(r['faults']['injected'])}",
        f"messages: {_counts(r['faults']['messages'])}",
        f"outcomes: {_counts(r['outcomes'])}",
        f"migrations: {_counts(r['migrations'])}",
        f"recovery: chaos lasted {rec['chaos_s']:.1f}s; every server at rest and no "
        "migration moving " + (f"{rec['at_rest_after_s']:.1f}s after the faults stopped"
                               if rec["at_rest_after_s"] is not None else
                               "NOT REACHED") + f" (limit {r['limit_s']:g}s); accounting "
        + (f"converged after {rec['accounting_converged_after_s']:.1f}s more"
           if rec["accounting_converged_after_s"] is not None else "did NOT converge"),
    ]
    if r.get("nemesis_skipped"):
        lines.append(f"nemesis skipped: {_counts(r['nemesis_skipped'])}")
    if r["nemesis_errors"]:
        lines.append(f"nemesis errors ({len(r['nemesis_errors'])}):")
        lines += [f"  {e}" for e in r["nemesis_errors"]]
    lines.append("invariants: " + ", ".join(f"{k} {'ok' if n == 0 else f'{n} VIOLATED'}"
                                             for k, n in r["invariants"].items()))
    lines.append(f"violations: {len(r['violations'])}")
    for v in r["violations"]:
        lines.append(f"[{v['invariant']} {v['name']}] {v['subject']}: {v['what']}")
        lines += [f"    {e}" for e in v["evidence"]]
    if r["violations"]:
        lines.append(f"reproduce: python -m lab chaos --seed {o['seed']} --builds "
                     f"{o['builds']} --computes {o['computes']}"
                     + (" --moves" if o["moves"] else "") + f"; run directory kept: "
                     f"{r['run_dir']}")
    return "\n".join(lines)
