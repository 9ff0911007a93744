# SPDX-License-Identifier: LGPL-2.1-or-later
"""`updatectl repo` (cli/repo-cmd.c, lib/tuf/tuf-repo.c): repositories it makes are read by our TUF
client (upkeep-tuf-client) and installed from by upkeepd; reproducible output under SOURCE_DATE_EPOCH;
`timestamp` re-signs only what is due; the refusals (a bundle that does not verify, a wrong or missing
key, an expired root, a second init) change nothing. Offline signing (--offline, sign), delegations
(delegate, add --role). tuf-js reads what `updatectl repo` makes, and our client and upkeepd read what
tuf-js's metadata classes make."""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from device import PKI, UPDATECTL, payload_bytes
from test_poll import SOON, World, describe, make_bundle, slot_b_holds  # noqa: F401 (World: conftest's world fixture makes it)
from test_tuf import Client, fails, ok, server  # noqa: F401 (server is a fixture)

ROLES = ("root", "targets", "snapshot", "timestamp")


def repo(*args, env=None):
    full = dict(os.environ)
    full.pop("SOURCE_DATE_EPOCH", None)
    full.update(env or {})
    return subprocess.run([UPDATECTL, "repo", *map(str, args)], capture_output=True, text=True, env=full,
                          timeout=300)


def epoch(offset=0):
    return {"SOURCE_DATE_EPOCH": str(int(time.time()) + offset)}


def signed(path):
    return json.loads(Path(path).read_bytes())["signed"]


def timestamp_version(d):
    return signed(d / "metadata" / "timestamp.json")["version"]


def snapshot_version(d):
    return signed(d / "metadata" / "timestamp.json")["meta"]["snapshot.json"]["version"]


def targets_of(d):
    sv = snapshot_version(d)
    tv = signed(d / "metadata" / f"{sv}.snapshot.json")["meta"]["targets.json"]["version"]
    return signed(d / "metadata" / f"{tv}.targets.json")


def upload(d, www):
    """What a vendor does after each command: copy metadata/ and targets/ to the web server."""
    shutil.copytree(d / "targets", www / "targets", dirs_exist_ok=True)
    shutil.copytree(d / "metadata", www / "metadata", dirs_exist_ok=True)


def tree(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def manifest_sha256(bundle):
    with tarfile.open(bundle, mode="r:") as tar:
        first = tar.next()
        return hashlib.sha256(tar.extractfile(first).read()).hexdigest()


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path, "1.1.0", payload_bytes(41), security="security")


def test_init_layout_and_modes(tmp_path):
    d = tmp_path / "repo"
    p = repo("init", d)
    assert p.returncode == 0, describe(p)
    md = d / "metadata"
    assert sorted(x.name for x in md.iterdir()) == ["1.root.json", "1.snapshot.json", "1.targets.json",
                                                     "root.json", "timestamp.json"]
    assert (md / "1.root.json").read_bytes() == (md / "root.json").read_bytes()
    root = signed(md / "root.json")
    assert root["consistent_snapshot"] is True and root["version"] == 1
    assert stat.S_IMODE((d / "keys").stat().st_mode) == 0o700
    keys = sorted((d / "keys").iterdir())
    assert len(keys) == 4
    for k in keys:
        assert stat.S_IMODE(k.stat().st_mode) == 0o600
        role, keyid = k.stem.split("-", 1)
        assert root["roles"][role]["keyids"] == [keyid]
        # the keyid is the spec's: sha256 of the canonical KEY object
        key = root["keys"][keyid]
        assert key["keytype"] == "ed25519" and key["scheme"] == "ed25519"
        canon = json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
        assert hashlib.sha256(canon).hexdigest() == keyid
    # the metadata is canonical JSON
    for f in md.iterdir():
        data = f.read_bytes()
        assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    # default periods: root a year, targets 90 days, snapshot a week, timestamp a day
    assert json.loads((d / "repo.json").read_text()) == {
        "expires": {"root": 365 * 86400, "targets": 90 * 86400, "snapshot": 7 * 86400, "timestamp": 86400}}
    # a second init is refused and changes nothing
    before = tree(d)
    p = repo("init", d)
    assert p.returncode == 16 and "holds a repository already" in p.stderr, describe(p)
    assert tree(d) == before


def test_status(tmp_path, bundle):
    d = tmp_path / "repo"
    ok(repo("init", d, "--expires", "targets=12w", "--threshold", "snapshot=2"))
    ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem"))
    p = ok(repo("status", d))
    assert "root       version 1, expires " in p.stdout, p.stdout
    assert "targets    version 2, " in p.stdout and "threshold 1 of 1 key(s)" in p.stdout, p.stdout
    assert "threshold 2 of 2 key(s), re-signed for 7 days" in p.stdout, p.stdout
    assert "re-signed for 84 days" in p.stdout, p.stdout
    assert "warning" not in p.stdout, p.stdout
    assert f"  {bundle.name}  acme-gw 1.1.0, {bundle.stat().st_size} bytes" in p.stdout, p.stdout
    p = ok(repo("status", d, env=epoch(79 * 86400)))
    assert "warning: targets expires within a week\n" in p.stdout, p.stdout
    assert "warning: timestamp has expired; devices refuse the repository" in p.stdout, p.stdout
    assert "warning: root" not in p.stdout, p.stdout
    p = ok(repo("status", d, env=epoch(400 * 86400)))
    assert "warning: root has expired; devices refuse the repository" in p.stdout, p.stdout


@pytest.mark.parametrize("keytype", ["ed25519", "ecdsa", "rsa"])
def test_our_client_reads_it(tmp_path, server, bundle, keytype):  # noqa: F811
    www, url = server
    d = tmp_path / "repo"
    ok(repo("init", d, "--key-type", keytype, "--threshold", "targets=2"))
    p = ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem"))
    assert f"{bundle}: published as {bundle.name}" in p.stdout
    assert "targets version 2, snapshot 2, timestamp 2" in p.stdout
    upload(d, www)
    data = bundle.read_bytes()
    target = targets_of(d)["targets"][bundle.name]
    assert target == {"length": len(data), "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                      "custom": {"compatible": "acme-gw", "version": "1.1.0", "security": "security",
                                 "manifest_sha256": manifest_sha256(bundle)}}
    assert (d / "targets" / f"{hashlib.sha256(data).hexdigest()}.{bundle.name}").read_bytes() == data
    assert len(signed(d / "metadata" / "2.targets.json")) and \
        len(json.loads((d / "metadata" / "2.targets.json").read_bytes())["signatures"]) == 2

    client = Client(tmp_path, url, (d / "metadata" / "1.root.json").read_bytes())
    ok(client.refresh())
    p = ok(client.offer("acme-gw", "1.0.0"))
    assert bundle.name in p.stdout, p.stdout
    ok(client.download(bundle.name))
    assert (client.tg / bundle.name).read_bytes() == data

    # a second bundle: new versions; the client follows
    b2 = make_bundle(tmp_path, "1.2.0", payload_bytes(42))
    ok(repo("add", d, b2, "--keyring", PKI / "keyring.pem"))
    upload(d, www)
    ok(client.refresh())
    assert client.version("targets") == 3 and client.version("timestamp") == 3
    p = ok(client.offer("acme-gw", "1.1.0"))
    assert b2.name in p.stdout, p.stdout
    assert "security" not in targets_of(d)["targets"][b2.name]["custom"]


def test_daemon_installs_from_it(tmp_path, world, bundle):  # noqa: F811
    w = world(policy="all")
    d = tmp_path / "repo"
    ok(repo("init", d))
    ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem"))
    upload(d, w.www)
    w.root_json.write_bytes((d / "metadata" / "1.root.json").read_bytes())
    w.start(env=SOON)
    w.wait_state("pending-reboot", timeout=120)
    assert slot_b_holds(w.device, payload_bytes(41))
    assert w.device.state()["pending"]["version"] == "1.1.0"
    assert f"update 1.1.0 available ({bundle.name}, " in w.log(), w.log()


def test_reproducible(tmp_path, bundle):
    keys = tmp_path / "offline"
    keys.mkdir()
    args = []
    for role in ROLES:
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", keys / f"{role}.pem"], check=True,
                       capture_output=True)
        args += ["--key", f"{role}={keys / role}.pem"]
    env = {"SOURCE_DATE_EPOCH": "1893456000"}  # 2030-01-01
    trees = []
    for n in ("a", "b"):
        d = tmp_path / n
        ok(repo("init", d, *args, env=env))
        assert list((d / "keys").iterdir()) == []  # given keys stay where they are
        given = sum((["--key", keys / f"{r}.pem"] for r in ROLES), [])
        ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem", *given, env=env))
        ok(repo("timestamp", d, "--force", *given, env=env))
        trees.append(tree(d / "metadata"))
        trees[-1].update({"targets/" + k: v for k, v in tree(d / "targets").items()})
    assert trees[0] == trees[1]
    assert signed(tmp_path / "a" / "metadata" / "timestamp.json")["expires"] == "2030-01-02T00:00:00Z"


def test_timestamp_resigns_only_what_is_due(tmp_path, server):  # noqa: F811
    www, url = server
    d = tmp_path / "repo"
    ok(repo("init", d))
    p = repo("timestamp", d)
    assert p.returncode == 3 and "nothing re-signed" in p.stdout, describe(p)
    assert timestamp_version(d) == 1
    # 13 hours on: the timestamp (a day) is past half its period, the snapshot (a week) is not
    p = repo("timestamp", d, env=epoch(13 * 3600))
    assert p.returncode == 0, describe(p)
    assert timestamp_version(d) == 2 and snapshot_version(d) == 1
    assert repo("timestamp", d, env=epoch(13 * 3600)).returncode == 3
    # four days on: the snapshot too
    ok(repo("timestamp", d, env=epoch(4 * 86400)))
    assert timestamp_version(d) == 3 and snapshot_version(d) == 2
    upload(d, www)
    client = Client(tmp_path, url, (d / "metadata" / "1.root.json").read_bytes())
    ok(client.refresh())
    assert client.version("timestamp") == 3 and client.version("snapshot") == 2


def test_refusals_change_nothing(tmp_path, bundle):
    d = tmp_path / "repo"
    ok(repo("init", d))
    before = tree(d)

    # a bundle whose signer the keyring does not trust: a signature rejection
    p = repo("add", d, bundle, "--keyring", PKI / "other-root.pem")
    assert p.returncode == 10, describe(p)
    assert f"{bundle}: rejected: " in p.stderr and "nothing published" in p.stderr, describe(p)
    assert tree(d) == before
    # a bundle with a changed payload byte
    bad = tmp_path / "bad.upk"
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    p = repo("add", d, bundle, bad, "--keyring", PKI / "keyring.pem")
    assert p.returncode in (13, 14, 15), describe(p)
    assert tree(d) == before
    # a key that is none of the root's
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", tmp_path / "stray.pem"], check=True,
                   capture_output=True)
    p = repo("add", d, bundle, "--keyring", PKI / "keyring.pem", "--key", tmp_path / "stray.pem")
    assert p.returncode == 10 and "is not a key of any role of root version 1" in p.stderr, describe(p)
    assert tree(d) == before
    # an expired root: nothing is signed under it
    p = repo("add", d, bundle, "--keyring", PKI / "keyring.pem", env=epoch(400 * 86400))
    assert p.returncode == 10 and "root version 1 expired at " in p.stderr, describe(p)
    p = repo("timestamp", d, env=epoch(400 * 86400))
    assert p.returncode == 10 and "root version 1 expired at " in p.stderr, describe(p)
    assert tree(d) == before
    # a private key others may read
    key = next((d / "keys").glob("targets-*.pem"))
    key.chmod(0o644)
    p = repo("status", d)
    assert p.returncode == 16 and "readable by others (mode 0644)" in p.stderr, describe(p)
    key.chmod(0o600)
    # not a repository
    p = repo("status", tmp_path / "nothing")
    assert p.returncode == 16 and "not a repository made by updatectl repo init" in p.stderr, describe(p)
    # bad usage
    assert repo("init", tmp_path / "x", "--threshold", "owner=2").returncode == 2
    assert repo("init", tmp_path / "x", "--expires", "root=soon").returncode == 2
    assert repo("add", d, bundle).returncode == 2  # no --keyring
    assert not (tmp_path / "x").exists()


def test_offline_targets_key(tmp_path, server, bundle):  # noqa: F811
    """--key targets=PEM at init: the key stays outside DIR/keys; add needs it again."""
    www, url = server
    offline = tmp_path / "targets.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", offline], check=True, capture_output=True)
    d = tmp_path / "repo"
    ok(repo("init", d, "--key", f"targets={offline}"))
    assert sorted(k.name.split("-")[0] for k in (d / "keys").iterdir()) == ["root", "snapshot", "timestamp"]
    p = repo("add", d, bundle, "--keyring", PKI / "keyring.pem")
    assert p.returncode == 10 and "targets: 0 of the 1 keys needed to sign are at hand" in p.stderr, describe(p)
    assert list((d / "targets").iterdir()) == []
    p = ok(repo("status", d))
    assert "ecdsa-sha2-nistp256, offline" in p.stdout, p.stdout
    ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem", "--key", offline))
    upload(d, www)
    client = Client(tmp_path, url, (d / "metadata" / "1.root.json").read_bytes())
    ok(client.download(bundle.name))
    # the same bundle again: nothing to do; another file under that name: refused
    p = ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem", "--key", offline))
    assert "published already" in p.stdout
    other = make_bundle(tmp_path, "1.3.0", payload_bytes(43), name="o")
    clash = tmp_path / "clash"
    clash.mkdir()
    shutil.copy(other, clash / bundle.name)
    p = repo("add", d, clash / bundle.name, "--keyring", PKI / "keyring.pem", "--key", offline)
    assert p.returncode == 16 and "is published already with other bytes" in p.stderr, describe(p)


# ------------------------------------------------------------------------------------------------------
# A second client: tuf-js from npm

TUFJS_VERSION = "4"  # 4.x runs on node 20 (Debian 13's); later ones need node 22
TUFJS_CACHE = Path(os.environ.get("UPKEEP_NPM_CACHE", "/var/tmp/upkeep-npm-cache"))
TUFJS_CLIENT = Path(__file__).resolve().parent / "tufjs-client.js"
TUFJS_REPO = Path(__file__).resolve().parent / "tufjs-repo.js"


@pytest.fixture(scope="module")
def tufjs():
    """node and tuf-js; tuf-js installed with npm into TUFJS_CACHE when missing. Skipped only when node or
    npm is missing or the npm registry cannot be reached."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("tuf-js interoperability: node and npm are not installed (apt-get install nodejs npm)")
    modules = TUFJS_CACHE / "node_modules"
    if not (modules / "tuf-js" / "package.json").is_file():
        TUFJS_CACHE.mkdir(parents=True, exist_ok=True)
        p = subprocess.run([npm, "install", "--prefix", str(TUFJS_CACHE), "--no-audit", "--no-fund",
                            f"tuf-js@{TUFJS_VERSION}"], capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            ping = subprocess.run([npm, "ping"], capture_output=True, text=True, timeout=120)
            if ping.returncode != 0:
                pytest.skip(f"tuf-js interoperability: the npm registry is unreachable ({ping.stderr.strip()})")
            raise AssertionError(f"npm install tuf-js@{TUFJS_VERSION} failed:\n{p.stdout}\n{p.stderr}")

    def run(tmp, url, root_bytes, name=None):
        md, tg = tmp / "tufjs-metadata", tmp / "tufjs-targets"
        if not md.exists():
            md.mkdir()
            tg.mkdir()
            (md / "root.json").write_bytes(root_bytes)
        args = [node, str(TUFJS_CLIENT), str(md), f"{url}/metadata", str(tg), f"{url}/targets"]
        p = subprocess.run(args + ([name] if name else []), capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, NODE_PATH=str(modules)))
        return p
    run.node, run.modules = node, modules
    return run


def tufjs_ok(p):
    assert p.returncode == 0, describe(p)
    return json.loads(p.stdout)


@pytest.mark.parametrize("keytype", ["ed25519", "ecdsa", "rsa"])
def test_tufjs_reads_it(tmp_path, server, bundle, tufjs, keytype):  # noqa: F811
    www, url = server
    d = tmp_path / "repo"
    ok(repo("init", d, "--key-type", keytype, "--threshold", "snapshot=2"))
    ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem"))
    upload(d, www)
    out = tufjs_ok(tufjs(tmp_path, url, (d / "metadata" / "1.root.json").read_bytes(), bundle.name))
    assert out["versions"] == {"root": 1, "timestamp": 2, "snapshot": 2, "targets": 2}
    assert out["target"]["custom"] == targets_of(d)["targets"][bundle.name]["custom"]
    assert Path(out["target"]["file"]).read_bytes() == bundle.read_bytes()
    # the timestamp re-signed: followed
    ok(repo("timestamp", d, "--force"))
    upload(d, www)
    out = tufjs_ok(tufjs(tmp_path, url, None))
    assert out["versions"]["timestamp"] == 3 and out["versions"]["snapshot"] == 3


def test_tufjs_refuses_a_tampered_target(tmp_path, server, bundle, tufjs):  # noqa: F811
    """The control: tuf-js does check what it reads here."""
    www, url = server
    d = tmp_path / "repo"
    ok(repo("init", d))
    ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem"))
    upload(d, www)
    data = bundle.read_bytes()
    t = www / "targets" / f"{hashlib.sha256(data).hexdigest()}.{bundle.name}"
    t.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    p = tufjs(tmp_path, url, (d / "metadata" / "1.root.json").read_bytes(), bundle.name)
    assert p.returncode == 1 and "hash" in p.stderr.lower(), describe(p)


# ------------------------------------------------------------------------------------------------------
# remove, rotate

def test_remove(tmp_path, server, bundle):  # noqa: F811
    www, url = server
    d = tmp_path / "repo"
    ok(repo("init", d))
    b2 = make_bundle(tmp_path, "1.2.0", payload_bytes(44))
    ok(repo("add", d, bundle, b2, "--keyring", PKI / "keyring.pem"))
    p = ok(repo("remove", d, b2.name))
    assert f"{b2.name}: withdrawn" in p.stdout
    assert sorted(targets_of(d)["targets"]) == [bundle.name]
    upload(d, www)
    client = Client(tmp_path, url, (d / "metadata" / "1.root.json").read_bytes())
    p = ok(client.offer("acme-gw", "1.0.0"))
    assert bundle.name in p.stdout and b2.name not in p.stdout, p.stdout
    before = tree(d)
    p = repo("remove", d, "nothing.upk")
    assert p.returncode == 16 and "target nothing.upk is not listed" in p.stderr, describe(p)
    assert tree(d) == before


def test_rotations_are_followed_by_both_clients(tmp_path, server, bundle, tufjs):  # noqa: F811
    """Root 1 -> 2 -> 3 (threshold 1 -> 2 -> 1), then the timestamp's and the targets' keys: a client
    that trusts root version 1 follows every step; so does tuf-js."""
    www, url = server
    d = tmp_path / "repo"
    ok(repo("init", d))
    ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem"))
    upload(d, www)
    root1 = (d / "metadata" / "1.root.json").read_bytes()
    client = Client(tmp_path, url, root1)
    ok(client.refresh())
    tufjs_ok(tufjs(tmp_path, url, root1))
    old_root_key = next((d / "keys").glob("root-*.pem"))

    p = ok(repo("rotate", d, "root", "--threshold", "2"))
    assert "root version 2 signed by the keys of version 1 and its own" in p.stdout, p.stdout
    r2 = signed(d / "metadata" / "2.root.json")
    assert r2["roles"]["root"]["threshold"] == 2 and len(r2["roles"]["root"]["keyids"]) == 2
    assert old_root_key.name in [k.name for k in (d / "keys" / "retired").iterdir()]
    sigs = json.loads((d / "metadata" / "2.root.json").read_bytes())["signatures"]
    assert len(sigs) == 3  # the old key and the two new ones
    ok(repo("rotate", d, "root", "--threshold", "1", "--key-type", "ecdsa"))
    assert signed(d / "metadata" / "3.root.json")["roles"]["root"]["threshold"] == 1
    ok(repo("rotate", d, "timestamp"))
    ok(repo("rotate", d, "targets", "--key-type", "rsa"))
    assert signed(d / "metadata" / "root.json")["version"] == 5
    upload(d, www)

    ok(client.refresh())
    assert client.version("root") == 5
    ok(client.download(bundle.name))
    out = tufjs_ok(tufjs(tmp_path, url, None, bundle.name))
    assert out["versions"]["root"] == 5
    # a device that never saw version 2 to 4 starts from root 1 all the same
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    c2 = Client(fresh, url, root1)
    ok(c2.download(bundle.name))

    # without the root keys nothing is rotated
    shutil.move(str(d / "keys"), str(tmp_path / "moved-keys"))
    (d / "keys").mkdir(mode=0o700)
    before = tree(d)
    p = repo("rotate", d, "snapshot")
    assert p.returncode == 10 and "rotating snapshot: root: 0 of the 1 keys needed to sign" in p.stderr, describe(p)
    assert tree(d) == before


# ------------------------------------------------------------------------------------------------------
# offline signing: --offline prepares, sign adds signatures and publishes once complete

def genkey(path, algorithm="ed25519"):
    subprocess.run(["openssl", "genpkey", "-algorithm", algorithm, "-out", path], check=True, capture_output=True)
    return path


def test_offline_signing_of_targets(tmp_path, server, bundle):  # noqa: F811
    """Two offline targets keys (threshold 2): add --offline prepares; each key signs on its own machine (a
    copy of the folder without the online keys); the publishing host publishes once the threshold is met.
    Refused, changing nothing: a key outside the role, an expired prepared version, a stale one."""
    www, url = server
    off1, off2 = genkey(tmp_path / "off1.pem"), genkey(tmp_path / "off2.pem")
    d = tmp_path / "repo"
    ok(repo("init", d, "--key", f"targets={off1}", "--key", f"targets={off2}", "--threshold", "targets=2"))
    metadata = tree(d / "metadata")
    p = ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem", "--offline"))
    assert f"waits in {d}/prepared/targets.json" in p.stdout, p.stdout
    assert tree(d / "metadata") == metadata
    prepared = d / "prepared" / "targets.json"
    doc = json.loads(prepared.read_bytes())
    assert doc["signatures"] == [] and doc["signed"]["version"] == 2 and bundle.name in doc["signed"]["targets"]
    p = repo("add", d, bundle, "--keyring", PKI / "keyring.pem", "--offline")
    assert p.returncode == 16 and "waits for signatures already" in p.stderr, describe(p)
    p = ok(repo("status", d))
    assert f"prepared   {prepared} waits for signatures: updatectl repo sign {d} targets" in p.stdout, p.stdout

    before = tree(d)
    stray = genkey(tmp_path / "stray.pem")
    snapshot_key = next((d / "keys").glob("snapshot-*.pem"))
    for wrong in (stray, snapshot_key):
        p = repo("sign", d, "targets", "--key", wrong)
        assert p.returncode == 10 and "is not a targets key of root version 1" in p.stderr, describe(p)
    p = repo("sign", d, "targets", "--key", off1, env=epoch(91 * 86400))
    assert p.returncode == 10 and "prepared targets version 2 expired at " in p.stderr, describe(p)
    assert repo("sign", d, "snapshot", "--key", off1).returncode == 2
    assert tree(d) == before

    # one key: below the threshold, nothing is published
    p = ok(repo("sign", d, "targets", "--key", off1))
    assert "1 signature(s) added; 1 of 2 valid" in p.stdout and "waits for more signatures" in p.stdout, p.stdout
    assert tree(d / "metadata") == metadata
    p = ok(repo("sign", d, "targets", "--key", off1))
    assert "0 signature(s) added; 1 of 2 valid" in p.stdout, p.stdout

    # the second key on an air-gapped machine: a copy without DIR/keys
    gap = tmp_path / "airgap"
    shutil.copytree(d, gap, ignore=shutil.ignore_patterns("keys"))
    p = ok(repo("sign", gap, "targets", "--key", off2))
    assert "2 of 2 valid" in p.stdout and "complete, but not published here" in p.stdout, p.stdout
    assert "timestamp: 0 of the 1 keys needed" in p.stdout, p.stdout
    assert tree(gap / "metadata") == metadata
    shutil.copy(gap / "prepared" / "targets.json", prepared)
    p = ok(repo("sign", d, "targets"))
    assert "published targets version 2" in p.stdout, p.stdout
    assert not prepared.exists()
    assert len(json.loads((d / "metadata" / "2.targets.json").read_bytes())["signatures"]) == 2
    assert timestamp_version(d) == 2 and snapshot_version(d) == 2
    upload(d, www)
    client = Client(tmp_path, url, (d / "metadata" / "1.root.json").read_bytes())
    ok(client.download(bundle.name))
    p = repo("sign", d, "targets", "--key", off1)
    assert p.returncode == 16 and "no targets metadata waits for signatures" in p.stderr, describe(p)

    # a prepared version overtaken by one published with both keys at hand: stale
    ok(repo("remove", d, bundle.name, "--offline"))
    ok(repo("add", d, make_bundle(tmp_path, "1.2.0", payload_bytes(42)), "--keyring", PKI / "keyring.pem",
            "--key", off1, "--key", off2))
    before = tree(d)
    p = repo("sign", d, "targets", "--key", off1)
    assert p.returncode == 16 and "does not follow the published version 3" in p.stderr, describe(p)
    assert tree(d) == before


def test_offline_signing_of_a_root_rotation(tmp_path, server, bundle):  # noqa: F811
    """The root key lives offline: rotate --offline prepares root version 2 (signed by the new key at
    hand); sign with the old key publishes it, then snapshot and timestamp; clients that trust version 1
    follow."""
    www, url = server
    old_root = genkey(tmp_path / "root1.pem")
    new_root = genkey(tmp_path / "root2.pem")
    d = tmp_path / "repo"
    ok(repo("init", d, "--key", f"root={old_root}"))
    ok(repo("add", d, bundle, "--keyring", PKI / "keyring.pem"))
    before = tree(d)
    p = repo("rotate", d, "root", "--new-key", new_root)
    assert p.returncode == 10 and "root: 0 of the 1 keys needed" in p.stderr, describe(p)
    assert tree(d) == before
    p = ok(repo("rotate", d, "root", "--new-key", new_root, "--offline"))
    assert f"waits in {d}/prepared/root.json" in p.stdout, p.stdout
    assert tree(d / "metadata") == before_metadata(before)
    p = repo("sign", d, "root", "--key", next((d / "keys").glob("targets-*.pem")))
    assert p.returncode == 10 and "is not a root key of root version 1 or of the prepared root" in p.stderr
    p = ok(repo("sign", d, "root", "--key", new_root))
    assert "0 signature(s) added; 0 of 1 valid under root version 1, 1 of 1 under the new root" in p.stdout, \
        p.stdout
    assert tree(d / "metadata") == before_metadata(before)
    p = ok(repo("sign", d, "root", "--key", old_root))
    assert "published root version 2" in p.stdout, p.stdout
    assert signed(d / "metadata" / "root.json")["version"] == 2
    assert timestamp_version(d) == 3
    upload(d, www)
    client = Client(tmp_path, url, (d / "metadata" / "1.root.json").read_bytes())
    ok(client.refresh())
    assert client.version("root") == 2
    ok(client.download(bundle.name))


def before_metadata(t):
    return {k[len("metadata/"):]: v for k, v in t.items() if k.startswith("metadata/")}


# ------------------------------------------------------------------------------------------------------
# delegations: one repository, a product line per signing team

def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def resign(path, signed_obj, key_pem):
    """Write metadata `signed_obj` to `path` signed (Ed25519) by the key in `key_pem`, as a forger would."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key
    key = load_pem_private_key(Path(key_pem).read_bytes(), None)
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    keyid = hashlib.sha256(canonical({"keytype": "ed25519", "scheme": "ed25519",
                                      "keyval": {"public": pub}})).hexdigest()
    doc = {"signatures": [{"keyid": keyid, "sig": key.sign(canonical(signed_obj)).hex()}], "signed": signed_obj}
    Path(path).write_bytes(canonical(doc))


@pytest.fixture
def delegated(tmp_path):
    """A repository whose targets delegate acme-gw-* to role acme-gw (the team's key outside DIR/keys),
    with one bundle published by that role."""
    team = genkey(tmp_path / "team.pem")
    d = tmp_path / "repo"
    ok(repo("init", d))
    p = ok(repo("delegate", d, "acme-gw", "--paths", "acme-gw-*", "--key", team))
    assert "delegated to role acme-gw" in p.stdout, p.stdout
    b = make_bundle(tmp_path, "1.1.0", payload_bytes(41), name="acme-gw")
    before = tree(d)
    p = repo("add", d, b, "--role", "acme-gw", "--keyring", PKI / "keyring.pem")
    assert p.returncode == 10 and "acme-gw: 0 of the 1 keys needed to sign are at hand" in p.stderr, describe(p)
    assert tree(d) == before
    p = ok(repo("add", d, b, "--role", "acme-gw", "--keyring", PKI / "keyring.pem", "--key", team))
    assert "acme-gw version 2, snapshot 3, timestamp 3" in p.stdout, p.stdout
    return d, b, team


def test_delegate_and_add_to_a_role(tmp_path, server, delegated):  # noqa: F811
    www, url = server
    d, b, team = delegated
    top = targets_of(d)
    assert top["version"] == 2 and top["targets"] == {}
    role = top["delegations"]["roles"][0]
    assert role["name"] == "acme-gw" and role["paths"] == ["acme-gw-*"] and role["threshold"] == 1
    assert role["terminating"] is False and list(top["delegations"]["keys"]) == role["keyids"]
    snap = signed(d / "metadata" / f"{snapshot_version(d)}.snapshot.json")
    assert snap["meta"]["acme-gw.json"] == {"version": 2}
    assert b.name in signed(d / "metadata" / "2.acme-gw.json")["targets"]
    p = ok(repo("status", d))
    assert "delegated  acme-gw version 2, " in p.stdout and "1 target(s), paths acme-gw-*" in p.stdout, p.stdout

    # refused, changing nothing: a name outside the role's paths, a second delegation of the name, a role
    # that does not exist, a top-level role's name
    other = make_bundle(tmp_path, "1.2.0", payload_bytes(42), name="other")
    before = tree(d)
    p = repo("add", d, other, "--role", "acme-gw", "--keyring", PKI / "keyring.pem", "--key", team)
    assert p.returncode == 16 and "is outside the paths delegated to role acme-gw" in p.stderr, describe(p)
    p = repo("delegate", d, "acme-gw", "--paths", "x-*")
    assert p.returncode == 16 and "role acme-gw is delegated already" in p.stderr, describe(p)
    p = repo("add", d, other, "--role", "nobody", "--keyring", PKI / "keyring.pem")
    assert p.returncode == 16 and "not a role the targets delegate to" in p.stderr, describe(p)
    p = repo("delegate", d, "snapshot", "--paths", "x-*")
    assert p.returncode == 16 and "not a top-level role's name" in p.stderr, describe(p)
    assert repo("delegate", d, "x").returncode == 2  # no --paths
    assert tree(d) == before

    # our client finds the target through the delegation; the top-level targets stay as they were
    upload(d, www)
    client = Client(tmp_path, url, (d / "metadata" / "1.root.json").read_bytes())
    p = ok(client.offer("acme-gw", "1.0.0"))
    assert b.name in p.stdout, p.stdout
    ok(client.download(b.name))
    assert (client.tg / b.name).read_bytes() == b.read_bytes()
    # a second role for another product line, with a key made in DIR/keys; the team's role is unchanged
    ok(repo("delegate", d, "acme-cam", "--paths", "acme-cam-*"))
    assert len(list((d / "keys").glob("acme-cam-*.pem"))) == 1
    cam = make_bundle(tmp_path, "2.0.0", payload_bytes(43), compatible="acme-cam", name="acme-cam")
    ok(repo("add", d, cam, "--role", "acme-cam", "--keyring", PKI / "keyring.pem"))
    upload(d, www)
    ok(client.refresh())
    p = ok(client.offer("acme-cam"))
    assert cam.name in p.stdout, p.stdout
    p = ok(client.offer("acme-gw", "1.0.0"))
    assert b.name in p.stdout, p.stdout

    # withdrawn by the team: a new version of its role; the top-level targets do not list it
    before = tree(d)
    p = repo("remove", d, b.name)
    assert p.returncode == 16 and f"target {b.name} is not listed" in p.stderr, describe(p)
    p = repo("remove", d, b.name, "--role", "acme-cam")
    assert p.returncode == 16 and f"target {b.name} is not listed by role acme-cam" in p.stderr, describe(p)
    p = repo("remove", d, b.name, "--role", "acme-gw")
    assert p.returncode == 10 and "acme-gw: 0 of the 1 keys needed" in p.stderr, describe(p)
    assert tree(d) == before
    p = ok(repo("remove", d, b.name, "--role", "acme-gw", "--key", team))
    assert f"{d}: acme-gw version 3, snapshot " in p.stdout, p.stdout
    upload(d, www)
    ok(client.refresh())
    p = ok(client.offer("acme-gw", "1.0.0"))
    assert b.name not in p.stdout, p.stdout


def test_daemon_installs_a_delegated_target(tmp_path, world, delegated):  # noqa: F811
    d, b, team = delegated
    w = world(policy="all")
    upload(d, w.www)
    w.root_json.write_bytes((d / "metadata" / "1.root.json").read_bytes())
    w.start(env=SOON)
    w.wait_state("pending-reboot", timeout=120)
    assert slot_b_holds(w.device, payload_bytes(41))
    assert f"update 1.1.0 available ({b.name}, " in w.log(), w.log()


def test_client_refuses_a_wrong_delegated_key_or_a_target_outside_the_paths(tmp_path, server, world,
                                                                             delegated):  # noqa: F811
    """The repository as a forger changes it: the role's metadata signed by another key (refused, nothing
    installed); signed by the role's own key but listing a target outside its paths (never offered)."""
    www, url = server
    d, b, team = delegated
    upload(d, www)
    forged = signed(d / "metadata" / "2.acme-gw.json")
    stray = genkey(tmp_path / "stray.pem")
    resign(www / "metadata" / "2.acme-gw.json", forged, stray)
    client = Client(tmp_path, url, (d / "metadata" / "1.root.json").read_bytes())
    p = client.offer("acme-gw", "1.0.0")
    assert p.returncode != 0 and 'acme-gw: signature threshold not met: 0 of 1' in p.stderr, describe(p)

    w = world(policy="all")
    upload(d, w.www)
    resign(w.www / "metadata" / "2.acme-gw.json", forged, stray)
    w.root_json.write_bytes((d / "metadata" / "1.root.json").read_bytes())
    w.start(env=SOON)
    w.wait(lambda: "signature threshold not met" in w.log(), 120, "the check's refusal")
    assert not slot_b_holds(w.device, payload_bytes(41))
    assert w.get("State") == "error" and "update 1.1.0 available" not in w.log(), w.log()

    # the team's own key, a target outside acme-gw-*: devices never look for it there
    outside = make_bundle(tmp_path, "9.9.9", payload_bytes(44), name="other")
    data = outside.read_bytes()
    shutil.copy(outside, www / "targets" / f"{hashlib.sha256(data).hexdigest()}.{outside.name}")
    forged = signed(d / "metadata" / "2.acme-gw.json")
    forged["targets"][outside.name] = {"length": len(data), "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                                       "custom": {"compatible": "acme-gw", "version": "9.9.9"}}
    resign(www / "metadata" / "2.acme-gw.json", forged, team)
    c2 = tmp_path / "c2"
    c2.mkdir()
    client = Client(c2, url, (d / "metadata" / "1.root.json").read_bytes())
    p = ok(client.offer("acme-gw", "1.0.0"))
    assert b.name in p.stdout and outside.name not in p.stdout, p.stdout
    p = client.download(outside.name)
    assert p.returncode != 0, describe(p)


# ------------------------------------------------------------------------------------------------------
# the other way: repositories tuf-js's metadata classes write, read by our client and upkeepd

def tufjs_repo(tufjs, out, keytype, bundle, custom):
    p = subprocess.run([tufjs.node, str(TUFJS_REPO), str(out), keytype, str(bundle), json.dumps(custom)],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, NODE_PATH=str(tufjs.modules)))
    assert p.returncode == 0, describe(p)
    return out


@pytest.mark.parametrize("keytype", ["ed25519", "ecdsa", "rsa"])
def test_our_client_reads_a_tufjs_repository(tmp_path, server, tufjs, keytype):  # noqa: F811
    """Keys of each type, a terminating delegation to role "products": our client finds the target through
    it and checks its bytes; tuf-js reads what it wrote (the control)."""
    www, url = server
    b = make_bundle(tmp_path, "1.1.0", payload_bytes(41), name="acme-gw")
    custom = {"compatible": "acme-gw", "version": "1.1.0", "manifest_sha256": manifest_sha256(b)}
    tufjs_repo(tufjs, www, keytype, b, custom)
    root = (www / "metadata" / "1.root.json").read_bytes()
    assert json.loads(root)["signed"]["roles"]["root"]["keyids"]
    out = tufjs_ok(tufjs(tmp_path, url, root, b.name))
    assert out["target"]["custom"] == custom

    client = Client(tmp_path, url, root)
    ok(client.refresh())
    assert client.version("timestamp") == 1 and client.version("targets") == 1
    p = ok(client.offer("acme-gw", "1.0.0"))
    assert b.name in p.stdout, p.stdout
    ok(client.download(b.name))
    assert (client.tg / b.name).read_bytes() == b.read_bytes()
    # a changed byte of the target: refused
    (client.tg / b.name).unlink()
    t = www / "targets" / f"{hashlib.sha256(b.read_bytes()).hexdigest()}.{b.name}"
    data = t.read_bytes()
    t.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    p = client.download(b.name)
    assert p.returncode != 0 and "hash" in p.stderr, describe(p)


def test_daemon_installs_from_a_tufjs_repository(tmp_path, world, tufjs):  # noqa: F811
    w = world(policy="all")
    b = make_bundle(tmp_path, "1.1.0", payload_bytes(41), name="acme-gw")
    custom = {"compatible": "acme-gw", "version": "1.1.0", "manifest_sha256": manifest_sha256(b)}
    tufjs_repo(tufjs, w.www, "ed25519", b, custom)
    w.root_json.write_bytes((w.www / "metadata" / "1.root.json").read_bytes())
    w.start(env=SOON)
    w.wait_state("pending-reboot", timeout=120)
    assert slot_b_holds(w.device, payload_bytes(41))
    assert f"update 1.1.0 available ({b.name}, " in w.log(), w.log()


# ------------------------------------------------------------------------------------------------------
# contrib/systemd: the publishing host's timer

CONTRIB_SYSTEMD = Path(__file__).resolve().parents[2] / "contrib" / "systemd"


def test_contrib_timestamp_timer(tmp_path):
    """The service and timer verify without a word from systemd-analyze, and the service's command, run as
    systemd would for the repository, succeeds both when nothing is due (exit 3) and when it re-signs."""
    service = (CONTRIB_SYSTEMD / "upkeep-repo-timestamp@.service").read_text()
    units = tmp_path / "units"
    units.mkdir()
    (units / "upkeep-repo-timestamp@.service").write_text(service.replace("/usr/bin/updatectl", str(UPDATECTL)))
    shutil.copy(CONTRIB_SYSTEMD / "upkeep-repo-timestamp@.timer", units)
    for kind in ("service", "timer"):
        (units / f"upkeep-repo-timestamp@srv-repo.{kind}").symlink_to(f"upkeep-repo-timestamp@.{kind}")
    if shutil.which("systemd-analyze"):
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", "upkeep-repo-timestamp@srv-repo.service",
                            "upkeep-repo-timestamp@srv-repo.timer"], cwd=units, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0 and p.stderr == "", describe(p)

    d = tmp_path / "repo"
    ok(repo("init", d))
    lines = dict(line.split("=", 1) for line in service.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["ConditionPathExists"] == "%f/repo.json" and (d / "repo.json").is_file()
    argv = [str(UPDATECTL) if a == "/usr/bin/updatectl" else a.replace("%f", str(d))
            for a in lines["ExecStart"].split()]
    success = {0} | {int(x) for x in lines["SuccessExitStatus"].split()}
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(int(time.time())))
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 3 and p.returncode in success, describe(p)
    env["SOURCE_DATE_EPOCH"] = str(int(time.time()) + 13 * 3600)
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, describe(p)
    assert timestamp_version(d) == 2


def test_tufjs_reads_delegations_and_offline_signed_versions(tmp_path, server, delegated, tufjs):  # noqa: F811
    """The kinds of repository the later commands make, read by the second client too: a target of a
    delegated role, and a root rotated with an offline key through --offline and sign."""
    www, url = server
    d, b, team = delegated
    upload(d, www)
    root1 = (d / "metadata" / "1.root.json").read_bytes()
    out = tufjs_ok(tufjs(tmp_path, url, root1, b.name))
    assert out["target"]["custom"]["version"] == "1.1.0"
    assert Path(out["target"]["file"]).read_bytes() == b.read_bytes()

    old_root = next((d / "keys").glob("root-*.pem"))
    offline = tmp_path / "old-root.pem"
    shutil.move(str(old_root), str(offline))
    ok(repo("rotate", d, "root", "--offline"))
    p = ok(repo("sign", d, "root", "--key", offline))
    assert "published root version 2" in p.stdout, p.stdout
    upload(d, www)
    out = tufjs_ok(tufjs(tmp_path, url, None, b.name))
    assert out["versions"]["root"] == 2
