# SPDX-License-Identifier: LGPL-2.1-or-later
"""Format 2 end to end (issue 12): no handler ever sees an unverified byte. A byte flipped in chunk N
reaches no handler, which gets verified whole chunks before N only; a changed chunk index stops the
install before any handler starts; a tampered or spliced archive payload leaves no device node, setuid
file or unverified entry in the slot. Bundles that conftest crafts with zstd blocks compressed with their
prefix, and with blocks of zeros left out, install byte for byte."""

import io
import json
import os
import random
import stat
import tarfile

import pytest

from conftest import (INDEX, KIND_STORED, KIND_ZERO, KIND_ZSTD, MANIFEST, SIGNATURE, Layout2, Payload,
                      block_entries, chunk_entry_at, chunk_ranges, cms_sign, index_content, index_frame,
                      manifest2_for, manifest_bytes, set_index, ustar_member)
from device import PKI, UPDATECTL, Device, make_bundle, payload_bytes, run

CHUNK = 65536
# The chunking of the CLI bundles here: 17 chunks of 64 KiB for payload_bytes().
CHUNKING = ["--chunk-size", str(CHUNK)]


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


def manifest_and_index(path):
    """The manifest and the index content of a bundle."""
    with tarfile.open(path, "r:") as t:
        man = json.loads(t.extractfile(MANIFEST).read())
        raw = index_content(t.extractfile(INDEX).read())
    return man, raw


def chunk_offsets(path, payload_index=0):
    """(offset in the file, stored length, kinds of its blocks) of each chunk of payload `payload_index`,
    from the manifest and the index."""
    man, raw = manifest_and_index(path)
    p = man["payloads"][payload_index]
    at = members(path)[p["file"]][0]
    per = p["chunks"]["size"] // p["chunks"]["block"]
    kinds = [kind for kind, _, _ in block_entries(man, raw, payload_index)]
    return [(at + off, length, set(kinds[i * per:(i + 1) * per]))
            for i, (off, length) in enumerate(chunk_ranges(man, raw, payload_index))]


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
                         create_args=CHUNKING + ["--compression", compression])
    chunks = chunk_offsets(bundle)
    assert len(chunks) == 17
    if compression == "zstd":
        # The payload repeats: every block compresses.
        assert all(kinds == {KIND_ZSTD} for _, _, kinds in chunks), chunks
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
    bundle = make_bundle(tmp_path, "1.1.0", payload, handler="exec:record",
                         create_args=CHUNKING + ["--compression", "zstd"])
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
    bundle = make_bundle(tmp_path, "1.1.0", good, handler="archive",
                         create_args=["--chunk-size", "4096", "--compression", "none"])
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
# A zstd chunk whose content hash disagrees with its (verified) frame, in an index the signer signed: the
# stored bytes were verified and fix the content, so the installer does not hash it again (upkeep-bundle(5),
# Verification) and writes exactly what the frames decode to; `bundle verify --content` checks the
# content hash and names the inconsistency.


def resign_with_index(tmp_path, bundle, raw):
    """The same bundle with another index content `raw`: chunks.idx is its zstd frame, the manifest's
    index object follows it and is signed again with the test signer; members are written back in the
    canonical ustar layout."""
    with tarfile.open(bundle, "r:") as t:
        parts = [(i.name, t.extractfile(i).read()) for i in t]
    man = json.loads(parts[0][1])
    stored = index_frame(raw)
    set_index(man, stored)
    mbytes = manifest_bytes(man)
    sig = cms_sign(mbytes, tmp_path / "resign")
    members = [(MANIFEST, mbytes), (SIGNATURE, sig), (INDEX, stored)] + parts[3:]
    bundle.write_bytes(b"".join(ustar_member(n, d) for n, d in members) + b"\0" * 1024)


@pytest.mark.parametrize("n", [0, 9, 16])
def test_inconsistent_content_hash(tmp_path, device, n):
    payload = payload_bytes()
    record = tmp_path / "record"
    recording_handler(device, record)
    bundle = make_bundle(tmp_path, "1.1.0", payload, handler="exec:record",
                         create_args=CHUNKING + ["--compression", "zstd"])
    assert KIND_ZSTD in chunk_offsets(bundle)[n][2]  # a chunk of zstd blocks
    man, raw = manifest_and_index(bundle)
    raw = bytearray(raw)
    raw[chunk_entry_at(man, 0, n) + 40] ^= 0x01  # its content hash
    resign_with_index(tmp_path, bundle, bytes(raw))

    end = min((n + 1) * CHUNK, len(payload)) - 1
    want = f'payload "rootfs": chunk {n} (bytes {n * CHUNK}..{end}): content sha256 mismatch'
    p = run(UPDATECTL, "bundle", "verify", "--keyring", PKI / "keyring.pem", bundle)
    assert p.returncode == 0, p.stderr  # what an install checks
    p = run(UPDATECTL, "bundle", "verify", "--content", "--keyring", PKI / "keyring.pem", bundle)
    assert p.returncode != 0 and want in p.stderr, (p.stdout, p.stderr)

    p = device.install(bundle)
    assert p.returncode == 0, p.stderr
    # What the handler got is exactly the content the signed frames decode to.
    assert record.read_bytes() == payload


# ------------------------------------------------------------------------------------------------------
# Bundles crafted by conftest (from upkeep-bundle(5) alone): zstd blocks decoded with the content before
# them as their prefix, blocks of zeros that are not stored.


def crafted_bundle(tmp_path, content, layout, handler="raw"):
    """A format-2 bundle of one slot payload `content`, stored as `layout` (a Layout2 of it), for the
    test device (version 1.2.3)."""
    payload = Payload("rootfs", "rootfs.img", handler, content, None, slot_class="rootfs")
    m, raw = manifest2_for([payload], [layout])
    stored = index_frame(raw)
    set_index(m, stored)
    mbytes = manifest_bytes(m)
    sig = cms_sign(mbytes, tmp_path / "craft-sign")
    members = [(MANIFEST, mbytes), (SIGNATURE, sig), (INDEX, stored), ("rootfs.img", layout.stored)]
    bundle = tmp_path / "crafted.upk"
    bundle.write_bytes(b"".join(ustar_member(n, d) for n, d in members) + b"\0" * 1024)
    return bundle


def repeating_content(blocks=96, seed=11):
    """Random blocks, each used again later at distances of 1 to 80 blocks, and text: stored in a zstd
    payload with a window as frames that decode only with their prefix."""
    rnd = random.Random(seed)
    out = []
    for j in range(blocks):
        back = rnd.choice((1, 2, 7, 31, 63, 80))
        if j % 4 == 0 or j < back:
            out.append(rnd.randbytes(4096))
        elif j % 4 == 1:
            out.append(bytes(b"upkeep \n"[rnd.randrange(8)] for _ in range(4096)))
        else:
            out.append(out[j - back])
    return b"".join(out) + out[5][:3000]


@pytest.mark.parametrize("window", [4096, 65536, 262144])
def test_prefixed_zstd_blocks_install_byte_identical(tmp_path, device, window):
    content = repeating_content()
    layout = Layout2(content, 65536, 4096, "zstd", window)
    kinds = [b.kind for b in layout.blocks]
    assert kinds.count(KIND_ZSTD) > 20 and KIND_STORED in kinds, kinds
    bundle = crafted_bundle(tmp_path, content, layout)
    p = device.install(bundle)
    assert p.returncode == 0, p.stderr
    assert "installed version 1.2.3 into slot B" in p.stdout, p.stdout
    assert device.slot["B"].read_bytes() == content


@pytest.mark.parametrize("handler", ["raw", "exec:record"])
def test_zero_blocks_install_as_zeros(tmp_path, device, handler):
    """Blocks of zeros (kind 2, not stored) in the middle and at the end, the last one short: the
    handler gets the zeros, and a slot that held other bytes holds them."""
    rnd = random.Random(13)
    content = rnd.randbytes(4096) + bytes(3 * 4096) + rnd.randbytes(5000) + bytes(4096 - 5000 % 4096) + \
        bytes(65536) + rnd.randbytes(4096) + bytes(2000)
    layout = Layout2(content, 16384, 4096, "zstd", 65536)
    kinds = [b.kind for b in layout.blocks]
    assert kinds.count(KIND_ZERO) == 3 + 16 + 1 and kinds[-1] == KIND_ZERO, kinds
    assert len(layout.stored) < len(content) // 3
    record = tmp_path / "record"
    if handler == "exec:record":
        recording_handler(device, record)
    device.slot["B"].write_bytes(b"\xff" * len(content))
    bundle = crafted_bundle(tmp_path, content, layout, handler=handler)
    p = device.install(bundle)
    assert p.returncode == 0, p.stderr
    if handler == "raw":
        assert device.slot["B"].read_bytes() == content
    else:
        assert record.read_bytes() == content
