/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/err.h>
#include <openssl/evp.h>

#include "tests.h"

TEST(the_first_error_wins)
{
        UpkErr e = {};

        ASSERT_EQ(upk_err(&e, UPK_ERR_PAYLOAD, -EBADMSG, "payload \"%s\": sha256 mismatch", "rootfs"),
                  -EBADMSG);
        ASSERT_EQ(upk_err(&e, UPK_ERR_IO, -ENOSPC, "later"), -ENOSPC); /* returned, not recorded */
        ASSERT_EQ(e.kind, UPK_ERR_PAYLOAD);
        ASSERT_EQ(e.code, -EBADMSG);
        ASSERT_STREQ(e.msg, "payload \"rootfs\": sha256 mismatch");
        /* a non-negative code is not an error code: it becomes -EIO */
        upk_err_clear(&e);
        ASSERT_EQ(upk_err(&e, UPK_ERR_IO, 0, "odd"), -EIO);
        ASSERT_EQ(e.code, -EIO);
        /* no UpkErr to fill: still returns the code */
        ASSERT_EQ(upk_err(NULL, UPK_ERR_IO, -EPERM, "x"), -EPERM);
        upk_err_clear(NULL);
}

TEST(errno_is_the_error_so_percent_m_names_it)
{
        char want[256];
        UpkErr e = {};

        errno = 0;
        ASSERT_EQ(upk_err(&e, UPK_ERR_IO, -ENOENT, "cannot read %s: %m", "/etc/x"), -ENOENT);
        snprintf(want, sizeof(want), "cannot read /etc/x: %s", strerror(ENOENT));
        ASSERT_STREQ(e.msg, want);
        ASSERT_EQ(errno, ENOENT);
        /* not recorded (the first error wins), errno is still set */
        errno = 0;
        ASSERT_EQ(upk_err(&e, UPK_ERR_IO, -EPERM, "later: %m"), -EPERM);
        ASSERT_EQ(errno, EPERM);
        ASSERT_STREQ(e.msg, want);
        errno = 0;
        ASSERT_EQ(upk_err(NULL, UPK_ERR_IO, -EACCES, "%m"), -EACCES);
        ASSERT_EQ(errno, EACCES);
        /* a non-negative code is -EIO, also for %m */
        upk_err_clear(&e);
        ASSERT_EQ(upk_err(&e, UPK_ERR_IO, 0, "odd: %m"), -EIO);
        snprintf(want, sizeof(want), "odd: %s", strerror(EIO));
        ASSERT_STREQ(e.msg, want);
        ASSERT_EQ(errno, EIO);
}

TEST(oom_and_ensure)
{
        char want[256];
        UpkErr e = {};

        ASSERT_EQ(upk_err_oom(&e), -ENOMEM);
        ASSERT_EQ(e.kind, UPK_ERR_IO);
        ASSERT_STREQ(e.msg, "out of memory");
        ASSERT_EQ(upk_err_oom(NULL), -ENOMEM);

        /* a message already there is kept */
        ASSERT_EQ(upk_err_ensure(&e, -ENOMEM, "the install failed"), -ENOMEM);
        ASSERT_STREQ(e.msg, "out of memory");
        /* no error recorded: one naming what failed and why */
        upk_err_clear(&e);
        ASSERT_EQ(upk_err_ensure(&e, -ENOENT, "the %s failed", "rollback"), -ENOENT);
        snprintf(want, sizeof(want), "the rollback failed: %s", strerror(ENOENT));
        ASSERT_STREQ(e.msg, want);
        ASSERT_EQ(e.kind, UPK_ERR_IO);
        ASSERT_EQ(e.code, -ENOENT);
        /* a kind without a message keeps its kind and code */
        upk_err_clear(&e);
        e.kind = UPK_ERR_SIGNATURE;
        e.code = -EBADMSG;
        ASSERT_EQ(upk_err_ensure(&e, -EBADMSG, "verify"), -EBADMSG);
        snprintf(want, sizeof(want), "verify: %s", strerror(EBADMSG));
        ASSERT_STREQ(e.msg, want);
        ASSERT_EQ(e.kind, UPK_ERR_SIGNATURE);
        /* not an error code: -EIO; no UpkErr: just the code */
        upk_err_clear(&e);
        ASSERT_EQ(upk_err_ensure(&e, 0, "x"), -EIO);
        ASSERT_TRUE(e.msg[0] != 0);
        ASSERT_EQ(upk_err_ensure(NULL, -EPERM, "x"), -EPERM);
}

TEST(prefix_adds_context_and_never_overflows)
{
        UpkErr e = {};
        char long_prefix[700];

        ASSERT_EQ(upk_err_prefix(&e, "nothing to prefix"), -EIO);
        ASSERT_STREQ(e.msg, "");
        upk_err(&e, UPK_ERR_CONFIG, -EINVAL, "bad value");
        ASSERT_EQ(upk_err_prefix(&e, "[slot.%s]", "rootfs.A"), -EINVAL);
        ASSERT_STREQ(e.msg, "[slot.rootfs.A]: bad value");

        /* a message at the limit and a long prefix: cut, terminated, the prefix kept */
        upk_err_clear(&e);
        memset(e.msg, 'm', sizeof(e.msg) - 1);
        e.msg[sizeof(e.msg) - 1] = 0;
        e.kind = UPK_ERR_IO;
        e.code = -EIO;
        memset(long_prefix, 'p', sizeof(long_prefix) - 1);
        long_prefix[sizeof(long_prefix) - 1] = 0;
        ASSERT_EQ(upk_err_prefix(&e, "%s", long_prefix), -EIO);
        ASSERT_EQ(strlen(e.msg), sizeof(e.msg) - 1);
        ASSERT_EQ(strspn(e.msg, "p"), UPK_ERR_MSG_MAX / 2 - 1);
        ASSERT_TRUE(strncmp(e.msg + UPK_ERR_MSG_MAX / 2 - 1, ": mmm", 5) == 0);
}

TEST(kinds_have_names)
{
        char joined[256] = "";

        for (UpkErrKind k = 0; k < _UPK_ERR_KIND_MAX; k++) {
                ASSERT_TRUE(upk_err_kind_to_string(k) != NULL);
                strncat(joined, k ? " " : "", sizeof(joined) - strlen(joined) - 1);
                strncat(joined, upk_err_kind_to_string(k), sizeof(joined) - strlen(joined) - 1);
        }
        ASSERT_STREQ(joined,
                     "none io format manifest signature payload compatible downgrade config network");
        ASSERT_TRUE(upk_err_kind_to_string(_UPK_ERR_KIND_MAX) == NULL);
        ASSERT_TRUE(upk_err_kind_to_string(_UPK_ERR_KIND_INVALID) == NULL);
}

TEST(openssl_reasons_are_appended_once)
{
        UpkErr e = {};

        upk_err(&e, UPK_ERR_SIGNATURE, -EBADMSG, "signature");
        /* queue the same OpenSSL error twice */
        ERR_raise(ERR_LIB_EVP, EVP_R_UNSUPPORTED_ALGORITHM);
        ERR_raise(ERR_LIB_EVP, EVP_R_UNSUPPORTED_ALGORITHM);
        upk_err_append_openssl(&e);
        ASSERT_STREQ(e.msg, "signature (unsupported algorithm)");
        ASSERT_EQ(ERR_peek_error(), 0); /* the queue is cleared */
        /* without an UpkErr the queue is still cleared */
        ERR_raise(ERR_LIB_EVP, EVP_R_UNSUPPORTED_ALGORITHM);
        upk_err_append_openssl(NULL);
        ASSERT_EQ(ERR_peek_error(), 0);
}
