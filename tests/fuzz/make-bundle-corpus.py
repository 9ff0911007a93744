#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Regenerate the fuzz-bundle seed corpus and its keyring (tests/fuzz/keyring.pem), and the
fuzz-chunk-index seeds made from its format-2 bundles.

    /usr/bin/python3 tests/fuzz/make-bundle-corpus.py BUILD_DIR

Makes a throw-away PKI (tests/pki/gen-pki.py), keeps only its root certificate as the fuzz keyring,
and writes small bundles made by the real `updatectl bundle create`: valid ones of every shape in
format 1 and format 2, and a few broken ones. The signing keys are thrown away: the seeds are
regenerated together with the keyring, never one without the other. Each format-2 bundle also gives a
fuzz-chunk-index seed (its manifest, a NUL byte, then the index content, that is chunks.idx
decompressed; two of them also with chunks.idx as stored), and a few of them a seed that breaks one
rule of the index's blocks. Seeds kept from fuzzer finds (leak-*, crash-*) are left in place."""

import importlib.util
import json
import lzma
import gzip
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import zstandard

HERE = Path(__file__).resolve().parent


def clear(corpus):
    corpus.mkdir(parents=True, exist_ok=True)
    for old in corpus.iterdir():
        if not old.name.startswith(("leak-", "crash-")):
            old.unlink()


def index_seed(bundle, stored=False):
    """(manifest bytes, index content) of a format-2 bundle; with `stored`, chunks.idx as stored (the
    target tries its input as both)."""
    with tarfile.open(bundle, "r:") as t:
        manifest = t.extractfile("manifest.json").read()
        index = t.extractfile("chunks.idx").read()
    return manifest, index if stored else zstandard.ZstdDecompressor().decompress(index)


def block_entry_at(manifest, payload, j):
    """Where block j of payload number `payload` has its 8-byte entry in the index content."""
    at = 0
    for i, e in enumerate(json.loads(manifest)["payloads"]):
        c = e["chunks"]
        if i == payload:
            return at + 64 * c["count"] + 8 * j
        at += 64 * c["count"] + 8 * -(-e["installed_size"] // c["block"])
    raise IndexError(payload)


def main():
    build = Path(sys.argv[1]).resolve()
    updatectl = build / "cli" / "updatectl"
    spec = importlib.util.spec_from_file_location("gen_pki", HERE.parent / "pki" / "gen-pki.py")
    gen_pki = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_pki)
    corpus = HERE / "corpus" / "bundle"
    index_corpus = HERE / "corpus" / "chunk-index"
    clear(corpus)
    clear(index_corpus)
    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        pki = t / "pki"
        pki.mkdir()
        gen_pki.generate(str(pki))
        shutil.copy(pki / "keyring.pem", HERE / "keyring.pem")

        def create(name, payloads, args=("--format", "1"), **extra):
            d = t / name
            d.mkdir()
            entries = []
            for i, (fname, data, comp) in enumerate(payloads):
                (d / fname).write_bytes(data)
                e = {"name": f"p{i}", "file": fname, "handler": "raw", "slot_class": "rootfs"}
                if comp:
                    e["compression"] = comp
                entries.append(e)
            m = {"format": 1, "compatible": "acme-gw", "version": "1.2.3", "build": "2026-11-25T10:00:00Z",
                 "payloads": entries}
            m.update(extra)
            (d / "manifest.json").write_text(json.dumps(m))
            out = corpus / f"{name}.upk"
            subprocess.run([str(updatectl), "bundle", "create", "--manifest", str(d / "manifest.json"),
                            "--cert", str(pki / "signer.pem"), "--key", str(pki / "signer.key"),
                            "--chain", str(pki / "chain.pem"), *args, "-o", str(out)], check=True)
            return out

        plain = bytes(range(256)) * 8
        create("one-raw", [("rootfs.img", plain, None)])
        create("empty-payload", [("empty.img", b"", None)])
        create("gzip", [("app.gz", gzip.compress(plain * 4, mtime=0), "gzip")])
        create("xz", [("app.xz", lzma.compress(plain * 4), "xz")])
        zst = subprocess.run(["zstd", "-q", "-c"], input=plain * 4, capture_output=True, check=True).stdout
        create("zstd", [("app.zst", zst, "zstd")])
        full = create("three", [("a.img", b"a" * 1000, None), ("b.gz", gzip.compress(b"b" * 5000, mtime=0), "gzip"),
                                ("c.img", b"c" * 10, None)],
                      description="all fields", security={"type": "mixed", "advisories": ["CVE-2026-1"],
                                                          "summary": "fixes"},
                      support={"end": "2031-01-01", "url": "https://example.com"}, reboot=False,
                      min_version="1.0.0")
        data = full.read_bytes()
        (corpus / "truncated-in-payload.upk").write_bytes(data[: len(data) // 2])
        (corpus / "truncated-after-header.upk").write_bytes(data[:512])
        flipped = bytearray(data)
        flipped[600] ^= 1
        (corpus / "flipped-manifest.upk").write_bytes(bytes(flipped))
        (corpus / "not-a-tar.upk").write_bytes(b"upkeep is not a tar\n" * 40)

        # Format 2: blocks stored as is, as zstd frames (with the window's prefix) and left out as zeros;
        # small chunks so that a seed has several.
        small = ["--chunk-size", "4096"]
        v2 = {}
        v2["none"] = create("v2-none", [("rootfs.img", plain * 5, None)],
                            args=small + ["--compression", "none"])
        v2["empty"] = create("v2-empty", [("empty.img", b"", None)], args=small)
        v2["zstd"] = create("v2-zstd", [("app.zst", zst, "zstd")], args=small)
        # Zeros, a block that repeats one 3 blocks back, a short last block; two blocks a chunk.
        blocks = bytes(range(256)) * 16 + bytes(8192) + random.Random(1).randbytes(4096) + plain * 2 + \
            bytes(4096) + plain[:4096] + b"tail"
        v2["blocks"] = create("v2-blocks", [("rootfs.img", blocks, None)],
                              args=["--chunk-size", "8192", "--compression", "zstd"])
        v2["three"] = create("v2-three", [("a.img", b"a" * 1000, None),
                                          ("b.gz", gzip.compress(bytes(range(256)) * 40, mtime=0), "gzip"),
                                          ("c.img", plain * 3, None)],
                             args=small + ["--compression", "zstd"], description="all fields", reboot=False)
        data = v2["three"].read_bytes()
        with tarfile.open(v2["three"], "r:") as tf:
            index_at = tf.getmember("chunks.idx").offset_data
            largest = max((m for m in tf.getmembers()[3:]), key=lambda m: m.size)
        tail = largest.offset_data + largest.size // 2  # in a chunk of the largest payload
        for label, at in (("flipped-index", index_at + 10), ("flipped-chunk", tail)):
            flipped = bytearray(data)
            flipped[at] ^= 1
            (corpus / f"v2-{label}.upk").write_bytes(bytes(flipped))
        (corpus / "v2-truncated-in-chunk.upk").write_bytes(data[:tail])

        # fuzz-chunk-index: each format-2 bundle's manifest and index content, and some broken ones.
        for label, bundle in v2.items():
            manifest, raw = index_seed(bundle)
            (index_corpus / f"{label}.bin").write_bytes(manifest + b"\0" + raw)
        for label in ("blocks", "three"):
            manifest, stored = index_seed(v2[label], stored=True)
            (index_corpus / f"{label}-stored.bin").write_bytes(manifest + b"\0" + stored)
        broken = {
            "kind-3": ("blocks", 0, 1, 0, b"\x03"),
            "kind-2-in-none": ("none", 0, 1, 0, b"\x02\x00\x00" + bytes(5)),
            "kind-2-match-key": ("blocks", 0, 2, 7, b"\x01"),
            "kind-0-length": ("none", 0, 0, 1, (4095).to_bytes(2, "big")),
            "kind-1-in-none": ("none", 0, 1, 0, b"\x01"),
        }
        for label, (source, payload, j, off, value) in broken.items():
            manifest, raw = index_seed(v2[source])
            raw = bytearray(raw)
            at = block_entry_at(manifest, payload, j) + off
            raw[at:at + len(value)] = value
            (index_corpus / f"{label}.bin").write_bytes(manifest + b"\0" + bytes(raw))
    print(f"wrote {len(list(corpus.iterdir()))} bundle seeds, {len(list(index_corpus.iterdir()))} chunk-index "
          f"seeds and {HERE / 'keyring.pem'}")


if __name__ == "__main__":
    main()
