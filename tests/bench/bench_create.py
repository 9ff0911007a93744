#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark (not a test): `updatectl bundle create` of a format-2 bundle with zstd blocks (4 KiB blocks,
the default window of 256 KiB) on one thread and on several (`--jobs`), measured in the same run on the
same payload, and the ratio of the times. The bundles of every --jobs must be the same bytes (the RSA
test signer makes the signature deterministic): the script checks it and fails otherwise.

usage: /usr/bin/python3 tests/bench/bench_create.py BUILD_DIR [--cases 256:9,32:19] [--jobs 1,2] [--runs 1]

Each case SIZE:LEVEL is a payload of SIZE MiB, half random and half text like bench_install.py's, made
with --zstd-level LEVEL. For each --jobs count it prints the best wall time of --runs runs, the CPU time
(user + system, all threads) of that run, its peak RSS (/usr/bin/time -f, Debian package `time`), and
the ratio of the first count's wall time to this one's. As a control, it runs as many independent
`--jobs 1` processes at once as the largest count and prints their throughput against one alone: the
most that threads could give on this machine at that moment (CPUs that share caches and memory bandwidth,
or that other processes use, give less than their number; zstd's high levels are bound by memory). It
also prints the online CPUs and the load average before and after. Everything lives in a temporary folder under /var/tmp,
removed at the end."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024
SOURCE = Path(__file__).resolve().parents[2]


def write_content(path, size_mib):
    """Half random, half text (bench_install.py's payload): zstd has something to compress."""
    words = b"upkeep verifies every chunk before a handler sees it\n"
    text = (words * (MIB // 2 // len(words) + 1))[:MIB // 2]
    with open(path, "wb") as f:
        for i in range(size_mib):
            f.write(os.urandom(MIB // 2))
            f.write(text[i % 64:] + text[:i % 64])


def make_pki(d):
    import importlib.util
    spec = importlib.util.spec_from_file_location("gen_pki", SOURCE / "tests" / "pki" / "gen-pki.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.generate(str(d))


def timed(cmd):
    """Wall time, CPU time (user + system) and peak RSS (KiB) of one run."""
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", *map(str, cmd)], capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"bench_create: {cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    user, system, rss = p.stderr.strip().splitlines()[-1].split()
    return wall, float(user) + float(system), int(rss)


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir", type=Path)
    ap.add_argument("--cases", default="256:9,32:19", help="SIZE_MIB:LEVEL,...")
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    updatectl = args.build_dir.resolve() / "cli" / "updatectl"
    if not updatectl.is_file():
        sys.exit(f"bench_create: {updatectl} is missing (build first)")
    cases = [tuple(int(x) for x in c.split(":")) for c in args.cases.split(",") if c]
    jobs = [int(j) for j in args.jobs.split(",")]

    print(f"online CPUs: {os.sysconf('SC_NPROCESSORS_ONLN')}; load average before: {loadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-create-", dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        pki = tmp / "pki"
        pki.mkdir()
        make_pki(pki)
        for size, level in cases:
            src = tmp / f"src{size}-{level}"
            src.mkdir()
            write_content(src / "rootfs.img", size)
            (src / "manifest.json").write_text(json.dumps({
                "format": 2, "compatible": "bench", "version": "2.0.0", "build": "2026-11-25T00:00:00Z",
                "payloads": [{"name": "rootfs", "file": "rootfs.img", "handler": "raw",
                              "slot_class": "rootfs"}]}))
            print(f"\n{size} MiB payload (half random, half text), zstd level {level}, 4 KiB blocks, "
                  f"window 262144:")
            first_wall, first_bytes = None, None
            for j in jobs:
                out = tmp / f"b{size}-{level}-{j}.upk"
                best = None
                for _ in range(args.runs):
                    out.unlink(missing_ok=True)
                    r = timed([updatectl, "bundle", "create", "--manifest", src / "manifest.json", "--cert",
                               pki / "signer.pem", "--key", pki / "signer.key", "--chain", pki / "chain.pem",
                               "--compression", "zstd", "--zstd-level", level, "--jobs", j, "-o", out])
                    best = r if best is None or r[0] < best[0] else best
                wall, cpu, rss = best
                data = out.read_bytes()
                if first_bytes is None:
                    first_wall, first_bytes = wall, data
                elif data != first_bytes:
                    sys.exit(f"bench_create: --jobs {j} made other bytes than --jobs {jobs[0]}")
                out.unlink()
                print(f"  --jobs {j:<3} {wall:8.2f} s wall  {cpu:8.2f} s CPU  {rss / 1024:7.1f} MiB peak RSS  "
                      f"{size / wall:7.2f} MiB/s  speed-up vs --jobs {jobs[0]}: {first_wall / wall:.2f}x")
            # The machine's own limit, as a control: as many independent --jobs 1 runs at once as the
            # largest --jobs count. Their speed-up is the most that threads could give right now (on a
            # machine whose CPUs share caches and memory bandwidth, or that others use, less than n).
            n = max(jobs)
            if n > 1:
                outs = [tmp / f"c{size}-{level}-{i}.upk" for i in range(n)]
                t0 = time.monotonic()
                procs = [subprocess.Popen(["/usr/bin/time", "-f", "%U %S", str(updatectl), "bundle", "create",
                                           "--manifest", str(src / "manifest.json"), "--cert",
                                           str(pki / "signer.pem"), "--key", str(pki / "signer.key"), "--chain",
                                           str(pki / "chain.pem"), "--compression", "zstd", "--zstd-level",
                                           str(level), "--jobs", "1", "-o", str(o)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                         for o in outs]
                cpu = 0.0
                for pr in procs:
                    _, errs = pr.communicate()
                    if pr.returncode != 0:
                        sys.exit(f"bench_create: the control run failed:\n{errs}")
                    cpu += sum(float(x) for x in errs.strip().splitlines()[-1].split())
                wall = time.monotonic() - t0
                for o in outs:
                    o.unlink()
                print(f"  control: {n} runs of --jobs 1 at once: {wall:8.2f} s wall  {cpu / n:8.2f} s CPU each  "
                      f"throughput vs one --jobs 1 run: {n * first_wall / wall:.2f}x")
            print(f"  bundle: {len(first_bytes)} bytes ({100 * len(first_bytes) / (size * MIB):.1f} % of the "
                  f"payload), the same bytes for every --jobs")
    print(f"\nload average after: {loadavg()}")


if __name__ == "__main__":
    main()
