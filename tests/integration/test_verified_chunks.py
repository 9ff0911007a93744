# SPDX-License-Identifier: LGPL-2.1-or-later
"""Format 2 end to end (issue 12): no handler ever sees an unverified byte. A byte flipped in chunk N
reaches no handler, which gets verified whole chunks before N only; a changed chunk index stops the
install before any handler starts; a tampered or spliced archive payload leaves no device node, setuid
file or unverified entry in the slot."""

import io
import json
import os
import stat
import tarfile

import pytest

from device import PKI, UPDATECTL, Device, make_bundle, payload_bytes, run

CHUNK = 65536
ENTRY = 72


@pytest.fixture
def device(tmp_path):
    return Device(tmp_path / "dev")


def members(path):
    """name -> (data offset, size) of a bundle's members."""
    out = {}
    with tarfile.open(path, "r:") as t:
        for info in t:
            out[info.name] = (info.offset_data, info.size)
    return out


def chunk_offsets(path, payload_index=0):
    """The data offset in the file of each chunk of payload `payload_index`, from manifest and index."""
    m = members(path)
    raw = path.read_bytes()
    man = json.loads(raw[m["manifest.json"][0]:m["manifest.json"][0] + m["manifest.json"][1]])
    idx_at = m["chunks.idx"][0]
    first = sum(p["chunks"]["count"] for p in man["payloads"][:payload_index])
    p = man["payloads"][payload_index]
    at = m[p["file"]][0]
    out = []
    for i in range(p["chunks"]["count"]):
        e = raw[idx_at + (first + i) * ENTRY:idx_at + (first + i + 1) * ENTRY]
        out.append((at, int.from_bytes(e[4:8], "big"), e[0]))
        at += int.from_bytes(e[4:8], "big")
    return out


def recording_handler(device, record):
    h = device.root / "handlers" / "record"
    # `record install` gets the payload on stdin; `record commit` / `record rollback` follow.
    h.write_text(f'#!/bin/sh\n[ "$1" = install ] && exec cat > {record}\nexit 0\n')
    h.chmod(0o755)


def flip(path, at):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("compression", ["none", "zstd"])
@pytest.mark.parametrize("n", [0, 5, 16])
def test_flipped_chunk_reaches_no_handler(tmp_path, device, compression, n):
    payload = payload_bytes()
    record = tmp_path / "record"
    recording_handler(device, record)
    bundle = make_bundle(tmp_path, "1.1.0", payload, handler="exec:record",
                         create_args=["--compression", compression])
    chunks = chunk_offsets(bundle)
    assert len(chunks) == 17
    if compression == "zstd":
        assert all(kind == 1 for _, _, kind in chunks)  # the payload repeats: every chunk compresses
    at, length, _ = chunks[n]
    flip(bundle, at + length // 2)

    p = device.install(bundle)
    assert p.returncode != 0, p.stdout
    end = min((n + 1) * CHUNK, len(payload)) - 1
    assert f'payload "rootfs": chunk {n} (bytes {n * CHUNK}..{end}): sha256 mismatch' in p.stderr, p.stderr
    got = record.read_bytes() if record.exists() else b""
    # Only whole verified chunks before N, as they are in the signed content; nothing of chunk N.
    assert len(got) % CHUNK == 0 and len(got) <= n * CHUNK, (len(got), n)
    assert got == payload[:len(got)]
    assert device.primary() == "A"


def test_unbroken_bundle_gives_the_handler_everything(tmp_path, device):
    payload = payload_bytes()
    record = tmp_path / "record"
    recording_handler(device, record)
    bundle = make_bundle(tmp_path, "1.1.0", payload, handler="exec:record", create_args=["--compression", "zstd"])
    p = device.install(bundle)
    assert p.returncode == 0, p.stderr
    assert record.read_bytes() == payload


def test_flipped_index_starts_no_handler(tmp_path, device):
    record = tmp_path / "record"
    recording_handler(device, record)
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes(), handler="exec:record")
    at, size = members(bundle)["chunks.idx"]
    flip(bundle, at + size - 1)
    p = device.install(bundle)
    assert p.returncode != 0
    assert "chunks.idx: sha256 mismatch" in p.stderr, p.stderr
    assert not record.exists()
    assert device.slot["B"].read_bytes() == b""


# ------------------------------------------------------------------------------------------------------
# The tampered archive of issue 12, in format 2


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def reg(name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    return info, data


def good_and_evil():
    """The good payload tar (a.txt b.txt c.txt) and the evil one of the same length: b.txt's header
    and data replaced by a block device 8,0 mode 0666 and a setuid-root file."""
    a, b, c = b"A" * 20000, b"B" * 20000, b"C" * 20000
    good = tar_bytes([reg("a.txt", a), reg("b.txt", b), reg("c.txt", c)])
    dev = tarfile.TarInfo("evil_blockdev")
    dev.type = tarfile.BLKTYPE
    dev.devmajor, dev.devminor = 8, 0
    dev.mode = 0o666
    suid = reg("evil_suid", b"#!/bin/sh\nid\n" + b"\0" * (20000 - 512 - 14), mode=0o4755)
    evil = tar_bytes([reg("a.txt", a), (dev, None), suid, reg("c.txt", c)])
    assert len(evil) == len(good), (len(evil), len(good))
    return good, evil, a


def folder_slot(device):
    device.slot["B"].unlink()
    device.slot["B"].mkdir()
    return device.slot["B"]


def assert_nothing_unverified(slot, a):
    for root, dirs, files in os.walk(slot):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            assert not stat.S_ISBLK(st.st_mode) and not stat.S_ISCHR(st.st_mode), name
            assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), name
            assert name == "a.txt", f"unverified entry {name} in the slot"
            assert stat.S_ISREG(st.st_mode)
            # Verified bytes of a.txt only; libarchive may have extended an a.txt it did not get
            # to its end with zeros up to its declared size.
            data = open(os.path.join(root, name), "rb").read().rstrip(b"\0")
            assert a.startswith(data), "a.txt holds bytes not in the signed payload"


def test_tampered_archive_leaves_nothing_unverified(tmp_path, device):
    good, evil, a = good_and_evil()
    slot = folder_slot(device)
    bundle = make_bundle(tmp_path, "1.1.0", good, handler="archive", create_args=["--chunk-size", "4096"])
    raw = bytearray(bundle.read_bytes())
    at, size = members(bundle)["rootfs.img"]
    assert raw[at:at + size] == good
    raw[at:at + size] = evil
    bundle.write_bytes(bytes(raw))
    p = device.install(bundle)
    assert p.returncode != 0, p.stdout
    assert 'payload "rootfs": chunk ' in p.stderr and "sha256 mismatch" in p.stderr, p.stderr
    assert_nothing_unverified(slot, a)
    assert device.primary() == "A"


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_spliced_archive_leaves_nothing_unverified(tmp_path, device, compression):
    """The manifest, signature and index of a good bundle, the payload of an evil one signed by
    another (trusted) key."""
    good, evil, a = good_and_evil()
    slot = folder_slot(device)
    args = ["--chunk-size", "4096", "--compression", compression]
    gb = make_bundle(tmp_path, "1.1.0", good, handler="archive", create_args=args, name="good")
    eb = make_bundle(tmp_path, "1.1.0", evil, handler="archive", create_args=args, name="evil",
                     signer="signer-ec")
    assert run(UPDATECTL, "bundle", "verify", "--keyring", PKI / "keyring.pem", eb).returncode == 0
    graw, eraw = gb.read_bytes(), eb.read_bytes()
    gat, gsize = members(gb)["rootfs.img"]
    eat, esize = members(eb)["rootfs.img"]
    if compression == "none":
        assert gsize == esize
    spliced = tmp_path / "spliced.upk"
    spliced.write_bytes(graw[:gat] + eraw[eat:eat + esize] + b"\0" * (-esize % 512) + b"\0" * 1024)
    p = device.install(spliced)
    assert p.returncode != 0, p.stdout
    assert 'payload "rootfs": ' in p.stderr, p.stderr
    assert_nothing_unverified(slot, a)
    assert device.primary() == "A"


# ------------------------------------------------------------------------------------------------------
# A zstd chunk whose content hash disagrees with its (verified) frame: the installer checks the content
# hash while the handler copies the chunk; the install still fails naming the chunk, nothing is activated.


def resign_with_index(tmp_path, bundle, index):
    """The same bundle with another chunks.idx: the manifest's index object follows it and is signed
    again with the test signer; members are written back in the canonical ustar layout."""
    from conftest import cms_sign, manifest_bytes, ustar_member
    import hashlib
    with tarfile.open(bundle, "r:") as t:
        parts = [(i.name, t.extractfile(i).read()) for i in t]
    man = json.loads(parts[0][1])
    man["index"] = {"size": len(index), "sha256": hashlib.sha256(index).hexdigest()}
    mbytes = manifest_bytes(man)
    sig = cms_sign(mbytes, tmp_path / "resign")
    members = [("manifest.json", mbytes), ("manifest.json.sig", sig), ("chunks.idx", index)] + parts[3:]
    bundle.write_bytes(b"".join(ustar_member(n, d) for n, d in members) + b"\0" * 1024)


@pytest.mark.parametrize("n", [0, 9, 16])
def test_inconsistent_content_hash_fails_the_install(tmp_path, device, n):
    payload = payload_bytes()
    record = tmp_path / "record"
    recording_handler(device, record)
    bundle = make_bundle(tmp_path, "1.1.0", payload, handler="exec:record",
                         create_args=["--compression", "zstd"])
    m = members(bundle)
    at, size = m["chunks.idx"]
    index = bytearray(bundle.read_bytes()[at:at + size])
    assert index[n * ENTRY] == 1  # a zstd chunk
    index[n * ENTRY + 40] ^= 0x01  # its content hash
    resign_with_index(tmp_path, bundle, bytes(index))

    p = device.install(bundle)
    assert p.returncode != 0, p.stdout
    end = min((n + 1) * CHUNK, len(payload)) - 1
    assert f'payload "rootfs": chunk {n} (bytes {n * CHUNK}..{end}): content sha256 mismatch' in p.stderr, \
        p.stderr
    got = record.read_bytes() if record.exists() else b""
    # What the handler got is the signed content (the frames verified), and nothing past chunk N.
    assert len(got) <= (n + 1) * CHUNK and got == payload[:len(got)]
    assert device.primary() == "A"
