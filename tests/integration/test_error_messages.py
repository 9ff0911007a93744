# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every failure a person sees carries a message that names the thing and the reason (issue 10).

Walks the error paths the tests can reach: `updatectl bundle` on missing files, bad keys and corrupt
bundles; upkeepd's offline verbs on corrupt and incompatible bundles, a broken slot, a handler that
fails or hangs (UPKEEP_TEST_HANDLER_TIMEOUT_MS), a bad boot environment and a boot program that fails
or hangs (UPKEEP_TEST_BOOT_TIMEOUT_MS); and the service on a private bus, where LastError, the
Finished signal, the bus error and updatectl's stderr must all say what went wrong. A message is never
empty, never ends in a bare ": " and never says "unknown error"."""

import os
import subprocess

import pytest

from conftest import EXIT_FORMAT, EXIT_SIGNATURE, pki
from device import UPDATECTL, Device, make_bundle, payload_bytes, run
from test_daemon import bus, install, monitor, service  # noqa: F401 (bus, monitor, service: fixtures)

SMALL = 5000


def describe(p):
    return f"command: {p.args}\nexit status: {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def assert_message(text, *names):
    """`text` is a message a person reads: not empty, not cut off after a colon, and naming `names`."""
    text = text.strip()
    assert text, "an empty message"
    for line in text.splitlines():
        assert not line.rstrip().endswith(":"), f"a message with nothing after its colon: {line!r}"
    assert "unknown error" not in text, text
    for name in names:
        assert str(name) in text, f"the message does not name {name}: {text!r}"


def assert_failed(p, status, prefix, *names):
    """A failed command: exit status `status`, one line on stderr starting with `prefix`."""
    assert p.returncode == status, describe(p)
    lines = p.stderr.strip().splitlines()
    assert lines and lines[-1].startswith(prefix), describe(p)
    assert len(lines[-1]) > len(prefix) + 10, describe(p)
    assert_message(p.stderr, *names)


@pytest.fixture
def device(tmp_path):
    return Device(tmp_path / "dev")


def corrupt_copy(tmp_path, bundle, name, how):
    data = bundle.read_bytes()
    if how == "junk":
        data = os.urandom(3000)
    elif how == "truncated":
        data = data[:len(data) // 2]
    elif how == "signature":
        data = bytearray(data)
        data[data.find(b'"compatible"') + 3] ^= 0x01
        data = bytes(data)
    out = tmp_path / name
    out.write_bytes(data)
    return out


# ---- updatectl bundle --------------------------------------------------------------------------------


def ctl(*args, cwd=None):
    return subprocess.run([UPDATECTL, *[str(a) for a in args]], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_cli_missing_and_unreadable_inputs(tmp_path):
    payloads = tmp_path / "payloads"
    payloads.mkdir()
    (payloads / "rootfs.img").write_bytes(payload_bytes(size=SMALL))
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"format": 1, "compatible": "acme-gw", "version": "1.0.0", '
                        '"build": "2026-11-25T10:00:00Z", "payloads": [{"name": "rootfs", '
                        '"file": "rootfs.img", "handler": "raw", "slot_class": "rootfs"}]}')
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not PEM\n")
    missing = tmp_path / "missing.upk"
    create = ["bundle", "create", "--manifest", manifest, "--cert", pki("signer.pem"), "--key",
              pki("signer.key"), "--chain", pki("chain.pem"), "--payload-dir", payloads]

    assert_failed(ctl("bundle", "verify", "--keyring", pki("keyring.pem"), missing), 1, "updatectl: ",
                  missing)
    assert_failed(ctl("bundle", "info", missing), 1, "updatectl: ", missing)
    p = ctl(*create, "-o", tmp_path / "ok.upk")
    assert p.returncode == 0, describe(p)
    assert_failed(ctl("bundle", "verify", "--keyring", tmp_path / "nokeyring.pem", tmp_path / "ok.upk"), 1,
                  "updatectl: ", "nokeyring.pem")
    p = ctl("bundle", "verify", "--keyring", garbage, tmp_path / "ok.upk")
    assert p.returncode != 0, describe(p)
    assert_message(p.stderr, garbage)
    p = ctl("bundle", "create", "--manifest", tmp_path / "nomanifest.json", "--cert", pki("signer.pem"),
            "--key", pki("signer.key"), "--payload-dir", payloads, "-o", tmp_path / "x.upk")
    assert p.returncode != 0, describe(p)
    assert_message(p.stderr, "nomanifest.json")
    p = ctl(*create[:7], garbage, *create[8:], "-o", tmp_path / "y.upk")
    assert p.returncode != 0, describe(p)
    assert_message(p.stderr, garbage)
    (payloads / "rootfs.img").unlink()
    p = ctl(*create, "-o", tmp_path / "z.upk")
    assert p.returncode != 0, describe(p)
    assert_message(p.stderr, "rootfs.img")


@pytest.mark.parametrize("how,status", [("junk", EXIT_FORMAT), ("truncated", EXIT_FORMAT),
                                        ("signature", EXIT_SIGNATURE)])
def test_cli_corrupt_bundles(tmp_path, how, status):
    good = make_bundle(tmp_path, "1.1.0", payload_bytes(size=SMALL))
    bad = corrupt_copy(tmp_path, good, f"{how}.upk", how)
    p = ctl("bundle", "verify", "--keyring", pki("keyring.pem"), bad)
    assert_failed(p, status, f"updatectl: {bad}: rejected: ", bad)


# ---- upkeepd's offline verbs --------------------------------------------------------------------------


@pytest.mark.parametrize("how,status", [("junk", EXIT_FORMAT), ("truncated", EXIT_FORMAT),
                                        ("signature", EXIT_SIGNATURE)])
def test_install_of_a_corrupt_bundle(tmp_path, device, how, status):
    bad = corrupt_copy(tmp_path, make_bundle(tmp_path, "1.1.0", payload_bytes(size=SMALL)), f"{how}.upk", how)
    p = device.install(bad)
    assert_failed(p, status, f"upkeepd: {bad}: rejected: ", bad)
    assert_message(device.history()[-1]["reason"])


def test_install_of_a_bundle_for_another_device(tmp_path, device):
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes(size=SMALL), compatible="other-gw")
    assert_failed(device.install(bundle), 11, f"upkeepd: {bundle}: rejected: ", "other-gw", "acme-gw")


def test_install_of_a_missing_bundle(tmp_path, device):
    missing = tmp_path / "missing.upk"
    assert_failed(device.install(missing), 1, f"upkeepd: {missing}: ", missing)


def test_install_into_a_slot_that_is_a_folder(tmp_path, device):
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes(size=SMALL))
    device.slot["B"].unlink()
    device.slot["B"].mkdir()
    assert_failed(device.install(bundle), 1, f"upkeepd: {bundle}: ", device.slot["B"])


@pytest.mark.parametrize("script,env,reason", [
    ("#!/bin/sh\nexit 7\n", {}, "exited with status 7"),
    ("#!/bin/sh\nsleep 30\n", {"UPKEEP_TEST_HANDLER_TIMEOUT_MS": "300"}, "did not end within 300 ms"),
])
def test_install_with_a_handler_that_fails(tmp_path, device, script, env, reason):
    handler = device.root / "handlers" / "h"
    handler.write_text(script)
    handler.chmod(0o755)
    bundle = make_bundle(tmp_path, "1.1.0", payload_bytes(size=SMALL), handler="exec:h")
    assert_failed(device.install(bundle, env=env), 1, f"upkeepd: {bundle}: ", handler, reason)


def test_rollback_with_nothing_to_roll_back_to(device):
    assert_failed(device.upkeepd("rollback"), 1, "upkeepd: rollback: ", "slot B")


def test_confirm_on_a_bad_boot_environment(device):
    device.bootenv.write_text('BOOT_ORDER="A B"\nBOOT_A_LEFT=banana\nBOOTED=A\n')
    assert_failed(device.upkeepd("confirm"), 16, "upkeepd: confirm: ", device.bootenv, "banana")


def script_backend(tmp_path, device, text):
    script = tmp_path / "boot-program"
    script.write_text(text)
    script.chmod(0o755)
    device.conf.write_text(device.conf.read_text().replace("backend = file\n",
                                                           f"backend = script\nscript = {script}\n"))
    return script


@pytest.mark.parametrize("text,env,reason", [
    ("#!/bin/sh\nexit 1\n", {}, "exited with status 1"),
    ("#!/bin/sh\nsleep 30\n", {"UPKEEP_TEST_BOOT_TIMEOUT_MS": "300"}, "within 300 ms"),
])
def test_confirm_with_a_boot_program_that_fails(tmp_path, device, text, env, reason):
    script = script_backend(tmp_path, device, text)
    assert_failed(device.upkeepd("confirm", env=env), 1, "upkeepd: confirm: ", script, reason)


# ---- the service: LastError, Finished, the bus error, updatectl's stderr --------------------------------


def test_failed_confirmation_at_start_sets_last_error(tmp_path, bus, device, service):
    """The issue's example: a failed confirmation logged "confirmation failed: " and set an empty
    LastError."""
    script = script_backend(tmp_path, device, "#!/bin/sh\nexit 1\n")
    d = service()
    assert bus.get("State") == "error"
    last = bus.get("LastError")
    # LastError is for every local user: the script's path is left out; the journal names it.
    assert_message(last, "boot script <path> ", "exited with status 1")
    assert str(script) not in last
    assert f"confirmation failed: {last.replace('<path>', str(script))}" in d.text()


def test_failed_install_over_the_bus(tmp_path, bus, monitor, device, service):
    bad = corrupt_copy(tmp_path, make_bundle(tmp_path, "1.1.0", payload_bytes(size=SMALL)), "junk.upk", "junk")
    d = service()
    install(bus, bad)
    ok, msg, error = monitor.finished()
    assert (ok, error) == (False, "io.upkeep.Update1.Error.Format")
    assert_message(msg, "rejected: ", "not a tar archive")
    assert bus.get("LastError") == msg
    assert f"failed: {msg}" in d.text()

    # The same through updatectl: the daemon's message on stderr, the kind's exit status.
    p = run(UPDATECTL, "install", bad, env={"DBUS_SYSTEM_BUS_ADDRESS": bus.address})
    assert_failed(p, EXIT_FORMAT, "updatectl: ", "not a tar archive")


def test_bus_errors_carry_messages(bus, monitor, device, service):
    service()
    p = bus.call("Rollback", check=False)
    assert p.returncode != 0
    e = monitor.wait(lambda m: m.get("type") == "error" and m.get("sender") != "org.freedesktop.DBus",
                     what="the Rollback error")
    assert_message(e["payload"]["data"][0], "slot B")
    p = run(UPDATECTL, "rollback", env={"DBUS_SYSTEM_BUS_ADDRESS": bus.address})
    assert_failed(p, 1, "updatectl: ", "slot B")


def test_install_of_a_missing_bundle_over_the_bus(tmp_path, bus, monitor, device, service):
    missing = tmp_path / "missing.upk"
    d = service()
    install(bus, missing)
    ok, msg, error = monitor.finished()
    assert ok is False
    assert_message(msg, "cannot open the bundle")
    assert bus.get("LastError") == msg
    assert f"install of {missing} failed: {msg}" in d.text()
