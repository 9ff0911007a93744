/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/tuf-json.c, lib/tuf-keys.c, lib/tuf-metadata.c and the pieces of lib/tuf.c that need no repository
 * (the repository workflow and the attacks are in tests/integration/test_tuf.py). */

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "hexdecoct.h"
#include "json-util.h"
#include "openssl-util.h"
#include "tests.h"
#include "tuf-json.h"
#include "tuf-keys.h"
#include "tuf-metadata.h"
#include "tuf.h"

static char *canon(const char *json)
{
        json_object *o = json_tokener_parse(json);
        char *s = NULL;
        size_t n = 0;

        ASSERT_TRUE(o);
        ASSERT_OK(tuf_canonical_json(o, &s, &n));
        ASSERT_EQ(strlen(s), n);
        json_object_put(o);
        return s;
}

TEST(canonical_json_vectors)
{
        static const struct {
                const char *in, *out;
        } v[] = {
                { "{}", "{}" },
                { "{ \"b\" : 1, \"a\" : 2 }", "{\"a\":2,\"b\":1}" },
                { "{\"a\":[true,false,null,-5,0,18446744073709551615]}",
                  "{\"a\":[true,false,null,-5,0,18446744073709551615]}" },
                /* only '"' and '\\' are escaped; control characters and UTF-8 go as they are */
                { "{\"s\":\"q\\\"b\\\\n\\n\\u00e9/\"}", "{\"s\":\"q\\\"b\\\\n\n\xc3\xa9/\"}" },
                /* keys sorted by bytes: upper case before lower case, shorter prefix first */
                { "{\"b\":{\"ab\":1,\"a\":2,\"B\":3},\"_type\":\"x\"}",
                  "{\"_type\":\"x\",\"b\":{\"B\":3,\"a\":2,\"ab\":1}}" },
        };

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                _cleanup_free_ char *s = canon(v[i].in);
                ASSERT_STREQ(s, v[i].out);
        }
}

TEST(canonical_json_refuses_floats)
{
        json_object *o = json_tokener_parse("{\"a\":1.5}");
        char *s = NULL;
        size_t n = 0;

        ASSERT_ERR(tuf_canonical_json(o, &s, &n), -EDOM);
        json_object_put(o);
}

/* ---- keys: generated and signed with OpenSSL here ---- */

static EVP_PKEY *gen(const char *type, const char *param)
{
        EVP_PKEY *k = NULL;

        if (streq(type, "ED25519"))
                k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        else if (streq(type, "EC"))
                k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
        else
                k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        ASSERT_TRUE(k);
        return k;
}

static char *sign_hex(EVP_PKEY *k, const char *md, bool pss, const void *data, size_t size)
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        uint8_t sig[1024];
        size_t n = sizeof(sig);
        char *hex;

        ASSERT_EQ(EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, k, NULL), 1);
        if (pss) {
                ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
                ASSERT_EQ(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_MAX), 1);
        }
        ASSERT_EQ(EVP_DigestSign(ctx, sig, &n, data, size), 1);
        EVP_MD_CTX_free(ctx);
        hex = malloc(2 * n + 1);
        ASSERT_TRUE(hex);
        hex_encode(sig, n, hex);
        return hex;
}

/* The TUF key object for `k`. */
static json_object *key_json(EVP_PKEY *k, const char *keytype, const char *scheme)
{
        json_object *o = json_object_new_object(), *kv = json_object_new_object();
        char pub[8192];

        if (streq(keytype, "ed25519")) {
                uint8_t raw[32];
                size_t n = sizeof(raw);
                ASSERT_EQ(EVP_PKEY_get_raw_public_key(k, raw, &n), 1);
                hex_encode(raw, n, pub);
        } else {
                BIO *b = BIO_new(BIO_s_mem());
                int n;
                ASSERT_EQ(PEM_write_bio_PUBKEY(b, k), 1);
                n = BIO_read(b, pub, sizeof(pub) - 1);
                ASSERT_TRUE(n > 0);
                pub[n] = 0;
                BIO_free(b);
        }
        json_object_object_add(kv, "public", json_object_new_string(pub));
        json_object_object_add(o, "keytype", json_object_new_string(keytype));
        json_object_object_add(o, "scheme", json_object_new_string(scheme));
        json_object_object_add(o, "keyval", kv);
        return o;
}

TEST(key_types_verify)
{
        static const struct {
                const char *type, *param, *keytype, *scheme, *md;
                bool pss;
        } v[] = {
                { "ED25519", NULL, "ed25519", "ed25519", NULL, false },
                { "EC", "P-256", "ecdsa", "ecdsa-sha2-nistp256", "SHA256", false },
                { "EC", "P-256", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", "SHA256", false },
                { "RSA", NULL, "rsa", "rsassa-pss-sha256", "SHA256", true },
        };
        static const char data[] = "{\"_type\":\"timestamp\"}";

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = gen(v[i].type, v[i].param);
                _cleanup_(tuf_key_freep) TufKey *key = NULL;
                _cleanup_free_ char *sig = sign_hex(k, v[i].md, v[i].pss, data, strlen(data));
                json_object *o = key_json(k, v[i].keytype, v[i].scheme);
                UpkErr e = {};

                ASSERT_OK_E(tuf_key_from_json("abcd", o, "key", &key, &e), &e);
                ASSERT_EQ(tuf_key_verify(key, sig, data, strlen(data)), 1);
                /* other bytes, a flipped signature byte, bad hex: not valid */
                ASSERT_EQ(tuf_key_verify(key, sig, data, strlen(data) - 1), 0);
                sig[10] = sig[10] == '0' ? '1' : '0';
                ASSERT_EQ(tuf_key_verify(key, sig, data, strlen(data)), 0);
                ASSERT_EQ(tuf_key_verify(key, "zz", data, strlen(data)), 0);
                json_object_put(o);
        }
}

TEST(key_scheme_mismatch_and_unknown)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = gen("EC", "P-384");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ed = gen("ED25519", NULL);
        _cleanup_(tuf_key_freep) TufKey *key = NULL;
        json_object *o = key_json(ec, "ecdsa", "ecdsa-sha2-nistp256"), *u = key_json(ed, "ed448", "ed448");
        UpkErr e = {};

        /* a P-384 key under the P-256 scheme does not load */
        ASSERT_UPK_ERR(tuf_key_from_json("k", o, "root: signed.keys.k", &key, &e), &e, -EBADMSG,
                       UPK_ERR_FORMAT, "not an EC key on the scheme's curve");
        /* an unknown scheme loads and verifies nothing */
        ASSERT_OK(tuf_key_from_json("k", u, "k", &key, &e));
        ASSERT_EQ(key->kind, TUF_SCHEME_UNSUPPORTED);
        ASSERT_EQ(tuf_key_verify(key, "00", "x", 1), 0);
        json_object_put(o);
        json_object_put(u);
}

/* ---- metadata: a root with one ed25519 key, signed here ---- */

static char *root_doc(EVP_PKEY *k, unsigned threshold, unsigned n_sigs, bool dup_role_keyid)
{
        json_object *signed_ = json_object_new_object(), *keys = json_object_new_object(),
                    *roles = json_object_new_object(), *doc = json_object_new_object(),
                    *sigs = json_object_new_array();
        static const char *const names[] = { "root", "timestamp", "snapshot", "targets" };
        _cleanup_free_ char *bytes = NULL, *sig = NULL;
        size_t size = 0;
        char *out;

        json_object_object_add(keys, "k1", key_json(k, "ed25519", "ed25519"));
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                json_object *r = json_object_new_object(), *ids = json_object_new_array();
                json_object_array_add(ids, json_object_new_string("k1"));
                if (dup_role_keyid)
                        json_object_array_add(ids, json_object_new_string("k1"));
                json_object_object_add(r, "keyids", ids);
                json_object_object_add(r, "threshold", json_object_new_int((int)threshold));
                json_object_object_add(roles, names[i], r);
        }
        json_object_object_add(signed_, "_type", json_object_new_string("root"));
        json_object_object_add(signed_, "spec_version", json_object_new_string("1.0.31"));
        json_object_object_add(signed_, "version", json_object_new_int(1));
        json_object_object_add(signed_, "expires", json_object_new_string("2099-01-01T00:00:00Z"));
        json_object_object_add(signed_, "consistent_snapshot", json_object_new_boolean(true));
        json_object_object_add(signed_, "keys", keys);
        json_object_object_add(signed_, "roles", roles);
        ASSERT_OK(tuf_canonical_json(signed_, &bytes, &size));
        sig = sign_hex(k, NULL, false, bytes, size);
        for (unsigned i = 0; i < n_sigs; i++) {
                json_object *s = json_object_new_object();
                json_object_object_add(s, "keyid", json_object_new_string("k1"));
                json_object_object_add(s, "sig", json_object_new_string(sig));
                json_object_array_add(sigs, s);
        }
        json_object_object_add(doc, "signatures", sigs);
        json_object_object_add(doc, "signed", signed_);
        out = strdup(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY));
        json_object_put(doc);
        return out;
}

TEST(root_parse_and_threshold)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = gen("ED25519", NULL);
        _cleanup_free_ char *one = root_doc(k, 1, 1, false), *two = root_doc(k, 2, 1, false);
        _cleanup_(tuf_metadata_freep) TufMetadata *m = NULL, *m2 = NULL;
        UpkErr e = {};

        ASSERT_OK_E(tuf_metadata_parse(one, strlen(one), TUF_ROLE_ROOT, NULL, &m, &e), &e);
        ASSERT_EQ(m->version, 1);
        ASSERT_TRUE(m->consistent_snapshot);
        ASSERT_STREQ(m->expires_str, "2099-01-01T00:00:00Z");
        ASSERT_OK_E(tuf_metadata_verify(m, m, &e), &e);

        /* threshold 2 with one key: never met, whatever the signatures */
        ASSERT_OK_E(tuf_metadata_parse(two, strlen(two), TUF_ROLE_ROOT, NULL, &m2, &e), &e);
        ASSERT_UPK_ERR(tuf_metadata_verify(m2, m2, &e), &e, -EPERM, UPK_ERR_SIGNATURE,
                       "root: signature threshold not met: 1 of 2 valid signatures");
}

TEST(duplicated_signatures_and_keyids_rejected)
{
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = gen("ED25519", NULL);
        _cleanup_free_ char *dup_sig = root_doc(k, 2, 2, false), *dup_role = root_doc(k, 1, 1, true);
        _cleanup_(tuf_metadata_freep) TufMetadata *m = NULL;
        UpkErr e = {};

        ASSERT_UPK_ERR(tuf_metadata_parse(dup_sig, strlen(dup_sig), TUF_ROLE_ROOT, NULL, &m, &e), &e, -EPERM,
                       UPK_ERR_SIGNATURE, "more than one signature with keyid k1");
        ASSERT_UPK_ERR(tuf_metadata_parse(dup_role, strlen(dup_role), TUF_ROLE_ROOT, NULL, &m, &e), &e,
                       -EBADMSG, UPK_ERR_FORMAT, "keyid k1 is listed twice");
}

TEST(metadata_format_errors)
{
        static const struct {
                const char *json, *msg;
                TufRoleType type;
        } v[] = {
                { "{\"signed\":{},\"signatures\":[]}", "root: signed: missing required key \"_type\"",
                  TUF_ROLE_ROOT },
                { "{\"signed\":{\"_type\":\"snapshot\"},\"signatures\":[]}",
                  "expected \"timestamp\", got \"snapshot\"", TUF_ROLE_TIMESTAMP },
                { "{\"signed\":{\"_type\":\"timestamp\",\"spec_version\":\"2.0.0\"},\"signatures\":[]}",
                  "not a supported 1.x version", TUF_ROLE_TIMESTAMP },
                { "{\"signed\":{\"_type\":\"timestamp\",\"spec_version\":\"1.0\",\"version\":0},"
                  "\"signatures\":[]}",
                  "signed.version: must be at least 1", TUF_ROLE_TIMESTAMP },
                { "{\"signed\":{\"_type\":\"timestamp\",\"spec_version\":\"1.0\",\"version\":1,\"expires\":"
                  "\"2030-02-30T00:00:00Z\"},\"signatures\":[]}",
                  "not of the form YYYY-MM-DDTHH:MM:SSZ", TUF_ROLE_TIMESTAMP },
                /* The one date parser is strict: no year 0000, nothing before 1970. */
                { "{\"signed\":{\"_type\":\"timestamp\",\"spec_version\":\"1.0\",\"version\":1,\"expires\":"
                  "\"0000-01-01T00:00:00Z\"},\"signatures\":[]}",
                  "\"0000-01-01T00:00:00Z\" is not of the form YYYY-MM-DDTHH:MM:SSZ (1970 or later)",
                  TUF_ROLE_TIMESTAMP },
                { "{\"signed\":{\"_type\":\"timestamp\",\"spec_version\":\"1.0\",\"version\":1,\"expires\":"
                  "\"1969-12-31T23:59:59Z\"},\"signatures\":[]}",
                  "not of the form YYYY-MM-DDTHH:MM:SSZ (1970 or later)", TUF_ROLE_TIMESTAMP },
                { "{\"signed\":{\"_type\":\"timestamp\",\"spec_version\":\"1.0\",\"version\":1,\"expires\":"
                  "\"2030-01-01T00:00:00.5Z\"},\"signatures\":[]}",
                  "not of the form YYYY-MM-DDTHH:MM:SSZ", TUF_ROLE_TIMESTAMP },
                { "{\"signed\":{\"_type\":\"timestamp\",\"spec_version\":\"1.0\",\"version\":1,\"expires\":"
                  "\"2030-01-01T00:00:00Z\",\"meta\":{}},\"signatures\":[]}",
                  "no entry for snapshot.json", TUF_ROLE_TIMESTAMP },
                { "{\"signed\":{\"_type\":\"timestamp\",\"x\":1.5},\"signatures\":[]}",
                  "has no canonical form", TUF_ROLE_TIMESTAMP },
                { "{\"signed\":{},\"signed\":{},\"signatures\":[]}", "duplicate key \"signed\"",
                  TUF_ROLE_ROOT },
                { "{\"signed\":{}} x", "not valid JSON at byte 14", TUF_ROLE_ROOT },
        };

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                _cleanup_(tuf_metadata_freep) TufMetadata *m = NULL;
                UpkErr e = {};
                ASSERT_UPK_ERR(tuf_metadata_parse(v[i].json, strlen(v[i].json), v[i].type, NULL, &m, &e), &e,
                               -EBADMSG, UPK_ERR_FORMAT, v[i].msg);
        }
}

TEST(delegation_path_patterns)
{
        static const struct {
                const char *pattern, *path;
                bool match;
        } v[] = {
                { "targets/*.tgz", "targets/foo.tgz", true },
                { "targets/*.tgz", "targets/foo.txt", false },
                { "foo-version-?.tgz", "foo-version-2.tgz", true },
                { "foo-version-?.tgz", "foo-version-alpha.tgz", false },
                { "*.tgz", "targets/foo.tgz", false },
                { "*", "a/b", false },
                { "*/*", "a/b", true },
                { "a/*/c", "a/b/c", true },
                { "foo.tgz", "foo.tgz", true },
                { "[ab]x", "bx", true },
        };

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                char *paths[] = { (char *)v[i].pattern };
                TufRole r = { .paths = paths, .n_paths = 1 };
                if (tuf_role_matches_path(&r, v[i].path) != v[i].match)
                        test_fail("pattern %s, path %s: expected %d", v[i].pattern, v[i].path, v[i].match);
        }
}

TEST(delegation_hash_prefixes)
{
        /* sha256("file.txt") starts with "aadf" (python: hashlib.sha256(b"file.txt").hexdigest()) */
        char *yes[] = { (char *)"00", (char *)"aad" }, *no[] = { (char *)"22" };
        TufRole a = { .prefixes = yes, .n_prefixes = 2 }, b = { .prefixes = no, .n_prefixes = 1 };

        ASSERT_TRUE(tuf_role_matches_path(&a, "file.txt"));
        ASSERT_FALSE(tuf_role_matches_path(&b, "file.txt"));
}

TEST(quote_like_python)
{
        _cleanup_free_ char *a = tuf_quote("../role"), *b = tuf_quote("a b?#~_.-"),
                            *c = tuf_quote("\xc3\xa9");

        ASSERT_STREQ(a, "..%2Frole");
        ASSERT_STREQ(b, "a%20b%3F%23~_.-");
        ASSERT_STREQ(c, "%C3%A9");
}

TEST(hasher_length_and_hash)
{
        /* sha256("hello") */
        TufTargetHash h = { (char *)"sha256",
                            (char *)"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" };
        TufTarget t = { .path = (char *)"a.bin", .length = 5, .hashes = &h, .n_hashes = 1 };
        _cleanup_(tuf_hasher_freep) TufHasher *hs = NULL;
        UpkErr e = {};

        ASSERT_OK(tuf_target_verify(&t, "hello", 5, &e));
        ASSERT_UPK_ERR(tuf_target_verify(&t, "hellO", 5, &e), &e, -EBADMSG, UPK_ERR_PAYLOAD,
                       "sha256 hash 04a6f5");
        ASSERT_UPK_ERR(tuf_target_verify(&t, "hell", 4, &e), &e, -EBADMSG, UPK_ERR_PAYLOAD,
                       "4 bytes, the metadata says 5");
        /* streaming: the byte past the length is refused at once */
        ASSERT_OK(tuf_hasher_new(&t, &hs, &e));
        ASSERT_OK(tuf_hasher_update(hs, "hel", 3, &e));
        ASSERT_UPK_ERR(tuf_hasher_update(hs, "lo!", 3, &e), &e, -EFBIG, UPK_ERR_PAYLOAD,
                       "more than the 5 bytes the metadata allows");

        h.algorithm = (char *)"md77";
        ASSERT_UPK_ERR(tuf_target_verify(&t, "hello", 5, &e), &e, -EBADMSG, UPK_ERR_PAYLOAD,
                       "hash algorithm \"md77\" is not supported");
}
