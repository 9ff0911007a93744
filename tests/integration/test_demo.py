# SPDX-License-Identifier: LGPL-2.1-or-later
"""tools/demo, the README's first command, in the mode that skips apt and the build (--no-setup): it
runs the whole loop (keys, bundle, TUF repository, server, private bus, upkeepd finding and installing
the update, the simulated reboot, the confirmation) and leaves nothing behind."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from device import BUILD

SOURCE_ROOT = Path(os.environ.get("UPKEEP_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
DEMO = SOURCE_ROOT / "tools" / "demo"


def run_demo(*args):
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SYSTEM_BUS_ADDRESS"}
    return subprocess.run([str(DEMO), *args], capture_output=True, text=True, timeout=120, env=env)


def test_demo_runs_the_whole_loop():
    p = run_demo("--no-setup", str(BUILD))
    out = p.stdout
    assert p.returncode == 0, f"exit {p.returncode}\n{out}\n{p.stderr}"
    for line in ("== 1. Keys: a CA (the device's keyring) and a signing certificate",
                 "A TUF repository holding it (updatectl repo init, repo add)",
                 "acme-gw-1.1.0.upk: published as acme-gw-1.1.0.upk",
                 "upkeepd: update 1.1.0 available (acme-gw-1.1.0.upk, ",
                 "upkeepd: automatically installing version 1.1.0 from http://127.0.0.1:",
                 'Finished ok=yes message="update 1.1.0 available"',
                 " State=downloading",
                 'Finished ok=yes message="installed version 1.1.0 into slot B"',
                 "State: pending-reboot",
                 "not rebooting (--no-reboot): reboot to start version 1.1.0",
                 "bootloader booted slot: B",
                 "upkeepd: confirmed version 1.1.0 on slot B",
                 "updatectl check: up to date"):
        assert line in out, f"missing {line!r}\n{out}"
    # The order of the story.
    assert out.index("update 1.1.0 available") < out.index("State: pending-reboot") < \
        out.index("bootloader booted slot: B") < out.index("confirmed version 1.1.0")
    final = out[out.index("Final status"):]
    assert re.search(r"^ +State: idle$", final, re.M), final
    assert re.search(r"^ +Version: 1\.1\.0$", final, re.M), final
    assert re.search(r"^ +Booted slot: B$", final, re.M), final
    assert re.search(r"Demo complete: version 1\.1\.0 runs on slot B, confirmed, in \d+ s\.", out), out
    # Progress was shown while the bundle streamed.
    assert len(re.findall(r"Progress=\d+/\d+", out)) >= 3, out
    # Nothing left behind: its folder, and the processes that ran from it.
    work = re.search(r"serving (/tmp/upkeep-demo\.\w+)/www", out).group(1)
    assert not Path(work).exists(), work
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert work not in ps, ps


@pytest.mark.skipif(os.environ.get("UPKEEP_HAWKBIT") == "0", reason="built with -Dhawkbit=false")
def test_demo_with_hawkbit():
    """--hawkbit: the same loop from the DDI emulator; the server hears "proceeding" while it installs,
    nothing final before the reboot, and "closed + success" only after the confirmation."""
    p = run_demo("--hawkbit", "--no-setup", str(BUILD))
    out = p.stdout
    assert p.returncode == 0, f"exit {p.returncode}\n{out}\n{p.stderr}"
    for line in ("An Eclipse hawkBit server on 127.0.0.1 (the DDI emulator, tests/hawkbit_emu.py)",
                 "upkeepd: update 1.1.0 available (acme-gw-1.1.0.upk, ",
                 "UPKEEP_HAWKBIT_ACTION=1]",
                 "server| feedback deployment action 1: proceeding",
                 "State: pending-reboot",
                 "bootloader booted slot: B",
                 "upkeepd: confirmed version 1.1.0 on slot B",
                 "server| feedback deployment action 1: closed success"):
        assert line in out, f"missing {line!r}\n{out}"
    assert out.index("proceeding") < out.index("State: pending-reboot") < out.index("confirmed version 1.1.0") \
        < out.index("closed success"), out
    assert out.count("closed success") == 1, out
    final = out[out.index("Final status"):]
    assert re.search(r"^ +Version: 1\.1\.0$", final, re.M) and re.search(r"^ +Booted slot: B$", final, re.M), final
    work = re.search(r"target token in (/tmp/upkeep-demo\.\w+)/dev", out).group(1)
    assert not Path(work).exists(), work
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert work not in ps, ps


def test_demo_fails_clearly_without_a_build(tmp_path):
    p = run_demo("--no-setup", str(tmp_path))
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr == f"demo: FAILED: {tmp_path}/cli/updatectl is missing: build first (ninja -C {tmp_path})\n"
