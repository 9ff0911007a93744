#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Builds the image pair of the delta benchmark (bench_delta.py; issue: delta updates), cached.

    mkdeltapair.py [--cache DIR] [--size-mib 1024]

Prints one JSON object: {"v1": ext4 image, "v2": ext4 image, "v1_root": tree, "v2_root": tree,
"changed_packages": [...]}.

v1 is a minimal Debian 12 gateway root (mmdebstrap --variant=minbase with systemd-sysv, dbus,
openssh-server, curl and python3-minimal) from the plain `bookworm` suite of this machine's own apt
sources; v2 is the same package list with the machine's other suites of the same mirror added
(`bookworm-updates`, `bookworm-security`): a security update of the same device. Both are made
reproducible: SOURCE_DATE_EPOCH, every timestamp set to it, no machine-id, no SSH host keys (a device
makes those at its first boot), and `mkfs.ext4 -d` with a fixed UUID, hash seed and time.

The sources files are derived from /etc/apt/sources.list.d/debian.sources (deb822): for v1 the
stanzas that name `bookworm` keep only that suite; for v2 all its stanzas are used. So whatever mirror or
proxy the machine uses is used, and no host name is written here.

Needs root (mmdebstrap root mode). Cache: DIR/root-v1, root-v2 (trees), v1.ext4, v2.ext4, keyed by
this script's hash and the sources file.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
PACKAGES = ["systemd-sysv", "dbus", "openssh-server", "curl", "python3-minimal"]
EPOCH = 1700000000  # 2023-11-14: SOURCE_DATE_EPOCH and every timestamp in the trees
UUID = "2f0c7e5e-8d6f-4a8e-9a57-6b1d5b3c0de1"


def log(msg):
    print(f"mkdeltapair: {msg}", file=sys.stderr, flush=True)


def stanzas(text):
    out, cur = [], []
    for line in text.splitlines():
        if line.strip():
            cur.append(line)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def sources_for(version):
    """The deb822 sources text of one version (see the module's text)."""
    keep = []
    for st in stanzas(SOURCES.read_text()):
        suites = next((l.split(":", 1)[1].split() for l in st if l.lower().startswith("suites:")), [])
        if version == "v1":
            if "bookworm" not in suites:
                continue
            st = [("Suites: bookworm" if l.lower().startswith("suites:") else l) for l in st]
        keep.append("\n".join(st))
    if not keep:
        sys.exit(f"mkdeltapair: {SOURCES} names no bookworm suite")
    return "\n\n".join(keep) + "\n"


def run(*cmd, **kw):
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def build_root(out: Path, version: str):
    if (out / "done").exists():
        return
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    src = out / "sources"
    src.write_text(sources_for(version))
    log(f"mmdebstrap {version} into {out}")
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH))
    run("mmdebstrap", "--variant=minbase", "--quiet", "--include=" + ",".join(PACKAGES),
        "bookworm", out / "root", src, env=env)
    root = out / "root"
    for f in ["etc/machine-id", "var/lib/dbus/machine-id"]:
        p = root / f
        if p.exists() or p.is_symlink():
            p.unlink()
    (root / "etc/machine-id").write_text("")
    for k in (root / "etc/ssh").glob("ssh_host_*"):
        k.unlink()
    for d in ["var/cache/apt", "var/lib/apt/lists", "var/log"]:
        for p in (root / d).glob("*"):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    for f in (root / "etc/apt/sources.list.d").glob("*"):
        f.unlink()
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    run("find", root, "-exec", "touch", "--no-dereference", f"--date=@{EPOCH}", "{}", "+")
    q = subprocess.run(["chroot", root, "dpkg-query", "-W", "-f", "${Package} ${Version}\n"],
                       check=True, capture_output=True, text=True).stdout
    (out / "packages").write_text(q)
    (out / "done").write_text("")


def make_ext4(root: Path, img: Path, size_mib: int):
    if img.exists():
        return
    log(f"mkfs.ext4 -d {root} {img}")
    tmp = img.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=str(EPOCH), SOURCE_DATE_EPOCH=str(EPOCH))
    run("mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "root", "-U", UUID,
        "-E", f"hash_seed={UUID},root_owner=0:0,nodiscard", "-d", root, tmp, f"{size_mib}M", env=env)
    tmp.rename(img)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=Path("/var/tmp/upkeep-bench-cache"))
    ap.add_argument("--size-mib", type=int, default=1024)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("mkdeltapair: needs root (mmdebstrap in root mode)")
    key = hashlib.sha256(Path(__file__).read_bytes() + SOURCES.read_bytes()).hexdigest()[:16]
    cache = a.cache / f"pair-{key}"
    out = {}
    for v in ("v1", "v2"):
        build_root(cache / f"root-{v}", v)
        make_ext4(cache / f"root-{v}" / "root", cache / f"{v}.ext4", a.size_mib)
        out[v] = str(cache / f"{v}.ext4")
        out[f"{v}_root"] = str(cache / f"root-{v}" / "root")
    p1 = dict(l.split(" ", 1) for l in (cache / "root-v1/packages").read_text().splitlines())
    p2 = dict(l.split(" ", 1) for l in (cache / "root-v2/packages").read_text().splitlines())
    out["packages"] = len(p2)
    out["changed_packages"] = sorted(p for p in p2 if p1.get(p) != p2[p])
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
