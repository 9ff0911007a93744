# SPDX-License-Identifier: LGPL-2.1-or-later
"""The booted slot's block table, made in the background (upkeepd(8), Delta updates): once the booted slot
is confirmed good (at the start, or by MarkGood) and [install] delta is on, upkeepd hashes it at idle
priority into the data folder, so that the first delta install finds it there ("block table cached" in
its delta line). The State stays idle meanwhile, and every job (an install here) stops it first: the
install starts at once. The world is test_delta.py's: slot A holds v1 (8 MiB), the bundle of v2 is served
from a URL. UPKEEP_TEST_PREPARE_DELAY_MS (a test build's hook) makes the hashing slow enough to act while
it runs."""

import signal
import subprocess
import time

import pytest

from test_daemon import Service, install, thread_nices
from test_delta import (BLOCKS, BUNDLE_PATH, INSTALLED, NO_AUTO_CHECK, SHORT_FILE, World, assert_installed,
                        skip_unless_short_file, the_delta_line, bundle, pair)  # noqa: F401 (fixtures)

TABLE_A = "blocks-rootfs-A.table"
TABLE_B = "blocks-rootfs-B.table"
READY_A = f"block table of slot rootfs.A ready for delta updates: {BLOCKS} blocks in "
READY_B = f"block table of slot rootfs.B ready for delta updates: {BLOCKS} blocks in "
RUNNING = "computing the block tables of slot A for delta updates in the background"
GIVEN_UP = "block tables of slot A: given up for the install"
SLOW = {**NO_AUTO_CHECK, "UPKEEP_TEST_PREPARE_DELAY_MS": "3000"}  # 8 MiB: 24 s at least


@pytest.fixture
def worlds(tmp_path, pair, bundle):  # noqa: F811
    """worlds(**kw): a World (not started) under tmp_path; all closed at the end."""
    made = []

    def make(**kw):
        w = World(tmp_path / f"w{len(made)}", pair[0], bundle, **kw)
        made.append(w)
        return w
    try:
        yield make
    finally:
        for w in made:
            w.close()


def start(w, env=NO_AUTO_CHECK):
    s = Service(w.bus, w.device, env=env)
    w.services.append(s)
    return s


def wait_for(what, pred, w, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{w.log()}")


def leftovers(w):
    """What is in the data folder besides the state, the history and the lock."""
    return sorted(p.name for p in w.device.data.iterdir() if p.name not in ("state.json", "history.json", "lock")) \
        if w.device.data.exists() else []


def test_the_booted_slots_table_is_made_before_any_install(worlds, pair):
    """(a) No install asked: the table of slot A appears in the data folder, one info line says so, the
    State stays idle with no progress; the delta install that follows takes the table as it is."""
    v1, v2, _ = pair
    w = worlds()
    start(w)
    table = w.device.data / TABLE_A
    wait_for("slot A's block table", lambda: READY_A in w.log(), w)
    assert table.stat().st_size > 0, w.log()
    assert leftovers(w) == [TABLE_A], w.log()
    assert w.log().count("ready for delta updates") == 1, w.log()
    assert set(w.monitor.states()) <= {"idle"}, (w.monitor.states(), w.log())
    assert not w.monitor.find(lambda m: m.get("member") == "PropertiesChanged" and
                              "Progress" in m["payload"]["data"][1]), w.log()
    assert w.bus.get("State") == "idle"
    made = table.stat().st_mtime_ns
    finished = w.install()
    assert_installed(w, finished, v1, v2)
    assert the_delta_line(w)["table"] == "cached", w.log()
    assert table.stat().st_mtime_ns == made, w.log()


def test_an_install_does_not_wait_for_the_background_table(worlds, pair):
    """(b) While the background hashing runs (slowed down to take half a minute) in a thread at nice 19
    and in the idle I/O class, the event loop's thread keeping its priority, an install starts at once
    and succeeds: the hashing is given up (no table file, no temporary file left), and the install
    computes the table itself. With the update waiting for its reboot, the hashing does not come back."""
    v1, v2, _ = pair
    w = worlds()
    s = start(w, env=SLOW)
    wait_for("the background hashing", lambda: RUNNING in w.log(), w)
    time.sleep(0.5)
    pid = s.proc.pid
    nices = thread_nices(pid)
    if nices[pid] < 19:  # the test runner is not niced to the end itself
        (tid,) = [t for t, n in nices.items() if n == 19]
        io = subprocess.run(["ionice", "-p", str(tid)], capture_output=True, text=True, timeout=30)
        assert io.stdout.strip() == "idle", (io.stdout, io.stderr)
        main = subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True, timeout=30)
        assert main.stdout.strip() != "idle", main.stdout
    t0 = time.monotonic()
    install(w.bus, w.server.url(BUNDLE_PATH))
    wait_for("the install's start", lambda: w.bus.get("State") in ("downloading", "installing"), w)
    started = time.monotonic() - t0
    assert started < 2.5, (started, w.log())
    finished = w.monitor.finished(timeout=90)
    assert_installed(w, finished, v1, v2)
    log = w.log()
    assert GIVEN_UP in log, log
    assert log.index(GIVEN_UP) < log.index(INSTALLED), log
    assert the_delta_line(w)["table"] == "computed", log
    assert "ready for delta updates" not in log, log
    # The install saved slot A's table; nothing else (no half-written file) is there.
    assert leftovers(w) == [TABLE_A], log
    time.sleep(1)
    assert w.log().count(RUNNING) == 1, w.log()


def test_sigterm_and_sigkill_during_the_background_table(worlds):
    """SIGTERM while the (slow) hashing runs: upkeepd stops within seconds and leaves no file. SIGKILL
    while it runs: the next start makes the table all the same (it is only a cache)."""
    w = worlds()
    s = start(w, env=SLOW)
    wait_for("the background hashing", lambda: RUNNING in w.log(), w)
    time.sleep(0.5)
    t0 = time.monotonic()
    assert s.stop(signal.SIGTERM, timeout=10) == 0, w.log()
    assert time.monotonic() - t0 < 5, w.log()
    assert leftovers(w) == [], w.log()

    s = start(w, env=SLOW)
    wait_for("the background hashing", lambda: w.log().count(RUNNING) == 2, w)
    time.sleep(0.5)
    s.kill()
    start(w)
    wait_for("slot A's block table", lambda: READY_A in w.log(), w)
    assert leftovers(w) == [TABLE_A], w.log()


def test_delta_no_makes_no_table(worlds):
    """(c) [install] delta = no: no hashing, no table."""
    w = worlds(delta="no")
    start(w)
    time.sleep(3)  # (a) sees the table within a second
    log = w.log()
    assert RUNNING not in log and "block table" not in log, log
    assert leftovers(w) == [], log
    assert w.bus.get("State") == "idle"


def test_mark_good_makes_the_table_again(worlds):
    """MarkGood confirms the booted slot by hand: the table is made again when it is missing."""
    w = worlds()
    start(w)
    table = w.device.data / TABLE_A
    wait_for("slot A's block table", lambda: READY_A in w.log(), w)
    table.unlink()
    assert w.bus.call("MarkGood") is None
    wait_for("slot A's block table again", lambda: w.log().count(READY_A) == 2, w)
    assert table.stat().st_size > 0
    assert w.bus.get("State") == "idle"


def test_after_the_reboot_the_new_slot_gets_its_table(worlds, pair):
    """(d) Install (a delta), reboot into B, confirmation: slot B's table is made in the background, and
    slot B being the booted slot now, an update from it would find it."""
    v1, v2, _ = pair
    w = worlds()
    s = start(w)
    wait_for("slot A's block table", lambda: READY_A in w.log(), w)
    finished = w.install()
    assert_installed(w, finished, v1, v2)
    assert s.stop() == 0, w.log()
    assert w.device.reboot() == "B"
    s = start(w)
    wait_for("the confirmation", lambda: "confirmed version 1.1.0 on slot B" in s.text(), w)
    wait_for("slot B's block table", lambda: READY_B in s.text(), w)
    assert (w.device.data / TABLE_B).stat().st_size > 0, s.text()
    assert READY_A not in s.text(), s.text()
    assert w.bus.get("State") == "idle"


def test_a_booted_slot_that_cannot_be_read_gets_one_warning(worlds):
    """Slot A opens and says it has bytes but reads short (a sysfs file): one warning naming the slot, the
    file and the reason; no table, and the service stays idle."""
    skip_unless_short_file()
    w = worlds()
    conf = w.device.conf.read_text()
    line = f"[slot.rootfs.A]\ndevice = {w.device.slot['A']}\n"
    assert line in conf, conf
    w.device.conf.write_text(conf.replace(line, f"[slot.rootfs.A]\ndevice = {SHORT_FILE}\n", 1))
    start(w)
    wait_for("the warning", lambda: "warning: cannot prepare" in w.log(), w)
    time.sleep(1)
    log = w.log()
    (warning,) = [x for x in log.splitlines() if x.startswith("upkeepd: warning: ")]
    assert warning.startswith("upkeepd: warning: cannot prepare the booted slot's block table for delta updates: "
                              f"slot rootfs.A: {SHORT_FILE}: ends at byte "), warning
    assert "the first delta install will try again" in warning, warning
    assert "ready for delta updates" not in log, log
    assert leftovers(w) == [], log
    assert w.bus.get("State") == "idle"
    assert w.bus.get("LastError") == ""


def test_a_check_runs_beside_the_background_table(worlds):
    """A Check (a local source here; a scheduled check or a hawkBit poll starts the same job) while the
    slow hashing runs: answered at once, and the hashing goes on (a device polled more often than its slot
    takes to hash must still get its table); an install then stops it."""
    w = worlds()
    folder = w.tmp / "usb"
    folder.mkdir()
    conf = w.device.conf.read_text()
    assert "\n[source]\ntype = none\n" in conf, conf
    w.device.conf.write_text(conf.replace("\n[source]\ntype = none\n", f"\n[source]\ntype = local\ndir = {folder}\n"))
    start(w, env=SLOW)
    wait_for("the background hashing", lambda: RUNNING in w.log(), w)
    time.sleep(0.5)
    t0 = time.monotonic()
    for _ in range(3):
        assert w.bus.call("Check") == [""], w.log()  # up to date
    assert time.monotonic() - t0 < 2.5, w.log()
    time.sleep(0.5)
    assert "given up" not in w.log() and w.log().count(RUNNING) == 1, w.log()
    assert w.bus.get("State") == "idle"
    assert leftovers(w) == [], w.log()
