# SPDX-License-Identifier: LGPL-2.1-or-later
"""Delta updates (upkeep-bundle(5), Deltas) through upkeepd on a private bus: a device whose booted slot A
holds image v1 installs a format-2 bundle of v2 from a URL of the test server (tests/httpserver.py) and
downloads only the blocks slot A lacks, with Range requests (multi-range, and one range per answer from a
server that gives only the first), with slot B byte for byte v2. A server that ignores Range gets the
whole bundle downloaded after one "delta: ...; downloading the whole bundle" line; `[install] delta = no`
makes no Range request at all. (`delta = yes` is set in the conf: the default is no for now.) The offline
verb `upkeepd install URL` does the same without a bus, and reports a URL that is not there.

The image pair is made here, seeded: v1 is 8 MiB of 4 KiB blocks, runs of random blocks, of text-like
blocks (some repeated) and of zeros; v2 is v1 with about 3% of the blocks replaced by new random content,
1% moved (pairs of blocks swapped) and a few blocks zeroed."""

import json
import os
import random
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from device import PKI, UPDATECTL, Device, make_bundle, run
from test_daemon import Bus, Monitor, Service, install

SOURCE_ROOT = Path(os.environ.get("UPKEEP_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_ROOT / "tests"))
from httpserver import TestServer  # noqa: E402

BLOCK = 4096
BLOCKS = 2048  # v1 and v2: 8 MiB
SEED = 20261207
BUNDLE_PATH = "/delta/acme-gw-1.1.0.upk"
INSTALLED = "installed version 1.1.0 into slot B"
NO_AUTO_CHECK = {"UPKEEP_TEST_FIRST_CHECK_SEC": "3600", "TZ": "UTC"}

# The one line of a delta install (the contract of the daemon's output). The slots are "slot A", or for
# blocks from several slot classes each slot as CLASS.NAME; `table` says whether the booted slot's block
# table was computed by the install or taken from the data folder.
DELTA_RE = re.compile(r"delta: (?P<reused>\d+) of (?P<total>\d+) bytes of the payloads taken from "
                      r"(?P<slots>slot A|slots [\w-]+\.[AB](?:, [\w-]+\.[AB])+), "
                      r"(?P<fetched>\d+) bytes downloaded in (?P<requests>\d+) requests "
                      r"\((?P<pct>\d+\.\d)% of the bundle's (?P<size>\d+) bytes\); "
                      r"block table (?P<table>cached|computed)")
# The one line of a delta given up for a full download.
FALLBACK_RE = re.compile(r"delta: (?P<reason>.+); downloading the whole bundle$", re.MULTILINE)

WORDS = ("the and of to in is for on that with as by at from this be are it or an was which system update "
         "slot bundle chunk block install kernel module driver config network service journal boot root "
         "device file path version gateway sensor value error warning info debug level timeout retry "
         "usr lib bin etc var share locale python3 dist packages site init d systemd unit target").split()


# ------------------------------------------------------------------------------------------------------
# The image pair and the bundle


def text_block(rng):
    """4 KiB of text-like lines: words of a small vocabulary, numbers, line ends; compressible."""
    out = []
    n = 0
    while n < BLOCK:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        line += f" = {rng.randint(0, 99999)}\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:BLOCK]


def make_pair(seed=SEED):
    """(v1, v2, info): v1 in runs of random, text-like and zero blocks; v2 from v1 with blocks changed,
    swapped and zeroed at seeded places; info counts them."""
    rng = random.Random(seed)
    templates = [text_block(rng) for _ in range(4)]  # blocks repeated in several places
    v1 = []
    while len(v1) < BLOCKS:
        kind = rng.choices(["random", "text", "repeat", "zero"], weights=[35, 35, 10, 20])[0]
        for _ in range(min(rng.randint(1, 24), BLOCKS - len(v1))):
            if kind == "random":
                v1.append(rng.randbytes(BLOCK))
            elif kind == "text":
                v1.append(text_block(rng))
            elif kind == "repeat":
                v1.append(rng.choice(templates))
            else:
                v1.append(bytes(BLOCK))
    nonzero = [j for j, b in enumerate(v1) if any(b)]
    picked = rng.sample(nonzero, BLOCKS * 3 // 100 + BLOCKS // 100 + 8)
    changed = picked[:BLOCKS * 3 // 100]  # 61: new random content
    moved = picked[len(changed):len(changed) + BLOCKS // 100]  # 20: 10 pairs swapped
    zeroed = picked[len(changed) + len(moved):]  # 8: zeros now
    v2 = list(v1)
    for j in changed:
        v2[j] = rng.randbytes(BLOCK)
    for a, b in zip(moved[0::2], moved[1::2]):
        v2[a], v2[b] = v1[b], v1[a]
    for j in zeroed:
        v2[j] = bytes(BLOCK)
    v1b, v2b = b"".join(v1), b"".join(v2)
    in_v1 = set(v1)
    assert len(v1b) == len(v2b) == BLOCKS * BLOCK
    info = {"changed": len(changed), "moved": len(moved), "zeroed": len(zeroed),
            "zero_blocks_v1": BLOCKS - len(nonzero),
            # blocks of v2 that are neither zeros nor anywhere in v1: what a delta must download
            "new_blocks": sum(1 for b in v2 if any(b) and b not in in_v1)}
    return v1b, v2b, info


@pytest.fixture(scope="module")
def pair():
    return make_pair()


def bundle_head(path):
    """The manifest of a bundle and the names of its members, in order."""
    with tarfile.open(path, "r:") as t:
        names = t.getnames()
        manifest = json.loads(t.extractfile("manifest.json").read())
    return manifest, names


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, pair):
    """The format-2 bundle of v2 (zstd blocks, default chunking), version 1.1.0."""
    tmp = tmp_path_factory.mktemp("bundle")
    out = make_bundle(tmp, "1.1.0", pair[1], name="delta", create_args=["--format", "2", "--compression", "zstd"])
    manifest, names = bundle_head(out)
    assert manifest["format"] == 2, manifest
    assert names[:3] == ["manifest.json", "manifest.json.sig", "chunks.idx"], names
    (p,) = manifest["payloads"]
    assert (p["handler"], p["slot_class"], p["installed_size"]) == ("raw", "rootfs", len(pair[1])), p
    assert p["chunks"]["compression"] == "zstd" and p["chunks"]["block"] == BLOCK, p
    # zstd had work: the text-like blocks compress and the zeros are not stored.
    assert p["size"] < 0.8 * len(pair[1]), p
    return out


def test_the_image_pair_is_as_described(pair):
    """The pair's own check (and that it is deterministic): a mix of blocks, about 3% new in v2."""
    v1, v2, info = pair
    assert make_pair() == pair
    assert v1 != v2
    blocks1 = [v1[i:i + BLOCK] for i in range(0, len(v1), BLOCK)]
    blocks2 = [v2[i:i + BLOCK] for i in range(0, len(v2), BLOCK)]
    differ = sum(1 for a, b in zip(blocks1, blocks2) if a != b)
    assert differ == info["changed"] + info["moved"] + info["zeroed"], (differ, info)
    assert info["new_blocks"] == info["changed"], info
    assert 0.1 * BLOCKS < info["zero_blocks_v1"] < 0.3 * BLOCKS, info
    assert len(set(blocks1)) < len(blocks1) - info["zero_blocks_v1"], "no repeated text blocks"


# ------------------------------------------------------------------------------------------------------
# The world: a device with v1 in slot A, the server with the bundle, a private bus, upkeepd


class World:
    """A device whose booted slot A holds v1, the bundle of v2 on the test server, a private bus with a
    monitor, upkeepd (started by start()). Everything started is stopped by close(), also when the
    constructor fails half way."""

    def __init__(self, tmp, v1, bundle, delta="yes", bus=True):
        self.tmp = tmp
        self.server = self.bus = self.monitor = None
        self.services = []
        try:
            tmp.mkdir(parents=True)
            self.device = Device(tmp / "dev")
            conf = self.device.conf.read_text()
            # Slot A, the booted slot, is the file we write v1 into.
            assert f"[slot.rootfs.A]\ndevice = {self.device.slot['A']}\n" in conf, conf
            assert self.device.booted() == "A"
            self.device.slot["A"].write_bytes(v1)
            if delta is not None:
                if "\n[install]\n" in conf:
                    conf = conf.replace("\n[install]\n", f"\n[install]\ndelta = {delta}\n", 1)
                else:
                    conf += f"\n[install]\ndelta = {delta}\n"
            conf += "\n[source]\ntype = none\n"
            self.device.conf.write_text(conf)
            self.www = tmp / "www"
            target = self.www / BUNDLE_PATH.lstrip("/")
            target.parent.mkdir(parents=True)
            target.write_bytes(Path(bundle).read_bytes())
            self.size = target.stat().st_size
            self.server = TestServer(self.www).start()
            if bus:
                self.bus = Bus()
                self.monitor = Monitor(self.bus)
        except BaseException:
            self.close()
            raise

    def start(self):
        s = Service(self.bus, self.device, env=NO_AUTO_CHECK)
        self.services.append(s)
        return s

    def install(self, timeout=90):
        """Install the bundle from its URL through the bus; the Finished signal's (ok, message, error)."""
        install(self.bus, self.server.url(BUNDLE_PATH))
        return self.monitor.finished(timeout=timeout)

    def install_offline(self, path=BUNDLE_PATH):
        """`upkeepd --config CONF install URL`, the offline verb: its CompletedProcess."""
        return self.device.upkeepd("install", self.server.url(path))

    def stats(self):
        return self.server.stats(BUNDLE_PATH)

    def log(self):
        return "\n".join(s.text() for s in self.services)

    def slot_b_holds(self, data):
        return self.device.slot["B"].read_bytes()[:len(data)] == data

    def close(self):
        for s in self.services:
            s.kill()
        if self.monitor:
            self.monitor.stop()
        if self.bus:
            self.bus.stop()
        if self.server:
            self.server.stop()


@pytest.fixture
def world(tmp_path, pair, bundle):
    """world(**kw): a World under tmp_path with v1 in slot A and the bundle served, upkeepd running."""
    worlds = []

    def make(plan=None, offline=False, **kw):
        """offline: no bus and no service, for the offline verb (World.install_offline())."""
        w = World(tmp_path / f"w{len(worlds)}", pair[0], bundle, bus=not offline, **kw)
        worlds.append(w)
        if plan:
            w.server.plan(BUNDLE_PATH, **plan)
        if not offline:
            w.start()
        return w
    try:
        yield make
    finally:
        for w in worlds:
            w.close()


def delta_lines(text):
    return [line for line in text.splitlines() if "delta:" in line]


def assert_installed(w, finished, v1, v2):
    log = w.log()
    assert finished == (True, INSTALLED, ""), f"{finished}\n{log}"
    assert w.bus.get("State") == "pending-reboot", log
    assert w.device.state()["pending"]["version"] == "1.1.0"
    # Slot B holds v2 byte for byte; slot A, which the delta read, is untouched.
    assert w.slot_b_holds(v2), log
    assert w.device.slot["A"].read_bytes() == v1


def delta_fields(m):
    """The numbers of a DELTA_RE match, its percentage, its slots ("slot A", "slots rootfs.A, ...") and
    whether the block table was cached or computed."""
    got = {k: int(v) for k, v in m.groupdict().items() if k not in ("pct", "slots", "table")}
    got["pct"] = float(m["pct"])
    got["slots"] = m["slots"]
    got["table"] = m["table"]
    return got


def the_delta_line(w):
    """The one delta line of the daemon's output, parsed; fails with the whole output when there is none
    or more than one."""
    log = w.log()
    lines = delta_lines(log)
    assert len(lines) == 1, f"expected one delta: line, got {lines}:\n{log}"
    m = DELTA_RE.search(lines[0])
    assert m, f"not a delta summary: {lines[0]!r}\n{log}"
    return delta_fields(m)


def check_delta_numbers(w, got, v2):
    """What every delta summary must say, whatever the server's way of answering ranges."""
    assert got["size"] == w.size, (got, w.size)
    assert 0 < got["reused"] <= got["total"] <= len(v2), got
    assert got["requests"] >= 1, got
    # pct is fetched as a part of the bundle, with one decimal.
    assert abs(got["pct"] - 100 * got["fetched"] / got["size"]) <= 0.051, got


# ------------------------------------------------------------------------------------------------------
# The tests


def test_delta_downloads_only_what_slot_a_lacks(world, pair):
    v1, v2, info = pair
    w = world()
    # A block table of slot B from an earlier time: the install overwrites B, so it must go.
    w.device.data.mkdir(parents=True, exist_ok=True)
    (w.device.data / "blocks-rootfs-B.table").write_bytes(b"stale")
    finished = w.install()
    assert not (w.device.data / "blocks-rootfs-B.table").exists()
    assert (w.device.data / "blocks-rootfs-A.table").stat().st_size > 0  # slot A's, kept for the next time
    assert_installed(w, finished, v1, v2)
    got = the_delta_line(w)
    check_delta_numbers(w, got, v2)
    st = w.stats()
    quarter = w.size // 4
    assert got["fetched"] < quarter, (got, w.size)
    # At least the new blocks (stored as they are: random content does not compress) came over the wire.
    assert got["fetched"] >= info["new_blocks"] * BLOCK, (got, info)
    # Most of v2's bytes were in slot A: all but the new blocks and the zeros.
    assert got["reused"] >= len(v2) - (info["new_blocks"] + info["zero_blocks_v1"] + info["zeroed"]) * BLOCK \
        - len(v2) // 10, (got, info)
    assert st["bytes_sent"] < quarter, (st["bytes_sent"], w.size)
    assert st["requests"] < 20, st
    assert got["requests"] <= st["requests"], (got, st)
    # Every request was for ranges (the head, then the missing blocks), and some asked for several.
    assert all(r is not None and r.startswith("bytes=") for r in st["ranges"]), st["ranges"]
    assert any("," in r for r in st["ranges"]), st["ranges"]
    # Progress counts the bytes to download, not the image's.
    totals = {m["payload"]["data"][1]["Progress"]["data"][1]
              for m in w.monitor.find(lambda m: m.get("member") == "PropertiesChanged")
              if "Progress" in m["payload"]["data"][1]}
    assert any(0 < t < quarter for t in totals), totals
    assert not any(t >= len(v2) for t in totals), totals
    # The bus and `updatectl status` say the same as the journal line.
    assert w.bus.get("LastDelta") == [got["reused"], got["total"], got["fetched"], got["requests"]]
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=w.bus.address)
    p = subprocess.run([UPDATECTL, "status", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["last_delta"] == {"reused": got["reused"], "total": got["total"],
                                                  "downloaded": got["fetched"], "requests": got["requests"]}
    p = subprocess.run([UPDATECTL, "status"], capture_output=True, text=True, env=env, timeout=60)
    assert re.search(r"Last delta: .* of .* reused from the booted slot, .* downloaded \(\d+ requests\)",
                     p.stdout), p.stdout


def test_a_server_that_ignores_range_gets_a_full_download(world, pair):
    v1, v2, _ = pair
    w = world(plan={"ignore_range": True})
    finished = w.install()
    assert_installed(w, finished, v1, v2)
    log = w.log()
    lines = delta_lines(log)
    assert len(lines) == 1, f"expected one delta: line, got {lines}:\n{log}"
    assert FALLBACK_RE.search(lines[0]), f"not a fallback line: {lines[0]!r}\n{log}"
    assert not DELTA_RE.search(log), log
    st = w.stats()
    assert st["bytes_sent"] >= w.size, (st["bytes_sent"], w.size)
    assert 200 in st["statuses"], st


def test_a_server_that_answers_one_range_per_request_still_gives_a_delta(world, pair):
    v1, v2, _ = pair
    w = world(plan={"multirange": "first-only"})
    finished = w.install(timeout=120)
    assert_installed(w, finished, v1, v2)
    got = the_delta_line(w)
    check_delta_numbers(w, got, v2)
    assert got["fetched"] < w.size // 4, (got, w.size)
    assert not FALLBACK_RE.search(w.log()), w.log()
    st = w.stats()
    assert all(r is not None for r in st["ranges"]), st["ranges"]
    assert st["bytes_sent"] < w.size // 2, (st["bytes_sent"], w.size)


def test_delta_no_makes_no_range_request(world, pair):
    v1, v2, _ = pair
    w = world(delta="no")
    assert "\n[install]\ndelta = no\n" in w.device.conf.read_text()
    finished = w.install()
    assert_installed(w, finished, v1, v2)
    log = w.log()
    # The key is known (an upkeepd that ignores it as unknown would pass the rest without testing it).
    assert 'unknown key "delta"' not in log, log
    assert delta_lines(log) == [], log
    st = w.stats()
    assert st["requests"] >= 1, st
    assert st["ranges"] == [None] * st["requests"], st
    assert st["bytes_sent"] >= w.size, (st["bytes_sent"], w.size)


def test_a_delta_resumes_after_cut_connections(world, pair):
    """Every answer is cut after 20,000 body bytes: each range request resumes where it stopped, and the
    delta completes without falling back."""
    v1, v2, _ = pair
    w = world(plan={"cut_every": 20000})
    finished = w.install(timeout=120)
    assert_installed(w, finished, v1, v2)
    got = the_delta_line(w)
    assert got["fetched"] < w.size // 4, (got, w.size)
    assert not FALLBACK_RE.search(w.log()), w.log()
    st = w.stats()
    assert st["requests"] > got["fetched"] // 20000, st


def make_two_class_bundle(tmp, root, app):
    """A format-2 bundle (zstd) of version 1.1.0 with two raw payloads into two A/B slot classes: `root`
    into rootfs, `app` into appfs."""
    d = tmp / "src-two"
    d.mkdir()
    (d / "rootfs.img").write_bytes(root)
    (d / "appfs.img").write_bytes(app)
    manifest = {
        "format": 1, "compatible": "acme-gw", "version": "1.1.0", "build": "2026-11-25T10:00:00Z",
        "payloads": [{"name": "rootfs", "file": "rootfs.img", "handler": "raw", "slot_class": "rootfs"},
                     {"name": "appfs", "file": "appfs.img", "handler": "raw", "slot_class": "appfs"}],
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    out = tmp / "two-1.1.0.upk"
    run(UPDATECTL, "bundle", "create", "--manifest", d / "manifest.json", "--cert", PKI / "signer.pem",
        "--key", PKI / "signer.key", "--chain", PKI / "chain.pem", "--format", "2", "--compression", "zstd",
        "-o", out, check=True)
    return out


def add_appfs_slots(w, app_v1, crossed=False):
    """Slot class appfs (files appA.img, booted A holding `app_v1`, and appB.img) in w's device. `crossed`:
    slot appfs.A has the bootname B and appfs.B the bootname A, so appfs.B (holding `app_v1`) is booted
    with rootfs.A; the slots returned are then by bootname, {"A": appB.img, "B": appA.img}."""
    dev = w.device
    files = {"A": dev.root / "appA.img", "B": dev.root / "appB.img"}
    boot = {"A": "B", "B": "A"} if crossed else {"A": "A", "B": "B"}
    slots = {boot[name]: f for name, f in files.items()}
    slots["A"].write_bytes(app_v1)
    slots["B"].write_bytes(b"")
    conf = dev.conf.read_text()
    assert "\n[policy]\n" in conf, conf
    sections = "".join(f"[slot.appfs.{name}]\ndevice = {files[name]}\nbootname = {boot[name]}\n\n"
                       for name in ("A", "B"))
    conf = conf.replace("\n[policy]\n", f"\n{sections}[policy]\n", 1)
    dev.conf.write_text(conf)
    return slots


@pytest.mark.parametrize("crossed", [False, True], ids=["same-names", "crossed-names"])
def test_a_delta_reuses_the_booted_slots_of_two_classes(tmp_path, pair, crossed):
    """Two raw payloads into two A/B slot classes (rootfs and appfs): each is planned against the block
    table of the booted slot of its class, so both reuse their slot's blocks; both B slots end up byte
    for byte the new images and only a small part of the bundle comes over the wire. The summary names
    each slot the blocks came from, also when the booted slots of the two classes are named apart
    (crossed: appfs.B is booted with rootfs.A, under the bootname A)."""
    v1, v2, info = pair
    a1, a2, ainfo = make_pair(SEED + 1)
    bundle = make_two_class_bundle(tmp_path, v2, a2)
    manifest, names = bundle_head(bundle)
    assert [p["slot_class"] for p in manifest["payloads"]] == ["rootfs", "appfs"], manifest
    w = World(tmp_path / "w", v1, bundle)
    try:
        app = add_appfs_slots(w, a1, crossed)
        w.start()
        finished = w.install()
        assert_installed(w, finished, v1, v2)
        log = w.log()
        assert app["B"].read_bytes() == a2, log
        assert app["A"].read_bytes() == a1, log
        app_booted = "B" if crossed else "A"
        for table in ("blocks-rootfs-A.table", f"blocks-appfs-{app_booted}.table"):
            assert (w.device.data / table).stat().st_size > 0, (table, log)
        got = the_delta_line(w)
        assert got["slots"] == f"slots rootfs.A, appfs.{app_booted}", got
        assert got["size"] == w.size, (got, w.size)
        assert got["total"] == len(v2) + len(a2), got
        # The blocks of both payloads that are neither new nor zeros came from the slots: more than one
        # payload's worth.
        lacking = (info["new_blocks"] + info["zero_blocks_v1"] + info["zeroed"]
                   + ainfo["new_blocks"] + ainfo["zero_blocks_v1"] + ainfo["zeroed"]) * BLOCK
        assert got["reused"] >= got["total"] - lacking - got["total"] // 10, (got, info, ainfo)
        assert got["reused"] > len(v2), got
        assert got["fetched"] >= (info["new_blocks"] + ainfo["new_blocks"]) * BLOCK, (got, info, ainfo)
        assert got["fetched"] < w.size // 4, (got, w.size)
        assert not FALLBACK_RE.search(log), log
        st = w.stats()
        assert st["bytes_sent"] < w.size // 4, (st["bytes_sent"], w.size)
        assert all(r is not None and r.startswith("bytes=") for r in st["ranges"]), st["ranges"]
        assert w.bus.get("LastDelta") == [got["reused"], got["total"], got["fetched"], got["requests"]]
    finally:
        w.close()


def make_stale(path):
    """Change every 4 KiB block of the file at `path` in place (its first byte), keeping what its block
    table is keyed by: path, size, inode and modification time. A block device's table cannot see such
    a change either."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    for i in range(0, len(data), BLOCK):
        data[i] ^= 0xA5
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size,
                                                                before.st_mtime_ns)
    return bytes(data)


def test_a_stale_block_table_gives_up_the_delta_for_the_whole_download(tmp_path, pair, bundle):
    """Slot A changed under its cached block table (a table made by an earlier delta, the slot's content
    changed with its size, inode and mtime kept): the blocks the table promises do not check out, chunk
    after chunk is fetched again, and past a quarter of the bundle the delta is given up: one "delta: ...;
    downloading the whole bundle" line naming the slot, the whole bundle downloaded, slot B byte for byte
    v2 all the same, and the stale table gone so that the next delta computes it again."""
    v1, v2, _ = pair
    w = World(tmp_path / "w", v1, bundle)
    try:
        table = w.device.data / "blocks-rootfs-A.table"
        p = w.install_offline()
        assert_installed_offline(w, p, v1, v2)
        assert DELTA_RE.search(p.stdout), p.stdout
        assert table.stat().st_size > 0
        stale = make_stale(w.device.slot["A"])
        w.device.slot["B"].write_bytes(b"")
        before = w.stats()
        w.start()
        finished = w.install(timeout=120)
        log = w.log()
        assert finished == (True, INSTALLED, ""), f"{finished}\n{log}"
        assert w.slot_b_holds(v2), log
        assert w.device.slot["A"].read_bytes() == stale, log
        lines = delta_lines(log)
        assert len(lines) == 1, f"expected one delta: line, got {lines}:\n{log}"
        m = FALLBACK_RE.search(lines[0])
        assert m, f"not a fallback line: {lines[0]!r}\n{log}"
        assert re.fullmatch(r"slot A \(rootfs\.A\): \d+ chunks \(\d+ bytes\) fetched again .*: the slot's block "
                            r"table is out of date \(removed\)", m["reason"]), m["reason"]
        assert not DELTA_RE.search(log), log
        assert not table.exists(), log
        st = w.stats()
        sent = st["bytes_sent"] - before["bytes_sent"]
        # The refetches stopped at a quarter of the bundle; then the whole bundle came.
        assert w.size <= sent < w.size * 2, (sent, w.size)
        assert None in st["ranges"][len(before["ranges"]):], st["ranges"]
        # The whole install is the one in the history: the delta given up while it wrote is not there.
        assert [(h["operation"], h["ok"]) for h in w.device.history()] == [("install", True)] * 2, \
            w.device.history()
    finally:
        w.close()


SHORT_FILE = Path("/sys/devices/system/cpu/online")  # a regular file of 4096 bytes that reads shorter


def skip_unless_short_file():
    """Skips the test where SHORT_FILE is not a file that reads shorter than its size."""
    try:
        st = SHORT_FILE.stat()
        short = st.st_size > 0 and len(SHORT_FILE.read_bytes()) < st.st_size
    except OSError:
        short = False
    if not short:
        pytest.skip(f"{SHORT_FILE} is not a file that reads shorter than its size here")


def test_a_booted_slot_that_cannot_be_read_whole_gives_the_whole_download(tmp_path, pair, bundle):
    """Slot A opens and says it has bytes, but reading it ends early (a sysfs file: 4096 bytes by its
    size, a few when read; a failing disk reads as an error): its block table cannot be made, so there
    is nothing to reuse and the install is the whole download after one "delta: ...; downloading the
    whole bundle" line naming the slot's device, not a failed install."""
    v1, v2, _ = pair
    skip_unless_short_file()
    w = World(tmp_path / "w", v1, bundle)
    try:
        conf = w.device.conf.read_text()
        line = f"[slot.rootfs.A]\ndevice = {w.device.slot['A']}\n"
        assert line in conf, conf
        w.device.conf.write_text(conf.replace(line, f"[slot.rootfs.A]\ndevice = {SHORT_FILE}\n", 1))
        w.start()
        finished = w.install()
        log = w.log()
        assert finished == (True, INSTALLED, ""), f"{finished}\n{log}"
        assert w.slot_b_holds(v2), log
        lines = delta_lines(log)
        assert len(lines) == 1, f"expected one delta: line, got {lines}:\n{log}"
        m = FALLBACK_RE.search(lines[0])
        assert m, f"not a fallback line: {lines[0]!r}\n{log}"
        assert str(SHORT_FILE) in m["reason"] and "ends at byte" in m["reason"], m["reason"]
        assert not DELTA_RE.search(log), log
        assert not (w.device.data / "blocks-rootfs-A.table").exists(), log
        st = w.stats()
        assert st["bytes_sent"] >= w.size, (st["bytes_sent"], w.size)
        assert 200 in st["statuses"], st
        # Given up before the install began: the history holds the whole install only.
        assert [(h["operation"], h["ok"]) for h in w.device.history()] == [("install", True)], \
            w.device.history()
    finally:
        w.close()


# ------------------------------------------------------------------------------------------------------
# The offline verb: `upkeepd --config CONF install URL`, no bus


def the_offline_delta_line(w, p):
    out = f"{p.stdout}\n{p.stderr}"
    lines = delta_lines(p.stdout)
    assert len(lines) == 1, f"expected one delta: line, got {lines}:\n{out}"
    m = DELTA_RE.fullmatch(lines[0])
    assert m, f"not a delta summary: {lines[0]!r}\n{out}"
    return delta_fields(m)


def assert_installed_offline(w, p, v1, v2):
    out = f"{p.stdout}\n{p.stderr}"
    assert p.returncode == 0, out
    assert INSTALLED in p.stdout, out
    # The summary (or the fallback line) comes before the result.
    assert all(p.stdout.index(line) < p.stdout.index(INSTALLED) for line in delta_lines(p.stdout)), out
    assert w.device.state()["pending"]["version"] == "1.1.0", out
    assert w.slot_b_holds(v2), out
    assert w.device.slot["A"].read_bytes() == v1


def test_offline_verb_installs_a_delta_from_a_url(world, pair):
    v1, v2, info = pair
    w = world(offline=True)
    p = w.install_offline()
    assert_installed_offline(w, p, v1, v2)
    got = the_offline_delta_line(w, p)
    check_delta_numbers(w, got, v2)
    assert got["table"] == "computed", got  # no daemon made it before
    assert got["fetched"] < w.size // 4, (got, w.size)
    assert got["fetched"] >= info["new_blocks"] * BLOCK, (got, info)
    st = w.stats()
    assert st["bytes_sent"] < w.size // 4, (st["bytes_sent"], w.size)
    assert got["requests"] <= st["requests"], (got, st)
    assert all(r is not None and r.startswith("bytes=") for r in st["ranges"]), st["ranges"]


def test_offline_verb_falls_back_to_the_whole_bundle(world, pair):
    v1, v2, _ = pair
    w = world(offline=True, plan={"ignore_range": True})
    p = w.install_offline()
    assert_installed_offline(w, p, v1, v2)
    lines = delta_lines(p.stdout)
    assert len(lines) == 1, f"expected one delta: line, got {lines}:\n{p.stdout}\n{p.stderr}"
    assert FALLBACK_RE.search(lines[0]), f"not a fallback line: {lines[0]!r}\n{p.stdout}"
    assert not DELTA_RE.search(p.stdout), p.stdout
    st = w.stats()
    assert st["bytes_sent"] >= w.size, (st["bytes_sent"], w.size)
    assert 200 in st["statuses"], st


def test_offline_verb_with_delta_no_streams_the_whole_bundle(world, pair):
    v1, v2, _ = pair
    w = world(offline=True, delta="no")
    p = w.install_offline()
    assert_installed_offline(w, p, v1, v2)
    assert 'unknown key "delta"' not in p.stderr, p.stderr
    assert delta_lines(p.stdout) == [], p.stdout
    st = w.stats()
    assert st["requests"] >= 1, st
    assert st["ranges"] == [None] * st["requests"], st
    assert st["bytes_sent"] >= w.size, (st["bytes_sent"], w.size)


@pytest.mark.parametrize("delta", ["yes", "no"])
def test_offline_verb_reports_a_url_that_is_not_there(world, delta):
    w = world(offline=True, delta=delta)
    bootenv = w.device.bootenv.read_text()
    slot_b = w.device.slot["B"].read_bytes()
    missing = "/delta/missing-1.1.0.upk"
    url = w.server.url(missing)
    p = w.install_offline(missing)
    out = f"{p.stdout}\n{p.stderr}"
    assert p.returncode != 0, out
    assert INSTALLED not in p.stdout, out
    (line,) = [x for x in p.stderr.splitlines() if x.startswith("upkeepd: ")]
    assert url in line and "404" in line, out
    # Nothing written, nothing activated.
    assert w.device.bootenv.read_text() == bootenv, out
    assert w.device.slot["B"].read_bytes() == slot_b, out
    state = w.device.data / "state.json"
    assert not state.exists() or not json.loads(state.read_text()).get("pending"), out


def test_offline_verb_stops_the_download_when_the_install_fails(world):
    """A bundle damaged on the wire (delta = no): the installer fails on the damaged chunk while the
    download still runs (stalled further on); the verb cancels it, ends its loop and exits at once."""
    w = world(offline=True, delta="no")
    bootenv = w.device.bootenv.read_text()
    w.server.plan(BUNDLE_PATH, flip=[w.size // 3], stall_at=w.size * 3 // 4, stall_seconds=60)
    start = time.monotonic()
    p = w.install_offline()
    took = time.monotonic() - start
    out = f"{p.stdout}\n{p.stderr}"
    assert p.returncode != 0, out
    assert INSTALLED not in p.stdout, out
    assert took < 30, (took, out)
    assert w.device.bootenv.read_text() == bootenv, out
    state = w.device.data / "state.json"
    assert not state.exists() or not json.loads(state.read_text()).get("pending"), out


def test_cancel_stops_a_delta_at_once(world, pair):
    """A server that trickles (2 kB/s): Cancel ends the delta's range download within seconds, nothing is
    activated, and no whole download follows."""
    v1, v2, _ = pair
    w = world(plan={"rate": 2000})
    install(w.bus, w.server.url(BUNDLE_PATH))
    deadline = time.monotonic() + 30
    while w.bus.get("State") != "downloading" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)
    t0 = time.monotonic()
    w.bus.call("Cancel")
    ok, message, error = w.monitor.finished(timeout=30)
    assert time.monotonic() - t0 < 5, (time.monotonic() - t0, w.log())
    assert (ok, error) == (False, "io.upkeep.Update1.Error.Cancelled"), (message, w.log())
    assert "downloading the whole bundle" not in w.log()
    assert w.device.primary() == "A"


def test_a_bundle_smaller_than_the_first_request_is_a_delta_too(tmp_path):
    """A bundle of a few KiB (a small image, zstd blocks): the first request for its head asks for more
    bytes than the file has and gets the file up to its end (as HTTP serves such a range); the delta goes
    on from there, without a fallback to the whole download, and takes its blocks from that answer."""
    rng = random.Random(SEED + 1)
    v1 = b"".join(text_block(rng) for _ in range(32))  # 128 KiB
    v2 = bytearray(v1)
    v2[5 * BLOCK:6 * BLOCK] = bytes(rng.getrandbits(8) for _ in range(BLOCK))
    v2 = bytes(v2)
    small = make_bundle(tmp_path, "1.1.0", v2, name="small", create_args=["--chunk-size", "16384"])
    size = small.stat().st_size
    assert size < 64 * 1024, size  # smaller than the delta's first request (install-delta.c, HEAD_FIRST)
    w = World(tmp_path / "w", v1, small, bus=False)
    try:
        p = w.install_offline()
        out = f"{p.stdout}\n{p.stderr}"
        assert p.returncode == 0 and INSTALLED in p.stdout, out
        assert not FALLBACK_RE.search(p.stdout), out
        got = the_offline_delta_line(w, p)
        assert got["size"] == size and got["reused"] == len(v1) - BLOCK, got
        assert w.slot_b_holds(v2), out
        # One request: the changed block's bytes were in its answer already.
        st = w.stats()
        assert st["ranges"] == ["bytes=0-65535"] and st["bytes_sent"] == size, st
        assert got["requests"] == 1 and got["fetched"] == size, got
        # Slot A's block 1 changed under its cached table: its chunk does not check out and is taken
        # again from that same answer, not asked for.
        a = w.device.slot["A"]
        before = a.stat()
        with open(a, "r+b") as f:
            f.seek(BLOCK + 10)
            f.write(b"changed")
        os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))
        w.device.slot["B"].write_bytes(b"")
        p = w.install_offline()
        out = f"{p.stdout}\n{p.stderr}"
        assert p.returncode == 0 and INSTALLED in p.stdout and not FALLBACK_RE.search(p.stdout), out
        got = the_offline_delta_line(w, p)
        assert got["table"] == "cached" and got["requests"] == 1 and got["reused"] < len(v1) - BLOCK, got
        assert w.slot_b_holds(v2), out
        assert w.stats()["ranges"] == ["bytes=0-65535"] * 2, w.stats()
    finally:
        w.close()
