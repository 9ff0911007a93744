#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""An Eclipse hawkBit DDI server emulator for the tests, written from the project's DDI reference
(shared/reference/hawkbit-ddi.md): tenants, target and gateway tokens, the action state machine with its
404/405/410 rules, forced / soft / time-forced / download-only actions, maintenance windows, consent with
auto-confirm, cancel, configData storage, ETag/304 on the poll, Range downloads (several ranges in one
request answered multipart/byteranges, as hawkBit does) with cuts and throttling,
and misbehaviour on request. Every request and every feedback is recorded for the tests to assert on.

In process (pytest):

    emu = Emulator().start()                      # 127.0.0.1, a free port
    t = emu.target("dev1", token="tok")           # tenant DEFAULT; or emu.tenant("DEFAULT").gateway = "gw"
    sm = emu.module(part="os", name="fw", version="1.1.0", artifacts={"b.upk": data})
    a = emu.assign("dev1", [sm], kind="forced")   # soft | timeforced (force_after=S) | downloadonly
    ... upkeepd polls emu.url() ...
    emu.feedback(a.id)        -> [{"kind": "deployment", "execution": ..., "finished": ..., "body": ...}]
    emu.action(a.id).status   -> "RUNNING" | "CANCELING" | "FINISHED" | ...
    emu.fault("poll", status=503, times=2, body="<html>..", content_type="text/html")
    emu.stop()

or as a program (tools/demo): `hawkbit_emu.py --port 0 [--gateway-token T] [--bundle FILE --version V]`
prints the port and serves until SIGTERM; `GET /_emu/state` returns the targets, actions and feedback.

Fault kinds (the resource a request is for): poll, deploymentBase, deploymentFeedback, cancelAction,
cancelFeedback, installedBase, configData, confirmationBase, confirmationFeedback, autoConfirm,
download, any. A fault answers `status` (with `body`, `content_type`, `headers`, e.g. Retry-After) `times`
times (-1: always); status 200 with `body` serves that body in place of the real one (malformed JSON,
an empty body, a huge body). Download plans per artifact: cut_at (close once the body reached byte N),
rate (bytes per second), ignore_range, stall_at + stall_seconds (stop sending at byte N until the client
gives up or the seconds pass, then close; the outcome is in the artifact's `stalls`), replace_at_cut (the artifact's new bytes from the moment of the
cut: the operator replaced it, with new hashes in the next deploymentBase).

Binds 127.0.0.1 (or ::1) only.
"""

import argparse
import hashlib
import json
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

BODY_MAX = 1024 * 1024
EXECUTIONS = ("closed", "proceeding", "canceled", "scheduled", "rejected", "resumed", "downloaded",
              "download")
FINISHED = ("success", "failure", "none")
ACTIVE = ("RUNNING", "WAIT_FOR_CONFIRMATION", "CANCELING")
STATUS_QUOTA = 1000
MESSAGES_QUOTA = 50
ATTRIBUTES_QUOTA = 100
ATTRIBUTE_LEN_MAX = 128
_ATTR_RE = re.compile(r"^[A-Za-z0-9_\-!@#$%^&*()+=\[\]{}|;:'\",.<>/\\?\s]*$")
_RANGE_SPEC_RE = re.compile(r"^(\d{0,20})-(\d{0,20})$")
RANGES_MAX = 1000  # ranges in one request; more: 416
FAULT_KINDS = {"poll", "deploymentBase", "deploymentFeedback", "cancelAction", "cancelFeedback",
               "installedBase", "configData", "confirmationBase", "confirmationFeedback", "autoConfirm",
               "download", "any"}


class _Cut(Exception):
    pass


class Tenant:
    def __init__(self, name):
        self.name = name
        self.gateway = None            # the gateway token; None: gateway-token auth off
        self.target_tokens = True      # target-token auth on
        self.anonymous = False         # no Authorization needed (old servers; tests of auth = none)
        self.mtls = False              # a client certificate whose CN is the controller id authenticates
        self.sleep = "00:05:00"        # config.polling.sleep as served (any string, for misbehaviour)
        self.confirmation_flow = False
        self.autoclose = False
        self.quota_status = 429        # 403: servers before 0.10.0
        self.legacy_id = False         # feedback needs "id" (servers up to 0.3.0M7)
        self.link_rels = ("download", "download-http")
        self.links_missing = False     # serve a poll without _links at all


class Target:
    def __init__(self, tenant, cid, token=None):
        self.tenant = tenant
        self.cid = cid
        self.token = token
        self.attributes = {}
        self.request_attributes = True
        self.installed_action = None   # id of the last FINISHED action
        self.installed_ds = None       # (name, version)
        self.installation_date = 0     # epoch ms
        self.update_status = "REGISTERED"
        self.auto_confirm = None       # {"initiator", "remark", "activatedAt"}
        self.polls = 0


class Artifact:
    def __init__(self, filename, data, sha256=None, size=None):
        self.filename = filename
        self.data = data
        self.sha1 = hashlib.sha1(data).hexdigest()
        self.md5 = hashlib.md5(data).hexdigest()
        self.sha256 = sha256 if sha256 is not None else hashlib.sha256(data).hexdigest()
        self.size = len(data) if size is None else size
        self.plan = {}
        self.requests = []             # the Range header of each download request (or None)
        self.if_ranges = []            # the If-Range header of each download request (or None)
        self.stalls = []               # per planned stall: "client gave up" or "server closed"
        self.bytes_sent = 0

    def replace(self, data):
        self.data = data
        self.sha1 = hashlib.sha1(data).hexdigest()
        self.md5 = hashlib.md5(data).hexdigest()
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.size = len(data)


class Module:
    def __init__(self, mid, part, name, version, artifacts, encrypted=False, metadata=None):
        self.id = mid
        self.part = part
        self.name = name
        self.version = version
        self.artifacts = artifacts     # [Artifact]
        self.encrypted = encrypted
        self.metadata = metadata


class Action:
    def __init__(self, aid, target, modules, kind, force_time, window, weight, confirm):
        self.id = aid
        self.target = target
        self.modules = modules
        self.kind = kind               # forced | soft | timeforced | downloadonly
        self.force_time = force_time   # timeforced: emulator clock seconds
        self.window = window           # None | "available" | "unavailable" | "lapsed"
        self.weight = weight
        self.status = "WAIT_FOR_CONFIRMATION" if confirm else "RUNNING"
        self.retrieved = False
        self.history = []              # [(status, messages, code)] as the server stored them
        self.ds = (modules[0].name, modules[0].version) if modules else ("empty", "0")

    @property
    def active(self):
        return self.status in ACTIVE


class Emulator:
    """The DDI server in a background thread. Also a context manager."""

    __test__ = False

    def __init__(self, host="127.0.0.1", port=0, tls=None, client_ca=None):
        if host not in ("127.0.0.1", "::1"):
            raise ValueError("the emulator binds the loopback interface only")
        self.host, self.port, self.tls, self.client_ca = host, port, tls, client_ca
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.tenants = {}
        self.targets = {}
        self.modules = {}
        self.actions = {}
        self.requests = []             # every request: {"method", "path", "query", "auth", "status", ...}
        self.feedbacks = []            # every feedback body accepted or refused, in arrival order
        self.faults = []
        self.clock_offset = 0.0
        self._next_action = 1
        self._next_module = 1
        self._httpd = None
        self._thread = None
        self.tenant("DEFAULT")

    # --- lifecycle

    def start(self):
        emu = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

            def handle_error(self, request, client_address):
                pass

        class Handler(_Handler):
            srv = emu

        self._httpd = Server((self.host, self.port), Handler)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            if self.client_ca:
                ctx.verify_mode = ssl.CERT_OPTIONAL
                ctx.load_verify_locations(str(self.client_ca))
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                         name="hawkbit-emu", daemon=True)
        self._thread.start()
        return self

    def stop(self):
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

    def url(self, path="/"):
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{h}:{self.port}{path}"

    def now(self):
        return time.time() + self.clock_offset

    def advance(self, seconds):
        """Move the emulator's clock (time-forced actions)."""
        with self.lock:
            self.clock_offset += seconds

    # --- scripting

    def tenant(self, name):
        with self.lock:
            key = name.lower()
            if key not in self.tenants:
                self.tenants[key] = Tenant(name)
            return self.tenants[key]

    def target(self, cid, token=None, tenant="DEFAULT"):
        """Create (or get) a target; `token`: its target security token."""
        with self.lock:
            t = self.targets.get((tenant.lower(), cid))
            if t is None:
                t = self.targets[(tenant.lower(), cid)] = Target(tenant.lower(), cid, token)
            elif token is not None:
                t.token = token
            return t

    def module(self, artifacts, part="os", name="upkeep", version="1.1.0", encrypted=False, metadata=None,
               hashes=None, sizes=None):
        """A software module; `artifacts` maps file names to bytes (in order); `hashes` maps a file name
        to a wrong sha256 to advertise, `sizes` to a wrong size."""
        with self.lock:
            arts = [Artifact(fn, data, sha256=(hashes or {}).get(fn), size=(sizes or {}).get(fn))
                    for fn, data in artifacts.items()]
            m = Module(self._next_module, part, name, version, arts, encrypted, metadata)
            self._next_module += 1
            self.modules[m.id] = m
            return m

    def assign(self, cid, modules, kind="forced", force_after=None, window=None, weight=None,
               confirm=None, tenant="DEFAULT"):
        """Assign a distribution (the modules) to a target: a new action. Older active actions become
        CANCELING (or CANCELED silently with the tenant's autoclose)."""
        assert kind in ("forced", "soft", "timeforced", "downloadonly"), kind
        with self.lock:
            t = self.target(cid, tenant=tenant)
            ten = self.tenant(tenant)
            for old in self._actions_of(t):
                if old.active:
                    if ten.autoclose:
                        self._set_status(old, "CANCELED", ["cancel obsolete action due to new update"])
                    elif old.status != "CANCELING":
                        self._set_status(old, "CANCELING", ["cancel obsolete action due to new update"])
            if confirm is None:
                confirm = ten.confirmation_flow
            if confirm and t.auto_confirm:
                confirm = False
            force_time = self.now() + force_after if kind == "timeforced" else None
            a = Action(self._next_action, t, list(modules), kind, force_time, window, weight, confirm)
            self._next_action += 1
            self.actions[a.id] = a
            t.update_status = "PENDING"
            self.changed.notify_all()
            return a

    def action(self, aid):
        with self.lock:
            return self.actions[aid]

    def cancel(self, aid):
        """The operator cancels an action: CANCELING (the device sees cancelAction)."""
        with self.lock:
            a = self.actions[aid]
            if a.active:
                self._set_status(a, "CANCELING", ["operator cancel"])

    def force_quit(self, aid):
        with self.lock:
            self._set_status(self.actions[aid], "CANCELED", ["force quit"])

    def force(self, aid):
        """A soft or time-forced action becomes forced (its `c` changes)."""
        with self.lock:
            self.actions[aid].kind = "forced"
            self.changed.notify_all()

    def set_window(self, aid, window):
        """None (no window), "available", "unavailable" or "lapsed" (the next poll cancels the action)."""
        with self.lock:
            self.actions[aid].window = window
            self.changed.notify_all()

    def fault(self, kind, status=503, times=1, body=None, content_type=None, headers=None):
        assert kind in FAULT_KINDS, kind
        with self.lock:
            self.faults.append({"kind": kind, "status": status, "times": times, "body": body,
                                "content_type": content_type, "headers": dict(headers or {})})

    def clear_faults(self):
        with self.lock:
            self.faults.clear()

    def plan_download(self, module, filename, **plan):
        known = {"cut_at", "cut_times", "rate", "ignore_range", "replace_at_cut", "stall_at", "stall_seconds"}
        assert set(plan) <= known, set(plan) - known
        with self.lock:
            art = next(a for a in module.artifacts if a.filename == filename)
            art.plan = dict(plan)
            art.plan.setdefault("cut_times", 1)

    # --- inspection

    def feedback(self, aid=None, kind=None):
        with self.lock:
            return [f for f in self.feedbacks if (aid is None or f["action"] == aid) and
                    (kind is None or f["kind"] == kind)]

    def requests_to(self, resource):
        with self.lock:
            return [r for r in self.requests if r["resource"] == resource]

    def wait_for(self, pred, timeout=60, what="a condition"):
        """Wait until pred() (called under the lock) is true; woken by every request."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"hawkBit emulator: timed out waiting for {what}; "
                                         f"requests: {self.requests[-20:]}")
                self.changed.wait(min(left, 0.5))

    def snapshot(self):
        with self.lock:
            return {
                "targets": {f"{t.tenant}/{t.cid}": {"attributes": t.attributes,
                                                    "installed_ds": t.installed_ds,
                                                    "update_status": t.update_status,
                                                    "auto_confirm": t.auto_confirm}
                            for t in self.targets.values()},
                "actions": {a.id: {"status": a.status, "kind": a.kind, "history": a.history}
                            for a in self.actions.values()},
                "feedback": self.feedbacks,
            }

    # --- the model (called with the lock held)

    def _actions_of(self, t):
        return [a for a in self.actions.values() if a.target is t]

    def _set_status(self, a, status, messages, code=None):
        a.status = status
        a.history.append((status, list(messages), code))
        self.changed.notify_all()

    def _current(self, t):
        """The one action DDI shows: the highest weight, else the oldest active one. A lapsed
        maintenance schedule cancels its action here."""
        for a in self._actions_of(t):
            if a.active and a.window == "lapsed" and a.status != "CANCELING":
                self._set_status(a, "CANCELING", ["maintenance schedule lapsed"])
        active = [a for a in self._actions_of(t) if a.active]
        if not active:
            return None
        if any(a.weight is not None for a in active):
            return max(active, key=lambda a: (a.weight or 0, -a.id))
        return min(active, key=lambda a: a.id)

    def _forced_now(self, a):
        return a.kind == "forced" or (a.kind == "timeforced" and self.now() >= a.force_time)

    def _c(self, a):
        key = f"{a.id}:{self._forced_now(a)}:{a.window == 'available'}:{a.kind}".encode()
        return str(zlib.crc32(key) - 2 ** 31)

    def _deployment(self, a, base, t):
        if a.kind == "downloadonly":
            download, update = "forced", "skip"
        elif self._forced_now(a):
            download, update = "forced", "forced"
        else:
            download, update = "attempt", "attempt"
        if a.window == "unavailable":
            update = "skip"
        dep = {"download": download, "update": update}
        if a.window in ("available", "unavailable"):
            dep["maintenanceWindow"] = a.window
        ten = self.tenant(t.tenant)
        chunks = []
        for m in a.modules:
            arts = []
            for art in m.artifacts:
                href = f"{base}/softwaremodules/{m.id}/artifacts/{quote(art.filename)}"
                links = {}
                for rel in ten.link_rels:
                    links[rel] = {"href": href}
                    if rel in ("download", "download-http"):
                        links["md5sum" + rel[8:]] = {"href": href + ".MD5SUM"}
                hashes = {"sha1": art.sha1, "md5": art.md5}
                if art.sha256:
                    hashes["sha256"] = art.sha256
                arts.append({"filename": art.filename, "hashes": hashes, "size": art.size,
                             "_links": links})
            chunk = {"part": m.part, "version": m.version, "name": m.name, "artifacts": arts}
            if m.encrypted:
                chunk["encrypted"] = True
            if m.metadata:
                chunk["metadata"] = [{"key": k, "value": v} for k, v in m.metadata.items()]
            chunks.append(chunk)
        dep["chunks"] = chunks
        return dep


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hawkbit-emulator"
    sys_version = ""
    srv = None

    def log_message(self, fmt, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, socket.timeout, _Cut):
            self.close_connection = True

    # --- responses

    def _send(self, code, body=b"", content_type=None, headers=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body:
            self.send_header("Content-Type", content_type or "application/hal+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.rec["status"] = code
        return code

    def _json(self, obj, etag=False):
        body = json.dumps(obj).encode()
        headers = {}
        if etag:
            tag = '"0' + hashlib.md5(body).hexdigest() + '"'
            headers["ETag"] = tag
            if self.headers.get("If-None-Match") == tag:
                self.send_response(304)
                self.send_header("ETag", tag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.rec["status"] = 304
                return 304
        return self._send(200, body, "application/hal+json", headers)

    def _error(self, code, error_code=None, message=""):
        if not error_code:
            return self._send(code)
        return self._send(code, json.dumps({"exceptionClass": "emulated", "errorCode": error_code,
                                            "message": message}), "application/json")

    # --- requests

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > BODY_MAX:
            raise ValueError("body too large")
        return self.rfile.read(n)

    def _dispatch(self, method):
        emu = self.srv
        u = urlsplit(self.path)
        parts = [unquote(p) for p in u.path.split("/") if p]
        self.rec = {"method": method, "path": u.path, "query": u.query, "resource": "unknown",
                    "auth": self.headers.get("Authorization"), "range": self.headers.get("Range"),
                    "if_none_match": self.headers.get("If-None-Match"), "status": None,
                    "accept": self.headers.get("Accept"), "time": time.time()}
        try:
            raw = self._body() if method in ("POST", "PUT") else b""
        except ValueError:
            self.close_connection = True
            return self._send(413)
        if parts[:2] == ["_emu", "state"]:
            return self._json(emu.snapshot())
        with emu.lock:
            emu.requests.append(self.rec)
            try:
                self._route(method, parts, u, raw)
            finally:
                emu.changed.notify_all()

    def _resource(self, rest):
        if not rest:
            return "poll"
        head = rest[0]
        if head == "deploymentBase":
            return "deploymentFeedback" if rest[-1] == "feedback" else "deploymentBase"
        if head == "cancelAction":
            return "cancelFeedback" if rest[-1] == "feedback" else "cancelAction"
        if head == "confirmationBase":
            if len(rest) >= 2 and rest[1] in ("activateAutoConfirm", "deactivateAutoConfirm"):
                return "autoConfirm"
            return "confirmationFeedback" if rest[-1] == "feedback" else "confirmationBase"
        if head == "softwaremodules":
            return "download"
        if head in ("installedBase", "configData"):
            return head
        return "unknown"

    def _take_fault(self, resource):
        emu = self.srv
        for f in emu.faults:
            if f["times"] != 0 and f["kind"] in (resource, "any"):
                if f["times"] > 0:
                    f["times"] -= 1
                return f
        return None

    def _auth(self, ten, cid):
        """The target this request may act as, or None (401)."""
        emu = self.srv
        t = emu.targets.get((ten.name.lower(), cid))
        auth = self.headers.get("Authorization") or ""
        if ten.mtls and isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
            if cert:
                cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
                if cn and cn[0] == cid:
                    self.rec["auth_mode"] = "mtls"
                    return t or emu.target(cid, tenant=ten.name)
        if auth.startswith("TargetToken ") and ten.target_tokens:
            if t and t.token and auth[len("TargetToken "):] == t.token:
                self.rec["auth_mode"] = "target-token"
                return t
        if auth.startswith("GatewayToken ") and ten.gateway:
            if auth[len("GatewayToken "):] == ten.gateway:
                self.rec["auth_mode"] = "gateway-token"
                return t or emu.target(cid, tenant=ten.name)
        if ten.anonymous:
            self.rec["auth_mode"] = "anonymous"
            return t or emu.target(cid, tenant=ten.name)
        return None

    def _route(self, method, parts, u, raw):
        emu = self.srv
        if len(parts) < 4 or parts[1:3] != ["controller", "v1"]:
            return self._error(404)
        ten = emu.tenants.get(parts[0].lower())
        cid = parts[3]
        rest = parts[4:]
        resource = self.rec["resource"] = self._resource(rest)
        self.rec["cid"] = cid
        f = self._take_fault(resource)
        if f is not None and f["status"] != 200:
            return self._send(f["status"], f["body"] or b"", f["content_type"] or "text/html",
                              f["headers"])
        if ten is None:
            return self._error(404)
        if not cid or len(cid) > 256 or any(c.isspace() for c in cid):
            return self._error(400, "hawkbit.server.error.rest.param.invalid", "bad controller id")
        t = self._auth(ten, cid)
        if t is None:
            return self._error(401)
        t.polls += 1
        host = self.headers.get("Host") or f"{emu.host}:{emu.port}"
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        base = f"{scheme}://{host}/{ten.name}/controller/v1/{quote(cid)}"
        self.fault_body = f["body"] if f is not None else None
        handler = {
            "poll": self._poll, "deploymentBase": self._deployment_base,
            "deploymentFeedback": self._deployment_feedback, "cancelAction": self._cancel_action,
            "cancelFeedback": self._cancel_feedback, "installedBase": self._installed_base,
            "configData": self._config_data, "confirmationBase": self._confirmation_base,
            "confirmationFeedback": self._confirmation_feedback, "autoConfirm": self._auto_confirm,
            "download": self._download,
        }.get(resource)
        if handler is None:
            return self._error(404)
        return handler(method, ten, t, rest, base, raw)

    def _serve_json(self, obj, etag=False):
        if self.fault_body is not None:
            return self._send(200, self.fault_body, "application/hal+json")
        return self._json(obj, etag)

    def _action_id(self, t, rest, i=1):
        try:
            a = self.srv.actions.get(int(rest[i]))
        except (IndexError, ValueError):
            return None
        return a if a is not None and a.target is t else None

    # --- the resources

    def _poll(self, method, ten, t, rest, base, raw):
        emu = self.srv
        if method != "GET":
            return self._error(405)
        links = {}
        a = emu._current(t)
        if a is not None:
            if a.status == "WAIT_FOR_CONFIRMATION":
                links["confirmationBase"] = {"href": f"{base}/confirmationBase/{a.id}?c={emu._c(a)}"}
            elif a.status == "CANCELING":
                links["cancelAction"] = {"href": f"{base}/cancelAction/{a.id}"}
            else:
                links["deploymentBase"] = {"href": f"{base}/deploymentBase/{a.id}?c={emu._c(a)}"}
        if t.installed_action is not None:
            links["installedBase"] = {"href": f"{base}/installedBase/{t.installed_action}"}
        if t.request_attributes:
            links["configData"] = {"href": f"{base}/configData"}
        body = {"config": {"polling": {"sleep": ten.sleep}}}
        if not ten.links_missing:
            body["_links"] = links
        return self._serve_json(body, etag=True)

    def _deployment_base(self, method, ten, t, rest, base, raw):
        emu = self.srv
        if method != "GET":
            return self._error(405)
        emu._current(t)
        a = self._action_id(t, rest)
        if a is None or a.status not in ("RUNNING",):
            return self._error(404)
        if not a.retrieved:
            a.retrieved = True
            a.history.append(("RETRIEVED", ["Target retrieved update action and should start now the "
                                            "download."], None))
        body = {"id": str(a.id), "deployment": emu._deployment(a, base, t)}
        return self._serve_json(body)

    def _parse_feedback(self, ten, a, raw, kind):
        """The body checked like hawkBit's Jackson model: (execution, finished, details, body) or an
        answered error (an int)."""
        emu = self.srv
        rec = {"kind": kind, "action": a.id if a else None, "raw": raw.decode("utf-8", "replace"),
               "content_type": self.headers.get("Content-Type"), "time": time.time(), "accepted": False}
        emu.feedbacks.append(rec)
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() not in ("application/json",
                                                                                  "application/cbor"):
            return self._error(415)
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as e:
            return self._error(400, "hawkbit.server.error.rest.body.notReadable", str(e))
        rec["body"] = body
        if kind == "confirmation":
            rec["confirmation"] = body.get("confirmation")
            if body.get("confirmation") not in ("confirmed", "denied"):
                return self._error(400, "hawkbit.server.error.rest.body.notReadable", "confirmation")
            return body
        status = body.get("status")
        result = status.get("result") if isinstance(status, dict) else None
        if not isinstance(result, dict) or status.get("execution") not in EXECUTIONS or \
                result.get("finished") not in FINISHED:
            return self._error(400, "hawkbit.server.error.rest.body.notReadable", "status")
        details = status.get("details", [])
        if not isinstance(details, list) or not all(isinstance(d, str) for d in details):
            return self._error(400, "hawkbit.server.error.rest.body.notReadable", "details")
        if ten.legacy_id and str(body.get("id")) != str(a.id if a else ""):
            return self._error(404)
        if len(details) > MESSAGES_QUOTA:
            return self._error(ten.quota_status, "hawkbit.server.error.quota.tooManyEntries", "details")
        rec["execution"] = status["execution"]
        rec["finished"] = result["finished"]
        rec["details"] = details
        rec["progress"] = result.get("progress")
        rec["code"] = status.get("code")
        rec["timestamp"] = body.get("timestamp")
        rec["id"] = body.get("id")
        return body

    def _deployment_feedback(self, method, ten, t, rest, base, raw):
        emu = self.srv
        if method != "POST" or len(rest) != 3:
            return self._error(405)
        a = self._action_id(t, rest)
        body = self._parse_feedback(ten, a, raw, "deployment")
        if isinstance(body, int):
            return body
        rec = emu.feedbacks[-1]
        if a is None or a.status == "WAIT_FOR_CONFIRMATION":
            return self._error(404)
        if not a.active:
            return self._error(410)
        ex, fin = rec["execution"], rec["finished"]
        if ex not in ("closed",) and len(a.history) >= STATUS_QUOTA:
            return self._error(ten.quota_status, "hawkbit.server.error.quota.tooManyEntries", "statuses")
        rec["accepted"] = True
        msgs, code = rec["details"], rec["code"]
        if ex == "closed" and fin in ("success", "none"):
            self._finish(a, t, rec, msgs, code)
        elif ex == "closed":
            emu._set_status(a, "ERROR", msgs, code)
            t.update_status = "ERROR"
        elif ex == "downloaded" and a.kind == "downloadonly":
            emu._set_status(a, "DOWNLOADED", msgs, code)
            t.update_status = "IN_SYNC"
            t.request_attributes = True
        else:
            name = {"download": "DOWNLOAD", "downloaded": "DOWNLOADED", "rejected": "WARNING",
                    "canceled": "CANCELED"}.get(ex, "RUNNING")
            a.history.append((name, msgs, code))
        return self._send(200)

    def _finish(self, a, t, rec, msgs, code):
        emu = self.srv
        emu._set_status(a, "FINISHED", msgs, code)
        ts = rec.get("timestamp")
        if isinstance(ts, int) and ts <= t.installation_date:
            return  # an older timestamp (a device clock in 1970) does not move the installed DS
        t.installation_date = ts if isinstance(ts, int) else int(emu.now() * 1000)
        t.installed_action = a.id
        t.installed_ds = a.ds
        t.update_status = "IN_SYNC"
        t.request_attributes = True

    def _cancel_action(self, method, ten, t, rest, base, raw):
        if method != "GET" or len(rest) != 2:
            return self._error(405)
        a = self._action_id(t, rest)
        if a is None or a.status not in ("CANCELING", "CANCELED"):
            return self._error(404)
        a.history.append(("RETRIEVED", ["cancel retrieved"], None))
        return self._serve_json({"id": str(a.id), "cancelAction": {"stopId": str(a.id)}})

    def _cancel_feedback(self, method, ten, t, rest, base, raw):
        emu = self.srv
        if method != "POST" or len(rest) != 3:
            return self._error(405)
        a = self._action_id(t, rest)
        body = self._parse_feedback(ten, a, raw, "cancel")
        if isinstance(body, int):
            return body
        rec = emu.feedbacks[-1]
        if a is None:
            return self._error(404)
        if a.status not in ("CANCELING", "CANCELED"):
            return self._error(405, "hawkbit.server.error.action.notCancelable", "not canceling")
        rec["accepted"] = True
        ex, fin = rec["execution"], rec["finished"]
        if a.status == "CANCELED":
            return self._send(200)
        if ex == "closed" and fin in ("success", "none"):
            emu._set_status(a, "CANCELED", rec["details"], rec["code"])
            t.update_status = "IN_SYNC" if t.installed_ds else "REGISTERED"
        elif ex == "rejected":
            emu._set_status(a, "RUNNING", ["CANCEL_REJECTED"] + rec["details"], rec["code"])
        elif ex == "closed":
            emu._set_status(a, "RUNNING", ["ERROR"] + rec["details"], rec["code"])
        elif ex == "canceled":
            a.history.append(("WARNING", ["canceled is not supported"] + rec["details"], rec["code"]))
        else:
            a.history.append(("RUNNING", rec["details"], rec["code"]))
        return self._send(200)

    def _installed_base(self, method, ten, t, rest, base, raw):
        emu = self.srv
        if method == "PUT" and len(rest) == 1:
            return self._error(404)  # no offline assignment in the emulator
        if method != "GET" or len(rest) != 2:
            return self._error(405)
        a = self._action_id(t, rest)
        if a is None or a.status != "FINISHED":
            return self._error(404)
        return self._serve_json({"id": str(a.id), "deployment": emu._deployment(a, base, t)})

    def _config_data(self, method, ten, t, rest, base, raw):
        emu = self.srv
        if method != "PUT" or len(rest) != 1:
            return self._error(405)
        rec = {"kind": "configData", "action": None, "raw": raw.decode("utf-8", "replace"),
               "time": time.time(), "accepted": False}
        emu.feedbacks.append(rec)
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._error(415)
        try:
            body = json.loads(raw)
            data = body["data"]
            mode = body.get("mode", "merge")
            if not isinstance(data, dict) or not data or mode not in ("merge", "replace", "remove"):
                raise ValueError("data")
        except (ValueError, KeyError, TypeError) as e:
            return self._error(400, "hawkbit.server.error.rest.body.notReadable", str(e))
        rec["body"] = body
        for k, v in data.items():
            if len(k) > ATTRIBUTE_LEN_MAX or not _ATTR_RE.match(k) or \
                    (v is not None and (not isinstance(v, str) or len(v) > ATTRIBUTE_LEN_MAX or
                                        not _ATTR_RE.match(v))):
                return self._error(400, "hawkbit.server.error.repo.invalidTargetAttributes", k)
        new = dict(t.attributes) if mode != "replace" else {}
        for k, v in data.items():
            if mode == "remove" or v is None:
                new.pop(k, None)
            else:
                new[k] = v
        if len(new) > ATTRIBUTES_QUOTA:
            return self._error(ten.quota_status, "hawkbit.server.error.quota.tooManyEntries", "attributes")
        t.attributes = new
        t.request_attributes = False
        rec["accepted"] = True
        return self._send(200)

    def _confirmation_base(self, method, ten, t, rest, base, raw):
        emu = self.srv
        if method != "GET":
            return self._error(405)
        a = emu._current(t)
        if len(rest) == 1:
            body = {"autoConfirm": dict({"active": True}, **t.auto_confirm) if t.auto_confirm
                    else {"active": False}}
            links = {}
            if t.auto_confirm:
                links["deactivateAutoConfirm"] = {"href": f"{base}/confirmationBase/deactivateAutoConfirm"}
            else:
                links["activateAutoConfirm"] = {"href": f"{base}/confirmationBase/activateAutoConfirm"}
            if a is not None and a.status == "WAIT_FOR_CONFIRMATION":
                links["confirmationBase"] = {"href": f"{base}/confirmationBase/{a.id}?c={emu._c(a)}"}
            body["_links"] = links
            return self._serve_json(body)
        a = self._action_id(t, rest)
        if a is None or a.status != "WAIT_FOR_CONFIRMATION":
            return self._error(404)
        return self._serve_json({"id": str(a.id), "confirmation": emu._deployment(a, base, t),
                                 "actionHistory": {"status": "WAIT_FOR_CONFIRMATION", "messages": []}})

    def _confirmation_feedback(self, method, ten, t, rest, base, raw):
        emu = self.srv
        if method != "POST" or len(rest) != 3:
            return self._error(405)
        a = self._action_id(t, rest)
        body = self._parse_feedback(ten, a, raw, "confirmation")
        if isinstance(body, int):
            return body
        rec = emu.feedbacks[-1]
        if a is None:
            return self._error(404)
        if not a.active:
            return self._error(410)
        c = body["confirmation"]
        if c == "confirmed" and a.status == "WAIT_FOR_CONFIRMATION":
            emu._set_status(a, "RUNNING", ["confirmed"] + list(body.get("details") or []), body.get("code"))
        elif c == "denied" and a.status == "WAIT_FOR_CONFIRMATION":
            a.history.append(("WAIT_FOR_CONFIRMATION", ["denied"] + list(body.get("details") or []),
                              body.get("code")))
        elif c == "denied" and a.status == "RUNNING" and ten.confirmation_flow:
            emu._set_status(a, "WAIT_FOR_CONFIRMATION", ["consent revoked"], body.get("code"))
        else:
            return self._error(404)
        rec["accepted"] = True
        return self._send(200)

    def _auto_confirm(self, method, ten, t, rest, base, raw):
        emu = self.srv
        if method != "POST" or len(rest) != 2:
            return self._error(405)
        rec = {"kind": rest[1], "action": None, "raw": raw.decode("utf-8", "replace"), "time": time.time(),
               "accepted": False}
        emu.feedbacks.append(rec)
        if rest[1] == "deactivateAutoConfirm":
            t.auto_confirm = None
            rec["accepted"] = True
            return self._send(200)
        if t.auto_confirm:
            return self._error(409, "hawkbit.server.error.repo.autoConfAlreadyActive", "already active")
        body = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                return self._error(400, "hawkbit.server.error.rest.body.notReadable", str(e))
        t.auto_confirm = {"initiator": body.get("initiator"),
                          "remark": body.get("remark") or "Initiated using the Device Direct Integration "
                                                          "API without providing a remark",
                          "activatedAt": int(emu.now() * 1000)}
        for a in emu._actions_of(t):
            if a.status == "WAIT_FOR_CONFIRMATION":
                emu._set_status(a, "RUNNING", ["auto-confirmed"])
        rec["accepted"] = True
        return self._send(200)

    # --- downloads

    def _stall(self, seconds):
        """Send nothing until the client closes the connection or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.connection], [], [], 0.1)
            if r:
                try:
                    if not self.connection.recv(4096, socket.MSG_PEEK):
                        return "client gave up"
                except (OSError, ValueError):  # ValueError: a TLS socket cannot peek; it only closes
                    return "client gave up"
                time.sleep(0.1)  # a pipelined request: not ours to read
        return "server closed"

    def _download(self, method, ten, t, rest, base, raw):
        emu = self.srv
        if method != "GET" or len(rest) != 4 or rest[2] != "artifacts":
            return self._error(405 if method != "GET" else 404)
        try:
            m = emu.modules[int(rest[1])]
        except (ValueError, KeyError):
            return self._error(404)
        name = rest[3]
        md5 = name.endswith(".MD5SUM")
        if md5:
            name = name[:-len(".MD5SUM")]
        art = next((a for a in m.artifacts if a.filename == name), None)
        allowed = any(a.status in ("RUNNING", "WAIT_FOR_CONFIRMATION") and m in a.modules
                      for a in emu._actions_of(t))
        if art is None or not allowed:
            return self._error(404)
        if md5:
            return self._send(200, f"{art.md5}  {art.filename}", "text/plain")
        data = art.data
        size = len(data)
        etag = f'"{art.sha1}"'
        if self.headers.get("If-Match") and self.headers.get("If-Match") != etag:
            return self._error(412)
        rng = self.headers.get("Range")
        art.requests.append(rng)
        art.if_ranges.append(self.headers.get("If-Range"))
        plan = dict(art.plan)
        ranges = None  # [(start, end)] inclusive; None: the whole artifact
        if rng and not plan.get("ignore_range") and \
                (not self.headers.get("If-Range") or self.headers.get("If-Range") == etag):
            ranges = []
            specs = rng.strip()[len("bytes="):].split(",") if rng.strip().startswith("bytes=") else [""]
            for spec in specs:
                mm = _RANGE_SPEC_RE.match(spec.strip())
                if not mm or (not mm.group(1) and not mm.group(2)) or len(specs) > RANGES_MAX:
                    return self._send(416, b"", headers={"Content-Range": f"bytes */{size}"})
                if mm.group(1):
                    start = int(mm.group(1))
                    end = min(int(mm.group(2)), size - 1) if mm.group(2) else size - 1
                else:
                    start, end = max(0, size - int(mm.group(2))), size - 1
                if start >= size or start > end:
                    return self._send(416, b"", headers={"Content-Range": f"bytes */{size}"})
                ranges.append((start, end))
        if ranges is None:  # a full download adds a DOWNLOAD status; ranged ones do not (since 0.8.0)
            for a in emu._actions_of(t):
                if a.active and m in a.modules:
                    a.history.append(("DOWNLOAD", [f"Target downloads {self.path}"], None))
        headers = {"Accept-Ranges": "bytes", "ETag": etag,
                   "Content-Disposition": f"attachment;filename={quote(art.filename)}"}
        parts = [(b"", 0, size - 1)] if ranges is None else [(b"", *ranges[0])]
        content_type = "application/octet-stream"
        if ranges is not None and len(ranges) == 1:
            headers["Content-Range"] = f"bytes {ranges[0][0]}-{ranges[0][1]}/{size}"
        elif ranges is not None:
            # Several ranges: multipart/byteranges, as hawkBit's FileStreamingUtil answers them.
            boundary = "THIS_STRING_SEPARATES_MULTIPART"
            content_type = f"multipart/byteranges; boundary={boundary}"
            parts = [((b"\r\n" if i else b"") +
                      (f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                       f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n").encode(), a, b)
                     for i, (a, b) in enumerate(ranges)]
        tail = f"\r\n--{boundary}--\r\n".encode() if ranges is not None and len(ranges) > 1 else b""
        length = sum(len(h) + (b - a + 1 if size else 0) for h, a, b in parts) + len(tail)
        status = 200 if ranges is None else 206
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.rec["status"] = status
        emu.lock.release()  # the body is sent without the lock: other requests go on meanwhile
        try:
            for head, a, b in parts:
                if head:
                    self.connection.sendall(head)
                    art.bytes_sent += len(head)
                if size:
                    self._send_span(art, plan, data, a, b)
            if tail:
                self.connection.sendall(tail)
                art.bytes_sent += len(tail)
        finally:
            emu.lock.acquire()
        return self.rec["status"]

    def _send_span(self, art, plan, data, pos, end):
        """The artifact's bytes pos..end (inclusive) with the plan's cut, stall and rate; the lock is not
        held."""
        emu = self.srv
        cut = plan.get("cut_at")
        rate = plan.get("rate")
        while pos <= end:
            n = min(64 * 1024 if not rate else max(1, rate // 10), end + 1 - pos)
            if cut is not None and plan.get("cut_times", 1) != 0 and pos <= cut < pos + n:
                n = cut - pos
                if n:
                    self.connection.sendall(data[pos:pos + n])
                    art.bytes_sent += n
                with emu.lock:
                    if art.plan.get("cut_times", 1) > 0:
                        art.plan["cut_times"] -= 1
                    new = art.plan.pop("replace_at_cut", None)
                    if new is not None:
                        art.replace(new)
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self.close_connection = True
                raise _Cut()
            stall = plan.get("stall_at")
            if stall is not None and pos <= stall < pos + n:
                with emu.lock:
                    art.plan.pop("stall_at", None)  # once
                self.connection.sendall(data[pos:stall])
                art.bytes_sent += stall - pos
                outcome = self._stall(plan.get("stall_seconds", 60))
                with emu.lock:
                    art.stalls.append(outcome)
                self.close_connection = True
                raise _Cut()
            self.connection.sendall(data[pos:pos + n])
            art.bytes_sent += n
            pos += n
            if rate:
                time.sleep(n / rate)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--controller-id", default="demo-gw")
    ap.add_argument("--target-token")
    ap.add_argument("--gateway-token")
    ap.add_argument("--sleep", default="00:00:05")
    ap.add_argument("--bundle", help="assign this file as a forced action")
    ap.add_argument("--version", default="1.1.0")
    args = ap.parse_args()
    emu = Emulator(port=args.port)
    ten = emu.tenant("DEFAULT")
    ten.sleep = args.sleep
    ten.gateway = args.gateway_token
    if not args.gateway_token and not args.target_token:
        ten.anonymous = True
    emu.target(args.controller_id, token=args.target_token)
    if args.bundle:
        with open(args.bundle, "rb") as f:
            data = f.read()
        sm = emu.module({args.bundle.rsplit("/", 1)[-1]: data}, version=args.version)
        emu.assign(args.controller_id, [sm])
    emu.start()
    print(emu.port, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    seen = 0
    while not stop.wait(0.2):
        with emu.lock:
            new = emu.feedbacks[seen:]
            seen = len(emu.feedbacks)
        for f in new:
            if f["kind"] == "configData":
                try:
                    data = json.loads(f["raw"])["data"]
                    print(f"configData: {len(data)} attributes ({', '.join(sorted(data)[:6])}, ...)", flush=True)
                except (ValueError, KeyError, TypeError):
                    print("configData: a malformed body", flush=True)
                continue
            print(f"feedback {f['kind']} action {f['action']}: {f.get('execution', f.get('confirmation'))} "
                  f"{f.get('finished', '')} {f.get('details', '')}", flush=True)
    emu.stop()


if __name__ == "__main__":
    sys.exit(main())
