/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "signature.h"

#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#include "fileio.h"
#include "openssl-util.h"

/* The signed content is a manifest (at most 1 MiB); anything far larger is a caller's mistake. It also
 * keeps the length inside the int that OpenSSL's memory BIOs take. */
#define SIGNATURE_DATA_SIZE_MAX (16u * 1024u * 1024u)
/* Certificates carried in one signature, and signers in it. */
#define SIGNATURE_CERTS_MAX   32
#define SIGNATURE_SIGNERS_MAX 8
/* Verification depth of a chain from the signer to a keyring CA. */
#define SIGNATURE_CHAIN_DEPTH_MAX 8
#define RSA_BITS_MIN              2048

/* Ed25519 and OpenSSL 3.0: its CMS code can neither make nor check EdDSA SignerInfos (it insists on a
 * pre-hash, see openssl/openssl#11915). RFC 8419 is simple for the case we use (no signed attributes):
 * digestAlgorithm is SHA-512, signatureAlgorithm id-Ed25519 without parameters, and the signature is
 * PureEdDSA over the content itself. So for Ed25519 keys upkeep fills in and checks the signature value
 * itself and lets OpenSSL do the rest (structure, certificates, chain). */

void signature_signer_done(SignatureSigner *s)
{
        if (!s)
                return;
        free(s->subject);
        free(s->issuer);
        free(s->serial);
        free(s->digest);
        *s = (SignatureSigner){};
}

/* Never ask a terminal for a pass phrase: an encrypted key is an error. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
        (void)buf;
        (void)size;
        (void)rwflag;
        (void)u;
        return -1;
}

static char *name_to_string(const X509_NAME *name)
{
        _cleanup_(BIO_free_allp) BIO *b = BIO_new(BIO_s_mem());
        char *p, *s;
        long n;

        if (!b || X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) < 0)
                return NULL;
        n = BIO_get_mem_data(b, &p);
        if (n < 0)
                return NULL;
        s = malloc((size_t)n + 1);
        if (!s)
                return NULL;
        memcpy(s, p, (size_t)n);
        s[n] = 0;
        return s;
}

/* The subject for messages; never NULL. */
static const char *subject_of(X509 *x, char *buf, size_t size)
{
        _cleanup_free_ char *s = name_to_string(X509_get_subject_name(x));

        snprintf(buf, size, "%s", s ?: "(unprintable)");
        return buf;
}

static char *serial_to_string(const ASN1_INTEGER *serial)
{
        BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
        char *hex, *s;

        if (!bn)
                return NULL;
        hex = BN_bn2hex(bn);
        BN_free(bn);
        if (!hex)
                return NULL;
        s = strdup(hex);
        OPENSSL_free(hex);
        if (!s)
                return NULL;
        for (char *c = s; *c; c++)
                if (*c >= 'A' && *c <= 'F')
                        *c = (char)(*c - 'A' + 'a');
        return s;
}

/* Read a PEM file of at most KEYRING_SIZE_MAX bytes into a memory BIO. `what` names it in messages. */
static int read_pem_file(const char *path, const char *what, BIO **ret, UpkErr *err)
{
        _cleanup_free_ char *buf = NULL;
        size_t size;
        BIO *b;
        int r;

        r = read_full_file(path, KEYRING_SIZE_MAX, &buf, &size);
        if (r == -EFBIG)
                return upk_err(err, UPK_ERR_IO, r, "%s \"%s\" is larger than %u bytes", what, path,
                               KEYRING_SIZE_MAX);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot read %s \"%s\": %m", what, path);
        /* BIO_new_mem_buf() does not copy: copy, so that `buf` can go. */
        b = BIO_new(BIO_s_mem());
        if (!b || BIO_write(b, buf, (int)size) != (int)size) {
                BIO_free(b);
                return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory reading %s \"%s\"", what,
                               path);
        }
        *ret = b;
        return 0;
}

/* All certificates and CRLs of a PEM file. Either stack may be NULL when not wanted. */
static int load_pem_objects(const char *path, const char *what, STACK_OF(X509) * certs,
                            STACK_OF(X509_CRL) * crls, size_t *ret_n_certs, size_t *ret_n_crls, UpkErr *err)
{
        _cleanup_(BIO_free_allp) BIO *b = NULL;
        _cleanup_(x509_info_free_allp) STACK_OF(X509_INFO) *infos = NULL;
        size_t n_certs = 0, n_crls = 0;
        int r;

        r = read_pem_file(path, what, &b, err);
        if (r < 0)
                return r;
        infos = PEM_X509_INFO_read_bio(b, NULL, no_passphrase, NULL);
        if (!infos) {
                r = upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG, "%s \"%s\" is not a valid PEM file", what,
                            path);
                upk_err_append_openssl(err);
                return r;
        }
        for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
                X509_INFO *info = sk_X509_INFO_value(infos, i);

                if (info->x509) {
                        if (certs) {
                                if (!sk_X509_push(certs, info->x509))
                                        return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
                                info->x509 = NULL;
                        }
                        n_certs++;
                }
                if (info->crl) {
                        if (crls) {
                                if (!sk_X509_CRL_push(crls, info->crl))
                                        return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
                                info->crl = NULL;
                        }
                        n_crls++;
                }
        }
        ERR_clear_error();
        *ret_n_certs = n_certs;
        *ret_n_crls = n_crls;
        return 0;
}

static int load_certs(const char *path, const char *what, STACK_OF(X509) * *ret, UpkErr *err)
{
        _cleanup_(x509_free_allp) STACK_OF(X509) *certs = sk_X509_new_null();
        size_t n_certs, n_crls;
        int r;

        if (!certs)
                return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
        r = load_pem_objects(path, what, certs, NULL, &n_certs, &n_crls, err);
        if (r < 0)
                return r;
        if (n_certs == 0)
                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s \"%s\" contains no certificate", what,
                               path);
        *ret = TAKE_PTR(certs);
        return 0;
}

static int load_key(const char *path, EVP_PKEY **ret, UpkErr *err)
{
        _cleanup_(BIO_free_allp) BIO *b = NULL;
        EVP_PKEY *key;
        int r;

        r = read_pem_file(path, "private key", &b, err);
        if (r < 0)
                return r;
        key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
        if (!key) {
                r = upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                            "private key \"%s\" is not an unencrypted PEM private key", path);
                upk_err_append_openssl(err);
                return r;
        }
        *ret = key;
        return 0;
}

static bool pkey_is_ed25519(EVP_PKEY *k)
{
        return EVP_PKEY_get_id(k) == EVP_PKEY_ED25519;
}

static bool pkey_is_eddsa(EVP_PKEY *k)
{
        return EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 || EVP_PKEY_get_id(k) == EVP_PKEY_ED448;
}

/* RFC 8419: fill in the signature value of an Ed25519 SignerInfo without signed attributes. */
static int ed25519_sign_signer_info(CMS_SignerInfo *si, EVP_PKEY *key, const void *data, size_t size,
                                    UpkErr *err)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *mctx = EVP_MD_CTX_new();
        X509_ALGOR *sigalg = NULL;
        ASN1_OCTET_STRING *sig;
        unsigned char *buf;
        size_t len = 0;
        int r;

        CMS_SignerInfo_get0_algs(si, NULL, NULL, NULL, &sigalg);
        sig = CMS_SignerInfo_get0_signature(si);
        if (!mctx || !sigalg || !sig)
                return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "cannot set up the Ed25519 signature");
        if (X509_ALGOR_set0(sigalg, OBJ_nid2obj(NID_ED25519), V_ASN1_UNDEF, NULL) != 1 ||
            EVP_DigestSignInit(mctx, NULL, NULL, NULL, key) != 1 ||
            EVP_DigestSign(mctx, NULL, &len, data, size) != 1 || len == 0 || len > INT_MAX)
                goto fail;
        buf = OPENSSL_malloc(len);
        if (!buf)
                return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
        if (EVP_DigestSign(mctx, buf, &len, data, size) != 1) {
                OPENSSL_free(buf);
                goto fail;
        }
        ASN1_STRING_set0(sig, buf, (int)len);
        return 0;
fail:
        r = upk_err(err, UPK_ERR_SIGNATURE, -EIO, "Ed25519 signing failed");
        upk_err_append_openssl(err);
        return r;
}

static int signature_sign_impl(const void *data, size_t size, const char *cert_path, const char *key_path,
                               const char *chain_path, uint8_t **ret_der, size_t *ret_der_size, UpkErr *err)
{
        const unsigned flags = CMS_DETACHED | CMS_BINARY | CMS_NOATTR;
        _cleanup_(x509_free_allp) STACK_OF(X509) *certs = NULL, *chain = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        _cleanup_(BIO_free_allp) BIO *in = NULL;
        _cleanup_(openssl_bufp) unsigned char *der = NULL;
        CMS_SignerInfo *si;
        X509 *cert;
        int r, len;

        if (size > SIGNATURE_DATA_SIZE_MAX)
                return upk_err(err, UPK_ERR_SIGNATURE, -EFBIG, "data to sign is larger than %u bytes",
                               SIGNATURE_DATA_SIZE_MAX);

        r = load_certs(cert_path, "certificate", &certs, err);
        if (r < 0)
                return r;
        cert = sk_X509_value(certs, 0); /* the first one is the signer; any further ones ride along */
        r = load_key(key_path, &key, err);
        if (r < 0)
                return r;
        if (X509_check_private_key(cert, key) != 1) {
                ERR_clear_error();
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "private key \"%s\" does not belong to certificate \"%s\"", key_path,
                               cert_path);
        }
        if (chain_path) {
                r = load_certs(chain_path, "certificate chain", &chain, err);
                if (r < 0)
                        return r;
        } else {
                chain = sk_X509_new_null();
                if (!chain)
                        return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
        }
        for (int i = 1; i < sk_X509_num(certs); i++) {
                X509 *x = sk_X509_value(certs, i);
                if (!X509_up_ref(x) || !sk_X509_push(chain, x))
                        return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
        }
        if (sk_X509_num(chain) + 1 > SIGNATURE_CERTS_MAX)
                return upk_err(err, UPK_ERR_SIGNATURE, -E2BIG, "more than %d certificates to carry",
                               SIGNATURE_CERTS_MAX);

        cms = CMS_sign(NULL, NULL, chain, NULL, flags | CMS_PARTIAL);
        if (!cms)
                goto fail;
        if (pkey_is_eddsa(key)) {
                if (!pkey_is_ed25519(key))
                        return upk_err(err, UPK_ERR_SIGNATURE, -EOPNOTSUPP,
                                       "Ed448 keys are not supported (\"%s\")", key_path);
                si = CMS_add1_signer(cms, cert, key, EVP_sha512(), flags | CMS_PARTIAL);
                if (!si)
                        goto fail;
                r = ed25519_sign_signer_info(si, key, data, size, err);
                if (r < 0)
                        return r;
        } else {
                si = CMS_add1_signer(cms, cert, key, EVP_sha256(), flags);
                if (!si)
                        goto fail;
                in = BIO_new_mem_buf(data, (int)size);
                if (!in || CMS_final(cms, in, NULL, flags) != 1)
                        goto fail;
        }

        len = i2d_CMS_ContentInfo(cms, &der);
        if (len <= 0)
                goto fail;
        if ((size_t)len > SIGNATURE_SIZE_MAX)
                return upk_err(err, UPK_ERR_SIGNATURE, -E2BIG,
                               "the signature would be %d bytes, more than the %u allowed", len,
                               SIGNATURE_SIZE_MAX);
        {
                uint8_t *copy = malloc((size_t)len);
                if (!copy)
                        return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
                memcpy(copy, der, (size_t)len);
                *ret_der = copy;
                *ret_der_size = (size_t)len;
        }
        return 0;

fail:
        r = upk_err(err, UPK_ERR_SIGNATURE, -EIO, "cannot sign with certificate \"%s\"", cert_path);
        upk_err_append_openssl(err);
        return r;
}

int signature_sign(const void *data, size_t size, const char *cert_path, const char *key_path,
                   const char *chain_path, uint8_t **ret_der, size_t *ret_der_size, UpkErr *err)
{
        int r;

        ERR_clear_error();
        r = signature_sign_impl(data, size, cert_path, key_path, chain_path, ret_der, ret_der_size, err);
        ERR_clear_error();
        return r;
}

/* The keyring (trusted CAs) and optional CRLs, with the policy for chains set on the store. */
static int load_store(const char *keyring_path, const char *crl_path, X509_STORE **ret, UpkErr *err)
{
        _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
        _cleanup_(x509_free_allp) STACK_OF(X509) *cas = NULL;
        X509_VERIFY_PARAM *param;
        unsigned long vflags = 0;
        int r;

        if (!store)
                return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
        r = load_certs(keyring_path, "keyring", &cas, err);
        if (r < 0)
                return r;
        for (int i = 0; i < sk_X509_num(cas); i++)
                if (X509_STORE_add_cert(store, sk_X509_value(cas, i)) != 1) {
                        r = upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                                    "cannot add certificate %d of keyring \"%s\"", i + 1, keyring_path);
                        upk_err_append_openssl(err);
                        return r;
                }

        if (crl_path) {
                STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
                size_t n_certs, n_crls = 0;

                if (!crls)
                        return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
                r = load_pem_objects(crl_path, "CRL file", NULL, crls, &n_certs, &n_crls, err);
                for (int i = 0; r >= 0 && i < sk_X509_CRL_num(crls); i++)
                        if (X509_STORE_add_crl(store, sk_X509_CRL_value(crls, i)) != 1) {
                                r = upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG, "cannot add CRL %d of \"%s\"",
                                            i + 1, crl_path);
                                upk_err_append_openssl(err);
                        }
                sk_X509_CRL_pop_free(crls, X509_CRL_free);
                if (r < 0)
                        return r;
                if (n_crls == 0)
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "CRL file \"%s\" contains no CRL",
                                       crl_path);
                vflags |= X509_V_FLAG_CRL_CHECK;
        }

        param = X509_STORE_get0_param(store);
        /* Level 2: at least 112 bits of security, so RSA and DSA keys of 2048 bits and more, and no MD5 or
         * SHA-1 signatures on the certificates of the chain. Any purpose here: check_signer_usage() looks
         * at what the signer is for, with messages that say why. */
        X509_VERIFY_PARAM_set_auth_level(param, 2);
        X509_VERIFY_PARAM_set_depth(param, SIGNATURE_CHAIN_DEPTH_MAX);
        if (X509_STORE_set_flags(store, vflags) != 1 ||
            X509_STORE_set_purpose(store, X509_PURPOSE_ANY) != 1) {
                r = upk_err(err, UPK_ERR_SIGNATURE, -EIO, "cannot set up the certificate store");
                upk_err_append_openssl(err);
                return r;
        }
        *ret = TAKE_PTR(store);
        return 0;
}

static bool digest_is_weak(int nid)
{
        switch (nid) {
        case NID_md2:
        case NID_md4:
        case NID_md5:
        case NID_md5_sha1:
        case NID_mdc2:
        case NID_sha1:
                return true;
        default:
                return false;
        }
}

/* What may hash the content: SHA-2 and SHA-3 of 256 bits and more. */
static bool digest_is_accepted(int nid)
{
        switch (nid) {
        case NID_sha256:
        case NID_sha384:
        case NID_sha512:
        case NID_sha3_256:
        case NID_sha3_384:
        case NID_sha3_512:
                return true;
        default:
                return false;
        }
}

static const char *nid_name(int nid, const ASN1_OBJECT *obj, char *buf, size_t size)
{
        const char *ln = nid != NID_undef ? OBJ_nid2ln(nid) : NULL;

        if (ln)
                return ln;
        if (!obj || OBJ_obj2txt(buf, (int)size, obj, 1) <= 0)
                return "(unknown)";
        return buf;
}

/* OpenSSL itself barely looks at the signatureAlgorithm of a SignerInfo (for RSA any unknown OID
 * passes). Insist that it names the signer's key type and, where it names a digest, the digestAlgorithm. */
static bool sigalg_fits_key(int snid, int dnid, EVP_PKEY *pkey)
{
        int md = NID_undef, pk = NID_undef, id = EVP_PKEY_get_base_id(pkey);

        if (snid == NID_undef)
                return false;
        if (snid == NID_rsaEncryption || snid == NID_rsassaPss)
                return id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS;
        if (OBJ_find_sigid_algs(snid, &md, &pk) != 1)
                return false;
        if (md != NID_undef && md != dnid)
                return false;
        switch (pk) {
        case NID_rsaEncryption:
                return id == EVP_PKEY_RSA;
        case NID_X9_62_id_ecPublicKey:
                return id == EVP_PKEY_EC;
        case NID_ED25519:
                return id == EVP_PKEY_ED25519;
        default:
                return false;
        }
}

/* The algorithms of a SignerInfo: no MD5 or SHA-1 as digest nor inside the signature algorithm; for
 * Ed25519 exactly what RFC 8419 says. Returns the digest NID. */
static int check_signer_algorithms(CMS_SignerInfo *si, EVP_PKEY *pkey, int *ret_digest_nid, UpkErr *err)
{
        X509_ALGOR *dig = NULL, *sigalg = NULL;
        const ASN1_OBJECT *dobj = NULL, *sobj = NULL;
        int dnid, snid, dptype = V_ASN1_UNDEF, sptype = V_ASN1_UNDEF, md_in_sig = NID_undef,
                        pk_in_sig = NID_undef;
        char buf[80];

        CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sigalg);
        if (!dig || !sigalg)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG, "a signer has no algorithms");
        X509_ALGOR_get0(&dobj, &dptype, NULL, dig);
        X509_ALGOR_get0(&sobj, &sptype, NULL, sigalg);
        dnid = OBJ_obj2nid(dobj);
        snid = OBJ_obj2nid(sobj);

        if (digest_is_weak(dnid))
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signature digest algorithm %s is not accepted (MD5 and SHA-1 are broken)",
                               nid_name(dnid, dobj, buf, sizeof(buf)));
        /* An unknown OID must not slip through: OpenSSL 3.0 would quietly hash with whatever it had. */
        if (!digest_is_accepted(dnid))
                return upk_err(
                        err, UPK_ERR_SIGNATURE, -EBADMSG,
                        "signature digest algorithm %s is not supported (SHA-256 or better is required)",
                        nid_name(dnid, dobj, buf, sizeof(buf)));
        if ((dptype != V_ASN1_UNDEF && dptype != V_ASN1_NULL) ||
            (snid != NID_rsassaPss && sptype != V_ASN1_UNDEF && sptype != V_ASN1_NULL))
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "a signer's algorithm has unexpected parameters");
        if (snid != NID_undef && OBJ_find_sigid_algs(snid, &md_in_sig, &pk_in_sig) == 1 &&
            digest_is_weak(md_in_sig))
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signature algorithm %s is not accepted (MD5 and SHA-1 are broken)",
                               nid_name(snid, sobj, buf, sizeof(buf)));
        if (!sigalg_fits_key(snid, dnid, pkey))
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signature algorithm %s with digest %s does not fit the signer's %s key",
                               OBJ_nid2ln(snid) ?: "(unknown)", OBJ_nid2ln(dnid) ?: "(unknown)",
                               EVP_PKEY_get0_type_name(pkey) ?: "unknown");
        if (pkey_is_eddsa(pkey)) {
                if (!pkey_is_ed25519(pkey))
                        return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG, "Ed448 signers are not supported");
                if (dnid != NID_sha512 || snid != NID_ED25519)
                        return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                                       "Ed25519 signer with digest %s and signature algorithm %s (RFC 8419 "
                                       "wants sha512 and ED25519)",
                                       nid_name(dnid, dobj, buf, sizeof(buf)),
                                       OBJ_nid2ln(snid) ?: "(unknown)");
                if (CMS_signed_get_attr_count(si) > 0)
                        return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                                       "Ed25519 signers with signed attributes are not supported");
        }
        *ret_digest_nid = dnid;
        return 0;
}

/* What a signer certificate is for: a leaf (not a CA) whose key usage allows digitalSignature and whose
 * extended key usage names codeSigning. SIGNATURE_ALLOW_ANY_EKU also takes a leaf without an extended
 * key usage or with anyExtendedKeyUsage; an extended key usage that names only other purposes
 * (serverAuth, ...) is refused even then, and so is a CA certificate. `subject` names it in messages. */
static int check_signer_usage(X509 *signer, const char *subject, unsigned flags, UpkErr *err)
{
        uint32_t ku = X509_get_key_usage(signer), xku = X509_get_extended_key_usage(signer);

        if (X509_check_ca(signer) != 0)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signer certificate \"%s\": it is a CA certificate (%s); bundles must be "
                               "signed by a leaf certificate",
                               subject,
                               X509_get_extension_flags(signer) & EXFLAG_CA
                                       ? "basicConstraints CA:TRUE"
                                       : "keyCertSign, or a version 1 self-signed certificate");
        if (ku != UINT32_MAX && !(ku & KU_DIGITAL_SIGNATURE))
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signer certificate \"%s\": its key usage does not allow digitalSignature",
                               subject);
        if (xku != UINT32_MAX && (xku & XKU_CODE_SIGN))
                return 0;
        if (xku != UINT32_MAX && !(xku & XKU_ANYEKU))
                return upk_err(
                        err, UPK_ERR_SIGNATURE, -EBADMSG,
                        "signer certificate \"%s\": its extended key usage does not allow codeSigning",
                        subject);
        if (flags & SIGNATURE_ALLOW_ANY_EKU)
                return 0;
        return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                       "signer certificate \"%s\": %s; the codeSigning extended key usage is required "
                       "(allow-any-eku would accept this one)",
                       subject,
                       xku == UINT32_MAX ? "it has no extended key usage"
                                         : "its extended key usage is anyExtendedKeyUsage, not codeSigning");
}

/* The signer certificate: key size, chain to the keyring (with CRL and level 2 policy), then what it
 * is for (check_signer_usage()). */
static int check_signer_cert(X509 *signer, STACK_OF(X509) * untrusted, X509_STORE *store, unsigned flags,
                             UpkErr *err)
{
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        EVP_PKEY *pkey = X509_get0_pubkey(signer);
        char subject[512];
        int r;

        subject_of(signer, subject, sizeof(subject));
        if (!pkey)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signer certificate \"%s\": cannot read its public key", subject);
        if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA && EVP_PKEY_get_bits(pkey) < RSA_BITS_MIN)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signer certificate \"%s\": RSA key of %d bits is too small (at least %d)",
                               subject, EVP_PKEY_get_bits(pkey), RSA_BITS_MIN);

        if (!ctx || X509_STORE_CTX_init(ctx, store, signer, untrusted) != 1)
                return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
        r = X509_verify_cert(ctx);
        if (r != 1) {
                int e = X509_STORE_CTX_get_error(ctx), depth = X509_STORE_CTX_get_error_depth(ctx);
                X509 *at = X509_STORE_CTX_get_current_cert(ctx);

                if (e == X509_V_OK)
                        e = X509_V_ERR_UNSPECIFIED;
                if (depth > 0 && at && at != signer) {
                        char where[512];
                        r = upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                                    "signer certificate \"%s\": %s (certificate \"%s\" in its chain)",
                                    subject, X509_verify_cert_error_string(e),
                                    subject_of(at, where, sizeof(where)));
                } else
                        r = upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG, "signer certificate \"%s\": %s",
                                    subject, X509_verify_cert_error_string(e));
                upk_err_append_openssl(err);
                return r;
        }

        return check_signer_usage(signer, subject, flags, err);
}

static int ed25519_verify_signer_info(CMS_SignerInfo *si, EVP_PKEY *pkey, const void *data, size_t size)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *mctx = EVP_MD_CTX_new();
        ASN1_OCTET_STRING *sig = CMS_SignerInfo_get0_signature(si);

        if (!mctx || !sig)
                return -ENOMEM;
        if (EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pkey) != 1 ||
            EVP_DigestVerify(mctx, ASN1_STRING_get0_data(sig), (size_t)ASN1_STRING_length(sig), data,
                             size) != 1)
                return -EBADMSG;
        return 0;
}

static int fill_signer(X509 *signer, int digest_nid, SignatureSigner *ret)
{
        SignatureSigner s = {};
        const char *d = OBJ_nid2ln(digest_nid);

        s.subject = name_to_string(X509_get_subject_name(signer));
        s.issuer = name_to_string(X509_get_issuer_name(signer));
        s.serial = serial_to_string(X509_get0_serialNumber(signer));
        s.digest = strdup(d ?: "unknown");
        if (!s.subject || !s.issuer || !s.serial || !s.digest) {
                signature_signer_done(&s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

/* Order of the checks, chosen for the message a person gets when several things are wrong: first the
 * keyring (a broken configuration is reported whatever the input), then the shape of the signature and
 * its algorithms, then who signed (key size, chain to the keyring, CRL, key usage) and only then whether
 * the signature matches the data. A signature by an untrusted key proves nothing, so "not trusted" is
 * the more useful answer than "does not match"; and no crypto runs on a key before its chain is known to
 * be good. */
static int signature_verify_impl(const void *data, size_t size, const uint8_t *der, size_t der_size,
                                 const char *keyring_path, const char *crl_path, unsigned flags,
                                 SignatureSigner *ret_signer, UpkErr *err)
{
        _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        _cleanup_(x509_free_allp) STACK_OF(X509) *certs = NULL;
        _cleanup_(BIO_free_allp) BIO *in = NULL;
        STACK_OF(CMS_SignerInfo) * sis;
        const unsigned char *p = der;
        X509 *first_signer = NULL;
        int n_signers, n_eddsa = 0, first_digest = NID_undef, r;

        if (size > SIGNATURE_DATA_SIZE_MAX)
                return upk_err(err, UPK_ERR_SIGNATURE, -EFBIG, "signed data is larger than %u bytes",
                               SIGNATURE_DATA_SIZE_MAX);
        r = load_store(keyring_path, crl_path, &store, err);
        if (r < 0)
                return r;

        if (der_size == 0)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG, "signature is empty");
        if (der_size > SIGNATURE_SIZE_MAX)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signature is %zu bytes, more than the %u allowed", der_size,
                               SIGNATURE_SIZE_MAX);
        cms = d2i_CMS_ContentInfo(NULL, &p, (long)der_size);
        if (!cms) {
                r = upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG, "signature is not a DER CMS structure");
                upk_err_append_openssl(err);
                return r;
        }
        if (p != der + der_size)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signature has %zu bytes of trailing garbage after the CMS structure",
                               (size_t)(der + der_size - p));
        if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG, "signature is a CMS %s, not signedData",
                               OBJ_nid2ln(OBJ_obj2nid(CMS_get0_type(cms))) ?: "structure");
        if (CMS_is_detached(cms) != 1)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signature carries its own content; a detached signature is required");

        /* Without signed attributes nothing else binds the content type: it must be plain data. */
        if (OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signature is over content of type %s, not data",
                               OBJ_nid2ln(OBJ_obj2nid(CMS_get0_eContentType(cms))) ?: "(unknown)");

        sis = CMS_get0_SignerInfos(cms);
        n_signers = sis ? sk_CMS_SignerInfo_num(sis) : 0;
        if (n_signers <= 0)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG, "signature contains no signer");
        if (n_signers > SIGNATURE_SIGNERS_MAX)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG, "signature has %d signers, more than %d",
                               n_signers, SIGNATURE_SIGNERS_MAX);
        certs = CMS_get1_certs(cms);
        if (certs && sk_X509_num(certs) > SIGNATURE_CERTS_MAX)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signature carries %d certificates, more than %d", sk_X509_num(certs),
                               SIGNATURE_CERTS_MAX);
        /* Find each signer's certificate among the ones carried in the signature. */
        if (CMS_set1_signers_certs(cms, NULL, 0) < 0) {
                r = upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                            "signature's signer certificates are unusable");
                upk_err_append_openssl(err);
                return r;
        }

        for (int i = 0; i < n_signers; i++) {
                CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, i);
                X509 *signer = NULL;
                int digest_nid = NID_undef;

                CMS_SignerInfo_get0_algs(si, NULL, &signer, NULL, NULL);
                if (!signer)
                        return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                                       "signer certificate is not carried in the signature");
                if (!X509_get0_pubkey(signer))
                        return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                                       "signer certificate has no usable key");
                r = check_signer_algorithms(si, X509_get0_pubkey(signer), &digest_nid, err);
                if (r < 0)
                        return r;
                r = check_signer_cert(signer, certs, store, flags, err);
                if (r < 0)
                        return r;
                if (pkey_is_eddsa(X509_get0_pubkey(signer)))
                        n_eddsa++;
                if (!first_signer) {
                        first_signer = signer;
                        first_digest = digest_nid;
                }
        }

        if (n_eddsa > 0 && n_eddsa != n_signers)
                return upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                               "signature mixes Ed25519 signers with others, which is not supported");
        if (n_eddsa > 0) {
                for (int i = 0; i < n_signers; i++) {
                        CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, i);
                        X509 *signer = NULL;

                        CMS_SignerInfo_get0_algs(si, NULL, &signer, NULL, NULL);
                        r = ed25519_verify_signer_info(si, X509_get0_pubkey(signer), data, size);
                        if (r == -ENOMEM)
                                return upk_err(err, UPK_ERR_SIGNATURE, r, "out of memory");
                        if (r < 0) {
                                r = upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                                            "signature does not match the manifest");
                                ERR_clear_error();
                                return r;
                        }
                }
        } else {
                /* Not a bare memory BIO: for those OpenSSL 3.0's CMS_verify makes a copy it leaks when
                 * the signer info cannot be set up (found by fuzz-bundle). A buffer filter on top
                 * costs nothing and avoids that path. */
                BIO *mem = BIO_new_mem_buf(data, (int)size);
                in = BIO_new(BIO_f_buffer());
                if (!in || !mem) {
                        BIO_free(mem);
                        return upk_err(err, UPK_ERR_SIGNATURE, -ENOMEM, "out of memory");
                }
                BIO_push(in, mem);
                if (CMS_verify(cms, certs, store, in, NULL, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
                        /* OpenSSL's reasons ("padding check failed", ...) would add only noise. */
                        r = upk_err(err, UPK_ERR_SIGNATURE, -EBADMSG,
                                    "signature does not match the manifest");
                        ERR_clear_error();
                        return r;
                }
        }

        if (ret_signer) {
                r = fill_signer(first_signer, first_digest, ret_signer);
                if (r < 0)
                        return upk_err(err, UPK_ERR_SIGNATURE, r, "out of memory");
        }
        return 0;
}

int signature_verify(const void *data, size_t size, const uint8_t *der, size_t der_size,
                     const char *keyring_path, const char *crl_path, unsigned flags,
                     SignatureSigner *ret_signer, UpkErr *err)
{
        int r;

        ERR_clear_error();
        r = signature_verify_impl(data, size, der, der_size, keyring_path, crl_path, flags, ret_signer, err);
        ERR_clear_error();
        return r;
}

int signature_check_signer(const char *cert_path, unsigned flags, UpkErr *err)
{
        _cleanup_(x509_free_allp) STACK_OF(X509) *certs = NULL;
        char subject[512];
        int r;

        ERR_clear_error();
        r = load_certs(cert_path, "certificate", &certs, err);
        if (r >= 0) {
                X509 *cert = sk_X509_value(certs, 0);
                r = check_signer_usage(cert, subject_of(cert, subject, sizeof(subject)), flags, err);
        }
        ERR_clear_error();
        return r;
}
