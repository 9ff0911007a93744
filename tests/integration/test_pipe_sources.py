# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sources that can stall for good: a FIFO given to the bus Install is refused at once (the daemon reads
bundles only from regular files), a local source folder with a FIFO in it is not blocked by it, and a
pipe the caller owns ("updatectl install -") installs, and when it stalls, Cancel and SIGTERM end the
install at once. The offline verb still reads a FIFO (its caller owns it)."""

import os
import signal
import subprocess
import threading
import time

import pytest

from device import Device
from test_client import TIMEOUT, Bus, Daemon, bundle, describe, make_device

DEADLINE = 30  # seconds: generous; the measured time is printed


@pytest.fixture
def bus():
    b = Bus()
    yield b
    b.close()


@pytest.fixture
def daemon(tmp_path, bus):
    d = Daemon(make_device(tmp_path), bus, tmp_path / "upkeepd.log")
    d.start()
    yield d
    d.stop()


def feed_fifo(path, data):
    """Write `data` into the FIFO once a reader opened it (in a thread; joined by the caller)."""
    def writer():
        with open(path, "wb") as f:
            f.write(data)
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    return t


def test_fifo_refused_by_the_bus_install(tmp_path, daemon):
    fifo = tmp_path / "bundle.upk"
    os.mkfifo(fifo)
    slot_b = daemon.device.slot["B"].read_bytes()
    start = time.monotonic()
    p = daemon.ctl("install", fifo, timeout=DEADLINE)
    print(f"refused after {time.monotonic() - start:.3f} s")
    assert p.returncode == 1, describe(p) + daemon.log_text()
    # The message reaches every local user (Finished, LastError): the path is left out there; the
    # journal names it (upkeep-dbus(7), ACCESS).
    reason = ('is a FIFO, not a regular file: the daemon reads bundles only from regular files '
              '("updatectl install -" hands it a pipe)')
    assert p.stderr == f"updatectl: <path> {reason}\n", describe(p)
    assert f"{fifo} {reason}" in daemon.log_text()
    s = daemon.status()
    assert s["state"] == "error"
    assert s["last_error"] == p.stderr[len("updatectl: "):-1]
    # Nothing changed: slot B, the boot environment and the booted slot's place.
    assert daemon.device.slot["B"].read_bytes() == slot_b
    assert daemon.device.primary() == "A"
    # A symbolic link to a regular file still installs.
    link = tmp_path / "link.upk"
    link.symlink_to(bundle(tmp_path, "2.0.0"))
    p = daemon.ctl("install", link)
    assert p.returncode == 0, describe(p) + daemon.log_text()


def test_pipe_from_updatectl_installs(tmp_path, daemon):
    b = bundle(tmp_path, "2.0.0")
    with open(b, "rb") as f:
        p = subprocess.run(daemon.argv("install", "-"), stdin=f, capture_output=True, text=True,
                           env=daemon.env(), timeout=TIMEOUT)
    assert p.returncode == 0, describe(p) + daemon.log_text()
    assert p.stdout.splitlines()[-1] == "installed version 2.0.0 into slot B", describe(p)
    assert "installing the bundle piped by the caller" in daemon.log_text()
    # The source "-" needs the descriptor; a terminal is refused by updatectl itself.
    assert daemon.device.state()["pending"]


def stalled_install(tmp_path, daemon):
    """`updatectl install -` whose pipe delivered the first bytes of a bundle and then stalls."""
    head = bundle(tmp_path, "2.0.0").read_bytes()[:3000]
    r, w = os.pipe()
    inst = subprocess.Popen(daemon.argv("install", "-"), stdin=r, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=daemon.env())
    os.close(r)
    os.write(w, head)
    # The daemon reads them and waits for more, in the phase "verifying".
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        s = daemon.status()
        if s["state"] == "installing" and s["phase"] == "verifying":
            break
        time.sleep(0.05)
    else:
        inst.kill()
        os.close(w)
        raise AssertionError(f"the install did not start: {s}\n" + daemon.log_text())
    return inst, w


def test_stalled_pipe_cancelled(tmp_path, daemon):
    inst, w = stalled_install(tmp_path, daemon)
    try:
        start = time.monotonic()
        p = daemon.ok("cancel")
        assert p.stdout == "cancelling the running install\n"
        out, err = inst.communicate(timeout=DEADLINE)
        print(f"the install ended {time.monotonic() - start:.3f} s after the cancel")
    finally:
        if inst.poll() is None:
            inst.kill()
            inst.wait()
        os.close(w)
    assert inst.returncode == 1, out + err
    assert err == "updatectl: the install was cancelled; nothing was activated\n", err
    s = daemon.wait_state("idle", "error")
    assert s["last_error"] == "the install was cancelled; nothing was activated"
    assert daemon.device.primary() == "A"
    # The next install works.
    p = daemon.ctl("install", bundle(tmp_path, "2.0.1"))
    assert p.returncode == 0, describe(p) + daemon.log_text()


def test_stalled_pipe_sigterm(tmp_path, daemon):
    inst, w = stalled_install(tmp_path, daemon)
    try:
        start = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        rc = daemon.proc.wait(timeout=DEADLINE)
        print(f"upkeepd ended {time.monotonic() - start:.3f} s after SIGTERM")
        daemon.proc = None
        out, err = inst.communicate(timeout=DEADLINE)
    finally:
        if inst.poll() is None:
            inst.kill()
            inst.wait()
        os.close(w)
    assert rc == 0, daemon.log_text()
    assert inst.returncode == 1, out + err
    assert "cancelling the install of the bundle piped by the caller" in daemon.log_text()


def test_local_source_skips_a_fifo(tmp_path, bus):
    dev = make_device(tmp_path)
    folder = tmp_path / "usb"
    folder.mkdir()
    os.mkfifo(folder / "a-stalled.upk")
    good = bundle(tmp_path, "2.0.0")
    os.rename(good, folder / "b-good.upk")
    with open(dev.conf, "a") as f:
        f.write(f"\n[source]\ntype = local\ndir = {folder}\n")
    d = Daemon(dev, bus, tmp_path / "upkeepd.log")
    d.start()
    try:
        p = d.ctl("check", timeout=DEADLINE)
        assert p.returncode == 0, describe(p) + d.log_text()
        assert "2.0.0" in p.stdout, describe(p)
    finally:
        d.stop()


def test_offline_verb_reads_a_fifo(tmp_path):
    dev = Device(tmp_path / "dev")
    b = bundle(tmp_path, "2.0.0")
    fifo = tmp_path / "pipe.upk"
    os.mkfifo(fifo)
    t = feed_fifo(fifo, b.read_bytes())
    p = dev.install(fifo)
    t.join(timeout=TIMEOUT)
    assert p.returncode == 0, describe(p)
    assert "installed version 2.0.0 into slot B" in p.stdout
