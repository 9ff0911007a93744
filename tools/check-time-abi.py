#!/usr/bin/python3
"""Fail when upkeep's C code calls a library function that has a time_t (or a struct with one) in its
signature anywhere but lib/base/abi-time.c.

upkeep compiles its own code with a 64-bit time_t (-D_TIME_BITS=64). On 32-bit targets whose libraries still
use a 32-bit time_t (Debian 12 armhf, Buildroot without BR2_TIME_BITS_64), such a call passes the value in
the wrong registers: the build gives no warning and the result is garbage. lib/base/abi-time.c is compiled with
the libraries' own time_t; wrap the call there.

Usage: check-time-abi.py SOURCE_ROOT        check lib/, cli/, daemon/ and tests/
       check-time-abi.py --self-test      show that a call is found and one in a comment is not
"""
import pathlib
import re
import sys
import tempfile

# Functions of upkeep's dependencies (libarchive, OpenSSL 3, libcurl, libsystemd, json-c, inih) whose
# signature has a time_t, a struct stat or a struct timespec/timeval.
TIME_T_APIS = [
    # libarchive
    "archive_entry_atime", "archive_entry_birthtime", "archive_entry_ctime", "archive_entry_mtime",
    "archive_entry_set_atime", "archive_entry_set_birthtime", "archive_entry_set_ctime",
    "archive_entry_set_mtime", "archive_entry_copy_stat", "archive_entry_stat",
    "archive_match_include_time", "archive_match_include_file_time",
    "archive_match_include_file_time_w",
    # OpenSSL
    "X509_VERIFY_PARAM_set_time", "X509_STORE_CTX_set_time", "X509_cmp_time", "X509_time_adj",
    "X509_time_adj_ex", "ASN1_TIME_set", "ASN1_TIME_adj", "ASN1_TIME_cmp_time_t", "ASN1_UTCTIME_set",
    "ASN1_UTCTIME_adj", "ASN1_UTCTIME_cmp_time_t", "ASN1_GENERALIZEDTIME_set", "ASN1_GENERALIZEDTIME_adj",
    "OPENSSL_gmtime",
    # libcurl
    "curl_getdate",
]
ALLOWED = {"lib/base/abi-time.c"}
PATTERN = re.compile(r"\b(" + "|".join(map(re.escape, TIME_T_APIS)) + r")\s*\(")
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def check(path, name):
    text = COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text(encoding="utf-8"))
    bad = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for m in PATTERN.finditer(line):
            bad.append(f"{name}:{lineno}: {m.group(1)}() takes or returns a time_t: call it through "
                       "lib/base/abi-time.c (see lib/base/abi-time.h)")
    return bad


def self_test():
    with tempfile.TemporaryDirectory() as d:
        p = pathlib.Path(d) / "bad.c"
        p.write_text("/* archive_entry_set_mtime(e, 0, 0) */\n"
                     "static int f(void)\n{\n        return curl_getdate (\"now\", NULL) > 0;\n}\n",
                     encoding="utf-8")
        bad = check(p, "bad.c")
    want = ["bad.c:4: curl_getdate() takes or returns a time_t"]
    if [b[:len(want[0])] for b in bad] != want:
        print("check-time-abi --self-test: expected", want, "got", bad, file=sys.stderr)
        return 1
    print("check-time-abi --self-test: ok")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = pathlib.Path(sys.argv[1])
    files = []
    for sub in ("lib", "cli", "daemon", "tests"):
        for p in sorted((root / sub).rglob("*.[ch]")):
            rel = p.relative_to(root).as_posix()
            if rel not in ALLOWED:
                files.append((p, rel))
    if not files:
        print("check-time-abi: no C files found under", root, file=sys.stderr)
        return 1
    bad = [msg for p, name in files for msg in check(p, name)]
    for msg in bad:
        print(msg, file=sys.stderr)
    print(f"check-time-abi: {len(files)} files, {len(bad)} direct time_t library calls")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
