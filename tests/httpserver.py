#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A local HTTP(S) server for the tests: serves a folder with Range support and misbehaves on request.

Use it from pytest (in process):

    srv = TestServer(root, tls=(cert, key), client_ca=None).start()
    srv.plan("/big.bin", cut_at=size // 2)
    ... srv.url("/big.bin") ... srv.stats("/big.bin")["bytes_sent"] ...
    srv.stop()

or as a program, which prints the chosen port on stdout and serves until SIGTERM or SIGINT:

    /usr/bin/python3 tests/httpserver.py --dir D --port 0 [--tls CERT KEY] [--client-ca CA]

then set plans and read counters through the control API on the same server:

    POST /__control  {"plan": {"/big.bin": {"cut_at": 1000}}}    set (replace) plans per path
    POST /__control  {"reset": true}                              drop every plan and counter
    GET  /__control                                               {"paths": {PATH: stats}}

A plan (keyword arguments of TestServer.plan(), or JSON) for one path; offsets are file offsets:
    status=500, status_times=2       answer this status N times (-1: always), then serve normally;
                                     status_after=K: only after K requests served normally
    cut_at=N | [N1, N2, ...]         close the connection once the body has reached byte N, once for
                                     each offset; cut_times=K repeats a single offset K times (-1: always)
    cut_every=K                      every response sends at most K body bytes, then the connection is cut
    cut_mode="close" | "reset"       a plain close (FIN) or a TCP reset
    stall_at=N, stall_seconds=S      stop sending for S seconds at byte N (stall_times, default 1)
    flip=[N, ...]                    send these bytes XOR 0xff (every time)
    ignore_range=True                answer 200 with the whole file to a Range request
    content_range_shift=D            a 206 whose Content-Range announces start + D (the body is right)
    extra=N, extra_mode=M            serve N more bytes than the file: "announced" (Content-Length
                                     includes them), "unannounced" (no Content-Length, close-delimited),
                                     "beyond" (Content-Length of the file, then N more bytes on the wire);
                                     extra_only_partial=True: only in 206 answers
    rate=B                           send at most B bytes per second
    redirect=LOCATION                answer 302 with this Location (redirect_times, default -1: always)
    validators="etag" | "date" | "none"  what names the file's version in 200 and 206 answers: an ETag
                                     (from its mtime and size, default), only Last-Modified, or nothing
    ignore_if_range=True             serve a Range request whatever its If-Range says (a broken server);
                                     otherwise an If-Range that names another version gets 200 and the
                                     whole file
    multirange=M                     how a request for several ranges ("Range: bytes=a-b,c-d") is answered:
                                     "multipart" (default: 206 multipart/byteranges, a part per range, each
                                     with Content-Type and Content-Range), "first-only" (a plain 206 with the
                                     first range only), "coalesce" (a plain 206 from the first range's start
                                     to the last one's end), "coalesce-parts" (multipart, neighbouring ranges
                                     less than 1000 bytes apart merged into one part with their gap),
                                     "ignore" (200 with the whole file)
    multirange_wrong=W               answer several ranges wrongly: "overlap" (the second part starts inside
                                     the first), "outside" (the last part goes 10 bytes past what was asked),
                                     "order" (the parts in reverse order), "total" (a Content-Range total one
                                     more than the file's size; also in "first-only" and "coalesce"),
                                     "length" (the first part's Content-Range announces a byte less than
                                     its part carries: a malformed multipart body)
    The cut, stall, flip and rate plans apply to the parts' file bytes as to a single range (cut_at=N cuts
    a multipart body when its part reaches file byte N); status plans come before any of them.

Counters per path: requests, bytes_sent (body bytes written to sockets), ranges (the Range header of
each request, or null), if_ranges (the If-Range header of each request, or null), auths (the
Authorization header of each request, or null), statuses, agents (User-Agent of each request), ports
(the client's port of each request: one port for requests on one connection).

Binds 127.0.0.1 only (or ::1 with host="::1").

make_tls_files(dir) writes a throw-away PKI for TLS tests (python3-cryptography): see its docstring.
"""

import argparse
import datetime
import email.utils
import ipaddress
import json
import os
import re
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHUNK = 256 * 1024
CONTROL = "/__control"
CONTROL_BODY_MAX = 1024 * 1024

_RANGE_RE = re.compile(r"^bytes=(\d{1,20})-(\d{0,20})$")
_SPEC_RE = re.compile(r"^(\d{1,20})-(\d{0,20})$")
RANGES_MAX = 1000  # ranges of one multi-range request
COALESCE_GAP = 1000  # multirange="coalesce-parts" merges ranges closer than this


class _Cut(Exception):
    """The plan says: cut this connection now."""


class _PathState:
    def __init__(self):
        self.plan = {}
        self.status_left = 0
        self.cut_points = []        # [offset, remaining times (-1: always)]
        self.stall_points = []      # [offset, seconds, remaining times]
        self.requests = 0
        self.bytes_sent = 0
        self.ranges = []
        self.if_ranges = []
        self.auths = []
        self.statuses = []
        self.status_after = 0
        self.agents = []
        self.ports = []
        self.redirect_left = 0

    def set_plan(self, plan):
        known = {"status", "status_times", "cut_at", "cut_times", "cut_every", "cut_mode", "stall_at",
                 "stall_seconds", "stall_times", "flip", "ignore_range", "content_range_shift", "extra",
                 "extra_mode", "rate", "redirect", "redirect_times", "status_after", "extra_only_partial",
                 "validators", "ignore_if_range", "multirange", "multirange_wrong"}
        unknown = set(plan) - known
        if unknown:
            raise ValueError(f"unknown plan keys: {sorted(unknown)}")
        self.plan = dict(plan)
        self.status_left = plan.get("status_times", 1) if "status" in plan else 0
        self.status_after = plan.get("status_after", 0)
        self.redirect_left = plan.get("redirect_times", -1) if "redirect" in plan else 0
        cut = plan.get("cut_at")
        if cut is None:
            self.cut_points = []
        elif isinstance(cut, int):
            self.cut_points = [[cut, plan.get("cut_times", 1)]]
        else:
            self.cut_points = [[int(c), 1] for c in cut]
        if "stall_at" in plan:
            self.stall_points = [[plan["stall_at"], float(plan.get("stall_seconds", 10)),
                                  plan.get("stall_times", 1)]]
        else:
            self.stall_points = []
        if plan.get("extra_mode", "announced") not in ("announced", "unannounced", "beyond"):
            raise ValueError("extra_mode must be announced, unannounced or beyond")
        if plan.get("cut_mode", "close") not in ("close", "reset"):
            raise ValueError("cut_mode must be close or reset")
        if plan.get("validators", "etag") not in ("etag", "date", "none"):
            raise ValueError("validators must be etag, date or none")
        if plan.get("multirange", "multipart") not in ("multipart", "first-only", "coalesce", "coalesce-parts",
                                                       "ignore"):
            raise ValueError("multirange must be multipart, first-only, coalesce, coalesce-parts or ignore")
        if plan.get("multirange_wrong") not in (None, "overlap", "outside", "order", "total", "length"):
            raise ValueError("multirange_wrong must be overlap, outside, order, total or length")

    def stats(self):
        return {"requests": self.requests, "bytes_sent": self.bytes_sent, "ranges": list(self.ranges),
                "if_ranges": list(self.if_ranges), "auths": list(self.auths),
                "statuses": list(self.statuses), "agents": list(self.agents),
                "ports": list(self.ports)}


class TestServer:
    """The server, run in a background thread. Also a context manager (stops on exit)."""

    __test__ = False  # not a pytest test class

    def __init__(self, root, host="127.0.0.1", port=0, tls=None, client_ca=None, tls12_ciphers=None):
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the test server binds the loopback interface only")
        self.root = Path(root).resolve()
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.tls = tls
        self.client_ca = client_ca
        self.tls12_ciphers = tls12_ciphers  # TLS 1.2 only, with just these OpenSSL cipher suites
        self._lock = threading.Lock()
        self._paths = {}
        self._stopping = threading.Event()
        self._httpd = None
        self._thread = None

    # --- lifecycle

    def start(self):
        server = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            request_queue_size = 64

            def handle_error(self, request, client_address):
                pass  # clients that go away are the point of this server

        class Handler(_Handler):
            srv = server

        self._httpd = Server((self.host, self.port), Handler)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            if self.tls12_ciphers:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                ctx.set_ciphers(self.tls12_ciphers)
            if self.client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(str(self.client_ca))
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                         name="httpserver", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self):
        return self.start() if not self._httpd else self

    def __exit__(self, *exc):
        self.stop()

    # --- plans and counters

    def url(self, path="/", host=None):
        scheme = "https" if self.tls else "http"
        h = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{h}:{self.port}{path}"

    def _state(self, path):
        st = self._paths.get(path)
        if st is None:
            st = self._paths[path] = _PathState()
        return st

    def plan(self, path, **plan):
        """Replace the plan of `path` (keywords: see the module docstring); no keywords clears it."""
        with self._lock:
            self._state(path).set_plan(plan)

    def reset(self):
        with self._lock:
            self._paths.clear()

    def stats(self, path):
        with self._lock:
            return self._state(path).stats()

    def all_stats(self):
        with self._lock:
            return {p: s.stats() for p, s in self._paths.items()}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "upkeep-testserver"
    sys_version = ""
    # Headers and body go out in separate writes: without TCP_NODELAY the body of every answer waits for
    # the client's delayed ACK (40 ms on Linux), which made a request cost 40 ms on 127.0.0.1.
    disable_nagle_algorithm = True
    srv = None  # set by TestServer.start()

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(30)
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                self.close_connection = True
                # A refused client certificate under TLS 1.3: the client has finished its side of the
                # handshake and sends its request. Read (and drop) what it sends until it closes, so it
                # always reads the alert and never races its write against our close.
                deadline = time.monotonic() + 10
                try:
                    while time.monotonic() < deadline:
                        if select.select([self.connection], [], [], 1)[0] and \
                                not socket.socket.recv(self.connection, 65536):
                            break
                except (OSError, ValueError):
                    pass
                raise

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, socket.timeout, _Cut):
            self.close_connection = True

    # --- control API

    def _json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if urlsplit(self.path).path != CONTROL:
            return self._json(404, {"error": "POST only to " + CONTROL})
        length = int(self.headers.get("Content-Length", "0"))
        if length < 0 or length > CONTROL_BODY_MAX:
            return self._json(413, {"error": "control request too large"})
        try:
            req = json.loads(self.rfile.read(length) or b"{}")
            if req.get("reset"):
                self.srv.reset()
            for path, plan in (req.get("plan") or {}).items():
                self.srv.plan(path, **plan)
        except (ValueError, TypeError) as e:
            return self._json(400, {"error": str(e)})
        return self._json(200, {"ok": True})

    # --- files

    def _file(self, urlpath):
        rel = unquote(urlpath).lstrip("/")
        p = (self.srv.root / rel).resolve()
        if p != self.srv.root and self.srv.root not in p.parents:
            return None
        return p if p.is_file() else None

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        path = urlsplit(self.path).path
        if path == CONTROL:
            return self._json(200, {"paths": self.srv.all_stats()})
        srv = self.srv
        rng = self.headers.get("Range")
        self._sent_here = 0
        with srv._lock:
            st = srv._state(path)
            st.requests += 1
            st.ranges.append(rng)
            st.if_ranges.append(self.headers.get("If-Range"))
            st.auths.append(self.headers.get("Authorization"))
            st.agents.append(self.headers.get("User-Agent"))
            st.ports.append(self.client_address[1])
            plan = dict(st.plan)
            forced = redirect = None
            if st.status_left != 0 and st.status_after > 0:
                st.status_after -= 1
            elif st.status_left != 0:
                forced = plan["status"]
                if st.status_left > 0:
                    st.status_left -= 1
            elif st.redirect_left != 0:
                redirect = plan["redirect"]
                if st.redirect_left > 0:
                    st.redirect_left -= 1

        if redirect is not None:
            return self._status(st, 302, "moved\n", {"Location": redirect})
        if forced is not None:
            return self._status(st, forced, f"planned status {forced}\n")
        fpath = self._file(path)
        if fpath is None:
            return self._status(st, 404, "not found\n")
        fst = fpath.stat()
        size = fst.st_size
        kind = plan.get("validators", "etag")
        validators = {}
        if kind == "etag":
            validators["ETag"] = f'"{fst.st_mtime_ns:x}-{size:x}"'
        if kind in ("etag", "date"):
            validators["Last-Modified"] = email.utils.formatdate(fst.st_mtime, usegmt=True)
        if_range = self.headers.get("If-Range")
        stale = if_range is not None and if_range not in validators.values() and \
            not plan.get("ignore_if_range")

        start, end, partial = 0, size - 1, False
        multi = rng is not None and "," in rng
        if multi and not plan.get("ignore_range") and not stale and plan.get("multirange") != "ignore":
            return self._multirange(st, plan, fpath, size, rng, validators, head)
        if rng is not None and not multi and not plan.get("ignore_range") and not stale:
            m = _RANGE_RE.match(rng.strip())
            if not m:
                return self._status(st, 416, "unsupported Range\n", {"Content-Range": f"bytes */{size}"})
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else size - 1
            end = min(end, size - 1)
            if start >= size or start > end:
                return self._status(st, 416, "range not satisfiable\n",
                                    {"Content-Range": f"bytes */{size}"})
            partial = True
        length = end - start + 1 if size else 0

        extra = int(plan.get("extra", 0))
        if plan.get("extra_only_partial") and not partial:
            extra = 0
        mode = plan.get("extra_mode", "announced")
        code = 206 if partial else 200
        with srv._lock:
            st.statuses.append(code)
        self.send_response(code)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        for k, v in validators.items():
            self.send_header(k, v)
        if partial:
            shown = start + int(plan.get("content_range_shift", 0))
            self.send_header("Content-Range", f"bytes {shown}-{end}/{size}")
        if extra and mode == "unannounced":
            self.send_header("Connection", "close")
            self.close_connection = True
        elif extra and mode == "announced":
            self.send_header("Content-Length", str(length + extra))
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if head:
            return
        self._send_body(st, plan, fpath, start, length)
        if extra:
            self._count_send(st, b"\xa5" * extra)
            if mode == "beyond":
                self.close_connection = True

    def _multirange(self, st, plan, fpath, size, rng, validators, head):
        """A request for several ranges, answered as plan["multirange"] says."""
        specs = rng.strip()[len("bytes="):].split(",") if rng.strip().startswith("bytes=") else []
        ranges = []
        for spec in specs:
            m = _SPEC_RE.match(spec.strip())
            if not m or len(specs) > RANGES_MAX:
                return self._status(st, 416, "unsupported Range\n", {"Content-Range": f"bytes */{size}"})
            a = int(m.group(1))
            b = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            if a >= size or a > b:
                return self._status(st, 416, "range not satisfiable\n", {"Content-Range": f"bytes */{size}"})
            ranges.append((a, b))
        mode = plan.get("multirange", "multipart")
        wrong = plan.get("multirange_wrong")
        shown_total = size + 1 if wrong == "total" else size
        if mode in ("first-only", "coalesce"):
            a, b = ranges[0][0], ranges[0][1] if mode == "first-only" else ranges[-1][1]
            with self.srv._lock:
                st.statuses.append(206)
            self.send_response(206)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            for k, v in validators.items():
                self.send_header(k, v)
            self.send_header("Content-Range", f"bytes {a}-{b}/{shown_total}")
            self.send_header("Content-Length", str(b - a + 1))
            self.end_headers()
            if not head:
                self._send_body(st, plan, fpath, a, b - a + 1)
            return
        parts = []
        for a, b in ranges:
            if mode == "coalesce-parts" and parts and a - parts[-1][1] - 1 < COALESCE_GAP:
                parts[-1] = (parts[-1][0], max(b, parts[-1][1]))
            else:
                parts.append((a, b))
        if wrong == "order":
            parts.reverse()
        elif wrong == "overlap" and len(parts) > 1:
            parts[1] = ((parts[0][0] + parts[0][1] + 1) // 2, parts[1][1])
        elif wrong == "outside":
            parts[-1] = (parts[-1][0], min(size - 1, parts[-1][1] + 10))
        boundary = "THIS_SEPARATES_" + os.urandom(6).hex()
        shown = [(a, b - 1 if wrong == "length" and i == 0 and b > a else b) for i, (a, b) in enumerate(parts)]
        heads = [(f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                  f"Content-Range: bytes {a}-{b}/{shown_total}\r\n\r\n").encode() for a, b in shown]
        heads = [heads[0]] + [b"\r\n" + h for h in heads[1:]]
        tail = f"\r\n--{boundary}--\r\n".encode()
        length = sum(len(h) for h in heads) + sum(b - a + 1 for a, b in parts) + len(tail)
        with self.srv._lock:
            st.statuses.append(206)
        self.send_response(206)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
        for k, v in validators.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if head:
            return
        for h, (a, b) in zip(heads, parts):
            self._count_send(st, h)
            self._send_body(st, plan, fpath, a, b - a + 1)
        self._count_send(st, tail)

    def _status(self, st, code, text, headers=None):
        body = text.encode()
        with self.srv._lock:
            st.statuses.append(code)
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # --- sending with events

    def _count_send(self, st, data):
        self.connection.sendall(data)
        with self.srv._lock:
            st.bytes_sent += len(data)

    def _next_event(self, st, plan, pos, end, sent_here):
        """The next offset in [pos, end) where something must happen, and what: ("cut"|"stall", index)."""
        best = (end, None, None)
        with self.srv._lock:
            for i, (off, times) in enumerate(st.cut_points):
                if times != 0 and pos <= off < best[0]:
                    best = (off, "cut", i)
            for i, (off, _secs, times) in enumerate(st.stall_points):
                if times != 0 and pos <= off < best[0]:
                    best = (off, "stall", i)
        every = plan.get("cut_every")
        if every:
            off = pos + max(0, every - sent_here)
            if off < best[0]:
                best = (off, "cut", None)
        return best

    def _cut(self, plan):
        if plan.get("cut_mode", "close") == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.close_connection = True
        raise _Cut()

    def _send_range(self, st, plan, f, start, count):
        """Send file bytes [start, start + count), with flips and rate limit applied."""
        flips = sorted(x for x in plan.get("flip", ()) if start <= x < start + count)
        rate = plan.get("rate")
        if not flips and not rate and not isinstance(self.connection, ssl.SSLSocket):
            sent = 0
            try:
                while sent < count:
                    n = os.sendfile(self.connection.fileno(), f.fileno(), start + sent, count - sent)
                    if n == 0:
                        break
                    sent += n
            finally:
                with self.srv._lock:
                    st.bytes_sent += sent
            return
        pos = start
        while pos < start + count:
            n = min(CHUNK if not rate else max(1, rate // 20), start + count - pos)
            f.seek(pos)
            data = bytearray(f.read(n))
            for x in flips:
                if pos <= x < pos + n:
                    data[x - pos] ^= 0xFF
            self._count_send(st, bytes(data))
            pos += n
            if rate:
                time.sleep(n / rate)

    def _send_body(self, st, plan, fpath, start, length):
        """File bytes [start, start + length) of the response (all of it, or one part of a multipart body);
        cut_every counts the body bytes of the whole response."""
        pos, end, sent_here = start, start + length, self._sent_here
        with open(fpath, "rb") as f:
            while pos < end:
                off, what, idx = self._next_event(st, plan, pos, end, sent_here)
                if off > pos:
                    self._send_range(st, plan, f, pos, off - pos)
                    sent_here += off - pos
                    self._sent_here = sent_here
                    pos = off
                if what is None:
                    continue
                if what == "cut":
                    if idx is not None:
                        with self.srv._lock:
                            if st.cut_points[idx][1] > 0:
                                st.cut_points[idx][1] -= 1
                    self._cut(plan)
                if what == "stall":
                    with self.srv._lock:
                        secs = st.stall_points[idx][1]
                        if st.stall_points[idx][2] > 0:
                            st.stall_points[idx][2] -= 1
                    self.srv._stopping.wait(secs)
                    if self.srv._stopping.is_set():
                        self._cut(plan)


# ------------------------------------------------------------------------------------------------------
# Certificates for the TLS tests


def make_tls_files(outdir):
    """Write into `outdir` (PEM, keys unencrypted), new keys on every call:
        ca.pem / ca.key                the test CA
        server.pem / server.key        by ca: CN and SAN localhost, IP 127.0.0.1 and ::1
        other-host.pem / .key          by ca: only the name "wrong.example" (host name mismatch)
        wrong-ca.pem / wrong-ca.key    an unrelated CA
        wrong-server.pem / .key        by wrong-ca, for localhost / 127.0.0.1 (unknown CA)
        client-ca.pem / client-ca.key  the CA the server requires client certificates from
        client.pem / client.key        by client-ca, clientAuth
        rsa-server.pem / .key          by ca, an RSA key (for cipher suites with RSA key exchange)
    Returns a dict name → Path."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    later = now + datetime.timedelta(days=30)
    files = {}

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "upkeep fetch tests"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem, key, cert):
        (out / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (out / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[stem] = out / f"{stem}.pem"
        files[stem + "-key"] = out / f"{stem}.key"

    def ca(stem, cn):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(later)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        write(stem, key, cert)
        return key, cert

    def leaf(stem, cn, issuer, dns=(), ips=(), client=False, use_rsa=False):
        ikey, icert = issuer
        key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if use_rsa
               else ec.generate_private_key(ec.SECP256R1()))
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(icert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now).not_valid_after(later)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                   else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ikey.public_key()),
                            critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        write(stem, key, b.sign(ikey, hashes.SHA256()))

    good = ca("ca", "upkeep fetch test CA")
    wrong = ca("wrong-ca", "unrelated CA")
    client_ca = ca("client-ca", "upkeep fetch client CA")
    leaf("server", "localhost", good, dns=["localhost"], ips=["127.0.0.1", "::1"])
    leaf("other-host", "wrong.example", good, dns=["wrong.example"])
    leaf("wrong-server", "localhost", wrong, dns=["localhost"], ips=["127.0.0.1", "::1"])
    leaf("client", "device-0001", client_ca, client=True)
    leaf("rsa-server", "localhost", good, dns=["localhost"], ips=["127.0.0.1", "::1"], use_rsa=True)
    return files


# ------------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description="upkeep's misbehaving test HTTP(S) server")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "::1"])
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--client-ca")
    ap.add_argument("--plan", action="append", default=[], metavar="PATH=JSON",
                    help="an initial plan, e.g. /f.bin='{\"cut_at\": 1000}'")
    args = ap.parse_args()

    srv = TestServer(args.dir, host=args.host, port=args.port, tls=args.tls, client_ca=args.client_ca)
    for p in args.plan:
        path, _, js = p.partition("=")
        srv.plan(path, **json.loads(js))
    srv.start()
    print(srv.port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(1):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
