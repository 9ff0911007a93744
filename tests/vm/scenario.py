#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""upkeep on real boots (meson suite vm): one VM per bootloader flavour, on a raw copy of mkimage.py's
image, runs the scenarios as a chain, each a TAP test point of its own:

    scenario.py grub | uboot

1. update: upkeepd, started by systemd from its installed unit on slot A (1.0.0), checks the TUF
   repository this script serves on 127.0.0.1:8471 (uboot: 8472; 10.0.2.2 in the guest; `updatectl check` spares the
   wait for its first poll), installs 1.1.0 into slot B by its policy and reboots the machine itself;
   the bootloader boots B, the daemon runs the health checks and confirms B; `updatectl status` on B
   says 1.1.0 on B with no error, and the boot environment holds B confirmed and first. An unprivileged
   user (real polkit, the installed bus policy) may read (`status`, `history`) but `install`, `check`
   and `rollback` are refused with exit status 4 and "permission denied", and nothing changes.
2. health check fails: root installs 1.2.0 (a root whose /etc/upkeep/health.d has a check that fails)
   from a URL into A; the daemon reboots into A, the check fails, A is never confirmed: the daemon marks
   it bad and reboots back to B; on B the status (State idle, the rolled-back record with 1.2.0, slot A
   and the failed check) and the history say what happened; the try marker the bootloader set on B
   booting it again is gone (the start-up confirmation clears it).
3. init does not come up: 1.3.0, whose /sbin/init is a script that exits, installed into A: the kernel
   panics, the bootloader falls back to B; on B the status (the same rule: the record now names 1.3.0)
   and the history say what happened, no try marker is left, and only root may acknowledge the record.
4. power cuts: an update (2.1.0) cut by killing qemu at an instant of a phase (powercut.py: a the
   download and install, b the bootloader switch, c the confirmation after the reboot, env a torn
   U-Boot environment; per flavour a fixed seed and phase, CUTS: GRUB a, U-Boot env, to keep the suite
   within its time); after it, the machine boots a good slot, upkeepd is active and `updatectl status`
   answers, and the update is retried until confirmed. powercut.py runs the long campaigns of all
   phases.

A step that fails is "not ok" with its reason; the steps after it are skipped (the machine's state is
unknown then). Each step prints its timings as TAP comments.

Environment: UPDATECTL (to make the bundles), UPKEEP_TEST_PKI (their signer; the keyring goes into the
image), UPKEEP_SOURCE_ROOT, UPKEEP_VM_CACHE (default /var/tmp/upkeep-vm-cache). Skipped (TAP "1..0 #
SKIP") only when qemu cannot run. qemu and the server are stopped on every path; the console log stays
in the temporary folder printed at the start when a step fails.
"""

import base64
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = Path(os.environ.get("UPKEEP_SOURCE_ROOT", HERE.parents[1]))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(SOURCE / "tests"))
sys.path.insert(0, str(SOURCE / "tests" / "integration"))

import vmdriver  # noqa: E402
from httpserver import TestServer  # noqa: E402
from tufrepo import Repo  # noqa: E402
from vmtuf import load_keys  # noqa: E402

BOOT_WAIT = 300
INSTALL_WAIT = 900
from mkimage import PORTS  # noqa: E402  (the port each flavour's image names)
COMPATIBLE = "upkeep-vm"
USER = "tester"  # mkimage.py's unprivileged user
T0 = time.monotonic()


def say(msg):
    """A TAP comment (stdout is TAP)."""
    for line in str(msg).splitlines() or [""]:
        print(f"# [{time.monotonic() - T0:5.0f} s] {line}" if line else "#", flush=True)


def make_bundle(tmp, version, rootfs):
    d = tmp / f"bundle-{version}"
    d.mkdir()
    (d / "rootfs.img").symlink_to(rootfs)
    manifest = {"format": 2, "compatible": COMPATIBLE, "version": version, "build": "2026-12-01T10:00:00Z",
                "payloads": [{"name": "rootfs", "file": "rootfs.img", "handler": "raw", "slot_class": "rootfs"}]}
    (d / "manifest.json").write_text(json.dumps(manifest))
    pki = Path(os.environ["UPKEEP_TEST_PKI"])
    out = tmp / f"{COMPATIBLE}-{version}.upk"
    subprocess.run([os.environ["UPDATECTL"], "bundle", "create", "--manifest", d / "manifest.json",
                    "--cert", pki / "signer.pem", "--key", pki / "signer.key", "--chain", pki / "chain.pem",
                    # Blocks of 32 KiB compressed alone: fast to make; these updates are never deltas.
                    "--compression", "zstd", "--zstd-level", "3", "--block-size", "32768", "--window", "0",
                    "-o", out], check=True, stdout=sys.stderr)
    return out


def derive_rootfs(tmp, base, version, files, remove=()):
    """A copy of the ext4 root image `base` with /etc/upkeep/version = `version`, the paths in `remove`
    deleted (a symbolic link itself, not its target) and `files` ({path: (text, mode)}) written, by
    debugfs on the image file: nothing is mounted."""
    img = tmp / f"rootfs-{version}.img"
    subprocess.run(["cp", "--sparse=always", base, img], check=True)
    local = tmp / f"files-{version}"
    local.mkdir()
    files = dict(files, **{"/etc/upkeep/version": (version + "\n", 0o644)})
    cmds = [f"rm {path}" for path in (*remove, "/etc/upkeep/version")]
    for i, (path, (text, mode)) in enumerate(files.items()):
        (local / str(i)).write_text(text)
        cmds += [f"write {local / str(i)} {path}", f"sif {path} mode 0{0o100000 | mode:o}"]
    (local / "cmds").write_text("\n".join(cmds) + "\n")
    subprocess.run(["debugfs", "-w", "-f", local / "cmds", img], check=True, capture_output=True)
    # debugfs reports errors but exits 0: read back what was written.
    for path, (text, mode) in files.items():
        got = subprocess.run(["debugfs", "-R", f"cat {path}", img], check=True, capture_output=True).stdout
        if got.decode() != text:
            raise SystemExit(f"scenario: debugfs did not write {path} into {img}")
    return img


def url(flavour):
    """The repository's URL in the guest of `flavour`."""
    return f"http://10.0.2.2:{PORTS[flavour]}"


def serve(www, flavour):
    """The HTTP server on 127.0.0.1 at the port the flavour's image names. Another VM test of the same
    flavour on this machine (powercut.py, tools/demo --vm) holds it while it runs: wait for it."""
    port = PORTS[flavour]
    waited = False
    deadline = time.monotonic() + 3600
    while True:
        try:
            return TestServer(www, port=port).start()
        except OSError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise SystemExit(f"scenario: cannot serve the repository on 127.0.0.1:{port}: {e}")
            if not waited:
                say(f"127.0.0.1:{port} is in use (another VM test?): waiting for it")
                waited = True
            time.sleep(5)


def status(vm):
    out = vm.check("updatectl status --json > /tmp/st.json; echo \"ST:$(base64 -w0 /tmp/st.json)\"")
    for line in out.splitlines():
        if line.startswith("ST:"):
            return json.loads(base64.b64decode(line[3:]))
    raise vmdriver.VMError(f"no status in {out!r}")


def history(vm):
    out = vm.check("updatectl history --json > /tmp/h.json; echo \"H:$(base64 -w0 /tmp/h.json)\"")
    for line in out.splitlines():
        if line.startswith("H:"):
            return json.loads(base64.b64decode(line[2:]))
    raise vmdriver.VMError(f"no history in {out!r}")


def grubenv(vm):
    out = vm.check("grub-editenv /boot/grub/grubenv list")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith(" "))


class Grub:
    name = "grub"
    # The line mkimage.py's grub.cfg prints (GRUB wraps it at 80 columns), up to its end (the console
    # may have only a part of it yet); group 1: the slot it boots.
    marker = re.compile(rb"UPKEEP-GRUB slot=(\w*) .*?B_PENDING=\w*\r?\n", re.S)
    env = staticmethod(grubenv)

    @staticmethod
    def booting_try(line, slot):
        """The marker line shows `slot` booted as an update on trial."""
        return f"{slot}_PENDING=1" in line and f"{slot}_OK=1" in line

    @staticmethod
    def confirmed_line(line, slot):
        """The marker line shows `slot` booted as a confirmed slot (good, no update pending on it)."""
        return f"{slot}_OK=1" in line and f"{slot}_PENDING=1" not in line

    @staticmethod
    def confirmed(env, slot, other):
        return (env.get("ORDER") == f"{slot} {other}" and env.get(f"{slot}_OK") == "1"
                and env.get(f"{slot}_TRY") == "0" and env.get(f"{slot}_PENDING") == "0")

    @staticmethod
    def back_on(env, slot, bad):
        """`slot` boots again first, `bad` is not bootable (marked bad, or a pending update that
        failed its try)."""
        return (env.get("ORDER", "").startswith(slot) and env.get(f"{slot}_OK") == "1"
                and (env.get(f"{bad}_OK") == "0" or env.get(f"{bad}_TRY") == "1"))

    @staticmethod
    def no_try(env, slot):
        """`slot` carries no try marker (the start-up confirmation clears what the bootloader set)."""
        return env.get(f"{slot}_TRY", "0") == "0"

    @staticmethod
    def rearmed(env, slot):
        """`slot` is booted first again as a confirmed slot (GRUB has no attempt count)."""
        return env.get(f"{slot}_OK") == "1" and env.get(f"{slot}_PENDING", "0") == "0"


def ubootenv(vm):
    out = vm.check("fw_printenv")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


class UBoot:
    name = "uboot"
    # The line contrib/uboot/boot.cmd prints before it writes the environment back and boots, up to its
    # end; group 1: the slot it boots.
    marker = re.compile(rb"upkeep: booting slot (\w*): [^\r\n]*B_TRY=[^\r\n]*\r?\n")
    env = staticmethod(ubootenv)

    @staticmethod
    def booting_try(line, slot):
        # Its one attempt just taken, the try marker still set.
        return f"{slot}_LEFT=0" in line and f"{slot}_TRY=1" in line and f"BOOT_ORDER={slot} " in line

    @staticmethod
    def confirmed_line(line, slot):
        # First in the order, no try marker (its attempt just taken).
        return f"BOOT_ORDER={slot} " in line and re.search(rf"\b{slot}_TRY=(\s|$)", line) is not None

    @staticmethod
    def confirmed(env, slot, other):
        # mark_good: first, the full [boot] attempts (3), no try marker; BOOTED from the boot script.
        return (env.get("BOOT_ORDER") == f"{slot} {other}" and env.get(f"BOOT_{slot}_LEFT") == "3"
                and f"BOOT_{slot}_TRY" not in env and env.get("BOOTED") == slot)

    @staticmethod
    def back_on(env, slot, bad):
        """`slot` boots again first with attempts, `bad` has none left (marked bad, or an update whose
        one attempt was spent without a confirmation)."""
        return (env.get("BOOT_ORDER", "").startswith(slot) and env.get(f"BOOT_{slot}_LEFT", "0") != "0"
                and env.get(f"BOOT_{bad}_LEFT", "0") == "0")

    @staticmethod
    def no_try(env, slot):
        return env.get(f"BOOT_{slot}_TRY", "0") == "0"

    @staticmethod
    def rearmed(env, slot):
        """The attempt the boot script took from `slot` is given back ([boot] attempts, 3)."""
        return env.get(f"BOOT_{slot}_LEFT") == "3"


FLAVOURS = {"grub": Grub, "uboot": UBoot}


def wait_daemon(vm):
    """Until upkeepd has finished its start (READY=1 comes after the boot-time confirmation)."""
    vm.check("for i in $(seq 600); do systemctl is-active -q upkeepd && break; sleep 1; done; "
             "systemctl is-active upkeepd", timeout=BOOT_WAIT + 60)


def boot_times(vm):
    """systemd-analyze's line for the boot just done (how long kernel, initrd and userspace took)."""
    rc, out = vm.run("systemd-analyze time 2>&1 | head -n 1")
    return " ".join(out.split()) if rc == 0 else "(systemd-analyze failed)"


def expect(cond, what, *context):
    if not cond:
        raise AssertionError(what + "".join(f"\n{c}" for c in context))


class Chain:
    """The scenarios, one after the other on one machine."""

    def __init__(self, vm, fl, urls, tmp, www, base, flavour):
        self.vm, self.fl, self.urls = vm, fl, urls
        self.tmp, self.www, self.base, self.flavour = tmp, www, base, flavour
        self.timings = []

    def lap(self, what, since):
        self.timings.append((what, time.monotonic() - since))
        say(f"{what}: {time.monotonic() - since:.0f} s")
        return time.monotonic()

    def reboot_marker(self, since, timeout, what):
        m = self.vm.wait_for(self.fl.marker, timeout, since, what)
        return m, " ".join(m.group(0).decode().split())

    def up(self, since, slot):
        """After the bootloader's line: the shell, the daemon's start (with its boot-time confirmation)."""
        self.vm.wait_shell(since, BOOT_WAIT)
        wait_daemon(self.vm)
        say(f"up on slot {slot}: {boot_times(self.vm)}")
        expect(f"upkeep.slot={slot}" in self.vm.check("cat /proc/cmdline"), f"the kernel was not started for slot {slot}")

    def as_user(self, args):
        return self.vm.run(f"runuser -u {USER} -- updatectl {args} 2>&1")

    def step1_update(self):
        vm, fl = self.vm, self.fl
        t = time.monotonic()
        vm.start()
        m, line = self.reboot_marker(0, BOOT_WAIT, f"the {fl.name} marker line")
        expect(m.group(1) == b"A", f"{fl.name} did not boot slot A first", line)
        self.up(m.end(), "A")
        t = self.lap("boot to slot A, daemon started", t)
        st = status(vm)
        expect(st["booted_slot"] == "A" and st["current_version"] == "1.0.0", "status before the update", st)

        # The daemon finds 1.1.0 in the TUF repository, installs it by its policy (auto-install = all) and
        # reboots. It would check by itself 10-60 s after its start; `check` asks now (saves that wait).
        mark = vm.mark()
        # (The daemon's own check may have started the install already: then `check` finds it busy.)
        rc, out = vm.run("updatectl check 2>&1")
        say(f"updatectl check on A: exit {rc}: {out.strip()}")
        m, line = self.reboot_marker(mark, INSTALL_WAIT, "the reboot after the daemon's own install")
        t = self.lap("the daemon's check, download and install of 1.1.0, until the reboot", t)
        say(line)
        expect(m.group(1) == b"B", f"{fl.name} did not boot slot B after the install", line)
        expect(fl.booting_try(line, "B"), "the boot environment at the reboot", line)
        self.up(m.end(), "B")
        t = self.lap("boot to slot B, health checks, confirmation", t)
        expect(vm.check("cat /etc/upkeep/version").strip() == "1.1.0", "the running root is not 1.1.0")
        st = status(vm)
        expect(st["booted_slot"] == "B" and st["current_version"] == "1.1.0" and st["state"] == "idle"
               and st["last_error"] == "", "status on B", st)
        env = fl.env(vm)
        expect(fl.confirmed(env, "B", "A"), "the boot environment after the confirmation", env)
        expect(any(e["operation"] == "confirm" and e["version"] == "1.1.0" and e["ok"] for e in history(vm)),
               "no confirmation of 1.1.0 in the history", history(vm))

        # An unprivileged user: reads, but may not act (polkit's io.upkeep.manage is auth_admin and no
        # agent can answer: the daemon refuses).
        rc, out = self.as_user("status")
        say(f"updatectl status as {USER}:\n{out}")
        expect(rc == 0 and "1.1.0" in out and re.search(r"Booted slot:\s+B", out),
               f"`updatectl status` as {USER} exited {rc}", out)
        rc, out = self.as_user("history")
        expect(rc == 0 and "1.1.0" in out, f"`updatectl history` as {USER} exited {rc}", out)
        for cmd in ("install", f"install {self.urls['1.2.0']}", "check", "rollback"):
            rc, out = self.as_user(cmd)
            say(f"updatectl {cmd} as {USER}: exit {rc}: {out.strip()}")
            expect(rc == 4 and "permission denied" in out,
                   f"`updatectl {cmd}` as {USER}: exit status {rc}, not 4 with \"permission denied\"", out)
        st = status(vm)
        expect(st["booted_slot"] == "B" and st["state"] == "idle" and st["phase"] == "",
               "the refused calls changed the daemon's state", st)
        env = fl.env(vm)
        expect(fl.confirmed(env, "B", "A"), "the refused calls changed the boot environment", env)
        self.lap("status, history and the unprivileged checks", t)

    def install_and_reboot(self, version):
        """Root installs `version` from its URL into A; the daemon reboots into it. The bootloader's line."""
        vm, fl = self.vm, self.fl
        mark = vm.mark()
        # Not vm.run(): the daemon reboots the machine right after the install, the shell goes with it.
        vm.send(f"updatectl install {self.urls[version]}\n")
        m, line = self.reboot_marker(mark, INSTALL_WAIT, f"the reboot after the install of {version}")
        say(line)
        expect(m.group(1) == b"A", f"{fl.name} did not boot slot A after the install of {version}", line)
        expect(fl.booting_try(line, "A"), "the boot environment at the reboot", line)
        return m

    def step2_health_fails(self):
        vm, fl = self.vm, self.fl
        t = time.monotonic()
        m = self.install_and_reboot("1.2.0")
        t = self.lap("download and install of 1.2.0, until the reboot", t)
        # On A the daemon runs the health checks, one fails: it marks A bad and reboots.
        m, line = self.reboot_marker(m.end(), BOOT_WAIT + 120, "the reboot after the failed health check")
        t = self.lap("boot to slot A, the failed health check, until the reboot", t)
        say(line)
        expect(m.group(1) == b"B", f"{fl.name} did not boot slot B after the failed health check", line)
        self.up(m.end(), "B")
        t = self.lap("boot back to slot B", t)
        st = status(vm)
        say(f"status on B: {st}")
        expect(st["booted_slot"] == "B" and st["current_version"] == "1.1.0", "status on B after the rollback", st)
        # The rollback rule: State idle, no LastError, and the rolled-back record says which version, on
        # which slot and why, until acknowledged (the check's path shows as <path> there, as in LastError;
        # the history below names it).
        rb = st.get("rolled_back") or {}
        expect(st["state"] == "idle" and st["last_error"] == "" and rb.get("version") == "1.2.0"
               and rb.get("slot") == "A"
               and re.search(r"health check .* exited with status 1", rb.get("reason", "")),
               "status on B does not report the rollback of 1.2.0 on slot A and its failed health check", st)
        hist = history(vm)
        failed = [e for e in hist if e["operation"] == "confirm" and e["version"] == "1.2.0" and not e["ok"]]
        expect(failed and failed[-1]["slot"] == "A" and "20-fail" in failed[-1]["reason"],
               "the history on B does not say that 1.2.0 failed its health check on A", hist)
        env = fl.env(vm)
        expect(fl.back_on(env, "B", "A"), "the boot environment after the rollback", env)
        # The bootloader booted B again as a first try (GRUB's B_TRY=1, an attempt taken): B's start-up
        # confirmation clears it, as after a fallback.
        expect(fl.no_try(env, "B") and fl.rearmed(env, "B"),
               "the try marker the bootloader set on B while booting it back is still set", env)
        say("updatectl history on B:\n" + vm.check("updatectl history"))
        self.lap("status and history", t)

    def step3_init_fails(self):
        vm, fl = self.vm, self.fl
        t = time.monotonic()
        m = self.install_and_reboot("1.3.0")
        t = self.lap("download and install of 1.3.0, until the reboot", t)
        vm.wait_for(rb"UPKEEP-BROKEN-INIT", BOOT_WAIT, m.end(), "the broken init of 1.3.0 on slot A")
        m, line = self.reboot_marker(m.end(), BOOT_WAIT, "the bootloader's fallback after the broken init")
        t = self.lap("boot to the broken init, panic, until the bootloader's next line", t)
        say(line)
        expect(m.group(1) == b"B", f"{fl.name} did not fall back to slot B", line)
        self.up(m.end(), "B")
        t = self.lap("boot back to slot B", t)
        st = status(vm)
        say(f"status on B: {st}")
        expect(st["booted_slot"] == "B" and st["current_version"] == "1.1.0", "status on B after the fallback", st)
        # The same rule as after the health check's rollback: the newer record replaces 1.2.0's.
        rb = st.get("rolled_back") or {}
        expect(st["state"] == "idle" and st["last_error"] == "" and rb.get("version") == "1.3.0"
               and rb.get("slot") == "A" and "came back up on slot B" in rb.get("reason", ""),
               "status on B does not report the bootloader's fallback from 1.3.0 on slot A", st)
        out = vm.check("updatectl status")
        expect(re.search(r"Rolled back:\s+version 1\.3\.0 on slot A", out) and "Reason:" in out,
               "`updatectl status` on B does not show the rollback", out)
        # Only an administrator acknowledges it; then it is gone.
        rc, out = self.as_user("acknowledge")
        expect(rc == 4 and "permission denied" in out,
               f"`updatectl acknowledge` as {USER}: exit status {rc}, not 4 with \"permission denied\"", out)
        expect((status(vm).get("rolled_back") or {}).get("version") == "1.3.0",
               "the refused acknowledge removed the rollback record", status(vm))
        out = vm.check("updatectl acknowledge")
        expect("acknowledged the rollback of version 1.3.0" in out, "`updatectl acknowledge` as root", out)
        st = status(vm)
        expect(st.get("rolled_back") is None and st["state"] == "idle",
               "the rollback record is still there after `updatectl acknowledge`", st)
        hist = history(vm)
        failed = [e for e in hist if e["operation"] == "confirm" and e["version"] == "1.3.0" and not e["ok"]]
        expect(failed and failed[-1]["slot"] == "A", "the history on B does not say that 1.3.0 failed on A", hist)
        env = fl.env(vm)
        expect(fl.back_on(env, "B", "A"), "the boot environment after the fallback", env)
        expect(fl.no_try(env, "B"), "the try marker the bootloader set on B while falling back is still set", env)
        say("updatectl status on B:\n" + vm.check("updatectl status"))
        self.lap("status and history", t)


    def step4_power_cuts(self):
        import powercut  # noqa: E402 (it imports this module)

        t = time.monotonic()
        st = status(self.vm)
        seed, phases = CUTS[self.flavour]
        cutter = powercut.Cutter(self.vm, self.fl, self.tmp, self.www, self.base, powercut.random.Random(seed),
                                 st["booted_slot"], st["current_version"])
        for i, phase in enumerate(phases, 1):
            # The retry of a cut is the next cut's update; the last one's goes through.
            r = cutter.one(i, phase, seed, retry=i == len(phases))
            expect(r["outcome"] == "ok", f"power cut {i} (phase {phase}, seed {seed}): {r['outcome']}", r)
        expect(cutter.version == f"2.{len(phases)}.0", "the last retried update was not confirmed",
               cutter.results)
        for line in powercut.summary(cutter.results):
            say(line)
        self.lap("power cuts", t)


# Scenario 4's cuts in CI: per flavour a seed (the instants) and the phases (powercut.py), one each: a
# cut and its retried update cost 2-4 minutes under TCG.
CUTS = {"grub": (4, ["a"]), "uboot": (5, ["env"])}

STEPS = [
    ("step1_update", "scenario 1: the daemon installs 1.1.0 into B by itself, B is confirmed; an unprivileged "
                     "user may read, not act"),
    ("step2_health_fails", "scenario 2: 1.2.0 fails its health check on A, the daemon rolls back to B and says so"),
    ("step3_init_fails", "scenario 3: 1.3.0's init does not come up on A, the bootloader falls back to B, "
                         "the daemon says so"),
    ("step4_power_cuts", "scenario 4: a power cut (qemu killed) in an update: a good slot boots, the daemon comes "
                         "up, the retried update completes"),
]


def build_image(flavour):
    """mkimage.py's image of the flavour (cached): its JSON description."""
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/python3", str(HERE / "mkimage.py"), "--source", str(SOURCE), "--keyring",
                        str(Path(os.environ["UPKEEP_TEST_PKI"]) / "keyring.pem"), "--flavour", flavour, "--cache",
                        os.environ.get("UPKEEP_VM_CACHE", "/var/tmp/upkeep-vm-cache")],
                       stdout=subprocess.PIPE, text=True, check=True)
    image = json.loads(p.stdout.strip().splitlines()[-1])
    say(f"image ready after {time.monotonic() - t:.0f} s: {image['disk']}")
    return image


def copy_disk(image, tmp):
    """The machine's disk: a sparse raw copy of the image (not a qcow2 overlay: with raw, what a killed
    qemu keeps is what the guest wrote, see powercut.py; the copy takes seconds)."""
    disk = tmp / "disk.img"
    subprocess.run(["cp", "--sparse=always", image["disk"], disk], check=True)
    return disk


def main():
    flavour = sys.argv[1]
    fl = FLAVOURS[flavour]
    # meson's timeout sends SIGTERM: end through the finally blocks that stop qemu and the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("scenario: terminated"))
    print("TAP version 13", flush=True)
    why = vmdriver.qemu_available()
    if why:
        print(f"1..0 # SKIP the VM tests need qemu: {why}")
        return 0
    print(f"1..{len(STEPS)}", flush=True)
    image = build_image(flavour)
    accel = "kvm" if vmdriver.kvm_works(image.get("kernel")) else "tcg"
    say(f"accelerator: {accel}")

    tmp = Path(tempfile.mkdtemp(prefix=f"upkeep-vm-{flavour}-", dir="/var/tmp"))
    say(f"work folder: {tmp}")
    ok = False
    server = vm = chain = None
    try:
        t = time.monotonic()
        disk = copy_disk(image, tmp)
        www = tmp / "www"
        (www / "b").mkdir(parents=True)
        server = serve(www, flavour)
        base = image["rootfs_1_1_0"]
        bundles = {"1.1.0": make_bundle(tmp, "1.1.0", base)}
        fail = "#!/bin/sh\necho 'UPKEEP-HEALTH-FAIL: 1.2.0 of the VM tests fails this check on purpose'\nexit 1\n"
        bundles["1.2.0"] = make_bundle(tmp, "1.2.0", derive_rootfs(
            tmp, base, "1.2.0", {"/etc/upkeep/health.d/20-fail": (fail, 0o755)}))
        # /sbin is a link to usr/sbin, /usr/sbin/init a link to systemd: the link goes, a file replaces it.
        init = "#!/bin/sh\necho UPKEEP-BROKEN-INIT\nexit 1\n"
        bundles["1.3.0"] = make_bundle(tmp, "1.3.0", derive_rootfs(
            tmp, base, "1.3.0", {"/usr/sbin/init": (init, 0o755)}, remove=["/usr/sbin/init"]))
        urls = {}
        for version, b in bundles.items():
            os.link(b, www / "b" / b.name)
            urls[version] = f"{url(flavour)}/b/{b.name}"
        repo = Repo()
        load_keys(repo, image["tuf_keys"])
        repo.targets[bundles["1.1.0"].name] = (bundles["1.1.0"].read_bytes(), {"compatible": COMPATIBLE,
                                                                              "version": "1.1.0"})
        repo.publish(www)
        say(f"bundles and repository ready after {time.monotonic() - t:.0f} s "
            f"({', '.join(f'{v}: {b.stat().st_size // (1024 * 1024)} MiB' for v, b in bundles.items())})")
        vm = vmdriver.VM(disk, tmp / "console.log", accel=accel, flavour=flavour, disk_format="raw")
        chain = Chain(vm, fl, urls, tmp, www, base, flavour)
        broken = None
        ok = True
        for i, (fn, title) in enumerate(STEPS, 1):
            title = f"{title} ({flavour})"
            if broken:
                print(f"ok {i} - {title} # SKIP {broken}", flush=True)
                continue
            t = time.monotonic()
            try:
                getattr(chain, fn)()
                print(f"ok {i} - {title}", flush=True)
            except (AssertionError, vmdriver.VMError) as e:
                ok = False
                broken = f"step {i} failed, the machine's state is unknown"
                print(f"not ok {i} - {title}", flush=True)
                say(f"step {i} failed after {time.monotonic() - t:.0f} s: {e}")
    finally:
        if vm:
            vm.close()
        if server:
            server.stop()
        if chain:
            say("timings: " + "; ".join(f"{w} {s:.0f} s" for w, s in chain.timings))
        say(f"total {time.monotonic() - T0:.0f} s")
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log = tmp / "console.log"
            if log.exists():
                say(f"last console output ({log}):")
                say(log.read_bytes()[-6000:].decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
