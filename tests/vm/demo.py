#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""tools/demo --vm: the demo's story on a real boot. A Debian 12 machine in qemu (mkimage.py's GRUB image:
SeaBIOS, GRUB with contrib/grub/upkeep.cfg, root A with 1.0.0, an empty root B, a data partition) starts
upkeepd from its installed unit; the daemon finds 1.1.0 in a TUF repository served from this machine
(127.0.0.1:8471, 10.0.2.2 in the guest), installs it into slot B, reboots the machine itself; GRUB tries
B once, the daemon's health checks pass on B and it confirms B. The console lines that matter are shown
as they come (`updatectl monitor` and upkeepd's log run on the guest's serial console).

    demo.py [--keep]

--keep: leave the work folder (console log, overlay disk) behind. Environment: UPDATECTL and
UPKEEP_TEST_PKI (a build's updatectl and test PKI: tools/demo --vm sets them), UPKEEP_SOURCE_ROOT,
UPKEEP_VM_CACHE (default /var/tmp/upkeep-vm-cache). qemu and the server are stopped on every path.
Exit status 0 when 1.1.0 runs confirmed on slot B, 1 otherwise.
"""

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
sys.path.insert(0, str(HERE))

import scenario as sc  # noqa: E402
import vmdriver  # noqa: E402
from tufrepo import Repo  # noqa: E402
from vmtuf import load_keys  # noqa: E402

BOLD, PLAIN = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
T0 = time.monotonic()
step = 0


def heading(text):
    global step
    step += 1
    print(f"\n{BOLD}== {step}. {text}{PLAIN}  [{time.monotonic() - T0:.0f} s]", flush=True)


def show(text, prefix="   "):
    for line in text.rstrip("\n").splitlines():
        print(prefix + line, flush=True)


class Fail(Exception):
    pass


# What of the console is worth showing while the update runs: updatectl monitor's changes (the progress in
# steps of 10 %), upkeepd's own log lines and systemd's reboot.
MONITOR = re.compile(r"(State|Phase|AvailableVersion|Progress)=|Finished|upkeepd\[\d+\]|reboot", re.I)
PROGRESS = re.compile(r"Progress=(\d+)/(\d+)")


def follow_until(vm, since, until, timeout):
    """Prints the console's interesting lines from offset `since` until the regex `until` matches; returns
    its match."""
    deadline = time.monotonic() + timeout
    pos, decile = since, -1
    while True:
        with vm.cond:
            vm.cond.wait(0.5)
            buf = vm.buf
        m = until.search(buf, since)
        end = buf.rfind(b"\n", pos, m.start() if m else len(buf))
        if end >= pos:
            for raw in buf[pos:end].split(b"\n"):
                line = raw.decode(errors="replace").strip("\r\n\x1b")
                line = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", line).strip()
                if not line or not MONITOR.search(line):
                    continue
                p = PROGRESS.search(line)
                if p:
                    if int(p.group(2)) == 0 or int(p.group(1)) * 10 // int(p.group(2)) == decile:
                        continue
                    decile = int(p.group(1)) * 10 // int(p.group(2))
                show(line, "   | ")
            pos = end + 1
        if m:
            return m
        if vm.ended or time.monotonic() > deadline:
            raise Fail(f"no {until.pattern!r} on the console within {timeout} s")


def expect(cond, what, *context):
    if not cond:
        raise Fail(what + "".join(f"\n{c}" for c in context))


def run(keep):
    fl = sc.Grub
    why = vmdriver.qemu_available()
    if why:
        raise Fail(f"the demo on a real boot needs qemu: {why}")

    heading("The machine's image: Debian 12 with systemd, dbus, polkit, GRUB and upkeep installed by meson")
    show("(built once with mmdebstrap from this machine's apt sources and cached in "
         f"{os.environ.get('UPKEEP_VM_CACHE', '/var/tmp/upkeep-vm-cache')}: the first time takes a few minutes)")
    image = sc.build_image("grub")
    show(f"disk: {image['disk']}")
    accel = "kvm" if vmdriver.kvm_works(image.get("kernel")) else "tcg"
    show(f"qemu accelerator: {accel}" + (" (no usable KVM here: every instruction is emulated, it is slow)"
                                          if accel == "tcg" else ""))

    tmp = Path(tempfile.mkdtemp(prefix="upkeep-demo-vm-", dir="/var/tmp"))
    server = vm = None
    ok = False
    try:
        heading("A signed bundle of 1.1.0 (the same root file system, version 1.1.0) and a TUF repository")
        www = tmp / "www"
        (www / "b").mkdir(parents=True)
        bundle = sc.make_bundle(tmp, "1.1.0", image["rootfs_1_1_0"])
        out = subprocess.run([os.environ["UPDATECTL"], "bundle", "info", bundle], capture_output=True, text=True)
        show("\n".join(out.stdout.splitlines()[:8]))
        repo = Repo()
        load_keys(repo, image["tuf_keys"])
        repo.targets[bundle.name] = (bundle.read_bytes(), {"compatible": sc.COMPATIBLE, "version": "1.1.0"})
        repo.publish(www)
        server = sc.serve(www, "grub")
        show(f"served on 127.0.0.1:{sc.PORTS['grub']}, which the guest reaches as {sc.url('grub')}")

        heading("The machine boots: SeaBIOS, GRUB (contrib/grub/upkeep.cfg picks the slot), slot A")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", image["disk"], "-F", "raw",
                        str(tmp / "disk.qcow2")], check=True)
        vm = vmdriver.VM(tmp / "disk.qcow2", tmp / "console.log", accel=accel, flavour="grub")
        vm.start()
        m = vm.wait_for(fl.marker, sc.BOOT_WAIT, 0, "GRUB's line")
        show(" ".join(m.group(0).decode().split()), "   grub| ")
        vm.wait_shell(m.end(), sc.BOOT_WAIT)
        sc.wait_daemon(vm)
        show(sc.boot_times(vm))
        show(vm.check("systemctl status upkeepd --no-pager --lines=0 | head -n 3"))
        show(vm.check("updatectl status"))

        heading("updatectl check: the daemon finds 1.1.0, installs it into slot B and reboots the machine")
        mark = vm.mark()
        # The daemon reboots the machine after the install: the shell goes with it, so no vm.run() here.
        vm.send("updatectl check; updatectl monitor\n")
        m = follow_until(vm, mark, fl.marker, sc.INSTALL_WAIT)
        line = " ".join(m.group(0).decode().split())
        show(line, "   grub| ")
        expect(m.group(1) == b"B" and fl.booting_try(line, "B"), "GRUB did not try slot B after the install", line)

        heading("The new system on slot B: the daemon runs its health checks and confirms B")
        vm.wait_shell(m.end(), sc.BOOT_WAIT)
        sc.wait_daemon(vm)
        show(sc.boot_times(vm))
        show(vm.check("journalctl -b -u upkeepd --no-pager -o cat | grep -Ei 'health|confirm' | tail -n 5"))
        show(vm.check("updatectl history"))
        heading("Final status")
        show(vm.check("updatectl status"))
        env = fl.env(vm)
        show("grubenv: " + " ".join(f"{k}={v}" for k, v in env.items()))
        st = sc.status(vm)
        expect(st["booted_slot"] == "B" and st["current_version"] == "1.1.0" and st["state"] == "idle"
               and st["last_error"] == "", "1.1.0 does not run confirmed on slot B", st)
        expect(fl.confirmed(env, "B", "A"), "the boot environment does not hold B confirmed and first", env)
        expect(vm.check("cat /etc/upkeep/version").strip() == "1.1.0", "the running root is not 1.1.0")
        ok = True
        print(f"\n{BOLD}Demo on a real boot complete: version 1.1.0 runs on slot B, confirmed, in "
              f"{time.monotonic() - T0:.0f} s.{PLAIN}", flush=True)
    finally:
        if vm:
            vm.close()
        if server:
            server.stop()
        if ok and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"demo: the work folder stays: {tmp} (console.log has the whole console)", file=sys.stderr)


def main():
    keep = "--keep" in sys.argv[1:]
    unknown = [a for a in sys.argv[1:] if a != "--keep"]
    if unknown:
        sys.exit(f"demo.py: unknown argument {unknown[0]!r} (known: --keep)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("demo: terminated"))
    try:
        run(keep)
    except (Fail, vmdriver.VMError, subprocess.CalledProcessError) as e:
        print(f"demo: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
