# SPDX-License-Identifier: LGPL-2.1-or-later
"""[source] type = tuf in an upkeepd built without the TUF source (-Dtuf=false): the service refuses to
start, with the reason, before it connects to any bus.

Environment:
  UPKEEPD                 this build's upkeepd (tests/integration/meson.build)
  UPKEEP_TUF              "1" if this build has the TUF source, "0" if not (tests/integration/meson.build)
  UPKEEP_MINIMAL_UPKEEPD  the upkeepd of a second build made with -Dtuf=false (tools/run-tests sets it to
                          build-minimal's); the tests that need it skip without it
"""

import os
import subprocess

import pytest

EXIT_FAILURE = 1
EXIT_CONFIG = 16
JOURNAL_SOCKET = "/run/systemd/journal/socket"
NO_TUF = "[source] type = tuf: this upkeepd was built without TUF support (-Dtuf=false)"
NO_ROOT = "[source] root: required for type = tuf"

OWN = os.environ.get("UPKEEPD", "")
OWN_HAS_TUF = os.environ.get("UPKEEP_TUF") == "1"
MINIMAL = os.environ.get("UPKEEP_MINIMAL_UPKEEPD", "")


def start_service(upkeepd, tmp_path, source_type):
    """Start upkeepd as the service on a configuration with [source] type = SOURCE_TYPE. The system bus
    address names a socket that does not exist, so that a start that got past the configuration fails
    at once instead of reaching the machine's bus."""
    for name in ("a.img", "b.img"):
        (tmp_path / name).write_bytes(b"")
    conf = tmp_path / "upkeep.conf"
    conf.write_text(f"""[device]
compatible = acme-gw
data-dir = {tmp_path}/data

[slot.rootfs.A]
device = {tmp_path}/a.img

[slot.rootfs.B]
device = {tmp_path}/b.img

[source]
type = {source_type}
url = http://127.0.0.1:9/
""")
    env = dict(os.environ)
    env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={tmp_path}/no-bus"
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    return subprocess.run([upkeepd, "--config", str(conf)], capture_output=True, text=True, env=env,
                          timeout=60)


def assert_refused(p):
    assert p.returncode == EXIT_CONFIG, (p.returncode, p.stdout, p.stderr)
    assert f"upkeepd: {NO_TUF}\n" in p.stderr, p.stderr
    assert "system bus" not in p.stderr, p.stderr


@pytest.mark.skipif(not MINIMAL, reason="UPKEEP_MINIMAL_UPKEEPD is not set (tools/run-tests sets it)")
def test_minimal_build_refuses_tuf_source(tmp_path):
    assert os.access(MINIMAL, os.X_OK), f"UPKEEP_MINIMAL_UPKEEPD={MINIMAL}: not an executable"
    assert_refused(start_service(MINIMAL, tmp_path, "tuf"))
    assert not (tmp_path / "data").exists()


@pytest.mark.skipif(not MINIMAL, reason="UPKEEP_MINIMAL_UPKEEPD is not set (tools/run-tests sets it)")
def test_minimal_build_other_source_gets_past_source_setup(tmp_path):
    # The same configuration with a source the build has: the service goes on to the bus (which is
    # not there), so the refusal above is about the TUF source and nothing else.
    (tmp_path / "bundles").mkdir()
    p = start_service(MINIMAL, tmp_path, f"local\ndir = {tmp_path}/bundles")
    assert p.returncode == EXIT_FAILURE, (p.returncode, p.stdout, p.stderr)
    assert NO_TUF not in p.stderr, p.stderr
    if not os.path.exists(JOURNAL_SOCKET):  # else the service logs to the journal
        assert "cannot connect to the system bus" in p.stderr, p.stderr


def test_own_build(tmp_path):
    p = start_service(OWN, tmp_path, "tuf")
    if OWN_HAS_TUF:
        # The source is there: setting it up fails on the missing trusted root instead.
        assert p.returncode == EXIT_CONFIG, (p.returncode, p.stdout, p.stderr)
        assert NO_ROOT in p.stderr and NO_TUF not in p.stderr, p.stderr
    else:
        assert_refused(p)
