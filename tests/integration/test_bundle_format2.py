# SPDX-License-Identifier: LGPL-2.1-or-later
"""Bundle format 2 (upkeep-bundle(5)): `updatectl bundle create` writes it by default; `info` shows the
chunking; `verify` and `extract` check every chunk; the reader refuses a flipped byte at the chunk
that holds it, a changed index before any payload byte, and any layout but the canonical one.

Bundles come from the CLI and from conftest's second implementation of the format (Env.craft2(),
written from the man page alone); for chunks stored as is the two must agree byte for byte."""

import hashlib
import json
import os
import subprocess
import tarfile

import pytest

from conftest import (BLOCK, CHUNK_ENTRY, EXIT_FORMAT, EXIT_MANIFEST, EXIT_PAYLOAD, EXIT_USAGE, INDEX,
                      MANIFEST, SIGNATURE, assert_ok, assert_rejected, assert_status, cert_subject,
                      chunks_of, describe, manifest2_full, parse_tar, payload_identity, read_members,
                      sha256, tar_member, ustar_member)


def q(s):
    import re
    return re.escape(s)


def info_json(env, bundle):
    res = assert_ok(env.info(bundle, "--json", "--keyring", env.keyring))
    return json.loads(res.stdout)


def member_offsets(path):
    """name -> (header offset, data offset, size), walking the ustar headers by hand."""
    members, _ = parse_tar(path.read_bytes())
    return {m.name: (m.header, m.data, m.size) for m in members}


def test_create_writes_format2(env):
    b = env.create()
    members = read_members(env.path(b))
    assert list(members) == [MANIFEST, SIGNATURE, INDEX] + [p.file for p in env.payloads]
    m = json.loads(members[MANIFEST])
    assert m["format"] == 2
    assert m["index"] == {"size": len(members[INDEX]), "sha256": sha256(members[INDEX])}
    for e, p in zip(m["payloads"], env.payloads):
        assert "sha256" not in e and "compression" not in e, e
        assert e["installed_size"] == len(p.raw)
        # The template's compressed inputs become zstd chunks, the raw one stays as is.
        want = "zstd" if p.compression else "none"
        assert e["chunks"] == {"size": 65536, "count": -(-len(p.raw) // 65536), "compression": want}, e
        assert e["size"] == len(members[p.file])
    assert_ok(env.verify(b))


def test_info_shows_the_chunking(env):
    b = env.create()
    members = read_members(env.path(b))
    index = members[INDEX]
    res = assert_ok(env.info(b, "--keyring", env.keyring))
    assert "Format:      2\n" in res.stdout, describe(res)
    doc = info_json(env, b)
    assert doc["format"] == 2
    first = 0
    for p, e in zip(env.payloads, doc["payloads"]):
        count = -(-len(p.raw) // 65536)
        assert e == {"name": p.name, "size": len(members[p.file]), "installed_size": len(p.raw),
                     "chunk_size": 65536, "chunk_count": count,
                     "compression": "zstd" if p.compression else "none",
                     "identity": payload_identity(index, first, count)}, e
        assert f"chunks          {count} of 65536 bytes, {e['compression']}" in res.stdout, describe(res)
        assert f"identity        {e['identity']}" in res.stdout, describe(res)
        first += count


def test_extract_gives_index_and_stored_chunks(env):
    b = env.create()
    assert_ok(env.extract(b, "out"))
    out = env.path("out")
    members = read_members(env.path(b))
    assert sorted(os.listdir(out)) == sorted([MANIFEST, SIGNATURE, INDEX] + [p.file for p in env.payloads])
    for name, data in members.items():
        assert (out / name).read_bytes() == data, name
    for p in env.payloads:
        got = (out / p.file).read_bytes()
        if p.compression:
            # A member of independent zstd frames is one valid zstd stream.
            got = subprocess.run(["zstd", "-d", "-c", "-q"], input=got, capture_output=True,
                                 check=True).stdout
        assert got == p.raw, p.name


def test_create_reproducible(env):
    a = env.create("a.upk")
    b = env.create("b.upk")
    assert env.path(a).read_bytes() == env.path(b).read_bytes()


@pytest.mark.parametrize("chunk_size", [4096, 65536])
def test_second_implementation_agrees(env, chunk_size):
    """With chunks stored as is, the CLI's bundle and conftest's (from the man page) have the same
    index, the same payload entries and the same canonical layout."""
    b = env.create(extra=["--compression", "none", "--chunk-size", str(chunk_size)])
    members = read_members(env.path(b))
    m, index = manifest2_full(env.payloads, chunk_size)
    assert members[INDEX] == index
    stored = json.loads(members[MANIFEST])
    assert stored["index"] == m["index"]
    assert stored["payloads"] == m["payloads"]
    for p in env.payloads:
        assert members[p.file] == p.raw
    # Canonical: each header right after the previous member's padded data, plain ustar.
    at = 0
    for name, (header, data, size) in member_offsets(env.path(b)).items():
        assert header == at and data == at + BLOCK, name
        at = data + -(-size // BLOCK) * BLOCK
    raw = env.path(b).read_bytes()
    assert raw[at:at + 2 * BLOCK] == b"\0" * (2 * BLOCK)
    # And conftest's own bundle verifies.
    c = env.craft2(chunk_size=chunk_size)
    assert_ok(env.verify(c))
    assert_ok(env.extract(c, "out"))
    for p in env.payloads:
        assert (env.path("out") / p.file).read_bytes() == p.raw


@pytest.mark.parametrize("compression", ["none", "zstd"])
@pytest.mark.parametrize("chunk", [0, 2, "last"])
def test_flipped_byte_names_its_chunk(env, compression, chunk):
    """A byte flipped in chunk N of a payload: verify and extract stop at chunk N, naming it."""
    b = env.create(extra=["--compression", compression, "--chunk-size", "4096"])
    raw = bytearray(env.path(b).read_bytes())
    members = read_members(env.path(b))
    p = env.payloads[1]  # app: 200 KiB of compressible text
    offs = member_offsets(env.path(b))
    _, data, size = offs[p.file]
    index = members[INDEX]
    first = sum(-(-len(x.raw) // 4096) for x in env.payloads[:1])
    count = -(-len(p.raw) // 4096)
    n = count - 1 if chunk == "last" else chunk
    lengths = [int.from_bytes(index[(first + i) * CHUNK_ENTRY + 4:(first + i) * CHUNK_ENTRY + 8], "big")
               for i in range(count)]
    at = data + sum(lengths[:n]) + lengths[n] // 2
    raw[at] ^= 0x01
    env.path(b).write_bytes(bytes(raw))
    end = min((n + 1) * 4096, len(p.raw)) - 1
    env.assert_rejected_everywhere(b, EXIT_PAYLOAD,
                                   q(f'rejected: payload "{p.name}": chunk {n} (bytes {n * 4096}..{end}): '
                                     'sha256 mismatch'))


def test_flipped_index_fails_before_any_payload(env):
    b = env.create()
    raw = bytearray(env.path(b).read_bytes())
    _, data, size = member_offsets(env.path(b))[INDEX]
    raw[data + size // 2] ^= 0x80
    env.path(b).write_bytes(bytes(raw))
    env.assert_rejected_everywhere(b, EXIT_PAYLOAD, q("rejected: chunks.idx: sha256 mismatch"))
    # Before any payload: not even the manifest and signature are extracted.
    assert not env.path("out").exists()


def test_index_of_other_bundle(env):
    """A valid index of another bundle (same sizes, other content) under this manifest: refused."""
    m, index = manifest2_full(env.payloads)
    other = [bytes(len(p.raw)) for p in env.payloads]
    _, other_index = manifest2_full(env.payloads, contents=other)
    c = env.craft2(index=other_index)
    env.assert_rejected_everywhere(c, EXIT_PAYLOAD, q("rejected: chunks.idx: sha256 mismatch"))


@pytest.mark.parametrize("case", ["pax-header", "gnu-header", "pax-on-manifest", "pax-on-index", "index-moved",
                                  "no-index"])
def test_non_canonical_layout_is_refused(env, case):
    m, index = manifest2_full(env.payloads)
    mbytes = (json.dumps(m, indent=2) + "\n").encode()
    sig = env.sign(mbytes)
    members = [ustar_member(MANIFEST, mbytes), ustar_member(SIGNATURE, sig), ustar_member(INDEX, index)] + \
              [ustar_member(p.file, p.raw) for p in env.payloads]
    if case == "pax-header":
        members[3] = tar_member(env.payloads[0].file, env.payloads[0].raw, pax={"comment": "x"})
    elif case == "gnu-header":
        info = tarfile.TarInfo(env.payloads[0].file)
        info.size = len(env.payloads[0].raw)
        info.mtime = 0
        data = env.payloads[0].raw
        members[3] = info.tobuf(format=tarfile.GNU_FORMAT) + data + b"\0" * (-len(data) % BLOCK)
    elif case == "pax-on-manifest":
        members[0] = tar_member(MANIFEST, mbytes, pax={"comment": "x"})
    elif case == "pax-on-index":
        members[2] = tar_member(INDEX, index, pax={"comment": "x"})
    elif case == "index-moved":
        members[2], members[3] = members[3], members[2]
    elif case == "no-index":
        del members[2]
    c = env.craft2(members=members)
    status = EXIT_FORMAT
    msg = env.assert_rejected_everywhere(c, status, r"rejected: bundle format: ")
    if case not in ("index-moved", "no-index"):
        assert "not canonical" in msg, msg
    else:
        assert 'expected "chunks.idx"' in msg, msg


def test_truncated_in_a_chunk(env):
    b = env.create()
    raw = env.path(b).read_bytes()
    _, data, size = member_offsets(env.path(b))[env.payloads[0].file]
    env.path(b).write_bytes(raw[:data + size // 2])
    env.assert_rejected_everywhere(b, EXIT_FORMAT, r"rejected: bundle format: ")


def test_format1_still_readable(env):
    env.create_format = 1
    b = env.create()
    assert json.loads(read_members(env.path(b))[MANIFEST])["format"] == 1
    assert_ok(env.verify(b))
    assert info_json(env, b)["format"] == 1


@pytest.mark.parametrize("args, pattern", [
    (["--format", "3"], r"--format"),
    (["--format", "1", "--chunk-size", "4096"], r"format 2 only"),
    (["--chunk-size", "1000"], r"--chunk-size"),
    (["--chunk-size", "2048"], r"--chunk-size"),
    (["--chunk-size", "2097152"], r"--chunk-size"),
    (["--compression", "xz"], r"--compression"),
    (["--zstd-level", "0"], r"--zstd-level"),
    (["--zstd-level", "20"], r"--zstd-level"),
])
def test_create_options_checked(env, args, pattern):
    res = env.run(*env.create_args(out="b.upk", extra=args))
    assert_status(res, EXIT_USAGE, pattern)
    assert not env.path("b.upk").exists()


def test_template_chunks_override(env):
    """A payload's `chunks` in the template overrides the command line for it."""
    t = json.loads(env.write_template().read_bytes())
    t["payloads"][0]["chunks"] = {"size": 8192, "compression": "zstd"}
    env.write_template(t)
    b = env.create(manifest=env.path("manifest.json"), extra=["--chunk-size", "4096", "--compression", "none"])
    m = json.loads(read_members(env.path(b))[MANIFEST])
    assert m["payloads"][0]["chunks"]["size"] == 8192
    assert m["payloads"][0]["chunks"]["compression"] == "zstd"
    assert m["payloads"][1]["chunks"] == {"size": 4096, "count": -(-len(env.payloads[1].raw) // 4096),
                                          "compression": "none"}
    assert_ok(env.verify(b))


def test_zstd_frame_not_smaller_is_stored_as_is(env):
    """Random bytes do not compress: with zstd every such chunk is kind 0, stored as is."""
    b = env.create(extra=["--compression", "zstd"])
    members = read_members(env.path(b))
    p = env.payloads[0]  # random bytes
    assert members[p.file] == p.raw
    count = -(-len(p.raw) // 65536)
    assert all(members[INDEX][i * CHUNK_ENTRY] == 0 for i in range(count))
    assert json.loads(members[MANIFEST])["payloads"][0]["chunks"]["compression"] == "zstd"
    assert_ok(env.verify(b))


def zstd_frame(env, data):
    src = env.path("frame-input")
    src.write_bytes(data)
    out = subprocess.run(["zstd", "-q", "-c", "--no-check", "-9", str(src)], capture_output=True,
                         check=True).stdout
    src.unlink()
    return out


@pytest.mark.parametrize("bad", [0, 1, 3])
def test_zstd_chunk_with_wrong_content_hash(env, bad):
    """An index whose zstd chunk `bad` decompresses to other content than its content hash (a signer's
    inconsistent index, made here with the zstd command): refused naming that chunk, with both the
    stored hash check (before decompressing) and the content hash check."""
    p = env.payloads[1]
    chunks = chunks_of(p.raw, 65536)
    frames = [zstd_frame(env, c) for c in chunks]
    entries = b""
    for i, (c, f) in enumerate(zip(chunks, frames)):
        assert len(f) < len(c)
        content = c if i != bad else c[:-1] + bytes([c[-1] ^ 1])
        entries += bytes([1, 0, 0, 0]) + len(f).to_bytes(4, "big") + \
            hashlib.sha256(f).digest() + hashlib.sha256(content).digest()
    m, index = manifest2_full(env.payloads)
    first = -(-len(env.payloads[0].raw) // 65536)
    count = len(chunks)
    index = index[:first * CHUNK_ENTRY] + entries + index[(first + count) * CHUNK_ENTRY:]
    m["index"] = {"size": len(index), "sha256": sha256(index)}
    stored = b"".join(frames)
    m["payloads"][1]["size"] = len(stored)
    m["payloads"][1]["chunks"]["compression"] = "zstd"
    payloads = [(q_.file, q_.raw if q_ is not p else stored) for q_ in env.payloads]
    c = env.craft2(manifest=m, index=index, payloads=payloads)
    end = min((bad + 1) * 65536, len(p.raw)) - 1
    env.assert_rejected_everywhere(c, EXIT_PAYLOAD, q(f'rejected: payload "app": chunk {bad} '
                                                      f'(bytes {bad * 65536}..{end}): content sha256 mismatch'))
    # The same bundle with the right content hash verifies: the frames themselves are fine.
    m2, _ = manifest2_full(env.payloads)
    good_entries = b"".join(bytes([1, 0, 0, 0]) + len(f).to_bytes(4, "big") +
                            hashlib.sha256(f).digest() + hashlib.sha256(c_).digest()
                            for c_, f in zip(chunks, frames))
    index2 = index[:first * CHUNK_ENTRY] + good_entries + index[(first + count) * CHUNK_ENTRY:]
    m["index"] = {"size": len(index2), "sha256": sha256(index2)}
    g = env.craft2("g.upk", manifest=m, index=index2, payloads=payloads)
    assert_ok(env.verify(g))
