"""The command line of a class's cloud across machines (``lab/classroom.py``,
``lab/join.py``):

    keys DIR      the class's keys: the bus's pair, one pair and ticket per student
    up --class    the instructor's lab, listening for the students' machines (CURVE)
    join TICKET   a student's computes join the class's cloud
    revoke NAME   refuse a student's key from now on (their servers are evacuated)
"""
from __future__ import annotations

import argparse
import queue
import shlex
import socket
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from orchestrator.messaging import curve, protocol

from .cluster import LabError

__all__ = ["add_commands", "add_up_arguments", "class_lab_options", "print_class",
           "guess_address", "DEFAULT_PORT"]

DEFAULT_PORT = 7755          # the bus; the trace 7756, the dashboard 7757
DEFAULT_KEYS = "class-keys"
JOIN_HELP = ("commands: status | kill N | start N | slow N FACTOR | fail N RATE | "
             "quit   (N: 1, 2, ... your computes)")


def guess_address() -> str:
    """This machine's address on its default route (no packet is sent), else
    127.0.0.1: what the students' tickets say to connect to unless ``--address``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def cmd_keys(args: argparse.Namespace) -> int:
    if args.add:
        path = curve.add_student(args.dir, args.add)
        print(f"{args.add}: ticket {path}")
        return 0
    info = curve.write_keys(args.dir, curve.student_names(args.students, args.names),
                            args.address or guess_address(), args.port)
    print(f"class keys in {args.dir}: {len(info['students'])} students, the class at "
          f"tcp://{info['address']}:{info['port']} (trace {info['port'] + 1}, dashboard "
          f"{info['port'] + 2})")
    print(f"  give each student their ticket: {Path(args.dir) / 'tickets'}/NAME.ticket "
          f"(it holds their secret key: hand it to them alone)")
    print(f"  start the class: python -m lab up --class --keys {args.dir}")
    return 0


def add_up_arguments(up: argparse.ArgumentParser) -> None:
    up.add_argument("--class", dest="classroom", action="store_true",
                    help="a class's cloud: students' computes join over CURVE")
    up.add_argument("--keys", default=DEFAULT_KEYS,
                    help="--class: the keys directory (made with --students if missing)")
    up.add_argument("--students", type=int, default=30,
                    help="--class: students to make keys for when --keys has none")
    up.add_argument("--listen", default="0.0.0.0",
                    help="--class: the address the bus and dashboard listen on")
    up.add_argument("--address", default="",
                    help="--class, new keys: the address students connect to "
                         "(default: this machine's)")
    up.add_argument("--port", type=int, default=DEFAULT_PORT,
                    help="--class, new keys: the bus's port (trace +1, dashboard +2)")


def class_lab_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Lab(...)`` keywords for ``up`` (none without ``--class``); makes the keys if
    the directory has none."""
    if not args.classroom:
        return {}
    if not (Path(args.keys) / "class.json").exists():
        cmd_keys(argparse.Namespace(dir=args.keys, add="", names="", students=args.students,
                                    address=args.address, port=args.port))
    return {"listen": args.listen, "class_keys": args.keys}


def print_class(lab: Any) -> None:
    section = lab.classroom
    print(f"  class   students join at tcp://{section['address']}:{section['port']} "
          f"(CURVE; listening on {section['listen']})")
    print(f"          tickets in {section['keys']}/tickets; a student runs "
          f"python -m lab join NAME.ticket")
    print(f"          students' dashboard (read-only): each ticket has its own link, e.g. "
          f"{lab.student_dashboard_url(curve.read_class(section['keys'])['students'][0])}")
    print(f"          revoke one: python -m lab revoke NAME --run-dir {lab.run_dir}")


def cmd_join(args: argparse.Namespace) -> int:
    from .join import JoinError, Student, describe, error_text
    student = Student(args.ticket, computes=args.computes)
    try:
        try:
            student.start(timeout=args.timeout)
        except (JoinError, curve.KeysError) as exc:
            print(f"error: {error_text(exc)}", file=sys.stderr)
            return 1
        print(describe(student))
        print(JOIN_HELP, flush=True)
        return _supervise(student, sys.stdin)
    except KeyboardInterrupt:
        return 0
    finally:
        student.stop()


def _supervise(student: Any, stdin: Any) -> int:
    """Keep the computes running (``Student.tend``) and obey the student's commands,
    until ``quit``, Ctrl-C or the class refuses the key. Lines are read on a thread (a
    buffered stdin and select() disagree about what is left to read)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stdin:
            lines.put(line)
        lines.put("")           # stdin closed: supervise on until Ctrl-C
    threading.Thread(target=read, name="join-stdin", daemon=True).start()
    while True:
        for host in student.tend():
            print(f"{host} exited (the class's bus went away?): started again", flush=True)
        if student.refused:
            print(f"error: {student.refused}", file=sys.stderr)
            return 1
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        try:
            if line and _obey(student, shlex.split(line)) == "quit":
                return 0
        except (LabError, ValueError, protocol.MessagingTimeout,
                protocol.RemoteError) as exc:   # the class is away: say so, go on
            print(f"error: {exc}", flush=True)


def _obey(student: Any, words: list[str]) -> str:
    if not words:
        return ""
    verb, rest = words[0], words[1:]
    if verb in ("quit", "exit"):
        return "quit"
    if verb == "status":
        for host, state in student.status().items():
            print(f"  {host:20} {state}", flush=True)
        return verb
    if verb in ("kill", "start") and len(rest) == 1:
        which = int(rest[0]) if rest[0].isdigit() else rest[0]
        (student.kill if verb == "kill" else student.start_compute)(which)
        print(f"{student.host(which)}: {'killed' if verb == 'kill' else 'started'}",
              flush=True)
        return verb
    if verb in ("slow", "fail") and len(rest) == 2:
        which = int(rest[0]) if rest[0].isdigit() else rest[0]
        knob = {"slow": "slow", "fail": "reschedule"}[verb]
        print(f"{student.host(which)}: {student.set_failure(which, **{knob: float(rest[1])})}",
              flush=True)
        return verb
    print(JOIN_HELP, flush=True)
    return ""


def cmd_revoke(args: argparse.Namespace) -> int:
    from .remote import RemoteLab
    with RemoteLab(args.run_dir) as lab:
        if args.reinstate:
            lab.reinstate(args.name)
            print(f"{args.name} reinstated: their ticket works again")
            return 0
        hosts = lab.student_hosts(args.name)
        moved = lab.revoke(args.name, evacuate=not args.no_evacuate, timeout=args.timeout)
        print(f"{args.name} revoked: the bus refuses their key; computes cut off: "
              f"{', '.join(hosts) or 'none'}")
        for server, status in moved.items():
            print(f"  evacuated {server}: {status}")
    return 0


def add_commands(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    keys = add("keys", cmd_keys, "a class's keys: the bus's, and a key pair and ticket "
               "per student", lab=False)
    keys.add_argument("dir")
    keys.add_argument("--students", type=int, default=30)
    keys.add_argument("--names", default="", help="comma-separated names instead")
    keys.add_argument("--address", default="",
                      help="the address students connect to (default: this machine's)")
    keys.add_argument("--port", type=int, default=DEFAULT_PORT,
                      help="the bus's port (trace +1, dashboard +2)")
    keys.add_argument("--add", default="", metavar="NAME", help="one more student")
    join = add("join", cmd_join, "a student's computes join a class's cloud", lab=False)
    join.add_argument("ticket")
    join.add_argument("--computes", type=int, default=2)
    join.add_argument("--timeout", type=float, default=30.0)
    revoke = add("revoke", cmd_revoke, "refuse a student's key from now on")
    revoke.add_argument("name")
    revoke.add_argument("--no-evacuate", action="store_true",
                        help="leave their servers where they are")
    revoke.add_argument("--reinstate", action="store_true", help="undo a revoke")
    revoke.add_argument("--timeout", type=float, default=120.0)
