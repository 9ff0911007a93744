/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "error.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>

int upk_err(UpkErr *e, UpkErrKind kind, int r, const char *fmt, ...)
{
        va_list ap;

        if (r >= 0)
                r = -EIO;
        if (e && e->kind == UPK_ERR_NONE) {
                e->kind = kind;
                e->code = r;
                errno = -r; /* "%m" in fmt */
                va_start(ap, fmt);
                vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
                va_end(ap);
        }
        errno = -r;
        return r;
}

int upk_err_prefix(UpkErr *e, const char *fmt, ...)
{
        char prefix[UPK_ERR_MSG_MAX / 2];
        size_t plen, mlen;
        va_list ap;

        if (!e || e->kind == UPK_ERR_NONE)
                return e && e->code < 0 ? e->code : -EIO;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        plen = strlen(prefix);
        mlen = strnlen(e->msg, sizeof(e->msg) - 1);
        if (mlen > sizeof(e->msg) - 1 - plen - 2)
                mlen = sizeof(e->msg) - 1 - plen - 2;
        memmove(e->msg + plen + 2, e->msg, mlen);
        e->msg[plen + 2 + mlen] = 0;
        memcpy(e->msg, prefix, plen);
        e->msg[plen] = ':';
        e->msg[plen + 1] = ' ';
        return e->code;
}

int upk_err_oom(UpkErr *e)
{
        return upk_err(e, UPK_ERR_IO, -ENOMEM, "out of memory");
}

int upk_err_ensure(UpkErr *e, int r, const char *fmt, ...)
{
        char what[UPK_ERR_MSG_MAX / 2];
        va_list ap;

        if (r >= 0)
                r = -EIO;
        if (!e || (e->kind != UPK_ERR_NONE && e->msg[0]))
                return r;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        if (e->kind == UPK_ERR_NONE) {
                e->kind = UPK_ERR_IO;
                e->code = r;
        }
        snprintf(e->msg, sizeof(e->msg), "%s: %s", what, strerror(e->code < 0 ? -e->code : EIO));
        errno = -r;
        return r;
}

void upk_err_clear(UpkErr *e)
{
        if (!e)
                return;
        e->kind = UPK_ERR_NONE;
        e->code = 0;
        e->msg[0] = 0;
}

void upk_err_append_openssl(UpkErr *e)
{
        unsigned long code;
        size_t n;

        while ((code = ERR_get_error()) != 0) {
                const char *reason = ERR_reason_error_string(code);
                if (!e || !reason)
                        continue;
                n = strlen(e->msg);
                if (strstr(e->msg, reason))
                        continue;
                snprintf(e->msg + n, sizeof(e->msg) - n, " (%s)", reason);
        }
}

static const char *const kind_table[_UPK_ERR_KIND_MAX] = {
        [UPK_ERR_NONE] = "none",
        [UPK_ERR_IO] = "io",
        [UPK_ERR_FORMAT] = "format",
        [UPK_ERR_MANIFEST] = "manifest",
        [UPK_ERR_SIGNATURE] = "signature",
        [UPK_ERR_PAYLOAD] = "payload",
        [UPK_ERR_COMPATIBLE] = "compatible",
        [UPK_ERR_DOWNGRADE] = "downgrade",
        [UPK_ERR_CONFIG] = "config",
        [UPK_ERR_NETWORK] = "network",
};

DEFINE_STRING_TABLE_TO_STRING(upk_err_kind, UpkErrKind, kind_table)
