# SPDX-License-Identifier: LGPL-2.1-or-later
"""A test device in a folder (config, file-backed A/B slots, the file boot backend, state) and signed
bundles for it: shared by the installer tests (upkeepd's verbs) and the daemon tests (the bus service)."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

BUILD = Path(os.environ["UPDATECTL"]).resolve().parent.parent
UPDATECTL = os.environ["UPDATECTL"]
UPKEEPD = os.environ.get("UPKEEPD", str(BUILD / "daemon" / "upkeepd"))
BOOTSIM = os.environ.get("UPKEEP_BOOTSIM", str(BUILD / "tests" / "upkeep-bootsim"))
PKI = Path(os.environ["UPKEEP_TEST_PKI"])

PAYLOAD_SIZE = 1024 * 1024 + 4321
# `bundle create` options that store a payload's blocks as they are (zstd blocks are the default): for the
# tests that flip, cut or count the payload's bytes inside the bundle file.
STORED = ["--compression", "none"]


def run(*args, env=None, check=False):
    full_env = dict(os.environ)
    full_env.pop("UPKEEP_TEST_CRASH_AT", None)
    full_env.update(env or {})
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=full_env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


class Device:
    """A device in a folder: config, A/B slot files, boot environment, state."""

    def __init__(self, root: Path, *, slot_size=None, extra_policy="", health_timeout="5s"):
        self.root = root
        self.conf = root / "upkeep.conf"
        self.bootenv = root / "bootenv"
        self.data = root / "data"
        self.health = root / "health.d"
        root.mkdir(parents=True, exist_ok=True)
        self.health.mkdir()
        (root / "handlers").mkdir()
        self.slot = {"A": root / "slotA.img", "B": root / "slotB.img"}
        self.slot["A"].write_bytes(b"old system\n" * 1000)
        self.slot["B"].write_bytes(b"")
        (root / "os-release").write_text('NAME="Acme"\nVERSION_ID="1.0.0"\n')
        size_line = f"size = {slot_size}\n" if slot_size else ""
        self.conf.write_text(f"""[device]
compatible = acme-gw
version-file = {root}/os-release
data-dir = {self.data}

[keyring]
path = {PKI}/keyring.pem

[boot]
backend = file
state-file = {self.bootenv}

[slot.rootfs.A]
device = {self.slot['A']}
{size_line}
[slot.rootfs.B]
device = {self.slot['B']}
{size_line}
[policy]
reboot = manual
{extra_policy}

[health]
dir = {self.health}
timeout = {health_timeout}

[install]
handlers-dir = {root}/handlers
""")
        # A device that booted slot A once, as from the factory.
        self.reboot()
        assert self.booted() == "A"

    def upkeepd(self, *args, env=None):
        return run(UPKEEPD, "--config", self.conf, *args, env=env)

    def install(self, bundle, *extra, env=None):
        return self.upkeepd("install", *extra, bundle, env=env)

    def reboot(self):
        p = run(BOOTSIM, self.bootenv, check=True)
        return p.stdout.strip()

    def env(self):
        """The boot environment as a dict."""
        out = {}
        for line in self.bootenv.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                k, _, v = line.partition("=")
                out[k.strip()] = v.strip().strip('"')
        return out

    def booted(self):
        return self.env().get("BOOTED")

    def primary(self):
        env = self.env()
        for s in env["BOOT_ORDER"].split():
            if int(env.get(f"BOOT_{s}_LEFT", "0")) > 0:
                return s
        return None

    def state(self):
        return json.loads((self.data / "state.json").read_text())

    def history(self):
        return json.loads((self.data / "history.json").read_text())


def make_bundle(tmp: Path, version, payload: bytes, *, compatible="acme-gw", min_version=None, name="b",
                handler="raw", targets=(), targets_first=False, signer="signer", create_args=()):
    """`targets`: more payloads, each (name, handler, target path, bytes); after the slot's payload, or
    before it with `targets_first`. `signer`: a signer of the test PKI (tests/pki/gen-pki.py).
    `create_args`: more options of `updatectl bundle create` (e.g. --compression zstd)."""
    d = tmp / f"src-{name}-{version}"
    d.mkdir()
    (d / "rootfs.img").write_bytes(payload)
    manifest = {
        "format": 1, "compatible": compatible, "version": version, "build": "2026-11-25T10:00:00Z",
        "support": {"end": "2031-12-31"},
        "payloads": [{"name": "rootfs", "file": "rootfs.img", "handler": handler, "slot_class": "rootfs"}],
    }
    for t_name, t_handler, t_target, t_data in targets:
        (d / f"{t_name}.bin").write_bytes(t_data)
        entry = {"name": t_name, "file": f"{t_name}.bin", "handler": t_handler, "target": str(t_target)}
        if targets_first:
            manifest["payloads"].insert(len(manifest["payloads"]) - 1, entry)
        else:
            manifest["payloads"].append(entry)
    if min_version:
        manifest["min_version"] = min_version
    (d / "manifest.json").write_text(json.dumps(manifest))
    out = tmp / f"{name}-{version}.upk"
    run(UPDATECTL, "bundle", "create", "--manifest", d / "manifest.json", "--cert", PKI / f"{signer}.pem",
        "--key", PKI / f"{signer}.key", "--chain", PKI / "chain.pem", *create_args, "-o", out, check=True)
    return out


def payload_bytes(seed=1, size=PAYLOAD_SIZE):
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 32
    return bytes(out[:size])
