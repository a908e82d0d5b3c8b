"""The lab's messages beside real Nova's: RPC sequences captured from Nova 34 running its
own functional tests (``tests/nova_traces/*.norm.txt``, "how to read them" in its README),
and the lab's trace written the same way, so the two can be compared line by line.

A captured file is a list of *requests*: a ``== test -> nova-api POST /servers`` line,
then one line per message it caused::

    conductor            -> compute[HOST_A]        CAST           build_and_run_instance ...

``normalize(trace)`` writes a lab trace in that form: delivered messages only, grouped by
the request that caused them (its ``request_id``), computes renamed ``HOST_A``, ``HOST_B``
... in order of first appearance, a fanout's receiver written ``scheduler(*fanout*)``,
and what Nova's capture does not show left out: the database-proxy calls (in Nova,
objects saving themselves through the conductor), the periodic reports and the
computes' start-up (``periodic-*``, ``init-*`` requests), and the lab's own traffic.

What is compared is who sends what kind of message to whom (``Hop``: sender, receiver,
kind, method); the arguments Nova's lines show after the method are read (``Hop.detail``)
but not compared. One name differs on purpose (``NAME_DIFFERENCES``): the API's first
cast is the seed's ``build_instances`` in the lab, Nova's ``schedule_and_build_instances``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .trace import HOUSEKEEPING_PREFIXES, Trace

__all__ = ["Hop", "Request", "load", "normalize", "compare", "NAME_DIFFERENCES"]

# (sender, Nova's method) -> the lab's method: the seed's name for the API's first cast.
NAME_DIFFERENCES = {("api", "schedule_and_build_instances"): "build_instances"}

_LINE = re.compile(r"^(?P<src>\S+)\s+->\s+(?P<dst>\S+)\s+(?P<kind>[A-Z]+)\s+"
                   r"(?P<method>\S+)\s*(?P<detail>.*)$")


@dataclass(frozen=True)
class Hop:
    """One message: who sent what kind of message to whom (``detail``: the rest of
    Nova's line, its arguments, kept for reading, never compared)."""

    src: str
    dst: str
    kind: str
    method: str
    detail: str = field(default="", compare=False)

    def __str__(self) -> str:
        text = f"{self.src:20} -> {self.dst:22} {self.kind:14} {self.method}"
        return f"{text} {self.detail}".rstrip()


@dataclass
class Request:
    """A user's request (``POST /servers``) and the messages it caused, in order."""

    title: str
    hops: list[Hop]

    @property
    def errors(self) -> list[str]:
        """The exception types of the replies that carried one (``ERROR NoValidHost``)."""
        return [h.detail.split()[1] for h in self.hops
                if h.kind == "REPLY" and h.detail.startswith("ERROR ")]


def load(path: str | Path) -> list[Request]:
    """A captured Nova trace (``*.norm.txt``): its requests, in the test's order."""
    requests: list[Request] = []
    for raw in Path(path).read_text().splitlines():
        line = raw.rstrip()
        if line.startswith("== "):
            requests.append(Request(line.split("nova-api", 1)[-1].strip(), []))
            continue
        match = _LINE.match(line)
        if match is None or line.startswith(("#", "----")):
            continue
        if not requests:
            raise ValueError(f"{path}: a message before any request: {line!r}")
        hop = Hop(match["src"], match["dst"], match["kind"], match["method"],
                  match["detail"].strip())
        lab_name = NAME_DIFFERENCES.get((hop.src, hop.method))
        requests[-1].hops.append(hop if lab_name is None else Hop(
            hop.src, hop.dst, hop.kind, lab_name, hop.detail))
    return requests


def normalize(trace: Trace | Iterable[dict]) -> list[Request]:
    """The lab's delivered messages as Nova's capture shows them, one ``Request`` per
    user request (by ``request_id``, in order of its first message)."""
    events = trace if isinstance(trace, Trace) else Trace(trace)
    events = events.routed().without_lab().without_db_proxy().filter(
        lambda e: not e["request_id"].startswith(HOUSEKEEPING_PREFIXES))
    hosts: dict[str, str] = {}
    requests: dict[str, Request] = {}
    for e in events:
        hop = Hop(_name(e["src"], "", hosts), _name(e["dst"], e["kind"], hosts),
                  e["kind"].upper(), e["method"])
        requests.setdefault(e["request_id"], Request(e["request_id"], [])).hops.append(hop)
    return list(requests.values())


def _name(identity: str, kind: str, hosts: dict[str, str]) -> str:
    topic, _, server = identity.partition(".")
    if topic == "compute":
        if server not in hosts:
            hosts[server] = f"HOST_{chr(ord('A') + len(hosts))}"
        return f"compute[{hosts[server]}]"
    return f"{topic}(*fanout*)" if kind == "fanout" else topic


def compare(lab: list[Request], nova: list[Request]) -> list[str]:
    """The differences, as lines a person can read (empty: the same messages, kinds and
    senders, request by request)."""
    out = []
    if len(lab) != len(nova):
        out.append(f"{len(lab)} requests in the lab, {len(nova)} in Nova's trace")
    for i, (mine, theirs) in enumerate(zip(lab, nova), 1):
        if mine.hops != theirs.hops:
            out.append(f"request {i} ({theirs.title}):")
            out += ["  nova: " + str(h) for h in theirs.hops]
            out += ["  lab:  " + str(h) for h in mine.hops]
    return out
