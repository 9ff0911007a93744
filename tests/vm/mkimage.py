#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Builds the disk image of upkeep's VM tests (tests/README.md, suite vm), cached by its inputs.

    mkimage.py --source SRC --keyring KEYRING.pem [--flavour grub|uboot] [--cache DIR]

Prints one JSON object: {"disk": raw disk of the flavour, "flavour": grub or uboot, "rootfs_1_1_0": an ext4 root image of version 1.1.0
(a bundle payload for slot B), "tuf_keys": the TUF keys whose root.json the image trusts, "kernel": the
guest's kernel (for a KVM probe)}.

The image: a minimal Debian 12 root (mmdebstrap, from this machine's own apt sources: the host's deb822
sources file is the mirror argument, so whatever mirror or proxy the machine uses is used) with systemd,
dbus, polkitd, linux-image-cloud-amd64 and libubootenv-tool, and upkeep installed with `meson install` from its own
build of SRC (--prefix=/usr, -Dtests=false) with its unit, bus policy, polkit action and tmpfiles
entry; a config for the flavour's boot backend, a TUF source at http://10.0.2.2:PORT/ (PORTS: one per flavour; the host's 127.0.0.1
under qemu's user-mode network) polled every minute, and reboot = auto; a unit of the tests' own
(upkeep-vm-journal.service) writes upkeepd's journal lines to the second serial port as they come.

The disk (MBR): p1 32 MiB, the bootloader's; p2 and p3 640 MiB ext4, root A (version 1.0.0) and root
B (empty); p4 64 MiB ext4 for /var/lib/upkeep. Nothing is mounted; no loop device.
- grub: p1 is ext2 with GRUB's files (grub.cfg, contrib/grub/upkeep.cfg, grubenv), mounted at
  /boot/grub. GRUB i386-pc (SeaBIOS) is put in place without grub-install: boot.img's first 440 bytes in
  the MBR, a core.img from grub-mkimage at sector 1.
- uboot: for qemu's -bios /usr/lib/u-boot/qemu-x86/u-boot.rom (u-boot-qemu, the 32-bit build: the
  64-bit one resets instead of starting Linux). p1 is FAT with boot.scr (mkimage of
  contrib/uboot/boot.cmd, as it is) and uboot.env (mkenvimage, 0x4000 bytes: slot A confirmed), mounted
  at /boot/uboot; /etc/fw_env.config names that file for fw_printenv/fw_setenv.

Cache (outside the source tree): base-KEY/root (the mmdebstrap tree, shared by the flavours; key: the
recipe, the package list, the sources file), build-KEY/ and install-KEY/ (upkeep's build of SRC, shared),
image-FLAVOUR-KEY/ (key: the base key, this script, the installed tree, the keyring, the TUF root, the
flavour's contrib file). A second run with the same inputs only rebuilds upkeep incrementally and
hashes its install tree. Needs root (mmdebstrap root mode, file ownership in the images).
"""

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
PACKAGES = ["systemd-sysv", "udev", "dbus", "polkitd", "kmod", "linux-image-cloud-amd64", "initramfs-tools",
            "e2fsprogs", "grub-common", "libssl3", "libjson-c5", "libarchive13", "libcurl4", "libinih1",
            "libsystemd0", "libzstd1", "iproute2", "libubootenv-tool"]
MIB = 1024 * 1024
# (name, size in MiB); the partitions follow each other from 1 MiB on.
PARTS = [("boot", 32), ("rootA", 640), ("rootB", 640), ("data", 64)]
# The root file system's size (in the 640 MiB partitions): its content is about 370 MB; every update
# writes all of it, which under TCG is most of an install's time.
ROOT_FS_MIB = 440
# The host port of the TUF server each flavour's image names (10.0.2.2 in the guest): one each, so that
# the two flavours' VMs can run at once.
PORTS = {"grub": 8471, "uboot": 8472}
USER = "tester"
MASKED = ["apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
          "e2scrub_reap.service", "fstrim.timer", "systemd-pstore.service", "getty@tty1.service"]
JOURNAL_UNIT = "upkeep-vm-journal.service"
# Change it when base_root() changes what it makes.
BASE_RECIPE = "1"

UPKEEP_CONF = """# upkeep in the VM tests (tests/vm/mkimage.py)
[device]
compatible = upkeep-vm
version-file = /etc/upkeep/version

[keyring]
path = /etc/upkeep/keyring.pem

[boot]
{boot}

[slot.rootfs.A]
device = /dev/vda2

[slot.rootfs.B]
device = /dev/vda3

[source]
type = tuf
url = http://10.0.2.2:{port}/
root = /etc/upkeep/tuf-root.json
poll-interval = 1m
jitter = 0

[policy]
auto-install = all
reboot = auto

[health]
dir = /etc/upkeep/health.d
timeout = 60s
"""

GRUB_CFG = """serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
source ${prefix}/upkeep.cfg
echo "UPKEEP-GRUB slot=${upkeep_slot} ORDER=${ORDER} A_OK=${A_OK} A_TRY=${A_TRY} A_PENDING=${A_PENDING} B_OK=${B_OK} B_TRY=${B_TRY} B_PENDING=${B_PENDING}"
menuentry "slot A" {
        linux (hd0,msdos2)/vmlinuz root=/dev/vda2 rw console=ttyS0,115200 quiet upkeep.slot=A panic=5 fsck.repair=yes
        initrd (hd0,msdos2)/initrd.img
}
menuentry "slot B" {
        linux (hd0,msdos3)/vmlinuz root=/dev/vda3 rw console=ttyS0,115200 quiet upkeep.slot=B panic=5 fsck.repair=yes
        initrd (hd0,msdos3)/initrd.img
}
"""

UBOOT_ROM = Path("/usr/lib/u-boot/qemu-x86/u-boot.rom")
# The environment file on p1, as /etc/fw_env.config and contrib/uboot/boot.cmd have it.
UBOOT_ENV_SIZE = 0x4000
# A fresh device: slot A confirmed with upkeep's default attempts, B empty.
UBOOT_ENV = "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n"

# What differs between the flavours: the backend's config, p1's file system, where it is mounted, the
# contrib file the image is made from.
FLAVOURS = {
    # GRUB reads ext2 (a journal's late writes would be invisible to it); without a journal, a power cut
    # while the grub backend swaps grubenv in (a new file, a rename) can leave the file system's bitmaps
    # wrong, which the next file created there runs into ("doubly allocated", EIO: found by powercut.py):
    # fsck at every boot (fstab pass 2) repairs that first, answering yes to every question (the kernel
    # command line's fsck.repair=yes: with the default "preen", a damage preen does not fix stops the
    # boot in emergency mode, which a CI cut in the bootloader switch ran into). uboot.env is written in
    # place (fw_setenv): no allocation changes on the FAT.
    "grub": {"boot": "backend = grub", "fs": "ext2", "fsck": 2, "mount": "/boot/grub",
             "contrib": "contrib/grub/upkeep.cfg"},
    "uboot": {"boot": "backend = uboot\nuboot-config = /etc/fw_env.config", "fs": "vfat", "fsck": 0,
              "mount": "/boot/uboot", "contrib": "contrib/uboot/boot.cmd"},
}


def log(msg):
    print(f"mkimage: {msg}", file=sys.stderr, flush=True)


def run(*args, **kw):
    subprocess.run([str(a) for a in args], check=True, **kw)


def sha(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def tree_hash(top: Path):
    """Paths, modes, owners, link targets and contents of a tree."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            h.update(f"{p.relative_to(top)}\0{st.st_mode}\0{st.st_uid}\0{st.st_gid}\0".encode())
            if p.is_symlink():
                h.update(os.readlink(p).encode())
            elif p.is_file():
                h.update(p.read_bytes())
    return h.hexdigest()[:20]


def base_root(cache: Path):
    key = sha(BASE_RECIPE, " ".join(PACKAGES), SOURCES.read_bytes())
    out = cache / f"base-{key}"
    if (out / "done").exists():
        return key, out / "root"
    log(f"mmdebstrap into {out} (no cached base root)")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run("mmdebstrap", "--variant=minbase", "--quiet", "--include=" + ",".join(PACKAGES),
        "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
        "bookworm", out / "root", SOURCES)
    # No apt sources of this machine stay in the image.
    for f in (out / "root" / "etc/apt/sources.list.d").glob("*"):
        f.unlink()
    (out / "root" / "etc/apt/sources.list").unlink(missing_ok=True)
    (out / "done").write_text("")
    return key, out / "root"


def build_upkeep(cache: Path, source: Path):
    """upkeep's own build of SOURCE for the image, installed into a fresh DESTDIR; returns that folder."""
    build = cache / f"build-{sha(source)}"
    if not (build / "build.ninja").exists():
        shutil.rmtree(build, ignore_errors=True)
        run("meson", "setup", build, source, "--prefix=/usr", "--sysconfdir=/etc", "--localstatedir=/var",
            "-Dman=disabled", "-Dtests=false", stdout=subprocess.DEVNULL)
    run("ninja", "-C", build, stdout=subprocess.DEVNULL)
    dest = cache / f"install-{sha(source)}"
    shutil.rmtree(dest, ignore_errors=True)
    run("meson", "install", "-C", build, "--no-rebuild", "--quiet", "--destdir", dest, stdout=subprocess.DEVNULL)
    return dest


def tuf_keys(cache: Path):
    """The image's TUF keys (raw ed25519 private keys, hex, per top-level role), made once per cache."""
    f = cache / "tuf-keys.json"
    if not f.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        keys = {}
        for role in ("root", "timestamp", "snapshot", "targets"):
            k = ed25519.Ed25519PrivateKey.generate()
            keys[role] = k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption()).hex()
        tmp = f.with_suffix(".tmp")
        tmp.write_text(json.dumps(keys))
        tmp.rename(f)
    return f


def customize(root: Path, source: Path, keyring: Path, tuf_root: bytes, flavour: str):
    fl = FLAVOURS[flavour]
    (root / "etc/hostname").write_text("upkeep-vm\n")
    (root / "etc/fstab").write_text(f"/dev/vda1 {fl['mount']} {fl['fs']} defaults 0 {fl['fsck']}\n"
                                    "/dev/vda4 /var/lib/upkeep ext4 defaults 0 0\n")
    (root / fl["mount"][1:]).mkdir(parents=True, exist_ok=True)
    if flavour == "uboot":
        (root / "etc/fw_env.config").write_text(f"# uboot.env on p1 (tests/vm/mkimage.py)\n"
                                                f"{fl['mount']}/uboot.env 0x0 {UBOOT_ENV_SIZE:#x}\n")
    (root / "var/lib/upkeep").mkdir(parents=True, exist_ok=True)
    getty = root / "etc/systemd/system/serial-getty@ttyS0.service.d"
    getty.mkdir(parents=True, exist_ok=True)
    (getty / "autologin.conf").write_text(
        "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200 %I dumb\n")
    # The daemon's log also on the serial console: each slot has its own journal.
    dropin = root / "etc/systemd/system/upkeepd.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "console.conf").write_text("[Service]\nStandardOutput=journal+console\nStandardError=journal+console\n")
    # upkeepd logs to the journal: its lines, as they come, on the second serial port (vmdriver's
    # journal stream), for the tests to see where it is (the power cuts' windows). --lines=all: with
    # --follow journalctl starts from the last 10 lines only, and a slow start lost upkeepd's first ones.
    (root / "etc/systemd/system" / JOURNAL_UNIT).write_text(
        "[Unit]\nDescription=upkeepd's journal on ttyS1 (upkeep's VM tests)\nDefaultDependencies=no\n"
        "After=systemd-journald.service\nBefore=upkeepd.service\n\n"
        "[Service]\nExecStart=/usr/bin/journalctl --boot --follow --lines=all --output=cat SYSLOG_IDENTIFIER=upkeepd\n"
        "StandardOutput=file:/dev/ttyS1\n")
    net = root / "etc/systemd/network"
    net.mkdir(parents=True, exist_ok=True)
    (net / "10-vm.network").write_text("[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ("systemd-networkd.service", "upkeepd.service", JOURNAL_UNIT):
        path = next((d for d in ("/usr/lib/systemd/system", "/lib/systemd/system", "/etc/systemd/system")
                     if (root / d[1:] / unit).exists()), None)
        if not path:
            raise SystemExit(f"mkimage: no {unit} in the image's /usr/lib/systemd/system")
        link = wants / unit
        link.unlink(missing_ok=True)
        link.symlink_to(f"{path}/{unit}")
    etc = root / "etc/upkeep"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "upkeep.conf").write_text(UPKEEP_CONF.format(boot=fl["boot"], port=PORTS[flavour]))
    (etc / "version").write_text("1.0.0\n")
    shutil.copyfile(keyring, etc / "keyring.pem")
    (etc / "tuf-root.json").write_bytes(tuf_root)
    health = etc / "health.d"
    health.mkdir(exist_ok=True)
    check = health / "10-upkeepd-bus"
    check.write_text("#!/bin/sh\n# The system is healthy when the bus and networkd run.\n"
                     "systemctl is-active --quiet dbus.service systemd-networkd.service\n")
    check.chmod(0o755)
    # An unprivileged user for the polkit checks (scenario.py): `runuser -u tester -- updatectl ...`.
    for name, line in (("passwd", f"{USER}:x:1000:1000::/home/{USER}:/bin/sh"), ("group", f"{USER}:x:1000:"),
                       ("shadow", f"{USER}:!:20000::::::")):
        f = root / "etc" / name
        f.write_text(f.read_text() + line + "\n")
    (root / "home" / USER).mkdir(parents=True, exist_ok=True)
    os.chown(root / "home" / USER, 1000, 1000)
    # Faster boots under TCG: nothing that a test does not use runs at boot or later (apt's and the
    # file systems' timers would also compete with the test for the CPU).
    for unit in MASKED:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")


def mkfs(kind, image: Path, mib, tree=None, label=None):
    args = [f"mkfs.{kind}", "-q", "-F"]
    if label:
        args += ["-L", label]
    if tree:
        args += ["-d", tree]
    run(*args, image, f"{mib}M", stdout=subprocess.DEVNULL)


def grub_boot_part(work: Path, source: Path, img: Path):
    boot = work / "boot"
    (boot / "i386-pc").mkdir(parents=True)
    for f in Path("/usr/lib/grub/i386-pc").iterdir():
        if f.suffix in (".mod", ".lst"):
            shutil.copy(f, boot / "i386-pc")
    (boot / "grub.cfg").write_text(GRUB_CFG)
    shutil.copy(source / "contrib/grub/upkeep.cfg", boot / "upkeep.cfg")
    run("grub-editenv", boot / "grubenv", "create")
    mkfs("ext2", img, 32, boot)


def grub_install(work: Path, disk: Path):
    core = work / "core.img"
    run("grub-mkimage", "-O", "i386-pc", "-p", "(hd0,msdos1)/", "-o", core, "biosdisk", "part_msdos", "ext2")
    core_bytes = core.read_bytes()
    if len(core_bytes) > 2047 * 512:
        raise SystemExit(f"mkimage: core.img is {len(core_bytes)} bytes, more than the gap before p1")
    boot_img = Path("/usr/lib/grub/i386-pc/boot.img").read_bytes()
    with open(disk, "r+b") as f:
        f.write(boot_img[:440])  # the partition table from byte 446 on stays
        f.seek(512)
        f.write(core_bytes)


def uboot_boot_part(work: Path, source: Path, img: Path):
    """p1 of the uboot flavour: FAT with boot.scr (contrib/uboot/boot.cmd as it is) and uboot.env."""
    scr, env, text = work / "boot.scr", work / "uboot.env", work / "uboot-env.txt"
    run("mkimage", "-A", "x86", "-O", "linux", "-T", "script", "-C", "none", "-n", "upkeep A/B",
        "-d", source / "contrib/uboot/boot.cmd", scr, stdout=subprocess.DEVNULL)
    text.write_text(UBOOT_ENV)
    run("mkenvimage", "-s", hex(UBOOT_ENV_SIZE), "-o", env, text)
    run("mkfs.vfat", "-n", "UBOOT", "-C", img, str(32 * 1024), stdout=subprocess.DEVNULL)
    run("mcopy", "-i", img, scr, env, "::")


def make_disk(work: Path, root: Path, source: Path, out: Path, flavour: str):
    total = 1 + sum(s for _, s in PARTS) + 1
    disk = work / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(total * MIB)
    layout = "label: dos\n"
    start = 1
    offsets = {}
    for name, size in PARTS:
        layout += f"start={start * 2048}, size={size * 2048}, type=83\n"
        offsets[name] = start
        start += size
    run("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", disk, input=layout.encode())

    data = work / "data"
    data.mkdir()

    parts = {"boot": work / "p1.img", "rootA": work / "p2.img", "rootB": work / "p3.img", "data": work / "p4.img"}
    (uboot_boot_part if flavour == "uboot" else grub_boot_part)(work, source, parts["boot"])
    mkfs("ext4", parts["rootA"], ROOT_FS_MIB, root)
    mkfs("ext4", parts["rootB"], 16)
    mkfs("ext4", parts["data"], 64, data)
    for name, img in parts.items():
        run("dd", f"if={img}", f"of={disk}", "bs=1M", f"seek={offsets[name]}", "conv=notrunc,sparse",
            "status=none")
        img.unlink()
    if flavour == "grub":
        grub_install(work, disk)
    disk.rename(out / "disk.img")

    # The 1.1.0 root: the same tree with another version, as an ext4 image (a raw bundle payload).
    (root / "etc/upkeep/version").write_text("1.1.0\n")
    mkfs("ext4", out / "rootfs-1.1.0.img", ROOT_FS_MIB, root)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", type=Path, required=True)
    ap.add_argument("--keyring", type=Path, required=True)
    ap.add_argument("--flavour", choices=sorted(FLAVOURS), default="grub")
    ap.add_argument("--cache", type=Path, default=Path("/var/tmp/upkeep-vm-cache"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("mkimage: needs root (mmdebstrap in root mode, file owners in the images)")
    tools = ["mmdebstrap", "sfdisk", "mkfs.ext4", "meson"]
    tools += ["mkimage", "mkenvimage", "mkfs.vfat", "mcopy"] if a.flavour == "uboot" else ["grub-mkimage", "grub-editenv"]
    for tool in tools:
        if not shutil.which(tool):
            raise SystemExit(f"mkimage: {tool} is missing (tools/packages.list)")
    if a.flavour == "grub" and not Path("/usr/lib/grub/i386-pc/boot.img").exists():
        raise SystemExit("mkimage: /usr/lib/grub/i386-pc is missing (grub-pc-bin)")
    if a.flavour == "uboot" and not UBOOT_ROM.exists():
        raise SystemExit(f"mkimage: {UBOOT_ROM} is missing (u-boot-qemu)")
    source = a.source.resolve()
    cache = a.cache
    cache.mkdir(parents=True, exist_ok=True)
    # One builder at a time: the two flavours' tests start together and share the base root and the build.
    lock = open(cache / "lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)

    from tufrepo import Repo  # noqa: E402
    from vmtuf import load_keys  # noqa: E402
    keys_file = tuf_keys(cache)
    repo = Repo()
    load_keys(repo, keys_file)
    tuf_root = repo.trusted_root()

    base_key, base = base_root(cache)
    dest = build_upkeep(cache, source)
    contrib = (source / FLAVOURS[a.flavour]["contrib"]).read_bytes()
    key = sha(base_key, Path(__file__).read_bytes(), tree_hash(dest), a.keyring.read_bytes(), tuf_root, contrib)
    out = cache / f"image-{a.flavour}-{key}"
    if not (out / "done").exists():
        log(f"making {out}")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        with tempfile.TemporaryDirectory(dir=cache, prefix="work-") as w:
            work = Path(w)
            root = work / "root"
            run("cp", "-a", base, root)
            run("cp", "-a", f"{dest}/.", root)
            customize(root, source, a.keyring, tuf_root, a.flavour)
            make_disk(work, root, source, out, a.flavour)
        (out / "done").write_text("")
        # Older images of this flavour (and those from before the flavours) are of no more use.
        for old in cache.glob("image-*"):
            other = any(old.name.startswith(f"image-{f}-") for f in FLAVOURS if f != a.flavour)
            if old != out and not other:
                shutil.rmtree(old, ignore_errors=True)
    kernels = sorted((base / "boot").glob("vmlinuz-*"))
    print(json.dumps({"disk": str(out / "disk.img"), "flavour": a.flavour, "rootfs_1_1_0": str(out / "rootfs-1.1.0.img"),
                      "tuf_keys": str(keys_file), "kernel": str(kernels[-1]) if kernels else None}))


if __name__ == "__main__":
    main()
