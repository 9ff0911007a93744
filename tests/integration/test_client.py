# SPDX-License-Identifier: LGPL-2.1-or-later
"""updatectl's daemon commands against the real upkeepd on a private system bus (dbus-daemon): status,
install with its progress (plain lines and the terminal bar), exit statuses of rejections, cancel, access
control for an unprivileged caller, history, slots, support, monitor, enable/disable, postpone, and a
daemon that is not running."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from device import BOOTSIM, PKI, UPDATECTL, UPKEEPD, Device, payload_bytes

NOBODY = 65534
TIMEOUT = 60

EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_ACCESS = 4
EXIT_SIGNATURE = 10
EXIT_COMPATIBLE = 11
EXIT_DOWNGRADE = 12

DENIED = ("updatectl: permission denied: updates can only be managed by root or with the polkit action "
          "io.upkeep.manage")
NOT_RUNNING = "updatectl: the update daemon is not running (nothing owns io.upkeep.Update1 on the system bus)"
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def describe(p):
    args = p.args if isinstance(p.args, str) else " ".join(str(a) for a in p.args)
    return f"command: {args}\nexit status: {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


class Bus:
    """A private dbus-daemon playing the system bus, its socket reachable by every user (the tests run
    updatectl as nobody too)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="upkeep-bus-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.socket = self.dir / "system_bus_socket"
        conf = self.dir / "bus.conf"
        conf.write_text(BUS_CONF.format(socket=self.socket))
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file", str(conf), "--nofork", "--print-address=1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("unix:"), f"dbus-daemon did not start: {line!r}"
        self.address = f"unix:path={self.socket}"
        os.chmod(self.socket, 0o777)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Daemon:
    """upkeepd serving a Device on a Bus; updatectl runs against it."""

    def __init__(self, device: Device, bus: Bus, log: Path):
        self.device = device
        self.bus = bus
        self.log = log
        self.proc = None

    def env(self):
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        env.pop("UPKEEP_TEST_CRASH_AT", None)
        return env

    def start(self):
        assert self.proc is None
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([UPKEEPD, "--config", str(self.device.conf)], env=self.env(),
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"upkeepd exited with {self.proc.returncode}:\n{self.log_text()}"
            if self.ctl("status").returncode == 0:
                state = self.status()["state"]
                if state not in ("confirming", ""):
                    return
            time.sleep(0.05)
        raise AssertionError("upkeepd did not come up on the bus:\n" + self.log_text())

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def argv(self, *args, user=None):
        argv = [UPDATECTL] + [str(a) for a in args]
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + argv
        return argv

    def ctl(self, *args, user=None, cwd=None, timeout=TIMEOUT):
        return subprocess.run(self.argv(*args, user=user), capture_output=True, text=True, env=self.env(),
                              cwd=cwd, timeout=timeout)

    def popen(self, *args, user=None, cwd=None):
        return subprocess.Popen(self.argv(*args, user=user), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env(), cwd=cwd)

    def ok(self, *args, **kw):
        p = self.ctl(*args, **kw)
        assert p.returncode == 0, describe(p)
        return p

    def status(self):
        return json.loads(self.ok("status", "--json").stdout)

    def wait_state(self, *states, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if s["state"] in states:
                return s
            time.sleep(0.05)
        raise AssertionError(f"state is {s['state']!r}, not one of {states}\n" + self.log_text())


@pytest.fixture
def bus():
    b = Bus()
    yield b
    b.close()


def make_device(tmp_path, **kw):
    dev = Device(tmp_path / "dev", **kw)
    # The slow handler: reads its input 64 KiB at a time with a pause, so an install takes seconds.
    slow = dev.root / "handlers" / "slow"
    slow.write_text("#!/bin/sh\n"
                    "[ \"$1\" = install ] || exit 0\n"
                    "while [ \"$(dd bs=65536 count=1 2>/dev/null | wc -c)\" != 0 ]; do sleep 0.05; done\n")
    slow.chmod(0o755)
    return dev


@pytest.fixture
def daemon(tmp_path, bus):
    d = Daemon(make_device(tmp_path), bus, tmp_path / "upkeepd.log")
    d.start()
    yield d
    d.stop()


def bundle(tmp: Path, version, *, size=1024 * 1024 + 4321, compatible="acme-gw", handler="raw",
           signer="signer", name=None, support_end="2031-12-31"):
    """A signed bundle with one payload for the rootfs slot class."""
    name = name or f"{handler.replace(':', '-')}-{version}-{signer}-{compatible}"
    src = tmp / f"src-{name}"
    src.mkdir()
    (src / "rootfs.img").write_bytes(payload_bytes(seed=version, size=size))
    manifest = {
        "format": 1, "compatible": compatible, "version": version, "build": "2026-11-25T10:00:00Z",
        "support": {"end": support_end},
        "payloads": [{"name": "rootfs", "file": "rootfs.img", "handler": handler, "slot_class": "rootfs"}],
    }
    (src / "manifest.json").write_text(json.dumps(manifest))
    out = tmp / f"{name}.upk"
    chain = ["--chain", PKI / "chain.pem"] if signer == "signer" else []
    p = subprocess.run([UPDATECTL, "bundle", "create", "--manifest", src / "manifest.json", "--cert",
                        PKI / f"{signer}.pem", "--key", PKI / f"{signer}.key", *chain, "-o", out],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, describe(p)
    return out


# ------------------------------------------------------------------------------------------------------
# status


def test_status_text(daemon):
    p = daemon.ok("status")
    lines = p.stdout.splitlines()
    fields = {k.strip(): v for k, _, v in (line.partition(": ") for line in lines)}
    assert fields["State"] == "idle", describe(p)
    assert fields["Version"] == "1.0.0"
    assert fields["Booted slot"] == "A"
    assert fields["Available"] == "none"
    assert fields["Compatible"] == "acme-gw"
    assert fields["Auto updates"] == "on"
    assert fields["Last check"] == "never"
    assert "Last error" not in fields
    assert "Progress" not in fields
    assert "WARNING" not in p.stdout
    assert p.stderr == ""
    # No verb is status.
    assert daemon.ok().stdout == p.stdout


def test_status_json(daemon):
    s = daemon.status()
    assert set(s) == {"state", "phase", "progress", "current_version", "available_version", "compatible",
                      "booted_slot", "auto_update", "last_check", "last_error", "support_end",
                      "support_days_left", "support_ended", "rolled_back", "last_delta"}
    assert s["rolled_back"] is None and s["last_delta"] is None
    assert s["state"] == "idle"
    assert s["phase"] == ""
    assert s["progress"] == {"done": 0, "total": 0}
    assert s["current_version"] == "1.0.0"
    assert s["available_version"] == ""
    assert s["compatible"] == "acme-gw"
    assert s["booted_slot"] == "A"
    assert s["auto_update"] is True
    assert s["last_check"] == 0
    assert s["last_error"] == ""
    assert s["support_ended"] is False
    # --json before the verb works too.
    assert json.loads(daemon.ok("--json", "status").stdout) == s


def test_status_warns_after_support_end(tmp_path, bus):
    dev = make_device(tmp_path, extra_policy="support-end = 2020-01-31")
    d = Daemon(dev, bus, tmp_path / "upkeepd.log")
    d.start()
    try:
        p = d.ok("status")
        days = (time.time() // 86400) - (time.mktime(time.strptime("2020-01-31", "%Y-%m-%d")) // 86400)
        assert re.search(r"^  Support end: 2020-01-31 \(ended \d+ days ago\)$", p.stdout, re.M), describe(p)
        warning = re.search(r"^WARNING: security support for this device ended on 2020-01-31 \((\d+) days ago\): "
                            r"it receives no more security updates\.$", p.stdout, re.M)
        assert warning, describe(p)
        assert abs(int(warning.group(1)) - days) <= 1
        p = d.ok("status", "--json")
        s = json.loads(p.stdout)
        assert s["support_end"] == "2020-01-31"
        assert s["support_ended"] is True
        assert s["support_days_left"] < -2000
        assert p.stderr.startswith("WARNING: security support for this device ended on 2020-01-31"), describe(p)
        p = d.ok("support")
        assert "Security updates: NO: security support has ended" in p.stdout, describe(p)
        assert "WARNING: security support for this device ended on 2020-01-31" in p.stdout
    finally:
        d.stop()


# ------------------------------------------------------------------------------------------------------
# install


def test_install_piped_then_reboot_and_confirm(tmp_path, daemon):
    b = bundle(tmp_path, "2.0.0", size=3 * 1024 * 1024)
    # A relative path: updatectl makes it absolute for the daemon.
    p = daemon.ctl("install", b.name, cwd=b.parent)
    assert p.returncode == 0, describe(p) + daemon.log_text()
    lines = p.stdout.splitlines()
    assert lines[-1] == "installed version 2.0.0 into slot B", describe(p)
    assert p.stderr == ""
    phases = [line[len("phase: "):] for line in lines if line.startswith("phase: ")]
    assert "writing" in phases, describe(p)
    assert len(phases) == len(set(phases)) or phases != sorted(phases), describe(p)  # one line per change
    percents = [int(m.group(1)) for m in (re.match(r"progress: (\d+)% \(", line) for line in lines) if m]
    assert percents == sorted(percents) and len(percents) == len(set(percents)), describe(p)
    assert percents and percents[-1] == 100, describe(p)
    assert all(pc % 10 == 0 for pc in percents)
    assert any(re.fullmatch(r"progress: 100% \(3\.0 MiB of 3\.0 MiB\)", line) for line in lines), describe(p)
    # Only phase, progress and the final line.
    assert all(line.startswith(("phase: ", "progress: ")) for line in lines[:-1]), describe(p)

    s = daemon.status()
    assert s["state"] == "pending-reboot"
    assert s["last_error"] == ""

    # Reboot into B; the daemon confirms at start.
    daemon.stop()
    assert daemon.device.reboot() == "B"
    daemon.start()
    s = daemon.wait_state("idle")
    assert s["current_version"] == "2.0.0"
    assert s["booted_slot"] == "B"
    p = daemon.ok("status")
    assert re.search(r"^ +Version: 2\.0\.0$", p.stdout, re.M), describe(p)


def test_install_no_block(tmp_path, daemon):
    b = bundle(tmp_path, "2.0.0")
    # The global form of the option (before the verb).
    p = daemon.ok("--no-block", "install", b)
    assert p.stdout == f'installing {b}; follow it with "updatectl monitor" or "updatectl status"\n'
    assert p.stderr == ""
    s = daemon.wait_state("pending-reboot")
    assert s["last_error"] == ""
    assert json.loads(daemon.ok("history", "--json").stdout)[-1]["version"] == "2.0.0"


def test_install_without_a_bundle_and_nothing_offered(daemon):
    # Without an argument: the update the source offers (test_poll.py); here there is none.
    for args in (("install",), ("install", "--no-block")):
        p = daemon.ctl(*args)
        assert p.returncode == EXIT_FAIL, describe(p)
        assert p.stderr == 'updatectl: no update is available (check first: "updatectl check")\n', describe(p)


def test_second_install_while_busy(tmp_path, daemon):
    slow = bundle(tmp_path, "2.0.0", size=4 * 1024 * 1024, handler="exec:slow")
    first = daemon.popen("install", slow)
    try:
        daemon.wait_state("installing")
        # Status during the install: the phase and the progress, answered at once.
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            s = daemon.status()
            if s["phase"] == "writing" and 0 < s["progress"]["done"] < s["progress"]["total"]:
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"no progress while writing: {s}")
        p = daemon.ok("status")
        assert first.poll() is None, "the install ended before the status came"  # answered during it
        assert re.search(r"^ +State: installing$", p.stdout, re.M), describe(p)
        assert re.search(r"^ +Phase: writing$", p.stdout, re.M), describe(p)
        assert re.search(r"^ +Progress: \d+% \([\d.]+ (B|KiB|MiB) of 4\.0 MiB\)$", p.stdout, re.M), describe(p)
        p = daemon.ctl("install", "--no-block", slow)
        assert p.returncode == EXIT_FAIL, describe(p)
        assert p.stderr == "updatectl: the daemon is busy (installing); try again when it is done\n", describe(p)
        # Following an install that cannot start ends at once with the same error.
        p = daemon.ctl("install", slow)
        assert p.returncode == EXIT_FAIL, describe(p)
        assert p.stderr == "updatectl: the daemon is busy (installing); try again when it is done\n", describe(p)
        assert "installed version" not in p.stdout
    finally:
        out, err = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 0, out + err


def reference_message(tmp_path, b, *extra):
    """The message of a rejection as the installer phrases it, from upkeepd's offline verb on a fresh
    device of the same configuration."""
    ref = make_device(tmp_path / "ref")
    p = ref.install(b, *extra)
    assert p.returncode != 0, describe(p)
    line = p.stderr.strip().splitlines()[-1]
    prefix = f"upkeepd: {b}: "
    assert line.startswith(prefix), describe(p)
    return line[len(prefix):]


@pytest.mark.parametrize("case,status,substring", [
    ("signature", EXIT_SIGNATURE, "rejected: signature"),
    ("compatible", EXIT_COMPATIBLE, "other-gw"),
    ("downgrade", EXIT_DOWNGRADE, "0.9.0"),
])
def test_rejection_exit_status_and_message(tmp_path, daemon, case, status, substring):
    if case == "signature":
        b = bundle(tmp_path, "2.0.0", signer="other-signer")
    elif case == "compatible":
        b = bundle(tmp_path, "2.0.0", compatible="other-gw")
    else:
        b = bundle(tmp_path, "0.9.0")
    p = daemon.ctl("install", b)
    assert p.returncode == status, describe(p) + daemon.log_text()
    assert substring in p.stderr, describe(p)
    assert p.stderr.count("\n") == 1, describe(p)
    # Exactly the daemon's message, which is the installer's.
    s = daemon.status()
    assert s["state"] == "error"
    assert p.stderr == f"updatectl: {s['last_error']}\n", describe(p)
    assert s["last_error"] == reference_message(tmp_path, b), describe(p)
    assert s["last_error"].startswith("rejected: ")
    # Nothing claimed success.
    assert "installed version" not in p.stdout


def test_rejection_with_no_block_ends_in_last_error(tmp_path, daemon):
    b = bundle(tmp_path, "2.0.0", compatible="other-gw")
    daemon.ok("install", "--no-block", b)
    s = daemon.wait_state("error")
    assert "other-gw" in s["last_error"]


def test_cancel_in_the_middle(tmp_path, daemon):
    slow = bundle(tmp_path, "2.0.0", size=4 * 1024 * 1024, handler="exec:slow")
    inst = daemon.popen("install", slow)
    try:
        # Follow the plain lines until the first tenth is written, then cancel.
        seen = []
        for line in inst.stdout:
            seen.append(line)
            if line.startswith("progress: "):
                break
        assert any(line.startswith("progress: ") for line in seen), "".join(seen)
        p = daemon.ok("cancel")
        assert p.stdout == "cancelling the running install\n"
        out, err = inst.communicate(timeout=TIMEOUT)
    finally:
        if inst.poll() is None:
            inst.kill()
    assert inst.returncode == EXIT_FAIL, f"{inst.returncode}\n{out}\n{err}"
    assert "installed version" not in out
    s = daemon.wait_state("idle", "error")
    assert err == f"updatectl: {s['last_error']}\n"
    assert err == "updatectl: the install was cancelled; nothing was activated\n", err
    # Nothing runs now: a second cancel is refused.
    p = daemon.ctl("cancel")
    assert p.returncode == EXIT_FAIL, describe(p)
    assert p.stderr == "updatectl: no install is running\n", describe(p)
    # The next install works.
    p = daemon.ctl("install", bundle(tmp_path, "2.0.1"))
    assert p.returncode == 0, describe(p)
    assert p.stdout.splitlines()[-1] == "installed version 2.0.1 into slot B"


def test_cancel_while_pending_reboot(tmp_path, daemon):
    """updatectl cancel of an installed update that waits for its reboot: the message says what it did."""
    p = daemon.ctl("install", bundle(tmp_path, "2.0.0"))
    assert p.returncode == 0, describe(p) + daemon.log_text()
    assert daemon.status()["state"] == "pending-reboot"
    p = daemon.ok("cancel")
    assert p.stdout == "cancelled the update that waited for its reboot; the booted slot stays primary\n", \
        describe(p)
    assert p.stderr == "", describe(p)
    s = daemon.wait_state("idle")
    assert s["last_error"] == ""
    # Nothing waits any more: a second cancel is refused.
    p = daemon.ctl("cancel")
    assert p.returncode == EXIT_FAIL, describe(p)
    assert p.stderr == "updatectl: no install is running\n", describe(p)


def test_interrupted_install_goes_on(tmp_path, daemon):
    slow = bundle(tmp_path, "2.0.0", size=2 * 1024 * 1024, handler="exec:slow")
    inst = daemon.popen("install", slow)
    daemon.wait_state("installing")
    inst.send_signal(signal.SIGINT)
    out, err = inst.communicate(timeout=TIMEOUT)
    assert inst.returncode == EXIT_FAIL
    assert err == 'updatectl: no longer following the install; it goes on ("updatectl cancel" stops it)\n'
    s = daemon.wait_state("pending-reboot")
    assert s["last_error"] == ""


def test_progress_bar_on_a_terminal(tmp_path, daemon):
    slow = bundle(tmp_path, "2.0.0", size=2 * 1024 * 1024, handler="exec:slow")
    log = tmp_path / "typescript"
    cmd = " ".join(f"'{a}'" for a in daemon.argv("install", slow))
    p = subprocess.run(["script", "-q", "-e", "-c", f"stty cols 100; {cmd}", str(log)], capture_output=True,
                       env=daemon.env(), timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    raw = log.read_bytes().decode(errors="replace")
    assert p.returncode == 0, raw
    # Redrawn in place: carriage returns, a bar with the phase, the percentage, the sizes.
    frames = [f for f in raw.split("\r") if "[" in f and "%" in f]
    assert len(frames) >= 2, raw
    bar = re.compile(r"^writing +\[[#-]+\] +\d+%  [\d.]+ (B|KiB|MiB) / 2\.0 MiB")
    assert any(bar.match(f) for f in frames), raw
    # Every frame is as wide as the terminal less one column.
    assert all(len(f.rstrip("\n")) == 99 for f in frames if bar.match(f)), [len(f) for f in frames]
    # No plain progress lines on a terminal, and the final message on a clean line.
    assert "progress: " not in raw
    assert re.search(r"\r {99}\rinstalled version 2\.0\.0 into slot B\r?\n", raw), raw


# ------------------------------------------------------------------------------------------------------
# Access control


def test_unprivileged_caller(tmp_path, daemon):
    b = bundle(tmp_path, "2.0.0")
    os.chmod(tmp_path, 0o755)
    for args in (("install", b), ("install", "--no-block", b), ("cancel",), ("rollback",), ("mark-good",),
                 ("enable",), ("disable",), ("postpone", "1h"), ("check",), ("acknowledge",)):
        p = daemon.ctl(*args, user=NOBODY)
        assert p.returncode == EXIT_ACCESS, describe(p)
        assert p.stderr == DENIED + "\n", describe(p)
        assert p.stdout == ""
    # Nothing happened.
    s = daemon.status()
    assert s["state"] == "idle" and s["auto_update"] is True
    # Reading works for anyone.
    for args in (("status",), ("status", "--json"), ("history",), ("slots",), ("support",)):
        p = daemon.ctl(*args, user=NOBODY)
        assert p.returncode == 0, describe(p)
    assert json.loads(daemon.ctl("status", "--json", user=NOBODY).stdout)["state"] == "idle"


# ------------------------------------------------------------------------------------------------------
# history, slots, support


def test_history_slots_support(tmp_path, daemon):
    p = daemon.ok("history")
    assert p.stdout == "no history\n" or p.stdout.startswith("TIME"), describe(p)
    before = json.loads(daemon.ok("history", "--json").stdout)

    daemon.ok("install", bundle(tmp_path, "2.0.0"))

    h = json.loads(daemon.ok("history", "--json").stdout)
    assert len(h) == len(before) + 1
    e = h[-1]
    assert set(e) == {"time", "operation", "version", "slot", "ok", "reason"}
    assert e["operation"] == "install" and e["version"] == "2.0.0" and e["slot"] == "B" and e["ok"] is True
    assert abs(e["time"] / 1e6 - time.time()) < 120
    p = daemon.ok("history")
    lines = p.stdout.splitlines()
    assert re.match(r"^TIME +OPERATION +VERSION +SLOT +RESULT +REASON$", lines[0]), describe(p)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ +install +2\.0\.0 +B +ok$", lines[-1]), describe(p)

    slots = json.loads(daemon.ok("slots", "--json").stdout)
    assert [(s["class"], s["name"], s["booted"]) for s in slots] == [("rootfs", "A", True), ("rootfs", "B", False)]
    assert set(slots[0]) == {"class", "name", "bootname", "device", "state", "version", "booted"}
    assert slots[0]["device"] == str(daemon.device.slot["A"])
    assert slots[1]["version"] == "2.0.0"
    p = daemon.ok("slots")
    lines = p.stdout.splitlines()
    assert re.match(r"^CLASS +NAME +BOOTNAME +DEVICE +STATE +VERSION +BOOTED$", lines[0]), describe(p)
    assert re.match(r"^rootfs +A +\S+ +\S+slotA\.img +\S+ +\S+ +yes$", lines[1]), describe(p)
    assert re.match(r"^rootfs +B +\S+ +\S+slotB\.img +\S+ +2\.0\.0$", lines[2]), describe(p)

    cap = json.loads(daemon.ok("support", "--json").stdout)
    assert cap["can-receive-updates"] is True
    assert cap["update-mode"] == "automatic"
    assert cap["update-source"] == "none"
    assert cap["current-version"] == "1.0.0"
    assert cap["compatible"] == "acme-gw"
    assert cap["last-install-version"] == "2.0.0"
    assert cap["last-install-ok"] is True
    assert "keyring" in cap["verification"]
    p = daemon.ok("support")
    fields = {k.strip(): v for k, _, v in (line.partition(": ") for line in p.stdout.splitlines())}
    assert fields["Security updates"] == "yes", describe(p)
    assert fields["Update mode"] == "automatic"
    assert fields["Verification"] == cap["verification"]
    assert fields["Update source"] == "none"
    assert fields["Last check"] == "never"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(\d+s ago\) version 2\.0\.0, succeeded",
                        fields["Last install"]), describe(p)
    if cap.get("support-end"):
        assert fields["Support end"].startswith(cap["support-end"] + " (")


# ------------------------------------------------------------------------------------------------------
# monitor


def test_monitor_prints_changes_and_finished(tmp_path, daemon):
    mon = daemon.popen("monitor")
    # If the lines below never come, the monitor is stopped, and the reads end.
    watchdog = threading.Timer(TIMEOUT, mon.send_signal, (signal.SIGINT,))
    watchdog.start()
    seen = ""
    try:
        first = mon.stdout.readline()
        assert re.fullmatch(STAMP + r"State=idle\n", first), first
        daemon.ok("install", bundle(tmp_path, "2.0.0"))
        # A rejected one too.
        p = daemon.ctl("install", bundle(tmp_path, "2.0.0", signer="other-signer"))
        assert p.returncode == EXIT_SIGNATURE, describe(p)
        # the monitor has printed the second Finished
        for line in mon.stdout:
            seen += line
            if "Finished ok=no" in line:
                break
    finally:
        watchdog.cancel()
        mon.send_signal(signal.SIGINT)
        out, err = mon.communicate(timeout=TIMEOUT)
    assert mon.returncode == 0, err
    assert err == ""
    out = seen + out
    assert "Finished ok=no" in seen, out
    lines = [first.rstrip("\n")] + out.splitlines()
    assert all(re.match(STAMP, line) for line in lines), out
    body = [line[24:] for line in lines]
    assert "State=installing" in body, out
    assert "Finished ok=yes message=\"installed version 2.0.0 into slot B\"" in body, out
    assert any(re.fullmatch(r'Finished ok=no error=io\.upkeep\.Update1\.Error\.Signature message="rejected: '
                            r'signature: .+"', line) for line in body), out
    # Quotes inside the message are escaped, so the line stays parseable.
    assert 'signer certificate \\"CN=upkeep test other-signer,' in out, out
    assert any(re.fullmatch(r"Progress=\d+/\d+", line) for line in body), out
    assert body.index("State=installing") < body.index("Finished ok=yes message=\"installed version 2.0.0 into "
                                                       "slot B\"")


def test_monitor_sigterm_and_daemon_restart(tmp_path, daemon):
    mon = daemon.popen("monitor")
    try:
        assert "State=idle" in mon.stdout.readline()
        daemon.stop()
        assert mon.stdout.readline().endswith("the update daemon stopped\n")
        daemon.start()
        assert mon.stdout.readline().endswith("the update daemon started\n")
    finally:
        mon.send_signal(signal.SIGTERM)
        out, err = mon.communicate(timeout=TIMEOUT)
    assert mon.returncode == 0, err


# ------------------------------------------------------------------------------------------------------
# enable, disable, postpone, check


def test_enable_disable(daemon):
    p = daemon.ok("disable")
    assert p.stdout == "automatic updates off\n"
    assert daemon.status()["auto_update"] is False
    assert json.loads(daemon.ok("support", "--json").stdout)["update-mode"] == "manual"
    assert re.search(r"^ +Auto updates: off$", daemon.ok("status").stdout, re.M)
    # Kept across a restart.
    daemon.stop()
    daemon.start()
    assert daemon.status()["auto_update"] is False
    p = daemon.ok("enable")
    assert p.stdout == "automatic updates on\n"
    assert daemon.status()["auto_update"] is True
    assert json.loads(daemon.ok("support", "--json").stdout)["update-mode"] == "automatic"


def test_postpone(daemon):
    before = time.time()
    p = daemon.ok("postpone", "1h30m")
    assert re.fullmatch(r"no automatic install before \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+\n", p.stdout), describe(p)
    until = daemon.device.state()["postpone_until"] / 1e6
    assert before + 5400 - 5 <= until <= time.time() + 5400 + 5

    for bad in ("soon", "1m1h", "5 m", ""):
        p = daemon.ctl("postpone", bad)
        assert p.returncode == EXIT_USAGE, describe(p)
        assert p.stderr.startswith(f'updatectl: postpone: "{bad}" is not a duration'), describe(p)
    p = daemon.ctl("postpone", "-5")
    assert p.returncode == EXIT_USAGE and p.stderr.startswith("updatectl: postpone: unknown option -5\n")
    p = daemon.ctl("postpone")
    assert p.returncode == EXIT_USAGE and "missing argument" in p.stderr, describe(p)


def test_check_without_a_source(daemon):
    p = daemon.ctl("check")
    assert p.returncode == EXIT_FAIL, describe(p)
    assert p.stderr == "updatectl: no update source is configured ([source] type = none)\n", describe(p)


def test_usage_errors(daemon):
    for args, message in ((("install", "a", "b"), 'install: unexpected argument "b"'),
                          (("status", "--no-block"), "status: option --no-block does not apply here"),
                          (("--json", "cancel"), "cancel: option --json does not apply here"),
                          (("frobnicate",), 'unknown command "frobnicate"')):
        p = daemon.ctl(*args)
        assert p.returncode == EXIT_USAGE, describe(p)
        assert p.stderr.startswith(f"updatectl: {message}\n"), describe(p)


# ------------------------------------------------------------------------------------------------------
# No daemon


def test_daemon_not_running(tmp_path, bus):
    d = Daemon(make_device(tmp_path), bus, tmp_path / "upkeepd.log")
    for args in (("status",), ("status", "--json"), ("install", "/x.upk"), ("cancel",), ("history",),
                 ("slots",), ("support",), ("enable",)):
        p = d.ctl(*args)
        assert p.returncode == EXIT_FAIL, describe(p)
        assert p.stderr == NOT_RUNNING + "\n", describe(p)
        assert p.stdout == ""


def test_no_bus(tmp_path):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={tmp_path}/nothing")
    p = subprocess.run([UPDATECTL, "status"], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert p.returncode == EXIT_FAIL, describe(p)
    assert p.stderr == "updatectl: cannot connect to the system bus: No such file or directory\n"


# ------------------------------------------------------------------------------------------------------
# Bash completion (plain bash, without the bash-completion package)


def complete(words, cwd):
    script = Path(UPDATECTL).resolve().parent.parent / "completion" / "updatectl"
    assert script.is_file(), script
    quoted = " ".join("'" + w + "'" for w in words)
    cmd = (f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD=$(({len(words)} - 1)); "
           "_upkeep_updatectl; printf '%s\\n' \"${COMPREPLY[@]}\"")
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", cmd], capture_output=True, text=True, cwd=cwd,
                       timeout=TIMEOUT)
    assert p.returncode == 0, describe(p)
    return sorted(line for line in p.stdout.splitlines() if line)


def test_bash_completion(tmp_path):
    (tmp_path / "b.upk").write_text("")
    (tmp_path / "out").mkdir()
    assert complete(["updatectl", ""], tmp_path) == sorted(
        "status check install cancel rollback mark-good acknowledge history slots monitor support postpone enable "
        "disable bundle repo help".split())
    assert complete(["updatectl", "ro"], tmp_path) == ["rollback"]
    assert complete(["updatectl", "--"], tmp_path) == ["--help", "--json", "--no-block", "--version"]
    assert complete(["updatectl", "install", ""], tmp_path) == ["b.upk", "out"]
    assert complete(["updatectl", "install", "b.upk", "--"], tmp_path) == ["--allow-downgrade", "--no-block"]
    assert complete(["updatectl", "install", "b.upk", ""], tmp_path) == []
    assert complete(["updatectl", "history", "-"], tmp_path) == ["--json"]
    assert complete(["updatectl", "postpone", ""], tmp_path) == ["12h", "1d", "1h", "30m", "6h", "7d"]
    assert complete(["updatectl", "bundle", ""], tmp_path) == ["create", "extract", "info", "verify"]
    assert complete(["updatectl", "bundle", "verify", "--"], tmp_path) == ["--allow-any-eku", "--crl", "--keyring"]
    assert complete(["updatectl", "bundle", "create", "--payload-dir", ""], tmp_path) == ["out"]
    assert complete(["updatectl", "bundle", "create", "--j"], tmp_path) == ["--jobs"]
    assert complete(["updatectl", "bundle", "create", "--jobs", ""], tmp_path) == []
    assert complete(["updatectl", "bundle", "create", "--compression", ""], tmp_path) == ["none", "zstd"]
    assert complete(["updatectl", "bundle", "extract", "--keyring", "k.pem", "b.upk", ""], tmp_path) == ["out"]
    assert complete(["updatectl", "repo", ""], tmp_path) == ["add", "init", "remove", "rotate", "status",
                                                              "timestamp"]
    assert complete(["updatectl", "repo", "init", "out", "--key-type", ""], tmp_path) == ["ecdsa", "ed25519", "rsa"]
    assert complete(["updatectl", "repo", "add", "out", "--"], tmp_path) == [
        "--allow-any-eku", "--crl", "--key", "--keyring"]
    assert complete(["updatectl", "repo", "add", ""], tmp_path) == ["out"]
    assert complete(["updatectl", "repo", "add", "out", ""], tmp_path) == ["b.upk", "out"]


def test_monitor_without_daemon_and_bus_lost(bus):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
    mon = subprocess.Popen([UPDATECTL, "monitor"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env)
    try:
        line = mon.stdout.readline()
        assert re.fullmatch(STAMP + r"the update daemon is not running; waiting for it\n", line), line
        bus.proc.terminate()
        bus.proc.wait(timeout=TIMEOUT)
        out, err = mon.communicate(timeout=TIMEOUT)
    finally:
        if mon.poll() is None:
            mon.kill()
    assert mon.returncode == EXIT_FAIL
    assert err == "updatectl: the connection to the system bus was lost\n"
