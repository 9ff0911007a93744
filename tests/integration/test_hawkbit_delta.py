# SPDX-License-Identifier: LGPL-2.1-or-later
"""hawkBit deployments installed as deltas (README, "Delta updates"; upkeep.conf(5) [install] delta):
upkeepd with [source] type = hawkbit against the DDI emulator (tests/hawkbit_emu.py), a device whose
booted slot A holds image v1 (test_delta's seeded pair) and a deployment of the format-2 bundle of v2. The
deployment installs with Range requests only, each with the target token, fetching a small part of the
bundle, with the usual feedback (proceeding, then closed + success once after the reboot); a server that
ignores Range gets the whole artifact downloaded after one "delta: ...; downloading the whole bundle"
line and no failure feedback for the delta; `[install] delta = no` makes no Range request; an artifact
whose announced size is not the file's falls back to the whole download, whose size check fails the
deployment; a cancel from the server ends the range requests."""

import re
import time

import pytest

from device import make_bundle, payload_bytes
from test_delta import BLOCK, DELTA_RE, FALLBACK_RE, bundle_head, delta_fields, delta_lines, make_pair
from test_hawkbit import SOON, TOKEN, World as HawkbitWorld, pending, reboot_and_start

FILENAME = "acme-gw-1.1.0.upk"


@pytest.fixture(scope="module")
def pair():
    return make_pair()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, pair):
    """The format-2 bundle of v2 (zstd blocks), version 1.1.0: its bytes."""
    out = make_bundle(tmp_path_factory.mktemp("bundle"), "1.1.0", pair[1], name="hb-delta",
                      create_args=["--format", "2", "--compression", "zstd"])
    manifest, names = bundle_head(out)
    assert manifest["format"] == 2 and names[:3] == ["manifest.json", "manifest.json.sig", "chunks.idx"]
    return out.read_bytes()


class World(HawkbitWorld):
    """test_hawkbit's World (the emulator with target gw-0042, a device, a private bus) with v1 in the
    booted slot A and `[install] delta` set; close() stops everything, also when this constructor fails
    half way."""

    def __init__(self, tmp, v1, delta="yes", **kw):
        super().__init__(tmp, delta=delta, **kw)
        try:
            assert self.device.booted() == "A"
            self.device.slot["A"].write_bytes(v1)
            assert f"\n[install]\ndelta = {delta}\n" in self.device.conf.read_text()
        except BaseException:
            self.close()
            raise

    def downloads(self):
        """The emulator's records of the artifact's downloads (not its .MD5SUM)."""
        return [r for r in self.emu.requests_to("download") if r["path"].endswith("/" + FILENAME)]

    def deployed(self, data, sizes=None, **plan):
        """The bundle assigned as a forced action (announcing `sizes`, with the download plan):
        (the software module, the action)."""
        sm = self.emu.module({FILENAME: data}, version="1.1.0", sizes=sizes)
        if plan:
            self.emu.plan_download(sm, FILENAME, **plan)
        return sm, self.emu.assign("gw-0042", [sm])

    def failures(self, aid):
        return [f for f in self.closed(aid) if f["finished"] == "failure"]


def the_delta_line(w):
    lines = delta_lines(w.log())
    assert len(lines) == 1, f"expected one delta: line, got {lines}:\n{w.log()}"
    m = DELTA_RE.search(lines[0])
    assert m, f"not a delta summary: {lines[0]!r}\n{w.log()}"
    return delta_fields(m)


def the_fallback_line(w):
    lines = delta_lines(w.log())
    assert len(lines) == 1, f"expected one delta: line, got {lines}:\n{w.log()}"
    m = FALLBACK_RE.search(lines[0])
    assert m, f"not a fallback line: {lines[0]!r}\n{w.log()}"
    return m["reason"]


def installed_then_confirmed(w, a, v2):
    """Installed into slot B (byte for byte v2), nothing final before the reboot; closed + success exactly
    once after it."""
    w.wait_state("pending-reboot", timeout=120)
    assert w.device.slot["B"].read_bytes()[:len(v2)] == v2, w.log()
    assert pending(w)["version"] == "1.1.0"
    proceeding = [f for f in w.emu.feedback(a.id, "deployment") if f["execution"] == "proceeding"]
    assert proceeding and not w.closed(a.id), w.emu.feedback(a.id)
    # The install's start was reported once, not again for a whole download after a fallback.
    started = [f for f in proceeding if any("downloading and installing" in d for d in f["details"])]
    assert len(started) == 1, proceeding
    reboot_and_start(w)
    w.wait(lambda: w.closed(a.id), what="the final report")
    assert w.get("CurrentVersion") == "1.1.0"
    closed = w.closed(a.id)
    assert [(f["finished"], f["accepted"]) for f in closed] == [("success", True)], closed
    assert a.status == "FINISHED"
    assert TOKEN not in w.log()


def test_deployment_installs_as_a_delta_with_the_token_on_every_range(world, pair, bundle):
    v1, v2, info = pair
    w = world(v1=v1)
    sm, a = w.deployed(bundle)
    w.start(env=SOON)
    installed_then_confirmed(w, a, v2)
    got = the_delta_line(w)
    assert got["size"] == len(bundle), (got, len(bundle))
    assert 0 < got["reused"] <= got["total"] <= len(v2), got
    assert info["new_blocks"] * BLOCK <= got["fetched"] < len(bundle) // 4, (got, info, len(bundle))
    # Only Range requests, every one with the target token; some for several ranges (multipart).
    dl = w.downloads()
    assert dl, w.emu.requests
    assert all(r["range"] and r["range"].startswith("bytes=") for r in dl), [r["range"] for r in dl]
    assert all(r["status"] == 206 for r in dl), [r["status"] for r in dl]
    assert any("," in r["range"] for r in dl), [r["range"] for r in dl]
    assert all(r["auth"] == f"TargetToken {TOKEN}" for r in dl), [r["auth"] for r in dl]
    assert got["requests"] == len(dl), (got, len(dl))
    assert sm.artifacts[0].bytes_sent < len(bundle) // 4, (sm.artifacts[0].bytes_sent, len(bundle))
    # No DOWNLOAD status for ranged downloads (hawkBit since 0.8.0), none of a failure either.
    assert not [h for h in a.history if h[0] == "DOWNLOAD"], a.history
    assert not FALLBACK_RE.search(w.log()), w.log()


def test_a_server_that_ignores_range_gets_the_whole_artifact(world, pair, bundle):
    v1, v2, _ = pair
    w = world(v1=v1)
    sm, a = w.deployed(bundle, ignore_range=True)
    w.start(env=SOON)
    installed_then_confirmed(w, a, v2)
    the_fallback_line(w)
    assert not DELTA_RE.search(w.log()), w.log()
    assert not w.failures(a.id)
    # The delta's first range request got the whole artifact (200) and was given up; the whole download
    # followed, with the token like every request.
    dl = w.downloads()
    assert dl and dl[0]["range"], dl
    assert any(r["status"] == 200 and not r["range"] for r in dl[1:]), dl
    assert all(r["auth"] == f"TargetToken {TOKEN}" for r in dl), [r["auth"] for r in dl]
    assert sm.artifacts[0].bytes_sent >= len(bundle)


def test_delta_no_makes_no_range_request(world, pair, bundle):
    v1, v2, _ = pair
    w = world(v1=v1, delta="no")
    sm, a = w.deployed(bundle)
    w.start(env=SOON)
    installed_then_confirmed(w, a, v2)
    assert delta_lines(w.log()) == [], w.log()
    dl = w.downloads()
    assert len(dl) == 1 and dl[0]["range"] is None and dl[0]["status"] == 200, dl
    assert sm.artifacts[0].bytes_sent == len(bundle)


def test_an_announced_size_other_than_the_files_fails_the_deployment(world, pair, bundle):
    """The artifact is announced 4096 bytes longer than it is: no delta (the ranges say the file's real
    size), the whole download instead, whose own size check fails the deployment; nothing activated."""
    v1, _, _ = pair
    w = world(v1=v1)
    announced = len(bundle) + 4096
    sm, a = w.deployed(bundle, sizes={FILENAME: announced})
    w.start(env=SOON)
    w.wait(lambda: w.closed(a.id), timeout=120, what="the failure report")
    reason = the_fallback_line(w)
    assert re.fullmatch(rf"{re.escape(FILENAME)}: the file at http://127\.0\.0\.1:\d+/\S+/{re.escape(FILENAME)} "
                        rf"has {len(bundle)} bytes, but the update server announced {announced}", reason), reason
    closed = w.closed(a.id)
    assert len(closed) == 1 and closed[0]["finished"] == "failure", closed
    detail = " ".join(closed[0]["details"])
    assert f"{len(bundle)} bytes, but the hawkBit server announced {announced}" in detail, detail
    assert a.status == "ERROR"
    assert w.device.primary() == "A" and not pending(w)
    assert not DELTA_RE.search(w.log()), w.log()
    # Only the head was read in ranges; then the one whole download.
    dl = w.downloads()
    assert dl[0]["range"] and [r["range"] for r in dl[1:]] == [None], [r["range"] for r in dl]


def test_a_cancel_from_the_server_ends_the_range_requests(world, pair, bundle):
    """The artifact trickles (8 kB/s): the server's cancel ends the delta's range download within
    seconds; nothing is activated, no whole download follows, and the cancel is accepted."""
    v1, _, _ = pair
    w = world(v1=v1)
    sm, a = w.deployed(bundle, rate=8 * 1024)
    s = w.start(env=dict(SOON, UPKEEP_TEST_HAWKBIT_CANCEL_POLL_SEC="1"))
    w.wait(lambda: w.downloads() and w.get("State") == "downloading", what="the range download")
    time.sleep(1)
    t0 = time.monotonic()
    w.emu.cancel(a.id)
    w.wait(lambda: w.get("State") in ("idle", "error"), what="the end of the install")
    assert time.monotonic() - t0 < 10, (time.monotonic() - t0, s.text())
    w.wait(lambda: w.emu.feedback(a.id, "cancel"), what="the accepted cancel")
    fb = w.emu.feedback(a.id, "cancel")
    assert [(f["execution"], f["finished"]) for f in fb] == [("closed", "success")], fb
    assert "the update server cancelled it" in s.text()
    assert "downloading the whole bundle" not in s.text()
    assert all(r["range"] for r in w.downloads()), w.downloads()
    assert sm.artifacts[0].bytes_sent < len(bundle) // 2
    assert w.device.primary() == "A" and not pending(w)
    assert not w.closed(a.id)


def test_a_format_1_bundle_is_downloaded_whole_without_a_failure_report(world, pair):
    """A bundle without a chunk index (format 1, what older tooling makes): the delta reads its head,
    falls back, and the deployment installs from the whole download as before."""
    v1, _, _ = pair
    w = world(v1=v1)
    data = w.bundle()  # format 1, 256 KiB
    sm, a = w.deployed(data)
    w.start(env=SOON)
    w.wait_state("pending-reboot")
    assert w.device.slot["B"].read_bytes()[:256 * 1024] == payload_bytes(7, 256 * 1024)
    the_fallback_line(w)
    dl = w.downloads()
    assert dl[0]["range"] and [r["range"] for r in dl[1:]] == [None], [r["range"] for r in dl]
    assert not w.closed(a.id)
    reboot_and_start(w)
    w.wait(lambda: w.closed(a.id), what="the final report")
    assert [f["finished"] for f in w.closed(a.id)] == ["success"], w.closed(a.id)


def test_a_404_on_the_ranges_stops_the_install_as_without_a_delta(world, pair, bundle):
    """The artifact is gone (404): the whole download that follows the delta gets 404 too, and the
    install stops as it does without a delta: nothing reported, nothing kept."""
    v1, _, _ = pair
    w = world(v1=v1)
    _, a = w.deployed(bundle)
    w.emu.fault("download", status=404, times=-1)
    s = w.start(env=SOON)
    w.wait(lambda: "its artifact is gone (404)" in s.text(), what="the stop")
    w.wait(lambda: w.get("State") in ("error", "idle"), what="the end of the install")
    assert [r["status"] for r in w.downloads()] == [404, 404], w.downloads()
    assert not w.closed(a.id)
    assert not (w.device.data / "hawkbit.json").exists()
    assert w.device.primary() == "A" and not pending(w)


def test_updatectl_cancel_ends_the_range_requests(world, pair, bundle):
    """The user's cancel during a delta that trickles (8 kB/s): the range download ends within seconds,
    nothing is activated, no whole download follows, and the server hears nothing final: the action
    stays open."""
    v1, _, _ = pair
    w = world(v1=v1)
    sm, a = w.deployed(bundle, rate=8 * 1024)
    s = w.start(env=SOON)
    w.wait(lambda: w.downloads() and w.get("State") == "downloading", what="the range download")
    time.sleep(1)
    t0 = time.monotonic()
    p = w.ctl("cancel")
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    w.wait(lambda: w.get("State") in ("idle", "error"), what="the end of the install")
    assert time.monotonic() - t0 < 5, (time.monotonic() - t0, s.text())
    assert "the install was cancelled" in s.text(), s.text()
    assert "downloading the whole bundle" not in s.text()
    n = len(w.downloads())
    time.sleep(1)
    assert len(w.downloads()) == n and all(r["range"] for r in w.downloads()), w.downloads()
    assert sm.artifacts[0].bytes_sent < len(bundle) // 2
    assert w.device.primary() == "A" and not pending(w)
    assert not w.closed(a.id) and a.active
    assert not [f for f in w.emu.feedback(a.id) if f["finished"] == "failure"]


def test_ranges_redirected_to_another_host_get_no_token(world, pair, bundle, tmp_path):
    """Scenario 28 as a delta: every download request is redirected to a CDN (another origin, ::1). The
    ranges come from there, the token goes only to the hawkBit server."""
    from httpserver import TestServer  # noqa: E402  (tests/ is on the path)

    v1, v2, _ = pair
    w = world(v1=v1)
    _, a = w.deployed(bundle)
    www = tmp_path / "cdn"
    www.mkdir()
    (www / FILENAME).write_bytes(bundle)
    cdn = TestServer(www, host="::1").start()
    try:
        w.emu.fault("download", status=302, times=-1, headers={"Location": cdn.url("/" + FILENAME)})
        w.start(env=SOON)
        w.wait_state("pending-reboot", timeout=120)
        st = cdn.stats("/" + FILENAME)
    finally:
        cdn.stop()
    assert w.device.slot["B"].read_bytes()[:len(v2)] == v2, w.log()
    the_delta_line(w)
    assert st["requests"] >= 2 and all(r and r.startswith("bytes=") for r in st["ranges"]), st
    assert st["auths"] == [None] * st["requests"], st
    assert st["bytes_sent"] < len(bundle) // 4, st
    assert all(r["auth"] == f"TargetToken {TOKEN}" for r in w.downloads()), w.downloads()
    assert not w.closed(a.id)
