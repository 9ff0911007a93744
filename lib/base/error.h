/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one error convention: functions return >= 0 on success and -errno on failure. Where a person
 * needs more than an errno, the function also fills an UpkErr: a category (which lib/bus maps to a bus error
 * name and to the tools' documented exit status) and a sentence naming the thing and the reason. Library
 * code never prints. */

#include "util.h"

typedef enum UpkErrKind {
        UPK_ERR_NONE = 0,
        UPK_ERR_IO,         /* a file could not be read or written */
        UPK_ERR_FORMAT,     /* the bundle is not a well-formed upkeep tar stream */
        UPK_ERR_MANIFEST,   /* the manifest breaks the schema */
        UPK_ERR_SIGNATURE,  /* the signature does not verify against the keyring */
        UPK_ERR_PAYLOAD,    /* a payload's size, hash or expansion is wrong */
        UPK_ERR_COMPATIBLE, /* the bundle is for another device */
        UPK_ERR_DOWNGRADE,  /* the bundle's version is not acceptable here */
        UPK_ERR_CONFIG,     /* a configuration value is wrong */
        UPK_ERR_NETWORK,    /* a download failed: transport, TLS, HTTP status, length */
        _UPK_ERR_KIND_MAX,
        _UPK_ERR_KIND_INVALID = -EINVAL,
} UpkErrKind;

#define UPK_ERR_MSG_MAX 1024

typedef struct UpkErr {
        UpkErrKind kind;
        int code; /* the -errno that was returned */
        char msg[UPK_ERR_MSG_MAX];
} UpkErr;

/* Fill `e` (may be NULL) unless it already holds an error, and return `r` (negative). The first,
 * innermost error wins: callers add context with upk_err_prefix(). Sets errno to -r, before `fmt` is
 * formatted and on return, so "%m" in `fmt` names the error: upk_err(e, UPK_ERR_IO, r, "%s: %m", path). */
int upk_err(UpkErr *e, UpkErrKind kind, int r, const char *fmt, ...) _printf_(4, 5);
/* Prepend "context: " to the message already in `e`; returns e->code (or -EIO if none). */
int upk_err_prefix(UpkErr *e, const char *fmt, ...) _printf_(2, 3);
void upk_err_clear(UpkErr *e);
/* A failed allocation: upk_err(e, UPK_ERR_IO, -ENOMEM, "out of memory"). */
int upk_err_oom(UpkErr *e);
/* For the boundaries where an error reaches a person (a bus reply, LastError, a log line, the CLI's
 * stderr): when `r` is an error and `e` holds none or an empty message, fill it with "WHAT: strerror"
 * (fmt says what failed), so no person sees an empty message. Returns r (-EIO for r >= 0). A path that
 * gets here without a message is a bug to fix where the error starts; this is the net under it. */
int upk_err_ensure(UpkErr *e, int r, const char *fmt, ...) _printf_(3, 4);
/* Append OpenSSL's queued error strings (": reason") to the message and clear the queue. */
void upk_err_append_openssl(UpkErr *e);

const char *upk_err_kind_to_string(UpkErrKind k);
