#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark (not a test): a streaming install of a bundle with one 256 MiB raw payload from a URL over
loopback HTTP, through the real daemon (upkeepd on a private bus, `updatectl install URL`), against
`curl -o /dev/null` on the same URL in the same run. Also the same install from a local file, which
shows what the install itself costs (hashing, writing, fsync) without the network.

usage: /usr/bin/python3 tests/bench/bench_stream_install.py BUILD_DIR [--size-mib 256] [--runs 3]

The goal of the network issue is >= 80% of curl's speed. Note that every installed byte is hashed
(SHA-256 of the payload, checked before anything is activated), so the install cannot be faster than
SHA-256 on this machine, whatever the network."""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2]


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
    results = {"curl": [], "url": [], "file": []}
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
                t0 = time.monotonic()
                subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True)
                results["curl"].append(time.monotonic() - t0)
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
        finally:
            bus.close()
            server.terminate()
            server.wait()

    best = {k: min(v) for k, v in results.items()}
    mib = args.size_mib
    print(f"bundle of {mib} MiB over loopback HTTP, best of {args.runs} runs each")
    print(f"curl -o /dev/null:            {best['curl']:.3f} s  {mib / best['curl']:7.1f} MiB/s")
    print(f"updatectl install URL:        {best['url']:.3f} s  {mib / best['url']:7.1f} MiB/s  "
          f"= {100 * best['curl'] / best['url']:.1f}% of curl (goal >= 80%)")
    print(f"updatectl install FILE:       {best['file']:.3f} s  {mib / best['file']:7.1f} MiB/s  "
          f"(the install alone, no network)")
    print(f"streamed vs local install:    {100 * best['file'] / best['url']:.1f}% "
          f"(how much the network path costs on top of the install)")


if __name__ == "__main__":
    main()
