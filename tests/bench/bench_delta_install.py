#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark (not a test): a delta install on the device side, end to end, against a full install of the
same bundle from a local file, measured in the same run.

Two image pairs, each as slot A (booted, holding v1) and a format-2 bundle of v2 on the test server
(tests/httpserver.py on 127.0.0.1, so the transfer itself costs almost nothing and the figures are the
device's own work):
  - the Debian pair of bench_delta.py (tests/bench/mkdeltapair.py: ext4 1 GiB images, a minimal gateway
    root and the same with the security and point-release updates), unless --no-debian;
  - a synthetic pair: 256 MiB, half random and half text, and the same with one file of 1 MiB changed
    (256 contiguous 4 KiB blocks of new random bytes), where the issue asks for a delta under 2 MB.
For each: `upkeepd --config C install URL` ([install] delta = yes) with a cold block table (slot A hashed
during the install), again with the table cached in the data dir, and once more from a server that answers
one range per request (single-range mode: neighbouring ranges merged); `upkeepd install FILE` (the whole
bundle from a local file); and what went over the wire: bytes the server sent, requests, the daemon's
"delta:" line. Peak RSS (the kernel's maxrss), and the peak of the anonymous memory (RssAnon, sampled).

Goals (issue 15): bytes on the wire <= 20 % of the image compressed whole (`zstd -19 --long`, the
reference) for the Debian pair; < 2 MB for the synthetic one; at most a few hundred requests; the delta
install no slower than the full install from a local file plus the transfer (here about nothing); peak
RSS under 16 MiB plus the index.

With --peers (the default), also casync's and zchunk's bytes for the Debian pair in the same run
(bench_delta.py's measurements; needs casync and zchunk).

usage: /usr/bin/python3 tests/bench/bench_delta_install.py BUILD_DIR [--level 19] [--no-debian]
       [--no-synthetic] [--no-peers] [--pair-cache DIR]"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SOURCE / "tests"))
from httpserver import TestServer  # noqa: E402

MIB = 1024 * 1024
DELTA_RE = re.compile(r"delta: (\d+) of (\d+) bytes of the payloads taken from slot A, (\d+) bytes downloaded "
                      r"in (\d+) requests")


def log(msg):
    print(msg, flush=True)


# Libraries that upkeepd loads here only because Debian builds libcurl with LDAP, Kerberos, SSH, RTMP,
# PSL, IDN and brotli (and GnuTLS through LDAP) and libarchive with XML (ICU), ACL, bzip2 and nettle: a
# device's build for HTTPS with OpenSSL and tar with zstd has none of them.
NOT_ON_A_DEVICE = re.compile(r"/lib(nettle|acl|bz2|xml2|icu\w+|stdc\+\+|gcc_s|idn2|unistring|rtmp|gnutls|hogweed|"
                             r"gmp|p11-kit|tasn1|ffi|ssh2|psl|gssapi_krb5|krb5|k5crypto|com_err|krb5support|"
                             r"keyutils|resolv|ldap|lber|sasl2|brotlidec|brotlicommon)[-.]")


def smaps_rss(pid):
    """KiB of RSS per mapped file (anonymous mappings under "")."""
    out = {}
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(maxsplit=6)
            if "-" in first[0] and len(first) >= 5 and ":" in first[3]:
                name = first[5].strip() if len(first) > 5 else ""
            elif line.startswith("Rss:"):
                out[name] = out.get(name, 0) + int(first[1])
    return out


def timed(cmd):
    """Wall time, peak RSS (MiB, /usr/bin/time's %M), output, and in timed.anon the peak of the process's
    anonymous memory (RssAnon: heap, stacks; not the pages of its shared libraries), sampled every 2 ms;
    in timed.not_on_a_device the RSS (MiB) of the NOT_ON_A_DEVICE libraries' pages near the peak (the
    process's smaps read each time its RSS grew by 512 KiB)."""
    t0 = time.monotonic()
    err, outf = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # files: a full pipe would block it
    p = subprocess.Popen(["/usr/bin/time", "-o", "/dev/stderr", "-f", "%M", *map(str, cmd)], stdout=outf,
                         stderr=err)
    anon, child, seen, libs = 0, None, 0, 0
    while p.poll() is None:
        try:
            if child is None:
                with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                    child = int(f.read().split()[0])
            with open(f"/proc/{child}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        anon = max(anon, int(line.split()[1]))
                    elif line.startswith("VmRSS:") and int(line.split()[1]) >= seen + 512:
                        seen = int(line.split()[1])
                        libs = sum(v for k, v in smaps_rss(child).items() if NOT_ON_A_DEVICE.search(k))
        except (OSError, IndexError, ValueError):
            pass
        time.sleep(0.002)
    wall = time.monotonic() - t0
    outf.seek(0)
    out = outf.read().decode(errors="replace")
    err.seek(0)
    text = err.read().decode(errors="replace")
    if p.returncode != 0:
        sys.exit(f"bench_delta_install: {cmd} failed ({p.returncode}):\n{out}\n{text}")
    timed.anon = anon / 1024
    timed.not_on_a_device = libs / 1024
    return wall, int(text.strip().splitlines()[-1]) / 1024, out + text


def bench_delta():
    """tests/bench/bench_delta.py as a module (its casync and zchunk measurements)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_delta", SOURCE / "tests/bench/bench_delta.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.need_tools(["casync", "zck", "zck_delta_size", "zck_read_header"])
    return mod


def make_device(root, pki, v1, delta=True):
    """bench_install.py's device, with slot A holding v1 and [install] delta set."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_install", SOURCE / "tests/bench/bench_install.py")
    bench_install = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_install)
    conf = bench_install.make_device(root, pki)
    shutil.copyfile(v1, root / "slotA.img")
    with open(conf, "a") as f:
        f.write(f"[install]\ndelta = {'yes' if delta else 'no'}\n")
    return conf


def make_bundle(updatectl, pki, image, out, level):
    d = out.parent / (out.name + ".src")
    d.mkdir()
    os.symlink(image, d / "rootfs.img")
    (d / "manifest.json").write_text(json.dumps({
        "format": 2, "compatible": "bench", "version": "2.0.0", "build": "2026-01-01T00:00:00Z",
        "payloads": [{"name": "rootfs", "file": "rootfs.img", "handler": "raw", "slot_class": "rootfs",
                      "chunks": {"compression": "zstd"}}]}))
    t0 = time.monotonic()
    subprocess.run([updatectl, "bundle", "create", "--manifest", d / "manifest.json", "--cert", pki / "signer.pem",
                    "--key", pki / "signer.key", "--chain", pki / "chain.pem", "--zstd-level", str(level),
                    "-o", out], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def same_prefix(path, image):
    """Whether the slot file starts with the image's bytes (compared by SHA-256 of that many bytes)."""
    n = image.stat().st_size
    h1, h2 = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as a, open(image, "rb") as b:
        left = n
        while left:
            k = min(left, 8 * MIB)
            x = a.read(k)
            if len(x) != k:
                return False
            h1.update(x)
            h2.update(b.read(k))
            left -= k
    return h1.digest() == h2.digest()


def measure(name, build, pki, tmp, v1, v2, bundle, reference):
    upkeepd = build / "daemon" / "upkeepd"
    www = tmp / f"www-{name}"
    www.mkdir()
    try:  # the test server serves regular files only
        os.link(bundle, www / "b.upk")
    except OSError:
        shutil.copyfile(bundle, www / "b.upk")
    size = bundle.stat().st_size
    rows = {}
    with TestServer(www) as srv:
        url = srv.url("/b.upk")
        dev = tmp / f"dev-{name}-delta"
        conf = make_device(dev, pki, v1)
        for run in ("cold", "cached", "first-only"):
            srv.reset()
            if run != "cold":  # the same device, its data dir (and the table in it) kept
                (dev / "slotB.img").write_bytes(b"")
            if run == "first-only":  # a server that answers one range per request
                srv.plan("/b.upk", multirange="first-only")
            wall, rss, out = timed([upkeepd, "--config", conf, "install", url])
            anon, libs = timed.anon, timed.not_on_a_device
            m = DELTA_RE.search(out)
            if not m:
                sys.exit(f"bench_delta_install: no delta line for {name} ({run}):\n{out}")
            if not same_prefix(dev / "slotB.img", v2):
                sys.exit(f"bench_delta_install: slot B is not v2 after the {name} delta ({run})")
            st = srv.stats("/b.upk")
            rows[run] = dict(wall=wall, rss=rss, anon=anon, libs=libs, reused=int(m.group(1)), total=int(m.group(2)),
                             wire=int(m.group(3)), requests=int(m.group(4)), sent=st["bytes_sent"],
                             server_requests=st["requests"])
        shutil.rmtree(dev)
    dev = tmp / f"dev-{name}-full"
    conf = make_device(dev, pki, v1, delta=False)
    wall, rss, _ = timed([upkeepd, "--config", conf, "install", bundle])
    anon, libs = timed.anon, timed.not_on_a_device
    if not same_prefix(dev / "slotB.img", v2):
        sys.exit(f"bench_delta_install: slot B is not v2 after the {name} full install")
    rows["full"] = dict(wall=wall, rss=rss, anon=anon, libs=libs)
    shutil.rmtree(dev)

    c, k, f = rows["cold"], rows["cached"], rows["full"]
    log(f"\n{name}: image {v2.stat().st_size / MIB:.0f} MiB, bundle {size / 1e6:.2f} MB, reference "
        f"{reference / 1e6:.2f} MB")
    log(f"  {'':22} | {'wall':>8} | {'peak RSS':>9} | {'on the wire':>12} | {'% of ref':>8} | {'requests':>8} | reused")
    for label, r in (("delta, table cold", c), ("delta, table cached", k),
                     ("delta, one range/answer", rows["first-only"])):
        log(f"  {label:22} | {r['wall']:6.2f} s | {r['rss']:5.1f} MiB | {r['sent'] / 1e6:9.2f} MB | "
            f"{100 * r['sent'] / reference:7.1f} % | {r['server_requests']:8} | "
            f"{r['reused'] / MIB:.1f} of {r['total'] / MIB:.1f} MiB")
    log(f"  {'full, local file':22} | {f['wall']:6.2f} s | {f['rss']:5.1f} MiB | {'(none)':>12} |")
    log(f"  delta (cached) / full install time: {k['wall'] / f['wall']:.2f}; cold: {c['wall'] / f['wall']:.2f}")
    # Memory: the same upkeepd that only loads its shared libraries, and the index's size (raw: 64 bytes a
    # chunk, 8 a block), against the goal of 16 MiB plus the index.
    _, base, _ = timed([upkeepd, "--version"])
    base_libs = timed.not_on_a_device
    info = json.loads(subprocess.run([build / "cli" / "updatectl", "bundle", "info", "--json", bundle], check=True,
                                     capture_output=True, text=True).stdout)
    raw = sum(p["chunk_count"] * 64 + (p["installed_size"] + p["block_size"] - 1) // p["block_size"] * 8
              for p in info["payloads"])
    log(f"  memory: `upkeepd --version` (its libraries, nothing else) {base:.1f} MiB; above that: delta cold "
        f"{c['rss'] - base:.1f} MiB, cached {k['rss'] - base:.1f} MiB, full {f['rss'] - base:.1f} MiB; anonymous "
        f"memory (heap, stacks) at its peak: delta cold {c['anon']:.1f} MiB, cached {k['anon']:.1f} MiB, full "
        f"{f['anon']:.1f} MiB; the index {raw / MIB:.2f} MiB raw ({info['manifest']['index']['size'] / MIB:.2f} "
        f"MiB stored)")
    log(f"  peak RSS without the pages of the libraries a device's libcurl and libarchive do not load "
        f"({base_libs:.1f} MiB of `upkeepd --version`'s): delta cold {c['rss'] - c['libs']:.1f} MiB, cached "
        f"{k['rss'] - k['libs']:.1f} MiB, full {f['rss'] - f['libs']:.1f} MiB; goal 16 MiB plus the index: "
        f"{16 + raw / MIB:.2f} MiB")
    rows["index"] = raw
    return rows


def synthetic_pair(tmp):
    v1, v2 = tmp / "syn-v1.img", tmp / "syn-v2.img"
    words = b"upkeep downloads only the blocks a device lacks\n"
    text = (words * (MIB // 2 // len(words) + 1))[:MIB // 2]
    with open(v1, "wb") as f:
        for i in range(256):
            f.write(os.urandom(MIB // 2))
            f.write(text[i % 64:] + text[:i % 64])
    shutil.copyfile(v1, v2)
    with open(v2, "r+b") as f:
        f.seek(100 * MIB + 5 * 4096)  # one file of 1 MiB, block-aligned as a file system places it
        f.write(os.urandom(MIB))
    return v1, v2


def synthetic(a, build, updatectl, pki, tmp):
    v1, v2 = synthetic_pair(tmp)
    ref = tmp / "syn-v2.zst19"
    subprocess.run(["zstd", "-19", "--long=27", "-T0", "-q", "-f", "-o", ref, v2], check=True)
    b = tmp / "syn.upk"
    took = make_bundle(updatectl, pki, v2, b, a.level)
    log(f"synthetic bundle made in {took:.0f} s (level {a.level})")
    rows = measure("synthetic 256 MiB, 1 MiB changed", build, pki, tmp, v1, v2, b, ref.stat().st_size)
    ok = rows["cached"]["sent"] < 2e6
    log(f"  goal: under 2 MB on the wire: {'ok' if ok else 'MISSED'}")
    for f in (v1, v2, b, ref):
        f.unlink()
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", type=Path)
    ap.add_argument("--level", type=int, default=19)
    ap.add_argument("--debian", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--synthetic", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--pair-cache", type=Path, default=Path("/var/tmp/upkeep-bench-cache"))
    ap.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True)
    a = ap.parse_args()
    build = a.build.resolve()
    updatectl = build / "cli" / "updatectl"
    pki = build / "tests" / "pki"
    for exe in (updatectl, build / "daemon" / "upkeepd", Path("/usr/bin/time")):
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench_delta_install: {exe} is missing")
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-dinst-", dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        ok = True
        if a.synthetic:
            ok = synthetic(a, build, updatectl, pki, tmp)
        if a.debian:
            pair = json.loads(subprocess.run([sys.executable, SOURCE / "tests/bench/mkdeltapair.py", "--cache",
                                              a.pair_cache], check=True, capture_output=True, text=True).stdout)
            v1, v2 = Path(pair["v1"]), Path(pair["v2"])
            ref = v2.with_suffix(".zst19")
            if not ref.exists():
                subprocess.run(["zstd", "-19", "--long=27", "-T0", "-q", "-f", "-o", ref, v2], check=True)
            # cached beside the pair, for this signer (a build's test PKI is its own)
            signer = hashlib.sha256((pki / "signer.pem").read_bytes()).hexdigest()[:12]
            b = Path(pair["v2"]).parent / f"v2-level{a.level}-{signer}.upk"
            if not b.exists():  # making it takes minutes
                took = make_bundle(updatectl, pki, v2, tmp / "deb.upk", a.level)
                shutil.move(tmp / "deb.upk", b)
                log(f"Debian bundle made in {took:.0f} s (level {a.level}), kept as {b}")
            rows = measure("Debian ext4 pair (security updates)", build, pki, tmp, v1, v2, b, ref.stat().st_size)
            good = rows["cached"]["sent"] <= 0.20 * ref.stat().st_size
            ok &= good
            log(f"  goal: at most 20 % of the reference on the wire: {'ok' if good else 'MISSED'}")
            if a.peers:  # the same pair, the same reference, this run
                log("\npeers on the same pair (bench_delta.py), against the same reference:")
                bench_delta().peers(v1, v2, ref.stat().st_size)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
