#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Regenerate the fixed bundle of fuzz-delta (tests/fuzz/delta.upk) and its seeds (corpus/delta/).

    /usr/bin/python3 tests/fuzz/make-delta-corpus.py BUILD_DIR

The bundle is made by the real `updatectl bundle create` (format 2, chunks of 4 blocks of 4 KiB) with
a throw-away PKI whose keys are thrown away: fuzz-delta opens it unverified. Payload p0 is stored as
zstd blocks with the window on (text, random blocks, zero blocks, blocks that repeat earlier ones, a
short last block); payload p1 is stored as is. The seeds follow the input layout that fuzz-delta.c
describes; they are regenerated with the bundle, never one without the other. Seeds kept from fuzzer
finds (leak-*, crash-*, timeout-*) are left in place."""

import importlib.util
import json
import random
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLOCK = 4096

ZERO, LOCAL, FETCH = 0, 1, 2
PIECE_TRUE, PIECE_GARBAGE, PIECE_ERROR, PIECE_END = 0, 1, 2, 3
REFETCH_TRUE, REFETCH_FLIP, REFETCH_GARBAGE, REFETCH_ERROR = 0, 1, 2, 3


def payload_contents():
    rnd = random.Random(7)
    text = b"".join(b"line %05d of the new root file system\n" % i for i in range(2000))
    p0 = bytearray()
    for j in range(22):
        if j % 7 == 3:
            p0 += bytes(BLOCK)  # zeros
        elif j % 5 == 1:
            p0 += rnd.randbytes(BLOCK)
        elif j % 6 == 4 and j >= 6:
            p0 += p0[(j - 6) * BLOCK:(j - 5) * BLOCK]  # an earlier block again: in the window
        else:
            p0 += text[j * 1500:j * 1500 + BLOCK]
    p0 += b"a short last block\n" * 40
    p1 = bytes(range(256)) * 16 * 3 + rnd.randbytes(BLOCK) + b"stored tail\n" * 30
    return [("rootfs.img", bytes(p0), "zstd"), ("app.img", p1, "none")]


def seed(blocks, pieces=(), refetch=(), slot_size=0, patch_off=0, patch=b"", ahead=0, pool=b""):
    """blocks: (origin byte, local byte) per block of both payloads; pieces: (kind, len, adj); ahead:
    BundleDeltaSource.ahead (0: the reader's default)."""
    out = bytearray()
    for o, l in blocks:
        out += bytes([o, l & 0xFF])
    out += struct.pack("<H", len(pieces))
    for kind, n, adj in pieces:
        out += struct.pack("<BHh", kind, n, adj)
    out += bytes([len(refetch)]) + bytes(refetch)
    out += struct.pack("<IIH", slot_size, patch_off, len(patch)) + patch + bytes([ahead])
    return bytes(out + pool)


def main():
    build = Path(sys.argv[1]).resolve()
    updatectl = build / "cli" / "updatectl"
    spec = importlib.util.spec_from_file_location("gen_pki", HERE.parent / "pki" / "gen-pki.py")
    gen_pki = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_pki)
    corpus = HERE / "corpus" / "delta"
    corpus.mkdir(parents=True, exist_ok=True)
    for old in corpus.iterdir():
        if not old.name.startswith(("leak-", "crash-", "timeout-")):
            old.unlink()
    payloads = payload_contents()
    bundle = HERE / "delta.upk"
    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        pki = t / "pki"
        pki.mkdir()
        gen_pki.generate(str(pki))
        entries = []
        for i, (fname, data, comp) in enumerate(payloads):
            (t / fname).write_bytes(data)
            entries.append({"name": f"p{i}", "file": fname, "handler": "raw", "slot_class": "rootfs",
                            "chunks": {"compression": comp}})
        m = {"format": 2, "compatible": "acme-gw", "version": "2.0.0", "build": "2026-12-01T00:00:00Z",
             "payloads": entries}
        (t / "manifest.json").write_text(json.dumps(m))
        subprocess.run([str(updatectl), "bundle", "create", "--manifest", str(t / "manifest.json"),
                        "--cert", str(pki / "signer.pem"), "--key", str(pki / "signer.key"),
                        "--chain", str(pki / "chain.pem"), "--chunk-size", str(4 * BLOCK),
                        "-o", str(bundle)], check=True)

    with tarfile.open(bundle, "r:") as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())
        first_at = tf.getmember(payloads[0][0]).offset_data
    for e in manifest["payloads"]:
        assert e["chunks"]["block"] == BLOCK, e
    size = bundle.stat().st_size
    n = sum(-(-len(d) // BLOCK) for _, d, _ in payloads)
    slot = sum(-(-len(d) // BLOCK) * BLOCK for _, d, _ in payloads)
    zero = [j for j in range(22) if j % 7 == 3]

    def uneven(total, sizes):
        out, left, k = [], total, 0
        while left > 0:
            out.append((PIECE_TRUE, min(sizes[k % len(sizes)], left), 0))
            left -= out[-1][1]
            k += 1
        return out

    rest = size - first_at
    (corpus / "all-fetched").write_bytes(seed([(FETCH, 0)] * n, uneven(rest, [3001, 17, 9000, 512])))
    (corpus / "all-local").write_bytes(seed([(LOCAL, 0)] * n, slot_size=slot))
    mixed = [(ZERO if j in zero else (LOCAL, FETCH, FETCH)[j % 3], 0) for j in range(n)]
    (corpus / "mixed").write_bytes(seed(mixed, uneven(rest, [777, 5000]), slot_size=slot))
    # The slot's block 9 changed: its chunk is fetched again, the true bytes.
    (corpus / "mixed-slot-changed").write_bytes(
        seed(mixed, uneven(rest, [4096]), slot_size=slot, patch_off=9 * BLOCK + 100, patch=b"changed"))
    # Every block local, the slot's block 9 changed, batches of one, two and four chunks assembled and
    # hashed together: the changed block's chunk fetched again in its batch.
    for ahead in (1, 2, 4):
        (corpus / f"local-slot-changed-ahead{ahead}").write_bytes(
            seed([(LOCAL, 0)] * n, uneven(rest, [4096]), slot_size=slot, patch_off=9 * BLOCK + 100,
                 patch=b"changed", ahead=ahead))
    # The same, but the refetch returns garbage (then a flipped byte, then an error): the read fails.
    for label, mode in (("garbage", REFETCH_GARBAGE), ("flipped", REFETCH_FLIP), ("error", REFETCH_ERROR)):
        (corpus / f"refetch-{label}").write_bytes(
            seed(mixed, uneven(rest, [4096]), refetch=[mode], slot_size=slot, patch_off=9 * BLOCK + 100,
                 patch=b"changed", pool=b"garbage" * 100))
    # Local blocks from the wrong place and a slot too short: refetched (the true bytes).
    (corpus / "local-shifted").write_bytes(seed([(LOCAL, 1)] * n, slot_size=slot // 2))
    # Pieces that go backwards, skip forward, carry garbage, fail, end early.
    for label, bad in (("backwards", (PIECE_TRUE, 100, -3000)), ("skip", (PIECE_TRUE, 100, 5000)),
                       ("garbage", (PIECE_GARBAGE, 2000, 0)), ("error", (PIECE_ERROR, 0, 0)),
                       ("end", (PIECE_END, 0, 0)), ("wrap", (PIECE_TRUE | 0x10, 100, 50))):
        pieces = uneven(rest, [6000])
        pieces.insert(2, bad)
        (corpus / f"pieces-{label}").write_bytes(seed([(FETCH, 0)] * n, pieces, pool=b"\xa5" * 64))
    # Local block numbers at the ends of int64_t.
    (corpus / "local-extreme").write_bytes(seed([(LOCAL | (0x40 if j % 5 == 4 else 0x80), j) for j in range(n)]))
    print(f"wrote {bundle} ({size} bytes, {n} blocks) and {len(list(corpus.iterdir()))} seeds")


if __name__ == "__main__":
    main()
