# SPDX-License-Identifier: LGPL-2.1-or-later
"""upkeepd with [source] type = hawkbit against the DDI emulator (tests/hawkbit_emu.py), on a private
bus: the deployment found by the poll and installed through the URL install path, `proceeding` while it
runs, nothing final before the reboot, `closed + success` exactly once after the confirmation (also when
the server is down at that moment and the daemon restarts), `closed + failure` with the reason after a
fall back and for a bundle the keyring refuses, cancel before the install (accepted) and while the
reboot is pending (refused), 401 naming the credential, bad and oversized answers, 404 on the download,
configData, the artifacts that are not bundles, ETag/304."""

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pytest

from device import STORED, Device, make_bundle, payload_bytes
from test_daemon import Bus, Monitor, Service
from test_poll import World as PollWorld

SOURCE_ROOT = Path(os.environ.get("UPKEEP_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_ROOT / "tests"))
from hawkbit_emu import Emulator  # noqa: E402
from httpserver import make_tls_files  # noqa: E402

UPDATECTL = os.environ["UPDATECTL"]
TOKEN = "s3cr3t-target-token-0042"
NO_AUTO_CHECK = {"UPKEEP_TEST_FIRST_CHECK_SEC": "3600"}
SOON = {"UPKEEP_TEST_FIRST_CHECK_SEC": "1"}


class World(PollWorld):
    """A device, the emulator with target gw-0042, a private bus; upkeepd started on demand (ctl, get,
    wait, wait_state and log as test_poll's World). `[install] delta` is `no` unless asked: these tests
    pin the whole download's requests (a delta would first read the bundle's head with a Range request,
    then fall back for the format 1 bundles made here); test_hawkbit_delta.py covers deltas."""

    def __init__(self, tmp, policy="all", auth="target-token", token=TOKEN + "\n", health_fail=False, tls=None,
                 delta="no"):
        self.tmp = tmp
        # tls: make_tls_files()'s certificates: the emulator on https, asking for a client certificate
        self.emu = Emulator(tls=(tls["server"], tls["server-key"]) if tls else None,
                            client_ca=tls["client-ca"] if tls else None).start()
        self.emu.target("gw-0042", token=TOKEN)
        self.device = Device(tmp / "dev", extra_policy=f"auto-install = {policy}\n")
        conf = self.device.conf.read_text()
        assert "\n[install]\n" in conf, conf
        self.device.conf.write_text(conf.replace("\n[install]\n", f"\n[install]\ndelta = {delta}\n", 1))
        self.token_file = tmp / "hawkbit.token"
        self.token_file.write_text(token)
        self.token_file.chmod(0o600)
        with open(self.device.conf, "a") as f:
            f.write(f"\n[source]\ntype = hawkbit\nurl = {self.emu.url('/')}\ntenant = DEFAULT\n"
                    f"controller-id = gw-0042\nauth = {auth}\ntoken-file = {self.token_file}\n"
                    "poll-interval = 1h\njitter = 0\n" +
                    (f"ca = {tls['ca']}\nclient-cert = {tls['client']}\nclient-key = {tls['client-key']}\n"
                     if tls else "") + "\n[attributes]\nsite = plant 4\n")
        if health_fail:
            check = self.device.health / "10-fail"
            check.write_text("#!/bin/sh\necho 'gateway unreachable' >&2\nexit 3\n")
            check.chmod(0o755)
        self.bus = Bus()
        self.monitor = Monitor(self.bus)
        self.services = []

    def bundle(self, version="1.1.0", seed=7, signer="signer"):
        """Its blocks stored as they are: the tests cut, stall and count the download at its bytes."""
        return make_bundle(self.tmp, version, payload_bytes(seed, 256 * 1024), name=f"{signer}-{seed}",
                           signer=signer, create_args=STORED).read_bytes()

    def assign(self, data, version="1.1.0", extra=None, **kw):
        files = {f"acme-gw-{version}.upk": data}
        files.update(extra or {})
        sm = self.emu.module(files, version=version)
        return sm, self.emu.assign("gw-0042", [sm], **kw)

    def start(self, env=None):
        s = Service(self.bus, self.device, env=dict({"TZ": "UTC"}, **(env or NO_AUTO_CHECK)))
        self.services.append(s)
        return s

    def closed(self, aid):
        return [f for f in self.emu.feedback(aid, "deployment") if f.get("execution") == "closed"]

    def close(self):
        for s in self.services:
            s.kill()
        self.monitor.stop()
        self.bus.stop()
        self.emu.stop()


def pending(w):
    """The state's pending update; None also before the daemon wrote state.json."""
    state = w.device.data / "state.json"
    return json.loads(state.read_text()).get("pending") if state.exists() else None


def describe(p):
    return f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def check(w):
    p = w.ctl("check")
    return p


def reboot_and_start(w, env=None):
    for s in w.services:
        s.stop()
    assert w.device.reboot() in ("A", "B")
    return w.start(env=env or SOON)


# ------------------------------------------------------------------------------------------------------


def test_forced_deployment_reported_only_after_the_reboot(world):
    w = world()
    data = w.bundle()
    sm, a = w.assign(data, extra={"release-notes.txt": b"notes\n"})
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    assert w.device.slot["B"].read_bytes()[:1000] == payload_bytes(7, 256 * 1024)[:1000]
    # The download went through the emulator with the target token; the other artifact was not fetched.
    dl = [r for r in w.emu.requests_to("download")]
    assert dl and all(r["auth"] == f"TargetToken {TOKEN}" for r in dl), dl
    assert all("release-notes" not in r["path"] for r in dl)
    # proceeding while it ran, naming the ignored artifact; nothing final before the reboot.
    w.wait(lambda: w.emu.feedback(a.id), what="the first proceeding")
    first = w.emu.feedback(a.id)[0]
    assert (first["execution"], first["finished"], first["id"]) == ("proceeding", "none", str(a.id))
    assert any("ignored artifact release-notes.txt: not an upkeep bundle" in d for d in first["details"])
    assert "timestamp" not in first["body"]
    assert not w.closed(a.id)
    # The device's attributes went with the first poll: upkeep's own and [attributes].
    attrs = w.emu.targets[("default", "gw-0042")].attributes
    assert attrs["compatible"] == "acme-gw" and attrs["version"] == "1.0.0", attrs
    assert attrs["site"] == "plant 4" and attrs["os_version_id"] == "1.0.0" and attrs["kernel"], attrs
    assert attrs["auto_install"] == "all" and "support_end" not in attrs, attrs
    # The next check says "installed, waiting for the reboot" and does not install again.
    p = check(w)
    assert p.returncode == 0, describe(p)
    assert any("waiting for the reboot" in " ".join(f["details"]) for f in w.emu.feedback(a.id))
    assert not w.closed(a.id) and a.status == "RUNNING"
    assert w.get("State") == "pending-reboot"
    state = json.loads((w.device.data / "hawkbit.json").read_text())
    assert (state["action"], state["phase"], state["version"]) == (str(a.id), "installed", "1.1.0")

    s2 = reboot_and_start(w)
    w.wait(lambda: w.closed(a.id), what="the final report")
    assert w.get("CurrentVersion") == "1.1.0"
    closed = w.closed(a.id)
    assert [(f["finished"], f["accepted"]) for f in closed] == [("success", True)], closed
    assert a.status == "FINISHED"
    assert not (w.device.data / "hawkbit.json").exists()
    assert f"hawkBit action {a.id}: reported closed + success" in s2.text()
    # Exactly once: later checks send nothing more; the installed version is not offered again.
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    assert len(w.closed(a.id)) == 1
    assert TOKEN not in w.log()
    # The server asked for the attributes again after the success: the new version and its support end.
    attrs = w.emu.targets[("default", "gw-0042")].attributes
    assert (attrs["version"], attrs["support_end"]) == ("1.1.0", "2031-12-31"), attrs


def test_fall_back_reported_as_failure_with_the_reason(world):
    w = world(health_fail=True)
    _, a = w.assign(w.bundle())
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    reboot_and_start(w)
    w.wait(lambda: w.closed(a.id), what="the final report")
    closed = w.closed(a.id)
    assert len(closed) == 1 and closed[0]["finished"] == "failure", closed
    detail = " ".join(closed[0]["details"])
    assert "version 1.1.0 did not stay" in detail and "gateway unreachable" in detail, detail
    assert a.status == "ERROR"


def test_bundle_of_an_unknown_signer_reported_as_failure(world):
    w = world()
    _, a = w.assign(w.bundle(signer="other-signer"))
    w.start(env=SOON)
    w.wait(lambda: w.closed(a.id), what="the failure report")
    closed = w.closed(a.id)
    assert len(closed) == 1 and closed[0]["finished"] == "failure", closed
    assert "nothing was activated" in closed[0]["details"][0], closed
    assert w.device.primary() == "A"
    assert not w.device.state().get("pending")


def test_final_report_waits_for_the_server_across_restarts(world):
    w = world()
    _, a = w.assign(w.bundle())
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    w.emu.fault("deploymentFeedback", status=503, times=-1, body="<html>down</html>")
    s = reboot_and_start(w)
    w.wait(lambda: any(f.get("execution") == "closed" for f in w.emu.feedback(a.id)) or
           "cannot report the result of action" in s.text() or
           any(r["status"] == 503 for r in w.emu.requests_to("deploymentFeedback")),
           what="a refused report")
    w.wait(lambda: "check failed" in s.text(), what="the failed check")
    assert a.status == "RUNNING"
    assert json.loads((w.device.data / "hawkbit.json").read_text())["phase"] == "report"
    # The daemon restarts while the server is still down, then the server comes back.
    for x in w.services:
        x.stop()
    w.start()
    w.emu.clear_faults()
    p = check(w)
    assert p.returncode == 0, describe(p)
    accepted = [f for f in w.closed(a.id) if f["accepted"]]
    assert len(accepted) == 1 and accepted[0]["finished"] == "success"
    p = check(w)
    assert len([f for f in w.closed(a.id) if f["accepted"]]) == 1


def test_cancel_before_install_is_accepted_and_after_install_refused(world):
    w = world(policy="none")
    _, a = w.assign(w.bundle())
    w.start()
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    w.emu.cancel(a.id)
    p = check(w)
    assert p.returncode == 0, describe(p)
    fb = w.emu.feedback(a.id, "cancel")
    assert [(f["execution"], f["finished"]) for f in fb] == [("closed", "success")]
    assert a.status == "CANCELED" and not w.emu.requests_to("download")

    _, b = w.assign(w.bundle(seed=8))
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    p = w.ctl("install")
    assert p.returncode == 0, describe(p)
    w.wait_state("pending-reboot")
    w.emu.cancel(b.id)
    p = check(w)
    assert p.returncode == 0, describe(p)
    fb = w.emu.feedback(b.id, "cancel")
    assert [f["execution"] for f in fb] == ["rejected"], fb
    assert "waits for the reboot" in fb[0]["details"][0]
    assert b.status == "RUNNING"
    reboot_and_start(w)
    w.wait(lambda: w.closed(b.id), what="the final report")
    assert b.status == "FINISHED"


def test_401_names_the_credential_and_never_logs_it(world):
    w = world(token="wrong-token\n")
    w.start()
    p = check(w)
    assert p.returncode != 0
    assert "did not accept the target token from" in p.stderr and str(w.token_file) in p.stderr, describe(p)
    assert "HTTP 401" in w.get("LastError")
    assert "wrong-token" not in w.log() + p.stderr


@pytest.mark.parametrize("body, message", [
    ('{"config": {"polling": ', "poll answer"),
    ("", "empty answer"),
    ('{"config": {}, "_links": {"deploymentBase": "x"}}', "deploymentBase"),
    ("[" * 10 + "]" * 10, "poll answer"),
    ('{"pad": "' + "x" * (300 * 1024) + '"}', "allowed"),
], ids=["cut", "empty", "link-not-object", "not-an-object", "oversized"])
def test_bad_poll_answers_fail_the_check_and_say_why(world, body, message):
    w = world()
    w.start()
    w.emu.fault("poll", status=200, body=body)
    p = check(w)
    assert p.returncode != 0 and message in p.stderr, describe(p)
    assert w.get("State") == "error"
    p = check(w)
    assert p.returncode == 0, describe(p)


def test_server_down_and_5xx(world):
    w = world()
    w.start()
    w.emu.fault("poll", status=503, times=1, body="<html>Service Unavailable</html>")
    p = check(w)
    assert p.returncode != 0 and "HTTP 503" in p.stderr, describe(p)
    port = w.emu.port
    w.emu.stop()
    p = check(w)
    assert p.returncode != 0 and f"127.0.0.1:{port}" in p.stderr, describe(p)


def test_404_on_the_download_stops(world):
    w = world()
    _, a = w.assign(w.bundle())
    w.emu.fault("download", status=404, times=-1)
    s = w.start(env=SOON)
    w.wait(lambda: "its artifact is gone (404)" in s.text(), what="the stop")
    w.wait(lambda: w.get("State") in ("error", "idle"), what="the end of the install")
    assert len(w.emu.requests_to("download")) == 1
    assert not w.closed(a.id)
    assert not (w.device.data / "hawkbit.json").exists()


@pytest.mark.parametrize("case", ["no-bundle", "no-artifacts", "encrypted"])
def test_a_deployment_without_a_usable_bundle_is_refused(world, case):
    """Scenario 7: no bundle among the artifacts, no artifacts at all, or a bundle the server encrypted
    (hawkBit's artifact encryption, which the device does not decrypt): closed + failure saying so, once,
    and nothing downloaded."""
    w = world()
    files, message = {
        "no-bundle": ({"firmware.swu": b"not ours"}, "no upkeep bundle (*.upk) among the 1 artifacts"),
        "no-artifacts": ({}, "no upkeep bundle (*.upk) among the 0 artifacts"),
        "encrypted": ({"acme-gw-1.1.0.upk": w.bundle()}, "acme-gw-1.1.0.upk is encrypted by the server"),
    }[case]
    sm = w.emu.module(files, encrypted=case == "encrypted")
    a = w.emu.assign("gw-0042", [sm])
    w.start()
    p = check(w)
    assert p.returncode == 0, describe(p)
    closed = w.closed(a.id)
    assert [f["finished"] for f in closed] == ["failure"], closed
    assert message in closed[0]["details"][0], closed
    assert not w.emu.requests_to("download") and w.device.primary() == "A"


def test_attributes_sent_again_when_one_changes(world):
    w = world()
    w.start()
    assert check(w).returncode == 0
    assert check(w).returncode == 0
    puts = w.emu.requests_to("configData")
    assert len(puts) == 1, puts
    w.emu.targets[("default", "gw-0042")].attributes["site"] = "stale"
    for s in w.services:
        s.stop()
    with open(w.device.conf, "a") as f:
        f.write("site = plant 5\nrack = 7\n")
    w.start()
    assert check(w).returncode == 0
    attrs = w.emu.targets[("default", "gw-0042")].attributes
    assert (attrs["site"], attrs["rack"]) == ("plant 5", "7"), attrs
    assert check(w).returncode == 0
    assert len(w.emu.requests_to("configData")) == 2


def test_etag_and_sleep(world):
    w = world()
    w.emu.tenant("DEFAULT").sleep = "00:10:00"
    s = w.start()
    # The first poll asks for the attributes, whose PUT changes the answer: the third is a 304.
    for _ in range(3):
        assert check(w).returncode == 0
    polls = w.emu.requests_to("poll")
    assert [p["status"] for p in polls] == [200, 200, 304], polls
    assert polls[-1]["if_none_match"]
    assert re.search(r"next check in 1[01]m", s.text()), s.text()


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_lengthens_the_backoff(world, status):
    w = world()
    s = w.start(env=dict(NO_AUTO_CHECK, UPKEEP_TEST_BACKOFF_SEC="1"))
    w.emu.fault("poll", status=status, times=1, headers={"Retry-After": "5"},
                body=None if status == 429 else "<html>Service Unavailable</html>")
    p = check(w)
    assert p.returncode != 0 and f"HTTP {status}" in p.stderr, describe(p)
    w.wait(lambda: "retrying in 5s" in s.text(), what="the retry's delay")
    # The retry waits for the server's 5 s, not the 1 s backoff.
    w.wait(lambda: len(w.emu.requests_to("poll")) >= 2, what="the retry")
    polls = w.emu.requests_to("poll")
    assert polls[1]["time"] - polls[0]["time"] >= 4.9, polls
    assert polls[1]["status"] == 200


def test_a_rolled_back_version_is_closed_as_failure(world):
    w = world(health_fail=True)
    _, a = w.assign(w.bundle())
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    reboot_and_start(w)
    w.wait(lambda: w.closed(a.id), what="the final report of the failed update")
    for s in w.services:
        s.stop()
    assert w.device.reboot() == "A"
    assert w.device.state()["rollback"]["version"] == "1.1.0"
    downloads = len(w.emu.requests_to("download"))
    # The operator assigns the same version again: the device says why it will not take it, instead of
    # leaving it open for the server to offer forever.
    _, b = w.assign(w.bundle(seed=8))
    s = w.start()
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    closed = w.closed(b.id)
    assert len(closed) == 1 and closed[0]["finished"] == "failure", closed
    detail = closed[0]["details"][0]
    assert "version 1.1.0 is not newer than version 1.1.0, which was rolled back" in detail, detail
    assert "assign a newer version" in detail and b.status == "ERROR"
    assert len(w.emu.requests_to("download")) == downloads
    assert f"hawkBit action {b.id} refused" in s.text()
    # A newer version still goes in.
    _, c = w.assign(w.bundle(version="1.2.0", seed=9), version="1.2.0")
    p = check(w)
    assert p.returncode == 0 and "1.2.0" in p.stdout, describe(p)
    assert not w.closed(c.id)


def downloaded(w, aid):
    return [f for f in w.emu.feedback(aid, "deployment") if f.get("execution") == "downloaded"]


def test_download_only_keeps_the_verified_bundle_until_an_install_is_allowed(world):
    w = world()
    data = w.bundle()
    sm, a = w.assign(data, kind="downloadonly")
    w.start()
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    dl = downloaded(w, a.id)
    assert len(dl) == 1 and dl[0]["finished"] == "success", dl
    assert "downloaded and verified version 1.1.0" in dl[0]["details"][0], dl
    assert a.status == "DOWNLOADED" and not a.active and not w.closed(a.id)
    assert len(w.emu.requests_to("download")) == 1
    assert (w.device.data / "hawkbit-download.upk").read_bytes() == data
    kept = json.loads((w.device.data / "hawkbit-download.json").read_text())
    assert (kept["version"], kept["action"], kept["size"]) == ("1.1.0", str(a.id), len(data)), kept
    # Nothing was written or activated.
    assert w.device.primary() == "A" and not pending(w)
    assert w.get("State") == "idle" and w.get("AvailableVersion") == ""
    # The operator then assigns the same distribution as a forced update: installed from the kept copy,
    # without a second download; the copy is gone afterwards.
    b = w.emu.assign("gw-0042", [sm])
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    w.wait_state("pending-reboot")
    assert len(w.emu.requests_to("download")) == 1
    assert not (w.device.data / "hawkbit-download.upk").exists()
    assert not (w.device.data / "hawkbit-download.json").exists()
    reboot_and_start(w)
    w.wait(lambda: w.closed(b.id), what="the final report")
    assert [f["finished"] for f in w.closed(b.id)] == ["success"]


def test_closed_maintenance_window_downloads_and_installs_when_it_opens(world):
    w = world()
    data = w.bundle()
    _, a = w.assign(data, window="unavailable")
    w.start()
    for _ in range(2):
        p = check(w)
        assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    # Downloaded and reported once; the action stays open for the window.
    assert len(w.emu.requests_to("download")) == 1
    dl = downloaded(w, a.id)
    assert len(dl) == 1 and "the maintenance window opens" in dl[0]["details"][0], dl
    assert a.active and not w.closed(a.id) and w.device.primary() == "A"
    w.emu.set_window(a.id, "available")
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    w.wait_state("pending-reboot")
    assert len(w.emu.requests_to("download")) == 1
    assert not w.closed(a.id)
    reboot_and_start(w)
    w.wait(lambda: w.closed(a.id), what="the final report")
    assert [f["finished"] for f in w.closed(a.id)] == ["success"]


@pytest.mark.parametrize("kind", ["downloadonly", "forced"])
def test_wrong_sha256_is_refused_and_nothing_is_written(world, kind):
    w = world()
    name = "acme-gw-1.1.0.upk"
    sm = w.emu.module({name: w.bundle()}, hashes={name: "0" * 64})
    a = w.emu.assign("gw-0042", [sm], kind=kind)
    w.start(env=SOON)
    w.wait(lambda: w.closed(a.id), what="the failure report")
    w.wait(lambda: w.get("State") in ("idle", "error"), what="the end of the check or install")
    closed = w.closed(a.id)
    assert len(closed) == 1 and closed[0]["finished"] == "failure", closed
    detail = " ".join(closed[0]["details"])
    assert f"{name}: its sha256 is" in detail and "but the hawkBit server announced " + "0" * 64 in detail
    assert a.status == "ERROR"
    assert not downloaded(w, a.id)
    assert w.device.primary() == "A" and not pending(w)
    assert not (w.device.data / "hawkbit-download.upk").exists()
    assert not (w.device.data / "hawkbit-download.upk.part").exists()


def test_download_only_without_room_to_keep_it_is_refused(world):
    w = world()
    sm, a = w.assign(w.bundle(), kind="downloadonly")
    sm.artifacts[0].size = 1 << 60  # more than any file system here has free
    w.start()
    p = check(w)
    assert p.returncode == 0, describe(p)
    closed = w.closed(a.id)
    assert len(closed) == 1 and closed[0]["finished"] == "failure", closed
    assert "the download was not kept: no room in" in closed[0]["details"][0], closed
    assert not w.emu.requests_to("download")


def test_401_names_the_gateway_token(world):
    w = world(auth="gateway-token", token="not-the-gateway-token\n")
    w.emu.tenant("DEFAULT").gateway = "the-real-gateway-token"
    w.start()
    p = check(w)
    assert p.returncode != 0, describe(p)
    assert "did not accept the gateway token from" in p.stderr and str(w.token_file) in p.stderr, describe(p)
    assert "auth = gateway-token" in p.stderr and "HTTP 401" in w.get("LastError")
    assert "not-the-gateway-token" not in w.log() + p.stderr
    # The right token is taken (the target registers itself).
    w.token_file.write_text("the-real-gateway-token\n")
    p = check(w)
    assert p.returncode == 0, describe(p)
    assert w.emu.requests_to("poll")[-1]["auth_mode"] == "gateway-token"


def test_401_names_the_client_certificate(world, tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    # The client certificate's CN (device-0001) is not the controller id: hawkBit refuses it.
    w = world(auth="none", tls=tls)
    w.emu.tenant("DEFAULT").mtls = True
    w.emu.tenant("DEFAULT").target_tokens = False
    w.start()
    p = check(w)
    assert p.returncode != 0, describe(p)
    assert "it did not accept the client certificate ([source] client-cert)" in p.stderr, describe(p)
    assert "HTTP 401" in p.stderr and "HTTP 401" in w.get("LastError")
    polls = w.emu.requests_to("poll")
    assert polls and polls[-1]["status"] == 401 and not polls[-1]["auth"], polls


def a_slow_install_begun(w):
    """An action whose bundle downloads slowly (about 16 s) while the daemon looks for a cancel every
    second, once its first proceeding came: (the bundle, its software module, the action, the service)."""
    data = w.bundle()
    sm, a = w.assign(data)
    w.emu.plan_download(sm, "acme-gw-1.1.0.upk", rate=16 * 1024)
    s = w.start(env=dict(SOON, UPKEEP_TEST_HAWKBIT_CANCEL_POLL_SEC="1"))
    w.wait(lambda: w.emu.feedback(a.id), what="the first proceeding")
    return data, sm, a, s


def test_cancel_during_the_download_stops_the_install(world):
    w = world()
    data, sm, a, s = a_slow_install_begun(w)
    w.emu.cancel(a.id)
    w.wait(lambda: w.emu.feedback(a.id, "cancel"), what="the accepted cancel")
    fb = w.emu.feedback(a.id, "cancel")
    assert [(f["execution"], f["finished"]) for f in fb] == [("closed", "success")], fb
    assert a.status == "CANCELED"
    assert "the update server cancelled it" in s.text()
    # Stopped early, nothing activated, and nothing final sent for the deployment.
    art = sm.artifacts[0]
    assert art.bytes_sent < len(data), (art.bytes_sent, len(data))
    w.wait(lambda: w.get("State") in ("idle", "error"), what="the end of the install")
    assert w.device.primary() == "A" and not pending(w)
    assert not w.closed(a.id) and not (w.device.data / "hawkbit.json").exists()
    assert "nothing was activated" in w.get("LastError") or w.get("State") == "idle"


def test_the_action_id_in_the_journal_fields_and_the_history(world):
    w = world()
    _, a = w.assign(w.bundle())
    s = w.start(env=SOON)
    w.wait_state("pending-reboot")
    field = f"UPKEEP_HAWKBIT_ACTION={a.id}"
    lines = s.text().splitlines()
    assert any("update 1.1.0 available" in x and field in x for x in lines), s.text()
    assert any("automatically installing version 1.1.0" in x and field in x for x in lines), s.text()
    assert any("installed version 1.1.0 into slot B" in x and field in x for x in lines), s.text()
    installs = [e for e in w.device.history() if e["operation"] == "install"]
    assert installs[-1]["action"] == str(a.id), installs
    p = w.ctl("history", "--json")
    assert p.returncode == 0, describe(p)
    entries = [e for e in json.loads(p.stdout) if e["operation"] == "install"]
    assert entries[-1]["reason"] == f"hawkBit action {a.id}", entries
    p = w.ctl("history")
    assert f"hawkBit action {a.id}" in p.stdout, describe(p)


@pytest.mark.parametrize("kind", ["forced", "soft"])
@pytest.mark.parametrize("hold", ["auto-install-none", "postponed"])
def test_the_device_policy_holds_forced_and_soft_actions(world, kind, hold):
    # The server's forced or soft (attempt) makes no difference: the device's own policy decides when
    # it installs by itself; "updatectl install" installs at once.
    w = world(policy="none" if hold == "auto-install-none" else "all")
    _, a = w.assign(w.bundle(), kind=kind)
    s = w.start()
    if hold == "postponed":
        p = w.ctl("postpone", "2h")
        assert p.returncode == 0, describe(p)
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    why = "automatic installs are postponed" if hold == "postponed" else "held"
    w.wait(lambda: "update 1.1.0" in s.text() and why in s.text(), what="the hold")
    assert w.get("AvailableVersion") == "1.1.0" and w.get("State") == "idle"
    assert not w.emu.requests_to("download") and a.active and not w.closed(a.id)
    p = w.ctl("install")
    assert p.returncode == 0, describe(p)
    w.wait_state("pending-reboot")
    assert len(w.emu.requests_to("download")) == 1 and not w.closed(a.id)


def confirmations(w, aid):
    return [f for f in w.emu.feedback(aid, "confirmation")]


def test_consent_is_asked_and_confirmed_with_updatectl_install(world):
    w = world(policy="all")
    w.emu.tenant("DEFAULT").confirmation_flow = True
    _, a = w.assign(w.bundle())
    s = w.start()
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    # Announced and waiting: never installed by itself, even with auto-install = all.
    assert w.get("AvailableVersion") == "1.1.0" and w.get("ConsentNeeded") is True
    assert f"hawkBit action {a.id} (version 1.1.0) waits for consent" in s.text()
    assert a.status == "WAIT_FOR_CONFIRMATION" and not w.emu.requests_to("download")
    p = w.ctl("install")
    assert p.returncode == 0, describe(p)
    w.wait_state("pending-reboot")
    conf = confirmations(w, a.id)
    assert [(f["body"]["confirmation"], f["accepted"]) for f in conf] == [("confirmed", True)], conf
    assert "updatectl install" in conf[0]["body"]["details"][0]
    assert w.get("ConsentNeeded") is False
    reboot_and_start(w)
    w.wait(lambda: w.closed(a.id), what="the final report")
    assert [f["finished"] for f in w.closed(a.id)] == ["success"]


def test_consent_denied_with_updatectl_decline(world):
    w = world(policy="all")
    w.emu.tenant("DEFAULT").confirmation_flow = True
    _, a = w.assign(w.bundle())
    w.start()
    p = w.ctl("decline", "not during the night shift")
    assert p.returncode != 0 and "no update waits for consent" in p.stderr, describe(p)
    assert check(w).returncode == 0
    assert w.get("ConsentNeeded") is True
    p = w.ctl("decline", "not during the night shift")
    assert p.returncode == 0, describe(p)
    w.wait(lambda: confirmations(w, a.id), what="the denial")
    w.wait(lambda: w.get("State") == "idle" and w.get("ConsentNeeded") is False, what="the end of the check")
    conf = confirmations(w, a.id)
    assert [(f["body"]["confirmation"], f["accepted"]) for f in conf] == [("denied", True)], conf
    assert "not during the night shift" in conf[0]["body"]["details"][0]
    # hawkBit keeps offering it; the device does not announce it again nor install it.
    assert a.status == "WAIT_FOR_CONFIRMATION"
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    assert w.get("AvailableVersion") == "" and not w.emu.requests_to("download")
    assert len(confirmations(w, a.id)) == 1


def test_enable_and_disable_switch_the_servers_auto_confirm(world):
    w = world()
    w.emu.tenant("DEFAULT").confirmation_flow = True
    target = w.emu.targets[("default", "gw-0042")]
    w.start()
    assert check(w).returncode == 0
    assert not w.emu.feedback(None, "activateAutoConfirm")  # nothing switched without being asked
    assert w.ctl("disable").returncode == 0
    assert check(w).returncode == 0
    assert target.auto_confirm is None and not w.emu.feedback(None, "deactivateAutoConfirm")  # already off
    _, a = w.assign(w.bundle())
    assert check(w).returncode == 0
    assert w.get("ConsentNeeded") is True and a.status == "WAIT_FOR_CONFIRMATION"
    # enable: the server confirms by itself, and the deployment follows in the same check.
    p = w.ctl("enable")
    assert p.returncode == 0, describe(p)
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    assert target.auto_confirm and "updatectl enable" in target.auto_confirm["remark"], target.auto_confirm
    assert a.status != "WAIT_FOR_CONFIRMATION" and w.get("ConsentNeeded") is False
    w.wait_state("pending-reboot")
    # disable: switched off again.
    assert w.ctl("disable").returncode == 0
    assert check(w).returncode == 0
    assert target.auto_confirm is None
    assert [f["accepted"] for f in w.emu.feedback(None, "deactivateAutoConfirm")] == [True]


def test_lapsed_maintenance_window_cancels_and_the_kept_copy_goes(world):
    w = world()
    _, a = w.assign(w.bundle(), window="unavailable")
    w.start()
    assert check(w).returncode == 0
    assert downloaded(w, a.id) and (w.device.data / "hawkbit-download.upk").exists()
    # No window left: hawkBit cancels the action; the device accepts (nothing installed) and drops the
    # copy it kept for it.
    w.emu.set_window(a.id, "lapsed")
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    fb = w.emu.feedback(a.id, "cancel")
    assert [(f["execution"], f["finished"]) for f in fb] == [("closed", "success")], fb
    assert a.status == "CANCELED" and w.device.primary() == "A"
    assert not (w.device.data / "hawkbit-download.upk").exists()
    assert not (w.device.data / "hawkbit-download.json").exists()


def test_nothing_installed_again_after_a_restart_and_the_legacy_id_without_timestamp(world):
    # A server that checks the legacy "id" of every feedback (404 when it is missing or another one).
    w = world()
    w.emu.tenant("DEFAULT").legacy_id = True
    _, a = w.assign(w.bundle())
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    reboot_and_start(w)
    w.wait(lambda: w.closed(a.id), what="the final report")
    fb = w.emu.feedback(a.id)
    assert fb and all(f["accepted"] and f["id"] == str(a.id) for f in fb), fb
    # No timestamp (the device's clock is not known to be right): the server takes its own time and
    # the installed distribution moves.
    assert all("timestamp" not in f["body"] for f in fb), fb
    target = w.emu.targets[("default", "gw-0042")]
    assert target.installed_action == a.id and target.update_status == "IN_SYNC"
    # The daemon restarts with nothing pending: the poll shows installedBase; nothing is fetched,
    # installed or reported again.
    for s in w.services:
        s.stop()
    assert not (w.device.data / "hawkbit.json").exists()
    downloads, n_fb = len(w.emu.requests_to("download")), len(w.emu.feedback(a.id))
    s = w.start()
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    assert w.emu.requests_to("poll")[-1]["status"] == 200
    assert len(w.emu.requests_to("download")) == downloads and len(w.emu.feedback(a.id)) == n_fb
    assert w.get("State") == "idle" and w.get("CurrentVersion") == "1.1.0"
    assert w.device.state().get("pending") is None
    # A new assignment beside the installedBase link is taken.
    _, b = w.assign(w.bundle(version="1.2.0", seed=9), version="1.2.0")
    p = check(w)
    assert p.returncode == 0 and "1.2.0" in p.stdout, describe(p)
    w.wait_state("pending-reboot")
    assert len(w.emu.requests_to("download")) == downloads + 1


def test_a_final_report_answered_410_counts_as_delivered(world):
    w = world()
    _, a = w.assign(w.bundle())
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    w.emu.fault("deploymentFeedback", status=503, times=-1, body="<html>down</html>")
    s = reboot_and_start(w)
    w.wait(lambda: "check failed" in s.text(), what="the failed check")
    saved = (w.device.data / "hawkbit.json").read_text()
    assert json.loads(saved)["phase"] == "report"
    w.emu.clear_faults()
    assert check(w).returncode == 0
    assert [f["finished"] for f in w.closed(a.id) if f["accepted"]] == ["success"]
    assert not (w.device.data / "hawkbit.json").exists()
    # The server's answer was lost (a power cut before the daemon removed its record): the report goes
    # again once, hawkBit answers 410 (the action is closed), and that counts as delivered.
    for x in w.services:
        x.stop()
    (w.device.data / "hawkbit.json").write_text(saved)
    s = w.start()
    p = check(w)
    assert p.returncode == 0, describe(p)
    assert w.emu.requests_to("deploymentFeedback")[-1]["status"] == 410
    assert f"hawkBit action {a.id}: reported closed + success" in s.text()
    assert "the server had closed it already" in s.text()
    assert not (w.device.data / "hawkbit.json").exists()
    n = len(w.emu.requests_to("deploymentFeedback"))
    assert check(w).returncode == 0
    assert len(w.emu.requests_to("deploymentFeedback")) == n
    assert [f["finished"] for f in w.closed(a.id) if f["accepted"]] == ["success"]
    assert a.status == "FINISHED"


def test_an_action_force_quit_by_the_operator_is_dropped_on_410(world):
    w = world()
    _, a = w.assign(w.bundle())
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    w.emu.force_quit(a.id)  # the operator gives up on the device: the action is closed on the server
    s = reboot_and_start(w)
    w.wait(lambda: "the server had closed it already" in s.text(), what="the dropped report")
    assert w.emu.requests_to("deploymentFeedback")[-1]["status"] == 410
    assert not (w.device.data / "hawkbit.json").exists()
    n = len(w.emu.requests_to("deploymentFeedback"))
    assert check(w).returncode == 0
    assert len(w.emu.requests_to("deploymentFeedback")) == n
    assert a.status == "CANCELED" and w.get("CurrentVersion") == "1.1.0"


@pytest.mark.parametrize("ignore_range", [False, True], ids=["range", "range-ignored"])
def test_a_cut_download_resumes_and_a_spaced_utf8_filename_is_fetched(world, ignore_range):
    w = world()
    data = w.bundle()
    name = "acme gw \u00fcber 1.1.0.upk"
    sm = w.emu.module({name: data})
    a = w.emu.assign("gw-0042", [sm])
    w.emu.plan_download(sm, name, cut_at=100_000, ignore_range=ignore_range)
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    # Resumed at the cut with Range; a server that ignores it sends the whole body, and the device
    # neither appends it nor starts the install over: the verified bundle went in once.
    assert sm.artifacts[0].requests == [None, "bytes=100000-"], sm.artifacts[0].requests
    assert [r["status"] for r in w.emu.requests_to("download")] == [200, 200 if ignore_range else 206]
    assert w.device.slot["B"].read_bytes()[:256 * 1024] == payload_bytes(7, 256 * 1024)
    assert not w.closed(a.id) and w.get("State") == "pending-reboot"


def test_a_stalled_download_is_given_up_and_resumed(world):
    """Scenario 31: the server stops sending in the middle of the artifact and keeps the connection
    open. The device gives up after its stall time (shortened here), not when the server closes, and
    resumes from the byte it got to."""
    w = world()
    sm, a = w.assign(w.bundle())
    w.emu.plan_download(sm, sm.artifacts[0].filename, stall_at=150_000, stall_seconds=300)
    w.start(env=dict(SOON, UPKEEP_TEST_BUNDLE_STALL_SEC="2"))
    w.wait_state("pending-reboot")
    art = sm.artifacts[0]
    assert art.stalls == ["client gave up"], art.stalls
    assert art.requests == [None, "bytes=150000-"], art.requests
    assert w.device.slot["B"].read_bytes()[:256 * 1024] == payload_bytes(7, 256 * 1024)
    assert not w.closed(a.id)


def test_an_artifact_replaced_during_the_download_is_fetched_again_from_the_start(world):
    """Scenario 33: the operator replaces the artifact while the device waits to resume. The resume
    names the version it began (If-Range with the ETag), gets the new one whole, and stops rather than
    join two versions; the action stays open, and the next check downloads and verifies the new
    artifact from its first byte."""
    w = world()
    old, new = w.bundle(seed=7), w.bundle(seed=8)
    sm, a = w.assign(old)
    name = sm.artifacts[0].filename
    w.emu.plan_download(sm, name, cut_at=100_000, replace_at_cut=new)
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    art = sm.artifacts[0]
    assert art.requests == [None, "bytes=100000-", None], art.requests
    assert art.if_ranges == [None, f'"{hashlib.sha1(old).hexdigest()}"', None], art.if_ranges
    assert [r["status"] for r in w.emu.requests_to("download")] == [200, 200, 200]
    assert w.device.slot["B"].read_bytes()[:256 * 1024] == payload_bytes(8, 256 * 1024)
    assert not w.closed(a.id) and w.get("State") == "pending-reboot"
    assert "the file changed on the server during the download" in w.log(), w.log()


def test_404_on_the_poll_and_on_the_deployment(world):
    w = world(policy="none")
    w.start()
    w.emu.fault("poll", status=404)  # a wrong tenant or base path behind a reverse proxy
    p = check(w)
    assert p.returncode != 0 and "not found (HTTP 404)" in p.stderr and "tenant" in p.stderr, describe(p)
    assert "HTTP 404" in w.get("LastError")
    # The action vanished between the poll and its GET: nothing offered, no error, no feedback.
    _, a = w.assign(w.bundle())
    w.emu.fault("deploymentBase", status=404)
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    assert not w.emu.feedback(a.id)
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)


def test_feedback_with_quotes_and_utf8_in_the_details_passes_the_strict_parser(world):
    w = world(health_fail=True)
    check_file = w.device.health / "10-fail"
    check_file.write_text("#!/bin/sh\nprintf '%s\\n' 'link \"eth0\" down \\ r\u00e9seau {x}' >&2\nexit 3\n")
    _, a = w.assign(w.bundle())
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    reboot_and_start(w)
    w.wait(lambda: w.closed(a.id), what="the final report")
    closed = w.closed(a.id)
    assert [(f["finished"], f["accepted"]) for f in closed] == [("failure", True)], closed
    assert 'link "eth0" down \\ r\u00e9seau {x}' in " ".join(closed[0]["details"]), closed
    assert all(f["accepted"] for f in w.emu.feedback(a.id))


@pytest.mark.parametrize("autoclose", [False, True], ids=["cancel-first", "autoclose"])
def test_a_new_assignment_replaces_the_offered_one(world, autoclose):
    w = world(policy="none")
    w.emu.tenant("DEFAULT").autoclose = autoclose
    _, a = w.assign(w.bundle())
    w.start()
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    # The operator assigns a newer version: hawkBit cancels the old action first (or closes it
    # silently); the device accepts (nothing installed) and offers the new one.
    _, b = w.assign(w.bundle(version="1.2.0", seed=9), version="1.2.0")
    for _ in range(2):
        p = check(w)
        assert p.returncode == 0, describe(p)
    assert w.get("AvailableVersion") == "1.2.0", describe(p)
    fb = w.emu.feedback(a.id, "cancel")
    assert [(f["execution"], f["finished"]) for f in fb] == ([] if autoclose else [("closed", "success")]), fb
    assert a.status == "CANCELED" and b.active and not w.emu.feedback(b.id)
    assert not w.emu.requests_to("download")
    p = w.ctl("install")
    assert p.returncode == 0, describe(p)
    w.wait_state("pending-reboot")
    dl = w.emu.requests_to("download")
    assert len(dl) == 1 and f"/softwaremodules/{b.modules[0].id}/" in dl[0]["path"], dl


def test_a_declined_deployment_stays_declined_across_a_restart(world):
    w = world(policy="all")
    w.emu.tenant("DEFAULT").confirmation_flow = True
    _, a = w.assign(w.bundle())
    w.start()
    assert check(w).returncode == 0
    assert w.get("ConsentNeeded") is True
    p = w.ctl("decline", "not during the night shift")
    assert p.returncode == 0, describe(p)
    w.wait(lambda: confirmations(w, a.id), what="the denial")
    w.wait(lambda: w.get("State") == "idle" and w.get("ConsentNeeded") is False, what="the end of the check")
    assert json.loads((w.device.data / "hawkbit.json").read_text()) == {"declined": str(a.id)}
    # The daemon restarts; hawkBit still offers the action for consent: not announced again.
    for s in w.services:
        s.stop()
    s = w.start()
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    assert w.get("AvailableVersion") == "" and w.get("ConsentNeeded") is False
    assert "waits for consent" not in s.text()
    assert a.status == "WAIT_FOR_CONFIRMATION" and len(confirmations(w, a.id)) == 1
    assert not w.emu.requests_to("download")
    # The operator cancels it: the device accepts and forgets the denial.
    w.emu.cancel(a.id)
    p = check(w)
    assert p.returncode == 0, describe(p)
    fb = w.emu.feedback(a.id, "cancel")
    assert [(f["execution"], f["finished"]) for f in fb] == [("closed", "success")], fb
    assert not (w.device.data / "hawkbit.json").exists()


def test_two_bundles_in_one_deployment_are_refused(world):
    w = world()
    sm = w.emu.module({"acme-gw-1.1.0.upk": w.bundle(), "acme-gw-1.1.0-extra.upk": w.bundle(seed=8)})
    a = w.emu.assign("gw-0042", [sm])
    w.start()
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    closed = w.closed(a.id)
    assert len(closed) == 1 and closed[0]["finished"] == "failure", closed
    assert "more than one upkeep bundle (*.upk) among the 2 artifacts" in closed[0]["details"][0], closed
    assert not w.emu.requests_to("download") and a.status == "ERROR"


@pytest.mark.parametrize("delta", [-1000, 1000], ids=["smaller", "larger"])
def test_a_wrong_announced_size_is_refused_and_nothing_is_activated(world, delta):
    w = world()
    data = w.bundle()
    sm, a = w.assign(data)
    sm.artifacts[0].size = len(data) + delta
    w.start(env=SOON)
    w.wait(lambda: w.closed(a.id), what="the failure report")
    w.wait(lambda: w.get("State") in ("idle", "error"), what="the end of the install")
    closed = w.closed(a.id)
    assert len(closed) == 1 and closed[0]["finished"] == "failure", closed
    assert "nothing was activated" in " ".join(closed[0]["details"]), closed
    assert w.device.primary() == "A" and not pending(w)


@pytest.mark.parametrize("status", [401, 503])
def test_an_error_on_the_download_ends_the_install_without_a_loop(world, status):
    # 401 only on the download (a CDN refusing the token) is final at once; a 503 with an HTML body is
    # retried with a backoff until the transfer's minimum rate gives up (its grace shortened here); then
    # the install fails, and the next check closes the action as a failure, once.
    w = world()
    _, a = w.assign(w.bundle())
    w.emu.fault("download", status=status, times=-1, body="<html>no</html>")
    s = w.start(env=dict(SOON, UPKEEP_TEST_BUNDLE_GRACE_SEC="5"))
    w.wait(lambda: f"hawkBit action {a.id}: reported closed + failure" in s.text(), timeout=120,
           what="the failed install and its report")
    n = len(w.emu.requests_to("download"))
    assert n == 1 if status == 401 else 2 <= n <= 8, n
    closed = w.closed(a.id)
    assert len(closed) == 1 and closed[0]["finished"] == "failure", closed
    detail = closed[0]["details"][0]
    assert "the install failed; nothing was activated" in detail, detail
    assert status != 401 or "HTTP status 401" in detail, detail
    assert w.device.primary() == "A" and not pending(w) and a.status == "ERROR"
    assert not (w.device.data / "hawkbit.json").exists()
    assert check(w).returncode == 0
    assert len(w.emu.requests_to("download")) == n and len(w.closed(a.id)) == 1


def test_a_time_forced_action_is_followed_through_its_new_link(world):
    # Soft first, forced once the emulator's clock passes forceTime: the poll's deploymentBase link (its
    # `c`) changes and the device follows the new link; the device's own policy (here postponed) still
    # decides when it installs by itself, forced or not.
    w = world()
    _, a = w.assign(w.bundle(), kind="timeforced", force_after=3600)
    w.start()
    assert w.ctl("postpone", "2h").returncode == 0
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    first = w.emu.requests_to("deploymentBase")[-1]["query"]
    w.emu.advance(3601)
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    polls = w.emu.requests_to("poll")
    assert polls[-1]["status"] == 200, polls
    second = w.emu.requests_to("deploymentBase")[-1]["query"]
    assert second != first, (first, second)
    assert not w.emu.requests_to("download") and w.get("AvailableVersion") == "1.1.0"
    p = w.ctl("install")
    assert p.returncode == 0, describe(p)
    w.wait_state("pending-reboot")
    assert not w.closed(a.id) and len(w.emu.requests_to("download")) == 1


def test_a_405_on_the_cancel_feedback_is_not_retried_in_a_loop(world):
    # The action stopped being cancelled between the poll and the feedback (hawkBit answers 405): the
    # check ends; the next poll says what the action is now.
    w = world(policy="none")
    _, a = w.assign(w.bundle())
    w.start()
    assert check(w).returncode == 0
    w.emu.cancel(a.id)
    w.emu.fault("cancelFeedback", status=405, content_type="application/json",
                body='{"errorCode": "hawkbit.server.error.action.notCancelable", "message": "x"}')
    p = check(w)
    assert p.returncode == 0, describe(p)
    assert [r["status"] for r in w.emu.requests_to("cancelFeedback")] == [405]
    p = check(w)
    assert p.returncode == 0, describe(p)
    assert [r["status"] for r in w.emu.requests_to("cancelFeedback")] == [405, 200]
    assert a.status == "CANCELED" and not w.emu.requests_to("download")


@pytest.mark.parametrize("code", [301, 302, 307])
def test_redirects_on_the_poll_and_the_download_are_followed(world, code):
    w = world()
    sm, a = w.assign(w.bundle())
    base = "/DEFAULT/controller/v1/gw-0042"
    w.emu.fault("poll", status=code, headers={"Location": w.emu.url(base)})
    w.emu.fault("download", status=code,
                headers={"Location": w.emu.url(f"{base}/softwaremodules/{sm.id}/artifacts/acme-gw-1.1.0.upk")})
    w.start()
    p = check(w)  # one check: the redirect is followed within it, not retried by a later one
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    assert [r["status"] for r in w.emu.requests_to("poll")] == [code, 200]
    w.wait_state("pending-reboot")
    assert [r["status"] for r in w.emu.requests_to("download")] == [code, 200]
    assert not w.closed(a.id) and w.emu.feedback(a.id)


def test_429_on_the_final_report_and_on_the_attributes_is_retried_later(world):
    # The DoS filter's 429 (empty body): the report and the attributes wait for a later check, then go
    # exactly once.
    w = world()
    _, a = w.assign(w.bundle())
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    for s in w.services:
        s.stop()
    assert w.device.reboot() in ("A", "B")
    w.emu.fault("deploymentFeedback", status=429, times=1)
    w.emu.fault("configData", status=429, times=1)
    w.start()
    p = check(w)
    assert p.returncode != 0 and "HTTP 429" in p.stderr, describe(p)
    assert not [f for f in w.closed(a.id) if f["accepted"]] and a.status == "RUNNING"
    p = check(w)
    assert p.returncode == 0, describe(p)
    assert [f["finished"] for f in w.closed(a.id) if f["accepted"]] == ["success"]
    assert check(w).returncode == 0
    assert [f["finished"] for f in w.closed(a.id) if f["accepted"]] == ["success"]
    puts = w.emu.requests_to("configData")
    assert [r["status"] for r in puts][-2:] == [429, 200], puts
    assert w.emu.targets[("default", "gw-0042")].attributes["version"] == "1.1.0"


def test_an_action_force_quit_while_it_downloads_stops_the_install(world):
    """Scenario 19 during the download: the operator force-quits the action (closed on the server, no
    cancel order). The device sees it is no longer offered, stops, activates nothing and sends nothing
    final for it."""
    w = world()
    data, sm, a, s = a_slow_install_begun(w)
    w.emu.force_quit(a.id)
    w.wait(lambda: "no longer offered by the server" in s.text(), what="the stop")
    w.wait(lambda: w.get("State") in ("idle", "error"), what="the end of the install")
    assert sm.artifacts[0].bytes_sent < len(data)
    assert w.device.primary() == "A" and not pending(w)
    assert not (w.device.data / "hawkbit.json").exists()
    assert not w.closed(a.id) and not w.emu.feedback(a.id, "cancel")
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)


@pytest.mark.parametrize("rels", [("download",), ("download-http",)], ids=["download", "download-http"])
def test_metadata_no_sha256_and_a_single_download_link(world, rels):
    """Scenario 7 and 27: a chunk with metadata, an artifact without a sha256 (older servers) and only
    one of the two download links: the bundle's own signature is the check, and it installs."""
    w = world()
    w.emu.tenant("DEFAULT").link_rels = rels
    sm = w.emu.module({"acme-gw-1.1.0.upk": w.bundle()}, metadata={"release": "2026.12", "channel": "stable"},
                      hashes={"acme-gw-1.1.0.upk": ""})
    a = w.emu.assign("gw-0042", [sm])
    base = w.emu.url("/DEFAULT/controller/v1/gw-0042")
    dep = w.emu._deployment(a, base, w.emu.targets[("default", "gw-0042")])
    art = dep["chunks"][0]["artifacts"][0]
    assert "sha256" not in art["hashes"] and set(art["_links"]) == {rels[0], "md5sum" + rels[0][8:]}, art
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    assert w.device.slot["B"].read_bytes()[:256 * 1024] == payload_bytes(7, 256 * 1024)


@pytest.mark.parametrize("sleep, expect", [("00:00:01", r"3[0-3]s"), ("12:00:00", r"1[23]h( \d+m)?"),
                                           ("30:00:00", r"1h"), ("soon", r"1h")])
def test_the_servers_sleep_is_kept_within_bounds(world, sleep, expect):
    """Scenario 12: the server's sleep is followed within 30 s and 24 h, plus up to a tenth of it as
    jitter; one that is not HH:MM:SS with hours 0-23 leaves the configured poll-interval (1h here, and
    jitter = 0)."""
    w = world()
    w.emu.tenant("DEFAULT").sleep = sleep
    s = w.start()
    p = check(w)
    assert p.returncode == 0, describe(p)
    w.wait(lambda: re.search(rf"next check in {expect}\n", s.text()), what=f"the next check in {expect}")


def test_an_error_answer_names_the_servers_reason(world):
    """Scenario 27: a 500 with hawkBit's ExceptionInfo body: the error repeats its code and message."""
    w = world()
    w.start()
    body = json.dumps({"exceptionClass": "org.eclipse.hawkbit.repository.exception.TenantNotExistException",
                       "errorCode": "hawkbit.server.error.repo.tenantNotExist",
                       "message": "tenant \"DEFAULT\" does not exist\n\x1b[2J"})
    w.emu.fault("poll", status=500, body=body, content_type="application/json")
    p = check(w)
    assert p.returncode != 0, describe(p)
    assert "HTTP 500" in p.stderr and "hawkbit.server.error.repo.tenantNotExist: tenant" in p.stderr, describe(p)
    assert "\x1b" not in p.stderr and "\x1b" not in w.get("LastError")


def test_a_refused_token_is_not_retried_in_a_tight_loop(world):
    """Scenario 21: a 401 on every poll. The error says which credential failed, and the automatic
    retries wait for the backoff (shortened here to 2 s), doubling."""
    w = world()
    w.emu.fault("poll", status=401, times=-1)
    s = w.start(env=dict(NO_AUTO_CHECK, UPKEEP_TEST_BACKOFF_SEC="2"))
    p = check(w)
    assert p.returncode != 0 and "HTTP 401" in p.stderr and "target-token" in p.stderr, describe(p)
    w.wait(lambda: len(w.emu.requests_to("poll")) >= 3, what="two automatic retries")
    polls = w.emu.requests_to("poll")
    gaps = [b["time"] - a["time"] for a, b in zip(polls, polls[1:3])]
    assert gaps[0] >= 1.9 and gaps[1] >= 3.9, (gaps, s.text())
    assert TOKEN not in w.log()


def test_a_download_redirected_to_another_host_gets_no_token(world, tmp_path):
    """Scenario 28: the artifact is served by a CDN the download link redirects to (another origin:
    ::1). The bundle comes from there, and the device's token is not sent to it."""
    from httpserver import TestServer  # noqa: E402  (tests/ is on the path)

    w = world()
    data = w.bundle()
    sm, a = w.assign(data)
    www = tmp_path / "cdn"
    www.mkdir()
    (www / "acme-gw-1.1.0.upk").write_bytes(data)
    cdn = TestServer(www, host="::1").start()
    try:
        w.emu.fault("download", status=302, headers={"Location": cdn.url("/acme-gw-1.1.0.upk")})
        w.start(env=SOON)
        w.wait_state("pending-reboot")
        st = cdn.stats("/acme-gw-1.1.0.upk")
    finally:
        cdn.stop()
    assert st["requests"] == 1 and st["statuses"] == [200], st
    assert st["auths"] == [None], st
    assert [r["auth"] for r in w.emu.requests_to("download")] == [f"TargetToken {TOKEN}"]
    assert not w.closed(a.id)


def test_a_zero_byte_artifact_is_refused_with_nothing_activated(world):
    """Scenario 35: a .upk of 0 bytes is not a bundle: closed + failure, saying so."""
    w = world()
    sm = w.emu.module({"acme-gw-1.1.0.upk": b""})
    a = w.emu.assign("gw-0042", [sm])
    w.start(env=SOON)
    w.wait(lambda: w.closed(a.id), what="the failure report")
    closed = w.closed(a.id)
    assert [f["finished"] for f in closed] == ["failure"], closed
    assert "nothing was activated" in closed[0]["details"][0], closed
    assert w.device.primary() == "A" and not pending(w)


def test_429_on_a_progress_report_does_not_stop_the_install(world):
    """Scenario 25 on intermediate feedback: a refused `proceeding` is only a lost progress report."""
    w = world()
    data = w.bundle()
    sm, a = w.assign(data)
    w.emu.plan_download(sm, "acme-gw-1.1.0.upk", rate=32 * 1024)
    w.emu.fault("deploymentFeedback", status=429, times=1)  # the first proceeding
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    sent = w.emu.requests_to("deploymentFeedback")
    assert sent and sent[0]["status"] == 429, sent
    assert w.device.slot["B"].read_bytes()[:256 * 1024] == payload_bytes(7, 256 * 1024)
    assert not w.closed(a.id)


def test_a_postponed_soft_action_installs_by_itself_when_the_postponement_ends(world):
    """Scenario 3: a soft (attempt) action held by `updatectl postpone` is installed without anyone's
    help once the postponement is over, and reported only after the reboot."""
    w = world()
    _, a = w.assign(w.bundle(), kind="soft")
    s = w.start()
    p = w.ctl("postpone", "6s")
    assert p.returncode == 0, describe(p)
    p = check(w)
    assert p.returncode == 0 and "1.1.0" in p.stdout, describe(p)
    w.wait(lambda: "automatic installs are postponed" in s.text(), what="the hold")
    assert not w.emu.requests_to("download")
    w.wait_state("pending-reboot")
    assert len(w.emu.requests_to("download")) == 1 and not w.closed(a.id)
    reboot_and_start(w)
    w.wait(lambda: w.closed(a.id), what="the final report")
    assert [f["finished"] for f in w.closed(a.id)] == ["success"]


def test_a_410_on_downloaded_counts_as_delivered(world):
    """Scenario 5: the `downloaded` report is answered 410 (the action closed meanwhile, or the answer to
    an earlier delivery was lost): it is not sent again, and the kept copy stays for a later install."""
    w = world()
    data = w.bundle()
    sm, a = w.assign(data, kind="downloadonly")
    w.emu.fault("deploymentFeedback", status=410, times=1)
    w.start()
    p = check(w)
    assert p.returncode == 0 and p.stdout == "up to date\n", describe(p)
    sent = w.emu.requests_to("deploymentFeedback")
    assert [r["status"] for r in sent][-1:] == [410], sent
    assert (w.device.data / "hawkbit-download.upk").read_bytes() == data
    n = len(sent)
    p = check(w)
    assert p.returncode == 0, describe(p)
    assert len(w.emu.requests_to("deploymentFeedback")) == n and len(w.emu.requests_to("download")) == 1


def test_a_new_assignment_with_autoclose_while_the_old_one_downloads(world):
    """Scenario 18 while the old action downloads: the server closes it by itself (autoclose) and offers
    the new one. The device stops the old install, activates nothing of it, and installs the new one."""
    w = world()
    w.emu.tenant("DEFAULT").autoclose = True
    old, sm, a, s = a_slow_install_begun(w)
    _, b = w.assign(w.bundle(version="1.2.0", seed=9), version="1.2.0")
    w.wait(lambda: f"hawkBit action {a.id}: no longer offered by the server" in s.text(), what="the stop")
    assert a.status == "CANCELED" and not w.closed(a.id)
    # The stopped install asks for a check soon: it finds the new action and installs it.
    w.wait_state("pending-reboot")
    assert w.device.slot["B"].read_bytes()[:256 * 1024] == payload_bytes(9, 256 * 1024)
    assert sm.artifacts[0].bytes_sent < len(old) and not w.closed(b.id)


def test_a_409_on_activate_auto_confirm_counts_as_switched(world):
    """Scenario 24: the server answers 409 to activateAutoConfirm (someone switched it on meanwhile): the
    device takes it as done and does not send it again at every check."""
    w = world()
    w.emu.tenant("DEFAULT").confirmation_flow = True
    s = w.start()
    assert check(w).returncode == 0
    w.emu.fault("autoConfirm", status=409, times=1)
    assert w.ctl("enable").returncode == 0
    p = check(w)
    assert p.returncode == 0, describe(p)
    assert "the server's auto-confirm is on (updatectl enable)" in s.text()
    switched = [r for r in w.emu.requests if r["path"].endswith("/activateAutoConfirm")]
    assert [r["status"] for r in switched] == [409], switched
    assert check(w).returncode == 0
    assert len([r for r in w.emu.requests if r["path"].endswith("/activateAutoConfirm")]) == 1
