#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Power cuts on real boots: qemu is killed (SIGKILL) at random instants while upkeep updates the guest,
and after every cut the machine must come up on a good slot and a retried update must complete.

    powercut.py --cuts N --seed S [--flavour grub|uboot] [--phases a,b,c,env] [--retry-every K]

Also scenario 4 of scenario.py's chain (a few cuts, on the machine scenarios 1-3 left).

Each cut is one update, from a URL (`updatectl install`, root) to the slot that does not run, of a
version newer than any before (2.N.0: the root of 1.1.0 with another /etc/upkeep/version), cut in one
phase, chosen by the seed:
  a  the download and install: at a random instant between the daemon's first "install:" line and
     its "install: activating" (the length measured on the last update that went through);
  b  the bootloader switch: from "install: activating" (the payload's commit, state.json's pending
     update, the boot environment's write that makes the new slot bootable for one try: grub-editenv or
     fw_setenv) through the daemon's `systemctl reboot` up to the bootloader on the next boot (and
     U-Boot's own write of its environment before the kernel starts); half of the instants fall in the
     first part, activating to "install: done", the other half anywhere up to 1.5 s after the
     bootloader's line;
  c  the confirmation after the reboot: from the bootloader's line of the new slot's boot: half of the
     instants anywhere up to the daemon's "state: confirming", the other half from there to 0.5 s after
     its "confirmed version" (the health checks, state.json and the boot environment written);
  env (uboot only) a cut while the environment is written, torn: the guest writes the first 4 KiB of
     a changed environment over uboot.env, as a cut in the middle of fw_setenv's in-place write of the
     single copy leaves it (a real kill of qemu almost never tears a 16 KiB write: qemu writes a guest
     request in one go), then the cut. The CRC is bad: U-Boot reads no variables (see
     contrib/uboot/boot.cmd for what it boots then).
The instants are drawn from the seed, the windows are found from upkeepd's journal, which the image
writes to the guest's second serial port (vmdriver's journal stream), and the bootloader's line on the
console. No test hook is used: the image is the one the other scenarios use (a -Dtests=false build).

After each cut: the machine boots (the bootloader's line, the shell), on the slot that ran before the
cut, or on the new slot only when it was bootable there legitimately (confirmed, or on its one try,
which the daemon then confirms); upkeepd is active (`systemctl is-active`), `updatectl status` answers;
then, unless the update got through already, the same update is installed again and must come up
confirmed on the new slot. With --retry-every K only every K-th cut (and the last) retries so; after
the others the next cut's update (a newer version, into the slot that does not run) is the retry, and
it is cut in its turn: a chain of interrupted updates, each started on the machine the previous cut
left, that must end in a confirmed update; a long campaign takes less time so. One line per cut (seed, phase, instant, outcome, seconds) and a summary;
the exit status is 1 when any cut ended unbootable, stuck or with a failed retry.

What a kill loses (qemu runs with a raw copy of the image and cache=unsafe): everything the guest had
only in its memory: the page cache's dirty pages that Linux had not yet written out (data written
without fsync, a rename whose directory was not synced, the journal's last seconds), requests the guest
had not yet handed to virtio. What it does not lose: every write qemu has completed to the guest: qemu
writes it to the image file before it completes the request (raw: no metadata of its own in qemu's
memory), and the host's page cache outlives the killed process. cache=unsafe only spares the host's
fsync on the guest's flushes, which matters for a host crash, not for a killed qemu. So a kill is a
power cut of a disk that writes each request through, without a volatile cache of its own (a disk that
reorders or drops completed but unflushed writes is not simulated; nor is a torn sector: see "env").
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import scenario  # noqa: E402
import vmdriver  # noqa: E402
from scenario import BOOT_WAIT, INSTALL_WAIT, expect, say, status  # noqa: E402

PHASES = ("a", "b", "c")
# A first guess of the windows' lengths (s), until an update that went through measured them.
DEFAULT_WINDOWS = {"install": 15.0, "activate": 2.0, "switch": 25.0, "boot": 25.0, "confirm": 3.0}
J_INSTALL = rb"install: (verifying|checking|preparing|writing)"
J_ACTIVATING = rb"install: activating"
J_DONE = rb"install: done"
J_CONFIRMING = rb"state: confirming"
# upkeepd's start-up confirmation refusing a slot that still holds a rolled-back update (and rebooting).
REFUSED_ROLLED_BACK = re.compile(rb"which was rolled back here .* its boot environment was lost or reset")


def other(slot):
    return "B" if slot == "A" else "A"


class Outcome(Exception):
    """A cut's bad end: unbootable, stuck (the daemon or status does not answer), bad-slot, retry-failed,
    or no-cut (the update never reached the phase's anchor: a question for the harness)."""

    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


class Cutter:
    def __init__(self, vm, fl, tmp, www, base_rootfs, rng, slot, version, first_minor=1):
        self.vm, self.fl, self.tmp, self.www, self.base = vm, fl, tmp, www, base_rootfs
        self.rng = rng
        self.slot, self.version = slot, version
        # The version each slot holds confirmed (None: unknown, or being overwritten).
        self.good = {slot: version, other(slot): None}
        self.minor = first_minor
        self.windows = dict(DEFAULT_WINDOWS)
        self.results = []
        self.boots_after_cut = 0

    # ---- bundles ----
    def bundle(self, version):
        img = scenario.derive_rootfs(self.tmp, self.base, version, {})
        b = scenario.make_bundle(self.tmp, version, img)
        img.unlink()
        shutil.rmtree(self.tmp / f"files-{version}", ignore_errors=True)
        dest = self.www / "b" / b.name
        os.link(b, dest)
        b.unlink()
        shutil.rmtree(self.tmp / f"bundle-{version}", ignore_errors=True)
        return dest, f"{scenario.url(self.fl.name)}/b/{b.name}"

    # ---- a whole update, measured ----
    def update(self, version, url):
        """Installs `version` and waits until it is confirmed on the other slot; measures the windows."""
        vm, fl = self.vm, self.fl
        new = other(self.slot)
        jm, cm = vm.journal_mark(), vm.mark()
        t0 = time.monotonic()
        vm.send(f"updatectl install {url}\n")
        m, t_inst = vm.wait_journal(J_INSTALL, INSTALL_WAIT, jm, "the install's start")
        m, t_act = vm.wait_journal(J_ACTIVATING, INSTALL_WAIT, jm, "the install's activation")
        m, t_done = vm.wait_journal(J_DONE, INSTALL_WAIT, m.end(), "the install's end")
        mk = vm.wait_for(fl.marker, INSTALL_WAIT, cm, f"the reboot after the install of {version}")
        t_marker = time.monotonic()
        line = " ".join(mk.group(0).decode().split())
        if mk.group(1).decode() != new or not fl.booting_try(line, new):
            raise Outcome("retry-failed", f"the bootloader did not boot slot {new} on its try: {line}")
        jm2 = vm.journal_mark()
        m, t_conf = vm.wait_journal(J_CONFIRMING, BOOT_WAIT, jm2, "the confirmation's start")
        m, t_ok = vm.wait_journal(rf"confirmed version {re.escape(version)} on slot {new}".encode(), BOOT_WAIT,
                                  jm2, f"the confirmation of {version}")
        vm.wait_shell(mk.end(), BOOT_WAIT)
        scenario.wait_daemon(vm)
        st = status(vm)
        expect(st["booted_slot"] == new and st["current_version"] == version and st["state"] == "idle",
               f"status after the update to {version}", st)
        env = fl.env(vm)
        expect(fl.confirmed(env, new, self.slot), f"the boot environment after the update to {version}", env)
        self.windows.update(install=t_act - t_inst, activate=t_done - t_act, switch=t_marker - t_act,
                            boot=t_conf - t_marker, confirm=t_ok - t_conf)
        self.slot, self.version = new, version
        self.good[new] = version
        return time.monotonic() - t0

    # ---- one cut ----
    def sleep_until(self, when):
        left = when - time.monotonic()
        if left > 0:
            time.sleep(left)

    def cut_env(self):
        """uboot: the single-copy environment torn as by a cut in fw_setenv's write, then the cut. Its
        variables fit in the first 512 bytes, so a tear at a sector's boundary leaves it whole (old or
        new); a medium that tears inside a sector (flash erased, then written) leaves a bad CRC: here the
        new CRC over the old variables."""
        vm = self.vm
        vm.check("cp /boot/uboot/uboot.env /tmp/new.env && echo '/tmp/new.env 0x0 0x4000' > /tmp/fw.config && "
                 "echo 'upkeep_powercut=1' | fw_setenv -c /tmp/fw.config -s - && "
                 "dd if=/tmp/new.env of=/boot/uboot/uboot.env bs=4 count=1 conv=notrunc,fsync status=none && "
                 "! fw_printenv >/dev/null 2>&1")
        vm.power_cut()
        return 0.0, "a torn uboot.env (the new CRC over the old variables)", "env torn"

    def cut(self, phase, url, version):
        """Starts the update and kills qemu at an instant of `phase`; returns (instant relative to its
        anchor, the anchor, what the guest had reached)."""
        vm, fl, w, rng = self.vm, self.fl, self.windows, self.rng
        new = other(self.slot)
        jm, cm = vm.journal_mark(), vm.mark()
        vm.send(f"updatectl install {url}\n")
        if phase == "a":
            m, t = vm.wait_journal(J_INSTALL, INSTALL_WAIT, jm, "the install's start")
            delay, anchor = rng.uniform(0, w["install"]), "the install's first line"
        elif phase == "b":
            m, t = vm.wait_journal(J_ACTIVATING, INSTALL_WAIT, jm, "the install's activation")
            span = w["activate"] if rng.random() < 0.5 else w["switch"] + 1.5
            delay, anchor = rng.uniform(0, span), "install: activating"
        else:
            vm.wait_for(fl.marker, INSTALL_WAIT, cm, f"the reboot after the install of {version}")
            t = time.monotonic()
            if rng.random() < 0.5:
                delay, anchor = rng.uniform(0, w["boot"]), "the bootloader's line"
            else:
                m, t = vm.wait_journal(J_CONFIRMING, BOOT_WAIT, jm, "the confirmation's start")
                delay, anchor = rng.uniform(0, w["confirm"] + 0.5), "state: confirming"
        self.sleep_until(t + delay)
        vm.power_cut()
        # What the guest had reached, from the streams up to the cut.
        reached = self.reached(jm, cm, version, new)
        return delay, anchor, reached

    def reached(self, jm, cm, version, new):
        vm = self.vm
        j = vm.jbuf[jm:]
        c = vm.buf[cm:]
        if re.search(rf"confirmed version {re.escape(version)}".encode(), j):
            return "confirmed"
        if self.fl.marker.search(c):
            return "rebooted" + (", confirming" if re.search(J_CONFIRMING, j) else "")
        for what, rx in (("install done", J_DONE), ("activating", J_ACTIVATING), ("installing", J_INSTALL)):
            if re.search(rx, j):
                return what
        return "before the install"

    def after_cut(self, version, reached):
        """The boot after the cut: a good slot, the daemon, status. Returns (slot, version, st)."""
        vm, fl = self.vm, self.fl
        new = other(self.slot)
        cm, jm = vm.mark(), vm.journal_mark()
        vm.start()
        since = cm
        for attempt in (1, 2):
            try:
                mk = vm.wait_for(fl.marker, BOOT_WAIT, since, "the bootloader's line after the cut")
                vm.wait_shell(mk.end(), BOOT_WAIT)
            except vmdriver.VMError as e:
                raise Outcome("unbootable", str(e))
            # The system that came up is the one of the last bootloader line: a slot that does not start
            # (its kernel panics) sends the machine back to the bootloader, which picks again.
            boots = list(fl.marker.finditer(vm.buf, cm))
            mk = boots[-1]
            slot = mk.group(1).decode()
            line = " ".join(mk.group(0).decode().split())
            self.boots_after_cut = len(boots)
            try:
                scenario.wait_daemon(vm)
                st = status(vm)
            except vmdriver.VMError as e:
                st, err = None, e
            # A slot that still holds a rolled-back update, started because the boot environment was
            # lost (a torn U-Boot environment): the daemon refuses it and reboots to the other slot.
            vm.journal_mark()  # reads what the journal stream has so far
            # Wait for the boot after the refusal, unless it came already (the shell came up only on it:
            # then the last bootloader line is that boot's, and waiting for another would wait in vain).
            if attempt == 1 and len(boots) == 1 and REFUSED_ROLLED_BACK.search(vm.jbuf, jm):
                since = mk.end()
                continue
            break
        # The slot that ran, the new one once confirmed or on its try, or one holding a version that was
        # confirmed there and not overwritten since.
        # (The boot environment's confirmation comes before the daemon's "confirmed" line: a cut between the
        # two boots the new slot as confirmed, which its line shows.)
        if slot == new and not (reached.startswith("confirmed") or fl.booting_try(line, new)
                                or fl.confirmed_line(line, new) or self.good[new]):
            raise Outcome("bad-slot", f"booted slot {new}, which was neither confirmed nor on a try: {line}")
        if slot not in (new, self.slot):
            raise Outcome("bad-slot", f"booted {slot!r}: {line}")
        if st is None:
            raise Outcome("stuck", f"the daemon or updatectl status: {err}")
        if st["booted_slot"] != slot:
            raise Outcome("stuck", f"status names slot {st['booted_slot']}, the bootloader booted {slot}")
        return slot, st

    def one(self, i, phase, seed, retry=True):
        """Cut `i`: an update cut in `phase`, the boot after it and (retry) the update again until it is
        confirmed. Returns its result (a dict); raises nothing for a bad outcome."""
        t0 = time.monotonic()
        version = f"2.{self.minor}.0"
        self.minor += 1
        path, url = self.bundle(version)
        before = (self.slot, self.version)
        outcome, detail = "ok", ""
        delay, anchor, reached = 0.0, "?", "?"
        try:
            try:
                if phase == "env":
                    delay, anchor, reached = self.cut_env()
                else:
                    self.good[other(self.slot)] = None  # the install overwrites it
                    delay, anchor, reached = self.cut(phase, url, version)
            except vmdriver.VMError as e:
                # The update did not reach the phase's anchor in time: no cut was made, and the machine's
                # state is the harness's question, not the device's answer.
                raise Outcome("no-cut", f"before the cut: {e}")
            slot, st = self.after_cut(version, reached)
            got = st["current_version"]
            if self.good[slot] not in (None, got) and got != version:
                raise Outcome("bad-slot", f"slot {slot} runs {got}, not {self.good[slot]} confirmed there")
            self.slot, self.version = slot, got
            if got == version or self.good[slot] is None:
                self.good[slot] = got
            up = f"up on {slot} ({got}, {st['state']})" + (
                f" after {self.boots_after_cut} boots" if self.boots_after_cut > 1 else "")
            if got != version and not retry:
                retry = f"{version} not through (the next update retries)"
            elif got != version:
                try:
                    self.update(version, url)
                    retry = f"retried update of {version} confirmed on {self.slot}"
                except (AssertionError, vmdriver.VMError) as e:
                    raise Outcome("retry-failed", str(e))
            else:
                retry = f"{version} had got through"
        except Outcome as e:
            outcome, detail = e.kind, str(e)
        path.unlink(missing_ok=True)
        secs = time.monotonic() - t0
        res = {"cut": i, "seed": seed, "phase": phase, "instant": round(delay, 2), "anchor": anchor,
               "reached": reached, "outcome": outcome, "before": before, "after": (self.slot, self.version),
               "boots": self.boots_after_cut, "seconds": round(secs)}
        self.results.append(res)
        if outcome == "ok":
            say(f"cut {i}: seed {seed} phase {phase} at {delay:.2f} s after {anchor} (reached: {reached}): "
                f"{up}; {retry}; {secs:.0f} s")
        else:
            say(f"cut {i}: seed {seed} phase {phase} at {delay:.2f} s after {anchor} (reached: {reached}): "
                f"{outcome.upper()}: {detail}; {secs:.0f} s")
        return res


def summary(results):
    lines = []
    by = {}
    for r in results:
        by.setdefault(r["phase"], []).append(r)
    for phase, rs in sorted(by.items()):
        outs = {}
        for r in rs:
            outs[r["outcome"]] = outs.get(r["outcome"], 0) + 1
        reached = {}
        for r in rs:
            reached[r["reached"]] = reached.get(r["reached"], 0) + 1
        secs = sum(r["seconds"] for r in rs) / len(rs)
        lines.append(f"phase {phase}: {len(rs)} cuts, outcomes {outs}, reached {reached}, {secs:.0f} s per cut")
    multi = [r for r in results if r.get("boots", 1) > 1]
    if multi:
        lines.append(f"{len(multi)} cuts needed more than one boot to come up (a slot that did not start, then "
                     f"the bootloader's next choice): cuts {', '.join(str(r['cut']) for r in multi)}")
    bad = [r for r in results if r["outcome"] != "ok"]
    lines.append(f"total: {len(results)} cuts, {len(results) - len(bad)} ok, {len(bad)} bad "
                 f"({', '.join(sorted(set(r['outcome'] for r in bad))) or 'none'})")
    return lines


def plan(rng, n, phases):
    """The phases of n cuts: each phase in turn, in an order drawn from the seed."""
    order = list(phases)
    rng.shuffle(order)
    return [order[i % len(order)] for i in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cuts", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flavour", choices=sorted(scenario.FLAVOURS), default="grub")
    ap.add_argument("--phases", default=None, help="comma-separated, of a, b, c and (uboot) env; default all")
    ap.add_argument("--retry-every", type=int, default=1, metavar="K",
                    help="after a cut that the update did not get through, install it again until it is "
                         "confirmed only on every K-th cut; the other cuts go on with the next update, which "
                         "is then the retry, cut at its own instant (default 1: every cut)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    phases = a.phases.split(",") if a.phases else list(PHASES) + (["env"] if a.flavour == "uboot" else [])
    for p in phases:
        if p not in PHASES + ("env",) or (p == "env" and a.flavour != "uboot"):
            raise SystemExit(f"powercut: unknown phase {p!r} for {a.flavour}")
    for var in ("UPDATECTL", "UPKEEP_TEST_PKI"):
        if var not in os.environ:
            raise SystemExit(f"powercut: {var} is not set (a build's updatectl and tests/pki, as meson sets "
                             "for the vm suite)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("powercut: terminated"))
    why = vmdriver.qemu_available()
    if why:
        raise SystemExit(f"powercut: qemu cannot run: {why}")
    fl = scenario.FLAVOURS[a.flavour]
    image = scenario.build_image(a.flavour)
    accel = "kvm" if vmdriver.kvm_works(image.get("kernel")) else "tcg"
    tmp = Path(tempfile.mkdtemp(prefix=f"upkeep-powercut-{a.flavour}-", dir="/var/tmp"))
    say(f"work folder: {tmp}; seed {a.seed}, {a.cuts} cuts, phases {','.join(phases)}, {accel}")
    rng = random.Random(a.seed)
    server = vm = None
    results = []
    ok = False
    try:
        disk = scenario.copy_disk(image, tmp)
        www = tmp / "www"
        (www / "b").mkdir(parents=True)
        server = scenario.serve(www, a.flavour)
        vm = vmdriver.VM(disk, tmp / "console.log", accel=accel, flavour=a.flavour, disk_format="raw")
        vm.start()
        mk = vm.wait_for(fl.marker, BOOT_WAIT, 0, f"the {fl.name} marker line")
        vm.wait_shell(mk.end(), BOOT_WAIT)
        scenario.wait_daemon(vm)
        st = status(vm)
        cutter = Cutter(vm, fl, tmp, www, image["rootfs_1_1_0"], rng, st["booted_slot"], st["current_version"])
        # The windows, measured on one update that goes through.
        path, url = cutter.bundle("2.0.0")
        secs = cutter.update("2.0.0", url)
        path.unlink()
        say(f"first update (2.0.0, measures the windows) {secs:.0f} s: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in cutter.windows.items()))
        results = cutter.results  # filled cut by cut: a terminated campaign still sums up what it did
        for i, phase in enumerate(plan(rng, a.cuts, phases), 1):
            r = cutter.one(i, phase, a.seed, retry=i % max(1, a.retry_every) == 0 or i == a.cuts)
            if r["outcome"] != "ok":
                break  # the machine's state is unknown
        ok = all(r["outcome"] == "ok" for r in results) and len(results) == a.cuts
    finally:
        if vm:
            vm.close()
        if server:
            server.stop()
        for line in summary(results):
            say(line)
        say(f"total {time.monotonic() - scenario.T0:.0f} s")
        if ok and not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            say(f"console log: {tmp / 'console.log'}; the daemon's journal: {tmp / 'console.log.ttyS1'}")
    print(json.dumps(results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
