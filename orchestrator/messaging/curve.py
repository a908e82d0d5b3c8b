"""A class's cloud across machines: the bus's second door, ZeroMQ CURVE (RFC 26).

The lab's own services reach the bus through ``ipc://`` sockets in its private run
directory with PLAIN and the lab's secret (``auth.py``). A class adds TCP endpoints on
an address other machines can reach, and there every connection is CURVE: encrypted,
and authenticated both ways (the student's machine knows it talks to the instructor's bus
by the server's public key; the bus knows the student by theirs).

The **keys directory** (``python -m lab keys DIR``) is the class's registry; pyzmq's
``zmq.auth`` writes and reads its certificate files:

- ``class.json``: the address students connect to, the bus port (trace port + 1,
  dashboard port + 2) and the students' names;
- ``server.key`` / ``server.key_secret``: the bus's key pair;
- ``students/NAME.key``: each student's public key (what the ZAP handler admits);
- ``revoked/NAME.key``: a revoked student's public key (``revoke`` moves it here);
- ``tickets/NAME.ticket``: one file per student with everything their machine needs
  (address, the server's public key, their own key pair, the read-only dashboard link);
- ``view-token``: the secret each student's read-only dashboard token is made from
  (:func:`view_token`), so that a revoked student's link stops working and no other's.

A student is admitted (by the door's ZAP handler: ``door.py``) with the User-Id
``student:NAME``; each of their connections takes the name its first envelope claims,
which must be one of theirs: ``compute.NAME_N`` (their computes) or ``lab.NAME_...``
(their tools), and keeps it. They may send only what a compute sends (the lab's table,
``class.sends`` in ``lab.json``), speaking for no host but their own; turn the knobs
(``set_failure``, ``set_config``) only of their own computes; never the bus's knobs.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.utils import z85

from . import protocol

__all__ = ["ClientKeys", "Registry", "ClassDoor", "STUDENT_PREFIX", "NAME_RE", "ZAP_DOMAIN_CLASS_BUS",
           "ZAP_DOMAIN_CLASS_TRACE", "write_keys", "add_student", "revoke", "reinstate",
           "read_class", "load_ticket", "view_token", "ViewTokens", "client_keys", "name_problem", "student_names", "student_of",
           "curve_client", "curve_server", "CLASS_CONTROLS", "KeysError"]

log = logging.getLogger("orchestrator.curve")
STUDENT_PREFIX = "student:"          # a CURVE connection's User-Id
ZAP_DOMAIN_CLASS_BUS = "conductor-lab.class-bus"
ZAP_DOMAIN_CLASS_TRACE = "conductor-lab.class-trace"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,30}$")   # no "_": NAME_N is never ambiguous
CLASS_JSON = "class.json"
TICKET_SUFFIX = ".ticket"
# what a student's peer may ask of the bus itself: its liveness and the class's config
CLASS_CONTROLS = frozenset({protocol.REGISTER, protocol.HEARTBEAT, protocol.UNREGISTER,
                            protocol.EXPIRED, "class_config"})


class KeysError(ValueError):
    """A keys directory or ticket that cannot be used, said in words."""


@dataclass(frozen=True)
class ClientKeys:
    """A CURVE client's keys (z85 text): the bus's public key and the peer's pair."""

    server_key: str
    public_key: str
    secret_key: str
    student: str


def curve_client(sock: zmq.Socket, keys: ClientKeys) -> None:
    """Make ``sock`` a CURVE client of the class bus (before ``connect``). It sets no
    routing id: libzmq gives each connection its own, so no student can take over
    another's (ROUTER_HANDOVER hands a routing id to whoever claims it last); the bus
    learns the connection's name from its first envelope and holds it to that."""
    sock.setsockopt(zmq.CURVE_SERVERKEY, keys.server_key.encode())
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public_key.encode())
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret_key.encode())


def curve_server(sock: zmq.Socket, secret_key: bytes, domain: str) -> None:
    """Make ``sock`` a CURVE server judged by the ZAP handler under ``domain`` (before
    ``bind``)."""
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret_key)
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)   # no ZAP handler: nobody, not everybody


def name_problem(student: str, name: str) -> str:
    """"" if ``student`` may hold ``name`` on the bus (``compute.NAME_N``, N at most 4
    digits, or ``lab.NAME_x``, x at most 24 letters, digits and dashes), else
    ``not_your_name``."""
    if len(name) > 64:
        return "not_your_name"
    topic, _, server = name.partition(".")
    head, sep, tail = server.partition("_")
    if head != student or not sep:
        return "not_your_name"
    if topic == "compute" and tail.isdigit() and tail.isascii() and len(tail) <= 4:
        return ""
    if topic == "lab" and tail.replace("-", "").isalnum() and tail.isascii() and \
            len(tail) <= 24:
        return ""
    return "not_your_name"


def student_of(host: str) -> str:
    """The student a compute host belongs to (``alice_2`` -> ``alice``), or ""."""
    head, sep, tail = host.partition("_")
    return head if sep and NAME_RE.match(head) and tail.isdigit() and tail.isascii() else ""


def student_names(count: int, names: str = "") -> list[str]:
    """``student01`` ... (or the comma-separated ``names``), each checked."""
    chosen = [n.strip() for n in names.split(",") if n.strip()] if names else \
        [f"student{i:02d}" for i in range(1, count + 1)]
    bad = [n for n in chosen if not NAME_RE.match(n)]
    if bad:
        raise KeysError(f"student names must be lower-case letters and digits, starting "
                        f"with a letter, at most 31 long: not {', '.join(map(repr, bad))}")
    if len(set(chosen)) != len(chosen):
        raise KeysError("student names must be distinct")
    if not chosen:
        raise KeysError("a class needs at least one student")
    return chosen


# -- the keys directory ---------------------------------------------------------------------
def _private_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def read_class(keys_dir: str | os.PathLike) -> dict[str, Any]:
    """``class.json`` of a keys directory (KeysError if it is not one)."""
    path = Path(keys_dir) / CLASS_JSON
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KeysError(f"{keys_dir} is not a class's keys directory "
                        f"(python -m lab keys DIR makes one): {exc}") from None
    if not (Path(keys_dir) / "server.key_secret").exists():
        raise KeysError(f"{keys_dir} has no server.key_secret: not the instructor's copy")
    return data


def write_keys(keys_dir: str | os.PathLike, students: list[str], address: str,
               port: int) -> dict[str, Any]:
    """Make a class's keys directory (refuses one that exists: keys are never
    overwritten, a student's ticket would stop working). Returns ``class.json``."""
    keys_dir = Path(keys_dir)
    if (keys_dir / CLASS_JSON).exists():
        raise KeysError(f"{keys_dir} already holds a class's keys; add students with "
                        f"--add, or choose another directory")
    if not 1 <= port <= 65533:
        raise KeysError(f"port {port}: the bus takes it, the trace the next, the "
                        f"dashboard the one after; choose 1-65533")
    for sub in ("", "students", "revoked", "tickets"):
        (keys_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(keys_dir, 0o700)
    zmq.auth.create_certificates(keys_dir, "server")
    os.chmod(keys_dir / "server.key_secret", 0o600)
    _private_file(keys_dir / "view-token", secrets.token_urlsafe(24))
    info = {"address": address, "port": port, "students": []}
    _private_file(keys_dir / CLASS_JSON, json.dumps(info, indent=1))
    for name in students:
        add_student(keys_dir, name)
    return read_class(keys_dir)


def add_student(keys_dir: str | os.PathLike, name: str) -> Path:
    """A key pair and a ticket for one more student; returns the ticket's path."""
    keys_dir = Path(keys_dir)
    info = read_class(keys_dir)
    student_names(1, name)
    if name in info["students"]:
        raise KeysError(f"{name} already has keys")
    (keys_dir / "private").mkdir(mode=0o700, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(keys_dir / "private", name)
    public, secret = zmq.auth.load_certificate(secret_file)
    shutil.move(public_file, keys_dir / "students" / f"{name}.key")
    os.unlink(secret_file)   # the ticket is the only copy the student needs
    (keys_dir / "private").rmdir()
    server_public, _ = zmq.auth.load_certificate(keys_dir / "server.key")
    address, port = info["address"], info["port"]
    view = view_token(keys_dir, name)
    ticket = {"student": name, "bus": f"tcp://{address}:{port}",
              "trace": f"tcp://{address}:{port + 1}",
              "dashboard": f"http://{address}:{port + 2}/dashboard?token={view}",
              "server_key": server_public.decode(), "public_key": public.decode(),
              "secret_key": secret.decode()}
    path = keys_dir / "tickets" / f"{name}{TICKET_SUFFIX}"
    _private_file(path, json.dumps(ticket, indent=1) + "\n")
    info["students"].append(name)
    _private_file(keys_dir / CLASS_JSON, json.dumps(info, indent=1))
    return path


def view_token(keys_dir: str | os.PathLike, name: str) -> str:
    """Student ``name``'s read-only dashboard token (in their ticket's link)."""
    secret = (Path(keys_dir) / "view-token").read_bytes().strip()
    return hmac.new(secret, name.encode(), hashlib.sha256).hexdigest()[:32]


class ViewTokens:
    """The dashboard tokens of the students admitted now (re-read when ``students/``
    changes): a revoked student's link is refused from their next page load."""

    def __init__(self, keys_dir: str | os.PathLike):
        self.keys_dir = Path(keys_dir)
        self._stamp = -1
        self.tokens: frozenset[str] = frozenset()

    def current(self) -> frozenset[str]:
        try:
            stamp = os.stat(self.keys_dir / "students").st_mtime_ns
            if stamp != self._stamp:
                names = [p.stem for p in (self.keys_dir / "students").glob("*.key")]
                self.tokens = frozenset(view_token(self.keys_dir, n) for n in names)
                self._stamp = stamp
        except OSError:
            pass                    # unreadable now: the tokens read before
        return self.tokens


def revoke(keys_dir: str | os.PathLike, name: str) -> None:
    """Move ``name``'s public key to ``revoked/``: the bus refuses them from now on,
    and cuts off the connections they hold (it watches the directory)."""
    keys_dir = Path(keys_dir)
    src = keys_dir / "students" / f"{name}.key"
    if not src.exists():
        if (keys_dir / "revoked" / f"{name}.key").exists():
            return
        raise KeysError(f"no student {name!r} in {keys_dir}")
    os.replace(src, keys_dir / "revoked" / f"{name}.key")


def reinstate(keys_dir: str | os.PathLike, name: str) -> None:
    """Undo :func:`revoke` (the student's old ticket works again)."""
    keys_dir = Path(keys_dir)
    src = keys_dir / "revoked" / f"{name}.key"
    if not src.exists():
        raise KeysError(f"{name!r} is not revoked in {keys_dir}")
    os.replace(src, keys_dir / "students" / f"{name}.key")


def load_ticket(path: str | os.PathLike) -> dict[str, Any]:
    """A student's ticket, checked: KeysError names what is wrong with it."""
    try:
        ticket = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise KeysError(f"cannot read the ticket {path}: {exc}") from None
    need = ("student", "bus", "server_key", "public_key", "secret_key")
    missing = [k for k in need if not isinstance(ticket.get(k), str)] \
        if isinstance(ticket, dict) else list(need)
    if missing:
        raise KeysError(f"{path} is not a class ticket (missing {', '.join(missing)})")
    for key in ("server_key", "public_key", "secret_key"):
        if len(ticket[key]) != 40:
            raise KeysError(f"{path}: {key} is not a 40-character z85 CURVE key")
    if not NAME_RE.match(ticket["student"]):
        raise KeysError(f"{path}: {ticket['student']!r} is not a student's name")
    return ticket


def client_keys(ticket: dict[str, Any]) -> ClientKeys:
    return ClientKeys(ticket["server_key"], ticket["public_key"], ticket["secret_key"],
                      ticket["student"])


class Registry:
    """The students the bus admits, read from a keys directory and re-read when it
    changes (a revoke takes effect while the lab runs). Used by the ZAP handler's
    thread and the bus's: each read replaces whole dicts, which is atomic in Python."""

    def __init__(self, keys_dir: str | os.PathLike):
        self.keys_dir = Path(keys_dir)
        self.admitted: dict[bytes, str] = {}    # z85 public key -> student
        self.revoked_keys: dict[bytes, str] = {}
        self.revoked: frozenset[str] = frozenset()
        self._stamp: tuple[int, ...] = ()
        self._lock = threading.Lock()            # the ZAP handler's thread and the door's
        self.secret_key = zmq.auth.load_certificate(
            self.keys_dir / "server.key_secret")[1]
        self.reload()

    def _read(self, sub: str) -> dict[bytes, str]:
        found = {}
        for path in sorted((self.keys_dir / sub).glob("*.key")):
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError):
                continue
            found[public] = path.stem
        return found

    def reload(self) -> bool:
        """Re-read the directory if it changed; True if it did. A directory that cannot
        be read (moved, its permissions changed) keeps the last students read, and says
        so in the log: it never stops the door."""
        with self._lock:
            try:
                stamp = tuple(os.stat(self.keys_dir / sub).st_mtime_ns
                              for sub in ("students", "revoked"))
                if stamp == self._stamp:
                    return False
                admitted, revoked_keys = self._read("students"), self._read("revoked")
            except OSError as exc:
                if self._stamp != ("unreadable",):
                    log.error("cannot read the class's keys in %s (%s): keeping the "
                              "students read before", self.keys_dir, exc)
                    self._stamp = ("unreadable",)   # type: ignore[assignment]
                return False
            self.admitted, self.revoked_keys = admitted, revoked_keys
            self.revoked = frozenset(revoked_keys.values()) - set(admitted.values())
            self._stamp = stamp
            return True

    def judge(self, public_key: bytes) -> tuple[str, str]:
        """A CURVE client's 32-byte public key -> (student, "") if admitted, else
        (what to call it, reason): ``revoked_key`` (named) or ``unknown_key`` (z85)."""
        self.reload()
        text = z85.encode(public_key) if len(public_key) == 32 else b""
        student = self.admitted.get(text)
        if student:
            return student, ""
        if text in self.revoked_keys:
            return self.revoked_keys[text], "revoked_key"
        return "key " + text.decode("ascii", "replace"), "unknown_key"


class ClassDoor:
    """The rules of a class's door (``door.py``; ``lab.json``'s ``class`` section): the
    registry the ZAP handler asks, which student holds which name, and what a student's
    peer may send."""

    def __init__(self, section: dict[str, Any]):
        self.section = section
        self.registry = Registry(section["keys"])
        self.students: dict[str, str] = {}     # name on the bus -> its student
        self.sends = {topic: frozenset(methods)
                      for topic, methods in section.get("sends", {}).items()}
        self.own_host_args: dict[str, str] = section.get("own_host_args", {})

    def admit(self, name: str, user_id: str) -> bool:
        """A student's frame under ``name`` (its connection proved it): False if their
        key has been revoked (drop it)."""
        student = user_id[len(STUDENT_PREFIX):]
        if student in self.registry.revoked:
            return False
        self.students[name] = student
        return True

    def may_send(self, name: str, env: dict[str, Any]) -> bool:
        """A student's computes send only what a compute sends (``sends``), speaking for
        no host but their own (``own_host_args``); a student may drive their own
        computes (their knobs: ``set_failure``, ...) and ask the bus only for
        :data:`CLASS_CONTROLS`; anyone else, anything. Not checked: which instances a
        compute's messages are about (a Nova compute is trusted with those too)."""
        student = self.students.get(name)
        if student is None:
            return True
        kind, topic = env["kind"], env["topic"]
        if kind == "control":
            return env["method"] in CLASS_CONTROLS
        if topic == "compute" and env["server"] and kind in ("call", "cast") and \
                not name_problem(student, f"compute.{env['server']}"):
            return True
        if not name.startswith("compute."):
            return False
        if kind == "reply":
            return True
        if env["method"] not in self.sends.get(topic, ()):
            return False
        arg = self.own_host_args.get(env["method"])     # it speaks for a host: its own
        return arg is None or env["args"].get(arg) == name.partition(".")[2]
