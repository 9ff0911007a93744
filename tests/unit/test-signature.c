/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "signature.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fileio.h"
#include "tests.h"

static const char manifest[] = "{\"format\":1,\"compatible\":\"acme-gw\",\"version\":\"1.2.3\"}\n";
#define MANIFEST_SIZE (sizeof(manifest) - 1)

typedef struct Sig {
        uint8_t *der;
        size_t size;
} Sig;

static void sig_done(Sig *s)
{
        free(s->der);
        *s = (Sig){};
}

/* Sign the test manifest with NAME.pem/NAME.key of the test PKI; `chain` may be NULL. */
static Sig sign_with(const char *name, const char *chain)
{
        char cert[64], key[64];
        UpkErr *e = &(UpkErr){};
        Sig s = {};

        snprintf(cert, sizeof(cert), "%s.pem", name);
        snprintf(key, sizeof(key), "%s.key", name);
        ASSERT_OK_E(signature_sign(manifest, MANIFEST_SIZE, test_pki(cert), test_pki(key),
                                   chain ? test_pki(chain) : NULL, &s.der, &s.size, e),
                    e);
        ASSERT_TRUE(s.size > 0);
        return s;
}

static int verify(const Sig *s, const char *crl, UpkErr *e)
{
        return signature_verify(manifest, MANIFEST_SIZE, s->der, s->size, test_pki("keyring.pem"),
                                crl ? test_pki(crl) : NULL, 0, NULL, e);
}

/* The signature must be rejected as a signature problem whose message holds `substr`. */
static void assert_rejected(const Sig *s, const char *crl, const char *substr)
{
        UpkErr *e = &(UpkErr){};

        ASSERT_UPK_ERR(verify(s, crl, e), e, -EBADMSG, UPK_ERR_SIGNATURE, substr);
        ASSERT_EQ(ERR_peek_error(), 0);
}

static void assert_signed_by(const char *name, const char *chain, const char *want_cn,
                             const char *want_issuer, const char *want_digest)
{
        Sig s = sign_with(name, chain);
        SignatureSigner signer = {};
        UpkErr *e = &(UpkErr){};

        ASSERT_OK_E(signature_verify(manifest, MANIFEST_SIZE, s.der, s.size, test_pki("keyring.pem"), NULL,
                                     0, &signer, e),
                    e);
        ASSERT_TRUE(strstr(signer.subject, want_cn) != NULL);
        ASSERT_TRUE(strstr(signer.subject, "O=upkeep test PKI") != NULL);
        ASSERT_TRUE(strstr(signer.issuer, want_issuer) != NULL);
        ASSERT_STREQ(signer.digest, want_digest);
        ASSERT_TRUE(strlen(signer.serial) > 0);
        ASSERT_TRUE(strspn(signer.serial, "0123456789abcdef") == strlen(signer.serial));
        ASSERT_EQ(ERR_peek_error(), 0);
        signature_signer_done(&signer);
        ASSERT_TRUE(signer.subject == NULL && signer.digest == NULL);
        signature_signer_done(&signer); /* twice is harmless */
        sig_done(&s);
}

TEST(sign_verify_rsa_with_chain)
{
        assert_signed_by("signer", "chain.pem", "CN=upkeep test signer,", "CN=upkeep test intermediate CA",
                         "sha256");
}

TEST(sign_verify_ec)
{
        assert_signed_by("signer-ec", "chain.pem", "CN=upkeep test signer-ec",
                         "CN=upkeep test intermediate CA", "sha256");
}

TEST(sign_verify_ed25519)
{
        assert_signed_by("signer-ed25519", "chain.pem", "CN=upkeep test signer-ed25519",
                         "CN=upkeep test intermediate CA", "sha512");
}

TEST(sign_verify_direct_without_chain)
{
        assert_signed_by("signer-direct", NULL, "CN=upkeep test signer-direct", "CN=upkeep test root CA",
                         "sha256");
}

TEST(signer_is_optional_and_untouched_on_failure)
{
        Sig s = sign_with("signer", "chain.pem");
        SignatureSigner signer = { .subject = (char *)"sentinel" };
        UpkErr *e = &(UpkErr){};

        ASSERT_OK_E(verify(&s, NULL, e), e);
        s.der[s.size - 1] ^= 0x01;
        ASSERT_ERR(signature_verify(manifest, MANIFEST_SIZE, s.der, s.size, test_pki("keyring.pem"), NULL, 0,
                                    &signer, e),
                   -EBADMSG);
        ASSERT_STREQ(signer.subject, "sentinel");
        sig_done(&s);
}

TEST(deterministic_rsa_and_ed25519)
{
        const char *names[] = { "signer", "signer-ed25519" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                Sig a = sign_with(names[i], "chain.pem"), b = sign_with(names[i], "chain.pem");

                ASSERT_EQ(a.size, b.size);
                ASSERT_TRUE(memcmp(a.der, b.der, a.size) == 0);
                sig_done(&a);
                sig_done(&b);
        }
}

TEST(different_data)
{
        const char *names[] = { "signer", "signer-ec", "signer-ed25519" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                Sig s = sign_with(names[i], "chain.pem");
                char other[sizeof(manifest)];
                UpkErr *e = &(UpkErr){};

                for (size_t off = 0; off < MANIFEST_SIZE; off += 17) {
                        memcpy(other, manifest, sizeof(manifest));
                        other[off] ^= 0x20;
                        ASSERT_UPK_ERR(signature_verify(other, MANIFEST_SIZE, s.der, s.size,
                                                        test_pki("keyring.pem"), NULL, 0, NULL, e),
                                       e, -EBADMSG, UPK_ERR_SIGNATURE,
                                       "signature does not match the manifest");
                }
                /* One byte less is different data too. */
                ASSERT_UPK_ERR(signature_verify(manifest, MANIFEST_SIZE - 1, s.der, s.size,
                                                test_pki("keyring.pem"), NULL, 0, NULL, e),
                               e, -EBADMSG, UPK_ERR_SIGNATURE, "signature does not match the manifest");
                sig_done(&s);
        }
}

/* Nothing signs two parts of a SignedData: the version numbers (of SignedData and of each SignerInfo) and
 * the digestAlgorithms set, which is only a hint for one-pass hashing (OpenSSL uses it for RSA and ECDSA,
 * upkeep's Ed25519 path does not). Changing them changes no meaning. Every other flipped byte must be
 * refused, whatever the reason given. */
static bool flip_may_pass(const Sig *s, size_t off, bool eddsa)
{
        size_t set_end;

        /* INTEGER 1, a version. */
        if (off >= 2 && s->der[off - 2] == 0x02 && s->der[off - 1] == 0x01 && s->der[off] == 0x01)
                return true;
        /* ContentInfo, [0], SignedData, version: four fixed headers, then the digestAlgorithms SET. */
        ASSERT_EQ(s->der[26], 0x31);
        set_end = 28 + s->der[27];
        return eddsa && off >= 26 && off < set_end;
}

TEST(every_flipped_der_byte_is_rejected)
{
        const char *names[] = { "signer", "signer-ec", "signer-ed25519" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                Sig s = sign_with(names[i], "chain.pem");
                UpkErr *e = &(UpkErr){};
                size_t passed = 0;

                for (size_t off = 0; off < s.size; off++) {
                        bool may_pass = flip_may_pass(&s, off, i == 2);

                        s.der[off] ^= 0x01;
                        upk_err_clear(e);
                        int r = verify(&s, NULL, e);
                        if (r >= 0 && may_pass)
                                passed++;
                        else if (r != -EBADMSG || e->kind != UPK_ERR_SIGNATURE || isempty(e->msg))
                                test_fail("%s: flipping byte %zu of %zu: r=%d kind=%d \"%s\"", names[i], off,
                                          s.size, r, e->kind, e->msg);
                        s.der[off] ^= 0x01;
                }
                ASSERT_TRUE(passed <= 20);
                /* The last bytes are the signature value itself. */
                s.der[s.size - 1] ^= 0x80;
                assert_rejected(&s, NULL, "signature does not match the manifest");
                sig_done(&s);
        }
}

TEST(empty_signature)
{
        Sig s = { .der = (uint8_t *)"", .size = 0 };
        assert_rejected(&s, NULL, "signature is empty");
}

TEST(oversized_signature)
{
        Sig s = { .der = calloc(1, SIGNATURE_SIZE_MAX + 1), .size = SIGNATURE_SIZE_MAX + 1 };
        assert_rejected(&s, NULL, "more than the 65536 allowed");
        free(s.der);
}

TEST(garbage_signature)
{
        uint8_t junk[300];

        for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (uint8_t)(i * 37 + 11);
        Sig s = { .der = junk, .size = sizeof(junk) };
        assert_rejected(&s, NULL, "not a DER CMS structure");

        /* A PEM signature is not DER either. */
        static const char pem[] = "-----BEGIN CMS-----\nMIIB\n-----END CMS-----\n";
        s = (Sig){ .der = (uint8_t *)pem, .size = sizeof(pem) - 1 };
        assert_rejected(&s, NULL, "not a DER CMS structure");
}

TEST(trailing_garbage)
{
        Sig s = sign_with("signer", "chain.pem");
        uint8_t *p = realloc(s.der, s.size + 3);

        ASSERT_TRUE(p);
        s.der = p;
        memcpy(s.der + s.size, "\0\0\0", 3);
        s.size += 3;
        assert_rejected(&s, NULL, "trailing garbage");
        sig_done(&s);
}

/* Test helpers that make CMS structures upkeep would never make, straight with OpenSSL. */
static X509 *read_cert(const char *name)
{
        BIO *b = BIO_new_file(test_pki(name), "r");
        X509 *x;

        ASSERT_TRUE(b);
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        ASSERT_TRUE(x);
        BIO_free(b);
        return x;
}

static EVP_PKEY *read_key(const char *name)
{
        BIO *b = BIO_new_file(test_pki(name), "r");
        EVP_PKEY *k;

        ASSERT_TRUE(b);
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        ASSERT_TRUE(k);
        BIO_free(b);
        return k;
}

static Sig cms_to_sig(CMS_ContentInfo *cms)
{
        unsigned char *der = NULL;
        int len = i2d_CMS_ContentInfo(cms, &der);
        Sig s;

        ASSERT_TRUE(len > 0);
        s.der = malloc((size_t)len);
        ASSERT_TRUE(s.der);
        memcpy(s.der, der, (size_t)len);
        s.size = (size_t)len;
        OPENSSL_free(der);
        CMS_ContentInfo_free(cms);
        return s;
}

/* Sign the manifest with "signer" and digest `md`; `sigalg_nid`, when set, overrides the signature
 * algorithm identifier written in the SignerInfo. */
static Sig openssl_sign(const EVP_MD *md, unsigned flags, int sigalg_nid)
{
        X509 *cert = read_cert("signer.pem"), *inter = read_cert("chain.pem");
        EVP_PKEY *key = read_key("signer.key");
        BIO *in = BIO_new_mem_buf(manifest, (int)MANIFEST_SIZE);
        CMS_ContentInfo *cms;
        CMS_SignerInfo *si;

        cms = CMS_sign(NULL, NULL, NULL, NULL, flags | CMS_PARTIAL);
        ASSERT_TRUE(cms);
        ASSERT_TRUE(CMS_add1_cert(cms, inter) == 1);
        si = CMS_add1_signer(cms, cert, key, md, flags);
        ASSERT_TRUE(si);
        if (sigalg_nid != NID_undef) {
                X509_ALGOR *alg = NULL;
                CMS_SignerInfo_get0_algs(si, NULL, NULL, NULL, &alg);
                ASSERT_TRUE(X509_ALGOR_set0(alg, OBJ_nid2obj(sigalg_nid), V_ASN1_NULL, NULL) == 1);
        }
        ASSERT_TRUE(CMS_final(cms, in, NULL, flags) == 1);
        BIO_free(in);
        X509_free(cert);
        X509_free(inter);
        EVP_PKEY_free(key);
        return cms_to_sig(cms);
}

TEST(no_signer)
{
        BIO *in = BIO_new_mem_buf(manifest, (int)MANIFEST_SIZE);
        CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, in, CMS_PARTIAL | CMS_DETACHED | CMS_BINARY);
        Sig s;

        ASSERT_TRUE(cms);
        BIO_free(in);
        s = cms_to_sig(cms);
        assert_rejected(&s, NULL, "contains no signer");
        sig_done(&s);
}

TEST(not_detached)
{
        X509 *cert = read_cert("signer.pem");
        EVP_PKEY *key = read_key("signer.key");
        BIO *in = BIO_new_mem_buf(manifest, (int)MANIFEST_SIZE);
        CMS_ContentInfo *cms = CMS_sign(cert, key, NULL, in, CMS_BINARY | CMS_NOATTR);
        Sig s;

        ASSERT_TRUE(cms);
        BIO_free(in);
        X509_free(cert);
        EVP_PKEY_free(key);
        s = cms_to_sig(cms);
        assert_rejected(&s, NULL, "detached signature is required");
        sig_done(&s);
}

TEST(signed_attributes_from_other_tools_are_accepted)
{
        /* What `openssl cms -sign -binary` makes by default: signingTime, contentType, messageDigest. */
        Sig s = openssl_sign(EVP_sha256(), CMS_DETACHED | CMS_BINARY, NID_undef);
        UpkErr *e = &(UpkErr){};

        ASSERT_OK_E(verify(&s, NULL, e), e);
        sig_done(&s);
}

TEST(sha1_digest)
{
        Sig s = openssl_sign(EVP_sha1(), CMS_DETACHED | CMS_BINARY | CMS_NOATTR, NID_undef);
        assert_rejected(&s, NULL, "digest algorithm sha1 is not accepted");
        sig_done(&s);

        s = openssl_sign(EVP_sha1(), CMS_DETACHED | CMS_BINARY, NID_undef);
        assert_rejected(&s, NULL, "digest algorithm sha1 is not accepted");
        sig_done(&s);
}

TEST(md5_digest)
{
        Sig s = openssl_sign(EVP_md5(), CMS_DETACHED | CMS_BINARY | CMS_NOATTR, NID_undef);
        assert_rejected(&s, NULL, "digest algorithm md5 is not accepted");
        sig_done(&s);
}

TEST(sha1_signature_algorithm)
{
        Sig s = openssl_sign(EVP_sha256(), CMS_DETACHED | CMS_BINARY | CMS_NOATTR,
                             NID_sha1WithRSAEncryption);
        assert_rejected(&s, NULL, "signature algorithm sha1WithRSAEncryption is not accepted");
        sig_done(&s);

        s = openssl_sign(EVP_sha256(), CMS_DETACHED | CMS_BINARY | CMS_NOATTR, NID_md5WithRSAEncryption);
        assert_rejected(&s, NULL, "signature algorithm md5WithRSAEncryption is not accepted");
        sig_done(&s);
}

TEST(intermediate_not_carried)
{
        Sig s = sign_with("signer", NULL);
        assert_rejected(
                &s, NULL,
                "\"CN=upkeep test signer,O=upkeep test PKI,C=DE\": unable to get local issuer certificate");
        sig_done(&s);
}

TEST(intermediate_in_certificate_file)
{
        /* The certificate file may hold the chain after the signer's certificate. */
        _cleanup_free_ char *a = NULL, *b = NULL;
        size_t na, nb;
        UpkErr *e = &(UpkErr){};
        Sig s = {};

        ASSERT_OK(read_full_file(test_pki("signer.pem"), 1 << 20, &a, &na));
        ASSERT_OK(read_full_file(test_pki("chain.pem"), 1 << 20, &b, &nb));
        test_write_file("both.pem", a, na);
        FILE *f = fopen("both.pem", "a");
        ASSERT_TRUE(f && fwrite(b, 1, nb, f) == nb && fclose(f) == 0);
        ASSERT_OK_E(signature_sign(manifest, MANIFEST_SIZE, "both.pem", test_pki("signer.key"), NULL, &s.der,
                                   &s.size, e),
                    e);
        ASSERT_OK_E(verify(&s, NULL, e), e);
        sig_done(&s);
}

TEST(other_ca)
{
        Sig s = sign_with("other-signer", NULL);
        assert_rejected(&s, NULL,
                        "\"CN=upkeep test other-signer,O=upkeep test PKI,C=DE\": unable to get local issuer "
                        "certificate");
        sig_done(&s);

        /* Carrying the other root along does not make it trusted. */
        s = sign_with("other-signer", "other-root.pem");
        assert_rejected(
                &s, NULL,
                "self-signed certificate in certificate chain (certificate \"CN=upkeep test other root CA");
        sig_done(&s);
}

TEST(selfsigned)
{
        Sig s = sign_with("selfsigned", NULL);
        assert_rejected(&s, NULL, "self-signed certificate");
        sig_done(&s);
}

TEST(expired)
{
        Sig s = sign_with("expired", "chain.pem");
        assert_rejected(&s, NULL,
                        "\"CN=upkeep test expired,O=upkeep test PKI,C=DE\": certificate has expired");
        sig_done(&s);
}

TEST(not_yet_valid)
{
        Sig s = sign_with("notyet", "chain.pem");
        assert_rejected(&s, NULL, "certificate is not yet valid");
        sig_done(&s);
}

TEST(revoked)
{
        Sig s = sign_with("revoked", "chain.pem");
        UpkErr *e = &(UpkErr){};

        assert_rejected(&s, "keyring.crl",
                        "\"CN=upkeep test revoked,O=upkeep test PKI,C=DE\": certificate revoked");
        /* Without a CRL nothing says it is revoked. */
        ASSERT_OK_E(verify(&s, NULL, e), e);
        sig_done(&s);
}

TEST(crl_keeps_good_signers)
{
        const char *names[] = { "signer", "signer-direct" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                Sig s = sign_with(names[i], "chain.pem");
                UpkErr *e = &(UpkErr){};

                ASSERT_OK_E(verify(&s, "keyring.crl", e), e);
                sig_done(&s);
        }
}

TEST(rsa1024)
{
        Sig s = sign_with("rsa1024", "chain.pem");
        assert_rejected(&s, NULL, "RSA key of 1024 bits is too small");
        sig_done(&s);
}

TEST(sha1_signed_certificate)
{
        Sig s = sign_with("sha1cert", "chain.pem");
        assert_rejected(&s, NULL,
                        "\"CN=upkeep test sha1cert,O=upkeep test PKI,C=DE\": CA signature digest algorithm "
                        "too weak");
        sig_done(&s);
}

/* Signers that are not code signing certificates: name, the reason refused by default, and whether
 * SIGNATURE_ALLOW_ANY_EKU accepts it. */
static const struct {
        const char *name, *reason;
        bool any_eku_accepts;
} wrong_signers[] = {
        { "noeku", "it has no extended key usage; the codeSigning extended key usage is required", true },
        { "anyeku", "its extended key usage is anyExtendedKeyUsage, not codeSigning", true },
        { "serverauth", "its extended key usage does not allow codeSigning", false },
        { "caleaf", "it is a CA certificate (basicConstraints CA:TRUE)", false },
};

TEST(signer_must_be_a_code_signing_leaf)
{
        for (size_t i = 0; i < ELEMENTSOF(wrong_signers); i++) {
                Sig s = sign_with(wrong_signers[i].name, "chain.pem");
                UpkErr *e = &(UpkErr){};
                char subject[128], cert[64];

                snprintf(subject, sizeof(subject),
                         "signer certificate \"CN=upkeep test %s,O=upkeep test PKI,C=DE\": ",
                         wrong_signers[i].name);
                assert_rejected(&s, NULL, subject);
                assert_rejected(&s, NULL, wrong_signers[i].reason);

                /* allow-any-eku: accepted, or refused for the same reason. */
                upk_err_clear(e);
                int r = signature_verify(manifest, MANIFEST_SIZE, s.der, s.size, test_pki("keyring.pem"),
                                         NULL, SIGNATURE_ALLOW_ANY_EKU, NULL, e);
                if (wrong_signers[i].any_eku_accepts)
                        ASSERT_OK_E(r, e);
                else {
                        ASSERT_EQ(r, -EBADMSG);
                        ASSERT_TRUE(strstr(e->msg, wrong_signers[i].reason) != NULL);
                }

                /* What bundle create warns with: the same verdict, without a signature. */
                snprintf(cert, sizeof(cert), "%s.pem", wrong_signers[i].name);
                ASSERT_UPK_ERR(signature_check_signer(test_pki(cert), 0, e), e, -EBADMSG, UPK_ERR_SIGNATURE,
                               wrong_signers[i].reason);
                r = signature_check_signer(test_pki(cert), SIGNATURE_ALLOW_ANY_EKU, e);
                ASSERT_EQ(r, wrong_signers[i].any_eku_accepts ? 0 : -EBADMSG);
                ASSERT_EQ(ERR_peek_error(), 0);
                sig_done(&s);
        }
}

TEST(check_signer_accepts_good_signers)
{
        const char *names[] = { "signer.pem", "signer-ec.pem", "signer-ed25519.pem", "signer-direct.pem" };
        UpkErr *e = &(UpkErr){};

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                ASSERT_OK_E(signature_check_signer(test_pki(names[i]), 0, e), e);
                ASSERT_OK_E(signature_check_signer(test_pki(names[i]), SIGNATURE_ALLOW_ANY_EKU, e), e);
        }
        ASSERT_UPK_ERR(signature_check_signer("missing.pem", 0, e), e, -ENOENT, UPK_ERR_IO,
                       "cannot read certificate \"missing.pem\"");
        /* The root CA itself is no signer. */
        ASSERT_UPK_ERR(signature_check_signer(test_pki("root.pem"), SIGNATURE_ALLOW_ANY_EKU, e), e, -EBADMSG,
                       UPK_ERR_SIGNATURE, "it is a CA certificate");
}

TEST(keyring_missing)
{
        Sig s = sign_with("signer", "chain.pem");
        UpkErr *e = &(UpkErr){};

        ASSERT_UPK_ERR(signature_verify(manifest, MANIFEST_SIZE, s.der, s.size, "nonexistent.pem", NULL, 0,
                                        NULL, e),
                       e, -ENOENT, UPK_ERR_IO, "cannot read keyring \"nonexistent.pem\"");
        ASSERT_UPK_ERR(signature_verify(manifest, MANIFEST_SIZE, s.der, s.size, test_pki("keyring.pem"),
                                        "none.crl", 0, NULL, e),
                       e, -ENOENT, UPK_ERR_IO, "cannot read CRL file \"none.crl\"");
        sig_done(&s);
}

TEST(keyring_without_certificate)
{
        static const char text[] = "not a certificate\n";
        Sig s = sign_with("signer", "chain.pem");
        UpkErr *e = &(UpkErr){};

        test_write_file("empty.pem", "", 0);
        ASSERT_UPK_ERR(
                signature_verify(manifest, MANIFEST_SIZE, s.der, s.size, "empty.pem", NULL, 0, NULL, e), e,
                -EBADMSG, UPK_ERR_CONFIG, "keyring \"empty.pem\" contains no certificate");
        test_write_file("text.pem", text, sizeof(text) - 1);
        ASSERT_UPK_ERR(
                signature_verify(manifest, MANIFEST_SIZE, s.der, s.size, "text.pem", NULL, 0, NULL, e), e,
                -EBADMSG, UPK_ERR_CONFIG, "keyring \"text.pem\" contains no certificate");
        /* A key is not a certificate either; nor is a CRL file without a CRL. */
        ASSERT_UPK_ERR(signature_verify(manifest, MANIFEST_SIZE, s.der, s.size, test_pki("root.key"), NULL,
                                        0, NULL, e),
                       e, -EBADMSG, UPK_ERR_CONFIG, "contains no certificate");
        ASSERT_UPK_ERR(signature_verify(manifest, MANIFEST_SIZE, s.der, s.size, test_pki("keyring.pem"),
                                        test_pki("keyring.pem"), 0, NULL, e),
                       e, -EBADMSG, UPK_ERR_CONFIG, "contains no CRL");
        ASSERT_EQ(ERR_peek_error(), 0);
        sig_done(&s);
}

TEST(wrong_keyring)
{
        Sig s = sign_with("signer", "chain.pem");
        UpkErr *e = &(UpkErr){};

        ASSERT_UPK_ERR(signature_verify(manifest, MANIFEST_SIZE, s.der, s.size, test_pki("other-root.pem"),
                                        NULL, 0, NULL, e),
                       e, -EBADMSG, UPK_ERR_SIGNATURE, "unable to get local issuer certificate");
        sig_done(&s);
}

TEST(sign_key_not_matching)
{
        uint8_t *der = (uint8_t *)"untouched";
        size_t size = 42;
        UpkErr *e = &(UpkErr){};

        ASSERT_UPK_ERR(signature_sign(manifest, MANIFEST_SIZE, test_pki("signer.pem"),
                                      test_pki("signer-ec.key"), NULL, &der, &size, e),
                       e, -EBADMSG, UPK_ERR_SIGNATURE, "does not belong to certificate");
        ASSERT_TRUE(strstr(e->msg, "signer-ec.key") != NULL);
        ASSERT_STREQ((char *)der, "untouched");
        ASSERT_EQ(size, 42);
        ASSERT_EQ(ERR_peek_error(), 0);
}

TEST(sign_missing_files)
{
        uint8_t *der = NULL;
        size_t size = 0;
        UpkErr *e = &(UpkErr){};

        ASSERT_UPK_ERR(signature_sign(manifest, MANIFEST_SIZE, "missing.pem", test_pki("signer.key"), NULL,
                                      &der, &size, e),
                       e, -ENOENT, UPK_ERR_IO, "cannot read certificate \"missing.pem\"");
        ASSERT_UPK_ERR(signature_sign(manifest, MANIFEST_SIZE, test_pki("signer.pem"), "missing.key", NULL,
                                      &der, &size, e),
                       e, -ENOENT, UPK_ERR_IO, "cannot read private key \"missing.key\"");
        ASSERT_UPK_ERR(signature_sign(manifest, MANIFEST_SIZE, test_pki("signer.pem"),
                                      test_pki("signer.pem"), NULL, &der, &size, e),
                       e, -EBADMSG, UPK_ERR_SIGNATURE, "is not an unencrypted PEM private key");
        ASSERT_TRUE(der == NULL);
}
