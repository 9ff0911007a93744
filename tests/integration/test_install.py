# SPDX-License-Identifier: LGPL-2.1-or-later
"""The installer end to end with the real binaries: upkeepd's offline verbs (install, confirm,
mark-good, rollback), file-backed A/B slots, the file boot backend, and upkeep-bootsim playing the
bootloader across simulated reboots."""

import os
import signal

import pytest

from device import PAYLOAD_SIZE, STORED, UPKEEPD, Device, make_bundle, payload_bytes, run


@pytest.fixture
def device(tmp_path):
    return Device(tmp_path / "dev")


def test_install_try_confirm(tmp_path, device):
    payload = payload_bytes()
    bundle = make_bundle(tmp_path, "1.1.0", payload)
    p = device.install(bundle)
    assert p.returncode == 0, p.stderr
    assert "installed version 1.1.0 into slot B" in p.stdout
    assert device.slot["B"].read_bytes() == payload
    env = device.env()
    assert env["BOOT_ORDER"].split()[0] == "B" and env["BOOT_B_LEFT"] == "1"
    assert device.state()["pending"]["version"] == "1.1.0"

    assert device.reboot() == "B"
    p = device.upkeepd("confirm")
    assert p.returncode == 0, p.stderr
    assert "confirmed version 1.1.0 on slot B" in p.stdout
    state = device.state()
    assert state["pending"] is None
    assert state["version_floor"] == "1.1.0"
    assert state["slots"]["B"] == "1.1.0"
    # confirmed: B stays primary over many boots (each start re-arms its attempts)
    for _ in range(5):
        assert device.reboot() == "B"
        assert device.upkeepd("confirm").returncode == 0
    assert [h["operation"] for h in device.history()] == ["install", "confirm"]


def test_not_confirmed_falls_back(tmp_path, device):
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes())
    assert device.install(bundle).returncode == 0
    assert device.reboot() == "B"
    # the new system never confirms (it hung, or crashed before upkeepd ran)
    assert device.reboot() == "A"
    p = device.upkeepd("confirm")
    assert p.returncode == 1
    assert "came back up on slot A" in p.stdout
    assert device.primary() == "A"
    assert device.state()["pending"] is None
    last = device.history()[-1]
    assert last["ok"] is False and "not confirmed" in last["reason"]
    # A's start is confirmed too: its attempts back, no try marker; B stays bad
    env = device.env()
    assert env["BOOT_ORDER"] == "A B" and env["BOOT_A_LEFT"] == "3" and "BOOT_A_TRY" not in env, env
    assert env["BOOT_B_LEFT"] == "0" and "BOOT_B_TRY" not in env, env
    # and the device keeps booting A
    assert device.reboot() == "A"


def test_failing_health_check_rolls_back(tmp_path, device):
    check = device.health / "10-network"
    check.write_text("#!/bin/sh\necho 'gateway unreachable'\nexit 3\n")
    check.chmod(0o755)
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes())
    assert device.install(bundle).returncode == 0
    assert device.reboot() == "B"
    p = device.upkeepd("confirm")
    assert p.returncode == 1
    assert "10-network exited with status 3: gateway unreachable" in p.stdout
    assert device.env()["BOOT_B_LEFT"] == "0"
    assert device.reboot() == "A"
    assert "gateway unreachable" in device.history()[-1]["reason"]


def test_hanging_health_check_times_out(tmp_path):
    device = Device(tmp_path / "dev", health_timeout="1s")
    check = device.health / "20-hang"
    check.write_text("#!/bin/sh\nsleep 30\n")
    check.chmod(0o755)
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    device.reboot()
    p = device.upkeepd("confirm")
    assert p.returncode == 1 and "20-hang: did not finish within 1000 ms; killed" in p.stdout


def test_every_health_check_runs_and_non_checks_are_skipped(tmp_path, device):
    # More entries than the old limit of 64, none of them a check, before the failing one.
    for i in range(70):
        (device.health / f"00-note-{i:02}").write_text("not a check\n")
    failing = "#!/bin/sh\necho 'should not run' >&2\nexit 5\n"
    for name in (".hidden", "99-fail~", "99-fail.dpkg-old", "99-fail.rpmnew"):
        (device.health / name).write_text(failing)
        (device.health / name).chmod(0o755)
    check = device.health / "99-fail"
    check.write_text("#!/bin/sh\necho 'service down' >&2\nexit 4\n")
    check.chmod(0o755)
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    assert device.reboot() == "B"
    p = device.upkeepd("confirm")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "99-fail exited with status 4: service down" in p.stdout
    assert "should not run" not in p.stdout + p.stderr
    assert "00-note-00 is not executable: skipped" in p.stderr
    assert device.reboot() == "A"


def test_health_check_leaving_a_background_process_passes(tmp_path, device):
    pids = tmp_path / "pids"
    check = device.health / "10-start-service"
    check.write_text(f"#!/bin/sh\nsleep 60 &\necho $! >>{pids}\n"
                     f"setsid sh -c 'echo $$ >>{pids}; exec sleep 60' &\n"
                     f"while [ $(wc -l <{pids}) -lt 2 ]; do sleep 0.01; done\nexit 0\n")
    check.chmod(0o755)
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    assert device.reboot() == "B"
    try:
        p = device.upkeepd("confirm")
    finally:
        for pid in pids.read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert p.returncode == 0, p.stdout + p.stderr
    assert "confirmed version 1.1.0 on slot B" in p.stdout
    assert "10-start-service: exited with status 0 but left a process behind" in p.stderr


def test_mark_good_and_rollback_by_hand(tmp_path, device):
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    assert device.reboot() == "B"
    assert device.upkeepd("mark-good").returncode == 0
    assert device.state()["version_floor"] == "1.1.0"
    assert device.reboot() == "B"
    p = device.upkeepd("rollback")
    assert p.returncode == 0, p.stderr
    assert "slot A is primary again" in p.stdout
    assert device.reboot() == "A"
    # A was never marked bad: B can be rolled back to in turn
    assert device.upkeepd("rollback").returncode == 0
    assert device.reboot() == "B"


def test_rollback_while_pending_cancels_the_update(tmp_path, device):
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    p = device.upkeepd("rollback")
    assert p.returncode == 0, p.stderr
    assert "the update that waited for its reboot is cancelled; slot A stays primary" in p.stdout
    env = device.env()
    assert env["BOOT_ORDER"].split()[0] == "A", env
    assert env.get("BOOT_B_LEFT", "0") == "0" and env.get("BOOT_B_TRY", "0") == "0", env
    assert device.state()["pending"] is None
    h = device.history()[-1]
    assert (h["operation"], h["version"], h["slot"], h["ok"]) == ("cancel", "1.1.0", "B", True)
    # B was never tried: there is nothing to roll back to
    p = device.upkeepd("rollback")
    assert p.returncode == 1 and "slot B is marked bad" in p.stderr
    assert device.reboot() == "A"
    assert device.reboot() == "A"


def test_mark_good_while_pending_then_rollback_leaves_one_good_slot(tmp_path, device):
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    assert device.upkeepd("mark-good").returncode == 0
    env = device.env()
    assert env["BOOT_ORDER"].split()[0] == "A" and env.get("BOOT_B_LEFT", "0") == "0", env
    assert env.get("BOOT_B_TRY", "0") == "0", env
    assert device.history()[-2]["operation"] == "cancel"
    p = device.upkeepd("rollback")
    assert p.returncode == 1 and "slot B is marked bad" in p.stderr
    assert device.reboot() == "A"


PROTECTED_TARGETS = [
    # (handler, target below the device's root, what the error names)
    ("raw", "slotA.img", "slot rootfs.A"),
    ("raw", "link-to-A", "slot rootfs.A"),  # another name for the booted slot
    ("raw", "slotB.img", "slot rootfs.B"),
    ("file", "bootenv", "the boot state file"),
    ("file", "data/state.json", "upkeep's data folder"),
    ("file", "upkeep.conf", "upkeep's configuration file"),
    ("file", "conf.d/50-evil.conf", "upkeep's configuration folder conf.d"),
    ("file", "handlers/evil", "the handlers folder"),
    ("file", "health.d/00-pass", "the health checks folder"),
    ("file", "via-link/00-pass", "the health checks folder"),  # a folder reached through a link
]


@pytest.mark.parametrize("handler,target,what", PROTECTED_TARGETS)
def test_payload_target_may_not_hit_a_slot_or_upkeeps_files(tmp_path, device, handler, target, what):
    (device.root / "link-to-A").symlink_to(device.slot["A"])
    (device.root / "via-link").symlink_to(device.health)
    path = device.root / target
    slot_a = device.slot["A"].read_bytes()
    before = device.env()
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes(), targets=[("app", handler, path, b"x" * 100)])
    p = device.install(bundle)
    assert p.returncode != 0
    assert f'payload "app": target {path} is or lies in {what}' in p.stderr, p.stderr
    assert "nothing was written" in p.stderr
    assert device.slot["A"].read_bytes() == slot_a
    assert device.slot["B"].read_bytes() == b""
    assert device.env() == before
    assert not (device.data / "state.json").exists() or device.state()["pending"] is None


def test_allowed_targets(tmp_path, device):
    app = tmp_path / "app"
    other = tmp_path / "other"
    app.mkdir()
    other.mkdir()
    (device.root / "conf.d").mkdir()
    (device.root / "conf.d" / "targets.conf").write_text(f"[install]\nallowed-targets = /nonexistent {app}\n")
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes(), targets=[("app", "file", other / "a.conf", b"x")])
    p = device.install(bundle)
    assert p.returncode != 0
    assert (f'payload "app": target {other / "a.conf"} is not under [install] allowed-targets '
            f'(/nonexistent {app})') in p.stderr, p.stderr
    assert not (other / "a.conf").exists()
    assert device.slot["B"].read_bytes() == b""
    (tmp_path / "2").mkdir()
    bundle = make_bundle(tmp_path / "2", "1.1.0", payload_bytes(), targets=[("app", "file", app / "a.conf", b"y")])
    p = device.install(bundle)
    assert p.returncode == 0, p.stderr
    assert (app / "a.conf").read_bytes() == b"y"


def test_rollback_refuses_a_bad_slot(device):
    p = device.upkeepd("rollback")
    assert p.returncode == 1
    assert "slot B is marked bad" in p.stderr


def assert_untouched_but_target(device, before):
    """The booted slot A is still primary and the boot environment differs at most in B's fields."""
    after = device.env()
    assert device.primary() == "A"
    for k, v in before.items():
        if "_B_" not in k and k != "BOOT_ORDER":
            assert after.get(k) == v, (k, before, after)
    assert after["BOOT_ORDER"].split()[0] == "A"
    assert after.get("BOOT_B_LEFT", "0") == "0"
    if (device.data / "state.json").exists():
        assert device.state()["pending"] is None


@pytest.mark.parametrize("case,status,message", [
    ("incompatible", 11, 'the bundle is for "other-gw", this device is "acme-gw"'),
    ("same-version", 12, "version 1.0.0 is not newer than the installed version 1.0.0"),
    ("older", 12, "version 0.9.0 is not newer than the installed version 1.0.0"),
    ("min-version", 11, "needs at least version 1.0.5 installed, this device runs 1.0.0"),
    ("too-large", 11, "slot rootfs.B"),
    ("hash-halfway", 15, 'payload "rootfs": chunk 2 (bytes 524288..786431): sha256 mismatch'),
    ("bad-signature", 10, "signature"),
])
def test_rejections_leave_the_booted_slot_primary(tmp_path, case, status, message):
    device = Device(tmp_path / "dev", slot_size="64K" if case == "too-large" else None)
    payload = payload_bytes()
    version = {"same-version": "1.0.0", "older": "0.9.0"}.get(case, "1.1.0")
    bundle = make_bundle(tmp_path, version, payload, compatible="other-gw" if case == "incompatible" else "acme-gw",
                         min_version="1.0.5" if case == "min-version" else None,
                         create_args=STORED if case == "hash-halfway" else ())
    if case == "hash-halfway":
        data = bytearray(bundle.read_bytes())
        at = data.find(payload[:4096]) + PAYLOAD_SIZE // 2
        data[at] ^= 0xFF
        bundle.write_bytes(bytes(data))
    if case == "bad-signature":
        data = bytearray(bundle.read_bytes())
        at = data.find(b'"compatible"')
        data[at + 3] ^= 0x01
        bundle.write_bytes(bytes(data))
    before = device.env()
    p = device.install(bundle)
    assert p.returncode == status, (p.returncode, p.stderr)
    assert message in p.stderr
    assert_untouched_but_target(device, before)
    last = device.history()[-1]
    assert last["operation"] == "install" and last["ok"] is False and message in last["reason"]
    # and the device still boots its old system
    assert device.reboot() == "A"


# Signers that are not code signing certificates (tests/pki/gen-pki.py): the reason given, and whether
# [keyring] allow-any-eku = yes accepts them.
WRONG_SIGNERS = {
    "noeku": ("it has no extended key usage", True),
    "anyeku": ("its extended key usage is anyExtendedKeyUsage, not codeSigning", True),
    "serverauth": ("its extended key usage does not allow codeSigning", False),
    "caleaf": ("it is a CA certificate (basicConstraints CA:TRUE)", False),
}


@pytest.mark.parametrize("signer", WRONG_SIGNERS)
def test_wrong_signer_kind_is_refused(tmp_path, signer):
    reason, any_eku_accepts = WRONG_SIGNERS[signer]
    device = Device(tmp_path / "dev")
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes(), signer=signer)
    before = device.env()
    p = device.install(bundle)
    assert p.returncode == 10, (p.returncode, p.stderr)
    assert f'signer certificate "CN=upkeep test {signer},O=upkeep test PKI,C=DE": {reason}' in p.stderr, \
        p.stderr
    assert_untouched_but_target(device, before)
    assert reason in device.history()[-1]["reason"]

    # [keyring] allow-any-eku = yes: a certificate without codeSigning, but never a CA or one for
    # other purposes only.
    with device.conf.open("a") as f:
        f.write("\n[keyring]\nallow-any-eku = yes\n")
    p = device.install(bundle)
    if any_eku_accepts:
        assert p.returncode == 0, p.stderr
        assert device.slot["B"].read_bytes() == payload_bytes()
    else:
        assert p.returncode == 10, (p.returncode, p.stderr)
        assert reason in p.stderr


def test_key_set_twice_in_one_file_is_a_warning(device):
    lines = device.conf.read_text().splitlines()
    first = lines.index("reboot = manual") + 1
    with device.conf.open("a") as f:
        f.write("[policy]\nreboot = manual\n")
    again = len(lines) + 2
    p = device.upkeepd("confirm")
    assert p.returncode == 0, p.stderr
    assert (f"upkeepd: warning: {device.conf}:{again}: [policy] reboot is set again (first on line {first}); "
            f"the value on line {again} wins") in p.stderr.splitlines(), p.stderr
    # the same key in a drop-in is an override, not a repeat
    device.conf.write_text("\n".join(lines) + "\n")
    (device.root / "conf.d").mkdir()
    (device.root / "conf.d" / "10-reboot.conf").write_text("[policy]\nreboot = manual\n")
    p = device.upkeepd("confirm")
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr


DAMAGED_STATE = b'{"version_floor": "1.0.0", "pending": {"version": "1.1'


def install_then_damage_the_state(tmp_path, device):
    """An update of 1.1.0 waits for its reboot, and then state.json is damaged."""
    assert device.install(make_bundle(tmp_path, "1.1.0", payload_bytes())).returncode == 0
    assert device.state()["pending"]["slot"] == "B"
    (device.data / "state.json").write_bytes(DAMAGED_STATE)


def assert_recovered(device, p, where):
    """The log says state.json was damaged and what was recovered; the damaged file is kept."""
    state = device.data / "state.json"
    assert (f"upkeepd: warning: {state}: corrupt; starting from an empty state (the old file is kept as "
            f"{state}.corrupt)") in p.stderr, p.stderr
    assert (f"upkeepd: warning: {state} has no record of the update on slot B (the file was damaged or "
            f"lost), but the boot backend still marks slot B to try: recovered as an update of version "
            f"1.1.0 (from the history) that {where}") in p.stderr, p.stderr
    assert (device.data / "state.json.corrupt").read_bytes() == DAMAGED_STATE


def test_damaged_state_while_pending_is_confirmed(tmp_path, device):
    install_then_damage_the_state(tmp_path, device)
    assert device.reboot() == "B"
    p = device.upkeepd("confirm")
    assert p.returncode == 0, p.stderr
    assert "confirmed version 1.1.0 on slot B" in p.stdout
    assert_recovered(device, p, "is on its try now")
    state = device.state()
    assert state["pending"] is None and state["slots"]["B"] == "1.1.0" and state["version_floor"] == "1.1.0"
    h = device.history()[-1]
    assert (h["operation"], h["version"], h["slot"], h["ok"]) == ("confirm", "1.1.0", "B", True)
    assert device.reboot() == "B"


def test_damaged_state_while_pending_falls_back(tmp_path, device):
    install_then_damage_the_state(tmp_path, device)
    assert device.reboot() == "B"
    assert device.reboot() == "A"  # B never confirmed
    p = device.upkeepd("confirm")
    assert p.returncode == 1, p.stderr
    assert "version 1.1.0 on slot B was not confirmed: the system came back up on slot A" in p.stdout
    assert_recovered(device, p, "waits for its reboot or has fallen back")
    assert device.primary() == "A" and device.env().get("BOOT_B_TRY", "0") == "0"
    assert device.state()["pending"] is None
    h = device.history()[-1]
    assert (h["operation"], h["version"], h["slot"], h["ok"]) == ("confirm", "1.1.0", "B", False)


def test_damaged_state_while_pending_can_be_cancelled(tmp_path, device):
    """Rollback before the reboot cancels the update, as with an intact state: it never makes the
    untried slot good."""
    install_then_damage_the_state(tmp_path, device)
    p = device.upkeepd("rollback")
    assert p.returncode == 0, p.stderr
    assert "the update that waited for its reboot is cancelled; slot A stays primary" in p.stdout
    assert_recovered(device, p, "waits for its reboot or has fallen back")
    env = device.env()
    assert env["BOOT_ORDER"].split()[0] == "A" and env.get("BOOT_B_LEFT", "0") == "0", env
    h = device.history()[-1]
    assert (h["operation"], h["version"], h["slot"], h["ok"]) == ("cancel", "1.1.0", "B", True)
    assert device.reboot() == "A"


def test_damaged_state_and_history_while_pending(tmp_path, device):
    """Without the history the version is unknown, but the update is still confirmed."""
    install_then_damage_the_state(tmp_path, device)
    (device.data / "history.json").write_text("[")
    assert device.reboot() == "B"
    p = device.upkeepd("confirm")
    assert p.returncode == 0, p.stderr
    assert ("recovered as an update of version (unknown: no install into that slot in the history) that is "
            "on its try now") in p.stderr, p.stderr
    assert "confirmed version (unknown) on slot B" in p.stdout
    assert device.state()["pending"] is None
    assert device.reboot() == "B"


def test_replayed_old_version_is_refused(tmp_path, device):
    assert device.install(make_bundle(tmp_path, "1.2.0", payload_bytes(1))).returncode == 0
    device.reboot()
    assert device.upkeepd("confirm").returncode == 0
    assert device.upkeepd("rollback").returncode == 0
    assert device.reboot() == "A"
    # A runs 1.0.0, but 1.2.0 ran here: an older signed bundle is a replay
    before = device.env()
    p = device.install(make_bundle(tmp_path, "1.1.0", payload_bytes(2)))
    assert p.returncode == 12
    assert "older than 1.2.0, the highest version this device has run" in p.stderr
    assert device.primary() == "A" and device.env()["BOOT_ORDER"] == before["BOOT_ORDER"]


def test_downgrade_needs_config_and_caller(tmp_path):
    device = Device(tmp_path / "dev", extra_policy="allow-downgrade = yes")
    bundle = make_bundle(tmp_path, "0.9.0", payload_bytes())
    p = device.install(bundle)
    assert p.returncode == 12 and "ask for a downgrade" in p.stderr
    p = device.install(bundle, "--allow-downgrade")
    assert p.returncode == 0, p.stderr
    plain = Device(tmp_path / "dev2")
    p = plain.install(bundle, "--allow-downgrade")
    assert p.returncode == 12 and "allow-downgrade = yes" in p.stderr


def test_disk_full_while_writing_a_file_slot(tmp_path):
    device = Device(tmp_path / "dev")
    small = tmp_path / "small"
    small.mkdir()
    # slot B lives on a 256 KiB tmpfs in a private mount namespace: the 1 MiB payload cannot fit
    text = device.conf.read_text().replace(str(device.slot["B"]), str(small / "slotB.img"))
    device.conf.write_text(text)
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes())
    before = device.env()
    script = f'mount -t tmpfs -o size=256k tmpfs {small} && exec "$@"'
    p = run("unshare", "--mount", "sh", "-c", script, "sh", UPKEEPD, "--config", device.conf, "install", bundle)
    assert p.returncode == 1, p.stderr
    assert "No space left on device" in p.stderr or "no space left" in p.stderr
    assert_untouched_but_target(device, before)
    assert device.reboot() == "A"


CRASH_POINTS = ["opened", "checked", "marked-bad", "payload-finished", "written", "committed", "state-saved",
                "activated"]
CRASH_OFFSETS = [0, 1, 511, 512, 4096, 65535, 65536, 100000] + [PAYLOAD_SIZE * k // 45 for k in range(1, 45)] + \
    [PAYLOAD_SIZE - 1]


@pytest.mark.parametrize("point", CRASH_POINTS + [f"write:{n}" for n in sorted(set(CRASH_OFFSETS))])
def test_power_cut_during_install(tmp_path, point):
    device = Device(tmp_path / "dev")
    payload = payload_bytes()
    bundle = make_bundle(tmp_path, "1.1.0", payload)
    p = device.install(bundle, env={"UPKEEP_TEST_CRASH_AT": point})
    assert p.returncode == -signal.SIGKILL, (point, p.returncode, p.stdout, p.stderr)

    # The one write that makes B bootable is the last step ("activated"): before it the boot
    # environment still points at A; after it at B, completely written.
    activated = point == "activated"
    assert device.primary() == ("B" if activated else "A"), point
    if activated:
        assert device.slot["B"].read_bytes() == payload, point
    # The state file parses; the pending update is in it from "state-saved" on.
    pending = point in ("state-saved", "activated")
    if (device.data / "state.json").exists():
        assert (device.state()["pending"] is not None) == pending, point
    else:
        assert not pending, point
    # The next start: B on its try confirms (0); A with the update pending records it as fallen back
    # (1); A with nothing pending has nothing to confirm (0).
    booted = device.reboot()
    assert booted == ("B" if activated else "A"), point
    p = device.upkeepd("confirm")
    if activated:
        assert p.returncode == 0 and "confirmed version 1.1.0 on slot B" in p.stdout, (point, p.stdout, p.stderr)
        assert device.slot["B"].read_bytes() == payload
    elif pending:
        assert p.returncode == 1 and "update to version 1.1.0 on slot B failed" in p.stdout, (point, p.stdout,
                                                                                                 p.stderr)
        last = device.history()[-1]
        assert last["operation"] == "confirm" and last["ok"] is False, last
    else:
        assert p.returncode == 0 and p.stdout == "nothing to confirm\n", (point, p.stdout, p.stderr)
    assert not (device.data / "state.json").exists() or device.state()["pending"] is None
    # A fresh install then succeeds and confirms.
    if not activated:
        p = device.install(bundle)
        assert p.returncode == 0, (point, p.stderr)
        assert device.reboot() == "B"
        assert device.upkeepd("confirm").returncode == 0
    assert device.slot["B"].read_bytes() == payload
    assert device.state()["version_floor"] == "1.1.0"


def fake_systemctl(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "systemctl.log"
    exe = bindir / "systemctl"
    exe.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n")
    exe.chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}, log


def test_reboot_policy_auto(tmp_path):
    device = Device(tmp_path / "dev", extra_policy="reboot = auto")
    env, log = fake_systemctl(tmp_path)
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes())
    p = device.install(bundle, "--no-reboot", env=env)
    assert p.returncode == 0 and "not rebooting (--no-reboot)" in p.stdout
    assert not log.exists()
    p = device.install(make_bundle(tmp_path, "1.2.0", payload_bytes(3)), env=env)
    assert p.returncode == 0, p.stderr
    assert "rebooting to start version 1.2.0" in p.stdout
    assert log.read_text() == "reboot\n"
    # a failed confirmation reboots back
    check = device.health / "10-fail"
    check.write_text("#!/bin/sh\nexit 1\n")
    check.chmod(0o755)
    assert device.reboot() == "B"
    p = device.upkeepd("confirm", env=env)
    assert p.returncode == 1 and "rebooting to go back to the previous slot" in p.stdout
    assert log.read_text() == "reboot\nreboot\n"


def test_corrupt_state_is_recovered_from(tmp_path, device):
    device.data.mkdir(exist_ok=True)
    (device.data / "state.json").write_text("{ not json")
    p = device.install(make_bundle(tmp_path, "1.1.0", payload_bytes()))
    assert p.returncode == 0, p.stderr
    assert "state.json: corrupt; starting from an empty state" in p.stderr
    assert (device.data / "state.json.corrupt").read_text() == "{ not json"
    assert device.state()["pending"]["version"] == "1.1.0"


@pytest.mark.parametrize("point", ["confirm-checked", "confirm-marked-good"])
def test_power_cut_during_confirmation(tmp_path, device, point):
    payload = payload_bytes()
    assert device.install(make_bundle(tmp_path, "1.1.0", payload)).returncode == 0
    assert device.reboot() == "B"
    p = device.upkeepd("confirm", env={"UPKEEP_TEST_CRASH_AT": point})
    assert p.returncode == -signal.SIGKILL
    device.state()
    booted = device.reboot()
    p = device.upkeepd("confirm")
    if point == "confirm-checked":
        # killed before B was marked good: its one try is used up, the device comes back on A, and that
        # start records the update as fallen back
        assert booted == "A"
        assert p.returncode == 1 and "update to version 1.1.0 on slot B failed" in p.stdout, (p.stdout, p.stderr)
        assert device.primary() == "A"
        last = device.history()[-1]
        assert last["operation"] == "confirm" and last["ok"] is False, last
    else:
        # killed after B was marked good, before the state said so: B boots and the start records it
        assert booted == "B"
        assert p.returncode == 0 and "confirmed version 1.1.0 on slot B" in p.stdout, (p.stdout, p.stderr)
        assert device.primary() == "B"
        assert device.state()["version_floor"] == "1.1.0"
    assert device.state()["pending"] is None


def test_one_operation_at_a_time(tmp_path, device):
    import fcntl
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes())
    device.data.mkdir(exist_ok=True)
    before = device.env()
    with open(device.data / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # as a running upkeepd operation holds it
        for args in (("install", bundle), ("confirm",), ("mark-good",), ("rollback",)):
            p = device.upkeepd(*args)
            assert p.returncode == 1, (args, p.stdout, p.stderr)
            assert "another upkeep operation is running" in p.stderr, p.stderr
    assert device.env() == before
    p = device.install(bundle)
    assert p.returncode == 0, p.stderr
