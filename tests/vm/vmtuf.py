# SPDX-License-Identifier: LGPL-2.1-or-later
"""The VM image's TUF keys: tufrepo.Repo with the keys mkimage.py saved, so that the repository a test
publishes matches the root.json built into the cached image."""

import hashlib
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from tufrepo import Key, canonical


def _key(raw_hex):
    k = Key.__new__(Key)
    k.keytype = k.scheme = "ed25519"
    k.private = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(raw_hex))
    public = k.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    k.public = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": public}}
    k.keyid = hashlib.sha256(canonical(k.public)).hexdigest()
    return k


def load_keys(repo, path):
    keys = json.loads(open(path).read())
    for role, raw in keys.items():
        repo.keys[role] = [_key(raw)]
    # Root version 1 again, now with these keys (Repo() made one with its own).
    repo.roots = []
    repo.root_signers_prev = []
    repo.new_root()
