#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark (not a test): an update found in a TUF repository and installed by the daemon, which is
the way a gateway gets its updates, against `curl -o /dev/null` of the same target in the same run.

Besides the payload's SHA-256 (the bundle's own check), the whole target is hashed with the hashes the
TUF metadata lists (here sha256), as it streams in. The two hashes run on different threads (the TUF
one on the event loop thread, as the bytes arrive; the payload one on the installer's), so with two or
more cores the second hash costs CPU time but little wall time.

usage: /usr/bin/python3 tests/bench/bench_tuf_install.py BUILD_DIR [--size-mib 256] [--runs 3]
       [--device-dir DIR]"""

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
                    help="where the A/B slot files live (default: a folder on /var/tmp)")
    args = ap.parse_args()
    build = args.build_dir.resolve()
    os.environ["UPDATECTL"] = str(build / "cli" / "updatectl")
    os.environ["UPKEEPD"] = str(build / "daemon" / "upkeepd")
    os.environ["UPKEEP_TEST_PKI"] = str(build / "tests" / "pki")
    sys.path.insert(0, str(SOURCE / "tests" / "integration"))
    sys.path.insert(0, str(SOURCE / "tests"))
    from test_client import bundle  # noqa: E402
    from test_poll import World  # noqa: E402

    size = args.size_mib * 1024 * 1024
    curl, install = [], []
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-", dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        b = bundle(tmp, "2.0.0", size=size, name="big")
        for run in range(args.runs):
            where = (args.device_dir or tmp) / f"upkeep-bench-tuf-{run}"
            w = World(where, policy="none")
            try:
                name = w.add(b, "2.0.0")
                w.publish()
                url = w.server.url(w.target_path(name))
                t0 = time.monotonic()
                subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True)
                curl.append(time.monotonic() - t0)
                w.start()
                w.wait(lambda: w.get("AvailableVersion") == "2.0.0", what="the offer")
                t0 = time.monotonic()
                p = w.ctl("install")
                install.append(time.monotonic() - t0)
                if p.returncode != 0:
                    sys.exit(f"install failed: {p.stdout}\n{p.stderr}\n{w.log()}")
            finally:
                w.close()
                subprocess.run(["rm", "-rf", str(where)], check=True)

    mib = args.size_mib
    c, i = min(curl), min(install)
    print(f"TUF target of {mib} MiB over loopback HTTP, best of {args.runs} runs each")
    print(f"curl -o /dev/null of the target: {c:.3f} s  {mib / c:7.1f} MiB/s")
    print(f"updatectl install (the offer):   {i:.3f} s  {mib / i:7.1f} MiB/s  = {100 * c / i:.1f}% of curl")


if __name__ == "__main__":
    main()
