# SPDX-License-Identifier: LGPL-2.1-or-later
"""upkeepd polling an update source by itself, on a private bus: a TUF repository written by tufrepo.py
and served by the misbehaving test server (tests/httpserver.py), or a local folder of bundles. The
scheduler (first check, backoff), the policy (auto-install all | security | none, maintenance window,
postpone), the offer rules through the daemon (wrong compatible and lower versions never offered), a
download cut at 50% that resumes while the install streams, TUF attacks failing the check, installs from
a URL, and `updatectl check` / `updatectl install` without an argument."""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from device import PKI, STORED, UPDATECTL, UPKEEPD, Device, payload_bytes, run
from test_daemon import Bus, Monitor, Service
from tufrepo import Repo, expires_in

SOURCE_ROOT = Path(os.environ.get("UPKEEP_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_ROOT / "tests"))
from httpserver import TestServer  # noqa: E402

COMPAT = {"compatible": "acme-gw"}
NO_AUTO_CHECK = {"UPKEEP_TEST_FIRST_CHECK_SEC": "3600"}
SOON = {"UPKEEP_TEST_FIRST_CHECK_SEC": "1"}


def make_bundle(tmp: Path, version, payload: bytes, *, compatible="acme-gw", security=None, name="b", create_args=()):
    """A signed bundle with one raw payload; `security` is the manifest's security.type (or None);
    `create_args`: more options of `updatectl bundle create`."""
    d = tmp / f"src-{name}-{version}-{security}"
    d.mkdir()
    (d / "rootfs.img").write_bytes(payload)
    manifest = {
        "format": 1, "compatible": compatible, "version": version, "build": "2026-11-25T10:00:00Z",
        "payloads": [{"name": "rootfs", "file": "rootfs.img", "handler": "raw", "slot_class": "rootfs"}],
    }
    if security:
        manifest["security"] = {"type": security, "advisories": ["CVE-2026-0001"], "summary": "test"}
    (d / "manifest.json").write_text(json.dumps(manifest))
    out = tmp / f"{name}-{version}-{security}.upk"
    run(UPDATECTL, "bundle", "create", "--manifest", d / "manifest.json", "--cert", PKI / "signer.pem",
        "--key", PKI / "signer.key", "--chain", PKI / "chain.pem", *create_args, "-o", out, check=True)
    return out


class World:
    """A device, a TUF repository on the test server, a private bus; upkeepd started on demand."""

    def __init__(self, tmp_path, policy="all", extra_policy="", source=None):
        self.tmp = tmp_path
        self.www = tmp_path / "www"
        self.www.mkdir(parents=True)
        self.repo = Repo()
        self.server = TestServer(self.www).start()
        self.root_json = tmp_path / "root.json"
        self.root_json.write_bytes(self.repo.trusted_root())
        self.device = Device(tmp_path / "dev", extra_policy=f"auto-install = {policy}\n{extra_policy}")
        if source is None:
            source = (f"type = tuf\nurl = {self.server.url('/')}\nroot = {self.root_json}\n"
                      "poll-interval = 1h\njitter = 0\n")
        with open(self.device.conf, "a") as f:
            f.write(f"\n[source]\n{source}")
        self.bus = Bus()
        self.services = []
        self.monitor = None

    def add(self, bundle, version, compatible="acme-gw", name=None):
        data = Path(bundle).read_bytes()
        name = name or f"acme-gw-{version}-{compatible}.upk"
        self.repo.targets[name] = (data, {"compatible": compatible, "version": version})
        return name

    def publish(self):
        self.repo.publish(self.www)

    def target_path(self, name):
        data = self.repo.targets[name][0]
        return f"/targets/{hashlib.sha256(data).hexdigest()}.{name}"

    def start(self, env=None):
        if not self.monitor:
            self.monitor = Monitor(self.bus)
        s = Service(self.bus, self.device, env=dict({"TZ": "UTC"}, **(env or {})))
        self.services.append(s)
        return s

    def ctl(self, *args):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        return subprocess.run([UPDATECTL, *args], capture_output=True, text=True, env=env, timeout=120)

    def get(self, prop):
        return self.bus.get(prop)

    def wait(self, pred, timeout=60, what="a condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; State={self.get('State')}\n" +
                             "\n".join(s.text() for s in self.services))

    def wait_state(self, state, timeout=60):
        self.wait(lambda: self.get("State") == state, timeout, f"State {state}")

    def log(self):
        return "\n".join(s.text() for s in self.services)

    def close(self):
        for s in self.services:
            s.kill()
        if self.monitor:
            self.monitor.stop()
        self.bus.stop()
        self.server.stop()


def describe(p):
    return f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def slot_b_holds(device, payload):
    return device.slot["B"].read_bytes()[:len(payload)] == payload


# ------------------------------------------------------------------------------------------------------
# The loop


def test_finds_and_installs_by_itself_under_all(tmp_path, world):
    w = world(policy="all")
    payload = payload_bytes(11)
    w.add(make_bundle(tmp_path, "1.1.0", payload), "1.1.0")
    w.publish()
    s = w.start(env=SOON)
    w.wait_state("pending-reboot", timeout=60)

    assert slot_b_holds(w.device, payload)
    assert w.get("AvailableVersion") == ""  # installed: nothing more to offer
    assert w.get("LastError") == ""
    assert w.get("LastCheck") > 0
    assert w.device.state()["pending"]["version"] == "1.1.0"
    text = s.text()
    assert "upkeepd: update 1.1.0 available (acme-gw-1.1.0-acme-gw.upk, " in text, text
    assert "upkeepd: automatically installing version 1.1.0 from http://127.0.0.1:" in text, text
    assert "installed version 1.1.0 into slot B" in text
    states = w.monitor.states()
    assert states[:4] == ["idle", "checking", "idle", "downloading"], states
    assert states[-1] == "pending-reboot", states
    # The trusted metadata is kept under the data dir.
    for role in ("root", "timestamp", "snapshot", "targets"):
        assert (w.device.data / "tuf" / f"{role}.json").is_file()
    # An update that waits for its reboot is not installed again by the next check.
    p = w.ctl("check")
    assert p.returncode == 0, describe(p)
    assert w.get("State") == "pending-reboot"

    # The simulated reboot and the confirmation on slot B.
    s.stop()
    assert w.device.reboot() == "B"
    w.start(env=NO_AUTO_CHECK)
    w.wait_state("idle")
    assert w.get("CurrentVersion") == "1.1.0"
    assert w.get("BootedSlot") == "B"
    p = w.ctl("check")
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)


def test_none_announces_and_holds_until_updatectl_install(tmp_path, world):
    w = world(policy="none")
    payload = payload_bytes(12)
    w.add(make_bundle(tmp_path, "1.1.0", payload), "1.1.0")
    w.publish()
    s = w.start(env=SOON)
    w.wait(lambda: w.get("AvailableVersion") == "1.1.0", what="AvailableVersion 1.1.0")
    w.wait(lambda: "update 1.1.0 held: the policy installs it only on request" in s.text(), what="the hold")
    w.wait_state("idle")
    assert not {"downloading", "installing"} & set(w.monitor.states()), w.monitor.states()
    assert not slot_b_holds(w.device, payload)
    assert w.server.stats(w.target_path("acme-gw-1.1.0-acme-gw.upk"))["requests"] == 0

    p = w.ctl("status", "--json")
    assert json.loads(p.stdout)["available_version"] == "1.1.0", describe(p)
    p = w.ctl("install")
    assert p.returncode == 0, describe(p)
    assert p.stdout.splitlines()[-1] == "installed version 1.1.0 into slot B", describe(p)
    assert slot_b_holds(w.device, payload)
    assert w.get("State") == "pending-reboot"
    # Nothing offered any more: install without an argument says so.
    p = w.ctl("install")
    assert p.returncode == 1, describe(p)
    assert p.stderr == 'updatectl: no update is available (check first: "updatectl check")\n', describe(p)


def test_switched_off_is_like_none(tmp_path, world):
    w = world(policy="all")
    payload = payload_bytes(13)
    w.add(make_bundle(tmp_path, "1.1.0", payload), "1.1.0")
    w.publish()
    w.start(env=NO_AUTO_CHECK)
    assert w.ctl("disable").returncode == 0
    p = w.ctl("check")
    assert p.returncode == 0 and p.stdout == "update available: 1.1.0\n", describe(p)
    w.wait(lambda: "update 1.1.0 held: automatic updates are switched off" in w.log(), what="the hold")
    w.wait_state("idle")
    assert not {"downloading", "installing"} & set(w.monitor.states()), w.monitor.states()
    # Switched on again: the held update goes in at once.
    assert w.ctl("enable").returncode == 0
    w.wait_state("pending-reboot")
    assert slot_b_holds(w.device, payload)


@pytest.mark.parametrize("security,installed", [("security", True), ("mixed", True), ("feature", False),
                                                (None, False)])
def test_security_policy(tmp_path, world, security, installed):
    w = world(policy="security")
    # Held bundles are big (their blocks stored as they are), to see that only their head was read.
    payload = payload_bytes(14, 1024 * 1024 if installed else 32 * 1024 * 1024)
    w.add(make_bundle(tmp_path, "1.1.0", payload, security=security, create_args=STORED), "1.1.0")
    w.publish()
    s = w.start(env=NO_AUTO_CHECK)
    p = w.ctl("check")
    assert p.returncode == 0 and p.stdout == "update available: 1.1.0\n", describe(p)
    if installed:
        w.wait_state("pending-reboot")
        assert slot_b_holds(w.device, payload)
        assert f"update 1.1.0 available (acme-gw-1.1.0-acme-gw.upk, " in s.text()
        assert f" bytes, {security})" in s.text()
    else:
        w.wait(lambda: "update 1.1.0 held: the policy installs it only on request" in s.text(), what="the hold")
        w.wait_state("idle")
        assert not {"downloading", "installing"} & set(w.monitor.states()), w.monitor.states()
        assert w.get("AvailableVersion") == "1.1.0"
        assert not slot_b_holds(w.device, payload)
        # Only the head of the bundle was read to learn its security type, not the whole bundle.
        sent = w.server.stats(w.target_path("acme-gw-1.1.0-acme-gw.upk"))["bytes_sent"]
        assert sent < len(w.repo.targets["acme-gw-1.1.0-acme-gw.upk"][0]) // 2, sent


def test_the_version_rolled_back_is_not_installed_again_by_itself(tmp_path, world):
    """After 1.1.0 was rolled back here (the record acknowledged, even), a check offers 1.1.0 but the
    policy does not install it; a newer security update goes in by itself."""
    w = world(policy="security")
    w.device.data.mkdir(exist_ok=True)
    (w.device.data / "state.json").write_text(json.dumps({"rollback": {
        "version": "1.1.0", "slot": "B", "reason": "health check failed", "time": 1, "acknowledged": True}}))
    held = payload_bytes(41)
    w.add(make_bundle(tmp_path, "1.1.0", held, security="security"), "1.1.0")
    w.publish()
    s = w.start(env=NO_AUTO_CHECK)
    p = w.ctl("check")
    assert p.returncode == 0 and p.stdout == "update available: 1.1.0\n", describe(p)
    w.wait(lambda: "update 1.1.0 held: it is not newer than the update that was rolled back here "
           "(\"updatectl install\" installs it)" in s.text(), what="the hold")
    w.wait_state("idle")
    assert not {"downloading", "installing"} & set(w.monitor.states()), w.monitor.states()
    assert not slot_b_holds(w.device, held)

    payload = payload_bytes(42)
    w.add(make_bundle(tmp_path, "1.2.0", payload, security="security"), "1.2.0")
    w.repo.bump("timestamp", "snapshot", "targets")
    w.publish()
    p = w.ctl("check")
    assert p.returncode == 0 and p.stdout == "update available: 1.2.0\n", describe(p)
    w.wait_state("pending-reboot")
    assert slot_b_holds(w.device, payload)


def test_wrong_compatible_and_lower_versions_are_never_offered(tmp_path, world):
    w = world(policy="all")
    w.add(make_bundle(tmp_path, "9.0.0", b"x" * 4096, compatible="other-gw"), "9.0.0", compatible="other-gw")
    w.add(make_bundle(tmp_path, "0.9.0", b"y" * 4096), "0.9.0")
    w.add(make_bundle(tmp_path, "1.0.0", b"z" * 4096), "1.0.0")
    w.publish()
    s = w.start(env=NO_AUTO_CHECK)
    p = w.ctl("check")
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    assert w.get("AvailableVersion") == ""
    assert w.get("State") == "idle"
    assert "up to date (1.0.0)" in s.text()
    assert w.device.slot["B"].read_bytes() == b""
    # A newer compatible target is offered, the newest of several.
    w.add(make_bundle(tmp_path, "1.2.0", payload_bytes(15)), "1.2.0")
    w.add(make_bundle(tmp_path, "1.1.0", payload_bytes(16)), "1.1.0")
    w.repo.bump("targets", "snapshot", "timestamp")
    w.publish()
    assert w.bus.call("Check") == ["1.2.0"]
    w.wait_state("pending-reboot")
    assert w.device.state()["pending"]["version"] == "1.2.0"


def whole_downloads_only(w):
    """The whole bundle streamed, as these tests count its requests ([install] delta = no)."""
    with open(w.device.conf, "a") as f:
        f.write("\n[install]\ndelta = no\n")


def test_download_cut_at_half_resumes_and_the_install_completes(tmp_path, world):
    w = world(policy="all")
    whole_downloads_only(w)
    payload = payload_bytes(17, 8 * 1024 * 1024)
    name = w.add(make_bundle(tmp_path, "1.1.0", payload), "1.1.0")
    w.publish()
    size = len(w.repo.targets[name][0])
    path = w.target_path(name)
    w.server.plan(path, cut_at=size // 2)
    w.start(env=SOON)
    w.wait_state("pending-reboot", timeout=90)
    assert slot_b_holds(w.device, payload)
    st = w.server.stats(path)
    assert st["requests"] == 2, st
    assert st["ranges"][0] is None and st["ranges"][1].startswith("bytes="), st
    resumed_at = int(st["ranges"][1][len("bytes="):].rstrip("-"))
    assert size // 2 - 1024 * 1024 <= resumed_at <= size // 2, st
    assert st["bytes_sent"] <= 1.05 * size, (st["bytes_sent"], size)
    assert st["agents"][0].startswith("upkeep/"), st


def test_outside_the_maintenance_window_the_update_is_held(tmp_path, world):
    now = datetime.now(timezone.utc)
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    w = world(policy="all", extra_policy=f"maintenance-window = {start:%H:%M}-{end:%H:%M}\n")
    payload = payload_bytes(18)
    w.add(make_bundle(tmp_path, "1.1.0", payload), "1.1.0")
    w.publish()
    s = w.start(env=SOON)
    w.wait(lambda: w.get("AvailableVersion") == "1.1.0", what="AvailableVersion")
    w.wait(lambda: "update 1.1.0 held: outside the maintenance window" in s.text(), what="the hold")
    w.wait_state("idle")
    assert not {"downloading", "installing"} & set(w.monitor.states()), w.monitor.states()
    assert not slot_b_holds(w.device, payload)
    assert re.search(r"update 1.1.0 held: outside the maintenance window; asking again in (1h [45][0-9]m|2h) ",
                     s.text()), s.text()
    # A person may still install it.
    p = w.ctl("install")
    assert p.returncode == 0, describe(p)
    assert slot_b_holds(w.device, payload)


def test_inside_the_maintenance_window_it_installs(tmp_path, world):
    now = datetime.now(timezone.utc)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    w = world(policy="all", extra_policy=f"maintenance-window = {start:%H:%M}-{end:%H:%M}\n")
    payload = payload_bytes(19)
    w.add(make_bundle(tmp_path, "1.1.0", payload), "1.1.0")
    w.publish()
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    assert slot_b_holds(w.device, payload)


def test_postpone_holds_then_lifting_it_installs(tmp_path, world):
    w = world(policy="all")
    payload = payload_bytes(20)
    w.add(make_bundle(tmp_path, "1.1.0", payload), "1.1.0")
    w.publish()
    s = w.start(env=NO_AUTO_CHECK)
    p = w.ctl("postpone", "2h")
    assert p.returncode == 0, describe(p)
    assert w.bus.call("Check") == ["1.1.0"]
    w.wait(lambda: "update 1.1.0 held: automatic installs are postponed" in s.text(), what="the hold")
    w.wait_state("idle")
    assert not {"downloading", "installing"} & set(w.monitor.states()), w.monitor.states()
    assert not slot_b_holds(w.device, payload)
    assert re.search(r"update 1.1.0 held: automatic installs are postponed; asking again in (1h [45][0-9]m|2h) ",
                     s.text()), s.text()
    # Postponed until a moment in the past: the hold ends at once.
    w.bus.call("Postpone", "t", str(int(time.time() * 1e6) - 1000000))
    w.wait_state("pending-reboot")
    assert slot_b_holds(w.device, payload)


def test_a_failed_check_backs_off_and_the_next_check_works(tmp_path, world):
    w = world(policy="none")
    w.add(make_bundle(tmp_path, "1.1.0", payload_bytes(21)), "1.1.0")
    w.publish()
    w.server.plan("/metadata/timestamp.json", status=404, status_times=2)
    s = w.start(env=dict(SOON, UPKEEP_TEST_BACKOFF_SEC="1"))
    w.wait(lambda: w.get("AvailableVersion") == "1.1.0", timeout=30, what="a successful check")
    text = s.text()
    first = text.index("retrying in 1s")
    second = text.index("retrying in 2s")
    assert first < second < text.index("update 1.1.0 available"), text
    assert "check failed: " in text and "timestamp" in text
    assert w.get("LastError") == ""
    assert w.get("State") == "idle"
    assert "next check in 1h" in text[second:]
    assert w.server.stats("/metadata/timestamp.json")["statuses"][:3] == [404, 404, 200]


def test_expired_timestamp_fails_the_check(tmp_path, world):
    w = world(policy="all")
    payload = payload_bytes(22)
    w.add(make_bundle(tmp_path, "1.1.0", payload), "1.1.0")
    w.repo.expires["timestamp"] = "2020-01-01T00:00:00Z"
    w.publish()
    w.start(env=NO_AUTO_CHECK)
    p = w.ctl("check")
    assert p.returncode == 10, describe(p)  # a signature/freshness failure of the metadata
    assert "timestamp" in p.stderr and "expired" in p.stderr, describe(p)
    err = w.get("LastError")
    assert "timestamp" in err and "expired at 2020-01-01T00:00:00Z" in err, err
    assert w.get("State") == "error"
    assert w.get("AvailableVersion") == ""
    assert w.get("LastCheck") == 0
    assert not slot_b_holds(w.device, payload)
    assert not (w.device.data / "tuf" / "timestamp.json").exists()
    # The repository is fixed: the next check works from the trusted metadata.
    w.repo.expires["timestamp"] = expires_in(7)
    w.repo.bump("timestamp")
    w.publish()
    assert w.bus.call("Check") == ["1.1.0"]
    w.wait_state("pending-reboot")
    assert w.get("LastError") == ""


def test_target_longer_than_its_metadata_is_cut_off(tmp_path, world):
    w = world(policy="all")
    payload = payload_bytes(23)
    name = w.add(make_bundle(tmp_path, "1.1.0", payload), "1.1.0")
    w.publish()
    w.server.plan(w.target_path(name), extra=1000000, extra_mode="announced")
    w.start(env=NO_AUTO_CHECK)
    assert w.bus.call("Check") == ["1.1.0"]
    w.wait_state("error")
    err = w.get("LastError")
    assert "more than" in err or "length" in err, err
    assert w.device.primary() == "A"


@pytest.mark.parametrize("with_manifest_sha256", [False, True])
def test_target_bytes_other_than_the_metadata_are_rejected(tmp_path, world, with_manifest_sha256):
    """The server sends another, validly signed bundle of the same length: the bundle signature and the
    payload hashes pass, the TUF hash check at the end of the stream does not, before activation. With
    custom.manifest_sha256 in the target, the other manifest is refused already when it has been read."""
    w = world(policy="all")
    good = make_bundle(tmp_path, "1.1.0", payload_bytes(24), name="good").read_bytes()
    evil = make_bundle(tmp_path, "1.1.0", payload_bytes(25), name="evil").read_bytes()
    # Same payload size, same signer: the bundles have the same length, so only the hash can tell.
    assert len(good) == len(evil), (len(good), len(evil))
    name = w.add(tmp_path / "good-1.1.0-None.upk", "1.1.0")
    if not with_manifest_sha256:
        w.repo.targets[name][1]["manifest_sha256"] = None  # tufrepo: leave it out
    w.publish()
    (w.www / w.target_path(name).lstrip("/")).write_bytes(evil)
    w.start(env=NO_AUTO_CHECK)
    assert w.bus.call("Check") == ["1.1.0"]
    w.wait_state("error")
    err = w.get("LastError")
    if with_manifest_sha256:
        assert f"target {name}: the bundle's manifest.json has sha256 " in err, err
    else:
        assert name in err and "hash" in err, err
    assert w.device.primary() == "A"
    assert not w.device.state().get("pending")


def manifest_bytes_of(bundle):
    import tarfile
    with tarfile.open(bundle, mode="r:") as tar:
        first = tar.next()
        assert first.name == "manifest.json"
        return tar.extractfile(first).read()


def test_targets_carry_manifest_sha256(tmp_path, world):
    w = world(policy="none")
    b = make_bundle(tmp_path, "1.1.0", payload_bytes(26))
    name = w.add(b, "1.1.0")
    w.publish()
    targets = json.loads(max((w.www / "metadata").glob("*.targets.json")).read_text())["signed"]["targets"]
    assert targets[name]["custom"]["manifest_sha256"] == hashlib.sha256(manifest_bytes_of(b)).hexdigest()
    # The matching value lets the install through.
    w.start(env=NO_AUTO_CHECK)
    assert w.bus.call("Check") == ["1.1.0"]
    p = w.ctl("install")
    assert p.returncode == 0, describe(p) + w.log()


@pytest.mark.parametrize("policy", ["none", "security"])
def test_manifest_sha256_mismatch_is_refused(tmp_path, world, policy):
    """The target's bytes match its hashes, but custom.manifest_sha256 names another manifest: refused
    before the installer sees the manifest (policy none: at the install; security: already when the
    check reads the bundle's head), nothing installed."""
    w = world(policy=policy)
    payload = payload_bytes(27)
    b = make_bundle(tmp_path, "1.1.0", payload, security="security")
    name = "acme-gw-1.1.0-acme-gw.upk"
    wrong = hashlib.sha256(b"another manifest").hexdigest()
    w.repo.targets[name] = (b.read_bytes(), {"compatible": "acme-gw", "version": "1.1.0",
                                             "manifest_sha256": wrong})
    w.publish()
    right = hashlib.sha256(manifest_bytes_of(b)).hexdigest()
    reason = (f"target {name}: the bundle's manifest.json has sha256 {right}, but the repository's "
              f"custom.manifest_sha256 says {wrong}")
    w.start(env=NO_AUTO_CHECK)
    if policy == "none":
        assert w.bus.call("Check") == ["1.1.0"]
        p = w.ctl("install")
        assert p.returncode != 0, describe(p)
        assert reason in p.stderr, describe(p) + w.log()
    else:
        p = w.ctl("check")
        assert p.returncode != 0, describe(p)
        assert reason in p.stderr, describe(p) + w.log()
        assert w.get("AvailableVersion") == ""
    w.wait_state("error")
    assert reason in w.get("LastError")
    assert not slot_b_holds(w.device, payload)
    assert w.device.primary() == "A"
    state = w.device.data / "state.json"
    assert not state.exists() or not w.device.state().get("pending")


# ------------------------------------------------------------------------------------------------------
# Other sources and URLs


def test_local_source(tmp_path, world):
    folder = tmp_path / "usb"
    folder.mkdir()
    w = world(policy="all", source=f"type = local\ndir = {folder}\n")
    payload = payload_bytes(26)
    for version, compatible, seed in (("1.1.0", "acme-gw", 26), ("1.3.0", "other-gw", 27),
                                      ("0.9.0", "acme-gw", 28)):
        b = make_bundle(tmp_path, version, payload_bytes(seed), compatible=compatible)
        (folder / b.name).write_bytes(b.read_bytes())
    (folder / "junk.upk").write_bytes(b"not a bundle")
    (folder / "notes.txt").write_text("ignored")
    s = w.start(env=SOON)
    w.wait_state("pending-reboot")
    assert slot_b_holds(w.device, payload)
    assert "update 1.1.0 available (b-1.1.0-None.upk, " in s.text(), s.text()


def test_install_from_a_url_resumes_after_a_cut(tmp_path, world):
    w = world(policy="none", source="type = none\n")
    whole_downloads_only(w)
    payload = payload_bytes(29, 4 * 1024 * 1024)
    b = make_bundle(tmp_path, "1.1.0", payload)
    (w.www / "b.upk").write_bytes(b.read_bytes())
    size = b.stat().st_size
    w.server.plan("/b.upk", cut_at=size // 2)
    w.start(env=NO_AUTO_CHECK)
    p = w.ctl("install", w.server.url("/b.upk"))
    assert p.returncode == 0, describe(p)
    assert p.stdout.splitlines()[-1] == "installed version 1.1.0 into slot B", describe(p)
    assert slot_b_holds(w.device, payload)
    st = w.server.stats("/b.upk")
    assert st["requests"] == 2 and st["bytes_sent"] <= 1.05 * size, st
    assert "downloading" in w.monitor.states()
    # A URL that does not exist: a final HTTP error, said as such.
    p = w.ctl("install", w.server.url("/missing.upk"))
    assert p.returncode == 1, describe(p)
    assert "404" in p.stderr or "not found" in p.stderr.lower(), describe(p)


def test_hawkbit_without_its_token_is_refused_at_the_start(tmp_path):
    d = Device(tmp_path / "dev")
    with open(d.conf, "a") as f:
        f.write("\n[source]\ntype = hawkbit\nurl = https://hawkbit.example.com/\ncontroller-id = gw-1\n")
    p = subprocess.run([UPKEEPD, "--config", str(d.conf)], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent"))
    assert p.returncode == 16, describe(p)
    if os.environ.get("UPKEEP_HAWKBIT", "1") == "1":
        assert p.stderr == "upkeepd: [source] token-file: required for auth = target-token\n", describe(p)
    else:
        assert "built without hawkBit support" in p.stderr, describe(p)


def test_tuf_without_a_root_is_refused_at_the_start(tmp_path):
    d = Device(tmp_path / "dev")
    with open(d.conf, "a") as f:
        f.write("\n[source]\ntype = tuf\nurl = https://updates.example.com/\n")
    p = subprocess.run([UPKEEPD, "--config", str(d.conf)], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent"))
    assert p.returncode == 16, describe(p)
    assert p.stderr.startswith("upkeepd: [source] root: required for type = tuf"), describe(p)


# ------------------------------------------------------------------------------------------------------
# A TUF target that carries custom.manifest_sha256 installs as a delta when the booted slot holds an
# older image ([install] delta, on by default): only the blocks it lacks are downloaded, the manifest is
# checked against the repository's digest first.

DELTA_RE = re.compile(r"delta: (\d+) of (\d+) bytes of the payloads taken from slot A, (\d+) bytes downloaded "
                      r"in (\d+) requests \(([\d.]+)% of the bundle's (\d+) bytes\)")


def delta_pair(seed):
    """v1 in slot A and v2: v2 changes 8 of v1's 4 KiB blocks."""
    v1 = bytearray(payload_bytes(seed))
    v2 = bytearray(v1)
    for k in range(8):
        at = (k * 37 + 5) % (len(v2) // 4096) * 4096
        v2[at:at + 4096] = hashlib.sha256(bytes([k])).digest() * 128
    return bytes(v1), bytes(v2)


def test_tuf_target_installs_as_a_delta(tmp_path, world):
    w = world(policy="none")
    v1, v2 = delta_pair(41)
    w.device.slot["A"].write_bytes(v1)
    b = make_bundle(tmp_path, "1.1.0", v2, create_args=STORED)  # a bundle as large as the image
    name = w.add(b, "1.1.0")
    w.publish()
    w.start(env=NO_AUTO_CHECK)
    assert w.bus.call("Check") == ["1.1.0"]
    p = w.ctl("install")
    assert p.returncode == 0, describe(p) + w.log()
    assert slot_b_holds(w.device, v2)
    m = DELTA_RE.search(w.log())
    assert m, w.log()
    reused, total, wire, requests = (int(m.group(i)) for i in (1, 2, 3, 4))
    size = b.stat().st_size
    assert total == len(v2) and reused >= len(v2) - 9 * 4096, m.group(0)
    assert wire < size // 4 and requests < 10, m.group(0)
    st = w.server.stats(w.target_path(name))
    assert all(r is not None for r in st["ranges"]), st["ranges"]
    assert st["bytes_sent"] < size // 4, (st["bytes_sent"], size)
    w.wait_state("pending-reboot")
    assert "downloading" in w.monitor.states(), w.monitor.states()


def test_tuf_delta_refuses_another_manifest(tmp_path, world):
    w = world(policy="none")
    v1, v2 = delta_pair(43)
    w.device.slot["A"].write_bytes(v1)
    b = make_bundle(tmp_path, "1.1.0", v2, create_args=STORED)  # a bundle as large as the image
    name = "acme-gw-1.1.0-acme-gw.upk"
    wrong = hashlib.sha256(b"another manifest").hexdigest()
    w.repo.targets[name] = (b.read_bytes(), {"compatible": "acme-gw", "version": "1.1.0",
                                             "manifest_sha256": wrong})
    w.publish()
    right = hashlib.sha256(manifest_bytes_of(b)).hexdigest()
    w.start(env=NO_AUTO_CHECK)
    assert w.bus.call("Check") == ["1.1.0"]
    p = w.ctl("install")
    assert p.returncode != 0, describe(p)
    assert (f"target {name}: the bundle's manifest.json has sha256 {right}, but the repository's "
            f"custom.manifest_sha256 says {wrong}") in p.stderr, describe(p) + w.log()
    assert "downloading the whole bundle" not in w.log()
    assert w.device.primary() == "A"
