# SPDX-License-Identifier: LGPL-2.1-or-later
"""upkeepd as the io.upkeep.Update1 service on a private system bus (dbus-daemon with our real policy
file), driven with busctl: introspection, a full install with file-backed A/B slots and the file boot
backend across a simulated reboot, cancel, property reads during an install, access control for a
non-root caller, error names and messages, GetCapability, SIGTERM during an install, the log lines."""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from device import PAYLOAD_SIZE, STORED, UPKEEPD, Device, make_bundle, payload_bytes

SOURCE_ROOT = Path(os.environ.get("UPKEEP_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
POLICY = SOURCE_ROOT / "systemd" / "io.upkeep.Update1.conf"
NAME = "io.upkeep.Update1"
PATH = "/io/upkeep/Update1"
IFACE = "io.upkeep.Update1"
ACCESS_DENIED = "updates can only be managed by root or with the polkit action io.upkeep.manage"
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

# The default policy of Debian's system bus (/usr/share/dbus-1/system.conf), then our policy file.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
    <!-- the stand-in polkit of test_polkit_decides_for_non_root -->
    <allow own="org.freedesktop.PolicyKit1"/>
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"""

# An exec handler that takes its time: the install runs for seconds, long enough to act on it.
SLOW_HANDLER = """#!/bin/sh
case "$1" in
install) exec /usr/bin/python3 -c 'import sys, time
while sys.stdin.buffer.read(65536):
    time.sleep(0.02)' ;;
*) exit 0 ;;
esac
"""
SLOW_SIZE = 8 * 1024 * 1024
FAKE_POLKIT = Path(__file__).resolve().parent / "fake-polkit.py"


def stop_group(proc, sig=signal.SIGTERM, timeout=10):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Bus:
    """A private dbus-daemon of type system in a folder every user can reach."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="upkeep-bus-"))
        self.dir.chmod(0o755)
        self.socket = self.dir / "bus.sock"
        conf = self.dir / "bus.conf"
        conf.write_text(BUS_CONFIG.format(socket=self.socket, policy=POLICY))
        self.proc = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--print-address", "--nofork"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        self.address = self.proc.stdout.readline().strip()
        assert self.address.startswith("unix:"), self.address

    def busctl(self, *args, user=None, timeout=30):
        cmd = (AS_NOBODY if user == "nobody" else []) + \
            ["busctl", f"--address={self.address}", "--json=short", *[str(a) for a in args]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def call(self, method, signature="", *args, user=None, check=True):
        p = self.busctl("call", NAME, PATH, IFACE, method, *([signature, *args] if signature else []), user=user)
        if check:
            assert p.returncode == 0, f"{method}: {p.stderr}"
            return json.loads(p.stdout)["data"] if p.stdout.strip() else None
        return p

    def get(self, prop, user=None):
        p = self.busctl("get-property", NAME, PATH, IFACE, prop, user=user)
        assert p.returncode == 0, f"get {prop}: {p.stderr}"
        return json.loads(p.stdout)["data"]

    def stop(self):
        stop_group(self.proc)
        for f in self.dir.iterdir():
            f.unlink()
        self.dir.rmdir()


class Monitor:
    """busctl monitor in JSON: every message on the bus, collected by a thread."""

    def __init__(self, bus):
        self.proc = subprocess.Popen(["busctl", f"--address={bus.address}", "--json=short", "monitor"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        self.messages = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        # Registered once it sees a call made after it started: ask the bus about a name until it does.
        marker = f"io.upkeep.test.Monitor{os.getpid()}x{time.monotonic_ns()}"
        deadline = time.monotonic() + 30
        while True:
            subprocess.run(["busctl", f"--address={bus.address}", "call", "org.freedesktop.DBus",
                            "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", marker],
                           capture_output=True, timeout=30)
            if self.find(lambda m: m.get("member") == "NameHasOwner" and
                         m.get("payload", {}).get("data") == [marker]):
                break
            assert time.monotonic() < deadline and self.proc.poll() is None, "busctl monitor did not start"
            time.sleep(0.05)

    def _read(self):
        for line in self.proc.stdout:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.messages.append(m)

    def find(self, pred):
        with self.lock:
            return [m for m in self.messages if pred(m)]

    def wait(self, pred, timeout=60, what="a message"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(pred)
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def finished(self, timeout=60, after=0):
        """The first Finished signal after the `after`-th: (ok, message, error)."""
        def pred(m):
            return m.get("type") == "signal" and m.get("member") == "Finished"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(pred)
            if len(found) > after:
                return tuple(found[after]["payload"]["data"])
            time.sleep(0.05)
        raise AssertionError("timed out waiting for Finished")

    def states(self):
        """Every State value sent in PropertiesChanged, in order."""
        out = []
        for m in self.find(lambda m: m.get("member") == "PropertiesChanged"):
            changed = m["payload"]["data"][1]
            if "State" in changed:
                out.append(changed["State"]["data"])
        return out

    def error_reply(self, name):
        return self.wait(lambda m: m.get("type") == "error" and m.get("error_name") == name,
                         what=f"an error {name}")

    def stop(self):
        stop_group(self.proc)


class Service:
    """upkeepd without a verb, on the private bus; its stderr goes to a file."""

    def __init__(self, bus, device, *extra, env=None, wait=True):
        """Starts upkeepd and, with `wait`, waits until it has confirmed the start (wait_ready())."""
        self.bus = bus
        self.log = device.root / f"upkeepd-{time.monotonic_ns()}.log"
        full_env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        full_env.update(env or {})
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([UPKEEPD, "--config", str(device.conf), *extra], stdout=log,
                                         stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=30):
        """Until the State is no longer "confirming" (or not yet on the bus)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"upkeepd exited with {self.proc.returncode}:\n{self.text()}"
            p = self.bus.busctl("get-property", NAME, PATH, IFACE, "State")
            if p.returncode == 0 and json.loads(p.stdout)["data"] != "confirming":
                return
            time.sleep(0.05)
        raise AssertionError("upkeepd did not come up:\n" + self.text())

    def text(self):
        return self.log.read_text()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def kill(self):
        stop_group(self.proc, signal.SIGKILL)


@pytest.fixture
def bus():
    b = Bus()
    yield b
    b.stop()


@pytest.fixture
def monitor(bus):
    m = Monitor(bus)
    yield m
    m.stop()


@pytest.fixture
def device(tmp_path):
    return Device(tmp_path / "dev")


@pytest.fixture
def service(bus, device):
    started = []

    def start(*extra, **kw):
        s = Service(bus, device, *extra, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def install(bus, bundle, *options):
    """Install with options given as (key, signature, value) triples."""
    args = [str(bundle), str(len(options))]
    for key, sig, value in options:
        args += [key, sig, value]
    return bus.call("Install", "sa{sv}", *args)


def slow_bundle(tmp_path, device, version="1.1.0"):
    handler = device.root / "handlers" / "slow"
    handler.write_text(SLOW_HANDLER)
    handler.chmod(0o755)
    return make_bundle(tmp_path, version, payload_bytes(7, SLOW_SIZE), handler="exec:slow", name="slow")


def wait_state(bus, state, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bus.get("State") == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"State never became {state} (it is {bus.get('State')})")


def wait_writing(bus, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bus.get("Phase") == "writing" and bus.get("Progress")[0] > 0:
            return
        time.sleep(0.02)
    raise AssertionError("the install never got to writing")


# ------------------------------------------------------------------------------------------------------


def test_introspection_lists_every_member(bus, service):
    service()
    p = bus.busctl("call", NAME, PATH, "org.freedesktop.DBus.Introspectable", "Introspect")
    assert p.returncode == 0, p.stderr
    root = ET.fromstring(json.loads(p.stdout)["data"][0])
    iface = [i for i in root.findall("interface") if i.get("name") == IFACE][0]
    props = {p.get("name"): (p.get("type"), p.get("access")) for p in iface.findall("property")}
    assert props == {
        "State": ("s", "read"), "Progress": ("(tt)", "read"), "Phase": ("s", "read"),
        "CurrentVersion": ("s", "read"), "AvailableVersion": ("s", "read"), "Compatible": ("s", "read"),
        "BootedSlot": ("s", "read"), "LastCheck": ("t", "read"), "LastError": ("s", "read"),
        "AutoUpdate": ("b", "read"), "SupportEnd": ("s", "read"), "RolledBack": ("(ssst)", "read"),
        "LastDelta": ("(tttu)", "read"),
        "ConsentNeeded": ("b", "read"),
    }
    methods = {}
    for m in iface.findall("method"):
        methods[m.get("name")] = [(a.get("direction") or "in", a.get("type"), a.get("name")) for a in m.findall("arg")]
    assert methods == {
        "Check": [("out", "s", "available")],
        "Install": [("in", "s", "source"), ("in", "a{sv}", "options")],
        "Cancel": [],
        "Rollback": [("out", "s", "slot")],
        "MarkGood": [],
        "Postpone": [("in", "t", "until")],
        "SetAutoUpdate": [("in", "b", "enable")],
        "AcknowledgeRollback": [("out", "s", "version")],
        "Decline": [("in", "s", "reason")],
        "GetHistory": [("out", "a(tsssbs)", "entries")],
        "GetSlots": [("out", "a(ssssss)", "slots")],
        "GetCapability": [("out", "a{sv}", "capability")],
    }
    signals = {s.get("name"): [(a.get("type"), a.get("name")) for a in s.findall("arg")]
               for s in iface.findall("signal")}
    assert signals == {"Finished": [("b", "ok"), ("s", "message"), ("s", "error")]}
    # and busctl's own view of it
    p = bus.busctl("introspect", NAME, PATH, IFACE)
    assert p.returncode == 0 and ".Install" in p.stdout and ".Finished" in p.stdout


def test_full_install_reboot_and_confirm(tmp_path, bus, monitor, device, service):
    payload = payload_bytes()
    bundle = make_bundle(tmp_path, "1.1.0", payload)
    d = service()
    assert bus.get("State") == "idle"
    assert bus.get("CurrentVersion") == "1.0.0"
    assert bus.get("BootedSlot") == "A"
    assert bus.get("Compatible") == "acme-gw"
    assert bus.get("Progress") == [0, 0]

    install(bus, bundle)
    assert monitor.finished() == (True, "installed version 1.1.0 into slot B", "")
    assert bus.get("State") == "pending-reboot"
    assert bus.get("LastError") == ""
    assert bus.get("SupportEnd") == "2031-12-31"
    assert monitor.states() == ["idle", "installing", "pending-reboot"]
    # progress was sent, but not once per block: a 1 MiB payload is 16+ blocks
    progress = [m for m in monitor.find(lambda m: m.get("member") == "PropertiesChanged")
                if "Progress" in m["payload"]["data"][1]]
    assert 1 <= len(progress) <= 12
    assert device.slot["B"].read_bytes() == payload
    history = bus.call("GetHistory")[0]
    assert history[-1][1:5] == ["install", "1.1.0", "B", True]
    slots = {s[1]: s for s in bus.call("GetSlots")[0]}
    assert slots["B"] == ["rootfs", "B", "B", str(device.slot["B"]), "try", "1.1.0"]
    assert slots["A"][4] == "good"

    # a restart without a reboot confirms nothing: the update still waits
    assert d.stop() == 0
    d = service()
    assert bus.get("State") == "pending-reboot"
    assert device.env()["BOOT_ORDER"].split()[0] == "B"

    # the reboot: the new slot comes up on its try, the service confirms it
    assert d.stop() == 0
    assert device.reboot() == "B"
    d = service()
    assert bus.get("State") == "idle"
    assert bus.get("CurrentVersion") == "1.1.0"
    assert bus.get("BootedSlot") == "B"
    assert device.state()["pending"] is None
    assert "state: confirming" in d.text() and "confirmed version 1.1.0 on slot B" in d.text()
    slots = {s[1]: s for s in bus.call("GetSlots")[0]}
    assert slots["B"][4] == "good"
    assert device.reboot() == "B"


def thread_nices(pid):
    """{tid: nice} of every thread of a process (field 19 of /proc/PID/task/TID/stat)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        out[int(task.name)] = int(fields[16])
    return out


def test_worker_threads_yield_to_the_event_loop(tmp_path, bus, monitor, device, service):
    """During an install the worker thread (and the writer it starts) run 10 nice levels below the
    event loop, which keeps the process's own priority: the bus comes first."""
    s = service()
    pid = s.proc.pid
    # The booted slot's block table, made in the background after the start at nice 19: done first (the
    # line comes once its thread is joined).
    deadline = time.monotonic() + 30
    while "block table of slot rootfs.A ready" not in s.text():
        assert time.monotonic() < deadline, s.text()
        time.sleep(0.05)
    base = thread_nices(pid)[pid]  # what the test runner gave it: 0, unless it runs niced itself
    worker = min(base + 10, 19)
    assert set(thread_nices(pid).values()) == {base}
    install(bus, slow_bundle(tmp_path, device))
    wait_writing(bus)
    nices = thread_nices(pid)
    assert nices[pid] == base, nices  # the main thread runs the event loop
    assert sorted(v for t, v in nices.items() if t != pid)[-2:] == [worker, worker], nices  # worker, writer
    bus.call("Cancel")
    monitor.finished()
    # the next worker starts from the loop's priority again, not from the last worker's
    (tmp_path / "again").mkdir()
    install(bus, slow_bundle(tmp_path / "again", device, version="1.2.0"))
    wait_writing(bus)
    assert max(thread_nices(pid).values()) == worker
    bus.call("Cancel")
    monitor.finished()


def test_cancel_in_the_middle_then_install_again(tmp_path, bus, monitor, device, service):
    service()
    install(bus, slow_bundle(tmp_path, device))
    wait_writing(bus)
    # property reads and the reading methods are answered while the worker writes
    for _ in range(10):
        assert bus.get("State") == "installing"
        done, total = bus.get("Progress")
        assert 0 < done <= total == SLOW_SIZE
    assert bus.call("GetCapability")[0]["compatible"]["data"] == "acme-gw"
    assert len(bus.call("GetSlots")[0]) == 2
    # a second install is refused while one runs
    p = bus.call("Install", "sa{sv}", str(tmp_path / "x.upk"), "0", check=False)
    assert p.returncode != 0
    err = monitor.error_reply("io.upkeep.Update1.Error.Busy")
    assert err["payload"]["data"][0] == "the daemon is busy (installing); try again when it is done"

    bus.call("Cancel")
    ok, message, error = monitor.finished()
    assert (ok, error) == (False, "io.upkeep.Update1.Error.Cancelled")
    assert message == "the install was cancelled; nothing was activated"
    assert bus.get("State") == "error"
    assert bus.get("LastError") == message
    assert bus.get("Progress") == [0, 0]
    env = device.env()
    assert env["BOOT_ORDER"].split()[0] == "A" and env.get("BOOT_B_LEFT", "0") == "0"
    assert not (device.data / "state.json").exists() or device.state()["pending"] is None
    assert device.history()[-1]["ok"] is False and device.history()[-1]["reason"] == "cancelled"

    # Cancel with nothing running
    p = bus.call("Cancel", check=False)
    assert p.returncode != 0
    assert monitor.error_reply("io.upkeep.Update1.Error.NotRunning")["payload"]["data"] == ["no install is running"]

    # the next install works
    payload = payload_bytes(3)
    install(bus, make_bundle(tmp_path, "1.2.0", payload))
    assert monitor.finished(after=1) == (True, "installed version 1.2.0 into slot B", "")
    assert bus.get("State") == "pending-reboot" and bus.get("LastError") == ""
    assert device.slot["B"].read_bytes() == payload
    assert device.reboot() == "B"


def test_paths_are_kept_from_unprivileged_readers(tmp_path, bus, monitor, device, service):
    """LastError, Finished and PropertiesChanged reach every local user: the paths of root's files are
    replaced by <path> there. GetHistory gives root the whole reason, anyone else the same without
    paths. The journal has the whole message."""
    check = device.health / "10-network"
    check.write_text("#!/bin/sh\necho 'gateway unreachable' >&2\nexit 3\n")
    check.chmod(0o755)
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    assert device.reboot() == "B"
    d = service()
    assert bus.get("State") == "error"
    reason = "health check <path> exited with status 3: gateway unreachable"
    want = f"update to version 1.1.0 on slot B failed: {reason}"
    assert bus.get("LastError") == want
    assert bus.get("LastError", user="nobody") == want
    assert f"update to version 1.1.0 on slot B failed: health check {check} exited with status 3" in d.text()
    assert device.history()[-1]["reason"] == reason.replace("<path>", str(check))

    assert str(check) in bus.call("GetHistory")[0][-1][5]
    p = bus.call("GetHistory", user="nobody", check=False)
    assert p.returncode == 0, p.stderr
    entries = json.loads(p.stdout)["data"][0]
    assert entries[-1][1:6] == ["confirm", "1.1.0", "B", False, reason]
    assert str(device.root) not in p.stdout

    # an install refused for a path: the Finished signal and LastError leave it out too
    device.reboot()
    target = device.conf
    bad = make_bundle(tmp_path, "1.2.0", payload_bytes(2), targets=[("conf", "file", target, b"x")])
    install(bus, bad)
    ok, message, _ = monitor.finished()
    assert ok is False and str(target) not in message and "<path>" in message, message
    assert bus.get("LastError") == message
    assert str(target) in d.text()


def test_damaged_state_while_pending_reboot(tmp_path, bus, monitor, device, service):
    """The daemon starts (no reboot yet) with a damaged state.json while an update waits for its reboot:
    the boot backend still knows it, so the State is pending-reboot, the journal says what happened, and
    Rollback cancels the update (with its version from the history)."""
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    (device.data / "state.json").write_text('{"pending": ')
    d = service()
    assert bus.get("State") == "pending-reboot", d.text()
    state = device.data / "state.json"
    assert f"{state}: corrupt; starting from an empty state (the old file is kept as {state}.corrupt)" in d.text()
    assert (f"{state} has no record of the update on slot B (the file was damaged or lost), but the boot "
            "backend still marks slot B to try: recovered as an update of version 1.1.0 (from the "
            "history) that waits for its reboot or has fallen back") in d.text()
    assert "an installed update waits for the reboot; nothing to confirm yet" in d.text()
    assert (device.data / "state.json.corrupt").read_text() == '{"pending": '
    assert device.env()["BOOT_ORDER"].split()[0] == "B"

    assert bus.call("Rollback") == ["A"]
    assert bus.get("State") == "idle"
    env = device.env()
    assert env["BOOT_ORDER"].split()[0] == "A" and env.get("BOOT_B_TRY", "0") == "0", env
    h = device.history()[-1]
    assert (h["operation"], h["version"], h["slot"], h["ok"]) == ("cancel", "1.1.0", "B", True)


def test_rollback_cancel_and_mark_good_while_pending_reboot(tmp_path, bus, monitor, device, service):
    """While an update waits for its reboot, Rollback, Cancel and MarkGood cancel it: the booted slot
    stays primary, the untried slot is marked bad, State goes back to idle; never are both slots good."""
    service()

    def install_pending(version, n):
        (tmp_path / version).mkdir()
        install(bus, make_bundle(tmp_path / version, version, payload_bytes(n)))
        assert monitor.finished(after=n) == (True, f"installed version {version} into slot B", "")
        assert bus.get("State") == "pending-reboot"

    def assert_cancelled(version, last=-1):
        assert bus.get("State") == "idle"
        env = device.env()
        assert env["BOOT_ORDER"].split()[0] == "A", env
        assert env.get("BOOT_B_LEFT", "0") == "0" and env.get("BOOT_B_TRY", "0") == "0", env
        assert device.state()["pending"] is None
        h = device.history()[last]
        assert (h["operation"], h["version"], h["slot"], h["ok"]) == ("cancel", version, "B", True)
        slots = {s[1]: s[4] for s in bus.call("GetSlots")[0]}
        assert slots == {"A": "good", "B": "bad"}

    install_pending("1.1.0", 0)
    assert bus.call("Rollback") == ["A"]
    assert_cancelled("1.1.0")
    # nothing to roll back to, nothing to cancel
    assert bus.call("Rollback", check=False).returncode != 0
    assert "slot B is marked bad" in monitor.error_reply("org.freedesktop.DBus.Error.Failed")["payload"]["data"][0]
    assert bus.call("Cancel", check=False).returncode != 0
    monitor.error_reply("io.upkeep.Update1.Error.NotRunning")

    install_pending("1.2.0", 1)
    assert bus.call("Cancel") is None
    assert_cancelled("1.2.0")

    install_pending("1.3.0", 2)
    assert bus.call("MarkGood") is None
    assert_cancelled("1.3.0", last=-2)  # then the mark-good of A
    assert bus.call("Rollback", check=False).returncode != 0
    assert device.reboot() == "A"


def test_non_root_is_refused_but_may_read(tmp_path, bus, monitor, device, service):
    service()
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes())
    bundle.parent.chmod(0o755)
    for method, sig, args in [("Install", "sa{sv}", [str(bundle), "0"]), ("Cancel", "", []),
                              ("Rollback", "", []), ("MarkGood", "", []), ("Postpone", "t", ["1"]),
                              ("SetAutoUpdate", "b", ["false"]), ("Check", "", []), ("Decline", "s", ["no"])]:
        before = len(monitor.find(lambda m: m.get("error_name") == "org.freedesktop.DBus.Error.AccessDenied"))
        p = bus.call(method, sig, *args, user="nobody", check=False)
        assert p.returncode != 0, method
        denied = monitor.find(lambda m: m.get("error_name") == "org.freedesktop.DBus.Error.AccessDenied")
        deadline = time.monotonic() + 30
        while len(denied) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
            denied = monitor.find(lambda m: m.get("error_name") == "org.freedesktop.DBus.Error.AccessDenied")
        assert len(denied) == before + 1, method
        # from the daemon (not the bus policy), with the contract's message
        assert denied[-1]["payload"]["data"] == [ACCESS_DENIED], method
        assert denied[-1]["sender"] != "org.freedesktop.DBus", method
    assert bus.get("State", user="nobody") == "idle"
    assert bus.get("CurrentVersion", user="nobody") == "1.0.0"
    assert bus.get("AutoUpdate") is True
    p = bus.busctl("call", NAME, PATH, IFACE, "GetCapability", user="nobody")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["data"][0]["current-version"]["data"] == "1.0.0"
    p = bus.busctl("call", NAME, PATH, IFACE, "GetHistory", user="nobody")
    assert p.returncode == 0, p.stderr
    # nothing happened
    assert not monitor.find(lambda m: m.get("member") == "Finished")
    assert device.env()["BOOT_ORDER"].split()[0] == "A"
    # the bus policy itself: nobody may not own the name, nor Set properties
    p = bus.busctl("set-property", NAME, PATH, IFACE, "AutoUpdate", "b", "false", user="nobody")
    assert p.returncode != 0


@pytest.mark.parametrize("answer", ["yes", "no", "challenge"])
def test_polkit_decides_for_non_root(tmp_path, bus, monitor, device, service, answer):
    log = tmp_path / "polkit.log"
    polkit = subprocess.Popen(["/usr/bin/python3", str(FAKE_POLKIT), bus.address, answer, "700", str(log)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert polkit.stdout.readline().strip() == "ready"
        service()
        # SetAutoUpdate as nobody, in the background: polkit takes 0.7 s to answer...
        call = subprocess.Popen(AS_NOBODY + ["busctl", f"--address={bus.address}", "call", NAME, PATH, IFACE,
                                             "SetAutoUpdate", "b", "false"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        # ...and meanwhile the daemon answers others
        assert call.poll() is None
        assert bus.get("State") == "idle" and bus.get("AutoUpdate") is True
        call.wait(timeout=30)
        query = json.loads(log.read_text().splitlines()[0])
        assert query["kind"] == "system-bus-name" and query["action"] == "io.upkeep.manage"
        assert query["name"].startswith(":1.")
        assert query["flags"] == 1  # busctl allows interactive authorization
        if answer == "yes":
            assert call.returncode == 0, call.stderr
            assert bus.get("AutoUpdate") is False
            # a method body's own error still reaches the caller after the deferred reply
            p = bus.call("Cancel", user="nobody", check=False)
            assert p.returncode != 0
            monitor.error_reply("io.upkeep.Update1.Error.NotRunning")
        else:
            assert call.returncode != 0
            assert bus.get("AutoUpdate") is True
            name = "org.freedesktop.DBus.Error.AccessDenied" if answer == "no" else \
                "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
            monitor.error_reply(name)
    finally:
        stop_group(polkit)


@pytest.mark.parametrize("case,name,message", [
    ("bad-signature", "io.upkeep.Update1.Error.Signature", "rejected: signature"),
    ("incompatible", "io.upkeep.Update1.Error.NotCompatible",
     'rejected: not compatible: the bundle is for "other-gw", this device is "acme-gw"'),
    ("older", "io.upkeep.Update1.Error.Downgrade",
     "rejected: downgrade: version 0.9.0 is not newer than the installed version 1.0.0 "
     "(downgrades need allow-downgrade = yes in [policy])"),
    ("hash", "io.upkeep.Update1.Error.Payload",
     'rejected: payload "rootfs": chunk 2 (bytes 524288..786431): sha256 mismatch'),
])
def test_bad_bundle_error_reaches_the_caller(tmp_path, bus, monitor, device, service, case, name, message):
    payload = payload_bytes()
    bundle = make_bundle(tmp_path, "0.9.0" if case == "older" else "1.1.0", payload,
                         compatible="other-gw" if case == "incompatible" else "acme-gw",
                         create_args=STORED if case == "hash" else ())
    data = bytearray(bundle.read_bytes())
    if case == "bad-signature":
        data[data.find(b'"compatible"') + 3] ^= 0x01
    if case == "hash":
        data[data.find(payload[:4096]) + PAYLOAD_SIZE // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    d = service()
    install(bus, bundle)
    ok, msg, error = monitor.finished()
    assert (ok, error) == (False, name)
    assert msg.startswith(message), msg
    assert bus.get("LastError") == msg
    assert bus.get("State") == "error"
    assert device.history()[-1]["reason"] == msg[len("rejected: "):]
    assert monitor.states() == ["idle", "installing", "error"]
    assert f"failed: {msg}" in d.text()


def test_url_check_and_bad_arguments(tmp_path, bus, monitor, service):
    service()
    # "" installs the offered update; with no source nothing is offered. (URLs: test_poll.py.)
    assert bus.call("Install", "sa{sv}", "", "0", check=False).returncode != 0
    e = monitor.error_reply("io.upkeep.Update1.Error.NoUpdate")
    assert e["payload"]["data"] == ['no update is available (check first: "updatectl check")']
    assert bus.call("Check", check=False).returncode != 0
    e = monitor.error_reply("io.upkeep.Update1.Error.NoSource")
    assert e["payload"]["data"] == ["no update source is configured ([source] type = none)"]
    assert bus.call("Install", "sa{sv}", "rel.upk", "0", check=False).returncode != 0
    e = monitor.error_reply("org.freedesktop.DBus.Error.InvalidArgs")
    assert e["payload"]["data"] == ['the bundle must be given by its absolute path, not "rel.upk"']
    assert bus.call("Install", "sa{sv}", "/x.upk", "1", "force", "b", "true", check=False).returncode != 0
    e = monitor.wait(lambda m: m.get("error_name") == "org.freedesktop.DBus.Error.InvalidArgs"
                     and "force" in m["payload"]["data"][0])
    assert e["payload"]["data"] == ['unknown option "force"']
    assert bus.get("State") == "idle"


def test_allow_downgrade_option_postpone_and_auto_update(tmp_path, bus, monitor, device, service):
    text = device.conf.read_text().replace("[policy]\n", "[policy]\nallow-downgrade = yes\n")
    device.conf.write_text(text)
    service()
    install(bus, make_bundle(tmp_path, "0.9.0", payload_bytes()), ("allow-downgrade", "b", "true"))
    assert monitor.finished() == (True, "installed version 0.9.0 into slot B", "")

    bus.call("SetAutoUpdate", "b", "false")
    assert bus.get("AutoUpdate") is False
    assert device.state()["auto_update"] is False
    changed = monitor.wait(lambda m: m.get("member") == "PropertiesChanged"
                           and "AutoUpdate" in m["payload"]["data"][1])
    assert changed["payload"]["data"][1]["AutoUpdate"]["data"] is False
    cap = bus.call("GetCapability")[0]
    assert cap["update-mode"]["data"] == "manual"
    bus.call("Postpone", "t", "1900000000000000")
    assert device.state()["postpone_until"] == 1900000000000000


def test_capability_and_support_end_warning(tmp_path, bus, device, service):
    text = device.conf.read_text().replace("[policy]\n", "[policy]\nsupport-end = 2020-01-31\n")
    device.conf.write_text(text)
    d = service()
    cap = {k: v["data"] for k, v in bus.call("GetCapability")[0].items()}
    assert cap["can-receive-updates"] is False
    assert cap["support-end"] == "2020-01-31"
    assert cap["support-source"] == "config"
    assert cap["support-days-left"] < -1000
    assert cap["update-mode"] == "automatic"
    assert cap["update-source"] == "none"
    assert cap["verification"] == (
        f"bundles must carry a CMS signature chaining to the keyring {os.environ['UPKEEP_TEST_PKI']}/keyring.pem; "
        "every payload is checked against its SHA-256 before activation")
    assert cap["last-check"] == 0
    assert cap["current-version"] == "1.0.0" and cap["compatible"] == "acme-gw"
    assert "last-install-version" not in cap
    assert bus.get("SupportEnd") == "2020-01-31"
    assert "warning: security support for this device ended on 2020-01-31" in d.text()

    # a manifest's support.end wins, and the last install shows
    install(bus, make_bundle(tmp_path, "1.1.0", payload_bytes()))
    wait_state(bus, "pending-reboot")
    cap = {k: v["data"] for k, v in bus.call("GetCapability")[0].items()}
    assert cap["support-end"] == "2031-12-31" and cap["support-source"] == "manifest"
    assert cap["support-days-left"] > 0 and cap["can-receive-updates"] is True
    assert cap["last-install-version"] == "1.1.0" and cap["last-install-ok"] is True
    assert cap["last-install-time"] > 0
    assert bus.get("SupportEnd") == "2031-12-31"


def test_sigterm_during_install_exits_cleanly(tmp_path, bus, monitor, device, service):
    d = service()
    install(bus, slow_bundle(tmp_path, device))
    wait_writing(bus)
    assert d.stop(signal.SIGTERM) == 0
    assert "received Terminated, stopping" in d.text()
    assert "cancelling the install" in d.text()
    ok, message, error = monitor.finished()
    assert (ok, error) == (False, "io.upkeep.Update1.Error.Cancelled")
    env = device.env()
    assert env["BOOT_ORDER"].split()[0] == "A" and env.get("BOOT_B_LEFT", "0") == "0"
    # whatever state there is parses, and nothing is pending
    assert not (device.data / "state.json").exists() or device.state()["pending"] is None
    assert device.history()[-1]["ok"] is False
    assert device.reboot() == "A"


def test_log_lines_per_state_change(tmp_path, bus, monitor, device, service):
    d = service()
    install(bus, make_bundle(tmp_path, "1.1.0", payload_bytes()))
    monitor.finished()
    assert d.stop() == 0
    lines = d.text().splitlines()
    assert "upkeepd: state: confirming [UPKEEP_PHASE=health-checks]" in lines
    assert "upkeepd: state: idle" in lines
    assert f"upkeepd: installing {tmp_path}/b-1.1.0.upk" in lines
    assert "upkeepd: install: writing [UPKEEP_PHASE=writing]" in lines
    assert ("upkeepd: installed version 1.1.0 into slot B from " f"{tmp_path}/b-1.1.0.upk; it boots once on the "
            "next reboot and must then be confirmed [UPKEEP_PHASE=done UPKEEP_VERSION=1.1.0 UPKEEP_SLOT=B]") in lines
    states = [line for line in lines if line.startswith("upkeepd: state: ")]
    assert [s.split()[2] for s in states] == ["confirming", "idle", "installing", "pending-reboot"]
    # a message per state and phase change, none per block
    assert len(lines) < 20, lines


def test_bad_config_stops_the_start(tmp_path, bus, device):
    device.conf.write_text(device.conf.read_text().replace("backend = file", "backend = floppy"))
    p = subprocess.run([UPKEEPD, "--config", str(device.conf)], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address))
    assert p.returncode == 16, p.stderr
    assert f"{device.conf}:" in p.stderr and "[boot] backend" in p.stderr
