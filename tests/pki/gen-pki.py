#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Make the throw-away test PKI: a root CA, an intermediate CA, a set of good and deliberately bad
signer certificates, an unrelated CA, and a CRL. The file names are fixed (tests/pki/meson.build
lists them); the keys are new on every run.

    /usr/bin/python3 gen-pki.py OUTDIR

Or, from pytest: `import gen_pki; gen_pki.generate(outdir)` (load it with importlib, the file name has
a dash).

Files (all PEM, keys PKCS#8 unencrypted):
  root.{key,pem}           EC P-256 root CA, self-signed, 50 years
  keyring.pem              the root certificate only (the device keyring)
  intermediate.{key,pem}   CA signed by the root
  chain.pem                the intermediate certificate (to carry in signatures)
  keyring.crl              the intermediate's CRL listing revoked.pem, followed by an empty CRL of the
                           root (so that CRL checking also works for signer-direct)
  signer                   RSA-2048, by the intermediate, CA:FALSE, digitalSignature + codeSigning
                           (every leaf below has these too unless it says otherwise)
  signer-ec / -ed25519     P-256 / Ed25519, by the intermediate
  signer-direct            RSA-2048, signed by the root directly
  expired / notyet         validity over in the past / starting in the future
  revoked                  listed in keyring.crl
  rsa1024                  RSA-1024 key
  sha1cert                 certificate signed with SHA-1
  selfsigned               a self-signed leaf
  noeku                    no extendedKeyUsage extension
  anyeku                   extendedKeyUsage anyExtendedKeyUsage only
  serverauth               extendedKeyUsage serverAuth only
  caleaf                   CA:TRUE (keyCertSign + digitalSignature, codeSigning), used as a signer
  other-root.pem, other-signer.{key,pem}   an unrelated CA and a signer under it
"""

import datetime
import os
import sys
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)
YEAR = datetime.timedelta(days=365)


def _name(cn):
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "upkeep test PKI"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _rsa(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _ec():
    return ec.generate_private_key(ec.SECP256R1())


def _sign_hash(key):
    """The hash argument for signing with `key` (None for Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    return hashes.SHA256()


class _Cert:
    def __init__(self, key, cert):
        self.key = key
        self.cert = cert


CODE_SIGNING = [ExtendedKeyUsageOID.CODE_SIGNING]


def _build(subject_cn, key, issuer, *, ca, not_before, not_after, serial, digest=None, self_signed=False,
           eku=CODE_SIGNING):
    """Make a certificate for `key`. `issuer` is a _Cert, or None for self-signed. A leaf (ca=False)
    gets the extended key usages `eku` (None: no extendedKeyUsage extension); ca="leaf" makes a
    certificate with CA:TRUE and digitalSignature, used as a signer."""
    subject = _name(subject_cn)
    b = (x509.CertificateBuilder()
         .subject_name(subject)
         .issuer_name(subject if issuer is None else issuer.cert.subject)
         .public_key(key.public_key())
         .serial_number(serial)
         .not_valid_before(not_before)
         .not_valid_after(not_after)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    if ca == "leaf":
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=True, crl_sign=False,
                                          encipher_only=False, decipher_only=False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    elif ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        b = b.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                                          encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                                          encipher_only=False, decipher_only=False), critical=True)
        if eku is not None:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    signing_key = key if issuer is None else issuer.key
    if digest is None:
        digest = _sign_hash(signing_key)
    return _Cert(key, b.sign(private_key=signing_key, algorithm=digest))


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(c):
    return c.cert.public_bytes(serialization.Encoding.PEM)


def _write(outdir, name, data):
    path = os.path.join(outdir, name)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def generate(outdir):
    """Write the whole test PKI into `outdir` (created if missing). Returns the list of file names."""
    os.makedirs(outdir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    past = now - 10 * YEAR
    files = {}
    serial = iter(range(0x1000, 0x2000))

    def leaf(name, issuer, key=None, not_before=None, not_after=None, digest=None, eku=CODE_SIGNING,
             ca=False):
        k = key if key is not None else _rsa()
        c = _build("upkeep test " + name, k, issuer, ca=ca,
                   not_before=not_before or now - DAY, not_after=not_after or now + 20 * YEAR,
                   serial=next(serial), digest=digest, eku=eku)
        files[name + ".key"] = _key_pem(k)
        files[name + ".pem"] = _cert_pem(c)
        return c

    root = _build("upkeep test root CA", _ec(), None, ca=True, not_before=past,
                  not_after=now + 50 * YEAR, serial=next(serial))
    files["root.key"] = _key_pem(root.key)
    files["root.pem"] = _cert_pem(root)
    files["keyring.pem"] = _cert_pem(root)

    inter = _build("upkeep test intermediate CA", _ec(), root, ca=True, not_before=past,
                   not_after=now + 40 * YEAR, serial=next(serial))
    files["intermediate.key"] = _key_pem(inter.key)
    files["intermediate.pem"] = _cert_pem(inter)
    files["chain.pem"] = _cert_pem(inter)

    leaf("signer", inter)
    leaf("signer-ec", inter, key=_ec())
    leaf("signer-ed25519", inter, key=ed25519.Ed25519PrivateKey.generate())
    leaf("signer-direct", root)
    leaf("expired", inter, not_before=now - 3 * YEAR, not_after=now - YEAR)
    leaf("notyet", inter, not_before=now + YEAR, not_after=now + 3 * YEAR)
    revoked = leaf("revoked", inter)
    leaf("rsa1024", inter, key=_rsa(1024))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SHA-1 is deprecated: that is the point of this one
        leaf("sha1cert", inter, digest=hashes.SHA1())
    # Signers that are not code signing certificates: each is refused by default.
    leaf("noeku", inter, eku=None)
    leaf("anyeku", inter, eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    leaf("serverauth", inter, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    leaf("caleaf", inter, ca="leaf")

    selfsigned_key = _rsa()
    selfsigned = _build("upkeep test selfsigned", selfsigned_key, None, ca=False, not_before=now - DAY,
                        not_after=now + 20 * YEAR, serial=next(serial))
    files["selfsigned.key"] = _key_pem(selfsigned_key)
    files["selfsigned.pem"] = _cert_pem(selfsigned)

    other_root = _build("upkeep test other root CA", _ec(), None, ca=True, not_before=past,
                        not_after=now + 50 * YEAR, serial=next(serial))
    files["other-root.pem"] = _cert_pem(other_root)
    leaf("other-signer", other_root)

    def crl(issuer, revoked_certs):
        b = (x509.CertificateRevocationListBuilder()
             .issuer_name(issuer.cert.subject)
             .last_update(now - DAY)
             .next_update(now + 40 * YEAR)
             .add_extension(x509.CRLNumber(1), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                            critical=False))
        for c in revoked_certs:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                          .serial_number(c.cert.serial_number)
                                          .revocation_date(now - DAY)
                                          .build())
        return b.sign(private_key=issuer.key, algorithm=hashes.SHA256()).public_bytes(
            serialization.Encoding.PEM)

    files["keyring.crl"] = crl(inter, [revoked]) + crl(root, [])

    for name, data in files.items():
        _write(outdir, name, data)
    return sorted(files)


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    generate(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
