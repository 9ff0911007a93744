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

typedef enum SignatureVerifyFlags {
        /* Also accept a signer certificate without an extended key usage or with anyExtendedKeyUsage
         * (weaker: such a certificate was not issued for code signing). A CA certificate and an extended
         * key usage naming only other purposes stay refused. */
        SIGNATURE_ALLOW_ANY_EKU = 1u << 0,
} SignatureVerifyFlags;

/* Verify `der` over `data` against the CA certificates in `keyring_path`; `crl_path` may be NULL;
 * `flags` are SignatureVerifyFlags. Every signer must be a leaf (not a CA) certificate with the key
 * usage digitalSignature (if it has a key usage) and the extended key usage codeSigning.
 * Failure: -EBADMSG (or -ENOENT/-EIO for unreadable keyring files) with kind UPK_ERR_SIGNATURE and a
 * message naming the reason (e.g. "signer certificate has expired"). `ret_signer` may be NULL. */
int signature_verify(const void *data, size_t size, const uint8_t *der, size_t der_size,
                     const char *keyring_path, const char *crl_path, unsigned flags,
                     SignatureSigner *ret_signer, UpkErr *err);

/* Whether the first certificate in the PEM file `cert_path` is one signature_verify() accepts as a
 * signer with `flags` (its usages only; no chain, dates or keyring): 0, or -EBADMSG with the reason. */
int signature_check_signer(const char *cert_path, unsigned flags, UpkErr *err);
