#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Models the bytes a device holding image V1 downloads to get image V2, for chunk layouts a bundle
could have: the numbers behind the delta design in upkeep-bundle(5). Not a test.

    model_delta.py V1 V2 [--level 19] [--frames 4,8,16,32,64] [--dict-kib 0,112]

A block is 4 KiB of V2; it is *missing* when no 4 KiB block of V1 (at any 4 KiB offset) has its
content. A frame is F KiB of V2, compressed alone (zstd, optionally with a dictionary trained on V2 and
fetched once); a device fetches every frame that holds a missing block. Requests: the fetched frames
merged into ranges when they are adjacent in the file (they are stored in order). Prints one line per
layout, and the references: the whole V2 compressed as one stream (zstd --long), the missing blocks
compressed as one stream.
"""

import argparse
import hashlib
import subprocess
import sys
import zstandard

BLOCK = 4096
ZERO = bytes(BLOCK)


def blocks(path):
    with open(path, "rb") as f:
        while True:
            b = f.read(BLOCK)
            if not b:
                return
            yield b


def zstd_size(data, level, long=False):
    p = subprocess.run(["zstd", f"-{level}", "-q", "-c", "-T1"] + (["--long=27"] if long else []) +
                       (["--ultra"] if level > 19 else []), input=data, capture_output=True, check=True)
    return len(p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("v1")
    ap.add_argument("v2")
    ap.add_argument("--level", type=int, default=19)
    ap.add_argument("--frames", default="4,8,16,32,64")
    ap.add_argument("--dict-kib", default="0,112")
    ap.add_argument("--full", action="store_true", help="also compress the whole V2 (slow)")
    a = ap.parse_args()

    have = {hashlib.sha256(b).digest()[:16] for b in blocks(a.v1)}
    v2 = list(blocks(a.v2))
    missing = [hashlib.sha256(b).digest()[:16] not in have for b in v2]
    nonzero = sum(1 for b in v2 if b != ZERO)
    nmiss = sum(missing)
    runs, prev = 0, False
    for m in missing:
        if m and not prev:
            runs += 1
        prev = m
    print(f"V2: {len(v2)} blocks, {nonzero} not zero; missing from V1: {nmiss} blocks "
          f"({nmiss * BLOCK / 1e6:.1f} MB) in {runs} runs")
    miss_data = b"".join(b for b, m in zip(v2, missing) if m)
    one = zstd_size(miss_data, a.level, long=True)
    print(f"missing blocks as one stream (zstd -{a.level} --long): {one / 1e6:.2f} MB")
    if a.full:
        with open(a.v2, "rb") as f:
            full = zstd_size(f.read(), a.level, long=True)
        print(f"whole V2 as one stream (zstd -{a.level} --long): {full / 1e6:.2f} MB")

    for dk in [int(x) for x in a.dict_kib.split(",")]:
        d = None
        if dk:
            samples = [b for b in v2 if b != ZERO]
            d = zstandard.train_dictionary(dk * 1024, samples[:: max(1, len(samples) // 20000)],
                                           level=a.level)
        for fk in [int(x) for x in a.frames.split(",")]:
            per = fk * 1024 // BLOCK
            cctx = zstandard.ZstdCompressor(level=a.level, dict_data=d, write_checksum=False,
                                            write_content_size=True, write_dict_id=False)
            fetched = stored = reqs = frames = 0
            last = -2
            for i in range(0, len(v2), per):
                if not any(missing[i:i + per]):
                    continue
                data = b"".join(v2[i:i + per])
                c = len(cctx.compress(data))
                stored += min(c, len(data))
                fetched += len(data)
                frames += 1
                if i // per != last + 1:
                    reqs += 1
                last = i // per
            dsz = len(d.as_bytes()) if d else 0
            print(f"frames {fk:3d} KiB, dict {dk:3d} KiB: {frames} frames ({fetched / 1e6:.1f} MB of content) "
                  f"-> {stored / 1e6:.2f} MB + dict {dsz / 1e6:.2f} MB, {reqs} ranges")


if __name__ == "__main__":
    main()
