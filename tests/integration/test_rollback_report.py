# SPDX-License-Identifier: LGPL-2.1-or-later
"""One rule for a rolled-back update (issue 13): whether its health check failed (the daemon marked the
slot bad and went back) or the bootloader came back to the old slot without a confirmation, the old slot
shows State idle, an empty LastError and RolledBack (version, slot, reason, time) on the bus, in
`updatectl status` (and --json) and in the journal, across restarts, until AcknowledgeRollback (polkit:
root here) or a confirmed update; a damaged record in state.json is dropped alone."""

import json
import os
import subprocess

from device import UPDATECTL, Device, make_bundle, payload_bytes  # noqa: F401
from test_daemon import AS_NOBODY, bus, device, monitor, service  # noqa: F401 (fixtures)

DENIED = "updatectl: permission denied: updates can only be managed by root or with the polkit action io.upkeep.manage"
NOT_CONFIRMED = "version 1.1.0 on slot B was not confirmed: the system came back up on slot A"


def ctl(bus, *args, user=None):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
    cmd = (AS_NOBODY if user == "nobody" else []) + [UPDATECTL, *[str(a) for a in args]]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def status_lines(bus):
    p = ctl(bus, "status")
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def failing_check(device):
    check = device.health / "10-network"
    check.write_text("#!/bin/sh\necho 'gateway unreachable' >&2\nexit 3\n")
    check.chmod(0o755)
    return check


def assert_reported(bus, version, slot, reason):
    """State idle, no LastError, RolledBack and the status lines: what the old slot shows."""
    assert bus.get("State") == "idle"
    assert bus.get("LastError") == ""
    got = bus.get("RolledBack")
    assert got[:3] == [version, slot, reason], got
    assert got[3] > 0
    lines = status_lines(bus)
    assert "        State: idle" in lines, lines
    rolled = [line for line in lines if line.startswith("  Rolled back: ")]
    assert len(rolled) == 1 and rolled[0].startswith(f"  Rolled back: version {version} on slot {slot}, "), lines
    assert f"       Reason: {reason}" in lines, lines
    assert not any(line.startswith("   Last error:") for line in lines), lines
    p = ctl(bus, "status", "--json")
    s = json.loads(p.stdout)
    assert s["state"] == "idle" and s["last_error"] == ""
    assert s["rolled_back"] == {"version": version, "slot": slot, "reason": reason, "time": got[3]}, s


def assert_not_reported(bus):
    assert bus.get("RolledBack") == ["", "", "", 0]
    assert not any(line.startswith("  Rolled back:") for line in status_lines(bus))
    assert json.loads(ctl(bus, "status", "--json").stdout)["rolled_back"] is None


def test_health_check_rollback(tmp_path, bus, device, service):
    check = failing_check(device)
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    assert device.reboot() == "B"
    d = service()
    # On the failed slot, before the reboot back: the confirmation failed.
    assert bus.get("State") == "error"
    reason = "health check <path> exited with status 3: gateway unreachable"
    assert bus.get("LastError") == f"update to version 1.1.0 on slot B failed: {reason}"
    assert bus.get("RolledBack")[:3] == ["1.1.0", "B", reason]
    record = device.state()["rollback"]
    assert record["reason"] == reason.replace("<path>", str(check)) and record["acknowledged"] is False
    d.stop()

    # Back on A: the same report as after a bootloader fallback, across restarts.
    assert device.reboot() == "A"
    for _ in range(2):
        d = service()
        assert_reported(bus, "1.1.0", "B", reason)
        assert bus.get("RolledBack", user="nobody")[:3] == ["1.1.0", "B", reason]
        assert ("the update to version 1.1.0 on slot B was rolled back (" in d.text()
                and f"): health check <path> exited with status 3: gateway unreachable; "
                    "\"updatectl acknowledge\" once seen" in d.text()), d.text()
        d.stop()

    # Acknowledged: by root (polkit's job), not by anyone else; gone from status, kept in the state.
    d = service()
    p = ctl(bus, "acknowledge", user="nobody")
    assert p.returncode == 4 and p.stderr == DENIED + "\n", p.stderr
    assert bus.get("RolledBack")[1] == "B"
    p = ctl(bus, "acknowledge")
    assert p.returncode == 0 and p.stdout == "acknowledged the rollback of version 1.1.0\n", p.stdout + p.stderr
    assert_not_reported(bus)
    assert device.state()["rollback"]["acknowledged"] is True
    assert "the rollback of version 1.1.0 on slot B is acknowledged" in d.text()
    p = ctl(bus, "acknowledge")
    assert p.returncode == 0 and p.stdout == "no rollback to acknowledge\n", p.stdout
    d.stop()
    d = service()
    assert_not_reported(bus)
    assert "was rolled back" not in d.text()


def test_bootloader_fallback_then_a_good_update(tmp_path, bus, device, service):
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    assert device.reboot() == "B"  # never confirmed: it hung
    assert device.reboot() == "A"
    d = service()
    assert_reported(bus, "1.1.0", "B", NOT_CONFIRMED)
    assert f"update to version 1.1.0 on slot B failed: {NOT_CONFIRMED}" in d.text()
    d.stop()
    d = service()
    assert_reported(bus, "1.1.0", "B", NOT_CONFIRMED)
    d.stop()

    # An install waiting for its reboot leaves the report; its confirmation ends it.
    assert device.install(make_bundle(tmp_path, "1.2.0", payload_bytes(2))).returncode == 0
    d = service()
    assert bus.get("State") == "pending-reboot"
    assert bus.get("RolledBack")[:2] == ["1.1.0", "B"]
    d.stop()
    assert device.reboot() == "B"
    d = service()
    assert bus.get("State") == "idle" and bus.get("CurrentVersion") == "1.2.0"
    assert_not_reported(bus)
    assert device.state()["rollback"] is None


def test_a_rolled_back_slot_started_again_is_refused(tmp_path, bus, device, service):
    """The bootloader's environment is lost after a fallback (a torn single-copy U-Boot environment reads
    as none, and both slots get attempts) and it starts B, which still holds the rolled-back 1.1.0: the
    daemon does not confirm it, marks it bad, A good and says why (with reboot = auto it also reboots
    back; this device has reboot = manual, and its next boot goes to A)."""
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    assert device.reboot() == "B"
    assert device.reboot() == "A"
    d = service()
    assert_reported(bus, "1.1.0", "B", NOT_CONFIRMED)
    d.stop()
    device.bootenv.write_text("BOOT_ORDER=B A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\nBOOTED=A\n")
    assert device.reboot() == "B"
    d = service()
    why = ("slot B still holds version 1.1.0, which was rolled back here (" + NOT_CONFIRMED + "), but the "
           "bootloader started it as a good slot: its boot environment was lost or reset; back to slot A")
    assert bus.get("State") == "error"
    assert bus.get("LastError") == f"update to version 1.1.0 on slot B failed: {why}"
    assert f"update to version 1.1.0 on slot B failed: {why}" in d.text()
    assert device.primary() == "A"
    assert device.reboot() == "A"
    d.stop()
    d = service()
    assert bus.get("State") == "idle" and bus.get("CurrentVersion") == "1.0.0"
    assert_reported(bus, "1.1.0", "B", NOT_CONFIRMED)


def test_damaged_record_is_dropped_alone(tmp_path, bus, device, service):
    data = device.data
    data.mkdir(exist_ok=True)
    good = {"version": "1.1.0", "slot": "B", "reason": "x", "time": 5, "acknowledged": False}
    for name, record, problem in (
            ("long", dict(good, reason="r" * 1025), "its reason is longer than 1024 bytes"),
            ("slot", dict(good, slot="B/../A"), "its slot is missing or not a slot name"),
            ("type", dict(good, time="soon"), "a field has the wrong type"),
            ("version", dict(good, version="one"), "its version is not a version"),
            ("list", [1], "not an object")):
        state = {"version_floor": "1.0.0", "auto_update": False, "postpone_until": 0, "rollback": record}
        text = json.dumps(state)
        (data / "state.json").write_text(text)
        d = service()
        path = data / "state.json"
        assert (f"{path}: the record of the rolled-back update is damaged ({problem}): dropped, the rest "
                f"of the state is kept (the file as it was is kept as {path}.corrupt)") in d.text(), name
        assert d.text().count("the record of the rolled-back update is damaged") == 1, d.text()
        assert_not_reported(bus)
        assert bus.get("AutoUpdate") is False  # the rest is kept
        assert device.state()["version_floor"] == "1.0.0" and device.state()["rollback"] is None
        assert (data / "state.json.corrupt").read_text() == text
        d.stop()
