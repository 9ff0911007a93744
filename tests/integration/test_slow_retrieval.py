# SPDX-License-Identifier: LGPL-2.1-or-later
"""TUF's "slow retrieval" attack: a server on 127.0.0.1 that trickles. A metadata download ends at its
deadline (its maximum length over a minimum rate, plus an allowance), a bundle download below the
minimum average rate ends too, Cancel stops a running check at once, and an install from a local file
does not wait for a trickling check. The limits are shortened with the test hooks of upkeepd
(tests/README.md); the measured times are printed, the assertions wait on events with a generous
deadline."""

import os
import subprocess
import time

from device import UPDATECTL, payload_bytes
from test_poll import NO_AUTO_CHECK, World, describe, make_bundle, slot_b_holds  # noqa: F401 (World: conftest's world)

DEADLINE = 30  # seconds: generous; the measured times are printed
TRICKLE = 5  # bytes per second
SHORT = {"UPKEEP_TEST_METADATA_MIN_RATE": "16384", "UPKEEP_TEST_METADATA_ALLOWANCE_MS": "1000"}


def trickling(tmp_path, world, env):
    w = world(policy="none")
    w.add(make_bundle(tmp_path, "1.1.0", payload_bytes(31)), "1.1.0")
    w.publish()
    w.server.plan("/metadata/timestamp.json", rate=TRICKLE)
    w.start(env=dict(NO_AUTO_CHECK, **env))
    return w


def popen_ctl(w, *args):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=w.bus.address)
    return subprocess.Popen([UPDATECTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def check_trickling(w):
    check = popen_ctl(w, "check")
    try:
        w.wait(lambda: w.server.stats("/metadata/timestamp.json")["bytes_sent"] > 0,
               what="the trickling timestamp.json")
        assert w.get("State") == "checking"
    except BaseException:
        check.kill()
        check.wait()
        raise
    return check


def test_metadata_deadline(tmp_path, world):
    w = trickling(tmp_path, world, SHORT)
    start = time.monotonic()
    p = w.ctl("check")
    print(f"the check ended after {time.monotonic() - start:.3f} s")
    assert p.returncode == 1, describe(p) + w.log()
    assert "timestamp.json: not complete within its deadline of 2.000 s" in p.stderr, describe(p)
    assert "the server is too slow" in p.stderr, describe(p)
    w.wait_state("error")
    assert "timestamp.json: not complete within its deadline" in w.get("LastError")


def test_cancel_of_a_trickling_check(tmp_path, world):
    w = trickling(tmp_path, world, {})  # the real deadline: 34 s for timestamp.json
    check = check_trickling(w)
    try:
        start = time.monotonic()
        p = w.ctl("cancel")
        assert p.returncode == 0, describe(p) + w.log()
        assert p.stdout == "cancelling the running check\n", describe(p)
        out, err = check.communicate(timeout=DEADLINE)
        print(f"the check ended {time.monotonic() - start:.3f} s after the cancel")
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
    assert check.returncode == 1, out + err
    assert err == "updatectl: the check was cancelled\n", err
    w.wait_state("idle")
    assert w.get("LastError") == ""
    # Nothing runs now.
    p = w.ctl("cancel")
    assert p.returncode == 1 and p.stderr == "updatectl: no install is running\n", describe(p)


def test_install_from_a_file_while_a_check_trickles(tmp_path, world):
    w = trickling(tmp_path, world, {})
    payload = payload_bytes(32)
    local = make_bundle(tmp_path, "1.2.0", payload, name="local")
    check = check_trickling(w)
    try:
        start = time.monotonic()
        p = w.ctl("install", local)
        print(f"the install ended {time.monotonic() - start:.3f} s after it was asked for")
        out, err = check.communicate(timeout=DEADLINE)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
    assert p.returncode == 0, describe(p) + w.log()
    assert p.stdout.splitlines()[-1] == "installed version 1.2.0 into slot B", describe(p)
    assert slot_b_holds(w.device, payload)
    assert err == "updatectl: the check was cancelled\n", err
    assert f"cancelling the running check for the install of {local}" in w.log()
    assert w.get("State") == "pending-reboot"


def test_bundle_below_the_minimum_rate(tmp_path, world):
    w = world(policy="none")
    name = w.add(make_bundle(tmp_path, "1.1.0", payload_bytes(33)), "1.1.0")
    w.publish()
    w.server.plan(w.target_path(name), rate=2000)
    w.start(env=dict(NO_AUTO_CHECK, UPKEEP_TEST_BUNDLE_MIN_RATE="100000", UPKEEP_TEST_BUNDLE_GRACE_SEC="1"))
    assert w.bus.call("Check") == ["1.1.0"]
    start = time.monotonic()
    p = w.ctl("install")
    print(f"the install ended after {time.monotonic() - start:.3f} s")
    assert p.returncode == 1, describe(p) + w.log()
    assert "below the minimum average rate of 100000 bytes/s: the server is too slow" in p.stderr, describe(p)
    assert w.device.primary() == "A"
