# SPDX-License-Identifier: LGPL-2.1-or-later
"""lib/net/fetch-ranges.c against the test server (tests/httpserver.py), through upkeep-fetch --ranges and
--range-memory: every way a server may answer a request for several ranges (multipart, coalesced parts,
one range only, all coalesced into one), resume after a cut inside a multipart body, the answers refused
(Range ignored, a changed file, wrong parts), cancel and flow control."""

import errno
import hashlib
import os
import random
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_fetch import FAST, FETCH, assert_fail, fetch, serve, www  # noqa: E402,F401

SIZE = 3 * 1024 * 1024 + 12345


def setup_module(module):
    if not FETCH or not os.access(FETCH, os.X_OK):
        pytest.exit("UPKEEP_FETCH is not set: run these tests through `meson test --suite integration`", 2)


@pytest.fixture
def blob(www):
    data = random.Random(1).randbytes(SIZE)
    (www / "blob.bin").write_bytes(data)
    return data


def spread(n, length, seed=2, size=SIZE):
    """`n` sorted ranges of `length` bytes, apart by at least one byte, as (offset, length)."""
    rnd = random.Random(seed)
    slot = size // n
    assert slot > length + 1
    return [(i * slot + rnd.randrange(0, slot - length - 1), length) for i in range(n)]


def arg(ranges):
    return ",".join(f"{o}-{o + n - 1}" for o, n in ranges)


def expected(data, ranges):
    return b"".join(data[o:o + n] for o, n in ranges)


def get(srv, ranges, tmp_path, *args, path="/blob.bin", total=SIZE):
    return fetch(srv.url(path), tmp_path, "--ranges", arg(ranges), "--total", total, *FAST, *args)


def assert_ranges_ok(r, data, ranges):
    assert r.rc == 0, r
    assert r.s["ok"] is True, r
    want = expected(data, ranges)
    assert r.s["bytes"] == len(want) and r.s["delivered"] == len(want), r
    assert r.data() == want, "the range bytes differ"


def test_multipart_300_ranges_in_3_requests(serve, blob, tmp_path):
    srv = serve()
    ranges = spread(300, 1000)
    r = get(srv, ranges, tmp_path)
    assert_ranges_ok(r, blob, ranges)
    assert r.s["requests"] == 3 and r.s["retries"] == 0, r
    assert r.s["multipart"] is True and r.s["single_range"] is False, r
    # the part headers and boundaries: about 150 bytes a part
    assert 300 * 1000 < r.s["wire_bytes"] < 300 * 1000 + 300 * 200, r
    st = srv.stats("/blob.bin")
    assert st["requests"] == 3 and all(x.count(",") < 128 for x in st["ranges"]), st
    assert len(st["ranges"][0]) <= 4000 + len("bytes="), st
    assert len(set(st["ports"])) == 1, st  # one connection, kept alive


def test_single_range(serve, blob, tmp_path):
    srv = serve()
    ranges = [(SIZE - 5000, 5000)]
    r = get(srv, ranges, tmp_path)
    assert_ranges_ok(r, blob, ranges)
    assert r.s["requests"] == 1 and r.s["multipart"] is False and r.s["single_range"] is False, r
    assert srv.stats("/blob.bin")["ranges"] == [f"bytes={SIZE - 5000}-{SIZE - 1}"]


def test_coalesced_parts_drop_the_gaps(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", multirange="coalesce-parts")
    # pairs 500 bytes apart (merged by the server), pairs 100 kB apart (not merged)
    ranges = []
    for i in range(20):
        base = i * 100_000
        ranges += [(base, 300), (base + 800, 200)]
    r = get(srv, ranges, tmp_path)
    assert_ranges_ok(r, blob, ranges)
    assert r.s["requests"] == 1 and r.s["multipart"] is True, r
    assert r.s["wire_bytes"] >= 20 * 1000, r  # the 500-byte gaps came too


def test_first_only_switches_to_merged_single_ranges(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", multirange="first-only")
    # groups of 3 ranges 10 kB apart (merged into one request each), groups 500 kB apart
    ranges = []
    for g in range(6):
        ranges += [(g * 500_000 + k * 10_000, 1000) for k in range(3)]
    r = get(srv, ranges, tmp_path)
    assert_ranges_ok(r, blob, ranges)
    assert r.s["single_range"] is True and r.s["multipart"] is False, r
    # the first request brings the first range only; the rest of group 0, then one request a group
    assert r.s["requests"] == 1 + 1 + 5, r
    st = srv.stats("/blob.bin")
    assert st["ranges"][1] == "bytes=10000-20999", st
    assert all("," not in x for x in st["ranges"][1:]), st


def test_coalesced_into_one_range(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", multirange="coalesce")
    ranges = spread(50, 100, size=1_000_000)
    r = get(srv, ranges, tmp_path)
    assert_ranges_ok(r, blob, ranges)
    assert r.s["requests"] == 1 and r.s["single_range"] is True, r
    assert r.s["wire_bytes"] == ranges[-1][0] + ranges[-1][1] - ranges[0][0], r


def test_more_ranges_than_one_header_holds(serve, blob, tmp_path):
    srv = serve()
    ranges = [(i * 3900, 10) for i in range(800)]
    r = get(srv, ranges, tmp_path, "--stream-copy")
    assert_ranges_ok(r, blob, ranges)
    assert r.s["requests"] == 7, r  # 128 a request


def test_cut_inside_a_multipart_body_resumes(serve, blob, tmp_path):
    srv = serve()
    ranges = spread(40, 20_000)
    cut = ranges[10][0] + 5000  # inside the 11th part
    srv.plan("/blob.bin", cut_at=cut)
    r = get(srv, ranges, tmp_path)
    assert_ranges_ok(r, blob, ranges)
    assert r.s["retries"] == 1 and r.s["requests"] == 2, r
    st = srv.stats("/blob.bin")
    # the second request starts at the first byte not delivered: the 11th range trimmed
    assert st["ranges"][1].startswith(f"bytes={cut}-{ranges[10][0] + 20_000 - 1},"), st
    assert st["if_ranges"][1] is not None, st  # the first answer's ETag


@pytest.mark.parametrize("mode", ["multipart", "first-only", "coalesce-parts"])
def test_cut_every_block_makes_progress(serve, blob, tmp_path, mode):
    srv = serve()
    srv.plan("/blob.bin", multirange=mode, cut_every=30_000, cut_mode="reset")
    ranges = spread(30, 10_000, size=1_000_000)
    r = get(srv, ranges, tmp_path, "--retries", "3")
    assert_ranges_ok(r, blob, ranges)
    assert r.s["retries"] >= 5, r


def test_500_then_ok(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", status=503, status_times=2)
    ranges = spread(10, 1000)
    r = get(srv, ranges, tmp_path)
    assert_ranges_ok(r, blob, ranges)
    assert r.s["retries"] == 2 and r.s["requests"] == 3, r


def test_stall_resumes(serve, blob, tmp_path):
    srv = serve()
    ranges = spread(20, 50_000)
    srv.plan("/blob.bin", stall_at=ranges[5][0] + 100, stall_seconds=30)
    r = get(srv, ranges, tmp_path, "--low-speed-time", "1")
    assert_ranges_ok(r, blob, ranges)
    # cut off and resumed: had the client waited the 30 s stall out, no retry
    assert r.s["retries"] == 1 and r.elapsed < 25, r
    assert srv.stats("/blob.bin")["ranges"][1].startswith(f"bytes={ranges[5][0] + 100}-"), r


def test_slow_reader_small_buffer(serve, blob, tmp_path):
    srv = serve()
    ranges = spread(8, 200_000)
    r = get(srv, ranges, tmp_path, "--stream-buffer", 256 * 1024, "--slow-consumer")
    assert_ranges_ok(r, blob, ranges)


def test_check_sees_the_range_bytes(serve, blob, tmp_path):
    srv = serve()
    ranges = spread(30, 3000)
    r = get(srv, ranges, tmp_path, "--check-sha256", hashlib.sha256(expected(blob, ranges)).hexdigest())
    assert_ranges_ok(r, blob, ranges)


# ------------------------------------------------------------------------------------------------------
# Refused answers


def test_server_ignoring_range(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", multirange="ignore")
    r = get(srv, spread(10, 100), tmp_path)
    assert_fail(r, errno.EOPNOTSUPP, "network", "ignores Range requests", srv.url("/blob.bin"))
    assert r.s["requests"] == 1, r


@pytest.mark.parametrize("wrong, what", [
    ("overlap", "overlaps the bytes already delivered"),
    ("outside", "outside the ranges asked for"),
    ("order", "parts out of order"),
])
def test_wrong_parts_refused(serve, blob, tmp_path, wrong, what):
    srv = serve()
    srv.plan("/blob.bin", multirange_wrong=wrong)
    r = get(srv, spread(10, 1000), tmp_path)
    assert_fail(r, errno.EPROTO, "network", "answered the range request wrongly", what)
    assert r.s["requests"] == 1, r


@pytest.mark.parametrize("mode", ["multipart", "first-only", "coalesce"])
def test_other_total_is_a_changed_file(serve, blob, tmp_path, mode):
    srv = serve()
    srv.plan("/blob.bin", multirange=mode, multirange_wrong="total")
    r = get(srv, spread(10, 1000), tmp_path)
    assert_fail(r, errno.ESTALE, "network", "changed on the server", f"{SIZE + 1} bytes")


def test_total_given_wrong(serve, blob, tmp_path):
    srv = serve()
    r = get(srv, spread(10, 1000), tmp_path, total=SIZE + 100)
    assert_fail(r, errno.ESTALE, "network", "changed on the server")


def test_if_range_with_another_version(serve, blob, tmp_path):
    srv = serve()
    r = get(srv, spread(10, 1000), tmp_path, "--validator", '"not-this-version"')
    assert_fail(r, errno.ESTALE, "network", "changed on the server", "If-Range")
    assert srv.stats("/blob.bin")["if_ranges"] == ['"not-this-version"']


def test_file_replaced_after_a_cut(serve, www, blob, tmp_path):
    srv = serve()
    ranges = spread(20, 10_000)
    # the first answer is cut; the file changes before the retry (If-Range no longer matches: 200)
    srv.plan("/blob.bin", cut_at=ranges[5][0] + 10, stall_at=ranges[5][0], stall_seconds=0.5)

    def replace():
        time.sleep(0.2)
        new = bytearray(blob)
        new[0] ^= 0xFF
        (www / "blob.bin").write_bytes(bytes(new))
        os.utime(www / "blob.bin", ns=(1, 1))

    t = threading.Thread(target=replace)
    t.start()
    r = get(srv, ranges, tmp_path)
    t.join()
    assert_fail(r, errno.ESTALE, "network", "changed on the server")


def test_malformed_multipart_refused(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", multirange_wrong="length")
    r = get(srv, spread(5, 1000), tmp_path)
    assert_fail(r, errno.EPROTO, "network", "answered the range request wrongly", "multipart body",
                "longer or shorter than its Content-Range says")


def test_ranges_outside_the_file_are_a_usage_error(serve, blob, tmp_path):
    srv = serve()
    r = get(srv, [(SIZE - 10, 20)], tmp_path)
    assert_fail(r, errno.EINVAL, "config", "beyond the file")
    r = get(srv, [(100, 10), (105, 10)], tmp_path)
    assert_fail(r, errno.EINVAL, "config", "not after the one before")
    assert srv.stats("/blob.bin")["requests"] == 0


def test_cancel(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", rate=2_000_000)
    ranges = spread(20, 100_000)
    r = get(srv, ranges, tmp_path, "--cancel-after", 150_000)
    assert_fail(r, errno.ECANCELED, "network", "cancelled")
    assert srv.stats("/blob.bin")["bytes_sent"] < 1_500_000


# ------------------------------------------------------------------------------------------------------
# fetch_range_to_memory()


def test_range_to_memory(serve, blob, tmp_path):
    srv = serve()
    r = fetch(srv.url("/blob.bin"), tmp_path, "--range-memory", "1000,70000")
    assert r.rc == 0, r
    assert r.data() == blob[1000:71000]
    assert r.s["total"] == SIZE and r.s["etag"].startswith('"'), r
    assert r.s["requests"] == 1 and r.s["wire_bytes"] == 70000, r
    assert srv.stats("/blob.bin")["ranges"] == ["bytes=1000-70999"]


def test_range_to_memory_resumes(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", cut_at=30000)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--range-memory", "1000,70000", *FAST)
    assert r.rc == 0, r
    assert r.data() == blob[1000:71000]
    st = srv.stats("/blob.bin")
    assert st["ranges"] == ["bytes=1000-70999", "bytes=30000-70999"], st
    assert st["if_ranges"][1] == r.s["etag"], st


def test_range_to_memory_server_ignoring_range(serve, www, tmp_path):
    big = os.urandom(48 * 1024 * 1024)
    (www / "big.bin").write_bytes(big)
    srv = serve()
    srv.plan("/big.bin", ignore_range=True)
    r = fetch(srv.url("/big.bin"), tmp_path, "--range-memory", "0,1000")
    assert_fail(r, errno.EOPNOTSUPP, "network", "ignores Range requests")
    # stopped at the status: the body was not downloaded (what is in flight in socket buffers aside)
    assert r.s["wire_bytes"] == 0, r
    assert srv.stats("/big.bin")["bytes_sent"] < len(big) // 2


def test_range_to_memory_beyond_the_file(serve, blob, tmp_path):
    srv = serve()
    r = fetch(srv.url("/blob.bin"), tmp_path, "--range-memory", f"{SIZE - 10},20")
    assert_fail(r, errno.ERANGE, "network", f"the file has {SIZE} bytes")
    r = fetch(srv.url("/blob.bin"), tmp_path, "--range-memory", f"{SIZE + 10},20")
    assert_fail(r, errno.ERANGE, "network", "416")


def test_range_to_memory_up_to_the_end(serve, blob, tmp_path):
    """--up-to-end (the delta's first request for a bundle's head): a file that ends inside the range gives
    its bytes up to its end, in the one request; one that ends before the range starts is still refused."""
    srv = serve()
    r = fetch(srv.url("/blob.bin"), tmp_path, "--range-memory", f"{SIZE - 10},20", "--up-to-end")
    assert r.rc == 0, r
    assert r.data() == blob[SIZE - 10:]
    assert r.s["total"] == SIZE and r.s["requests"] == 1 and r.s["wire_bytes"] == 10, r
    assert srv.stats("/blob.bin")["ranges"] == [f"bytes={SIZE - 10}-{SIZE + 9}"]
    r = fetch(srv.url("/blob.bin"), tmp_path, "--range-memory", f"0,{SIZE + 4096}", "--up-to-end")
    assert r.rc == 0 and r.data() == blob, r
    r = fetch(srv.url("/blob.bin"), tmp_path, "--range-memory", f"{SIZE + 10},20", "--up-to-end")
    assert_fail(r, errno.ERANGE, "network", "416")
