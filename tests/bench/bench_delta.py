#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark (not a test): the bytes a device holding image V1 must download to install image V2 from a
format-2 bundle with deltas (upkeep-bundle(5), Deltas), against the whole image compressed as one stream,
measured in the same run on the image pair of mkdeltapair.py.

usage: /usr/bin/python3 tests/bench/bench_delta.py BUILD_DIR [--levels 9,19] [--window 262144]
                                                   [--pair-cache DIR] [--v1 IMG --v2 IMG] [--no-peers]

For each zstd level it makes the bundle of V2 with `updatectl bundle create` (4 KiB blocks, the given
window) and reads it as a device would plan a delta: the bundle's first bytes up to the end of
chunks.idx (manifest, signature, index: fetched whole), then for every block of the payload whose match
key is not among V1's 4 KiB blocks and that is not zeros, its stored bytes; ranges that touch or lie
less than GAP bytes apart are merged (a device fetches the gap rather than start another range). It
prints the bytes and ranges, and the ratio to the reference: V2 compressed whole with zstd -19 --long
(the issue's measure of a full image). An empty --levels makes no bundle (only the peers).

With --peers (the default) it measures in the same run what two other delta formats need for the same
pair, against the same reference, in temporary folders under /var/tmp (removed at the end):
- casync, content-defined chunks with an average of 64 KiB and of 16 KiB (`--chunk-size=AVG`: casync
  then cuts between AVG/4 and 4*AVG), each chunk compressed alone with casync's default compression
  (zstd, level 3): V1 and V2 each chunked into its own store (`casync make --store=S Vn.caibx Vn`); a
  device holding V1 downloads V2's index (.caibx) and the chunk files (.cacnk) of V2's store that are
  not in V1's, one HTTP request per chunk.
- zchunk, with zck's defaults (its content-defined chunking, buzhash, 32 KiB average between 8 and
  128 KiB; zstd level 9 per chunk, no dictionary; zck has no option to change the chunk size): the
  bytes `zck_delta_size V1.zck V2.zck` reports, V2's header included (a chunk V1 lacks counts each
  time V2 holds it); zckdl asks for the missing chunks as ranges in few requests.

Needs python3-zstandard and zstd, and for the peers casync and zchunk (apt).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

SOURCE = Path(__file__).resolve().parents[2]
BLOCK = 4096
CASYNC_AVG = (65536, 16384)  # casync --chunk-size averages of the peers
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


def need_tools(tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        sys.exit(f"bench_delta.py: {', '.join(missing)} not found; the peers (--peers) need them: "
                 f"apt-get install casync zchunk (or run with --no-peers)")


def casync_peer(v1, v2, avg, work):
    """The bytes a device holding V1 downloads with casync to get V2, chunks of average AVG: V2's index
    and the compressed chunks of V2 that V1 has not."""
    stores, took = {}, 0.0
    for name, img in (("v1", v1), ("v2", v2)):
        stores[name] = work / f"store-{name}"
        t0 = time.monotonic()
        subprocess.run(["casync", "make", f"--store={stores[name]}", f"--chunk-size={avg}",
                        work / f"{name}.caibx", img], check=True, stdout=subprocess.DEVNULL)
        took += time.monotonic() - t0
    have = {p.name for p in stores["v1"].glob("*/*.cacnk")}
    chunks = list(stores["v2"].glob("*/*.cacnk"))
    fetched = [p for p in chunks if p.name not in have]
    with open(work / "v2.caibx", "rb") as f:
        head = f.read(48)  # size, type, feature flags, then the chunk sizes min, avg, max (le64)
    sizes = [int.from_bytes(head[o:o + 8], "little") for o in (24, 32, 40)]
    with open(fetched[0] if fetched else chunks[0], "rb") as f:
        magic = f.read(4)
    comp = {b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zX": "xz", b"\x1f\x8b\x08\x00": "gzip"}.get(magic, magic.hex())
    index = (work / "v2.caibx").stat().st_size
    return {"index": index, "bytes": index + sum(p.stat().st_size for p in fetched), "fetched": len(fetched),
            "chunks": len(chunks), "sizes": sizes, "compression": comp, "took": took}


def zchunk_peer(v1, v2, work):
    """The bytes a device holding V1 downloads with zchunk to get V2 (zck's defaults), as
    zck_delta_size counts them: V2's header and the chunks of V2 whose digest V1 has not."""
    t0 = time.monotonic()
    for name, img in (("v1", v1), ("v2", v2)):
        # zck writes its chunks to a temporary file in TMPDIR first (/tmp when unset)
        subprocess.run(["zck", "-o", work / f"{name}.zck", img], check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, TMPDIR=str(work)))
    took = time.monotonic() - t0
    out = subprocess.run(["zck_delta_size", work / "v1.zck", work / "v2.zck"], check=True, capture_output=True,
                         text=True).stdout
    m = re.search(r"Would download (\d+) of (\d+) bytes\s+Matched (\d+) of (\d+) chunks", out)
    if not m:
        sys.exit(f"bench_delta.py: zck_delta_size printed what this script does not know:\n{out}")
    hdr = subprocess.run(["zck_read_header", work / "v2.zck"], check=True, capture_output=True,
                         text=True).stdout
    h = re.search(r"Header size: (\d+)", hdr)
    dl, total, matched, count = (int(x) for x in m.groups())
    return {"bytes": dl, "zck": total, "header": int(h.group(1)) if h else 0, "fetched": count - matched,
            "chunks": count, "took": took}


def peers(v1, v2, ref):
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-peers-", dir="/var/tmp") as tmp:
        for avg in CASYNC_AVG:
            work = Path(tmp) / f"casync-{avg}"
            work.mkdir()
            r = casync_peer(v1, v2, avg, work)
            lo, av, hi = (x // 1024 for x in r["sizes"])
            log(f"casync, chunks {lo}/{av}/{hi} KiB (min/avg/max), {r['compression']} (casync's default; level 3 "
                f"for zstd): "
                f"delta: {r['bytes'] / 1e6:.2f} MB = {100 * r['bytes'] / ref:.1f} % of the reference (index "
                f"{r['index'] / 1e6:.2f} MB of it), {r['fetched']} chunks fetched = {r['fetched']} requests "
                f"(+1 for the index), of {r['chunks']} distinct chunks in V2; both stores made in "
                f"{r['took']:.0f} s")
            shutil.rmtree(work)
        work = Path(tmp) / "zchunk"
        work.mkdir()
        r = zchunk_peer(v1, v2, work)
        log(f"zchunk, zck defaults (chunks 8/32/128 KiB, zstd -9 each, no dictionary): V2.zck "
            f"{r['zck'] / 1e6:.2f} MB ({r['zck'] / ref:.2f} x reference); delta: {r['bytes'] / 1e6:.2f} MB = "
            f"{100 * r['bytes'] / ref:.1f} % of the reference (header {r['header'] / 1e6:.2f} MB of it), "
            f"{r['fetched']} of {r['chunks']} chunks fetched; both made in {r['took']:.0f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", type=Path)
    ap.add_argument("--levels", default="9,19")
    ap.add_argument("--window", default="262144")
    ap.add_argument("--pair-cache", type=Path, default=Path("/var/tmp/upkeep-bench-cache"))
    ap.add_argument("--v1", type=Path)
    ap.add_argument("--v2", type=Path)
    ap.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure casync and zchunk on the same pair (default: on)")
    a = ap.parse_args()
    if a.peers:
        need_tools(["casync", "zck", "zck_delta_size", "zck_read_header"])
    # a termination removes the temporary folders as an error does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench_delta.py: terminated"))
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
    levels = [x for x in a.levels.split(",") if x]
    have = v1_keys(v1) if levels else set()
    pki = a.build / "tests" / "pki"
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-delta-") as tmp:
        tmp = Path(tmp)
        os.symlink(v2, tmp / "rootfs.img")
        (tmp / "manifest.json").write_text(json.dumps({
            "format": 2, "compatible": "bench", "version": "2.0.0", "build": "2026-01-01T00:00:00Z",
            "payloads": [{"name": "rootfs", "file": "rootfs.img", "handler": "raw", "slot_class": "rootfs",
                          "chunks": {"compression": "zstd"}}]}))
        for level in levels:
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
    if a.peers:
        peers(v1, v2, ref)


if __name__ == "__main__":
    main()
