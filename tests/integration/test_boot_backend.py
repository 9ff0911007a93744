# SPDX-License-Identifier: LGPL-2.1-or-later
"""upkeepd with a `script` boot backend whose program the test can hold: while a hold file exists, a call
of the program begins and waits until the test releases it. The event loop never runs the program: the
booted slot is read once at the start in the worker, GetSlots is answered when a read in a worker ends,
Rollback and MarkGood are jobs. Meanwhile the bus answers at once."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from device import Device
from test_daemon import IFACE, NAME, PATH, bus, monitor, service, stop_group  # noqa: F401 (bus, monitor, service: fixtures)

SOURCE_ROOT = Path(os.environ.get("UPKEEP_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
EXAMPLE = SOURCE_ROOT / "contrib" / "boot-script-example.sh"

# The backend's program: it notes each call's begin and end in a log (the events the test waits on),
# waits while the hold file exists, and lets contrib's example program do the work on the KEY=VALUE file
# of the file backend (so upkeep-bootsim can play the bootloader on it).
SCRIPT = """#!/bin/sh
echo "begin $$ $*" >>{log}
while [ -e {hold} ]; do sleep 0.02; done
/bin/sh {example} "$@"
status=$?
echo "end $$ $*" >>{log}
exit $status
"""

# How fast the bus must answer while the program is held. The daemon's own work for a property read is
# microseconds. The test checks the event as well: the held program cannot end, so a loop that waited
# for it would not answer at all, and the call that waits on the program is still pending when the
# property's answer is there.
ANSWER_SEC = 0.5

# The daemon's timeout for one call of the program (UPKEEP_TEST_BOOT_TIMEOUT_MS): above any hold of
# the test, so that a held call is never killed on a slow machine.
TIMEOUT_ENV = {"UPKEEP_TEST_BOOT_TIMEOUT_MS": "600000"}


class Calls:
    """The program's log: which calls began and ended; and its hold."""

    def __init__(self, path, hold):
        self.path = path
        self.hold_file = hold

    def hold(self):
        """Calls that begin from now on wait until release()."""
        self.hold_file.touch()

    def release(self):
        self.hold_file.unlink(missing_ok=True)

    def lines(self):
        return self.path.read_text().splitlines() if self.path.exists() else []

    def begun(self):
        return [line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
                for line in self.lines() if line.startswith("begin ")]

    def running(self):
        """The arguments of the calls that began and did not end."""
        open_calls = {}
        for line in self.lines():
            word, pid, *args = line.split(" ", 2)
            if word == "begin":
                open_calls[pid] = args[0] if args else ""
            else:
                open_calls.pop(pid, None)
        return list(open_calls.values())

    def wait_begun(self, n, timeout=60):
        """Until at least `n` calls began; returns the arguments of the n-th."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            begun = self.begun()
            if len(begun) >= n:
                return begun[n - 1]
            time.sleep(0.02)
        raise AssertionError(f"the boot program was called {len(self.begun())} times, not {n}:\n"
                             + "\n".join(self.lines()))


class Call:
    """A method call in the background (busctl), answered later."""

    def __init__(self, bus, method):
        self.proc = subprocess.Popen(["busctl", f"--address={bus.address}", "--json=short", "call", NAME, PATH,
                                      IFACE, method], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)

    def pending(self):
        return self.proc.poll() is None

    def result(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def stop(self):
        stop_group(self.proc)


def quick_get(bus, prop):
    """A property read and how long the bus took to answer it."""
    start = time.monotonic()
    value = bus.get(prop)
    return value, time.monotonic() - start


@pytest.fixture
def device(tmp_path):
    """The test device (booted A) with the script backend on its boot environment file; slot B is
    bootable (good, one attempt left, no try marker), so a rollback to B is possible and shows. (A try
    marker without a pending update in the state is what a damaged state.json leaves: the daemon would
    recover it as an update that fell back and mark B bad.)"""
    d = Device(tmp_path / "dev")
    calls_log = tmp_path / "calls.log"
    hold = tmp_path / "hold"
    script = tmp_path / "slow-boot"
    script.write_text(SCRIPT.format(log=calls_log, hold=hold, example=EXAMPLE))
    script.chmod(0o755)
    d.conf.write_text(d.conf.read_text().replace("backend = file\n", f"backend = script\nscript = {script}\n"))
    text = d.bootenv.read_text()
    for key, value in (("BOOT_B_LEFT", "1"),):
        lines = [line for line in text.splitlines() if not line.startswith(f"{key}=")]
        text = "\n".join(lines + [f"{key}={value}"]) + "\n"
    d.bootenv.write_text(text)
    d.calls = Calls(calls_log, hold)
    yield d
    d.calls.release()  # no program left waiting when a test failed while holding it


@pytest.fixture
def calls():
    made = []

    def call(bus, method):
        c = Call(bus, method)
        made.append(c)
        return c

    yield call
    for c in made:
        c.stop()


def slots(bus):
    return {s[1]: s for s in bus.call("GetSlots")[0]}


def assert_answers_while(bus, waiting, state):
    """Get(State) is answered within ANSWER_SEC while every call in `waiting` still waits (on the held
    program)."""
    value, took = quick_get(bus, "State")
    assert value == state
    assert all(c.pending() for c in waiting), "a call waiting on the boot program was answered first"
    assert took < ANSWER_SEC, f"Get(State) took {took:.2f} s while the boot program ran"


def test_start_reads_the_booted_slot_in_the_worker(bus, device, service):
    device.calls.hold()
    s = service(wait=False, env=TIMEOUT_ENV)
    # The first call of the program is the start's read of the booted slot; meanwhile the bus answers.
    assert device.calls.wait_begun(1) == "get-current"
    value, took = quick_get(bus, "State")
    assert value == "confirming"
    assert took < ANSWER_SEC, f"Get(State) took {took:.2f} s while the boot program ran"
    assert device.calls.running() == ["get-current"]
    device.calls.release()
    s.wait_ready(timeout=120)
    assert bus.get("State") == "idle"
    assert bus.get("BootedSlot") == "A"
    assert bus.get("CurrentVersion") == "1.0.0"
    # read once: property reads do not call the program again
    n = len(device.calls.begun())
    for prop in ("BootedSlot", "CurrentVersion", "State"):
        bus.get(prop)
    assert len(device.calls.begun()) == n
    assert device.calls.running() == []


def test_get_slots_and_rollback_wait_on_the_program_not_the_bus(bus, monitor, device, service, calls):
    service(wait=False, env=TIMEOUT_ENV).wait_ready(timeout=120)
    assert device.calls.running() == []
    n = len(device.calls.begun())

    # Rollback first: its job calls the program (the booted slot, B's state, B good)...
    device.calls.hold()
    rollback = calls(bus, "Rollback")
    device.calls.wait_begun(n + 1)
    # ...and GetSlots, asked meanwhile, waits for it and then reads the slots itself
    get_slots = calls(bus, "GetSlots")
    assert_answers_while(bus, [rollback, get_slots], "idle")
    assert bus.get("BootedSlot") == "A"
    # other jobs are refused while the rollback runs, as during an install
    busy = "the daemon is busy (rolling back); try again when it is done"
    for method in ("MarkGood", "Rollback"):
        p = bus.call(method, check=False)
        assert p.returncode != 0
        assert busy in p.stderr, p.stderr
    assert monitor.error_reply("io.upkeep.Update1.Error.Busy")["payload"]["data"] == [busy]
    assert_answers_while(bus, [rollback, get_slots], "idle")

    device.calls.release()
    rc, out, err = rollback.result(timeout=120)
    assert rc == 0, err
    assert out.strip() == '{"type":"s","data":["B"]}'
    assert device.env()["BOOT_ORDER"].split()[0] == "B"
    rc, out, err = get_slots.result(timeout=120)
    assert rc == 0, err
    got = {s[1]: s for s in json.loads(out)["data"][0]}
    assert got == {
        "A": ["rootfs", "A", "A", str(device.slot["A"]), "good", ""],
        "B": ["rootfs", "B", "B", str(device.slot["B"]), "good", ""],
    }
    assert device.history()[-1]["operation"] == "rollback" and device.history()[-1]["slot"] == "B"
    assert bus.get("State") == "idle" and bus.get("LastError") == ""
    assert device.reboot() == "B"


def test_mark_good_waits_on_the_program_not_the_bus(bus, device, service, calls):
    d = service(wait=False, env=TIMEOUT_ENV)
    d.wait_ready(timeout=120)
    # B first, as after a rollback; MarkGood makes the booted A good and first again
    assert device.env()["BOOT_ORDER"] == "A B"
    rollback = calls(bus, "Rollback")
    assert rollback.result(timeout=120)[0] == 0
    assert device.env()["BOOT_ORDER"].split()[0] == "B"

    n = len(device.calls.begun())
    device.calls.hold()
    mark_good = calls(bus, "MarkGood")
    device.calls.wait_begun(n + 1)
    assert_answers_while(bus, [mark_good], "idle")
    p = bus.call("Install", "sa{sv}", "/nonexistent.upk", "0", check=False)
    assert "the daemon is busy (marking the booted slot good); try again when it is done" in p.stderr
    device.calls.release()
    rc, out, err = mark_good.result(timeout=120)
    assert rc == 0, err
    assert device.env()["BOOT_ORDER"].split()[0] == "A"
    assert device.history()[-1]["operation"] == "mark-good"
    assert "the booted slot is marked good" in d.text()
    assert {s[1]: s[4] for s in slots(bus).values()} == {"A": "good", "B": "good"}

    # SIGTERM while a MarkGood waits on the program: it is answered, then the daemon stops
    n = len(device.calls.begun())
    device.calls.hold()
    mark_good = calls(bus, "MarkGood")
    device.calls.wait_begun(n + 1)
    d.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 120
    while "received Terminated, stopping" not in d.text():
        assert time.monotonic() < deadline, "upkeepd did not log the SIGTERM:\n" + d.text()
        time.sleep(0.02)
    # the signal is handled while the program is held: the daemon waits for it
    assert d.proc.poll() is None, d.text()
    assert mark_good.pending()
    device.calls.release()
    assert d.stop() == 0
    rc, out, err = mark_good.result(timeout=120)
    assert rc == 0, err
    assert device.calls.running() == []
