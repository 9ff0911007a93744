# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures and helpers for the `updatectl bundle` integration tests.

Two ways to make bundles:
  * the real CLI (`Env.create()`), for the happy paths and as the source of well-formed bundles;
  * an independent crafting path (`tar_member()`, `craft_tar()`, `cms_sign()`, `Env.craft()`) that
    writes tar streams byte by byte with Python's tarfile headers and signs arbitrary manifest bytes
    with the `openssl cms` command, so the tests can build bundles the CLI would refuse to create;
    `Env.craft2()` does the same for format 2 (blocks stored as is, as zstd frames with their prefix,
    or left out as zeros; python3-zstandard compresses), written from upkeep-bundle(5) alone: a second
    implementation of the format.

Environment (set by tests/integration/meson.build):
  UPDATECTL        the updatectl binary
  UPKEEP_TEST_PKI  the folder holding the build-time test PKI (tests/pki/meson.build)
"""

import copy
import gzip
import hashlib
import json
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import zstandard
from cryptography import x509

# Exit status, from the CLI contract.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SIGNATURE = 10
EXIT_MANIFEST = 13
EXIT_FORMAT = 14
EXIT_PAYLOAD = 15

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
INDEX = "chunks.idx"
BLOCK = 512
CHUNK_ENTRY = 64
BLOCK_ENTRY = 8

NO_KEYRING_WARNING = ("WARNING: no keyring given: the signature was NOT verified; "
                      "nothing below is authenticated.")

RUN_TIMEOUT = 120


UPDATECTL = Path(os.environ.get("UPDATECTL", "/nonexistent/updatectl"))
PKI = Path(os.environ.get("UPKEEP_TEST_PKI", "/nonexistent/pki"))


def pytest_configure(config):
    for name in ("UPDATECTL", "UPKEEP_TEST_PKI"):
        if not os.environ.get(name):
            pytest.exit(f"{name} is not set: run these tests through `meson test --suite integration`", 2)


def pki(name):
    """A file of the test PKI, e.g. pki("signer.pem")."""
    path = PKI / name
    assert path.is_file(), f"test PKI file {path} is missing"
    return path


def cert_subject(name):
    """The RFC 4514/2253 subject string of a PKI certificate `name`.pem (e.g. "CN=...,O=...")."""
    cert = x509.load_pem_x509_certificate(pki(f"{name}.pem").read_bytes())
    return cert.subject.rfc4514_string()


def cert_cn(name):
    cert = x509.load_pem_x509_certificate(pki(f"{name}.pem").read_bytes())
    return cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------------
# Running the CLI


def run(*args, cwd=None, timeout=RUN_TIMEOUT):
    """Run updatectl with `args` (str or Path); returns CompletedProcess with text stdout/stderr."""
    return subprocess.run([str(UPDATECTL)] + [str(a) for a in args], cwd=cwd, capture_output=True,
                          text=True, errors="replace", timeout=timeout, check=False)


def describe(res):
    return (f"command: {' '.join(res.args)}\nexit status: {res.returncode}\n"
            f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")


def assert_ok(res):
    assert res.returncode == EXIT_OK, describe(res)
    return res


def assert_status(res, status, *patterns):
    """Exit status `status` and every regex in `patterns` found in stderr (case-insensitive)."""
    assert res.returncode == status, describe(res)
    for pattern in patterns:
        assert re.search(pattern, res.stderr, re.IGNORECASE), \
            f"stderr does not match /{pattern}/\n" + describe(res)
    return res


def assert_rejected(res, bundle, status, *patterns):
    """A rejection: exact status, and one line on stderr "updatectl: BUNDLE: <message>" whose message
    matches every regex in `patterns`. Nothing on stdout that claims success."""
    assert_status(res, status, *patterns)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, "expected exactly one line on stderr\n" + describe(res)
    prefix = f"updatectl: {bundle}: "
    assert lines[0].startswith(prefix), f"stderr does not start with {prefix!r}\n" + describe(res)
    assert ": OK:" not in res.stdout, describe(res)
    return res


# ------------------------------------------------------------------------------------------------------
# Payloads and manifests


@dataclass
class Payload:
    name: str
    file: str
    handler: str
    raw: bytes       # the bytes before compression
    stored: bytes    # the bytes in the bundle
    compression: str = None
    slot_class: str = None
    target: str = None


def _compress(tool, data, tmp):
    src = tmp / f"compress-input.{tool}"
    src.write_bytes(data)
    out = subprocess.run([tool, "-c", "-q", str(src)] if tool != "zstd" else
                         [tool, "-c", "-q", "-19", str(src)],
                         capture_output=True, check=True).stdout
    src.unlink()
    return out


def make_payloads(tmp):
    """Four payloads: raw random bytes, and random-ish bytes compressed with zstd, xz and gzip."""
    rnd = os.urandom
    # Compressible but not trivial: random text in a limited alphabet.
    def text(n):
        return bytes(b"abcdefghij\n"[c % 11] for c in rnd(n))

    return [
        Payload("rootfs", "rootfs.img", "raw", rnd(300 * 1024 + 17), None, slot_class="rootfs"),
        Payload("app", "app.tar.zst", "archive", text(200 * 1024), None, compression="zstd",
                target="/opt/app"),
        Payload("config", "config.xz", "file", text(50 * 1024 + 3), None, compression="xz",
                target="/etc/acme/config.txt"),
        Payload("data", "data.gz", "file", text(70 * 1024 + 5), None, compression="gzip",
                target="/var/lib/acme/data.bin"),
    ]


_run_payloads = None


def run_payloads(tmp):
    """make_payloads() with their stored bytes, made once per test run (the first caller's `tmp` holds
    the compressor's input for a moment): no test changes them, and compressing them again for every
    test (zstd -19 above all) cost more than most tests. Each caller gets its own Payload objects."""
    global _run_payloads
    if _run_payloads is None:
        payloads = make_payloads(tmp)
        for p in payloads:
            p.stored = p.raw if p.compression is None else \
                _compress({"zstd": "zstd", "xz": "xz", "gzip": "gzip"}[p.compression], p.raw, tmp)
        _run_payloads = payloads
    return [replace(p) for p in _run_payloads]


def manifest_template(payloads):
    """A valid format-1 manifest template (no size/sha256)."""
    entries = []
    for p in payloads:
        e = {"name": p.name, "file": p.file, "handler": p.handler}
        if p.slot_class is not None:
            e["slot_class"] = p.slot_class
        if p.target is not None:
            e["target"] = p.target
        if p.compression is not None:
            e["compression"] = p.compression
        entries.append(e)
    return {
        "format": 1,
        "compatible": "acme-gw",
        "version": "1.2.3",
        "min_version": "1.0.0",
        "build": "2024-05-01T12:00:00Z",
        "description": "integration test bundle",
        "security": {"type": "security", "advisories": ["CVE-2024-0001"], "summary": "fixes things"},
        "support": {"end": "2030-12-31", "url": "https://example.com/support"},
        "reboot": True,
        "payloads": entries,
    }


def manifest_full(payloads):
    """The template with size, sha256 and installed_size computed here (independently of the CLI)."""
    m = manifest_template(payloads)
    for e, p in zip(m["payloads"], payloads):
        e["size"] = len(p.stored)
        e["sha256"] = sha256(p.stored)
        if p.compression is not None:
            e["installed_size"] = len(p.raw)
    return m


def manifest_bytes(m):
    return (json.dumps(m, indent=2) + "\n").encode()


# ------------------------------------------------------------------------------------------------------
# Format 2, from upkeep-bundle(5)
#
# A payload's content is cut into blocks of B bytes (the unit stored: as is, as a zstd frame decoded with
# the content before it as its prefix, or not at all when it is zeros), grouped into chunks of C bytes
# (the unit verified). chunks.idx as stored is one zstd frame of the index content: per payload its
# chunk entries (64 bytes: SHA-256 of the chunk's stored bytes and of its content), then its block
# entries (8 bytes: kind, stored length u16 big-endian, 5-byte match key).

KIND_STORED = 0
KIND_ZSTD = 1
KIND_ZERO = 2


def zstd_frame(content, prefix=b"", level=9):
    """One zstd frame of `content` declaring its content size, without checksum or dictionary ID,
    compressed with `prefix` as a raw content dictionary (what ZSTD_DCtx_refPrefix() decodes)."""
    d = zstandard.ZstdCompressionDict(prefix, dict_type=zstandard.DICT_TYPE_RAWCONTENT) if prefix else None
    c = zstandard.ZstdCompressor(level=level, dict_data=d, write_checksum=False, write_content_size=True,
                                 write_dict_id=False)
    return c.compress(content)


def zstd_unframe(frame, prefix=b""):
    """The content of `frame`, which must be exactly one zstd frame declaring its content size, decoded
    with `prefix`; AssertionError otherwise."""
    size = zstandard.get_frame_parameters(frame).content_size
    assert size != zstandard.CONTENTSIZE_UNKNOWN, "the zstd frame does not declare its content size"
    d = zstandard.ZstdCompressionDict(prefix, dict_type=zstandard.DICT_TYPE_RAWCONTENT) if prefix else None
    o = zstandard.ZstdDecompressor(dict_data=d).decompressobj()
    out = o.decompress(frame)
    assert o.eof and not o.unused_data, "not exactly one zstd frame"
    assert len(out) == size, f"the zstd frame declares {size} bytes and holds {len(out)}"
    return out


def zstd_raw_frame(content, declare=None):
    """A zstd frame written by hand (RFC 8878): single segment, an 8-byte frame content size (`declare`,
    default len(content)), then `content` in raw (uncompressed) blocks of at most 128 KiB, no checksum.
    Its size depends only on the content's length."""
    out = (0xFD2FB528).to_bytes(4, "little") + bytes([0xE0]) + \
        (len(content) if declare is None else declare).to_bytes(8, "little")
    pieces = [content[i:i + 131072] for i in range(0, len(content), 131072)] or [b""]
    for n, piece in enumerate(pieces):
        last = 1 if n == len(pieces) - 1 else 0
        out += (last | 0 << 1 | len(piece) << 3).to_bytes(3, "little") + piece
    return out


def index_frame(raw, level=19):
    """chunks.idx as stored: the index content `raw` as one zstd frame declaring its size."""
    return zstd_frame(raw, level=level)


def index_content(stored):
    """The index content of chunks.idx as stored."""
    return zstd_unframe(stored)


def match_key(content):
    return hashlib.sha256(content).digest()[:5]


@dataclass
class Block2:
    """One block: its kind, its stored bytes and its content. `key` overrides the match key."""
    kind: int
    stored: bytes
    content: bytes
    key: bytes = None

    def entry(self):
        key = self.key
        if key is None:
            key = bytes(5) if self.kind == KIND_ZERO else match_key(self.content)
        return bytes([self.kind]) + len(self.stored).to_bytes(2, "big") + key


def cut_blocks(content, block=4096, compression="none", window=0, level=9, zeros=True):
    """The blocks of `content` stored as upkeep-bundle(5)'s DETERMINISM says: with compression none all
    kind 0; with zstd a block of zeros is kind 2 (unless not `zeros`), a block whose frame (with the
    min(window, j x block) content bytes before it as prefix) is smaller than it kind 1, any other kind
    0."""
    out = []
    for start in range(0, len(content), block):
        c = content[start:start + block]
        if compression == "zstd":
            if zeros and not any(c):
                out.append(Block2(KIND_ZERO, b"", c))
                continue
            f = zstd_frame(c, content[max(0, start - window):start] if window else b"", level)
            if len(f) < len(c):
                out.append(Block2(KIND_ZSTD, f, c))
                continue
        out.append(Block2(KIND_STORED, c, c))
    return out


@dataclass
class Layout2:
    """One format-2 payload: its content, chunking and blocks (cut_blocks() unless given)."""
    content: bytes
    chunk: int = 65536
    block: int = 4096
    compression: str = "none"
    window: int = 0
    blocks: list = None
    level: int = 9

    def __post_init__(self):
        if self.blocks is None:
            self.blocks = cut_blocks(self.content, self.block, self.compression, self.window, self.level)

    @property
    def stored(self):
        return b"".join(b.stored for b in self.blocks)

    @property
    def count(self):
        return -(-len(self.content) // self.chunk)

    def chunk_blocks(self, i):
        per = self.chunk // self.block
        return self.blocks[i * per:(i + 1) * per]

    def chunk_stored(self, i):
        """(offset in the member, length) of chunk i's stored bytes."""
        per = self.chunk // self.block
        at = sum(len(b.stored) for b in self.blocks[:i * per])
        return at, sum(len(b.stored) for b in self.chunk_blocks(i))

    def chunk_entry(self, i):
        blocks = self.chunk_blocks(i)
        return hashlib.sha256(b"".join(b.stored for b in blocks)).digest() + \
            hashlib.sha256(b"".join(b.content for b in blocks)).digest()

    def index_part(self):
        """This payload's part of the index content: its chunk entries, then its block entries."""
        return b"".join(self.chunk_entry(i) for i in range(self.count)) + \
            b"".join(b.entry() for b in self.blocks)

    def chunks_obj(self):
        return {"size": self.chunk, "block": self.block, "count": self.count,
                "compression": self.compression, "window": self.window}


def manifest2_for(payloads, layouts):
    """A format-2 manifest for `payloads` stored as `layouts` (one Layout2 each), and its index content;
    the manifest's index object describes index_frame() of that content."""
    m = manifest_template(payloads)
    m["format"] = 2
    raw = b""
    for e, lay in zip(m["payloads"], layouts):
        e.pop("compression", None)
        e["size"] = len(lay.stored)
        e["installed_size"] = len(lay.content)
        e["chunks"] = lay.chunks_obj()
        raw += lay.index_part()
    set_index(m, index_frame(raw))
    return m, raw


def set_index(m, stored):
    """Point the manifest's index object at chunks.idx `stored` (bytes as stored)."""
    m["index"] = {"size": len(stored), "sha256": sha256(stored)}


def manifest2_full(payloads, chunk_size=65536, contents=None, block=4096, compression="none", window=0):
    """A format-2 manifest, its index content and the Layout2 of each payload (content: p.raw, or
    `contents`); by default every block stored as is."""
    layouts = [Layout2(p.raw if contents is None else contents[i], chunk_size, block, compression, window)
               for i, p in enumerate(payloads)]
    m, raw = manifest2_for(payloads, layouts)
    return m, raw, layouts


def index_spans(m):
    """(start, end) of each payload's part of the index content, from the manifest alone."""
    spans = []
    at = 0
    for e in m["payloads"]:
        c = e["chunks"]
        n = -(-e["installed_size"] // c["block"])
        spans.append((at, at + c["count"] * CHUNK_ENTRY + n * BLOCK_ENTRY))
        at = spans[-1][1]
    return spans


def block_entry_at(m, payload, j):
    """The offset of block j's entry of payload number `payload` in the index content."""
    return index_spans(m)[payload][0] + m["payloads"][payload]["chunks"]["count"] * CHUNK_ENTRY + \
        j * BLOCK_ENTRY


def chunk_entry_at(m, payload, i):
    return index_spans(m)[payload][0] + i * CHUNK_ENTRY


def block_entries(m, raw, payload):
    """[(kind, stored length, match key)] of payload number `payload`, read from the index content."""
    e = m["payloads"][payload]
    n = -(-e["installed_size"] // e["chunks"]["block"])
    at = block_entry_at(m, payload, 0)
    return [(raw[at + j * 8], int.from_bytes(raw[at + j * 8 + 1:at + j * 8 + 3], "big"),
             raw[at + j * 8 + 3:at + j * 8 + 8]) for j in range(n)]


def chunk_ranges(m, raw, payload):
    """[(offset in the member, length)] of each chunk's stored bytes, from manifest and index content."""
    c = m["payloads"][payload]["chunks"]
    lengths = [length for _, length, _ in block_entries(m, raw, payload)]
    per = c["size"] // c["block"]
    out = []
    at = 0
    for i in range(c["count"]):
        n = sum(lengths[i * per:(i + 1) * per])
        out.append((at, n))
        at += n
    return out


def payload_identity(m, raw, payload):
    """What handlers get as a format-2 payload's sha256: the hash of its part of the index content."""
    start, end = index_spans(m)[payload]
    return sha256(raw[start:end])


def ustar_member(name, data=b""):
    """One member with a plain ustar header (no pax, no GNU headers), as format 2 requires."""
    return tar_member(name, data, format=tarfile.USTAR_FORMAT)


def decode_payload(m, raw, payload, stored):
    """The content of payload number `payload`, decoded from its member's bytes `stored` as
    upkeep-bundle(5) says, block by block (zstd frames with their prefix); AssertionError where a block
    breaks a rule of its kind, its match key is not its content's, or a chunk's hashes differ."""
    e = m["payloads"][payload]
    c = e["chunks"]
    blocks = block_entries(m, raw, payload)
    per = c["size"] // c["block"]
    content = b""
    at = 0
    for i in range(c["count"]):
        chunk_start, chunk_at = len(content), at
        for j in range(i * per, min((i + 1) * per, len(blocks))):
            kind, length, key = blocks[j]
            want = min(c["block"], e["installed_size"] - j * c["block"])
            data = stored[at:at + length]
            at += length
            if kind == KIND_STORED:
                assert length == want, (payload, j, kind, length, want)
            elif kind == KIND_ZSTD:
                assert c["compression"] == "zstd" and 0 < length < want, (payload, j, kind, length, want)
                prefix = content[max(0, len(content) - c["window"]):] if c["window"] else b""
                data = zstd_unframe(data, prefix)
            else:
                assert kind == KIND_ZERO and c["compression"] == "zstd" and length == 0, (payload, j, kind)
                assert key == bytes(5), (payload, j, key)
                data = bytes(want)
            assert len(data) == want, (payload, j, len(data), want)
            if kind != KIND_ZERO:
                assert key == match_key(data), (payload, j, "match key")
            content += data
        entry = raw[chunk_entry_at(m, payload, i):chunk_entry_at(m, payload, i + 1)]
        assert entry[:32] == hashlib.sha256(stored[chunk_at:at]).digest(), (payload, i, "stored sha256")
        assert entry[32:] == hashlib.sha256(content[chunk_start:]).digest(), (payload, i, "content sha256")
    assert at == len(stored) == e["size"], (payload, at, len(stored), e["size"])
    assert len(content) == e["installed_size"]
    return content


# ------------------------------------------------------------------------------------------------------
# Crafting tar streams and signatures by hand


def tar_member(name, data=b"", type=tarfile.REGTYPE, linkname="", mode=0o644, size=None, pax=None,
               devmajor=0, devminor=0, format=tarfile.PAX_FORMAT):
    """One tar member (header(s) + data + padding) in POSIX pax format, mtime 0, uid/gid 0, no names.
    `size` overrides the size written in the header."""
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = linkname
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.devmajor, info.devminor = devmajor, devminor
    info.size = len(data) if size is None else size
    if pax:
        info.pax_headers = dict(pax)
    out = info.tobuf(format=format, encoding="utf-8", errors="surrogateescape")
    out += data
    if len(data) % BLOCK:
        out += b"\0" * (BLOCK - len(data) % BLOCK)
    return out


def craft_tar(members, end=True):
    """Concatenate members (bytes from tar_member(), or (name, data) tuples); `end` adds the two zero
    blocks of the end-of-archive marker."""
    out = b""
    for m in members:
        out += m if isinstance(m, bytes) else tar_member(*m)
    if end:
        out += b"\0" * (2 * BLOCK)
    return out


_signatures = {}


def cms_sign(data, tmp, signer="signer", chain=True, md="sha256", extra=()):
    """Detached CMS SignedData (DER, no signed attributes) over `data`, made by the openssl command.
    Signed once per test run for the same arguments (most crafted bundles sign the same manifest; RSA
    and Ed25519 signatures are the same bytes every time anyway)."""
    key = (bytes(data), signer, chain, md, tuple(str(x) for x in extra))
    if key not in _signatures:
        _signatures[key] = _cms_sign(data, tmp, signer, chain, md, extra)
    return _signatures[key]


def _cms_sign(data, tmp, signer, chain, md, extra):
    tmp.mkdir(parents=True, exist_ok=True)
    inp = tmp / "cms-input"
    sig = tmp / "cms-output"
    inp.write_bytes(data)
    cmd = ["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-noattr", "-md", md,
           "-signer", str(pki(f"{signer}.pem")), "-inkey", str(pki(f"{signer}.key")),
           "-in", str(inp), "-out", str(sig)]
    if chain:
        cmd += ["-certfile", str(pki("chain.pem"))]
    cmd += list(extra)
    subprocess.run(cmd, check=True, capture_output=True)
    out = sig.read_bytes()
    inp.unlink()
    sig.unlink()
    return out


def cms_verify_ok(data, sig, tmp):
    """Does `openssl cms -verify` accept `sig` over `data` with the test keyring? (a sanity check)."""
    (tmp / "v-data").write_bytes(data)
    (tmp / "v-sig").write_bytes(sig)
    r = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / "v-sig"),
                        "-content", str(tmp / "v-data"), "-CAfile", str(pki("keyring.pem")),
                        "-purpose", "any", "-out", os.devnull], capture_output=True)
    return r.returncode == 0


@dataclass
class Member:
    """Where one logical member sits in a tar stream."""
    name: str
    start: int        # first header (pax header included)
    header: int       # the member's own ustar header
    data: int         # first data byte
    size: int
    end: int          # after the data's padding: the next member's start

    @property
    def data_end(self):
        return self.data + self.size


def parse_tar(blob):
    """Walk a tar stream by hand (ustar + pax 'x' headers): returns (members, end_of_members)."""
    members = []
    off = 0
    start = None
    pax_path = None
    while off + BLOCK <= len(blob):
        hdr = blob[off:off + BLOCK]
        if hdr == b"\0" * BLOCK:
            break
        size = int(hdr[124:136].rstrip(b"\0 ").decode() or "0", 8)
        typ = hdr[156:157]
        data = off + BLOCK
        end = data + (size + BLOCK - 1) // BLOCK * BLOCK
        if start is None:
            start = off
        if typ in (b"x", b"g"):
            for rec in re.finditer(rb"\d+ ([^=]+)=([^\n]*)\n", blob[data:data + size]):
                if rec.group(1) == b"path":
                    pax_path = rec.group(2).decode()
            off = end
            continue
        name = pax_path or hdr[0:100].rstrip(b"\0").decode()
        members.append(Member(name, start, off, data, size, end))
        start, pax_path = None, None
        off = end
    return members, off


def read_members(path):
    """Name → bytes of every member, read with Python's tarfile (for comparing extracted files)."""
    out = {}
    with tarfile.open(path, "r:") as t:
        for info in t:
            out[info.name] = t.extractfile(info).read() if info.isreg() else None
    return out


# ------------------------------------------------------------------------------------------------------
# The per-test environment


class Env:
    """Everything one test needs, in its own tmp_path (also the CLI's working directory)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.payload_dir = tmp / "payloads"
        self.payload_dir.mkdir()
        self.payloads = run_payloads(tmp)
        for p in self.payloads:
            (self.payload_dir / p.file).write_bytes(p.stored)
        self.keyring = pki("keyring.pem")
        self.crl = pki("keyring.crl")
        self._n = 0
        self.create_format = None

    def path(self, name):
        return self.tmp / name

    def run(self, *args):
        return run(*args, cwd=self.tmp)

    # --- the CLI's own bundles

    def write_template(self, m=None, name="manifest.json"):
        m = manifest_template(self.payloads) if m is None else m
        path = self.tmp / name
        path.write_bytes(manifest_bytes(m))
        return path

    def create_args(self, out="b.upk", signer="signer", chain=True, manifest=None, payload_dir=None,
                    extra=None):
        manifest = manifest or self.write_template()
        args = ["bundle", "create", "--manifest", manifest, "--cert", pki(f"{signer}.pem"),
                "--key", pki(f"{signer}.key")]
        # `create_format`: the format the CLI is asked for (None: its default, format 2).
        if self.create_format is not None:
            args += ["--format", str(self.create_format)]
        args += list(extra or ())
        if chain:
            args += ["--chain", pki("chain.pem")]
        args += ["--payload-dir", payload_dir or self.payload_dir, "-o", out]
        return args

    def create(self, out="b.upk", **kw):
        """Create a bundle with the real CLI; returns its name (relative to tmp, the cwd)."""
        assert_ok(self.run(*self.create_args(out=out, **kw)))
        assert (self.tmp / out).is_file()
        return out

    # --- bundles crafted by hand

    def sign(self, data, **kw):
        self._n += 1
        return cms_sign(data, self.tmp / f"cms{self._n}", **kw)

    def craft(self, name="c.upk", manifest=None, sig=None, members=None, payloads=None, end=True,
              signer="signer", chain=True, md="sha256"):
        """Write a crafted bundle. Defaults: the independently computed full manifest, signed with
        openssl, then the stored payloads in order. `manifest` may be a dict or bytes; `members`
        replaces the whole member list; `payloads` replaces only the payload members."""
        if manifest is None:
            manifest = manifest_full(self.payloads)
        mbytes = manifest if isinstance(manifest, bytes) else manifest_bytes(manifest)
        if sig is None:
            sig = self.sign(mbytes, signer=signer, chain=chain, md=md)
        if members is None:
            if payloads is None:
                payloads = [(p.file, p.stored) for p in self.payloads]
            members = [(MANIFEST, mbytes), (SIGNATURE, sig)] + list(payloads)
        (self.tmp / name).write_bytes(craft_tar(members, end=end))
        return name

    def craft2(self, name="c2.upk", manifest=None, index=None, raw=None, payloads=None, members=None,
               end=True, signer="signer", chain=True, chunk_size=65536, block=4096, compression="none",
               window=0, layouts=None):
        """Write a crafted format-2 bundle in the canonical layout: manifest.json, its signature,
        chunks.idx, then the payload members (default: each payload's raw bytes cut into blocks of
        `block` in chunks of `chunk_size`, stored by `compression` and `window`, or as `layouts`, a
        Layout2 per payload). `raw` replaces the index content (stored as index_frame(raw), the
        manifest's index object following it unless `manifest` is given); `index` replaces chunks.idx
        as stored; `manifest` (dict or bytes) replaces the computed manifest; `payloads` replaces the
        payload members' (name, bytes); `members` replaces every member (bytes or (name, data))."""
        if layouts is None:
            layouts = [Layout2(p.raw, chunk_size, block, compression, window) for p in self.payloads]
        m, content = manifest2_for(self.payloads, layouts)
        if raw is not None:
            content = raw
            set_index(m, index_frame(raw))
        if index is None:
            index = index_frame(content)
        if manifest is None:
            manifest = m
        mbytes = manifest if isinstance(manifest, bytes) else manifest_bytes(manifest)
        if members is None:
            sig = self.sign(mbytes, signer=signer, chain=chain)
            if payloads is None:
                payloads = [(p.file, lay.stored) for p, lay in zip(self.payloads, layouts)]
            members = [(MANIFEST, mbytes), (SIGNATURE, sig), (INDEX, index)] + list(payloads)
        out = b"".join(x if isinstance(x, bytes) else ustar_member(*x) for x in members)
        if end:
            out += b"\0" * (2 * BLOCK)
        (self.tmp / name).write_bytes(out)
        return name

    def full_manifest(self):
        return copy.deepcopy(manifest_full(self.payloads))

    def verify(self, bundle, *extra):
        return self.run("bundle", "verify", "--keyring", self.keyring, *extra, bundle)

    def extract(self, bundle, outdir="out", *extra):
        return self.run("bundle", "extract", "--keyring", self.keyring, *extra, bundle, outdir)

    def info(self, bundle, *extra):
        return self.run("bundle", "info", *extra, bundle)

    def snapshot(self):
        """Every path under tmp with its content (files) or None (folders), for leftover checks."""
        out = {}
        for root, dirs, files in os.walk(self.tmp):
            for d in dirs:
                out[os.path.relpath(os.path.join(root, d), self.tmp)] = None
            for f in files:
                p = os.path.join(root, f)
                out[os.path.relpath(p, self.tmp)] = Path(p).read_bytes() if not os.path.islink(p) \
                    else ("symlink", os.readlink(p))
        return out

    def assert_rejected_everywhere(self, bundle, status, *patterns, crl=False):
        """`verify` and `extract` (into a new folder) both reject the bundle with `status` and a message
        matching `patterns`; extract leaves nothing behind (no folder, no file anywhere)."""
        extra = ("--crl", self.crl) if crl else ()
        before = self.snapshot()
        res = self.verify(bundle, *extra)
        assert_rejected(res, bundle, status, *patterns)
        msg = res.stderr
        res = self.extract(bundle, "out", *extra)
        assert_rejected(res, bundle, status, *patterns)
        assert not (self.tmp / "out").exists(), "extract left its folder behind"
        assert self.snapshot() == before, "extract left something behind"
        # An existing empty folder is left empty.
        (self.tmp / "out2").mkdir()
        res = self.extract(bundle, "out2", *extra)
        assert_rejected(res, bundle, status, *patterns)
        assert list((self.tmp / "out2").iterdir()) == [], "extract left files behind"
        (self.tmp / "out2").rmdir()
        return msg


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def gzip_bytes(data):
    return gzip.compress(data, mtime=0)


@pytest.fixture
def world(request, tmp_path):
    """The daemon tests' worlds (test_poll, test_slow_retrieval, test_hawkbit, test_hawkbit_delta): a factory of the test
    module's own `World` class, world(**kw) making one under tmp_path; every one made is closed at the end
    (its daemons, bus and servers stopped), also when the test failed."""
    cls = request.module.World
    worlds = []

    def make(**kw):
        w = cls(tmp_path / f"w{len(worlds)}", **kw)
        worlds.append(w)
        return w
    try:
        yield make
    finally:
        for w in worlds:
            w.close()
