# SPDX-License-Identifier: LGPL-2.1-or-later
"""Bundle format 2 (upkeep-bundle(5)): `updatectl bundle create` writes it by default; `info` shows the
chunking; `verify` and `extract` check every chunk; the reader refuses a flipped byte at the chunk
that holds it, a changed index before any payload byte, an index that breaks a rule of its blocks or
is not one zstd frame of the right size, and any layout but the canonical one.

Bundles come from the CLI and from conftest's second implementation of the format (Env.craft2(),
written from the man page alone, compressing with python3-zstandard); for blocks stored as is the two
must agree on the index content byte for byte, and conftest's decoder (decode_payload()) must read the
CLI's zstd blocks, prefixes and zeros back to the payloads."""

import json
import os
import random
import re
import subprocess
import tarfile

import pytest
import zstandard

from conftest import (BLOCK, EXIT_FORMAT, RUN_TIMEOUT, UPDATECTL, EXIT_MANIFEST, EXIT_PAYLOAD, EXIT_USAGE, INDEX, KIND_STORED,
                      KIND_ZERO, KIND_ZSTD, MANIFEST, SIGNATURE, Block2, Layout2, assert_ok, assert_rejected,
                      assert_status,
                      block_entries, block_entry_at, chunk_entry_at, chunk_ranges, cut_blocks, decode_payload,
                      describe, index_content, index_frame, manifest2_for, manifest2_full, parse_tar,
                      payload_identity, read_members, run, set_index, sha256, tar_member, ustar_member,
                      zstd_raw_frame)

# What `updatectl bundle create` writes unless told otherwise (chunk-index.h).
CHUNK_DEFAULT = 262144
BLOCK_DEFAULT = 4096
WINDOW_DEFAULT = 262144
# Its options for the block size and the window.
BLOCK_OPT = "--block-size"
WINDOW_OPT = "--window"


# How the reader refuses an index that breaks a rule (exit status 14): the message names chunks.idx.
INDEX_REFUSED = r"rejected: (bundle format: )?chunks\.idx: "


def q(s):
    return re.escape(s)


def info_json(env, bundle):
    res = assert_ok(env.info(bundle, "--json", "--keyring", env.keyring))
    return json.loads(res.stdout)


def member_offsets(path):
    """name -> (header offset, data offset, size), walking the ustar headers by hand."""
    members, _ = parse_tar(path.read_bytes())
    return {m.name: (m.header, m.data, m.size) for m in members}


def bundle_index(members):
    """(manifest, index content) of a bundle's members."""
    return json.loads(members[MANIFEST]), index_content(members[INDEX])


def ceil_div(a, b):
    return -(-a // b)


def test_create_writes_format2(env):
    b = env.create()
    members = read_members(env.path(b))
    assert list(members) == [MANIFEST, SIGNATURE, INDEX] + [p.file for p in env.payloads]
    m = json.loads(members[MANIFEST])
    assert m["format"] == 2
    assert m["index"] == {"size": len(members[INDEX]), "sha256": sha256(members[INDEX])}
    # chunks.idx as stored: one zstd frame that declares the size of the index content.
    frame = zstandard.get_frame_parameters(members[INDEX])
    raw = index_content(members[INDEX])
    assert frame.content_size == len(raw)
    assert len(raw) == sum(e["chunks"]["count"] * 64 + ceil_div(e["installed_size"], e["chunks"]["block"]) * 8
                           for e in m["payloads"])
    for i, (e, p) in enumerate(zip(m["payloads"], env.payloads)):
        assert "sha256" not in e and "compression" not in e, e
        assert e["installed_size"] == len(p.raw)
        # Every payload gets zstd blocks by default, its input compressed or not.
        want = "zstd"
        assert e["chunks"] == {"size": CHUNK_DEFAULT, "block": BLOCK_DEFAULT,
                               "count": ceil_div(len(p.raw), CHUNK_DEFAULT), "compression": want,
                               "window": WINDOW_DEFAULT if want == "zstd" else 0}, e
        assert e["size"] == len(members[p.file])
        assert decode_payload(m, raw, i, members[p.file]) == p.raw, p.name
    assert_ok(env.verify(b))


def test_info_shows_the_chunking(env):
    b = env.create()
    members = read_members(env.path(b))
    m, raw = bundle_index(members)
    res = assert_ok(env.info(b, "--keyring", env.keyring))
    assert "Format:      2\n" in res.stdout, describe(res)
    doc = info_json(env, b)
    assert doc["format"] == 2
    for i, (p, e) in enumerate(zip(env.payloads, doc["payloads"])):
        c = m["payloads"][i]["chunks"]
        entries = block_entries(m, raw, i)
        blocks = {name: {"count": sum(1 for k, _, _ in entries if k == kind),
                         "bytes": sum(n for k, n, _ in entries if k == kind)}
                  for kind, name in enumerate(("stored", "zstd", "zeros"))}
        assert e == {"name": p.name, "size": len(members[p.file]), "installed_size": len(p.raw),
                     "chunk_size": CHUNK_DEFAULT, "block_size": BLOCK_DEFAULT, "chunk_count": c["count"],
                     "compression": c["compression"], "window": c["window"],
                     "identity": payload_identity(m, raw, i), "blocks": blocks}, e
        assert (f"blocks          {blocks['stored']['count']} as is ({blocks['stored']['bytes']} bytes), "
                f"{blocks['zstd']['count']} zstd ({blocks['zstd']['bytes']} bytes), "
                f"{blocks['zeros']['count']} zeros\n") in res.stdout, describe(res)
        assert f"identity        {e['identity']}" in res.stdout, describe(res)
        window = f" with a window of {c['window']} bytes" if c["window"] else ""
        assert (f"chunks          {c['count']} of {CHUNK_DEFAULT} bytes, blocks of {BLOCK_DEFAULT} bytes, "
                f"{c['compression']}{window}\n") in res.stdout, describe(res)


def test_extract_gives_index_and_stored_blocks(env):
    b = env.create()
    assert_ok(env.extract(b, "out"))
    out = env.path("out")
    members = read_members(env.path(b))
    assert sorted(os.listdir(out)) == sorted([MANIFEST, SIGNATURE, INDEX] + [p.file for p in env.payloads])
    for name, data in members.items():
        assert (out / name).read_bytes() == data, name
    # The extracted index and members are enough to get the payloads back (conftest's decoder).
    m = json.loads((out / MANIFEST).read_bytes())
    raw = index_content((out / INDEX).read_bytes())
    for i, p in enumerate(env.payloads):
        assert decode_payload(m, raw, i, (out / p.file).read_bytes()) == p.raw, p.name


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_empty_payload_first(env, compression):
    """An empty first payload (no chunk, no block, no index entry): the CLI writes it, and it verifies
    and extracts; so does conftest's."""
    (env.payload_dir / env.payloads[0].file).write_bytes(b"")
    b = env.create(extra=["--compression", compression])
    members = read_members(env.path(b))
    m, raw = bundle_index(members)
    assert m["payloads"][0]["size"] == m["payloads"][0]["installed_size"] == 0
    assert m["payloads"][0]["chunks"]["count"] == 0 and members[env.payloads[0].file] == b""
    assert_ok(env.verify(b))
    assert_ok(env.extract(b, "out"))
    assert (env.path("out") / env.payloads[0].file).read_bytes() == b""
    layouts = [Layout2(b"", compression=compression)] + [Layout2(p.raw) for p in env.payloads[1:]]
    assert_ok(env.verify(env.craft2(layouts=layouts)))


def test_create_reproducible(env):
    a = env.create("a.upk")
    b = env.create("b.upk")
    assert env.path(a).read_bytes() == env.path(b).read_bytes()


@pytest.mark.parametrize("chunk_size, block", [(4096, 4096), (65536, 4096), (65536, 16384), (262144, 32768)])
def test_second_implementation_agrees(env, chunk_size, block):
    """With blocks stored as is, the CLI's bundle and conftest's (from the man page) have the same
    index content, the same payload entries and the same canonical layout."""
    b = env.create(extra=["--compression", "none", "--chunk-size", str(chunk_size), BLOCK_OPT, str(block)])
    members = read_members(env.path(b))
    m, raw, _ = manifest2_full(env.payloads, chunk_size, block=block)
    assert index_content(members[INDEX]) == raw
    stored = json.loads(members[MANIFEST])
    assert stored["index"] == {"size": len(members[INDEX]), "sha256": sha256(members[INDEX])}
    assert stored["payloads"] == m["payloads"]
    for p in env.payloads:
        assert members[p.file] == p.raw
    # Canonical: each header right after the previous member's padded data, plain ustar.
    at = 0
    for name, (header, data, size) in member_offsets(env.path(b)).items():
        assert header == at and data == at + BLOCK, name
        at = data + -(-size // BLOCK) * BLOCK
    raw_file = env.path(b).read_bytes()
    assert raw_file[at:at + 2 * BLOCK] == b"\0" * (2 * BLOCK)
    # And conftest's own bundle verifies.
    c = env.craft2(chunk_size=chunk_size, block=block)
    assert_ok(env.verify(c))
    assert_ok(env.extract(c, "out"))
    for p in env.payloads:
        assert (env.path("out") / p.file).read_bytes() == p.raw


def delta_content(blocks=40, block=4096, tail=1234, seed=7):
    """Content that a zstd payload stores in every way: new random blocks (stored as is), zeros (not
    stored), text (compresses alone), copies of the block 2 back and of the block 24 back (compress only
    with a prefix that reaches them), and a last, short block that copies the start of the block before
    it."""
    rnd = random.Random(seed)
    out = []
    for j in range(blocks):
        kind = j % 6
        if kind == 0 or j < 24 and kind == 4:
            out.append(rnd.randbytes(block))
        elif kind == 1:
            out.append(bytes(block))
        elif kind == 2:
            out.append(out[j - 2])
        elif kind == 5:
            out.append(out[j - 1])
        elif kind == 3:
            out.append(bytes(b"abcdefghij\n"[rnd.randrange(11)] for _ in range(block)))
        else:
            out.append(out[j - 24])
    return b"".join(out) + out[-1][:tail]


@pytest.mark.parametrize("window", [0, 4096, 65536, 262144])
def test_crafted_zstd_blocks_verify(env, window):
    """conftest's zstd payload (blocks compressed with the window's prefix, zeros not stored, the rest
    as is) verifies and extracts: the reader decodes each frame with exactly the prefix the man page
    names. The content has blocks that compress only with the prefix, so a reader that dropped or cut it
    would fail the content hash."""
    content = delta_content()
    lay = Layout2(content, 65536, 4096, "zstd", window)
    kinds = [b.kind for b in lay.blocks]
    assert KIND_STORED in kinds and KIND_ZSTD in kinds and KIND_ZERO in kinds, kinds
    alone = cut_blocks(content, 4096, "zstd", 0)
    if window:
        # Some frames are small only thanks to their prefix.
        assert sum(len(b.stored) for b in lay.blocks) < sum(len(b.stored) for b in alone) - 4 * 4096
    layouts = [lay] + [Layout2(p.raw) for p in env.payloads[1:]]
    c = env.craft2(layouts=layouts)
    assert_ok(env.verify(c))
    assert_ok(env.extract(c, "out"))
    assert (env.path("out") / env.payloads[0].file).read_bytes() == lay.stored


def test_cli_zstd_blocks_use_the_prefix_and_leave_out_zeros(env):
    """The CLI's zstd payload, read back by conftest's decoder: zero blocks are kind 2 with no stored
    bytes, blocks that repeat content within the window are small zstd frames, and the content is the
    payload's."""
    content = delta_content()
    (env.payload_dir / env.payloads[0].file).write_bytes(content)
    b = env.create(extra=["--compression", "zstd", "--chunk-size", "65536"])
    members = read_members(env.path(b))
    m, raw = bundle_index(members)
    assert m["payloads"][0]["chunks"] == {"size": 65536, "block": BLOCK_DEFAULT,
                                          "count": ceil_div(len(content), 65536), "compression": "zstd",
                                          "window": WINDOW_DEFAULT}
    assert decode_payload(m, raw, 0, members[env.payloads[0].file]) == content
    blocks = block_entries(m, raw, 0)
    for j, (kind, length, key) in enumerate(blocks):
        block = content[j * 4096:(j + 1) * 4096]
        if not any(block):
            assert (kind, length, key) == (KIND_ZERO, 0, bytes(5)), j
        elif j >= 2 and block == content[(j - 2) * 4096:(j - 1) * 4096]:
            assert kind == KIND_ZSTD and length < 200, (j, kind, length)


@pytest.mark.parametrize("compression", ["none", "zstd"])
@pytest.mark.parametrize("chunk", [0, 2, "last"])
def test_flipped_byte_names_its_chunk(env, compression, chunk):
    """A byte flipped in chunk N of a payload: verify and extract stop at chunk N, naming it."""
    b = env.create(extra=["--compression", compression, "--chunk-size", "16384"])
    raw = bytearray(env.path(b).read_bytes())
    members = read_members(env.path(b))
    m, index = bundle_index(members)
    p = env.payloads[1]  # app: 200 KiB of compressible text
    _, data, _ = member_offsets(env.path(b))[p.file]
    ranges = chunk_ranges(m, index, 1)
    n = len(ranges) - 1 if chunk == "last" else chunk
    at, length = ranges[n]
    assert length > 0
    raw[data + at + length // 2] ^= 0x01
    env.path(b).write_bytes(bytes(raw))
    end = min((n + 1) * 16384, len(p.raw)) - 1
    env.assert_rejected_everywhere(b, EXIT_PAYLOAD,
                                   q(f'rejected: payload "{p.name}": chunk {n} (bytes {n * 16384}..{end}): '
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
    """A valid index of another bundle (same sizes, other content) under this manifest: refused. Both
    are stored as frames of raw blocks, so they have the same size."""
    m, raw, _ = manifest2_full(env.payloads)
    set_index(m, zstd_raw_frame(raw))
    other = [bytes(len(p.raw)) for p in env.payloads]
    _, other_raw, _ = manifest2_full(env.payloads, contents=other)
    assert len(other_raw) == len(raw) and other_raw != raw
    c = env.craft2(manifest=m, index=zstd_raw_frame(other_raw))
    env.assert_rejected_everywhere(c, EXIT_PAYLOAD, q("rejected: chunks.idx: sha256 mismatch"))
    # The same manifest with its own index (a frame of raw blocks is a zstd frame like any other).
    g = env.craft2("g.upk", manifest=m, index=zstd_raw_frame(raw))
    assert_ok(env.verify(g))


@pytest.mark.parametrize("case", ["pax-header", "gnu-header", "pax-on-manifest", "pax-on-index", "index-moved",
                                  "no-index"])
def test_non_canonical_layout_is_refused(env, case):
    m, raw, layouts = manifest2_full(env.payloads)
    index = index_frame(raw)
    mbytes = (json.dumps(m, indent=2) + "\n").encode()
    sig = env.sign(mbytes)
    members = [ustar_member(MANIFEST, mbytes), ustar_member(SIGNATURE, sig), ustar_member(INDEX, index)] + \
              [ustar_member(p.file, lay.stored) for p, lay in zip(env.payloads, layouts)]
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
    (["--format", "1", BLOCK_OPT, "4096"], r"format 2 only"),
    (["--format", "1", WINDOW_OPT, "4096"], r"format 2 only"),
    (["--chunk-size", "1000"], r"--chunk-size"),
    (["--chunk-size", "2048"], r"--chunk-size"),
    (["--chunk-size", "2097152"], r"--chunk-size"),
    ([BLOCK_OPT, "2048"], BLOCK_OPT),
    ([BLOCK_OPT, "6000"], BLOCK_OPT),
    ([BLOCK_OPT, "65536"], BLOCK_OPT),
    ([WINDOW_OPT, "2048"], WINDOW_OPT),
    ([WINDOW_OPT, "5000"], WINDOW_OPT),
    ([WINDOW_OPT, "16777216"], WINDOW_OPT),
    (["--compression", "xz"], r"--compression"),
    (["--zstd-level", "0"], r"--zstd-level"),
    (["--zstd-level", "20"], r"--zstd-level"),
    (["--format", "1", "--jobs", "2"], r"format 2 only"),
    (["--jobs", "0"], q('--jobs "0": expected a number of threads from 1 to 64')),
    (["--jobs", "-1"], q('--jobs "-1": expected a number of threads from 1 to 64')),
    (["--jobs", "x"], q('--jobs "x": expected a number of threads from 1 to 64')),
    (["--jobs", "65"], q('--jobs "65": expected a number of threads from 1 to 64')),
    (["--jobs", ""], q('--jobs "": expected')),
    (["--jobs", "2x"], q('--jobs "2x": expected')),
])
def test_create_options_checked(env, args, pattern):
    res = env.run(*env.create_args(out="b.upk", extra=args))
    assert_status(res, EXIT_USAGE, pattern)
    assert not env.path("b.upk").exists()


def jobs_bundle(env, jobs, out):
    """A zstd payload of several batches of chunks for every job count (16 KiB chunks: 4 blocks each; the
    content of delta_content(), whose last chunk and block are partial), with a window."""
    extra = ["--compression", "zstd", "--chunk-size", "16384", WINDOW_OPT, "65536"]
    if jobs is not None:
        extra += ["--jobs", str(jobs)]
    return env.create(out, extra=extra)


def test_jobs_give_the_same_bytes(env):
    """`--jobs N` cuts the blocks on N threads: the bundle is the same, byte for byte, for every N and for
    the default (the machine's CPUs); the RSA signer makes even the signature the same."""
    content = delta_content(blocks=150, tail=1234)
    (env.payload_dir / env.payloads[0].file).write_bytes(content)
    one = env.path(jobs_bundle(env, 1, "1.upk")).read_bytes()
    for jobs in (2, 3, None):
        other = env.path(jobs_bundle(env, jobs, f"{jobs}.upk")).read_bytes()
        assert other == one, f"--jobs {jobs} differs from --jobs 1"
    members = read_members(env.path("1.upk"))
    m, raw = bundle_index(members)
    assert m["payloads"][0]["chunks"]["count"] == ceil_div(len(content), 16384) > 12
    kinds = {kind for kind, _, _ in block_entries(m, raw, 0)}
    assert kinds == {KIND_STORED, KIND_ZSTD, KIND_ZERO}, kinds
    assert decode_payload(m, raw, 0, members[env.payloads[0].file]) == content
    assert_ok(env.verify("1.upk"))


def test_failed_block_stops_the_run_for_every_jobs(env):
    """A block whose compression fails (the test hook UPKEEP_TEST_ZSTD_FAIL_BLOCK gives zstd no room):
    the same message and status for 1 and 3 jobs, and no file left, not even a temporary one."""
    content = delta_content(blocks=150, tail=1234)
    (env.payload_dir / env.payloads[0].file).write_bytes(content)
    env.write_template()
    before = env.snapshot()
    results = []
    for jobs in (1, 3):
        args = env.create_args(out="b.upk", manifest=env.path("manifest.json"),
                               extra=["--compression", "zstd", "--chunk-size", "16384", "--jobs", str(jobs)])
        res = subprocess.run([str(UPDATECTL)] + [str(a) for a in args], cwd=env.tmp, capture_output=True,
                             text=True, timeout=RUN_TIMEOUT, env=dict(os.environ, UPKEEP_TEST_ZSTD_FAIL_BLOCK="110"))
        assert res.returncode not in (0, EXIT_USAGE) and res.returncode < 128, describe(res)
        assert re.search(q('payload "rootfs": zstd: '), res.stderr), describe(res)
        assert env.snapshot() == before, f"--jobs {jobs} left files behind"
        results.append((res.returncode, res.stderr))
    assert results[0] == results[1]


def test_block_larger_than_chunk_refused(env):
    """Blocks larger than the chunks (each option valid alone; a template may set either per payload):
    refused naming the payload, no bundle written."""
    res = env.run(*env.create_args(out="b.upk", extra=["--chunk-size", "8192", BLOCK_OPT, "16384"]))
    assert_status(res, EXIT_MANIFEST, r'payload "rootfs"', r"block size 16384", r"chunk size 8192")
    assert not env.path("b.upk").exists()


def sparse_payloads(env, sizes):
    """A template of raw payloads, one per (name, size), from sparse files (nothing written) in big/."""
    d = env.tmp / "big"
    d.mkdir()
    t = json.loads(env.write_template().read_bytes())
    t["payloads"] = []
    for name, size in sizes:
        with open(d / f"{name}.img", "wb") as f:
            f.truncate(size)
        t["payloads"].append({"name": name, "file": f"{name}.img", "handler": "raw", "slot_class": name})
    return env.write_template(t, name="big.json"), d


def test_index_too_large_refused(env):
    """Two payloads of 2 GiB in 4 KiB chunks: 72 bytes of index per block, 36 MiB each, which alone would
    fit, 72 MiB both, more than the 64 MiB an index may hold. Refused with the manifest's status, the
    message naming the total, the limit, each payload's size, blocks, chunks and share, and what to
    change; no bundle written."""
    manifest, d = sparse_payloads(env, [("rootfs", 2 << 30), ("appfs", 2 << 30)])
    res = env.run(*env.create_args(out="b.upk", manifest=manifest, payload_dir=d,
                                   extra=["--chunk-size", "4096"]))
    need = (2 << 30) // 4096 * (64 + 8)
    assert_status(res, EXIT_MANIFEST,
                  q(f"chunk index (chunks.idx) would be {2 * need} bytes, more than the {64 << 20} bytes"),
                  q(f'payload "rootfs" ({2 << 30} bytes in 4096-byte blocks and 4096-byte chunks) needs '
                    f'{need} bytes, payload "appfs" ({2 << 30} bytes in 4096-byte blocks and 4096-byte chunks) '
                    f'needs {need} bytes'),
                  q("use a larger --block-size or --chunk-size"))
    assert not env.path("b.upk").exists()
    assert sorted(os.listdir(env.tmp)) == ["big", "big.json", "manifest.json", "payloads"]


def test_index_too_large_refused_before_reading(env):
    """A payload of 1 TiB (sparse) needs 2.25 GiB of index with the defaults: refused from its size,
    before a byte of it is read (reading it would take far longer than the timeout)."""
    try:
        manifest, d = sparse_payloads(env, [("rootfs", 1 << 40)])
    except OSError as e:
        pytest.skip(f"no sparse file of 1 TiB here: {e}")
    res = run(*env.create_args(out="b.upk", manifest=manifest, payload_dir=d), cwd=env.tmp, timeout=30)
    need = (1 << 40) // 262144 * 64 + (1 << 40) // 4096 * 8
    assert_status(res, EXIT_MANIFEST, q(f"would be {need} bytes"),
                  q(f'payload "rootfs" ({1 << 40} bytes in 4096-byte blocks and 262144-byte chunks)'))
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
    assert m["payloads"][1]["chunks"] == {"size": 4096, "block": 4096,
                                          "count": -(-len(env.payloads[1].raw) // 4096),
                                          "compression": "none", "window": 0}
    assert_ok(env.verify(b))


def test_zstd_frame_not_smaller_is_stored_as_is(env):
    """Random bytes do not compress: with zstd every such block is kind 0, stored as is."""
    b = env.create(extra=["--compression", "zstd"])
    members = read_members(env.path(b))
    p = env.payloads[0]  # random bytes
    assert members[p.file] == p.raw
    m, raw = bundle_index(members)
    assert {kind for kind, _, _ in block_entries(m, raw, 0)} == {KIND_STORED}
    assert m["payloads"][0]["chunks"]["compression"] == "zstd"
    assert_ok(env.verify(b))


@pytest.mark.parametrize("bad", [0, 1, 3])
def test_zstd_chunk_with_wrong_content_hash(env, bad):
    """An index whose chunk `bad` of zstd blocks decodes to other content than its content hash (a
    signer's inconsistent index): `verify --content` and `extract` refuse it naming that chunk, with both
    the stored hash check (before decompressing) and the content hash check; plain `verify` checks what
    an install checks (the stored bytes, which fix the content) and accepts it."""
    p = env.payloads[1]
    layouts = [Layout2(x.raw, 65536, 4096, "zstd" if x is p else "none", 65536 if x is p else 0)
               for x in env.payloads]
    assert all(b.kind == KIND_ZSTD for b in layouts[1].blocks)
    m, raw = manifest2_for(env.payloads, layouts)
    g = env.craft2("g.upk", layouts=layouts)
    assert_ok(env.verify(g))
    raw = bytearray(raw)
    raw[chunk_entry_at(m, 1, bad) + 40] ^= 0x01
    c = env.craft2(raw=bytes(raw), layouts=layouts)
    end = min((bad + 1) * 65536, len(p.raw)) - 1
    want = q(f'rejected: payload "app": chunk {bad} (bytes {bad * 65536}..{end}): content sha256 mismatch')
    assert_ok(env.verify(c))
    assert_rejected(env.verify(c, "--content"), c, EXIT_PAYLOAD, want)
    assert_rejected(env.extract(c, "out"), c, EXIT_PAYLOAD, want)
    assert not (env.tmp / "out").exists(), "extract left its folder behind"


# ------------------------------------------------------------------------------------------------------
# The rules of the index's blocks (upkeep-bundle(5), The chunk index): each broken once in an index that
# keeps every other rule where it can; refused before any payload byte, naming chunks.idx and the block.


def rnd_bytes(n, seed=3):
    return random.Random(seed).randbytes(n)


def zero_block_layout(compression):
    """Payload 0: random, a block of zeros (block 2), random, a short last block."""
    content = rnd_bytes(2 * 4096) + bytes(4096) + rnd_bytes(4096 + 1000, 4)
    return Layout2(content, 8192, 4096, compression, 8192 if compression == "zstd" else 0)


def text_layout():
    """Payload 0 of compressible text in a zstd payload: every block kind 1."""
    rnd = random.Random(5)
    content = bytes(b"abcdefghij\n"[rnd.randrange(11)] for _ in range(4 * 4096 + 500))
    lay = Layout2(content, 8192, 4096, "zstd", 0)
    assert all(b.kind == KIND_ZSTD for b in lay.blocks)
    return lay


def block_rule_case(case):
    """(layout of payload 0, [(block, offset in its entry, bytes)] to write into the index content,
    the regex the message must match)."""
    if case == "kind-2-in-none":
        # Zeros left out where the payload says none (the stored total is then off too).
        return zero_block_layout("none"), [(2, 0, bytes([KIND_ZERO, 0, 0]) + bytes(5))], r"block 2\b"
    if case == "kind-2-match-key":
        lay = zero_block_layout("zstd")
        assert lay.blocks[2].kind == KIND_ZERO
        return lay, [(2, 7, b"\x01")], r"block 2\b"
    if case == "kind-2-stored":
        # Zeros of kind 2 that are stored all the same (4096 bytes).
        lay = zero_block_layout("zstd")
        lay.blocks[2] = Block2(KIND_ZERO, bytes(4096), bytes(4096))
        return lay, [], r"block 2\b"
    if case == "kind-0-length":
        # Block 0 one byte short, the last one one byte long: the stored total still adds up.
        lay = zero_block_layout("none")
        last = len(lay.blocks) - 1
        return lay, [(0, 1, (4095).to_bytes(2, "big")), (last, 1, (1001).to_bytes(2, "big"))], r"block 0\b"
    if case == "kind-1-not-smaller":
        # A block stored as is, called a zstd frame of its full length.
        lay = zero_block_layout("zstd")
        assert lay.blocks[1].kind == KIND_STORED
        return lay, [(1, 0, bytes([KIND_ZSTD]))], r"block 1\b"
    if case == "kind-1-longer":
        # A block stored as is, called a zstd frame one byte longer than its content; block 3 (stored as
        # is) one byte short, so that the stored total adds up.
        lay = zero_block_layout("zstd")
        assert lay.blocks[1].kind == KIND_STORED and lay.blocks[3].kind == KIND_STORED
        pokes = [(1, 0, bytes([KIND_ZSTD]) + (4097).to_bytes(2, "big")), (3, 1, (4095).to_bytes(2, "big"))]
        return lay, pokes, r"block 1\b"
    if case == "kind-1-empty":
        lay = text_layout()
        f1, f2 = len(lay.blocks[1].stored), len(lay.blocks[2].stored)
        return lay, [(1, 1, (0).to_bytes(2, "big")), (2, 1, (f1 + f2).to_bytes(2, "big"))], r"block 1\b"
    if case == "kind-1-in-none":
        lay = zero_block_layout("none")
        return lay, [(1, 0, bytes([KIND_ZSTD]))], r"block 1\b"
    if case == "kind-3":
        lay = zero_block_layout("zstd")
        return lay, [(1, 0, b"\x03")], r"block 1\b"
    if case == "kind-255":
        lay = zero_block_layout("none")
        return lay, [(3, 0, b"\xff")], r"block 3\b"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["kind-2-in-none", "kind-2-match-key", "kind-2-stored", "kind-0-length",
                                  "kind-1-not-smaller", "kind-1-longer", "kind-1-empty", "kind-1-in-none",
                                  "kind-3", "kind-255"])
def test_block_rules(env, case):
    lay, pokes, pattern = block_rule_case(case)
    layouts = [lay] + [Layout2(p.raw) for p in env.payloads[1:]]
    m, raw = manifest2_for(env.payloads, layouts)
    raw = bytearray(raw)
    for j, off, value in pokes:
        at = block_entry_at(m, 0, j) + off
        raw[at:at + len(value)] = value
    c = env.craft2(raw=bytes(raw), layouts=layouts)
    msg = env.assert_rejected_everywhere(c, EXIT_FORMAT, INDEX_REFUSED,
                                         q(f'payload "{env.payloads[0].name}"'), pattern)
    assert not env.path("out").exists(), msg


def test_block_rules_control(env):
    """The layouts test_block_rules breaks are valid as they are."""
    for n, lay in enumerate([zero_block_layout("none"), zero_block_layout("zstd"), text_layout()]):
        layouts = [lay] + [Layout2(p.raw) for p in env.payloads[1:]]
        assert_ok(env.verify(env.craft2(f"ok{n}.upk", layouts=layouts)))


def test_stored_total_must_be_the_size(env):
    """The stored lengths of a payload's blocks add up to more than its size (the member one byte
    longer, the manifest's size following it)."""
    lay = text_layout()
    layouts = [lay] + [Layout2(p.raw) for p in env.payloads[1:]]
    m, raw = manifest2_for(env.payloads, layouts)
    m["payloads"][0]["size"] += 1
    payloads = [(env.payloads[0].file, lay.stored + b"x")] + [(p.file, p.raw) for p in env.payloads[1:]]
    c = env.craft2(manifest=m, payloads=payloads, layouts=layouts)
    env.assert_rejected_everywhere(c, EXIT_FORMAT, INDEX_REFUSED,
                                   q(f'payload "{env.payloads[0].name}"'))


# ------------------------------------------------------------------------------------------------------
# chunks.idx as stored: exactly one zstd frame that declares the content size the payloads need.


def skippable_frame(data):
    return (0x184D2A50).to_bytes(4, "little") + len(data).to_bytes(4, "little") + data


def stored_index_case(case, raw):
    if case == "not-zstd":
        return raw
    if case == "no-content-size":
        return zstandard.ZstdCompressor(level=19, write_checksum=False, write_content_size=False).compress(raw)
    if case == "longer":
        return index_frame(raw + bytes(8))
    if case == "shorter":
        return index_frame(raw[:-8])
    if case == "one-entry-more":
        return index_frame(raw + raw[-8:])
    if case == "two-frames":
        return index_frame(raw[:len(raw) // 2]) + index_frame(raw[len(raw) // 2:])
    if case == "trailing-bytes":
        return index_frame(raw) + bytes(4)
    if case == "skippable-first":
        return skippable_frame(b"upkeep") + index_frame(raw)
    if case == "skippable-after":
        return index_frame(raw) + skippable_frame(b"upkeep")
    if case == "declares-less":
        return zstd_raw_frame(raw + bytes(8), declare=len(raw))
    if case == "declares-more":
        return zstd_raw_frame(raw, declare=len(raw) + 8)
    if case == "checksum":
        # A frame with a checksum is still one frame declaring its size: but a wrong checksum is not.
        f = bytearray(zstandard.ZstdCompressor(level=19, write_checksum=True, write_content_size=True)
                      .compress(raw))
        f[-1] ^= 0xff
        return bytes(f)
    if case == "truncated":
        return index_frame(raw)[:-3]
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["not-zstd", "no-content-size", "longer", "shorter", "one-entry-more",
                                  "two-frames", "trailing-bytes", "skippable-first", "skippable-after", "declares-less",
                                  "declares-more", "checksum", "truncated"])
def test_index_frame_rules(env, case):
    """chunks.idx whose size and sha256 are right in the signed manifest but that is not exactly one
    zstd frame declaring (and holding) the index content the payloads need: refused before any
    payload."""
    layouts = [Layout2(p.raw) for p in env.payloads]
    m, raw = manifest2_for(env.payloads, layouts)
    stored = stored_index_case(case, raw)
    set_index(m, stored)
    c = env.craft2(manifest=m, index=stored, layouts=layouts)
    env.assert_rejected_everywhere(c, EXIT_FORMAT, INDEX_REFUSED)
    assert not env.path("out").exists()


def test_index_frame_with_checksum_is_accepted(env):
    """The control of test_index_frame_rules' "checksum": with its checksum intact the frame is fine."""
    layouts = [Layout2(p.raw) for p in env.payloads]
    m, raw = manifest2_for(env.payloads, layouts)
    stored = zstandard.ZstdCompressor(level=19, write_checksum=True, write_content_size=True).compress(raw)
    set_index(m, stored)
    assert_ok(env.verify(env.craft2(manifest=m, index=stored, layouts=layouts)))


# ------------------------------------------------------------------------------------------------------
# The manifest's `chunks` object (upkeep-bundle(5), Manifest keys).


def chunks_case(case, e):
    c = e["chunks"]
    if case.startswith("missing-"):
        del c[case[len("missing-"):]]
        return r"chunks\b"
    if case == "unknown-key":
        c["level"] = 19
        return r"chunks\.level|level"
    if case == "block-string":
        c["block"] = "4096"
        return r"chunks\.block"
    if case == "block-over-chunk":
        c["size"] = 4096
        c["block"] = 8192
        c["count"] = -(-e["installed_size"] // 4096)
        return r"chunks\.block"
    if case.startswith("block-"):
        c["block"] = int(case[len("block-"):])
        return r"chunks\.block"
    if case == "window-with-none":
        c["window"] = 4096
        return r"chunks\.window"
    if case.startswith("window-"):
        c["compression"] = "zstd"
        c["window"] = int(case[len("window-"):])
        return r"chunks\.window"
    if case == "compression-xz":
        c["compression"] = "xz"
        return r"chunks\.compression"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing-size", "missing-block", "missing-count", "missing-compression",
                                  "missing-window", "unknown-key", "block-0", "block-2048", "block-6000",
                                  "block-65536", "block-string", "block-over-chunk", "window-1", "window-2048",
                                  "window-5000", "window-16777216", "window-with-none", "compression-xz"])
def test_manifest_chunks_rules(env, case):
    m, raw, layouts = manifest2_full(env.payloads)
    pattern = chunks_case(case, m["payloads"][0])
    c = env.craft2(manifest=m, raw=raw, layouts=layouts)
    msg = env.assert_rejected_everywhere(c, EXIT_MANIFEST, r"rejected: manifest: ", r"payloads\[0\]", pattern)
    assert not env.path("out").exists(), msg


@pytest.mark.parametrize("chunk_size, block, window", [(4096, 4096, 4096), (1048576, 32768, 8388608),
                                                       (32768, 8192, 0)])
def test_manifest_chunks_limits_accepted(env, chunk_size, block, window):
    """The ends of the ranges of upkeep-bundle(5)'s LIMITS are accepted."""
    layouts = [Layout2(p.raw, chunk_size, block, "zstd", window) for p in env.payloads]
    m, raw = manifest2_for(env.payloads, layouts)
    for i, p in enumerate(env.payloads):
        assert decode_payload(m, raw, i, layouts[i].stored) == p.raw
    assert_ok(env.verify(env.craft2(layouts=layouts)))
