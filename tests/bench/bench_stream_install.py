#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark (not a test): a streaming install of a bundle with one 256 MiB raw payload from a URL over
loopback HTTP, through the real daemon (upkeepd on a private bus, `updatectl install URL`), against
`curl -o /dev/null` on the same URL in the same run. Also the same install from a local file, which
shows what the install itself costs (hashing, writing, fsync) without the network.

usage: /usr/bin/python3 tests/bench/bench_stream_install.py BUILD_DIR [--size-mib 256] [--runs 3]

The goal of the network issue is >= 80% of curl's speed. Every installed byte is hashed (SHA-256 of the
payload, checked before anything is activated) and written to the slot, while curl only receives. So the
script also measures, in the same run, what those cost here and prints the bound they set: with the
server on the same machine, an install needs at least the CPU time of curl and the server, plus SHA-256
of the bytes, plus writing them to the slot's file system, spread over the machine's cores at best, and
never less than SHA-256 alone (one hash is one thread)."""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2]


def proc_cpu(pid):
    """User + system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = os.times()
    return r.children_user + r.children_system


def sha256_seconds(path):
    """SHA-256 of the file's bytes in memory (OpenSSL, through hashlib): the hash alone."""
    data = path.read_bytes()
    t0 = time.process_time()
    hashlib.sha256(data).digest()
    return time.process_time() - t0


def write_cost(where, size):
    """Wall and CPU seconds of writing `size` bytes to a file in `where` and fsyncing it (dd)."""
    target = where / "upkeep-bench-write-test"
    c0, t0 = children_cpu(), time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size >> 20}", "conv=fsync",
                    "status=none"], check=True)
    wall, cpu = time.monotonic() - t0, children_cpu() - c0
    target.unlink()
    return wall, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir", type=Path)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device-dir", type=Path, default=None,
                    help="where the A/B slot files live (default: next to the served bundle, on /var/tmp)")
    args = ap.parse_args()
    build = args.build_dir.resolve()
    os.environ["UPDATECTL"] = str(build / "cli" / "updatectl")
    os.environ["UPKEEP_TEST_PKI"] = str(build / "tests" / "pki")
    sys.path.insert(0, str(SOURCE / "tests" / "integration"))
    from device import Device  # noqa: E402
    from test_client import Bus, Daemon, bundle  # noqa: E402

    size = args.size_mib * 1024 * 1024
    results = {"curl": [], "url": [], "file": [], "curl_cpu": [], "write": [], "write_cpu": []}
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-", dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        served = tmp / "served"
        served.mkdir()
        b = bundle(tmp, "2.0.0", size=size, name="big")
        os.rename(b, served / "big.upk")
        server = subprocess.Popen([sys.executable, str(SOURCE / "tests" / "httpserver.py"), "--dir", str(served),
                                   "--port", "0"], stdout=subprocess.PIPE, text=True)
        bus = Bus()
        try:
            port = int(server.stdout.readline())
            url = f"http://127.0.0.1:{port}/big.upk"
            for run in range(args.runs):
                c0, s0, t0 = children_cpu(), proc_cpu(server.pid), time.monotonic()
                subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True)
                results["curl"].append(time.monotonic() - t0)
                results["curl_cpu"].append(children_cpu() - c0 + proc_cpu(server.pid) - s0)
                wall, cpu = write_cost(args.device_dir or tmp, size)
                results["write"].append(wall)
                results["write_cpu"].append(cpu)
                for kind, source in (("url", url), ("file", str(served / "big.upk"))):
                    dev = Device((args.device_dir or tmp) / f"upkeep-bench-dev-{kind}-{run}")
                    d = Daemon(dev, bus, tmp / f"log-{kind}-{run}")
                    d.start()
                    try:
                        t0 = time.monotonic()
                        p = d.ctl("install", source, timeout=600)
                        results[kind].append(time.monotonic() - t0)
                        if p.returncode != 0:
                            sys.exit(f"install failed: {p.stdout}\n{p.stderr}\n{d.log_text()}")
                    finally:
                        d.stop()
                    subprocess.run(["rm", "-rf", str(dev.root)], check=True)
            sha = min(sha256_seconds(served / "big.upk") for _ in range(args.runs))
        finally:
            bus.close()
            server.terminate()
            server.wait()

    best = {k: min(v) for k, v in results.items()}
    mib = args.size_mib
    cores = os.cpu_count()
    # The least an install can take here: everything curl and the server spend, plus the hash, plus the
    # write to the slot, spread over every core; and never less than the hash or the write alone.
    bound = max(sha, best["write"], (best["curl_cpu"] + sha + best["write_cpu"]) / cores)
    print(f"bundle of {mib} MiB over loopback HTTP, best of {args.runs} runs each; slot files in "
          f"{args.device_dir or tmp}; {cores} cores")
    print(f"curl -o /dev/null:            {best['curl']:.3f} s  {mib / best['curl']:7.1f} MiB/s  "
          f"(curl + server CPU {best['curl_cpu']:.3f} s)")
    print(f"updatectl install URL:        {best['url']:.3f} s  {mib / best['url']:7.1f} MiB/s  "
          f"= {100 * best['curl'] / best['url']:.1f}% of curl (goal >= 80%)")
    print(f"updatectl install FILE:       {best['file']:.3f} s  {mib / best['file']:7.1f} MiB/s  "
          f"(the install alone, no network)")
    print(f"streamed vs local install:    {100 * best['file'] / best['url']:.1f}% "
          f"(how much the network path costs on top of the install)")
    print(f"SHA-256 of the bundle:        {sha:.3f} s  {mib / sha:7.1f} MiB/s  "
          f"(in memory, one core: the install can be no faster)")
    print(f"dd to the slot's file system: {best['write']:.3f} s  {mib / best['write']:7.1f} MiB/s  "
          f"(conv=fsync, CPU {best['write_cpu']:.3f} s)")
    print(f"least an install can take:    {bound:.3f} s  = {100 * best['curl'] / bound:.1f}% of curl at best "
          f"on this machine")
    print(f"install URL vs that bound:    {100 * bound / best['url']:.1f}%")


if __name__ == "__main__":
    main()
