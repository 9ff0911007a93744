# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small TUF repository writer for upkeep's tests (python3-cryptography only).

Keys of the three standard types (ed25519, ecdsa-sha2-nistp256, rsassa-pss-sha256), metadata signed over
canonical JSON, the four top-level roles, delegated targets roles, consistent snapshots (VERSION.ROLE.json
and HASH.NAME target files), expiry and versions under the test's control. Everything is rewritten by
`publish()`; tests change attributes in between, or tamper with the files afterwards. A target with a
`custom` whose bytes are a bundle gets custom.manifest_sha256 (upkeep.conf(5), [source]).
"""

import copy
import hashlib
import io
import json
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

TOP = ("root", "timestamp", "snapshot", "targets")
FUTURE = "2099-01-01T00:00:00Z"


def manifest_sha256(data):
    """The sha256 hex of a bundle's manifest.json bytes (its first tar member), as a target's
    custom.manifest_sha256 carries it; None when `data` is not a bundle. A target's custom that names
    manifest_sha256 itself keeps its own value (tests set a wrong one; None leaves the key out)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            first = tar.next()
            if first is None or first.name != "manifest.json" or not first.isfile():
                return None
            return hashlib.sha256(tar.extractfile(first).read()).hexdigest()
    except tarfile.TarError:
        return None


def expires_in(days):
    t = datetime.now(timezone.utc) + timedelta(days=days)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(obj):
    """OLPC canonical JSON as bytes: sorted keys, no white space, only '"' and '\\' escaped."""
    if obj is True:
        return b"true"
    if obj is False:
        return b"false"
    if obj is None:
        return b"null"
    if isinstance(obj, int):
        return str(obj).encode()
    if isinstance(obj, str):
        return b'"' + obj.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'
    if isinstance(obj, (list, tuple)):
        return b"[" + b",".join(canonical(v) for v in obj) + b"]"
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: kv[0].encode())
        return b"{" + b",".join(canonical(k) + b":" + canonical(v) for k, v in items) + b"}"
    raise TypeError(f"no canonical form for {type(obj)}")


class Key:
    def __init__(self, keytype="ed25519"):
        self.keytype = keytype
        if keytype == "ed25519":
            self.private = ed25519.Ed25519PrivateKey.generate()
            raw = self.private.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)
            self.scheme, public = "ed25519", raw.hex()
        elif keytype == "ecdsa":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.scheme, public = "ecdsa-sha2-nistp256", self._pem()
        elif keytype == "rsa":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.scheme, public = "rsassa-pss-sha256", self._pem()
        else:
            raise ValueError(keytype)
        self.public = {"keytype": keytype, "scheme": self.scheme, "keyval": {"public": public}}
        self.keyid = hashlib.sha256(canonical(self.public)).hexdigest()

    def _pem(self):
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def sign(self, data):
        if self.keytype == "ed25519":
            sig = self.private.sign(data)
        elif self.keytype == "ecdsa":
            sig = self.private.sign(data, ec.ECDSA(hashes.SHA256()))
        else:
            sig = self.private.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                      salt_length=padding.PSS.MAX_LENGTH), hashes.SHA256())
        return {"keyid": self.keyid, "sig": sig.hex()}


def sign(signed, keys, extra_sigs=()):
    data = canonical(signed)
    return {"signatures": [k.sign(data) for k in keys] + list(extra_sigs), "signed": signed}


def dump(doc):
    return json.dumps(doc, indent=1, sort_keys=True).encode()


class Delegation:
    def __init__(self, name, paths=None, prefixes=None, terminating=False, keytype="ed25519", parent="targets"):
        self.name, self.paths, self.prefixes, self.terminating = name, paths, prefixes, terminating
        self.parent = parent
        self.keys = [Key(keytype)]
        self.threshold = 1
        self.version = 1
        self.expires = FUTURE
        self.targets = {}  # path -> (bytes, custom or None)


class Repo:
    """The repository's state. publish(dir) writes dir/metadata and dir/targets."""

    def __init__(self, keytype="ed25519", consistent=True):
        self.consistent = consistent
        self.keys = {r: [Key(keytype)] for r in TOP}
        self.threshold = {r: 1 for r in TOP}
        self.signers = {}  # role -> keys that sign; default: self.keys[role]
        self.version = {r: 1 for r in TOP}
        self.expires = {r: FUTURE for r in TOP}
        self.targets = {}  # path -> (bytes, custom or None)
        self.delegations = []
        self.roots = []  # published root documents (bytes), version i+1 at index i
        self.root_signers_prev = []
        self.new_root()

    # ---- root ----
    def root_signed(self):
        keys, roles = {}, {}
        for r in TOP:
            for k in self.keys[r]:
                keys[k.keyid] = k.public
            roles[r] = {"keyids": [k.keyid for k in self.keys[r]], "threshold": self.threshold[r]}
        return {"_type": "root", "spec_version": "1.0.31", "version": self.version["root"],
                "expires": self.expires["root"], "consistent_snapshot": self.consistent,
                "keys": keys, "roles": roles}

    def new_root(self, old_signers=None):
        """Publish the next root version: signed by the previous root keys (or `old_signers`) and by its
        own (or self.signers["root"])."""
        self.version["root"] = len(self.roots) + 1
        signers = list(self.signers.get("root", self.keys["root"]))
        for k in self.root_signers_prev if old_signers is None else old_signers:
            if k.keyid not in {s.keyid for s in signers}:
                signers.append(k)
        self.roots.append(dump(sign(self.root_signed(), signers)))
        self.root_signers_prev = list(self.keys["root"])

    def rotate(self, role, keytype="ed25519", threshold=1, n=1):
        """New keys for `role` and a new root that lists them."""
        self.keys[role] = [Key(keytype) for _ in range(n)]
        self.threshold[role] = threshold
        self.signers.pop(role, None)
        if role != "root":
            self.new_root()

    def trusted_root(self):
        return self.roots[0]

    # ---- the other roles ----
    def _signers(self, role):
        return self.signers.get(role, self.keys[role])

    def targets_signed(self, d=None):
        src = d.targets if d else self.targets
        targets = {}
        for path, (data, custom) in src.items():
            t = {"length": len(data), "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}
            if custom is not None:
                t["custom"] = custom
                digest = manifest_sha256(data)
                if custom.get("manifest_sha256", "") is None:
                    t["custom"] = {k: v for k, v in custom.items() if k != "manifest_sha256"}
                elif digest is not None and "manifest_sha256" not in custom:
                    t["custom"] = dict(custom, manifest_sha256=digest)
            targets[path] = t
        signed = {"_type": "targets", "spec_version": "1.0.31",
                  "version": d.version if d else self.version["targets"],
                  "expires": d.expires if d else self.expires["targets"], "targets": targets}
        name = d.name if d else "targets"
        children = [c for c in self.delegations if c.parent == name]
        if children:
            keys, roles = {}, []
            for c in children:
                for k in c.keys:
                    keys[k.keyid] = k.public
                role = {"name": c.name, "keyids": [k.keyid for k in c.keys], "threshold": c.threshold,
                        "terminating": c.terminating}
                if c.prefixes is not None:
                    role["path_hash_prefixes"] = c.prefixes
                else:
                    role["paths"] = c.paths
                roles.append(role)
            signed["delegations"] = {"keys": keys, "roles": roles}
        return signed

    def publish(self, base, tamper=None):
        """Write the repository under `base`. `tamper(name, bytes) -> bytes` may change a metadata file
        (name as in the snapshot/timestamp: "targets.json", "snapshot.json", ...) before it is listed."""
        base = Path(base)
        md, tg = base / "metadata", base / "targets"
        md.mkdir(parents=True, exist_ok=True)
        tg.mkdir(parents=True, exist_ok=True)
        tamper = tamper or (lambda name, data: data)

        def write_md(role, version, data):
            if self.consistent:
                (md / f"{version}.{role}.json").write_bytes(data)
            (md / f"{role}.json").write_bytes(data)

        for i, data in enumerate(self.roots):
            (md / f"{i + 1}.root.json").write_bytes(data)
        (md / "root.json").write_bytes(self.roots[-1])

        meta = {}
        for d in self.delegations:
            data = tamper(f"{d.name}.json", dump(sign(self.targets_signed(d), d.keys)))
            write_md(d.name, d.version, data)
            meta[f"{d.name}.json"] = {"version": d.version, "length": len(data),
                                      "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}
            self._write_targets(tg, d.targets)
        data = tamper("targets.json", dump(sign(self.targets_signed(), self._signers("targets"))))
        write_md("targets", self.version["targets"], data)
        meta["targets.json"] = {"version": self.version["targets"], "length": len(data),
                                "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}
        self._write_targets(tg, self.targets)

        snap = {"_type": "snapshot", "spec_version": "1.0.31", "version": self.version["snapshot"],
                "expires": self.expires["snapshot"], "meta": meta}
        data = tamper("snapshot.json", dump(sign(snap, self._signers("snapshot"))))
        write_md("snapshot", self.version["snapshot"], data)

        ts = {"_type": "timestamp", "spec_version": "1.0.31", "version": self.version["timestamp"],
              "expires": self.expires["timestamp"],
              "meta": {"snapshot.json": {"version": self.version["snapshot"], "length": len(data),
                                         "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}}}
        data = tamper("timestamp.json", dump(sign(ts, self._signers("timestamp"))))
        (md / "timestamp.json").write_bytes(data)

    def _write_targets(self, tg, targets):
        for path, (data, _) in targets.items():
            p = Path(path)
            name = f"{hashlib.sha256(data).hexdigest()}.{p.name}" if self.consistent else p.name
            out = tg / p.parent / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)

    def bump(self, *roles):
        for r in roles:
            self.version[r] += 1


def resign(data, keys, mutate=None, extra_sigs=()):
    """Re-sign a metadata file's "signed" (after `mutate(signed)`) with `keys`."""
    doc = json.loads(data)
    signed = copy.deepcopy(doc["signed"])
    if mutate:
        mutate(signed)
    return dump(sign(signed, keys, extra_sigs))
