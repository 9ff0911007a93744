#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark (not a test): streaming a file over loopback HTTP through lib/fetch's FetchStream (a
reader thread calling fetch_stream_read(), as the installer does), against `curl -o /dev/null` on the
same URL from the same server in the same run. Then the same stream with the connection cut once at
50%, counting the bytes the server sent.

Goals from the fetch issue:
  FetchStream throughput >= 80% of curl's
  cut once at 50%: extra bytes transferred <= 5% of the file

usage: /usr/bin/python3 tests/bench/bench_fetch.py BUILD_DIR [--size-mib 256] [--runs 7]

The server is tests/httpserver.py (in this process, sendfile for plain bodies). The file lives in a
temporary folder removed at the end. Runs alternate between curl and upkeep-fetch; the median of each
is reported."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SOURCE / "tests"))
from httpserver import TestServer  # noqa: E402

MIB = 1024 * 1024


def timed(cmd):
    t0 = time.monotonic()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"bench_fetch: {cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return wall, p.stdout


def make_file(path, size):
    chunk = os.urandom(8 * MIB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    tool = Path(args.build).resolve() / "tests" / "upkeep-fetch"
    if not os.access(tool, os.X_OK):
        sys.exit(f"bench_fetch: {tool} not found: build first (ninja -C {args.build})")
    size = args.size_mib * MIB

    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as d:
        www = Path(d)
        make_file(www / "big.bin", size)
        with TestServer(www) as srv:
            url = srv.url("/big.bin")
            curl_t, fetch_t, plain_t = [], [], []
            for _ in range(args.runs):
                t, _ = timed(["curl", "-sS", "-o", "/dev/null", url])
                curl_t.append(t)
                t, out = timed([tool, url, "/dev/null", "--stream", "--max-length", size])
                s = json.loads(out.strip().splitlines()[-1])
                assert s["ok"] and s["bytes"] == size, s
                fetch_t.append(t)
                t, _ = timed([tool, url, "/dev/null", "--max-length", size])
                plain_t.append(t)
            c, f, p = (statistics.median(x) for x in (curl_t, fetch_t, plain_t))
            print(f"file: {args.size_mib} MiB over loopback HTTP, median of {args.runs} runs")
            print(f"curl -o /dev/null:              {c:6.3f} s  {size / MIB / c:8.1f} MiB/s")
            print(f"upkeep-fetch --stream:          {f:6.3f} s  {size / MIB / f:8.1f} MiB/s  "
                  f"= {100 * c / f:5.1f}% of curl (goal >= 80%)")
            print(f"upkeep-fetch (data callback):   {p:6.3f} s  {size / MIB / p:8.1f} MiB/s  "
                  f"= {100 * c / p:5.1f}% of curl")

            srv.reset()
            srv.plan("/big.bin", cut_at=size // 2)
            t, out = timed([tool, url, "/dev/null", "--stream", "--max-length", size, "--backoff-ms", "100"])
            s = json.loads(out.strip().splitlines()[-1])
            assert s["ok"] and s["bytes"] == size and s["resumed_from"] == [size // 2], s
            sent = srv.stats("/big.bin")["bytes_sent"]
            extra = sent - size
            print(f"cut once at 50%: resumed from {s['resumed_from']}, server sent {sent} bytes, "
                  f"extra {extra} bytes = {100 * extra / size:.3f}% (goal <= 5%), {t:.3f} s "
                  f"(with a 100 ms backoff)")
    ok = c / f >= 0.8 and extra <= 0.05 * size
    print("goals met" if ok else "GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
