# SPDX-License-Identifier: LGPL-2.1-or-later
"""`updatectl bundle create|info|verify|extract` against /work/cli-spec.md, driving the real binary.

Every rejection asserts the exact exit status, that stderr is the single line
"updatectl: BUNDLE: rejected: <category>: ..." naming the thing and the reason, and, through
Env.assert_rejected_everywhere(), that `extract` leaves nothing behind."""

import json
import os
import re
import subprocess
import tarfile

import pytest

from conftest import (EXIT_FAILURE, EXIT_FORMAT, EXIT_MANIFEST, EXIT_OK, EXIT_PAYLOAD, EXIT_SIGNATURE,
                      EXIT_USAGE, MANIFEST, NO_KEYRING_WARNING, SIGNATURE, Env, assert_ok, assert_rejected,
                      assert_status, cert_cn, cert_subject, cms_verify_ok, craft_tar, describe, gzip_bytes,
                      manifest_bytes, parse_tar, pki, read_members, sha256, tar_member)

N_PAYLOADS = 4


@pytest.fixture
def env(tmp_path):
    """Format 1: this file's bundles, crafted or made by the CLI (`--format 1`), are format 1, which
    `create`, `info`, `verify` and `extract` keep supporting. Format 2 is test_bundle_format2.py's."""
    e = Env(tmp_path)
    e.create_format = 1
    return e

SIG_REJECT = r"rejected: signature"
MANIFEST_REJECT = r"rejected: manifest: "
FORMAT_REJECT = r"rejected: bundle format: "
PAYLOAD_REJECT = r"rejected: payload "


def q(s):
    """A regex matching `s` literally."""
    return re.escape(s)


def verify_line(bundle, signer, payloads):
    total = sum(len(p.stored) for p in payloads)
    return f"{bundle}: OK: signed by {cert_subject(signer)}; {len(payloads)} payload(s), {total} bytes checked"


def assert_verified(env, bundle, signer="signer", *extra):
    res = assert_ok(env.verify(bundle, *extra))
    assert res.stdout.strip() == verify_line(bundle, signer, env.payloads), describe(res)
    assert res.stderr == "", describe(res)
    return res


# ======================================================================================================
# Happy paths


def test_create_info_verify_extract(env):
    b = env.create()

    # info without a keyring: loud warning, NOT VERIFIED, but the manifest is shown.
    res = assert_ok(env.info(b))
    assert NO_KEYRING_WARNING in res.stderr, describe(res)
    assert re.search(r"^Signature:   NOT VERIFIED\b", res.stdout, re.M), describe(res)
    assert "acme-gw" in res.stdout and "1.2.3" in res.stdout, describe(res)
    for p in env.payloads:
        assert p.name in res.stdout and p.file in res.stdout, describe(res)

    # info with a keyring: no warning, the signer is shown.
    res = assert_ok(env.info(b, "--keyring", env.keyring))
    assert "WARNING" not in res.stderr, describe(res)
    assert "NOT VERIFIED" not in res.stdout, describe(res)
    assert re.search(r"^Signature: ", res.stdout, re.M), describe(res)
    assert cert_subject("signer") in res.stdout, describe(res)

    assert_verified(env, b)

    res = assert_ok(env.extract(b, "out"))
    members = read_members(env.path(b))
    out = env.path("out")
    assert sorted(os.listdir(out)) == sorted([MANIFEST, SIGNATURE] + [p.file for p in env.payloads])
    assert (out / MANIFEST).read_bytes() == members[MANIFEST]
    assert (out / SIGNATURE).read_bytes() == members[SIGNATURE]
    for p in env.payloads:
        assert (out / p.file).read_bytes() == p.stored, p.file  # stored bytes, still compressed


def test_info_json(env):
    b = env.create()
    members = read_members(env.path(b))
    stored = json.loads(members[MANIFEST])

    res = assert_ok(env.info(b, "--json"))
    assert NO_KEYRING_WARNING in res.stderr, describe(res)
    doc = json.loads(res.stdout)
    assert doc["verified"] is False
    assert doc["signer"] is None
    assert doc["bundle"] == b
    assert doc["manifest"] == stored

    res = assert_ok(env.info(b, "--json", "--keyring", env.keyring))
    doc = json.loads(res.stdout)
    assert doc["verified"] is True
    assert doc["bundle"] == b
    assert doc["manifest"] == stored
    signer = doc["signer"]
    assert set(signer) == {"subject", "issuer", "serial", "digest"}, signer
    assert signer["subject"] == cert_subject("signer")
    assert signer["issuer"] == cert_subject("intermediate")
    from cryptography import x509
    serial = x509.load_pem_x509_certificate(pki("signer.pem").read_bytes()).serial_number
    assert int(signer["serial"].replace(":", ""), 16) == serial
    assert signer["digest"].lower().replace("-", "") == "sha256"


def test_info_with_keyring_rejects_bad_signature(env):
    b = env.craft(signer="other-signer", chain=False)
    res = env.info(b, "--keyring", env.keyring)
    assert_rejected(res, b, EXIT_SIGNATURE, SIG_REJECT, q(cert_cn("other-signer")))


def test_create_fills_manifest(env):
    b = env.create()
    members = read_members(env.path(b))
    stored = json.loads(members[MANIFEST])
    expect = env.full_manifest()
    assert stored == expect
    assert members[MANIFEST].endswith(b"\n")


def test_create_layout(env):
    """Members in order, regular files, mode 0644, uid/gid 0, no owner names, mtime 0."""
    b = env.create()
    with tarfile.open(env.path(b), "r:") as t:
        infos = t.getmembers()
    assert [i.name for i in infos] == [MANIFEST, SIGNATURE] + [p.file for p in env.payloads]
    for i in infos:
        assert i.isreg(), i.name
        assert (i.mode & 0o7777) == 0o644, (i.name, oct(i.mode))
        assert (i.uid, i.gid, i.uname, i.gname, i.mtime) == (0, 0, "", "", 0), i.name
    # The signature really is a detached CMS over the manifest bytes (checked by openssl).
    members = read_members(env.path(b))
    assert cms_verify_ok(members[MANIFEST], members[SIGNATURE], env.tmp)


@pytest.mark.parametrize("signer", ["signer", "signer-ed25519"])
def test_create_reproducible(env, signer):
    a = env.create("a.upk", signer=signer)
    b = env.create("b.upk", signer=signer)
    assert env.path(a).read_bytes() == env.path(b).read_bytes()
    assert_verified(env, a, signer)


def test_create_default_payload_dir(env):
    """Without --payload-dir the payloads are found next to the manifest."""
    m = env.write_template(name="payloads/manifest.json")
    res = env.run("bundle", "create", "--manifest", m, "--cert", pki("signer.pem"), "--key",
                  pki("signer.key"), "--chain", pki("chain.pem"), "--format", "1", "-o", "b.upk")
    assert_ok(res)
    assert_verified(env, "b.upk")


def test_ec_signer(env):
    b = env.create(signer="signer-ec")
    assert_verified(env, b, "signer-ec")


def _certs_in_signature(env, sig):
    p = env.path("sig.der")
    p.write_bytes(sig)
    r = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-in", str(p), "-print_certs", "-noout"],
                       capture_output=True, text=True, check=True)
    return r.stdout


def test_chain_carried(env):
    b = env.create(signer="signer", chain=True)
    certs = _certs_in_signature(env, read_members(env.path(b))[SIGNATURE])
    assert cert_cn("signer") in certs and cert_cn("intermediate") in certs, certs
    assert_verified(env, b)


def test_signer_direct(env):
    """A signer issued by the root needs no chain."""
    b = env.create(signer="signer-direct", chain=False)
    certs = _certs_in_signature(env, read_members(env.path(b))[SIGNATURE])
    assert cert_cn("signer-direct") in certs and cert_cn("intermediate") not in certs, certs
    assert_verified(env, b, "signer-direct")


def test_crl_not_revoked(env):
    b = env.create()
    assert_verified(env, b, "signer", "--crl", env.crl)
    assert_ok(env.extract(b, "out", "--crl", env.crl))
    assert (env.path("out") / env.payloads[0].file).read_bytes() == env.payloads[0].stored


def test_crafted_control_bundle_verifies(env):
    """The hand-crafting path makes bundles the CLI accepts: the negative tests change one thing."""
    b = env.craft()
    assert_verified(env, b)
    assert_ok(env.extract(b, "out"))
    for p in env.payloads:
        assert (env.path("out") / p.file).read_bytes() == p.stored


def test_crafted_control_bundle_without_end_marker(env):
    b = env.craft(end=False)
    assert_verified(env, b)


def test_extract_into_existing_empty_dir(env):
    b = env.create()
    env.path("out").mkdir()
    assert_ok(env.extract(b, "out"))
    assert sorted(os.listdir(env.path("out"))) == sorted([MANIFEST, SIGNATURE] + [p.file for p in env.payloads])


def test_version_and_help(env):
    res = assert_ok(env.run("--version"))
    assert "0.1.0" in res.stdout, describe(res)
    res = assert_ok(env.run("--help"))
    assert "bundle" in res.stdout, describe(res)


# ======================================================================================================
# Truncation

# Positions relative to one member: (label, function of the member giving the cut offset or None).
CUTS = [
    ("at-start", lambda m: m.start),            # the member boundary: the previous member is complete
    ("in-header", lambda m: m.header + 100),
    ("header-last-byte", lambda m: m.header + 511),
    ("after-header", lambda m: m.data),
    ("data+1", lambda m: m.data + 1 if m.size > 1 else None),
    ("data-middle", lambda m: m.data + m.size // 2),
    ("data-last-byte", lambda m: m.data_end - 1),
    ("data-end-no-padding", lambda m: m.data_end if m.data_end != m.end else None),
]
MEMBERS = [MANIFEST, SIGNATURE, "payload0", "payload1", "payload2", "payload3"]


@pytest.mark.parametrize("cut", [c[0] for c in CUTS])
@pytest.mark.parametrize("member", range(len(MEMBERS)), ids=MEMBERS)
def test_truncated(env, member, cut):
    b = env.create()
    blob = env.path(b).read_bytes()
    members, end = parse_tar(blob)
    assert len(members) == 2 + N_PAYLOADS
    offset = dict(CUTS)[cut](members[member])
    if offset is None:
        pytest.skip("no such position in this member")
    assert 0 <= offset < members[-1].end
    env.path("t.upk").write_bytes(blob[:offset])
    reason = r"truncat|unexpected end"
    if cut == "at-start":
        # A clean cut between members reads as a complete tar stream that lacks members.
        reason = (r"file is empty" if member == 0 else q(f"ends after {member} member(s)")) + "|" + reason
    elif member == 0 and offset < members[0].data:
        # Less than one header: libarchive cannot even recognise a tar stream.
        reason = r"not a tar archive|" + reason
    env.assert_rejected_everywhere("t.upk", EXIT_FORMAT, FORMAT_REJECT, reason)


def test_truncated_after_last_member_is_accepted(env):
    """The end-of-archive blocks missing after the last payload's (padded) data: tolerated."""
    b = env.create()
    blob = env.path(b).read_bytes()
    members, end = parse_tar(blob)
    env.path("t.upk").write_bytes(blob[:members[-1].end])
    assert_verified(env, "t.upk")
    assert_ok(env.extract("t.upk", "out"))
    assert (env.path("out") / env.payloads[-1].file).read_bytes() == env.payloads[-1].stored


def test_truncated_in_end_marker_is_accepted(env):
    """Only one of the two zero blocks: every member was read and checked."""
    b = env.create()
    blob = env.path(b).read_bytes()
    members, end = parse_tar(blob)
    env.path("t.upk").write_bytes(blob[:members[-1].end + 512])
    assert_verified(env, "t.upk")


def test_empty_file(env):
    env.path("e.upk").write_bytes(b"")
    env.assert_rejected_everywhere("e.upk", EXIT_FORMAT, FORMAT_REJECT)


# ======================================================================================================
# Flipped bytes


def _flip(env, b, offset, name="f.upk"):
    blob = bytearray(env.path(b).read_bytes())
    blob[offset] ^= 0x01
    env.path(name).write_bytes(bytes(blob))
    return name


@pytest.mark.parametrize("where", ["middle", "first", "last"])
def test_flip_manifest(env, where):
    b = env.create()
    m = parse_tar(env.path(b).read_bytes())[0][0]
    off = {"middle": m.data + m.size // 2, "first": m.data, "last": m.data_end - 1}[where]
    f = _flip(env, b, off)
    env.assert_rejected_everywhere(f, EXIT_SIGNATURE, SIG_REJECT)


def test_manifest_changed_but_valid_json(env):
    """A one-letter change inside a string: still valid JSON, still a valid manifest, wrong signature."""
    b = env.create()
    blob = env.path(b).read_bytes()
    m = parse_tar(blob)[0][0]
    i = blob.index(b"integration test bundle", m.data)
    assert i < m.data_end
    blob = blob[:i] + b"I" + blob[i + 1:]
    env.path("f.upk").write_bytes(blob)
    env.assert_rejected_everywhere("f.upk", EXIT_SIGNATURE, SIG_REJECT)


@pytest.mark.parametrize("where", ["middle", "first", "last"])
def test_flip_signature(env, where):
    b = env.create()
    s = parse_tar(env.path(b).read_bytes())[0][1]
    off = {"middle": s.data + s.size // 2, "first": s.data, "last": s.data_end - 1}[where]
    f = _flip(env, b, off)
    env.assert_rejected_everywhere(f, EXIT_SIGNATURE, SIG_REJECT)


@pytest.mark.parametrize("index", range(N_PAYLOADS))
@pytest.mark.parametrize("where", ["middle", "first", "last"])
def test_flip_payload(env, index, where):
    b = env.create()
    m = parse_tar(env.path(b).read_bytes())[0][2 + index]
    off = {"middle": m.data + m.size // 2, "first": m.data, "last": m.data_end - 1}[where]
    f = _flip(env, b, off)
    p = env.payloads[index]
    # A compressed payload may fail in the decompressor before its hash is complete (verify streams the
    # stored bytes through both); extract (stored bytes) must see the sha256 mismatch.
    reason = r"sha-?256" if p.compression is None else rf"sha-?256|decompress|not {p.compression} data"
    env.assert_rejected_everywhere(f, EXIT_PAYLOAD, PAYLOAD_REJECT + q(f'"{p.name}"'), reason)


# ======================================================================================================
# Signatures

SIGNER_CASES = {
    # name: (signer, carry chain.pem, reason regex)
    "other-signer": ("other-signer", False, r"issuer|not trusted|untrusted|chain"),
    "selfsigned": ("selfsigned", False, r"self[- ]?signed"),
    "expired": ("expired", True, r"expired"),
    "notyet": ("notyet", True, r"not yet valid"),
    "rsa1024": ("rsa1024", True, r"1024|too (small|short|weak)|weak key"),
    "sha1cert": ("sha1cert", True, r"sha-?1"),
    "missing-intermediate": ("signer", False, r"issuer|chain"),
    # not code signing certificates
    "noeku": ("noeku", True, q("it has no extended key usage; the codeSigning extended key usage is required")),
    "anyeku": ("anyeku", True, q("its extended key usage is anyExtendedKeyUsage, not codeSigning")),
    "serverauth": ("serverauth", True, q("its extended key usage does not allow codeSigning")),
    "caleaf": ("caleaf", True, q("it is a CA certificate (basicConstraints CA:TRUE)")),
}


@pytest.mark.parametrize("case", SIGNER_CASES)
def test_bad_signer(env, case):
    signer, chain, reason = SIGNER_CASES[case]
    b = env.craft(signer=signer, chain=chain)
    env.assert_rejected_everywhere(b, EXIT_SIGNATURE, SIG_REJECT, q(cert_cn(signer)), reason)


@pytest.mark.parametrize("case", ["other-signer", "selfsigned", "expired", "missing-intermediate"])
def test_bad_signer_via_cli(env, case):
    """The same through `bundle create` (if create refuses such a signer, it must say so and fail)."""
    signer, chain, reason = SIGNER_CASES[case]
    res = env.run(*env.create_args(out="b.upk", signer=signer, chain=chain))
    if res.returncode != EXIT_OK:
        assert not env.path("b.upk").exists()
        pytest.fail("create refused the signer (allowed, but report it)\n" + describe(res))
    env.assert_rejected_everywhere("b.upk", EXIT_SIGNATURE, SIG_REJECT, q(cert_cn(signer)), reason)


@pytest.mark.parametrize("case", ["noeku", "anyeku", "serverauth", "caleaf"])
def test_wrong_signer_kind_with_allow_any_eku(env, case):
    """--allow-any-eku accepts a signer without codeSigning, never a CA or one for other purposes."""
    signer, chain, reason = SIGNER_CASES[case]
    b = env.craft(signer=signer, chain=chain)
    if case in ("noeku", "anyeku"):
        assert_verified(env, b, signer, "--allow-any-eku")
        res = assert_ok(env.run("bundle", "info", "--keyring", env.keyring, "--allow-any-eku", b))
        assert f"signed by {cert_subject(signer)}" in res.stdout, describe(res)
    else:
        env.assert_rejected_everywhere(b, EXIT_SIGNATURE, SIG_REJECT, q(cert_cn(signer)), reason)
        res = env.verify(b, "--allow-any-eku")
        assert_rejected(res, b, EXIT_SIGNATURE, SIG_REJECT, reason)


@pytest.mark.parametrize("case", ["noeku", "anyeku", "serverauth", "caleaf"])
def test_create_warns_about_a_signer_devices_refuse(env, case):
    signer, chain, reason = SIGNER_CASES[case]
    res = assert_ok(env.run(*env.create_args(out="b.upk", signer=signer, chain=chain)))
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("updatectl: warning: "), describe(res)
    assert "devices will refuse bundles signed with it" in lines[0] and re.search(reason, lines[0]), \
        describe(res)
    env.assert_rejected_everywhere("b.upk", EXIT_SIGNATURE, SIG_REJECT, q(cert_cn(signer)), reason)
    # With --allow-any-eku create warns only about what such devices still refuse.
    res = assert_ok(env.run(*env.create_args(out="c.upk", signer=signer, chain=chain), "--allow-any-eku"))
    assert (res.stderr == "") == (case in ("noeku", "anyeku")), describe(res)


def test_create_is_quiet_for_a_good_signer(env):
    res = assert_ok(env.run(*env.create_args(out="b.upk")))
    assert res.stderr == "", describe(res)


def test_revoked_with_crl(env):
    b = env.craft(signer="revoked")
    env.assert_rejected_everywhere(b, EXIT_SIGNATURE, SIG_REJECT, q(cert_cn("revoked")), r"revoked",
                                   crl=True)


def test_revoked_without_crl_is_accepted(env):
    b = env.craft(signer="revoked")
    assert_verified(env, b, "revoked")


def test_sha1_digest(env):
    b = env.craft(md="sha1")
    env.assert_rejected_everywhere(b, EXIT_SIGNATURE, SIG_REJECT, r"sha-?1")


def test_signature_from_other_bundle(env):
    """A valid signature by the right signer, but over a different manifest."""
    other = env.full_manifest()
    other["version"] = "9.9.9"
    sig = env.sign(manifest_bytes(other))
    b = env.craft(sig=sig)
    env.assert_rejected_everywhere(b, EXIT_SIGNATURE, SIG_REJECT, r"verif|mismatch|does not match|digest|fail|bad")


def test_signature_swapped_from_cli_bundle(env):
    a = env.create("a.upk")
    t = env.full_manifest()
    t["description"] = "another bundle"
    env.write_template(t, name="other.json")
    env.create("o.upk", manifest=env.path("other.json"))
    sig = read_members(env.path("o.upk"))[SIGNATURE]
    blob = read_members(env.path(a))
    members = [(MANIFEST, blob[MANIFEST]), (SIGNATURE, sig)] + [(p.file, p.stored) for p in env.payloads]
    env.path("s.upk").write_bytes(craft_tar(members))
    env.assert_rejected_everywhere("s.upk", EXIT_SIGNATURE, SIG_REJECT)


def test_empty_signature(env):
    b = env.craft(sig=b"")
    env.assert_rejected_everywhere(b, EXIT_SIGNATURE, SIG_REJECT, r"empty|no signature|0 bytes")


def test_signature_not_der(env):
    b = env.craft(sig=os.urandom(300))
    env.assert_rejected_everywhere(b, EXIT_SIGNATURE, SIG_REJECT)


def test_signature_without_signer(env):
    """A SignedData with certificates but no SignerInfo (what crl2pkcs7 makes)."""
    p = env.path("nosigner.der")
    subprocess.run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", str(pki("signer.pem")), "-certfile",
                    str(pki("chain.pem")), "-outform", "DER", "-out", str(p)], check=True, capture_output=True)
    b = env.craft(sig=p.read_bytes())
    env.assert_rejected_everywhere(b, EXIT_SIGNATURE, SIG_REJECT, r"signer")


def test_signature_with_signed_attributes(env):
    """create makes no signed attributes, but upkeep-bundle(5) has the verifier accept a SignerInfo with
    them (a content type, digest and signing time, as openssl cms -sign makes it): it verifies."""
    mb = manifest_bytes(env.full_manifest())
    d = env.tmp / "attr"
    d.mkdir()
    (d / "m").write_bytes(mb)
    subprocess.run(["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
                    "-signer", str(pki("signer.pem")), "-inkey", str(pki("signer.key")),
                    "-certfile", str(pki("chain.pem")), "-in", str(d / "m"), "-out", str(d / "s")],
                   check=True, capture_output=True)
    b = env.craft(manifest=mb, sig=(d / "s").read_bytes())
    assert_verified(env, b)


def test_missing_keyring_file(env):
    b = env.create()
    res = env.run("bundle", "verify", "--keyring", "nonexistent.pem", b)
    assert_status(res, EXIT_FAILURE, q("nonexistent.pem"))


def test_wrong_keyring(env):
    """The other root as keyring: our signer does not chain to it."""
    b = env.create()
    res = env.run("bundle", "verify", "--keyring", pki("other-root.pem"), b)
    assert_rejected(res, b, EXIT_SIGNATURE, SIG_REJECT, q(cert_cn("signer")))


# ======================================================================================================
# Manifest schema (validly signed with openssl cms)


def _m_unknown_top(m):
    m["colour"] = "blue"
    return r"\bcolour\b", r"unknown"


def _m_unknown_payload(m):
    m["payloads"][1]["colour"] = "blue"
    return r"payloads\[1\]", r"\bcolour\b", r"unknown"


def _m_unknown_security(m):
    m["security"]["colour"] = "blue"
    return r"\bsecurity\b", r"\bcolour\b", r"unknown"


def _m_type_version(m):
    m["version"] = 123
    return r"\bversion\b", r"string|type"


def _m_type_reboot(m):
    m["reboot"] = "yes"
    return r"\breboot\b", r"bool|type"


def _m_type_size(m):
    m["payloads"][0]["size"] = str(m["payloads"][0]["size"])
    return r"payloads\[0\]\.size", r"integer|number|type"


def _m_type_payloads(m):
    m["payloads"] = {"rootfs": m["payloads"][0]}
    return r"\bpayloads\b", r"array|type"


def _m_missing_compatible(m):
    del m["compatible"]
    return r"\bcompatible\b", r"missing|required"


def _m_missing_sha256(m):
    del m["payloads"][2]["sha256"]
    return r"payloads\[2\]", r"\bsha256\b", r"missing|required"


def _m_missing_size(m):
    del m["payloads"][0]["size"]
    return r"payloads\[0\]", r"\bsize\b", r"missing|required"


def _m_bad_version(m):
    m["version"] = "1.2"
    return r"\bversion\b", r"semantic|invalid|not a"


def _m_bad_min_version(m):
    m["min_version"] = "01.0.0"
    return r"\bmin_version\b", r"semantic|invalid|not a"


def _m_format_2(m):
    m["format"] = 2
    return r"\bformat\b", r"\b2\b|unsupported|expected 1"


def _m_duplicate_name(m):
    m["payloads"][1]["name"] = m["payloads"][0]["name"]
    return r"payloads\[1\]\.name", r"duplicate|used twice"


def _m_duplicate_file(m):
    m["payloads"][1]["file"] = m["payloads"][0]["file"]
    return r"payloads\[1\]\.file", r"duplicate|used twice"


def _m_sha256_upper(m):
    m["payloads"][0]["sha256"] = m["payloads"][0]["sha256"].upper()
    return r"payloads\[0\]\.sha256", r"hex"


def _m_bad_compression(m):
    m["payloads"][1]["compression"] = "bzip2"
    return r"payloads\[1\]\.compression", r"bzip2|unknown|invalid|expected"


def _m_file_slash(m):
    m["payloads"][0]["file"] = "sub/rootfs.img"
    return r"payloads\[0\]\.file", r"/|plain|invalid"


def _m_file_dotdot(m):
    m["payloads"][0]["file"] = ".."
    return r"payloads\[0\]\.file", r"\.\.|plain|invalid"


def _m_file_is_signature(m):
    m["payloads"][0]["file"] = SIGNATURE
    return r"payloads\[0\]\.file", r"reserved|manifest\.json\.sig|invalid"


def _m_no_slot_no_target(m):
    del m["payloads"][0]["slot_class"]
    return r"payloads\[0\]", r"slot_class|target"


def _m_bad_build(m):
    m["build"] = "yesterday"
    return r"\bbuild\b", r"RFC ?3339|invalid|date"


MANIFEST_CASES = {f.__name__[3:]: f for f in [
    _m_unknown_top, _m_unknown_payload, _m_unknown_security, _m_type_version, _m_type_reboot, _m_type_size,
    _m_type_payloads, _m_missing_compatible, _m_missing_sha256, _m_missing_size, _m_bad_version,
    _m_bad_min_version, _m_format_2, _m_duplicate_name, _m_duplicate_file, _m_sha256_upper, _m_bad_compression,
    _m_file_slash, _m_file_dotdot, _m_file_is_signature, _m_no_slot_no_target, _m_bad_build]}


@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_manifest_schema(env, case):
    m = env.full_manifest()
    patterns = MANIFEST_CASES[case](m)
    b = env.craft(manifest=m)
    env.assert_rejected_everywhere(b, EXIT_MANIFEST, MANIFEST_REJECT, *patterns)


def test_manifest_not_json(env):
    b = env.craft(manifest=b"{\"format\": 1,\n")
    env.assert_rejected_everywhere(b, EXIT_MANIFEST, MANIFEST_REJECT, r"JSON|parse|syntax|unexpected end")


def test_manifest_not_object(env):
    b = env.craft(manifest=b"[1, 2, 3]\n")
    env.assert_rejected_everywhere(b, EXIT_MANIFEST, MANIFEST_REJECT, r"object")


def test_manifest_file_outside_never_written(env):
    """A signed manifest naming ../victim: rejected, and extract writes nothing outside DIR."""
    m = env.full_manifest()
    m["payloads"][0]["file"] = "../victim"
    payloads = [("../victim", env.payloads[0].stored)] + [(p.file, p.stored) for p in env.payloads[1:]]
    b = env.craft(manifest=m, payloads=payloads)
    env.path("deep").mkdir()
    res = env.run("bundle", "extract", "--keyring", env.keyring, b, "deep/out")
    assert_rejected(res, b, EXIT_MANIFEST, MANIFEST_REJECT, r"payloads\[0\]\.file")
    assert not env.path("deep/victim").exists()
    assert os.listdir(env.path("deep")) == []


# ======================================================================================================
# Bundle format


def _std_members(env, manifest=None, sig=None):
    m = manifest_bytes(manifest or env.full_manifest())
    s = sig or env.sign(m)
    return (MANIFEST, m), (SIGNATURE, s), [(p.file, p.stored) for p in env.payloads]


def test_signature_before_manifest(env):
    m, s, pl = _std_members(env)
    b = env.craft(members=[s, m] + pl)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q('"manifest.json.sig"'),
                                   q('expected "manifest.json"'))


def test_manifest_missing(env):
    m, s, pl = _std_members(env)
    b = env.craft(members=[s] + pl)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q('expected "manifest.json"'))


def test_signature_missing(env):
    m, s, pl = _std_members(env)
    b = env.craft(members=[m] + pl)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q('"rootfs.img"'),
                                   q('expected "manifest.json.sig"'))


def test_manifest_only(env):
    m, s, pl = _std_members(env)
    b = env.craft(members=[m])
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q("manifest.json.sig"))


def test_payloads_swapped(env):
    m, s, pl = _std_members(env)
    pl[1], pl[2] = pl[2], pl[1]
    b = env.craft(members=[m, s] + pl)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q('"config.xz"'), q('expected "app.tar.zst"'))


@pytest.mark.parametrize("index", [0, 2, 3])
def test_payload_missing(env, index):
    m, s, pl = _std_members(env)
    missing = pl.pop(index)[0]
    b = env.craft(members=[m, s] + pl)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q(missing), r"missing|expected")


def test_no_payloads_at_all(env):
    m, s, pl = _std_members(env)
    b = env.craft(members=[m, s])
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q("rootfs.img"), r"missing|expected")


@pytest.mark.parametrize("position", ["after-payloads", "after-signature", "between-payloads"])
def test_extra_member(env, position):
    m, s, pl = _std_members(env)
    extra = ("extra.bin", b"surprise\n")
    members = [m, s] + pl
    members.insert({"after-payloads": len(members), "after-signature": 2, "between-payloads": 4}[position], extra)
    b = env.craft(members=members)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q('"extra.bin"'))


def test_extra_member_same_name(env):
    """A second copy of the last payload after it."""
    m, s, pl = _std_members(env)
    b = env.craft(members=[m, s] + pl + [pl[-1]])
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q('"data.gz"'))


def test_extra_empty_member_after_payloads(env):
    m, s, pl = _std_members(env)
    b = env.craft(members=[m, s] + pl + [("x", b"")])
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q('"x"'))


def test_garbage_after_end_marker(env):
    """Non-zero bytes after the end-of-archive marker are something following the last payload."""
    b = env.craft()
    with open(env.path(b), "ab") as f:
        f.write(tar_member("late.bin", b"late\n"))
    # upkeep-bundle(5): after the end-of-archive marker only zero bytes may follow.
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, r"data follows the end of the tar archive")


@pytest.mark.parametrize("name", ["sub/rootfs.img", "../rootfs.img", "/rootfs.img", "./rootfs.img",
                                  "rootfs.img/", "a/../rootfs.img"])
def test_bad_member_name(env, name):
    m, s, pl = _std_members(env)
    pl[0] = (name, pl[0][1])
    b = env.craft(members=[m, s] + pl)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q(name.rstrip("/")))


def test_bad_manifest_member_name(env):
    m, s, pl = _std_members(env)
    b = env.craft(members=[("./manifest.json", m[1]), s] + pl)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q("./manifest.json"))


def test_pax_path_override(env):
    """The ustar name is right but a pax 'path' record renames the member to ../rootfs.img."""
    m, s, pl = _std_members(env)
    raw = tar_member("rootfs.img", env.payloads[0].stored, pax={"path": "../rootfs.img"})
    b = env.craft(members=[m, s, raw] + pl[1:])
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q("../rootfs.img"))


TYPE_CASES = {
    "symlink": dict(type=tarfile.SYMTYPE, linkname="/etc/passwd"),
    "symlink-relative": dict(type=tarfile.SYMTYPE, linkname="manifest.json"),
    "hardlink": dict(type=tarfile.LNKTYPE, linkname="manifest.json"),
    "chardev": dict(type=tarfile.CHRTYPE, devmajor=1, devminor=3),
    "blockdev": dict(type=tarfile.BLKTYPE, devmajor=8, devminor=0),
    "directory": dict(type=tarfile.DIRTYPE, mode=0o755),
    "fifo": dict(type=tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("case", TYPE_CASES)
@pytest.mark.parametrize("slot", ["manifest", "payload"])
def test_non_regular_member(env, case, slot):
    m, s, pl = _std_members(env)
    if slot == "manifest":
        members = [tar_member(MANIFEST, **TYPE_CASES[case]), s] + pl
        name = MANIFEST
    else:
        members = [m, s, tar_member("rootfs.img", **TYPE_CASES[case])] + pl[1:]
        name = "rootfs.img"
    b = env.craft(members=members)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q(name),
                                   r"regular|link|device|directory|fifo|type")
    assert not os.path.lexists(env.path("out"))


def test_hardlink_with_data(env):
    """A hard-link entry that carries a size (libarchive may hand out data for it)."""
    m, s, pl = _std_members(env)
    raw = tar_member("rootfs.img", env.payloads[0].stored, type=tarfile.LNKTYPE, linkname=MANIFEST)
    b = env.craft(members=[m, s, raw] + pl[1:])
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q("rootfs.img"), r"regular|link|type")


def test_sparse_member(env):
    """A GNU sparse 1.0 member (pax) whose expanded content matches the manifest: still refused."""
    a, z = os.urandom(4096), os.urandom(4096)
    content = a + b"\0" * 4096 + z
    man = env.full_manifest()
    man["payloads"][0]["size"] = len(content)
    man["payloads"][0]["sha256"] = sha256(content)
    m, s, pl = _std_members(env, manifest=man)
    sparse_map = b"2\n0\n4096\n8192\n4096\n"
    sparse_map += b"\0" * (512 - len(sparse_map))
    raw = tar_member("GNUSparseFile.0/rootfs.img", sparse_map + a + z,
                     pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                          "GNU.sparse.name": "rootfs.img", "GNU.sparse.realsize": str(len(content))})
    b = env.craft(members=[m, s, raw] + pl[1:])
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q("rootfs.img"), r"sparse")


@pytest.mark.parametrize("index", range(N_PAYLOADS))
@pytest.mark.parametrize("delta", [+100, -100, +1, -1])
def test_member_size_differs(env, index, delta):
    m, s, pl = _std_members(env)
    name, data = pl[index]
    pl[index] = (name, data + os.urandom(delta) if delta > 0 else data[:delta])
    b = env.craft(members=[m, s] + pl)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q(name),
                                   rf"size|is {len(pl[index][1])} bytes, the manifest declares {len(data)}")


@pytest.mark.parametrize("index", [1, 2, 3], ids=["zstd", "xz", "gzip"])
def test_expands_past_installed_size(env, index):
    man = env.full_manifest()
    man["payloads"][index]["installed_size"] = len(env.payloads[index].raw) - 1
    b = env.craft(manifest=man)
    env.assert_rejected_everywhere(b, EXIT_PAYLOAD, PAYLOAD_REJECT + q(f'"{env.payloads[index].name}"'),
                                   r"installed_size|expand|larger|exceeds")


@pytest.mark.parametrize("index", [1, 2, 3], ids=["zstd", "xz", "gzip"])
def test_small_installed_size_bomb(env, index):
    """A tiny installed_size against a well-compressed payload (a decompression bomb in miniature)."""
    raw = b"\0" * (4 * 1024 * 1024)
    tool = {1: "zstd", 2: "xz", 3: "gzip"}[index]
    stored = subprocess.run([tool, "-c", "-q"], input=raw, capture_output=True, check=True).stdout
    man = env.full_manifest()
    p = man["payloads"][index]
    p["size"], p["sha256"], p["installed_size"] = len(stored), sha256(stored), 1000
    pl = [(q_.file, q_.stored) for q_ in env.payloads]
    pl[index] = (pl[index][0], stored)
    b = env.craft(manifest=man, payloads=pl)
    env.assert_rejected_everywhere(b, EXIT_PAYLOAD, PAYLOAD_REJECT + q(f'"{env.payloads[index].name}"'),
                                   r"installed_size|expand|larger|exceeds")


@pytest.mark.parametrize("kind", ["garbage", "truncated-stream"])
@pytest.mark.parametrize("index", [1, 2, 3], ids=["zstd", "xz", "gzip"])
def test_corrupt_compressed_with_matching_hash(env, index, kind):
    """The stored bytes match size and sha256, but do not decompress."""
    good = env.payloads[index].stored
    stored = os.urandom(5000) if kind == "garbage" else good[:len(good) // 2]
    man = env.full_manifest()
    p = man["payloads"][index]
    p["size"], p["sha256"] = len(stored), sha256(stored)
    pl = [(q_.file, q_.stored) for q_ in env.payloads]
    pl[index] = (pl[index][0], stored)
    b = env.craft(manifest=man, payloads=pl)
    env.assert_rejected_everywhere(b, EXIT_PAYLOAD, PAYLOAD_REJECT + q(f'"{env.payloads[index].name}"'),
                                   r"decompress|corrupt|truncat|invalid|damaged|unexpected end|not (zstd|xz|gzip) data")


@pytest.mark.parametrize("index", [1, 2, 3], ids=["zstd", "xz", "gzip"])
def test_wrong_compression_declared(env, index):
    """Valid data of another compression than declared: fails to decompress."""
    other = {1: "gzip", 2: "zstd", 3: "xz"}[index]
    man = env.full_manifest()
    man["payloads"][index]["compression"] = other
    b = env.craft(manifest=man)
    env.assert_rejected_everywhere(b, EXIT_PAYLOAD, PAYLOAD_REJECT + q(f'"{env.payloads[index].name}"'))


@pytest.mark.parametrize("kind", ["random", "text", "gzip-of-bundle", "zstd-of-bundle", "xz-of-bundle"])
def test_not_a_tar(env, kind):
    b = env.create()
    blob = env.path(b).read_bytes()
    data = {
        "random": lambda: os.urandom(20000),
        "text": lambda: b"this is not a bundle\n" * 100,
        "gzip-of-bundle": lambda: gzip_bytes(blob),
        "zstd-of-bundle": lambda: subprocess.run(["zstd", "-c", "-q"], input=blob, capture_output=True,
                                                 check=True).stdout,
        "xz-of-bundle": lambda: subprocess.run(["xz", "-c", "-q"], input=blob, capture_output=True,
                                               check=True).stdout,
    }[kind]()
    env.path("n.upk").write_bytes(data)
    env.assert_rejected_everywhere("n.upk", EXIT_FORMAT, FORMAT_REJECT)


def test_other_tar_format_not_pax(env):
    """GNU tar headers (magic "ustar  ") without long names or sparse files: upkeep-bundle(5) lists what
    the reader rejects, and this is not on the list (only GNU long-name members and sparse files are).
    The reader accepts them, and then checks every byte as in any bundle."""
    m, s, pl = _std_members(env)
    out = b""
    for name, data in [m, s] + pl:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        out += info.tobuf(format=tarfile.GNU_FORMAT) + data + b"\0" * (-len(data) % 512)
    env.path("g.upk").write_bytes(out + b"\0" * 1024)
    assert_verified(env, "g.upk")


def test_oversized_manifest(env):
    """A manifest member over 1 MiB is refused before it is read."""
    big = b" " * (1024 * 1024 + 1)
    m, s, pl = _std_members(env)
    b = env.craft(members=[(MANIFEST, big), s] + pl)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q(MANIFEST), r"1 ?MiB|too (large|big)|at most 1048576")


def test_oversized_signature(env):
    m, s, pl = _std_members(env)
    b = env.craft(members=[m, (SIGNATURE, os.urandom(64 * 1024 + 1))] + pl)
    env.assert_rejected_everywhere(b, EXIT_FORMAT, FORMAT_REJECT, q(SIGNATURE), r"64 ?KiB|too (large|big)|at most 65536")


# ======================================================================================================
# Usage and files


@pytest.mark.parametrize("args", [
    ["bundle"],
    ["bundle", "frobnicate"],
    ["frobnicate"],
    ["bundle", "verify"],
    ["bundle", "info"],
    ["bundle", "create"],
    ["bundle", "verify", "--frob", "b.upk"],
    ["bundle", "verify", "b.upk"],                 # no --keyring
    ["bundle", "extract", "b.upk", "out"],         # no --keyring
    ["bundle", "extract", "--keyring", "K", "b.upk"],  # no DIR
    ["bundle", "verify", "--keyring"],             # option without its argument
    ["bundle", "create", "--cert", "c.pem", "--key", "k.pem", "-o", "x.upk"],  # no --manifest
], ids=lambda a: " ".join(a) or "none")
def test_usage(env, args):
    env.create()
    args = [str(env.keyring) if a == "K" else a for a in args]
    res = env.run(*args)
    assert_status(res, EXIT_USAGE)
    assert res.stderr.strip(), "a usage error must say what is wrong\n" + describe(res)
    assert not env.path("out").exists()
    assert not env.path("x.upk").exists()


@pytest.mark.parametrize("missing", ["keyring", "extract"])
def test_usage_names_missing_keyring(env, missing):
    args = ["bundle", "verify", "b.upk"] if missing == "keyring" else ["bundle", "extract", "b.upk", "out"]
    env.create()
    assert_status(env.run(*args), EXIT_USAGE, r"--keyring|keyring")


@pytest.mark.parametrize("cmd", ["info", "verify", "extract"])
def test_missing_bundle_file(env, cmd):
    args = {"info": ["bundle", "info", "nope.upk"],
            "verify": ["bundle", "verify", "--keyring", env.keyring, "nope.upk"],
            "extract": ["bundle", "extract", "--keyring", env.keyring, "nope.upk", "out"]}[cmd]
    res = env.run(*args)
    assert_status(res, EXIT_FAILURE, q("nope.upk"), r"No such file|not found|does not exist")
    assert not env.path("out").exists()


@pytest.mark.parametrize("existing", [MANIFEST, SIGNATURE, "rootfs.img", "data.gz"])
def test_extract_target_exists(env, existing):
    b = env.create()
    out = env.path("out")
    out.mkdir()
    (out / existing).write_bytes(b"precious\n")
    os.utime(out / existing, (1000, 1000))
    res = env.extract(b, "out")
    assert_status(res, EXIT_FAILURE, q(existing), r"exists")
    assert os.listdir(out) == [existing], "extract left files behind"
    assert (out / existing).read_bytes() == b"precious\n"
    assert os.stat(out / existing).st_mtime == 1000


@pytest.mark.parametrize("existing", [MANIFEST, "rootfs.img", "data.gz"])
def test_extract_never_follows_symlinks(env, existing):
    """A (dangling or live) symlink in DIR pointing outside: not followed, nothing written outside."""
    b = env.create()
    outside = env.path("outside")
    outside.mkdir()
    (outside / "live").write_bytes(b"keep\n")
    out = env.path("out")
    out.mkdir()
    os.symlink("../outside/dangling", out / existing)
    other = MANIFEST if existing != MANIFEST else "rootfs.img"
    os.symlink("../outside/live", out / other)
    res = env.extract(b, "out")
    assert_status(res, EXIT_FAILURE, r"exists")
    assert sorted(os.listdir(outside)) == ["live"]
    assert (outside / "live").read_bytes() == b"keep\n"
    assert sorted(os.listdir(out)) == sorted([existing, other])
    assert os.path.islink(out / existing) and os.path.islink(out / other)


def test_extract_dir_is_a_file(env):
    b = env.create()
    env.path("out").write_bytes(b"not a folder\n")
    res = env.extract(b, "out")
    assert_status(res, EXIT_FAILURE, q("out"))
    assert env.path("out").read_bytes() == b"not a folder\n"


def test_extract_writes_only_inside_dir(env):
    """A successful extract into a nested new folder touches nothing else."""
    b = env.create()
    before = env.snapshot()
    assert_ok(env.extract(b, "out"))
    after = env.snapshot()
    added = set(after) - set(before)
    assert added == {"out"} | {os.path.join("out", n) for n in
                               [MANIFEST, SIGNATURE] + [p.file for p in env.payloads]}, added
    for k in before:
        assert after[k] == before[k], k


def test_create_missing_payload(env):
    (env.payload_dir / "config.xz").unlink()
    res = env.run(*env.create_args(out="b.upk"))
    assert_status(res, EXIT_FAILURE, q("config.xz"))
    assert sorted(os.listdir(env.tmp)) == sorted(["payloads", "manifest.json"]), "create left files"


def test_create_wrong_compression(env):
    """create decompresses a declared-compressed payload to compute installed_size: a gzip file
    declared as zstd makes it fail, and leave no output."""
    t = env.write_template()
    m = json.loads(t.read_bytes())
    m["payloads"][1]["compression"] = "gzip"   # app.tar.zst is zstd
    env.write_template(m)
    res = env.run(*env.create_args(out="b.upk", manifest=t))
    assert_rejected(res, "b.upk", EXIT_PAYLOAD, PAYLOAD_REJECT + q('"app": app.tar.zst is not gzip data'))
    assert sorted(os.listdir(env.tmp)) == sorted(["payloads", "manifest.json"]), "create left files"


def test_create_bad_template(env):
    m = json.loads(env.write_template().read_bytes())
    m["colour"] = "blue"
    t = env.write_template(m)
    res = env.run(*env.create_args(out="b.upk", manifest=t))
    assert_rejected(res, "b.upk", EXIT_MANIFEST, r"manifest: unknown key \"colour\" at top level")
    assert not env.path("b.upk").exists()


def test_create_does_not_overwrite_on_failure(env):
    """A failed create leaves an existing output untouched (temp file + rename)."""
    env.path("b.upk").write_bytes(b"old\n")
    (env.payload_dir / "data.gz").unlink()
    res = env.run(*env.create_args(out="b.upk"))
    assert res.returncode == EXIT_FAILURE, describe(res)
    assert env.path("b.upk").read_bytes() == b"old\n"
    assert sorted(os.listdir(env.tmp)) == sorted(["payloads", "manifest.json", "b.upk"])
