/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Detached CMS (RFC 5652) SignedData over the manifest bytes, DER encoded, made and checked with
 * OpenSSL. Verification trusts only the CA certificates of a keyring file (PEM), builds the full chain
 * from the signer through intermediates carried in the signature, optionally checks a CRL, and refuses
 * MD5, SHA-1 and RSA keys under 2048 bits anywhere in the chain. */

#include "error.h"

#define SIGNATURE_SIZE_MAX (64u * 1024u)   /* bytes of manifest.json.sig */
#define KEYRING_SIZE_MAX   (1024u * 1024u) /* bytes of a keyring or CRL file */

typedef struct SignatureSigner {
        char *subject; /* one-line RFC 2253 subject of the signer certificate */
        char *issuer;
        char *serial; /* hex */
        char *digest; /* the signature digest algorithm, e.g. "sha256" */
} SignatureSigner;

void signature_signer_done(SignatureSigner *s);

/* Sign `data` with the certificate and private key in PEM files; `chain` (may be NULL) holds
 * intermediate certificates (PEM) to carry in the signature. The output is deterministic for RSA and
 * Ed25519 keys (no signing time; ECDSA signatures are randomised by nature). */
int signature_sign(const void *data, size_t size, const char *cert_path, const char *key_path,
                   const char *chain_path, uint8_t **ret_der, size_t *ret_der_size, UpkErr *err);

/* Verify `der` over `data` against the CA certificates in `keyring_path`; `crl_path` may be NULL.
 * Failure: -EBADMSG (or -ENOENT/-EIO for unreadable keyring files) with kind UPK_ERR_SIGNATURE and a
 * message naming the reason (e.g. "signer certificate has expired"). `ret_signer` may be NULL. */
int signature_verify(const void *data, size_t size, const uint8_t *der, size_t der_size,
                     const char *keyring_path, const char *crl_path, SignatureSigner *ret_signer,
                     UpkErr *err);
