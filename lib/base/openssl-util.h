/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Scope cleanup for the OpenSSL types upkeep uses: _cleanup_(TYPE_freep) calls OpenSSL's own free
 * function when the pointer is not NULL. */

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free_all);
DEFINE_TRIVIAL_CLEANUP_FUNC(CMS_ContentInfo *, CMS_ContentInfo_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE *, X509_STORE_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE_CTX *, X509_STORE_CTX_free);

/* A stack of certificates (or of PEM infos) with its elements. */
static inline void x509_free_all(STACK_OF(X509) * s)
{
        sk_X509_pop_free(s, X509_free);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(STACK_OF(X509) *, x509_free_all);

static inline void x509_info_free_all(STACK_OF(X509_INFO) * s)
{
        sk_X509_INFO_pop_free(s, X509_INFO_free);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(STACK_OF(X509_INFO) *, x509_info_free_all);

/* A buffer OpenSSL allocated (i2d_*, BN_bn2hex and the like). */
static inline void openssl_bufp(unsigned char **p)
{
        OPENSSL_free(*p);
}
