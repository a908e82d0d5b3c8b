#!/usr/bin/env python3
"""See the lab as a student's browser on another machine does: a forward HTTP proxy that
lets the browser reach ONE host:port only (the Jupyter server, as on a hub or Binder) and
answers 502 for everything else, websockets and CONNECT included. Logs each decision.

    python tests/browser/one_port_proxy.py LISTEN_PORT ALLOWED_HOST:PORT LOGFILE

Then start Chromium with --proxy-server=http://127.0.0.1:LISTEN_PORT and
--proxy-bypass-list=<-loopback> (without the latter, Chromium never proxies 127.0.0.1), open
the notebook through the Jupyter server, and read LOGFILE: every BLOCKED line is something
a remote student's browser could not load.

A copy of the team's shared/tools/one_port_proxy.py, same behaviour, kept here so the tests
do not depend on a directory beside the repository (the ``one_port_proxy`` fixture in
tests/browser/conftest.py runs it)."""
import socket
import sys
import threading

LISTEN, ALLOWED, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
logf = open(LOG, "a", buffering=1)
lock = threading.Lock()


def log(msg):
    with lock:
        logf.write(msg + "\n")


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def read_head(conn):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = conn.recv(65536)
        if not d:
            return None, b""
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def handle(conn):
    try:
        head, rest = read_head(conn)
        if head is None:
            conn.close(); return
        lines = head.split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        if method == "CONNECT":
            hostport = target
        else:
            # absolute-form: http://host:port/path
            assert target.startswith("http://"), target
            hp_path = target[len("http://"):]
            hostport, _, path = hp_path.partition("/")
            path = "/" + path
        if ":" not in hostport:
            hostport += ":80"
        if hostport != ALLOWED:
            log(f"BLOCKED {method} {target}")
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close(); return
        host, port = hostport.rsplit(":", 1)
        up = socket.create_connection((host, int(port)))
        if method == "CONNECT":
            log(f"TUNNEL {target}")
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                up.sendall(rest)
        else:
            hdrs = [h for h in lines[1:] if not h.lower().startswith(("proxy-connection:", "connection:", "keep-alive:"))]
            upgrade = any(h.lower().startswith("upgrade:") for h in lines[1:])
            hdrs.append("Connection: Upgrade" if upgrade else "Connection: close")
            up.sendall(f"{method} {path} {version}\r\n".encode("latin-1") +
                       "\r\n".join(hdrs).encode("latin-1") + b"\r\n\r\n" + rest)
        t = threading.Thread(target=pipe, args=(up, conn), daemon=True)
        t.start()
        pipe(conn, up)
    except Exception as exc:  # noqa
        log(f"ERROR {exc!r}")
        try:
            conn.close()
        except OSError:
            pass


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", LISTEN))
srv.listen(128)
log(f"listening on {LISTEN}, allowing only {ALLOWED}")
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
