/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tuf-sign.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "openssl-util.h"
#include "tuf-json.h"

#define RSA_BITS_NEW 3072
#define RSA_BITS_MIN 2048

int tuf_signer_scheme_from_string(const char *s, TufKeyScheme *ret)
{
        if (streq(s, "ed25519"))
                *ret = TUF_SCHEME_ED25519;
        else if (streq(s, "ecdsa"))
                *ret = TUF_SCHEME_ECDSA_P256;
        else if (streq(s, "rsa"))
                *ret = TUF_SCHEME_RSA_PSS_SHA256;
        else
                return -EINVAL;
        return 0;
}

TufSigner *tuf_signer_free(TufSigner *s)
{
        if (!s)
                return NULL;
        EVP_PKEY_free(s->pkey);
        if (s->public)
                json_object_put(s->public);
        free(s);
        return NULL;
}

int tuf_keyid(json_object *key, char ret[static 65])
{
        _cleanup_free_ char *c = NULL;
        uint8_t digest[SHA256_DIGEST_LENGTH];
        size_t n = 0;
        int r;

        r = tuf_canonical_json(key, &c, &n);
        if (r < 0)
                return r;
        SHA256((const uint8_t *)c, n, digest);
        hex_encode(digest, sizeof(digest), ret);
        return 0;
}

static char *public_pem(EVP_PKEY *pkey)
{
        _cleanup_(BIO_free_allp) BIO *b = BIO_new(BIO_s_mem());
        char *data = NULL;
        long n;

        if (!b || PEM_write_bio_PUBKEY(b, pkey) != 1)
                return NULL;
        n = BIO_get_mem_data(b, &data);
        return n > 0 ? strndup(data, (size_t)n) : NULL;
}

/* The KEY object and keyid of s->pkey. */
static int signer_finish(TufSigner *s, UpkErr *err)
{
        json_object *keyval;
        const char *keytype, *scheme;
        _cleanup_free_ char *public = NULL;

        switch (s->kind) {
        case TUF_SCHEME_ED25519: {
                uint8_t raw[32];
                size_t n = sizeof(raw);
                if (EVP_PKEY_get_raw_public_key(s->pkey, raw, &n) != 1 || n != sizeof(raw)) {
                        ERR_clear_error();
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "the Ed25519 key has no public part");
                }
                public = malloc(2 * sizeof(raw) + 1);
                if (!public)
                        return upk_err_oom(err);
                hex_encode(raw, sizeof(raw), public);
                keytype = "ed25519";
                scheme = "ed25519";
                break;
        }
        case TUF_SCHEME_ECDSA_P256:
                keytype = "ecdsa";
                scheme = "ecdsa-sha2-nistp256";
                public = public_pem(s->pkey);
                break;
        case TUF_SCHEME_RSA_PSS_SHA256:
                keytype = "rsa";
                scheme = "rsassa-pss-sha256";
                public = public_pem(s->pkey);
                break;
        default:
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "key scheme %d cannot sign", (int)s->kind);
        }
        if (!public) {
                ERR_clear_error();
                return upk_err_oom(err);
        }
        s->public = json_object_new_object();
        keyval = json_object_new_object();
        if (!s->public || !keyval) {
                json_object_put(keyval);
                return upk_err_oom(err);
        }
        json_object_object_add(s->public, "keytype", json_object_new_string(keytype));
        json_object_object_add(s->public, "scheme", json_object_new_string(scheme));
        json_object_object_add(keyval, "public", json_object_new_string(public));
        json_object_object_add(s->public, "keyval", keyval);
        if (tuf_keyid(s->public, s->keyid) < 0)
                return upk_err_oom(err);
        return 0;
}

int tuf_signer_generate(TufKeyScheme kind, TufSigner **ret, UpkErr *err)
{
        _cleanup_(tuf_signer_freep) TufSigner *s = calloc(1, sizeof(TufSigner));
        EVP_PKEY *pkey = NULL;
        int r;

        if (!s)
                return upk_err_oom(err);
        s->kind = kind;
        switch (kind) {
        case TUF_SCHEME_ED25519:
                pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
                break;
        case TUF_SCHEME_ECDSA_P256:
                pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
                break;
        case TUF_SCHEME_RSA_PSS_SHA256:
                pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_BITS_NEW);
                break;
        default:
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "key scheme %d cannot be generated", (int)kind);
        }
        if (!pkey) {
                r = upk_err(err, UPK_ERR_IO, -EIO, "making a key failed");
                upk_err_append_openssl(err);
                return r;
        }
        s->pkey = pkey;
        r = signer_finish(s, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int tuf_signer_load(const char *path, TufSigner **ret, UpkErr *err)
{
        _cleanup_(tuf_signer_freep) TufSigner *s = calloc(1, sizeof(TufSigner));
        _cleanup_(BIO_free_allp) BIO *b = NULL;
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        char group[64] = "";
        int r;

        if (!s)
                return upk_err_oom(err);
        r = read_full_file(path, TUF_KEY_FILE_MAX, &data, &size);
        if (r == -EFBIG)
                return upk_err(err, UPK_ERR_CONFIG, r, "%s: larger than %d bytes, not a key", path,
                               TUF_KEY_FILE_MAX);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: %m", path);
        b = BIO_new_mem_buf(data, (int)size);
        if (!b)
                return upk_err_oom(err);
        s->pkey = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"");
        explicit_bzero(data, size);
        if (!s->pkey) {
                ERR_clear_error();
                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s: not an unencrypted PEM private key",
                               path);
        }
        if (EVP_PKEY_is_a(s->pkey, "ED25519"))
                s->kind = TUF_SCHEME_ED25519;
        else if (EVP_PKEY_is_a(s->pkey, "EC")) {
                if (!EVP_PKEY_get_utf8_string_param(s->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                                    sizeof(group), NULL) ||
                    !streq(group, "prime256v1")) {
                        ERR_clear_error();
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                       "%s: an EC key not on P-256 (ecdsa-sha2-nistp256 is the EC scheme "
                                       "supported)",
                                       path);
                }
                s->kind = TUF_SCHEME_ECDSA_P256;
        } else if (EVP_PKEY_is_a(s->pkey, "RSA")) {
                if (EVP_PKEY_get_bits(s->pkey) < RSA_BITS_MIN)
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                       "%s: an RSA key of %d bits (at least %d are needed)", path,
                                       EVP_PKEY_get_bits(s->pkey), RSA_BITS_MIN);
                s->kind = TUF_SCHEME_RSA_PSS_SHA256;
        } else
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "%s: a key of a type TUF signing does not support (Ed25519, EC P-256 or "
                               "RSA)",
                               path);
        r = signer_finish(s, err);
        if (r < 0)
                return upk_err_prefix(err, "%s", path);
        *ret = TAKE_PTR(s);
        return 0;
}

int tuf_signer_save(const TufSigner *s, const char *path, UpkErr *err)
{
        _cleanup_(BIO_free_allp) BIO *b = BIO_new(BIO_s_mem());
        _cleanup_close_ int fd = -EBADF;
        char *data = NULL;
        long n;
        int r;

        if (!b || PEM_write_bio_PrivateKey(b, s->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
                ERR_clear_error();
                return upk_err_oom(err);
        }
        n = BIO_get_mem_data(b, &data);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: %m", path);
        r = loop_write(fd, data, (size_t)n);
        if (r >= 0 && fchmod(fd, 0600) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlink(path);
                return upk_err(err, UPK_ERR_IO, r, "%s: %m", path);
        }
        return 0;
}

int tuf_signer_sign(const TufSigner *s, const void *data, size_t size, char **ret, UpkErr *err)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        _cleanup_free_ uint8_t *sig = NULL;
        _cleanup_(tuf_key_freep) TufKey *check = NULL;
        EVP_PKEY_CTX *pctx = NULL;
        const char *md = s->kind == TUF_SCHEME_ED25519 ? NULL : "SHA256";
        _cleanup_free_ char *hex = NULL;
        size_t n = 0;
        int r;

        if (!ctx)
                return upk_err_oom(err);
        if (EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, s->pkey, NULL) != 1)
                goto fail;
        if (s->kind == TUF_SCHEME_RSA_PSS_SHA256 &&
            (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
             EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL) != 1))
                goto fail;
        if (EVP_DigestSign(ctx, NULL, &n, data, size) != 1 || n == 0 || n > TUF_SIGNATURE_MAX)
                goto fail;
        sig = malloc(n);
        if (!sig)
                return upk_err_oom(err);
        if (EVP_DigestSign(ctx, sig, &n, data, size) != 1)
                goto fail;
        hex = malloc(2 * n + 1);
        if (!hex)
                return upk_err_oom(err);
        hex_encode(sig, n, hex);

        /* The signature must pass the client's own check before anyone sees it. */
        r = tuf_key_from_json(s->keyid, s->public, s->keyid, &check, err);
        if (r < 0)
                return r;
        r = tuf_key_verify(check, hex, data, size);
        if (r < 0)
                return upk_err_oom(err);
        if (r == 0)
                return upk_err(err, UPK_ERR_SIGNATURE, -EPERM,
                               "key %s: its signature does not verify with its own public key", s->keyid);
        *ret = TAKE_PTR(hex);
        return 0;

fail:
        r = upk_err(err, UPK_ERR_SIGNATURE, -EIO, "key %s: signing failed", s->keyid);
        upk_err_append_openssl(err);
        return r;
}

int tuf_sign_append(json_object *doc, TufSigner *const *signers, size_t n_signers, char **ret,
                    size_t *ret_size, UpkErr *err)
{
        _cleanup_free_ char *bytes = NULL;
        json_object *signed_obj = NULL, *sigs = NULL;
        size_t size = 0;
        int r;

        if (!json_object_object_get_ex(doc, "signed", &signed_obj) ||
            !json_object_object_get_ex(doc, "signatures", &sigs) ||
            !json_object_is_type(sigs, json_type_array))
                return upk_err(err, UPK_ERR_FORMAT, -EINVAL, "not a signed metadata document");
        r = tuf_canonical_json(signed_obj, &bytes, &size);
        if (r == -EDOM || r == -ELOOP)
                return upk_err(err, UPK_ERR_FORMAT, r, "the metadata has no canonical form");
        if (r < 0)
                return upk_err_oom(err);
        for (size_t i = 0; i < n_signers; i++) {
                _cleanup_free_ char *hex = NULL;
                bool present = false;
                json_object *o;

                for (size_t j = 0; j < json_object_array_length(sigs) && !present; j++) {
                        json_object *k = NULL;
                        present =
                                json_object_object_get_ex(json_object_array_get_idx(sigs, j), "keyid", &k) &&
                                streq(json_object_get_string(k) ?: "", signers[i]->keyid);
                }
                if (present)
                        continue;
                r = tuf_signer_sign(signers[i], bytes, size, &hex, err);
                if (r < 0)
                        return r;
                o = json_object_new_object();
                if (!o)
                        return upk_err_oom(err);
                json_object_object_add(o, "keyid", json_object_new_string(signers[i]->keyid));
                json_object_object_add(o, "sig", json_object_new_string(hex));
                json_object_array_add(sigs, o);
        }
        r = tuf_sorted_json(doc, ret, ret_size);
        if (r < 0)
                return upk_err_oom(err);
        return 0;
}

int tuf_sign_document(json_object *signed_obj, TufSigner *const *signers, size_t n_signers, char **ret,
                      size_t *ret_size, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *doc = json_object_new_object();
        json_object *sigs = json_object_new_array();

        if (!doc || !sigs) {
                json_object_put(sigs);
                return upk_err_oom(err);
        }
        json_object_object_add(doc, "signatures", sigs);
        json_object_object_add(doc, "signed", json_object_get(signed_obj));
        return tuf_sign_append(doc, signers, n_signers, ret, ret_size, err);
}
