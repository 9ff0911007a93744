/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tuf-keys.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "hexdecoct.h"
#include "json-util.h"
#include "openssl-util.h"

#define RSA_BITS_MIN 2048

static const struct {
        const char *keytype, *scheme;
        TufKeyScheme kind;
} scheme_table[] = {
        { "ed25519", "ed25519", TUF_SCHEME_ED25519 },
        { "ecdsa", "ecdsa-sha2-nistp256", TUF_SCHEME_ECDSA_P256 },
        { "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", TUF_SCHEME_ECDSA_P256 },
        { "ecdsa", "ecdsa-sha2-nistp384", TUF_SCHEME_ECDSA_P384 },
        { "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384", TUF_SCHEME_ECDSA_P384 },
        { "rsa", "rsassa-pss-sha256", TUF_SCHEME_RSA_PSS_SHA256 },
        { "rsa", "rsassa-pss-sha384", TUF_SCHEME_RSA_PSS_SHA384 },
        { "rsa", "rsassa-pss-sha512", TUF_SCHEME_RSA_PSS_SHA512 },
};

TufKey *tuf_key_free(TufKey *k)
{
        if (!k)
                return NULL;
        free(k->keyid);
        free(k->keytype);
        free(k->scheme);
        EVP_PKEY_free(k->pkey);
        free(k);
        return NULL;
}

static int bad(UpkErr *err, const char *path, const char *what)
{
        return upk_err(err, UPK_ERR_FORMAT, -EBADMSG, "%s: %s", path, what);
}

static int load_pem(const char *pem, TufKeyScheme kind, const char *path, EVP_PKEY **ret, UpkErr *err)
{
        _cleanup_(BIO_free_allp) BIO *b = BIO_new_mem_buf(pem, -1);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        char group[64] = "";

        if (!b)
                return upk_err_oom(err);
        pkey = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
        if (!pkey) {
                ERR_clear_error();
                return bad(err, path, "keyval.public is not a PEM public key");
        }
        switch (kind) {
        case TUF_SCHEME_ECDSA_P256:
        case TUF_SCHEME_ECDSA_P384:
                if (!EVP_PKEY_is_a(pkey, "EC") ||
                    !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                                    NULL) ||
                    !streq(group, kind == TUF_SCHEME_ECDSA_P256 ? "prime256v1" : "secp384r1")) {
                        ERR_clear_error();
                        return bad(err, path, "keyval.public is not an EC key on the scheme's curve");
                }
                break;
        case TUF_SCHEME_RSA_PSS_SHA256:
        case TUF_SCHEME_RSA_PSS_SHA384:
        case TUF_SCHEME_RSA_PSS_SHA512:
                if (!EVP_PKEY_is_a(pkey, "RSA"))
                        return bad(err, path, "keyval.public is not an RSA key");
                if (EVP_PKEY_get_bits(pkey) < RSA_BITS_MIN)
                        return bad(err, path, "keyval.public is an RSA key of fewer than 2048 bits");
                break;
        case TUF_SCHEME_ED25519:
        case TUF_SCHEME_UNSUPPORTED:
        case _TUF_SCHEME_MAX:
        case _TUF_SCHEME_INVALID:
                return upk_err(err, UPK_ERR_FORMAT, -EINVAL, "%s: the key's scheme is not one of a PEM key",
                               path);
        }
        *ret = TAKE_PTR(pkey);
        return 0;
}

static int get_str(json_object *o, const char *key, const char **ret)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return -EBADMSG;
        if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
                return -EBADMSG;
        *ret = json_object_get_string(v);
        return 0;
}

int tuf_key_from_json(const char *keyid, json_object *o, const char *path, TufKey **ret, UpkErr *err)
{
        _cleanup_(tuf_key_freep) TufKey *k = NULL;
        const char *keytype, *scheme, *public;
        json_object *keyval;

        if (!json_object_is_type(o, json_type_object))
                return bad(err, path, "expected an object");
        if (get_str(o, "keytype", &keytype) < 0)
                return bad(err, path, "keytype: expected a string");
        if (get_str(o, "scheme", &scheme) < 0)
                return bad(err, path, "scheme: expected a string");
        if (!json_object_object_get_ex(o, "keyval", &keyval) ||
            !json_object_is_type(keyval, json_type_object))
                return bad(err, path, "keyval: expected an object");
        if (strlen(keyid) > TUF_KEYID_MAX)
                return bad(err, path, "the keyid is too long");

        k = calloc(1, sizeof(TufKey));
        if (!k)
                return upk_err_oom(err);
        k->keyid = strdup(keyid);
        k->keytype = strdup(keytype);
        k->scheme = strdup(scheme);
        if (!k->keyid || !k->keytype || !k->scheme)
                return upk_err_oom(err);
        k->kind = TUF_SCHEME_UNSUPPORTED;
        for (size_t i = 0; i < ELEMENTSOF(scheme_table); i++)
                if (streq(scheme_table[i].keytype, keytype) && streq(scheme_table[i].scheme, scheme))
                        k->kind = scheme_table[i].kind;
        if (k->kind == TUF_SCHEME_UNSUPPORTED) {
                *ret = TAKE_PTR(k);
                return 0;
        }

        if (get_str(keyval, "public", &public) < 0)
                return bad(err, path, "keyval.public: expected a string");
        if (strlen(public) > TUF_PUBLIC_KEY_MAX)
                return bad(err, path, "keyval.public is too long");
        if (k->kind == TUF_SCHEME_ED25519) {
                uint8_t raw[32];
                size_t n = 0;
                if (strlen(public) != 64 || hex_decode_any(public, raw, sizeof(raw), &n) < 0)
                        return bad(err, path, "keyval.public: expected 64 hex digits (an Ed25519 key)");
                k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, sizeof(raw));
                if (!k->pkey) {
                        ERR_clear_error();
                        return bad(err, path, "keyval.public is not a valid Ed25519 key");
                }
        } else {
                int r = load_pem(public, k->kind, path, (EVP_PKEY **)&k->pkey, err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(k);
        return 0;
}

int tuf_key_verify(const TufKey *k, const char *sig_hex, const void *data, size_t size)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        uint8_t sig[TUF_SIGNATURE_MAX];
        const char *md = NULL;
        EVP_PKEY_CTX *pctx = NULL;
        size_t n = 0;
        int r;

        if (!k->pkey)
                return 0;
        if (hex_decode_any(sig_hex, sig, sizeof(sig), &n) < 0 || n == 0)
                return 0;
        switch (k->kind) {
        case TUF_SCHEME_ED25519:
                break;
        case TUF_SCHEME_ECDSA_P256:
        case TUF_SCHEME_RSA_PSS_SHA256:
                md = "SHA256";
                break;
        case TUF_SCHEME_ECDSA_P384:
        case TUF_SCHEME_RSA_PSS_SHA384:
                md = "SHA384";
                break;
        case TUF_SCHEME_RSA_PSS_SHA512:
                md = "SHA512";
                break;
        case TUF_SCHEME_UNSUPPORTED:
        case _TUF_SCHEME_MAX:
        case _TUF_SCHEME_INVALID:
                return 0;
        }

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, k->pkey, NULL) != 1) {
                ERR_clear_error();
                return -ENOMEM;
        }
        if (k->kind == TUF_SCHEME_RSA_PSS_SHA256 || k->kind == TUF_SCHEME_RSA_PSS_SHA384 ||
            k->kind == TUF_SCHEME_RSA_PSS_SHA512) {
                if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1 ||
                    EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, md, NULL) != 1) {
                        ERR_clear_error();
                        return -ENOMEM;
                }
        }
        r = EVP_DigestVerify(ctx, sig, n, data, size);
        ERR_clear_error();
        return r == 1 ? 1 : 0;
}
