#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark (not a test): `updatectl bundle verify` against `openssl dgst -sha256` on the same file.

usage: /usr/bin/python3 tests/bench/bench_verify.py BUILD_DIR [--sizes 64,512] [--runs 3]

For each size (MiB) it makes a bundle with one random raw payload of that size, signed with a
throw-away PKI made here with the openssl command, then measures each command RUNS times (page cache
left as it is: the file is warm after the first run; the best run counts) and reports wall time,
throughput and the peak RSS of the verify process. Goals from the issue:
  verify throughput / openssl dgst throughput >= 0.80
  peak RSS of verify < 16 MiB, and not growing with the bundle size (64 MiB vs 512 MiB)
  (issue 12) verify of format 2 within 10% of format 1's time on the same payload, with chunks stored
  as is (random payload) and with zstd (a half-compressible payload, format 1 as one zstd stream)
Everything is written to a temporary folder that is removed at the end."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024
RSS_GOAL_MIB = 16.0
RATIO_GOAL = 0.80


def find_updatectl(build_dir):
    for cand in ["cli/updatectl", "updatectl"]:
        p = build_dir / cand
        if p.is_file() and os.access(p, os.X_OK):
            return p
    found = [p for p in (build_dir / "cli").glob("*") if p.is_file() and os.access(p, os.X_OK)] \
        if (build_dir / "cli").is_dir() else []
    if len(found) == 1:
        return found[0]
    sys.exit(f"bench_verify: no updatectl binary in {build_dir}/cli (build it with ninja -C {build_dir})")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A root CA and an RSA-2048 signer it issued, all SHA-256."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "root.key", "-out", "root.pem",
            "-days", "2", "-subj", "/CN=bench root CA", "-sha256",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "signer.key", "-out", "signer.csr",
            "-subj", "/CN=bench signer", cwd=d)
    (d / "signer.ext").write_text("basicConstraints=critical,CA:FALSE\n"
                                  "keyUsage=critical,digitalSignature\n"
                                  "extendedKeyUsage=codeSigning\n"
                                  "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    openssl("x509", "-req", "-in", "signer.csr", "-CA", "root.pem", "-CAkey", "root.key",
            "-CAcreateserial", "-days", "2", "-sha256", "-extfile", "signer.ext", "-out", "signer.pem", cwd=d)


def write_random(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n


# name, create options, payload kind: random bytes stored as they are, or half-compressible bytes
# compressed with zstd (format 1: one stream; format 2: one frame per chunk).
VARIANTS = [
    ("v1-none", ["--format", "1"], False),
    ("v2-none", ["--compression", "none"], False),
    ("v1-zstd", ["--format", "1"], True),
    ("v2-zstd", [], True),
]
F2_GOAL = 1.10


def write_half_text(path, size):
    words = b"upkeep verifies every chunk before a handler sees it\n"
    text = (words * (MIB // 2 // len(words) + 1))[:MIB // 2]
    with open(path, "wb") as f:
        for i in range(size // MIB):
            f.write(os.urandom(MIB // 2))
            f.write(text[i % 64:] + text[:i % 64])


def make_bundle(updatectl, d, size_mib, variant=VARIANTS[0]):
    name, args, zstd = variant
    work = d / f"b{size_mib}-{name}"
    work.mkdir()
    entry = {"name": "rootfs", "file": "rootfs.img", "handler": "raw", "slot_class": "rootfs"}
    if zstd:
        write_half_text(work / "content", size_mib * MIB)
        subprocess.run(["zstd", "-q", "-9", str(work / "content"), "-o", str(work / "rootfs.img")], check=True)
        entry["compression"] = "zstd"
    else:
        write_random(work / "rootfs.img", size_mib * MIB)
    manifest = {
        "format": 1, "compatible": "bench", "version": "1.0.0", "build": "2024-01-01T00:00:00Z",
        "reboot": False,
        "payloads": [entry],
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    out = d / f"bench-{size_mib}-{name}.upk"
    r = subprocess.run([str(updatectl), "bundle", "create", "--manifest", str(work / "manifest.json"),
                        "--cert", str(d / "signer.pem"), "--key", str(d / "signer.key"), *args,
                        "-o", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_verify: bundle create failed ({r.returncode}): {r.stderr.strip()}")
    shutil.rmtree(work)
    return out


GNU_TIME = "/usr/bin/time"


def measure(cmd, scratch):
    """Wall time and peak RSS (KiB) of one run of `cmd`; its output is discarded.

    A child forked from this Python process starts with Python's resident set as its high-water mark,
    and Linux keeps that mark across exec, so os.wait4()'s ru_maxrss of a direct child reports at
    least Python's own RSS (about 17 MiB here), whatever the child does. GNU time (Debian package
    `time`) forks the command from its own small process and reports that grandchild's ru_maxrss
    (from its wait4), which is the command's real peak; it is used when installed, for every command
    alike. Without it the figure is the polluted os.wait4 one, flagged in the output."""
    rss_file = scratch / "maxrss"
    full = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd] if os.access(GNU_TIME, os.X_OK) else list(cmd)
    t0 = time.perf_counter()
    p = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, rusage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"bench_verify: {' '.join(cmd)} failed ({p.returncode}): {err.strip()}")
    if full[0] == GNU_TIME:
        return wall, int(rss_file.read_text().split()[-1])
    return wall, rusage.ru_maxrss


def best_of(cmd, runs, scratch):
    results = [measure(cmd, scratch) for _ in range(runs)]
    return min(w for w, _ in results), max(r for _, r in results)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir", type=Path)
    ap.add_argument("--sizes", default="64,512", help="payload sizes in MiB, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) <= 0 or args.runs < 1:
        ap.error("sizes must be positive integers and runs >= 1")
    updatectl = find_updatectl(args.build_dir.resolve())

    d = Path(tempfile.mkdtemp(prefix="upkeep-bench-"))
    rows = []
    try:
        make_pki(d)
        for size in sizes:
            bundles = {v[0]: make_bundle(updatectl, d, size, v) for v in VARIANTS}
            bundle = bundles["v1-none"]
            nbytes = bundle.stat().st_size
            dgst_t, dgst_rss = best_of(["openssl", "dgst", "-sha256", str(bundle)], args.runs, d)
            ver_t, ver_rss = best_of([str(updatectl), "bundle", "verify", "--keyring", str(d / "root.pem"),
                                      str(bundle)], args.runs, d)
            row = dict(size=size, nbytes=nbytes, dgst_t=dgst_t, dgst_tp=nbytes / MIB / dgst_t,
                       dgst_rss=dgst_rss / 1024, ver_t=ver_t, ver_tp=nbytes / MIB / ver_t,
                       ver_rss=ver_rss / 1024)
            for name, b in bundles.items():
                t, rss = best_of([str(updatectl), "bundle", "verify", "--keyring", str(d / "root.pem"), str(b)],
                                 args.runs, d)
                row[name] = (t, rss / 1024, b.stat().st_size)
                b.unlink()
            rows.append(row)
        # For context: what the binary costs before it reads a bundle (libraries, relocations).
        _, base_rss = best_of([str(updatectl), "--help"], 1, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)

    print(f"updatectl: {updatectl}   best of {args.runs} runs each, page cache warm;"
          f" peak RSS of `updatectl --help`: {base_rss / 1024:.1f} MiB")
    if not os.access(GNU_TIME, os.X_OK):
        print("NOTE: /usr/bin/time (Debian package `time`) is missing: the RSS figures include this Python"
              " process's resident set, inherited at fork; install it for real figures")
    print(f"{'payload':>8} {'bundle':>10} | {'openssl dgst':>12} {'MiB/s':>8} | {'verify':>8} {'MiB/s':>8}"
          f" {'peak RSS':>9} | {'ratio':>6}")
    for r in rows:
        print(f"{r['size']:>5} MiB {r['nbytes'] / MIB:>6.1f} MiB | {r['dgst_t']:>10.3f} s {r['dgst_tp']:>8.1f} |"
              f" {r['ver_t']:>6.3f} s {r['ver_tp']:>8.1f} {r['ver_rss']:>5.1f} MiB | {r['ver_tp'] / r['dgst_tp']:>6.2f}")
    print()
    ok = True
    for r in rows:
        ratio = r["ver_tp"] / r["dgst_tp"]
        good = ratio >= RATIO_GOAL
        ok &= good
        print(f"throughput ratio verify/openssl at {r['size']} MiB: {ratio:.2f} "
              f"(goal >= {RATIO_GOAL:.2f}): {'ok' if good else 'MISSED'}")
    by_size = {r["size"]: r for r in rows}
    lo, hi = (by_size[64], by_size[512]) if 64 in by_size and 512 in by_size else \
        (min(rows, key=lambda r: r["size"]), max(rows, key=lambda r: r["size"]))
    print()
    print(f"{'payload':>8} | " + " | ".join(f"{v[0]:>20}" for v in VARIANTS) + "   (verify time, peak RSS, bundle size)")
    for r in rows:
        print(f"{r['size']:>5} MiB | " + " | ".join(
            f"{r[v[0]][0]:>6.3f} s {r[v[0]][1]:>4.1f} MiB {r[v[0]][2] / MIB:>5.1f}" for v in VARIANTS))
    for comp in ("none", "zstd"):
        f = hi[f"v2-{comp}"][0] / hi[f"v1-{comp}"][0]
        good = f <= F2_GOAL
        ok &= good
        print(f"verify time format 2 / format 1, {comp}, at {hi['size']} MiB: {f:.2f} (goal <= {F2_GOAL:.2f}): "
              f"{'ok' if good else 'MISSED'}")
    peak = max(max(r["ver_rss"], *(r[v[0]][1] for v in VARIANTS)) for r in rows)
    growth = hi["ver_rss"] - lo["ver_rss"]
    # "Not growing": allow 1 MiB of noise (allocator, page tables) between the two sizes.
    good = peak < RSS_GOAL_MIB and growth <= 1.0
    ok &= good
    print(f"peak RSS of verify: {lo['ver_rss']:.1f} MiB at {lo['size']} MiB vs {hi['ver_rss']:.1f} MiB at "
          f"{hi['size']} MiB (goal < {RSS_GOAL_MIB:.0f} MiB, not growing): {'ok' if good else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
