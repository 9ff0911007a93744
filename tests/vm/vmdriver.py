# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs a qemu guest with its serial console on a pipe: waits for markers in the console output, runs
shell commands in the guest (the root shell of getty's autologin on ttyS0) and kills qemu, with its
whole process group, on close().

With GRUB, one qemu process lives through the guest's reboots (qemu resets the machine itself on
`systemctl reboot`). qemu's x86 U-Boot can hang after such a warm reset, so with U-Boot qemu runs with
-no-reboot and the driver starts it again on the same disk whenever the guest resets (a reboot, or a
kernel panic's panic=5): every boot is a cold one, and the bootloader's state is on the disk. Either way
a test sees one console stream and waits for the next bootloader marker. A guest that powers off ends
qemu for good. Every console byte also goes to a log file.

The guest's second serial port (ttyS1) goes to a file of its own, which the driver follows as a second
stream (journal()/wait_journal()): mkimage.py's image writes upkeepd's journal there, so that a test
sees where the daemon is (the install's phases, the confirmation) without mixing it into the shell's
output. power_cut() kills qemu at once (SIGKILL: the guest loses what it had not written to its disk;
see powercut.py for what survives), and start() boots the same disk again.
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

QEMU = "qemu-system-x86_64"
UBOOT_ROM = "/usr/lib/u-boot/qemu-x86/u-boot.rom"
PROMPT = re.compile(rb"root@upkeep-vm:[^\r\n]*# ")


class VMError(Exception):
    pass


def qemu_available():
    """None when qemu can run, else why not."""
    for tool in (QEMU, "qemu-img"):
        if not shutil.which(tool):
            return f"{tool} is not installed (Debian: qemu-system-x86, qemu-utils)"
    try:
        p = subprocess.run([QEMU, "-accel", "tcg", "-machine", "pc", "-display", "none", "-monitor", "none",
                            "-serial", "none", "-S", "-no-reboot", "-nodefaults", "-version"],
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{QEMU} does not run: {e}"
    if p.returncode != 0:
        return f"{QEMU} -version failed: {p.stderr.decode(errors='replace').strip()}"
    return None


def kvm_works(kernel):
    """True when a KVM guest really boots the kernel to its root-mount panic (a /dev/kvm that cannot run
    a stock kernel, such as kvm_pvm, does not)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) or not kernel:
        return False
    args = [QEMU, "-accel", "kvm", "-machine", "pc", "-m", "256", "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot", "-nodefaults", "-kernel", kernel,
            "-append", "console=ttyS0 panic=-1"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    out = b""
    found = threading.Event()

    def reader():
        nonlocal out
        for chunk in iter(lambda: p.stdout.read1(4096), b""):
            out += chunk
            if b"Kernel panic" in out or b"VFS:" in out:
                found.set()
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    # A probe, not an assertion: a KVM guest gets there in a few seconds; when not, TCG is used.
    found.wait(45)
    _kill(p)
    return found.is_set()


def _kill(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


class VM:
    def __init__(self, disk, log_path, accel="tcg", memory=1024, extra=(), flavour="grub", disk_format="qcow2",
                 smp=None):
        """flavour: the image's bootloader, "grub" (SeaBIOS boots the disk) or "uboot" (U-Boot's
        qemu-x86 ROM as the firmware; cold restarts, see above). disk_format: "qcow2" (an overlay) or
        "raw" (a copy: what a power cut keeps is then exactly what the guest had written, see
        powercut.py). smp: the guest's CPUs (default: $UPKEEP_VM_SMP, else 2; the vm suite, whose two
        machines run at once on the CI's 2 cores, gives each one)."""
        smp = smp or int(os.environ.get("UPKEEP_VM_SMP", "2"))
        self.disk, self.log_path, self.accel = disk, log_path, accel
        self.cold_reboots = flavour == "uboot"
        self.journal_path = Path(str(log_path) + ".ttyS1")
        firmware = ["-bios", UBOOT_ROM, "-no-reboot"] if self.cold_reboots else []
        # cache=unsafe: qemu ignores the guest's flushes, but writes what the guest wrote to the file at
        # once (raw: no metadata of its own in qemu's memory); a killed qemu loses only guest memory.
        self.args = [QEMU, "-accel", accel, "-machine", "pc", "-m", str(memory), "-smp", str(smp),
                     "-display", "none", "-monitor", "none", "-serial", "stdio",
                     "-serial", f"file:{self.journal_path}", "-nodefaults", *firmware,
                     "-drive", f"file={disk},format={disk_format},if=virtio,cache=unsafe",
                     "-nic", "user,model=virtio-net-pci", *extra]
        self.jbuf = b""
        self.buf = b""
        self.cond = threading.Condition()
        self.proc = None
        self.log = None
        self.closing = False
        self.ended = False
        self.restarts = 0
        self.shell_set_up = False

    def _spawn(self):
        # qemu truncates the file at each start: keep what the earlier boots wrote.
        self._journal_poll()
        self.journal_offset = 0
        return subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def start(self):
        self.log = open(self.log_path, "ab")
        self.closing = self.ended = False
        self.journal_offset = 0
        self.proc = self._spawn()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _journal_poll(self):
        """Appends what qemu wrote to the ttyS1 file since the last poll to jbuf (under self.cond or
        from the reader thread's spawn)."""
        try:
            with open(self.journal_path, "rb") as f:
                f.seek(getattr(self, "journal_offset", 0))
                data = f.read()
        except FileNotFoundError:
            return
        if data:
            self.journal_offset += len(data)
            self.jbuf += data

    def journal_mark(self):
        with self.cond:
            self._journal_poll()
            return len(self.jbuf)

    def wait_journal(self, pattern, timeout, since=0, what=None):
        """Waits until `pattern` (bytes regex) appears in the ttyS1 stream (upkeepd's journal) from
        offset `since`; returns (match, the monotonic time it was seen: within 0.05 s). Raises VMError on
        timeout or when qemu ends."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            with self.cond:
                self._journal_poll()
                m = rx.search(self.jbuf, since)
                if m:
                    return m, time.monotonic()
                if self.proc is None or self.ended:
                    raise VMError(f"qemu ended while waiting for {what or rx.pattern!r} in the daemon's journal")
            if time.monotonic() > deadline:
                raise VMError(f"no {what or rx.pattern!r} in the daemon's journal within {timeout} s "
                              f"({self.journal_path})")
            time.sleep(0.05)

    def power_cut(self):
        """Kills qemu now (SIGKILL, no restart); start() boots the disk again."""
        with self.cond:
            self.closing = True
            proc = self.proc
        _kill(proc)
        self.reader.join(10)
        with self.cond:
            self._journal_poll()
            self.proc = None
        self.log.write(b"\n[vmdriver: power cut: qemu killed]\n")
        self.log.close()
        self.log = None

    def _read(self):
        proc = self.proc
        while True:
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                self.log.write(chunk)
                self.log.flush()
                with self.cond:
                    self.buf += chunk
                    self.cond.notify_all()
            with self.cond:
                status = proc.wait()
                # -no-reboot: qemu exited 0 because the guest reset (not when it powered off, which
                # the kernel announces): the next boot is a new qemu on the same disk.
                powered_off = b"reboot: Power down" in self.buf[-4096:]
                if self.closing or not self.cold_reboots or status != 0 or powered_off:
                    self.ended = True
                    self.cond.notify_all()
                    return
                self.restarts += 1
                self.log.write(f"\n[vmdriver: the guest reset; qemu started again, cold boot {self.restarts}]\n"
                               .encode())
                self.log.flush()
                self.proc = proc = self._spawn()
                self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closing = True
            proc = self.proc
        if proc:
            _kill(proc)
            self.reader.join(10)
            # No restart after closing was set (the reader decides under the same lock).
            self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def mark(self):
        with self.cond:
            return len(self.buf)

    def wait_for(self, pattern, timeout, since=0, what=None):
        """Waits until `pattern` (bytes regex) appears in the console output from offset `since`;
        returns the match. Raises VMError on timeout or when qemu ends."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search(self.buf, since)
                if m:
                    return m
                if self.proc is None or self.ended:
                    raise VMError(f"qemu ended while waiting for {what or rx.pattern!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise VMError(f"no {what or rx.pattern!r} on the console within {timeout} s "
                                  f"(console log: {self.log_path})")
                self.cond.wait(min(left, 5))

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait_shell(self, since, timeout=300):
        """Waits for the autologin shell prompt after offset `since` and sets the shell up for run()."""
        self.wait_for(PROMPT, timeout, since, "the root shell prompt")
        self.shell_set_up = False
        self.run("stty -echo cols 250; bind 'set enable-bracketed-paste off' 2>/dev/null; "
                 "export PAGER=cat SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 TERM=dumb; PS1= PS2=", timeout=timeout)
        self.shell_set_up = True

    def run(self, cmd, timeout=120):
        """Runs `cmd` in the guest's shell; returns (exit status, output text)."""
        tok = secrets.token_hex(6)
        since = self.mark()
        # The quotes keep the typed (echoed) line from matching the markers.
        self.send(f"echo \"UPK{tok}\"B; {cmd}\necho \"UPK{tok}\"E $?\n")
        m = self.wait_for(re.compile(rf"UPK{tok}B\r?\n(.*?)UPK{tok}E (\d+)\r?\n".encode(), re.S), timeout, since,
                          f"the end of {cmd!r}")
        out = m.group(1).decode(errors="replace").replace("\r\n", "\n")
        return int(m.group(2)), out

    def check(self, cmd, timeout=120):
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise VMError(f"{cmd!r} exited {rc} in the guest:\n{out}")
        return out
