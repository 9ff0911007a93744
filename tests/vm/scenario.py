#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""One VM scenario of upkeep on a real boot (meson suite vm), on a qcow2 overlay of mkimage.py's image:

    scenario.py update-grub

update-grub: upkeepd, started by systemd from its installed unit on slot A (1.0.0), polls the TUF
repository this script serves on 127.0.0.1:8471 (10.0.2.2 in the guest), installs 1.1.0 into slot B and
reboots the machine itself; GRUB boots B, the daemon runs the health checks and confirms B; `updatectl
status` on B says 1.1.0 on B with no error, and the grubenv holds B confirmed and first.

Environment: UPDATECTL (to make the bundle), UPKEEP_TEST_PKI (its signer; the keyring goes into the
image), UPKEEP_SOURCE_ROOT, UPKEEP_VM_CACHE (default /var/tmp/upkeep-vm-cache). Exits 77 (skipped) only
when qemu cannot run. qemu and the server are stopped on every path; the console log stays in the
temporary folder printed at the start when the scenario fails.
"""

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
PORT = 8471
COMPATIBLE = "upkeep-vm"


def say(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


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
                    "--compression", "zstd", "--zstd-level", "3", "-o", out], check=True)
    return out


def status(vm):
    out = vm.check("updatectl status --json > /tmp/st.json; echo \"ST:$(base64 -w0 /tmp/st.json)\"")
    for line in out.splitlines():
        if line.startswith("ST:"):
            import base64
            return json.loads(base64.b64decode(line[3:]))
    raise vmdriver.VMError(f"no status in {out!r}")


def grubenv(vm):
    out = vm.check("grub-editenv /boot/grub/grubenv list")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith(" "))


def wait_daemon(vm):
    """Until upkeepd has finished its start (READY=1 comes after the boot-time confirmation)."""
    vm.check("for i in $(seq 600); do systemctl is-active -q upkeepd && break; sleep 1; done; "
             "systemctl is-active upkeepd", timeout=BOOT_WAIT + 60)


def expect(cond, what, *context):
    if not cond:
        raise AssertionError(what + "".join(f"\n{c}" for c in context))


def scenario_update_grub(vm, tmp, image):
    t0 = time.monotonic()
    vm.start()
    vm.wait_for(rb"UPKEEP-GRUB slot=A", BOOT_WAIT, 0, "GRUB's marker for slot A")
    vm.wait_shell(0, BOOT_WAIT)
    say(f"up on slot A after {time.monotonic() - t0:.0f} s")
    wait_daemon(vm)
    st = status(vm)
    expect(st["booted_slot"] == "A" and st["current_version"] == "1.0.0", "before the update", st)

    # The daemon finds 1.1.0 by itself (first check 10-60 s after its start), installs it and reboots.
    mark = vm.mark()
    # GRUB wraps its line at 80 columns.
    m = vm.wait_for(re.compile(rb"UPKEEP-GRUB slot=(\w*) .*?B_PENDING=\w*", re.S), INSTALL_WAIT, mark,
                    "the reboot after the install")
    line = " ".join(m.group(0).decode().split())
    say(f"rebooted after {time.monotonic() - t0:.0f} s: {line}")
    expect(m.group(1) == b"B", "GRUB did not boot slot B after the install", line)
    expect("B_PENDING=1" in line and "B_OK=1" in line, "the grubenv at the reboot", line)
    vm.wait_shell(m.end(), BOOT_WAIT)
    wait_daemon(vm)
    say(f"up on slot B after {time.monotonic() - t0:.0f} s")
    expect(vm.check("cat /proc/cmdline").find("upkeep.slot=B") >= 0, "kernel command line")
    expect(vm.check("cat /etc/upkeep/version").strip() == "1.1.0", "the running root is not 1.1.0")
    st = status(vm)
    expect(st["booted_slot"] == "B" and st["current_version"] == "1.1.0" and st["state"] == "idle"
           and st["last_error"] == "", "status on B", st)
    env = grubenv(vm)
    expect(env.get("ORDER") == "B A" and env.get("B_OK") == "1" and env.get("B_TRY") == "0"
           and env.get("B_PENDING") == "0", "the grubenv after the confirmation", env)
    text = vm.check("updatectl status")
    say("updatectl status on B:\n" + text)
    hist = vm.check("updatectl history")
    expect("1.1.0" in hist, "history on B", hist)
    say(f"scenario done after {time.monotonic() - t0:.0f} s")


SCENARIOS = {"update-grub": scenario_update_grub}


def main():
    name = sys.argv[1]
    # meson's timeout sends SIGTERM: end through the finally blocks that stop qemu and the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("scenario: terminated"))
    why = vmdriver.qemu_available()
    if why:
        print(f"SKIP: the VM tests need qemu: {why}")
        return 77
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/python3", str(HERE / "mkimage.py"), "--source", str(SOURCE), "--keyring",
                        str(Path(os.environ["UPKEEP_TEST_PKI"]) / "keyring.pem"), "--cache",
                        os.environ.get("UPKEEP_VM_CACHE", "/var/tmp/upkeep-vm-cache")],
                       stdout=subprocess.PIPE, text=True, check=True)
    image = json.loads(p.stdout.strip().splitlines()[-1])
    say(f"image ready after {time.monotonic() - t:.0f} s: {image['disk']}")
    accel = "kvm" if vmdriver.kvm_works(image.get("kernel")) else "tcg"
    say(f"accelerator: {accel}")

    tmp = Path(tempfile.mkdtemp(prefix=f"upkeep-vm-{name}-", dir="/var/tmp"))
    say(f"work folder: {tmp}")
    ok = False
    server = vm = None
    try:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", image["disk"], "-F", "raw",
                        str(tmp / "disk.qcow2")], check=True)
        bundle = make_bundle(tmp, "1.1.0", image["rootfs_1_1_0"])
        repo = Repo()
        load_keys(repo, image["tuf_keys"])
        repo.targets[bundle.name] = (bundle.read_bytes(), {"compatible": COMPATIBLE, "version": "1.1.0"})
        www = tmp / "www"
        www.mkdir()
        repo.publish(www)
        try:
            server = TestServer(www, port=PORT).start()
        except OSError as e:
            raise SystemExit(f"scenario: cannot serve the TUF repository on 127.0.0.1:{PORT}: {e}")
        vm = vmdriver.VM(tmp / "disk.qcow2", tmp / "console.log", accel=accel)
        SCENARIOS[name](vm, tmp, image)
        ok = True
    finally:
        if vm:
            vm.close()
        if server:
            server.stop()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log = tmp / "console.log"
            if log.exists():
                tail = log.read_bytes()[-6000:].decode(errors="replace")
                print(f"--- last console output ({log}):\n{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
