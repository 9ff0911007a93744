#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark (not a test): the bytes a device holding image V1 must download to install image V2 from a
format-2 bundle with deltas (upkeep-bundle(5), Deltas), against the whole image compressed as one stream,
measured in the same run on the image pair of mkdeltapair.py.

usage: /usr/bin/python3 tests/bench/bench_delta.py BUILD_DIR [--levels 9,19] [--window 262144]
                                                   [--pair-cache DIR] [--v1 IMG --v2 IMG]

For each zstd level it makes the bundle of V2 with `updatectl bundle create` (4 KiB blocks, the given
window) and reads it as a device would plan a delta: the bundle's first bytes up to the end of
chunks.idx (manifest, signature, index: fetched whole), then for every block of the payload whose match
key is not among V1's 4 KiB blocks and that is not zeros, its stored bytes; ranges that touch or lie
less than GAP bytes apart are merged (a device fetches the gap rather than start another range). It
prints the bytes and ranges, and the ratio to the reference: V2 compressed whole with zstd -19 --long
(the issue's measure of a full image). Needs python3-zstandard and zstd (apt).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

SOURCE = Path(__file__).resolve().parents[2]
BLOCK = 4096
GAP = 512  # merge ranges less than this apart: a part of a multi-range answer costs about 100 bytes
TAR = 512


def log(msg):
    print(msg, flush=True)


def members(path):
    """(name, data offset, size) of each tar member, in order (ustar, as format 2 writes it)."""
    out = []
    with open(path, "rb") as f:
        at = 0
        while True:
            f.seek(at)
            h = f.read(TAR)
            if len(h) < TAR or h == bytes(TAR):
                return out
            name = h[:100].rstrip(b"\0").decode()
            if h[124] & 0x80:
                size = int.from_bytes(h[128:136], "big")
            else:
                size = int(h[124:136].rstrip(b"\0 ").decode() or "0", 8)
            out.append((name, at + TAR, size))
            at += TAR + (size + TAR - 1) // TAR * TAR


def v1_keys(v1):
    keys = set()
    with open(v1, "rb") as f:
        while True:
            b = f.read(BLOCK)
            if not b:
                return keys
            keys.add(hashlib.sha256(b).digest()[:5])


def plan(bundle, have):
    ms = members(bundle)
    names = [m[0] for m in ms]
    assert names[:3] == ["manifest.json", "manifest.json.sig", "chunks.idx"], names
    with open(bundle, "rb") as f:
        f.seek(ms[0][1])
        manifest = json.loads(f.read(ms[0][2]))
        f.seek(ms[2][1])
        index = zstandard.ZstdDecompressor().decompress(f.read(ms[2][2]))
    head = ms[2][1] + ms[2][2]  # everything up to the end of chunks.idx
    ranges = [[0, head]]
    fetched_blocks = zero = local = 0
    off = 0
    for p, (name, data_at, size) in zip(manifest["payloads"], ms[3:]):
        c = p["chunks"]
        nb = (p["installed_size"] + c["block"] - 1) // c["block"]
        bt = index[off + c["count"] * 64: off + c["count"] * 64 + nb * 8]
        off += c["count"] * 64 + nb * 8
        at = data_at
        for j in range(nb):
            e = bt[j * 8:(j + 1) * 8]
            kind, slen, key = e[0], int.from_bytes(e[1:3], "big"), e[3:8]
            if kind == 2:
                zero += 1
            elif key in have:
                local += 1
            else:
                fetched_blocks += 1
                if ranges[-1][1] + GAP >= at:
                    ranges[-1][1] = max(ranges[-1][1], at + slen)
                else:
                    ranges.append([at, at + slen])
            at += slen
    total = sum(b - a for a, b in ranges)
    return {"head": head, "index": ms[2][2], "bytes": total, "ranges": len(ranges), "fetched": fetched_blocks,
            "local": local, "zero": zero, "bundle": os.path.getsize(bundle)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", type=Path)
    ap.add_argument("--levels", default="9,19")
    ap.add_argument("--window", default="262144")
    ap.add_argument("--pair-cache", type=Path, default=Path("/var/tmp/upkeep-bench-cache"))
    ap.add_argument("--v1", type=Path)
    ap.add_argument("--v2", type=Path)
    a = ap.parse_args()
    if a.v1 and a.v2:
        v1, v2 = a.v1, a.v2
    else:
        pair = json.loads(subprocess.run([sys.executable, SOURCE / "tests/bench/mkdeltapair.py", "--cache",
                                          a.pair_cache], check=True, capture_output=True, text=True).stdout)
        v1, v2 = Path(pair["v1"]), Path(pair["v2"])
        log(f"pair: {pair['packages']} packages, {len(pair['changed_packages'])} changed: "
            f"{' '.join(pair['changed_packages'])}")
    ref_file = v2.with_suffix(".zst19")
    if not ref_file.exists():
        subprocess.run(["zstd", "-19", "--long=27", "-T0", "-q", "-f", "-o", ref_file, v2], check=True)
    ref = ref_file.stat().st_size
    log(f"reference: V2 ({v2.stat().st_size} bytes) as one zstd -19 --long stream: {ref / 1e6:.2f} MB")
    have = v1_keys(v1)
    pki = a.build / "tests" / "pki"
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-delta-") as tmp:
        tmp = Path(tmp)
        os.symlink(v2, tmp / "rootfs.img")
        (tmp / "manifest.json").write_text(json.dumps({
            "format": 2, "compatible": "bench", "version": "2.0.0", "build": "2026-01-01T00:00:00Z",
            "payloads": [{"name": "rootfs", "file": "rootfs.img", "handler": "raw", "slot_class": "rootfs",
                          "chunks": {"compression": "zstd"}}]}))
        for level in a.levels.split(","):
            out = tmp / f"v2-{level}.upk"
            t0 = time.monotonic()
            subprocess.run([a.build / "cli" / "updatectl", "bundle", "create", "--manifest", tmp / "manifest.json",
                            "--cert", pki / "signer.pem", "--key", pki / "signer.key", "--chain", pki / "chain.pem",
                            "--zstd-level", level, "--window", a.window, "-o", out], check=True,
                           stdout=subprocess.DEVNULL)
            took = time.monotonic() - t0
            r = plan(out, have)
            log(f"level {level:>2}, window {a.window}: bundle {r['bundle'] / 1e6:.2f} MB "
                f"({r['bundle'] / ref:.2f} x reference) made in {took:.0f} s; delta: {r['bytes'] / 1e6:.2f} MB "
                f"= {100 * r['bytes'] / ref:.1f} % of the reference (manifest, signature and index "
                f"{r['head'] / 1e6:.2f} MB of it, index {r['index'] / 1e6:.2f} MB), {r['ranges']} ranges; "
                f"blocks fetched {r['fetched']}, local {r['local']}, zeros {r['zero']}")


if __name__ == "__main__":
    main()
