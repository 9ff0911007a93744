#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the seeds of fuzz-block-table (tests/fuzz/corpus/block-table/): saved block tables
(lib/install/block-table.h) for the slot the target assumes (1 MiB, blocks of 4 KiB, origin 32 x 0x5a),
one valid and one per rule broken with a right checksum.

usage: /usr/bin/python3 tests/fuzz/make-block-table-corpus.py"""

import hashlib
from pathlib import Path

OUT = Path(__file__).resolve().parent / "corpus" / "block-table"
SLOT, BLOCK, ORIGIN = 1024 * 1024, 4096, b"\x5a" * 32


def table(entries, block=BLOCK, slot=SLOT, origin=ORIGIN, count=None):
    d = b"UPKBLKT1" + block.to_bytes(4, "big") + slot.to_bytes(8, "big") + origin
    d += (len(entries) if count is None else count).to_bytes(8, "big")
    d += b"".join(e.to_bytes(8, "big") for e in entries)
    return d + hashlib.sha256(d).digest()


def entry(content, blockno):
    return int.from_bytes(hashlib.sha256(content).digest()[:5], "big") << 24 | blockno


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    good = sorted(entry(bytes([i]) * BLOCK, i) for i in range(1, 40))
    seeds = {
        "valid": table(good),
        "empty": table([]),
        "out-of-order": table(good[::-1]),
        "past-the-end": table(good[:-1] + [good[-1] | 0xffffff]),
        "other-origin": table(good, origin=b"\x00" * 32),
        "count-mismatch": table(good, count=len(good) + 1),
    }
    for name, data in seeds.items():
        (OUT / name).write_bytes(data)


if __name__ == "__main__":
    main()
