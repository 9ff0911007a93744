#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Regenerate the fuzz-bundle seed corpus and its keyring (tests/fuzz/keyring.pem).

    /usr/bin/python3 tests/fuzz/make-bundle-corpus.py BUILD_DIR

Makes a throw-away PKI (tests/pki/gen-pki.py), keeps only its root certificate as the fuzz keyring,
and writes small bundles made by the real `updatectl bundle create`: valid ones of every shape in
format 1 and format 2, and a few broken ones. The signing keys are thrown away: the seeds are
regenerated together with the keyring, never one without the other. Seeds kept from fuzzer finds
(leak-*, crash-*) are left in place."""

import importlib.util
import json
import lzma
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    build = Path(sys.argv[1]).resolve()
    updatectl = build / "cli" / "updatectl"
    spec = importlib.util.spec_from_file_location("gen_pki", HERE.parent / "pki" / "gen-pki.py")
    gen_pki = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_pki)
    corpus = HERE / "corpus" / "bundle"
    corpus.mkdir(parents=True, exist_ok=True)
    for old in corpus.iterdir():
        if not old.name.startswith(("leak-", "crash-")):
            old.unlink()
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

        # Format 2: chunks stored as is and as zstd frames, small chunks so that a seed has several.
        small = ["--chunk-size", "4096"]
        create("v2-none", [("rootfs.img", plain * 5, None)], args=small + ["--compression", "none"])
        create("v2-empty", [("empty.img", b"", None)], args=small)
        create("v2-zstd", [("app.zst", zst, "zstd")], args=small)
        v2 = create("v2-three", [("a.img", b"a" * 1000, None), ("b.gz", gzip.compress(bytes(range(256)) * 40, mtime=0), "gzip"),
                                 ("c.img", plain * 3, None)],
                    args=small + ["--compression", "zstd"], description="all fields", reboot=False)
        data = v2.read_bytes()
        index_at = data.find(b"chunks.idx")  # its header; the data follows at + 512
        tail = len(data) - 1024 - 2000
        for label, at in (("flipped-index", index_at + 512 + 10), ("flipped-chunk", tail)):
            flipped = bytearray(data)
            flipped[at] ^= 1
            (corpus / f"v2-{label}.upk").write_bytes(bytes(flipped))
        (corpus / "v2-truncated-in-chunk.upk").write_bytes(data[:tail])
    print(f"wrote {len(list(corpus.iterdir()))} seeds and {HERE / 'keyring.pem'}")


if __name__ == "__main__":
    main()
