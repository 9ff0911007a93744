# SPDX-License-Identifier: LGPL-2.1-or-later
"""upkeepd's log in the journal, for real: upkeepd runs as the bus service next to its own systemd-journald
in a private mount and PID namespace (journal-ns.py; tmpfs on /run and /var/log, so the host's journal is
neither seen nor touched), installs a good bundle and rejects tampered ones, and the entries are read back
with `journalctl -D DIR -o json`: SYSLOG_IDENTIFIER, PRIORITY, MESSAGE and the UPKEEP_PHASE=,
UPKEEP_VERSION=, UPKEEP_SLOT= fields exactly where the daemon sets them, and nothing on stderr. Then
journald goes away under the running daemon: its lines fall back to stderr in the documented format."""

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from device import PAYLOAD_SIZE, STORED, UPKEEPD, Device, make_bundle, payload_bytes
from test_daemon import IFACE, NAME, PATH, bus, install, monitor  # noqa: F401 (bus, monitor: fixtures)

DRIVER = Path(__file__).resolve().parent / "journal-ns.py"
UNSHARE = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc",
           "--kill-child"]
TIMEOUT = 60
ERR, NOTICE, INFO, DEBUG = "3", "5", "6", "7"
PHASES = {"verifying", "checking", "preparing", "writing", "activating", "done"}
# Fields upkeepd sets itself; the rest of an entry (underscore fields, timestamps) is journald's.
OWN_FIELDS = {"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "UPKEEP_PHASE", "UPKEEP_VERSION", "UPKEEP_SLOT"}


def preflight():
    """Why this machine cannot run the test, or None."""
    if os.geteuid() != 0:
        return "needs root: it makes a mount namespace and mounts tmpfs on /run and /var/log there"
    for tool in ("unshare", "journalctl", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    p = subprocess.run(UNSHARE + ["true"], capture_output=True, text=True, timeout=TIMEOUT)
    if p.returncode != 0:
        return f"cannot make a private mount and PID namespace here: {p.stderr.strip()}"
    return None


class JournalNamespace:
    """journal-ns.py running COMMAND; its status lines are collected by a thread."""

    def __init__(self, out: Path, argv, env):
        self.out = out
        out.mkdir()
        argv = UNSHARE + ["/usr/bin/python3", str(DRIVER), str(out), "--", *[str(a) for a in argv]]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, *prefixes, timeout=TIMEOUT):
        """The next status line, which must start with one of `prefixes`; returns the rest of it."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = "(nothing within the timeout)"
        if line is None:
            self.proc.wait(timeout=TIMEOUT)
            line = (f"(journal-ns.py ended with status {self.proc.returncode}: "
                    f"{self.proc.stderr.read().strip()})")
        self.seen.append(line)
        for prefix in prefixes:
            if line.startswith(prefix + " ") or line == prefix:
                return line[len(prefix):].strip()
        raise AssertionError(f"expected {' or '.join(prefixes)} from journal-ns.py, got {line!r}\n"
                             + self.report())

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def pending(self):
        """A status line that came unasked (EXITED: upkeepd ended by itself), or None."""
        try:
            line = self.lines.get_nowait()
        except queue.Empty:
            return None
        self.seen.append(line)
        return line

    def wait_idle(self, bus):
        """upkeepd is up on the bus and idle (past the start's confirmation)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            line = self.pending()
            assert line is None, f"upkeepd: {line}\n" + self.report()
            p = bus.busctl("get-property", NAME, PATH, IFACE, "State")
            if p.returncode == 0 and json.loads(p.stdout)["data"] == "idle":
                return
            time.sleep(0.05)
        raise AssertionError("upkeepd did not come up idle on the bus\n" + self.report())

    def text(self, name):
        path = self.out / name
        return path.read_text(errors="replace") if path.exists() else ""

    def report(self):
        return (f"status lines: {self.seen}\nupkeepd stdout:\n{self.text('command.stdout')}\n"
                f"upkeepd stderr:\n{self.text('command.stderr')}\njournald:\n{self.text('journald.log')}")

    def close(self):
        """Stop everything, also on failure: end of input stops COMMAND and journald; killing unshare
        (--kill-child) kills the driver, and with PID 1 of the namespace gone the kernel kills the rest."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def journal_entries(directory):
    p = subprocess.run(["journalctl", "-D", str(directory), "-o", "json", "--no-pager"], capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def own(entry):
    return {k: v for k, v in entry.items() if k in OWN_FIELDS}


def entry(priority, message, **upkeep):
    """What upkeepd sends for one line: its own fields only."""
    e = {"MESSAGE": message, "PRIORITY": priority, "SYSLOG_IDENTIFIER": "upkeepd"}
    e.update({f"UPKEEP_{k.upper()}": v for k, v in upkeep.items()})
    return e


def test_journal_fields_and_fallback(tmp_path, bus, monitor):
    why = preflight()
    if why:
        pytest.skip(why)
    device = Device(tmp_path / "dev")
    payload = payload_bytes()
    good = make_bundle(tmp_path, "1.1.0", payload, name="good")
    # The payload changed after signing: the hash check catches it while writing.
    tampered = make_bundle(tmp_path, "1.1.0", payload, name="tampered", create_args=STORED)
    data = bytearray(tampered.read_bytes())
    data[data.find(payload[:4096]) + PAYLOAD_SIZE // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    # The signed manifest changed: the signature check catches it before anything is written.
    forged = make_bundle(tmp_path, "1.2.0", payload, name="forged")
    data = bytearray(forged.read_bytes())
    data[data.find(b'"compatible"') + 3] ^= 0x01
    forged.write_bytes(bytes(data))

    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
    env.pop("UPKEEP_TEST_CRASH_AT", None)
    ns = JournalNamespace(tmp_path / "ns", [UPKEEPD, "--config", device.conf, "--no-reboot"], env)
    try:
        started = ns.expect("READY", "SKIP")
        if ns.seen[-1].startswith("SKIP"):
            pytest.skip(f"systemd-journald cannot run here: {started}")
        pid = started
        ns.wait_idle(bus)

        install(bus, tampered)
        ok, msg_tampered, error = monitor.finished()
        assert (ok, error) == (False, "io.upkeep.Update1.Error.Payload"), (msg_tampered, ns.report())
        assert msg_tampered.startswith('rejected: payload "rootfs": chunk 2 (bytes 524288..786431): sha256 '
                                       'mismatch'), msg_tampered
        install(bus, good)
        assert monitor.finished(after=1) == (True, "installed version 1.1.0 into slot B", ""), ns.report()
        assert ns.pending() is None, ns.report()
        # In journal mode nothing goes to stderr or stdout.
        assert ns.text("command.stderr") == "", ns.report()
        assert ns.text("command.stdout") == "", ns.report()

        # journald goes away; the daemon keeps running and its lines go to stderr, with level and fields.
        ns.send("stop-journald")
        ns.expect("JOURNALD-STOPPED")
        install(bus, forged)
        ok, msg_forged, error = monitor.finished(after=2)
        assert (ok, error) == (False, "io.upkeep.Update1.Error.Signature"), (msg_forged, ns.report())
        assert msg_forged.startswith("rejected: signature"), msg_forged

        ns.send("stop")
        status = ns.expect("EXIT")
        assert status == "0", ns.report()
    finally:
        ns.close()

    entries = journal_entries(ns.out / "journal")
    from_upkeepd = [e for e in entries if e.get("_PID") == pid]
    # Every line upkeepd sent is a native-protocol entry with its identifier and a priority; no other
    # process sent one under its name.
    assert from_upkeepd, json.dumps(entries, indent=1)
    for e in from_upkeepd:
        assert e["SYSLOG_IDENTIFIER"] == "upkeepd", e
        assert e["_TRANSPORT"] == "journal", e
        assert e["PRIORITY"] in ("0", "1", "2", "3", "4", "5", "6", "7"), e
    assert [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "upkeepd" and e.get("_PID") != pid] == []

    # "install: PHASE" lines come with the phases the daemon saw progress in; which ones, depends on timing.
    got = []
    phases = []
    for e in map(own, from_upkeepd):
        if e["MESSAGE"].startswith("install: "):
            phase = e["MESSAGE"][len("install: "):]
            assert e == entry(INFO, f"install: {phase}", phase=phase)
            phases.append(phase)
        elif "block table" in e["MESSAGE"]:
            # The booted slot's block table, made in the background after the start until the first
            # install stops it: when depends on timing. Its lines are debug, but the one that it is ready.
            ready = e["MESSAGE"].startswith("block table of slot rootfs.A ready for delta updates: ")
            assert e == entry(INFO if ready else DEBUG, e["MESSAGE"], slot="A"), e
        else:
            got.append(e)
    assert phases and set(phases) <= PHASES, phases
    assert got == [
        entry(INFO, "state: confirming", phase="health-checks"),
        entry(INFO, "state: idle"),
        entry(NOTICE, f"installing {tampered}"),
        entry(INFO, "state: installing"),
        entry(ERR, f"install of {tampered} failed: {msg_tampered}", phase="failed"),
        entry(INFO, "state: error"),
        entry(NOTICE, f"installing {good}"),
        entry(INFO, "state: installing"),
        entry(NOTICE, f"installed version 1.1.0 into slot B from {good}; it boots once on the next reboot "
                      "and must then be confirmed", phase="done", version="1.1.0", slot="B"),
        entry(INFO, "state: pending-reboot"),
    ], "\n".join(json.dumps(g) for g in got)
    # The rejection names its reason at PRIORITY=3 (err).
    [rejection] = [e for e in from_upkeepd if e["PRIORITY"] == ERR]
    assert 'payload "rootfs": chunk 2 (bytes 524288..786431): sha256 mismatch' in rejection["MESSAGE"], \
        rejection

    # After journald stopped: the same lines on stderr, in the stderr format of logging.h.
    lines = [line for line in ns.text("command.stderr").splitlines()
             if not re.fullmatch(r"upkeepd: install: ([a-z-]+) \[UPKEEP_PHASE=\1\]", line)]
    assert lines == [
        f"upkeepd: installing {forged}",
        "upkeepd: state: installing",
        f"upkeepd: error: install of {forged} failed: {msg_forged} [UPKEEP_PHASE=failed]",
        "upkeepd: state: error",
        "upkeepd: received Terminated, stopping",
        "upkeepd: stopped",
    ], ns.report()
    assert ns.text("command.stdout") == "", ns.report()
