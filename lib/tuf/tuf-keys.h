/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* TUF public keys and signature checks through OpenSSL. Supported (keytype, scheme) pairs:
 *   ed25519 / ed25519                       keyval.public: 64 hex digits (the raw 32-byte key)
 *   ecdsa (or ecdsa-sha2-nistp256) / ecdsa-sha2-nistp256, ecdsa / ecdsa-sha2-nistp384
 *                                           keyval.public: PEM SubjectPublicKeyInfo; signatures DER, hex
 *   rsa / rsassa-pss-sha256 (-sha384, -sha512)
 *                                           keyval.public: PEM, at least 2048 bits; PSS with MGF1 of the
 *                                           same digest, any salt length (securesystemslib signs with the
 *                                           maximum and verifies with "auto")
 * A key of another type or scheme is kept (its keyid may appear in a role) but verifies nothing. The keyid
 * is the one the metadata gives; it is not recomputed. */

#include <json-c/json.h>

#include "error.h"

#define TUF_KEYID_MAX      128  /* bytes of a keyid (sha256 hex is 64) */
#define TUF_SIGNATURE_MAX  1024 /* bytes of a decoded signature (RSA 8192) */
#define TUF_PUBLIC_KEY_MAX 16384

typedef enum TufKeyScheme {
        TUF_SCHEME_ED25519,
        TUF_SCHEME_ECDSA_P256,
        TUF_SCHEME_ECDSA_P384,
        TUF_SCHEME_RSA_PSS_SHA256,
        TUF_SCHEME_RSA_PSS_SHA384,
        TUF_SCHEME_RSA_PSS_SHA512,
        TUF_SCHEME_UNSUPPORTED,
        _TUF_SCHEME_MAX,
        _TUF_SCHEME_INVALID = -EINVAL,
} TufKeyScheme;

typedef struct TufKey {
        char *keyid;
        char *keytype, *scheme;
        TufKeyScheme kind;
        void *pkey; /* EVP_PKEY; NULL when unsupported */
} TufKey;

/* `o` is the KEY object; `path` names it in messages ("signed.keys.KEYID"). -EBADMSG with a FORMAT error
 * for a malformed object or a public key that does not load for a supported scheme. */
int tuf_key_from_json(const char *keyid, json_object *o, const char *path, TufKey **ret, UpkErr *err);
TufKey *tuf_key_free(TufKey *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(TufKey *, tuf_key_free);

/* 1 when `sig_hex` is a valid signature of data[0..size) by `k`, 0 when it is not (or the key is of an
 * unsupported scheme, or the hex is malformed), -ENOMEM. */
int tuf_key_verify(const TufKey *k, const char *sig_hex, const void *data, size_t size);
