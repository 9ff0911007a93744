/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The signing side of TUF (for `updatectl repo`): private keys of the schemes tuf-keys.h verifies, made
 * with OpenSSL or read from PEM files, their public KEY objects and keyids as the specification computes
 * them (SHA-256 of the canonical JSON of the KEY object), and signed metadata documents: {"signatures":
 * [...], "signed": ...} written with sorted keys and no white space (tuf_sorted_json()), each signature
 * checked with tuf-keys.c's verifier before it is used. Ed25519 signatures are deterministic, so the same
 * key and the same metadata give the same bytes; ECDSA and RSA-PSS signatures are not. */

#include <json-c/json.h>

#include "error.h"
#include "tuf-keys.h"

#define TUF_KEY_FILE_MAX 65536 /* bytes of a private key PEM file */

typedef struct TufSigner {
        char keyid[65]; /* sha256 hex */
        TufKeyScheme kind;
        void *pkey;          /* EVP_PKEY with the private key */
        json_object *public; /* the KEY object: keytype, scheme, keyval.public */
} TufSigner;

/* The scheme of a key type name as `updatectl repo` takes it: "ed25519", "ecdsa" (P-256) or "rsa"
 * (RSA-PSS with SHA-256, 3072 bits). -EINVAL for another. */
int tuf_signer_scheme_from_string(const char *s, TufKeyScheme *ret);

/* A new key of `kind` (TUF_SCHEME_ED25519, TUF_SCHEME_ECDSA_P256 or TUF_SCHEME_RSA_PSS_SHA256). */
int tuf_signer_generate(TufKeyScheme kind, TufSigner **ret, UpkErr *err);
/* An unencrypted PEM private key (PKCS#8 or the traditional forms): Ed25519, EC P-256 (ecdsa-sha2-nistp256)
 * or RSA of at least 2048 bits (rsassa-pss-sha256). CONFIG errors naming the file. */
int tuf_signer_load(const char *path, TufSigner **ret, UpkErr *err);
/* Write the private key as PKCS#8 PEM to a new file `path` with mode 0600 (an existing file is -EEXIST). */
int tuf_signer_save(const TufSigner *s, const char *path, UpkErr *err);
TufSigner *tuf_signer_free(TufSigner *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(TufSigner *, tuf_signer_free);

/* The keyid of a KEY object: the SHA-256 hex of its canonical JSON. */
int tuf_keyid(json_object *key, char ret[static 65]);

/* A hex signature of data[0..size) in *ret (malloc()ed). */
int tuf_signer_sign(const TufSigner *s, const void *data, size_t size, char **ret, UpkErr *err);

/* {"signatures": [one per signer, in the order given], "signed": `signed_obj`}, each signature over the
 * canonical JSON of `signed_obj`, encoded by tuf_sorted_json() in *ret (malloc()ed, NUL-terminated) and
 * its length. */
int tuf_sign_document(json_object *signed_obj, TufSigner *const *signers, size_t n_signers, char **ret,
                      size_t *ret_size, UpkErr *err);
/* Add to the metadata document `doc` ({"signatures": [...], "signed": ...}) a signature of each signer whose
 * keyid none of its signatures carries yet, and encode it like tuf_sign_document(). */
int tuf_sign_append(json_object *doc, TufSigner *const *signers, size_t n_signers, char **ret,
                    size_t *ret_size, UpkErr *err);
