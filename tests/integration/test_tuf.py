# SPDX-License-Identifier: LGPL-2.1-or-later
"""The TUF client (lib/tuf/tuf.c) against repositories built by tufrepo.py and served by a local HTTP server:
each attack the TUF specification names, root rotation, fast-forward recovery, and the offer rules.

The client is upkeep-tuf-client (tests/tuf-client), the tuf-conformance protocol plus an `offer` command.
Exit status 1 and "KIND: message" on stderr on failure.
"""

import functools
import hashlib
import http.server
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from tufrepo import Delegation, Key, Repo, dump, expires_in

CLIENT = os.environ.get("UPKEEP_TUF_CLIENT", "/nonexistent/upkeep-tuf-client")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, request):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()

    def stop():
        httpd.shutdown()
        httpd.server_close()
    request.addfinalizer(stop)
    return root, f"http://127.0.0.1:{httpd.server_address[1]}"


class Client:
    def __init__(self, tmp_path, url, root_bytes):
        self.dir = tmp_path / "client"
        self.md = self.dir / "metadata"
        self.tg = self.dir / "targets"
        self.tg.mkdir(parents=True)
        self.url = url
        trusted = self.dir / "initial_root.json"
        trusted.write_bytes(root_bytes)
        assert self.run("init", str(trusted)).returncode == 0

    def run(self, cmd, *args, meta=True):
        argv = [CLIENT, "--metadata-dir", str(self.md)]
        if meta and cmd != "init":
            argv += ["--metadata-url", f"{self.url}/metadata"]
        argv += ["init", *args] if cmd == "init" else [*args, cmd]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    def refresh(self):
        return self.run("refresh")

    def download(self, name):
        return self.run("download", "--target-name", name, "--target-base-url", f"{self.url}/targets",
                        "--target-dir", str(self.tg))

    def offer(self, compatible, installed=None):
        args = ["--compatible", compatible]
        if installed:
            args += ["--installed-version", installed]
        return self.run("offer", *args)

    def version(self, role):
        p = self.md / f"{role}.json"
        return json.loads(p.read_bytes())["signed"]["version"] if p.exists() else None


def ok(p):
    assert p.returncode == 0, p.stderr
    return p


def fails(p, kind, text):
    assert p.returncode == 1, f"expected failure, got {p.returncode}: {p.stdout} {p.stderr}"
    assert p.stderr.startswith(f"{kind}: "), p.stderr
    assert text in p.stderr, p.stderr
    return p


@pytest.fixture
def repo_client(tmp_path, server):
    www, url = server
    repo = Repo()
    repo.targets["app.upk"] = (b"bundle bytes v1", {"compatible": "acme-gw", "version": "1.1.0"})
    repo.publish(www)
    client = Client(tmp_path, url, repo.trusted_root())
    return repo, client, www


def test_basic_refresh_and_download(repo_client):
    repo, client, www = repo_client
    ok(client.refresh())
    assert [client.version(r) for r in ("root", "timestamp", "snapshot", "targets")] == [1, 1, 1, 1]
    ok(client.download("app.upk"))
    assert (client.tg / "app.upk").read_bytes() == b"bundle bytes v1"
    p = client.download("missing.upk")
    assert p.returncode == 1 and "no target missing.upk" in p.stderr


@pytest.mark.parametrize("keytype", ["ed25519", "ecdsa", "rsa"])
def test_key_types(tmp_path, server, keytype):
    www, url = server
    repo = Repo(keytype=keytype)
    repo.targets["a.bin"] = (b"A", None)
    repo.publish(www)
    client = Client(tmp_path, url, repo.trusted_root())
    ok(client.download("a.bin"))


# ---- arbitrary software, endless data ----

def test_arbitrary_software_target_hash_mismatch(repo_client):
    repo, client, www = repo_client
    digest = hashlib.sha256(b"bundle bytes v1").hexdigest()
    (www / "targets" / f"{digest}.app.upk").write_bytes(b"bundle bytes v6")  # same length
    fails(client.download("app.upk"), "payload", "sha256 hash")
    assert not (client.tg / "app.upk").exists()


def test_endless_data_target(repo_client):
    repo, client, www = repo_client
    digest = hashlib.sha256(b"bundle bytes v1").hexdigest()
    (www / "targets" / f"{digest}.app.upk").write_bytes(b"bundle bytes v1" + b"x" * 1000000)
    fails(client.download("app.upk"), "io", "more than 15 bytes")


def test_endless_data_timestamp(repo_client):
    repo, client, www = repo_client
    ts = www / "metadata" / "timestamp.json"
    ts.write_bytes(ts.read_bytes()[:-1] + b" " * 20000 + b"}")
    fails(client.refresh(), "io", "more than 16384 bytes")


# ---- freeze ----

@pytest.mark.parametrize("role", ["timestamp", "snapshot", "targets", "root"])
def test_freeze_expired(tmp_path, server, role):
    www, url = server
    repo = Repo()
    repo.publish(www)
    client = Client(tmp_path, url, repo.trusted_root())
    ok(client.refresh())
    repo.expires[role] = expires_in(-1)
    if role == "root":
        repo.new_root()
    repo.bump("timestamp", "snapshot", "targets")
    repo.publish(www)
    fails(client.refresh(), "signature", f"{role}: metadata expired at")
    # nothing was replaced (the expired root is trusted, as the chain requires, but not used)
    if role != "root":
        assert client.version(role) == 1


# ---- rollback ----

def test_rollback_timestamp(repo_client):
    repo, client, www = repo_client
    old = (www / "metadata" / "timestamp.json").read_bytes()
    repo.bump("timestamp")
    repo.publish(www)
    ok(client.refresh())
    assert client.version("timestamp") == 2
    (www / "metadata" / "timestamp.json").write_bytes(old)
    fails(client.refresh(), "downgrade", "timestamp: version 1 is older than the trusted 2")
    assert client.version("timestamp") == 2


def test_rollback_snapshot_in_timestamp(repo_client):
    repo, client, www = repo_client
    repo.bump("timestamp", "snapshot")
    repo.publish(www)
    ok(client.refresh())
    repo.version["snapshot"] = 1
    repo.bump("timestamp")
    repo.publish(www)
    fails(client.refresh(), "downgrade", "timestamp: snapshot version 1 is older than the trusted 2")
    assert client.version("snapshot") == 2


def test_rollback_targets_in_snapshot(repo_client):
    repo, client, www = repo_client
    repo.bump("timestamp", "snapshot", "targets")
    repo.publish(www)
    ok(client.refresh())
    repo.version["targets"] = 1
    repo.bump("timestamp", "snapshot")
    repo.publish(www)
    fails(client.refresh(), "downgrade", "snapshot: targets.json version 1 is older than the trusted 2")
    assert client.version("snapshot") == 2 and client.version("targets") == 2


# ---- fast-forward recovery ----

def test_fast_forward_recovery_after_timestamp_key_rotation(repo_client):
    repo, client, www = repo_client
    repo.version["timestamp"] = 50  # an attacker with the timestamp key fast-forwarded it
    repo.publish(www)
    ok(client.refresh())
    assert client.version("timestamp") == 50
    repo.rotate("timestamp")  # root v2 with a new timestamp key; the version starts over
    repo.version["timestamp"] = 1
    repo.publish(www)
    ok(client.refresh())
    assert client.version("root") == 2 and client.version("timestamp") == 1


def test_fast_forward_recovery_after_snapshot_key_rotation(repo_client):
    repo, client, www = repo_client
    repo.version["snapshot"] = 40
    repo.version["timestamp"] = 40
    repo.publish(www)
    ok(client.refresh())
    repo.rotate("snapshot")
    repo.rotate("timestamp")
    repo.version["snapshot"] = 1
    repo.bump("timestamp")
    repo.publish(www)
    ok(client.refresh())
    assert client.version("snapshot") == 1


# ---- mix-and-match ----

def test_mix_and_match_targets(repo_client):
    repo, client, www = repo_client
    ok(client.refresh())
    old_targets = (www / "metadata" / "1.targets.json").read_bytes()
    repo.targets["app.upk"] = (b"bundle bytes v2", {"compatible": "acme-gw", "version": "1.2.0"})
    repo.bump("timestamp", "snapshot", "targets")
    repo.publish(www)
    # the mirror serves the old (validly signed) targets under the new name
    (www / "metadata" / "2.targets.json").write_bytes(old_targets)
    fails(client.refresh(), "format", "targets: ")
    assert client.version("targets") == 1


# ---- thresholds and signatures ----

def test_threshold_not_met(tmp_path, server):
    www, url = server
    repo = Repo()
    repo.keys["targets"] = [Key(), Key()]
    repo.threshold["targets"] = 2
    repo.new_root()
    repo.signers["targets"] = repo.keys["targets"][:1]
    repo.publish(www)
    client = Client(tmp_path, url, repo.roots[0])
    fails(client.refresh(), "signature", "targets: signature threshold not met: 1 of 2 valid signatures")
    assert client.version("targets") is None


def test_duplicated_signatures_from_one_key(tmp_path, server):
    www, url = server
    repo = Repo()
    repo.keys["targets"] = [Key(), Key()]
    repo.threshold["targets"] = 2
    repo.new_root()
    one = repo.keys["targets"][0]

    def dup(name, data):
        if name != "targets.json":
            return data
        doc = json.loads(data)
        sig = [s for s in doc["signatures"] if s["keyid"] == one.keyid][0]
        doc["signatures"] = [sig, sig]
        return dump(doc)
    repo.publish(www, tamper=dup)
    client = Client(tmp_path, url, repo.roots[0])
    fails(client.refresh(), "signature", f"targets: more than one signature with keyid {one.keyid[:40]}")
    assert client.version("targets") is None


def test_mirror_serving_another_repository(tmp_path, server):
    www, url = server
    mine, theirs = Repo(), Repo()
    theirs.targets["app.upk"] = (b"evil", {"compatible": "acme-gw", "version": "9.0.0"})
    theirs.publish(www)
    client = Client(tmp_path, url, mine.trusted_root())
    fails(client.refresh(), "signature", "timestamp: signature threshold not met: 0 of 1")
    assert client.version("timestamp") is None


# ---- root rotation ----

def test_root_rotation_1_2_3_with_threshold_change(tmp_path, server):
    www, url = server
    repo = Repo()
    initial = repo.trusted_root()
    repo.rotate("root", n=2, threshold=2)
    repo.new_root()  # v2: signed by v1's key and both new keys
    repo.rotate("root", n=3, threshold=3)
    repo.new_root()  # v3: signed by v2's two keys and its three
    repo.bump("timestamp")
    repo.publish(www)
    client = Client(tmp_path, url, initial)
    ok(client.refresh())
    assert client.version("root") == 3
    doc = json.loads((client.md / "root.json").read_bytes())
    assert doc["signed"]["roles"]["root"]["threshold"] == 3


def test_root_rotation_not_signed_by_old_threshold(tmp_path, server):
    www, url = server
    repo = Repo()
    initial = repo.trusted_root()
    repo.rotate("root", n=2, threshold=2)
    repo.new_root()
    v2_keys = repo.keys["root"]
    repo.rotate("root", n=1, threshold=1)
    repo.new_root(old_signers=v2_keys[:1])  # only one of the two v2 keys signs v3
    repo.publish(www)
    client = Client(tmp_path, url, initial)
    fails(client.refresh(), "signature",
          "root version 3 (keys of version 2): root: signature threshold not met: 1 of 2 valid signatures")
    assert client.version("root") == 2  # v2 was valid and stays trusted


def test_root_version_must_be_exactly_next(tmp_path, server):
    www, url = server
    repo = Repo()
    initial = repo.trusted_root()
    repo.new_root()
    repo.publish(www)
    # 2.root.json holds a validly signed version 3
    repo.new_root()
    (www / "metadata" / "2.root.json").write_bytes(repo.roots[-1])
    client = Client(tmp_path, url, initial)
    fails(client.refresh(), "format", "root: 2.root.json holds version 3")
    assert client.version("root") == 1


# ---- delegations ----

def test_delegated_target_and_terminating(tmp_path, server):
    www, url = server
    repo = Repo()
    a = Delegation("a", paths=["fw/*"], terminating=True)
    b = Delegation("b", paths=["fw/*"])
    a.targets["fw/x.upk"] = (b"from a", None)
    b.targets["fw/y.upk"] = (b"from b", None)
    repo.delegations = [a, b]
    repo.publish(www)
    client = Client(tmp_path, url, repo.trusted_root())
    ok(client.download("fw/x.upk"))
    assert (client.tg / "fw%2Fx.upk").read_bytes() == b"from a"
    # a is terminating for fw/*: b is never asked
    p = client.download("fw/y.upk")
    assert p.returncode == 1 and "no target fw/y.upk" in p.stderr


# ---- the offer ----

def test_offer_rules(tmp_path, server):
    www, url = server
    repo = Repo()
    repo.targets = {
        "gw-1.0.0.upk": (b"1", {"compatible": "acme-gw", "version": "1.0.0"}),
        "gw-1.2.0.upk": (b"12", {"compatible": "acme-gw", "version": "1.2.0"}),
        "gw-1.10.0-rc1.upk": (b"rc", {"compatible": "acme-gw", "version": "1.10.0-rc.1"}),
        "other-9.upk": (b"9", {"compatible": "other-gw", "version": "9.0.0"}),
        "plain.bin": (b"p", None),
    }
    repo.publish(www)
    client = Client(tmp_path, url, repo.trusted_root())
    assert ok(client.offer("acme-gw", "1.0.0")).stdout == "gw-1.10.0-rc1.upk 1.10.0-rc.1\n"
    # a wrong-compatible target is never offered, however new
    assert ok(client.offer("other-gw", "9.0.0")).stdout == "none\n"
    assert ok(client.offer("nobody", None)).stdout == "none\n"
    # a lower (or equal) version is never offered
    assert ok(client.offer("acme-gw", "1.10.0")).stdout == "none\n"
    assert ok(client.offer("acme-gw", "1.10.0-rc.1")).stdout == "none\n"
