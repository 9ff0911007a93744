# SPDX-License-Identifier: LGPL-2.1-or-later
"""lib/fetch against the misbehaving test server (tests/httpserver.py), through the upkeep-fetch tool:
resume after cuts and stalls, retries with backoff, final errors, the length cap, servers that ignore
or botch Range, TLS verification (CA, host name, client certificates), flow control (a slow consumer)
and the FetchStream adapter a worker thread reads from."""

import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SOURCE = Path(os.environ.get("UPKEEP_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
FETCH = os.environ.get("UPKEEP_FETCH", "")
VERSION = os.environ.get("UPKEEP_VERSION", "")

sys.path.insert(0, str(SOURCE / "tests"))
from httpserver import TestServer, make_tls_files  # noqa: E402

MIB = 1024 * 1024
SIZE = 3 * MIB + 12345  # not a multiple of any buffer size
FAST = ["--backoff-ms", "20"]


def setup_module(module):
    if not FETCH or not os.access(FETCH, os.X_OK):
        pytest.exit("UPKEEP_FETCH is not set: run these tests through `meson test --suite integration`", 2)


# ------------------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture
def www(tmp_path):
    d = tmp_path / "www"
    d.mkdir()
    return d


@pytest.fixture
def blob(www):
    data = os.urandom(SIZE)
    (www / "blob.bin").write_bytes(data)
    return data


@pytest.fixture
def serve(www, request):
    """serve(**kw) starts a TestServer on `www`; every server is stopped at the end, pass or fail."""
    servers = []

    def start(**kw):
        srv = TestServer(www, **kw).start()
        servers.append(srv)
        return srv

    def stop_all():
        for s in servers:
            s.stop()

    request.addfinalizer(stop_all)
    return start


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


class Result:
    def __init__(self, proc, out, elapsed):
        self.rc = proc.returncode
        self.stderr = proc.stderr
        self.elapsed = elapsed
        self.out = out
        # Under -Db_sanitize the tool's own exit status may be the sanitizer's: look for its report.
        assert "Sanitizer" not in proc.stderr and "runtime error:" not in proc.stderr, proc.stderr
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        assert lines, f"no summary on stdout\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        self.s = json.loads(lines[-1])

    def __repr__(self):
        return f"rc={self.rc} summary={self.s} stderr={self.stderr!r} elapsed={self.elapsed:.2f}"

    def data(self):
        return self.out.read_bytes()


PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def fetch(url, tmp_path, *args, timeout=120, env=None):
    """Run upkeep-fetch URL OUT ARGS; the caller's proxy variables are dropped, `env` adds variables."""
    out = tmp_path / f"out-{time.monotonic_ns()}.bin"
    full_env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    full_env.update(env or {})
    t0 = time.monotonic()
    p = subprocess.run([FETCH, url, str(out), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=full_env)
    return Result(p, out, time.monotonic() - t0)


def assert_ok(r, data):
    assert r.rc == 0, r
    assert r.s["ok"] is True, r
    assert r.s["bytes"] == len(data), r
    got = r.data()
    assert len(got) == len(data), r
    assert got == data, "downloaded bytes differ"


def assert_fail(r, code, kind, *substrings):
    assert r.rc == 1, r
    assert r.s["ok"] is False, r
    assert r.s["code"] == -code, f"expected -{errno.errorcode[code]}: {r}"
    assert r.s["kind"] == kind, r
    for sub in substrings:
        assert sub in r.s["error"], f"{sub!r} not in the error message: {r}"
        assert sub in r.stderr, r


# ------------------------------------------------------------------------------------------------------
# Plain and resumed downloads


def test_plain_download(serve, blob, tmp_path):
    srv = serve()
    r = fetch(srv.url("/blob.bin"), tmp_path)
    assert_ok(r, blob)
    assert r.s["attempts"] == 1 and r.s["retries"] == 0 and r.s["resumed_from"] == []
    assert r.s["total"] == SIZE and r.s["http_status"] == 200
    st = srv.stats("/blob.bin")
    assert st["requests"] == 1 and st["ranges"] == [None]
    assert st["bytes_sent"] == SIZE
    assert st["agents"][0].startswith("upkeep/"), st["agents"]
    if VERSION:
        assert st["agents"][0] == f"upkeep/{VERSION}"


def test_empty_file(serve, www, tmp_path):
    (www / "empty").write_bytes(b"")
    srv = serve()
    r = fetch(srv.url("/empty"), tmp_path)
    assert_ok(r, b"")


def test_cut_at_half_resumes_with_range(serve, blob, tmp_path):
    srv = serve()
    half = SIZE // 2
    srv.plan("/blob.bin", cut_at=half)
    r = fetch(srv.url("/blob.bin"), tmp_path, *FAST)
    assert_ok(r, blob)
    assert r.s["retries"] == 1 and r.s["attempts"] == 2, r
    assert r.s["resumed_from"] == [half], r
    st = srv.stats("/blob.bin")
    assert st["ranges"] == [None, f"bytes={half}-"], st
    assert st["statuses"] == [200, 206], st
    assert st["bytes_sent"] <= 1.05 * SIZE, st
    assert r.s["received"] == SIZE, r


def test_cut_several_times(serve, blob, tmp_path):
    srv = serve()
    cuts = [SIZE // 7, 2 * SIZE // 7, SIZE // 2, SIZE - 1]
    srv.plan("/blob.bin", cut_at=cuts)
    r = fetch(srv.url("/blob.bin"), tmp_path, *FAST)
    assert_ok(r, blob)
    assert r.s["resumed_from"] == cuts, r
    assert r.s["retries"] == len(cuts)
    assert srv.stats("/blob.bin")["bytes_sent"] == SIZE


def test_reset_every_block_makes_progress(serve, blob, tmp_path):
    """A TCP reset after every 512 KiB: each attempt gets somewhere, so the download completes even
    though there are more attempts than --retries (which bounds failures without progress)."""
    srv = serve()
    srv.plan("/blob.bin", cut_every=512 * 1024, cut_mode="reset")
    r = fetch(srv.url("/blob.bin"), tmp_path, "--retries", "2", *FAST)
    assert_ok(r, blob)
    assert r.s["retries"] >= 6, r
    offs = r.s["resumed_from"]
    assert offs == sorted(offs) and len(set(offs)) == len(offs), r


def test_cut_without_progress_gives_up(serve, blob, tmp_path):
    """The server cuts at the same byte every time: no progress after the first attempt; --retries 3
    bounds it (1 + 3 attempts... the first made progress, then 3 failures without)."""
    srv = serve()
    srv.plan("/blob.bin", cut_at=1000, cut_times=-1)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--retries", "3", *FAST)
    assert_fail(r, errno.ECONNRESET, "network", "gave up after 4 attempts", "at byte 1000")
    assert r.s["resumed_from"] == [1000, 1000, 1000], r
    assert r.s["bytes"] == 1000


def test_stall_low_speed_timeout_resumes(serve, blob, tmp_path):
    srv = serve()
    at = SIZE // 3
    srv.plan("/blob.bin", stall_at=at, stall_seconds=30)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--low-speed-time", "1", *FAST)
    assert_ok(r, blob)
    # cut off and resumed: had the client waited the 30 s stall out, the bytes would have come without
    # a retry
    assert r.s["retries"] == 1 and r.s["resumed_from"] == [at], r


def test_500_twice_then_ok_with_backoff(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", status=500, status_times=2)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--backoff-ms", "300")
    assert_ok(r, blob)
    assert r.s["attempts"] == 3 and r.s["retries"] == 2, r
    assert r.elapsed >= 0.3 + 0.6, f"backoff 300 ms then 600 ms expected: {r}"
    assert srv.stats("/blob.bin")["statuses"] == [500, 500, 200]


def test_503_always_gives_up(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", status=503, status_times=-1)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--retries", "2", *FAST)
    assert_fail(r, errno.EIO, "network", "HTTP status 503", "gave up after 3 attempts")
    assert srv.stats("/blob.bin")["requests"] == 3


def test_500_after_a_cut_resumes(serve, blob, tmp_path):
    """Cut at half; the resume request gets a 500; the next one a 206 from the same offset."""
    srv = serve()
    half = SIZE // 2
    srv.plan("/blob.bin", cut_at=half, status=500, status_times=1, status_after=1)
    r = fetch(srv.url("/blob.bin"), tmp_path, *FAST)
    assert_ok(r, blob)
    assert r.s["resumed_from"] == [half, half], r
    st = srv.stats("/blob.bin")
    assert st["statuses"] == [200, 500, 206], st
    assert st["bytes_sent"] == SIZE


def test_404_is_final_and_fast(serve, blob, tmp_path):
    srv = serve()
    r = fetch(srv.url("/missing.bin"), tmp_path)  # default backoff 1 s: a retry would show
    assert_fail(r, errno.ENOENT, "network", "HTTP status 404", "/missing.bin")
    assert r.s["attempts"] == 1
    assert srv.stats("/missing.bin")["requests"] == 1


def test_403_is_final(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", status=403, status_times=-1)
    r = fetch(srv.url("/blob.bin"), tmp_path)
    assert_fail(r, errno.EACCES, "network", "HTTP status 403")
    assert r.s["attempts"] == 1


def test_connection_refused_retries_then_fails(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = fetch(f"http://127.0.0.1:{port}/x", tmp_path, "--retries", "2", *FAST)
    assert_fail(r, errno.ECONNREFUSED, "network", "gave up after 3 attempts")


# ------------------------------------------------------------------------------------------------------
# The length cap and servers that send more


def test_max_length_announced_by_content_length(serve, blob, tmp_path):
    srv = serve()
    r = fetch(srv.url("/blob.bin"), tmp_path, "--max-length", SIZE - 1)
    assert_fail(r, errno.EFBIG, "network", f"announces {SIZE} bytes (Content-Length)",
                f"more than the {SIZE - 1} allowed")
    assert r.s["bytes"] == 0 and r.s["attempts"] == 1


def test_max_length_exact_is_fine(serve, blob, tmp_path):
    srv = serve()
    assert_ok(fetch(srv.url("/blob.bin"), tmp_path, "--max-length", SIZE), blob)


def test_server_announces_more_than_the_file(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", extra=5000, extra_mode="announced")
    r = fetch(srv.url("/blob.bin"), tmp_path, "--max-length", SIZE)
    assert_fail(r, errno.EFBIG, "network", f"announces {SIZE + 5000} bytes")


def test_endless_data_without_length_is_cut_off(serve, blob, tmp_path):
    """No Content-Length, the body goes on past the cap: the transfer stops as soon as it is exceeded,
    and not a byte beyond the cap reaches the consumer."""
    srv = serve()
    srv.plan("/blob.bin", extra=4 * MIB, extra_mode="unannounced")
    r = fetch(srv.url("/blob.bin"), tmp_path, "--max-length", SIZE)
    assert_fail(r, errno.EFBIG, "network", f"sent more than the {SIZE} bytes allowed; cut off")
    got = r.data()
    assert len(got) <= SIZE and got == blob[:len(got)]
    assert r.s["attempts"] == 1, "an over-long answer must not be retried"


def test_extra_bytes_beyond_content_length_ignored(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", extra=10000, extra_mode="beyond")
    r = fetch(srv.url("/blob.bin"), tmp_path, "--max-length", SIZE)
    assert_ok(r, blob)


def test_over_long_resume_answer_cut_off(serve, blob, tmp_path):
    """Cut at half, then the 206 announces one byte more than the cap leaves from there."""
    srv = serve()
    half = SIZE // 2
    srv.plan("/blob.bin", cut_at=half, extra=1, extra_mode="announced", extra_only_partial=True)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--max-length", SIZE, *FAST)
    assert_fail(r, errno.EFBIG, "network", f"announces {SIZE - half + 1} bytes from byte {half}",
                f"more than the {SIZE} allowed")
    assert r.s["bytes"] == half and r.s["attempts"] == 2, r


def test_size_changed_in_resume_answer(serve, blob, tmp_path):
    """The first answer announced SIZE + 1 bytes; the 206 after the cut says the file has SIZE."""
    srv = serve()
    half = SIZE // 2
    srv.plan("/blob.bin", cut_at=half, extra=1, extra_mode="announced")
    r = fetch(srv.url("/blob.bin"), tmp_path, "--max-length", SIZE + 1, *FAST)
    assert_fail(r, errno.ESTALE, "network", f"the size changed on the server during the download "
                f"({SIZE} bytes, before {SIZE + 1})")


# ------------------------------------------------------------------------------------------------------
# Range handling


def test_server_ignoring_range_gets_skipped(serve, blob, tmp_path):
    """A 200 to "Range: bytes=N-": the first N bytes of the new body are dropped, not handed out again."""
    srv = serve()
    half = SIZE // 2
    srv.plan("/blob.bin", cut_at=half, ignore_range=True)
    r = fetch(srv.url("/blob.bin"), tmp_path, *FAST)
    assert_ok(r, blob)
    assert r.s["ignored_ranges"] == 1, r
    assert r.s["received"] == SIZE + half, r
    st = srv.stats("/blob.bin")
    assert st["ranges"] == [None, f"bytes={half}-"] and st["statuses"] == [200, 200], st


def test_wrong_content_range_refused(serve, blob, tmp_path):
    srv = serve()
    half = SIZE // 2
    srv.plan("/blob.bin", cut_at=half, content_range_shift=4096)
    r = fetch(srv.url("/blob.bin"), tmp_path, *FAST)
    assert_fail(r, errno.EPROTO, "network", f"asked to resume at byte {half}",
                f"answered with bytes from {half + 4096}")
    assert r.s["bytes"] == half


def replaced_after_the_cut(srv, www, tmp_path, new_data, **plan):
    """Cut the first answer at half the file, put `new_data` in its place (a newer mtime) while the
    fetch waits to resume, and return (exit status, summary, stderr)."""
    half = SIZE // 2
    srv.plan("/blob.bin", cut_at=half, **plan)
    proc = subprocess.Popen([FETCH, srv.url("/blob.bin"), str(tmp_path / "o"), "--backoff-ms", "3000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the first answer has been cut (its bytes up to the cut are sent); the retry waits 3 s
        deadline = time.monotonic() + 60
        while srv.stats("/blob.bin")["bytes_sent"] < half:
            assert proc.poll() is None and time.monotonic() < deadline, "the first answer never got to the cut"
            time.sleep(0.02)
        assert srv.stats("/blob.bin")["requests"] == 1
        path = www / "blob.bin"
        old = path.stat().st_mtime
        path.write_bytes(new_data)
        os.utime(path, (old + 10, old + 10))  # another version, whatever the file system's clock
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert srv.stats("/blob.bin")["requests"] == 2
    return proc.returncode, json.loads(out.strip().splitlines()[-1]), err


def test_file_changed_between_attempts(serve, www, blob, tmp_path):
    """The resumed answer tells another total size (and no validator): the file changed on the server."""
    srv = serve()
    rc, s, err = replaced_after_the_cut(srv, www, tmp_path, blob + b"x", validators="none")
    assert rc == 1 and s["code"] == -errno.ESTALE, (s, err)
    assert "the size changed on the server" in s["error"]
    assert srv.stats("/blob.bin")["if_ranges"] == [None, None]


@pytest.mark.parametrize("validators", ["etag", "date"])
def test_resume_asks_for_the_same_version_with_if_range(serve, blob, tmp_path, validators):
    """A resume names the version it began (the strong ETag, else Last-Modified) in If-Range."""
    srv = serve()
    srv.plan("/blob.bin", cut_at=SIZE // 2, validators=validators)
    r = fetch(srv.url("/blob.bin"), tmp_path, *FAST)
    assert_ok(r, blob)
    st = srv.stats("/blob.bin")
    assert st["statuses"] == [200, 206], st
    first, resume = st["if_ranges"]
    assert first is None and resume, st
    assert resume.startswith('"') if validators == "etag" else resume.endswith(" GMT"), st


def test_no_if_range_without_a_validator(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", cut_at=SIZE // 2, validators="none")
    r = fetch(srv.url("/blob.bin"), tmp_path, *FAST)
    assert_ok(r, blob)
    assert srv.stats("/blob.bin")["if_ranges"] == [None, None]


@pytest.mark.parametrize("validators", ["etag", "date"])
def test_file_replaced_by_one_of_the_same_size_is_not_joined(serve, www, blob, tmp_path, validators):
    """The file is replaced by another of the same size while the fetch waits to resume: If-Range gets
    the new version whole (200), and the fetch stops instead of joining two versions' bytes."""
    srv = serve()
    rc, s, err = replaced_after_the_cut(srv, www, tmp_path, os.urandom(SIZE), validators=validators)
    assert rc == 1 and s["code"] == -errno.ESTALE, (s, err)
    assert "the file changed on the server during the download" in s["error"], s
    assert ("ETag" if validators == "etag" else "Last-Modified") in s["error"], s
    assert s["bytes"] == SIZE // 2, s
    assert srv.stats("/blob.bin")["statuses"] == [200, 200]


def test_server_ignoring_if_range_is_caught_by_the_etag(serve, www, blob, tmp_path):
    """A server that serves the range of the new version anyway: its 206 names another ETag."""
    srv = serve()
    rc, s, err = replaced_after_the_cut(srv, www, tmp_path, os.urandom(SIZE), ignore_if_range=True)
    assert rc == 1 and s["code"] == -errno.ESTALE, (s, err)
    assert "the file changed on the server during the download (ETag" in s["error"], s
    assert srv.stats("/blob.bin")["statuses"] == [200, 206]


def test_flipped_bytes_are_served(serve, blob, tmp_path):
    """The server's "other bytes" mode (for tests above the fetch layer, which check hashes)."""
    srv = serve()
    srv.plan("/blob.bin", flip=[0, 12345, SIZE - 1])
    r = fetch(srv.url("/blob.bin"), tmp_path)
    got = r.data()
    assert r.rc == 0 and len(got) == SIZE
    diff = [i for i in (0, 12345, SIZE - 1) if got[i] != blob[i]]
    assert diff == [0, 12345, SIZE - 1]
    assert got[1:12345] == blob[1:12345]


# ------------------------------------------------------------------------------------------------------
# Redirects


def test_redirect_followed(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/old", redirect="/blob.bin")
    assert_ok(fetch(srv.url("/old"), tmp_path), blob)


def test_redirect_loop_bounded(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/loop", redirect="/loop")
    r = fetch(srv.url("/loop"), tmp_path)
    assert_fail(r, errno.ELOOP, "network", "redirect")
    assert srv.stats("/loop")["requests"] == 6  # the first request and 5 redirects


def test_redirect_to_other_protocol_refused(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/ftp", redirect="ftp://127.0.0.1/blob.bin")
    r = fetch(srv.url("/ftp"), tmp_path)
    assert_fail(r, errno.EPROTONOSUPPORT, "network")


def test_only_http_urls(tmp_path):
    for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://x/"):
        r = fetch(url, tmp_path)
        assert_fail(r, errno.EPROTONOSUPPORT, "config", "only http:// and https://")


# ------------------------------------------------------------------------------------------------------
# Proxies (the test server also answers proxy requests: "GET http://host/path")


def test_proxy_option(serve, blob, tmp_path):
    srv = serve()
    r = fetch("http://updates.invalid/blob.bin", tmp_path, "--proxy", f"http://127.0.0.1:{srv.port}")
    assert_ok(r, blob)
    assert srv.stats("/blob.bin")["requests"] == 1


def test_proxy_from_environment(serve, blob, tmp_path):
    srv = serve()
    proxy = f"http://127.0.0.1:{srv.port}"
    r = fetch("http://updates.invalid/blob.bin", tmp_path, env={"http_proxy": proxy})
    assert_ok(r, blob)
    assert srv.stats("/blob.bin")["requests"] == 1
    # no_proxy: straight to the (non-existent) host, which fails to resolve
    r = fetch("http://updates.invalid/blob.bin", tmp_path, "--no-retry",
              env={"http_proxy": proxy, "no_proxy": "updates.invalid"})
    assert_fail(r, errno.EHOSTUNREACH, "network", "updates.invalid")
    assert srv.stats("/blob.bin")["requests"] == 1


# ------------------------------------------------------------------------------------------------------
# TLS


def test_tls_right_ca(serve, blob, tls, tmp_path):
    srv = serve(tls=(tls["server"], tls["server-key"]))
    for host in ("127.0.0.1", "localhost"):
        r = fetch(srv.url("/blob.bin", host=host), tmp_path, "--ca", tls["ca"])
        assert_ok(r, blob)


def test_tls_resume(serve, blob, tls, tmp_path):
    srv = serve(tls=(tls["server"], tls["server-key"]))
    srv.plan("/blob.bin", cut_at=SIZE // 2)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--ca", tls["ca"], *FAST)
    assert_ok(r, blob)
    assert r.s["resumed_from"] == [SIZE // 2]


def test_tls12_only_forward_secret_suites(serve, blob, tls, tmp_path):
    """TLS 1.2 without forward secrecy (RSA key exchange: a stolen server key decrypts recorded traffic) is
    refused; the same server with an ECDHE suite works."""
    rsa_cert = (tls["rsa-server"], tls["rsa-server-key"])
    srv = serve(tls=rsa_cert, tls12_ciphers="AES128-GCM-SHA256:AES256-GCM-SHA384")
    r = fetch(srv.url("/blob.bin"), tmp_path, "--ca", tls["ca"], *FAST)
    assert_fail(r, errno.EPROTO, "network")
    srv = serve(tls=rsa_cert, tls12_ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    assert_ok(fetch(srv.url("/blob.bin"), tmp_path, "--ca", tls["ca"]), blob)


def test_tls_wrong_ca_refused(serve, blob, tls, tmp_path):
    srv = serve(tls=(tls["wrong-server"], tls["wrong-server-key"]))
    r = fetch(srv.url("/blob.bin"), tmp_path, "--ca", tls["ca"], *FAST)
    assert_fail(r, errno.EPERM, "network", "certificate")
    assert r.s["attempts"] == 1 and r.s["bytes"] == 0
    assert srv.stats("/blob.bin")["requests"] == 0


def test_tls_system_store_refuses_test_ca(serve, blob, tls, tmp_path):
    srv = serve(tls=(tls["server"], tls["server-key"]))
    r = fetch(srv.url("/blob.bin"), tmp_path, *FAST)
    assert_fail(r, errno.EPERM, "network", "certificate")


def test_tls_wrong_host_name_refused(serve, blob, tls, tmp_path):
    srv = serve(tls=(tls["other-host"], tls["other-host-key"]))
    for host in ("127.0.0.1", "localhost"):
        r = fetch(srv.url("/blob.bin", host=host), tmp_path, "--ca", tls["ca"], *FAST)
        assert_fail(r, errno.EPERM, "network", host)
        assert r.s["attempts"] == 1
    assert srv.stats("/blob.bin")["requests"] == 0


def test_tls_missing_ca_file(tmp_path):
    r = fetch("https://127.0.0.1:1/x", tmp_path, "--ca", tmp_path / "nope.pem")
    assert_fail(r, errno.ENOENT, "config", "CA file", "nope.pem")


def test_tls_client_certificate(serve, blob, tls, tmp_path):
    srv = serve(tls=(tls["server"], tls["server-key"]), client_ca=tls["client-ca"])
    r = fetch(srv.url("/blob.bin"), tmp_path, "--ca", tls["ca"], "--client-cert", tls["client"],
              "--client-key", tls["client-key"])
    assert_ok(r, blob)
    # Without a certificate, or with one the server's CA did not issue: refused. Under TLS 1.3 the
    # server sends its alert after the client finished the handshake, as the client reads its first
    # answer: to the client a connection failing on receive (ECONNRESET, with the alert in the
    # message), which it retries within --retries like any other. (The test server reads the request
    # before it closes, so the client never writes into a closed connection.)
    for extra, alert in (([], "alert certificate required"),
                         (["--client-cert", tls["other-host"], "--client-key", tls["other-host-key"]],
                          "alert unknown ca")):
        r = fetch(srv.url("/blob.bin"), tmp_path, "--ca", tls["ca"], "--retries", "1", *FAST, *extra)
        assert_fail(r, errno.ECONNRESET, "network", "gave up after 2 attempts", alert, "(at byte 0)")
        assert r.s["bytes"] == 0 and r.s["attempts"] == 2, r
    assert srv.stats("/blob.bin")["requests"] == 1  # only the one with the right certificate


def test_client_cert_without_key_is_a_usage_error(tls, tmp_path):
    r = fetch("https://127.0.0.1:1/x", tmp_path, "--client-cert", tls["client"])
    assert_fail(r, errno.EINVAL, "config", "needs its key")


# ------------------------------------------------------------------------------------------------------
# Flow control and the stream adapter


def test_slow_consumer_pauses(serve, www, tmp_path):
    data = os.urandom(MIB + 777)
    (www / "small.bin").write_bytes(data)
    srv = serve()
    srv.plan("/small.bin", cut_at=len(data) // 2)
    r = fetch(srv.url("/small.bin"), tmp_path, "--slow-consumer", *FAST)
    assert_ok(r, data)
    assert r.s["pauses"] >= 8, r
    assert r.s["resumed_from"] == [len(data) // 2], r


def test_paused_transfer_is_not_stalled(serve, www, tmp_path):
    """Pauses while the low-speed window is 1 s do not count as a stalled transfer."""
    data = os.urandom(512 * 1024)
    (www / "small.bin").write_bytes(data)
    srv = serve()
    r = fetch(srv.url("/small.bin"), tmp_path, "--slow-consumer", "--low-speed-time", "1",
              "--low-speed-limit", "1000", "--no-retry")
    assert_ok(r, data)


def test_stream(serve, blob, tmp_path):
    srv = serve()
    r = fetch(srv.url("/blob.bin"), tmp_path, "--stream")
    assert_ok(r, blob)
    assert r.s["attempts"] == 1


def test_stream_copy(serve, blob, tmp_path):
    """fetch_stream_read(): the same bytes, copied out in blocks, also through a cut."""
    srv = serve()
    srv.plan("/blob.bin", cut_at=SIZE // 3)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--stream-copy", "--stream-buffer", 256 * 1024, *FAST)
    assert_ok(r, blob)
    assert r.s["resumed_from"] == [SIZE // 3], r


def test_stream_check_sees_every_byte_once(serve, blob, tmp_path):
    """The loop-side check hashes the body as it arrives: through a cut and a resume, and while the
    reader is slow (paused transfers deliver their held block again), it sees each byte exactly once."""
    srv = serve()
    srv.plan("/blob.bin", cut_at=SIZE // 2)
    digest = hashlib.sha256(blob).hexdigest()
    r = fetch(srv.url("/blob.bin"), tmp_path, "--stream", "--check-sha256", digest, "--slow-consumer",
              "--stream-buffer", 256 * 1024, *FAST)
    assert_ok(r, blob)
    assert r.s["resumed_from"] == [SIZE // 2], r
    assert r.s["pauses"] >= 4, r


def test_stream_check_failure_ends_stream(serve, blob, tmp_path):
    """A check that fails at the end fails the stream with its own error: the reader never sees a clean
    end of the body, though it did get every byte."""
    srv = serve()
    wrong = hashlib.sha256(b"something else").hexdigest()
    r = fetch(srv.url("/blob.bin"), tmp_path, "--stream", "--check-sha256", wrong)
    assert_fail(r, errno.EBADMSG, "payload", f"check: sha256 mismatch after {SIZE} bytes")
    assert r.s["bytes"] == SIZE, r
    assert srv.stats("/blob.bin")["requests"] == 1  # not retried


def test_stream_check_failure_midway_stops_the_transfer(serve, blob, tmp_path):
    """A check that fails in the middle fails the stream at once and stops the transfer: the reader
    gets the check's error, and the server is not asked for the rest."""
    srv = serve()
    digest = hashlib.sha256(blob).hexdigest()
    r = fetch(srv.url("/blob.bin"), tmp_path, "--stream", "--check-sha256", digest, "--check-fail-after", MIB,
              "--slow-consumer", "--stream-buffer", 256 * 1024)
    assert_fail(r, errno.EBADMSG, "payload", "check: refused after")
    assert MIB <= r.s["bytes"] < SIZE, r
    assert srv.stats("/blob.bin")["requests"] == 1  # not retried


def test_stream_resumes_mid_stream(serve, blob, tmp_path):
    srv = serve()
    half = SIZE // 2
    srv.plan("/blob.bin", cut_at=half)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--stream", *FAST)
    assert_ok(r, blob)
    assert r.s["resumed_from"] == [half], r
    assert srv.stats("/blob.bin")["bytes_sent"] <= 1.05 * SIZE


def test_stream_slow_reader_small_buffer(serve, blob, tmp_path):
    """A 256 KiB ring and a reader sleeping 2 ms per 64 KiB: the transfer pauses and goes on, and a cut
    at 2/3 still resumes."""
    srv = serve()
    srv.plan("/blob.bin", cut_at=2 * SIZE // 3)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--stream", "--slow-consumer", "--stream-buffer", 256 * 1024,
              *FAST)
    assert_ok(r, blob)
    assert r.s["pauses"] >= 4, r
    assert r.s["resumed_from"] == [2 * SIZE // 3], r


def test_stream_error_reaches_reader(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", cut_at=1000, cut_times=-1)
    r = fetch(srv.url("/blob.bin"), tmp_path, "--stream", "--retries", "1", *FAST)
    assert_fail(r, errno.ECONNRESET, "network", "gave up after 2 attempts")
    assert r.s["bytes"] == 1000  # bytes before the failure are still read


def test_stream_over_long_refused(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", extra=MIB, extra_mode="unannounced")
    r = fetch(srv.url("/blob.bin"), tmp_path, "--stream", "--max-length", SIZE)
    assert_fail(r, errno.EFBIG, "network", "cut off")
    assert r.s["bytes"] <= SIZE


def test_to_memory(serve, blob, tmp_path):
    srv = serve()
    srv.plan("/blob.bin", cut_at=SIZE // 2)
    assert_ok(fetch(srv.url("/blob.bin"), tmp_path, "--memory", "--backoff-ms", "20"), blob)
    r = fetch(srv.url("/nope"), tmp_path, "--memory")
    assert_fail(r, errno.ENOENT, "network", "404")
    r = fetch(srv.url("/blob.bin"), tmp_path, "--memory", "--max-length", 1000)
    assert_fail(r, errno.EFBIG, "network", "more than the 1000 allowed")


# ------------------------------------------------------------------------------------------------------
# The server as a program (the demo and other tests start it that way)


def test_server_cli_and_control_api(www, blob, tmp_path):
    p = subprocess.Popen(["/usr/bin/python3", str(SOURCE / "tests" / "httpserver.py"), "--dir", str(www),
                          "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        import urllib.request
        req = urllib.request.Request(f"http://127.0.0.1:{port}/__control", method="POST",
                                     data=json.dumps({"plan": {"/blob.bin": {"cut_at": 1000}}}).encode())
        assert json.loads(urllib.request.urlopen(req, timeout=10).read()) == {"ok": True}
        r = fetch(f"http://127.0.0.1:{port}/blob.bin", tmp_path, *FAST)
        assert_ok(r, blob)
        assert r.s["resumed_from"] == [1000]
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/__control", timeout=10).read())
        assert stats["paths"]["/blob.bin"]["ranges"] == [None, "bytes=1000-"]
        bad = urllib.request.Request(f"http://127.0.0.1:{port}/__control", method="POST",
                                     data=json.dumps({"plan": {"/x": {"bogus": 1}}}).encode())
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(bad, timeout=10)
        assert e.value.code == 400
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_tls_redirect_to_plain_http_refused(serve, blob, tls, tmp_path):
    """A download that starts on https:// does not follow a redirect to http://, and says so."""
    plain = serve()
    srv = serve(tls=(tls["server"], tls["server-key"]))
    srv.plan("/down", redirect=plain.url("/blob.bin"))
    r = fetch(srv.url("/down"), tmp_path, "--ca", tls["ca"], *FAST)
    assert_fail(r, errno.EPROTONOSUPPORT, "network",
                f"refused the redirect to {plain.url('/blob.bin')}: a download that starts on https:// "
                "stays on https://")
    assert plain.stats("/blob.bin")["requests"] == 0
