# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a failed or cut install leaves behind (issue 12): an archive payload is unpacked into a staging
folder inside the folder slot and moved into the slot only at commit, so a payload that fails its
sha256 leaves no entry of it in the slot; a `file` payload goes live only when every payload verified;
and a format 1 bundle, whose payload sha256 is known only at the payload's end, is installed only with
the raw handler into an A/B slot."""

import io
import os
import signal
import stat
import tarfile

import pytest

from device import PAYLOAD_SIZE, STORED, Device, make_bundle, payload_bytes

STAGING = ".upkeep-staging"
EXIT_FORMAT = 14
EXIT_PAYLOAD = 15
FORMAT_1 = ["--format", "1"]
FORMAT_1_REFUSED = ("bundle format 1 would hand handler {handler} bytes before their sha256 is checked; "
                    "upkeep installs format 1 payloads only with the raw handler into an A/B slot: rebuild it "
                    "with updatectl bundle create (format 2)")


def folder_device(tmp_path):
    """A device whose slot B is a folder (slot A, the booted one, stays a file)."""
    device = Device(tmp_path / "dev")
    slot = device.root / "slotB"
    slot.mkdir()
    (slot / "old-system.txt").write_text("the previous contents of the inactive slot\n")
    device.conf.write_text(device.conf.read_text().replace(f"device = {device.slot['B']}\n", f"device = {slot}\n"))
    device.slot["B"] = slot
    return device


def tar_of(files):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


# a.txt fills the first two 4096-byte chunks and a bit of the third, which holds b.txt's header.
ABC = [("a.txt", b"a" * 8000), ("b.txt", b"b" * 1024), ("c.txt", b"c" * 100)]


def header(info):
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


def evil_entries():
    """A block device 8,0 mode 0666 and a set-uid root file: 1536 bytes, what b.txt takes (one header and
    1024 bytes of data)."""
    dev = tarfile.TarInfo("evil_blockdev")
    dev.type = tarfile.BLKTYPE
    dev.devmajor, dev.devminor = 8, 0
    dev.mode = 0o666
    suid = tarfile.TarInfo("evil_suid")
    suid.size = 512
    suid.mode = 0o4755
    suid.uid = suid.gid = 0
    out = header(dev) + header(suid) + b"#!/bin/sh\nid\n".ljust(512, b"\0")
    assert len(out) == 512 + 1024
    return out


def tampered_archive_bundle(tmp_path, create_args):
    """The issue's attack: a signed bundle whose archive payload (a.txt b.txt c.txt) has, in the bundle's
    bytes, b.txt's header and data replaced by a block device and a set-uid file. The manifest, its
    signature and the chunk index stay intact and the payload keeps its size: only its sha256 fails (in
    format 1 at its end, in format 2 at the third chunk)."""
    tar = tar_of(ABC)
    bundle = make_bundle(tmp_path, "1.1.0", tar, handler="archive", create_args=create_args)
    data = bytearray(bundle.read_bytes())
    at = data.find(tar)  # stored as it is, uncompressed
    assert at >= 0 and data.find(tar, at + 1) < 0
    b_header = at + 512 + 8192  # after a.txt's header and its 16 blocks of data
    assert data[b_header:b_header + 5] == b"b.txt"
    evil = evil_entries()
    data[b_header:b_header + len(evil)] = evil
    bundle.write_bytes(bytes(data))
    return bundle


def entries(folder):
    """Every path below folder, relative, with its lstat."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            out[os.path.relpath(full, folder)] = os.lstat(full)
    return out


def assert_abc(slot):
    assert sorted(os.listdir(slot)) == ["a.txt", "b.txt", "c.txt"]
    for name, data in ABC:
        assert (slot / name).read_bytes() == data
        assert stat.S_IMODE((slot / name).stat().st_mode) == 0o644


def test_tampered_archive_format_1_is_refused(tmp_path):
    device = folder_device(tmp_path)
    bundle = tampered_archive_bundle(tmp_path, FORMAT_1)
    before = device.env()
    p = device.install(bundle)
    assert p.returncode == EXIT_FORMAT, (p.returncode, p.stderr)
    assert 'payload "rootfs": ' + FORMAT_1_REFUSED.format(handler="archive") in p.stderr, p.stderr
    assert os.listdir(device.slot["B"]) == ["old-system.txt"]
    assert device.env() == before


def test_tampered_archive_leaves_nothing_in_the_slot(tmp_path):
    """Format 2: the chunks before b.txt's verify and reach the handler (a.txt is unpacked into the staging
    folder), the third fails: nothing of the payload is in the slot, not even the verified a.txt."""
    device = folder_device(tmp_path)
    bundle = tampered_archive_bundle(tmp_path, ["--chunk-size", "4096", *STORED])
    slot_mode = stat.S_IMODE(device.slot["B"].stat().st_mode)
    p = device.install(bundle)
    assert p.returncode == EXIT_PAYLOAD, (p.returncode, p.stderr)
    assert 'payload "rootfs": chunk 2' in p.stderr and "sha256 mismatch" in p.stderr, p.stderr
    found = entries(device.slot["B"])
    for path, st in found.items():
        assert not stat.S_ISBLK(st.st_mode) and not stat.S_ISCHR(st.st_mode), f"device node {path} in the slot"
        assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), f"set-uid or set-gid file {path} in the slot"
    assert found == {}, f"the failed install left {sorted(found)} in the slot"
    assert stat.S_IMODE(device.slot["B"].stat().st_mode) == slot_mode
    assert device.primary() == "A" and device.reboot() == "A"
    # The slot is usable: an intact bundle installs.
    (tmp_path / "2").mkdir()
    p = device.install(make_bundle(tmp_path / "2", "1.1.0", tar_of(ABC), handler="archive"))
    assert p.returncode == 0, p.stderr
    assert_abc(device.slot["B"])


def test_archive_install_leaves_no_staging_folder(tmp_path):
    device = folder_device(tmp_path)
    p = device.install(make_bundle(tmp_path, "1.1.0", tar_of(ABC), handler="archive"))
    assert p.returncode == 0, p.stderr
    assert_abc(device.slot["B"])
    assert not (device.slot["B"] / STAGING).exists()
    assert device.reboot() == "B"


def big_tree():
    """About PAYLOAD_SIZE bytes in 64 files, so a crash can land in the middle of the extraction."""
    data = payload_bytes()
    n = 64
    return [(f"f{i:02}.bin", data[i * (PAYLOAD_SIZE // n):(i + 1) * (PAYLOAD_SIZE // n)]) for i in range(n)]


@pytest.mark.parametrize("point", [f"write:{PAYLOAD_SIZE // 2}", "payload-finished", "written", "committed"])
def test_crash_during_an_archive_install(tmp_path, point):
    """A power cut while the archive is unpacked (or after it, before the commit) leaves only the staging
    folder, mode 0700, in the slot; the next install removes it. From the commit on the tree is in the
    slot and the staging folder is gone."""
    device = folder_device(tmp_path)
    files = big_tree()
    bundle = make_bundle(tmp_path, "1.1.0", tar_of(files), handler="archive")
    p = device.install(bundle, env={"UPKEEP_TEST_CRASH_AT": point})
    assert p.returncode == -signal.SIGKILL, (point, p.returncode, p.stderr)
    slot = device.slot["B"]
    if point == "committed":
        assert sorted(os.listdir(slot)) == [n for n, _ in files]
    else:
        assert os.listdir(slot) == [STAGING], os.listdir(slot)
        st = os.lstat(slot / STAGING)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert device.primary() == "A"

    p = device.install(bundle)
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(slot)) == [n for n, _ in files]
    for name, data in files:
        assert (slot / name).read_bytes() == data
    assert device.reboot() == "B"


def test_archive_member_may_not_use_the_staging_name(tmp_path):
    device = folder_device(tmp_path)
    bundle = make_bundle(tmp_path, "1.1.0", tar_of([("a.txt", b"a"), (f"./{STAGING}/x", b"x")]), handler="archive")
    p = device.install(bundle)
    assert p.returncode != 0
    assert f'archive member "./{STAGING}/x" uses the name {STAGING}, which upkeep keeps for its staging folder' \
        in p.stderr, p.stderr
    assert os.listdir(device.slot["B"]) == []


def test_file_payload_goes_live_only_when_every_payload_verified(tmp_path):
    """The bundle's first payload is a `file`, its second (the slot's) fails its sha256: the file is not
    replaced, and no temporary file stays next to it."""
    device = Device(tmp_path / "dev")
    app = tmp_path / "app"
    app.mkdir()
    target = app / "app.conf"
    target.write_bytes(b"old config\n")
    payload = payload_bytes()
    bundle = make_bundle(tmp_path, "1.1.0", payload, targets=[("config", "file", target, b"new config\n")],
                         targets_first=True, create_args=STORED)
    data = bytearray(bundle.read_bytes())
    assert data.find(b"new config\n") < data.find(payload[:4096])  # the file payload comes first
    at = data.find(payload[:4096]) + PAYLOAD_SIZE - 100  # the last chunk of the slot's payload
    data[at] ^= 0xFF
    bundle.write_bytes(bytes(data))
    p = device.install(bundle)
    assert p.returncode == EXIT_PAYLOAD, (p.returncode, p.stderr)
    assert 'payload "rootfs": chunk' in p.stderr and "sha256 mismatch" in p.stderr, p.stderr
    assert target.read_bytes() == b"old config\n"
    assert os.listdir(app) == ["app.conf"]
    assert device.primary() == "A"


@pytest.mark.parametrize("case", ["archive", "exec", "file-target", "raw-target"])
def test_format_1_is_installed_only_raw_into_a_slot(tmp_path, case):
    """Refused before anything is written or the boot state changes; the same payloads in format 2 and a
    format 1 raw slot payload install."""
    device = folder_device(tmp_path) if case == "archive" else Device(tmp_path / "dev")
    target = tmp_path / "app.conf"
    target.write_bytes(b"old config\n")
    payload = tar_of(ABC) if case == "archive" else payload_bytes()
    handler = {"archive": "archive", "exec": "exec:flash"}.get(case, "raw")
    targets = {"file-target": [("config", "file", target, b"new config\n")],
               "raw-target": [("config", "raw", target, b"new config\n")]}.get(case, [])
    if case == "exec":
        prog = device.root / "handlers" / "flash"
        prog.write_text("#!/bin/sh\ncase \"$1\" in install) cat >\"$UPKEEP_DESTINATION\" ;; esac\n")
        prog.chmod(0o755)
    before_env, before_b = device.env(), sorted(os.listdir(device.slot["B"])) if case == "archive" else b""
    bundle = make_bundle(tmp_path, "1.1.0", payload, handler=handler, targets=targets, create_args=FORMAT_1)
    p = device.install(bundle)
    assert p.returncode == EXIT_FORMAT, (p.returncode, p.stderr)
    name, refused = ("config", targets[0][1]) if targets else ("rootfs", handler)
    assert f'payload "{name}": ' + FORMAT_1_REFUSED.format(handler=refused) in p.stderr, p.stderr
    assert device.env() == before_env
    assert target.read_bytes() == b"old config\n"
    if case == "archive":
        assert sorted(os.listdir(device.slot["B"])) == before_b
    else:
        assert device.slot["B"].read_bytes() == b""
    last = device.history()[-1]
    assert last["ok"] is False and "bundle format 1" in last["reason"]
    (tmp_path / "2").mkdir()
    bundle = make_bundle(tmp_path / "2", "1.1.0", payload, handler=handler, targets=targets)
    p = device.install(bundle)
    assert p.returncode == 0, p.stderr
    if targets:
        assert target.read_bytes() == b"new config\n"


def test_format_1_raw_into_a_slot_installs(tmp_path):
    device = Device(tmp_path / "dev")
    payload = payload_bytes()
    p = device.install(make_bundle(tmp_path, "1.1.0", payload, create_args=FORMAT_1))
    assert p.returncode == 0, p.stderr
    assert device.slot["B"].read_bytes() == payload
    assert device.reboot() == "B"
