/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "tests.h"
#include "util.h"

/* The case's folder is under /tmp (sticky, root's, writable by all): that alone is no reason to refuse. */
TEST(trusted_file_in_a_private_folder)
{
        _cleanup_free_ char *f = test_cwd_path("keyring.pem");
        UpkErr e = {};

        test_write_str("keyring.pem", "x");
        ASSERT_OK(chmod("keyring.pem", 0644));
        ASSERT_OK_E(path_check_trusted(f, false, &e), &e);
        ASSERT_OK(chmod("keyring.pem", 0755));
        ASSERT_OK_E(path_check_trusted(f, false, &e), &e);
        ASSERT_UPK_ERR(path_check_trusted("/nonexistent/upkeep", false, &e), &e, -ENOENT, UPK_ERR_CONFIG,
                       "/nonexistent/upkeep: No such file or directory");
}

TEST(trusted_refuses_what_others_may_write)
{
        _cleanup_free_ char *f = test_cwd_path("keyring.pem"), *dir = test_cwd_path("d"),
                            *inner = test_cwd_path("d/check"), *link = test_cwd_path("link"), *want = NULL;
        UpkErr e = {};

        test_write_str("keyring.pem", "x");
        ASSERT_OK(chmod("keyring.pem", 0666));
        want = strdup_printf("%s is writable by others (mode 0666): run chmod o-w %s", f, f);
        ASSERT_UPK_ERR(path_check_trusted(f, false, &e), &e, -EPERM, UPK_ERR_CONFIG, want);

        /* a folder above it that anyone may write, sticky or not when it is not root's own /tmp-like */
        ASSERT_OK(mkdir("d", 0755));
        test_write_str("d/check", "x");
        ASSERT_OK(chmod("d", 0777));
        free(want);
        want = strdup_printf("%s: the folder %s is writable by others (mode 0777): run chmod o-w %s", inner,
                             dir, dir);
        ASSERT_UPK_ERR(path_check_trusted(inner, false, &e), &e, -EPERM, UPK_ERR_CONFIG, want);
        /* through a symbolic link, the real folders count */
        ASSERT_OK(symlink("d/check", "link"));
        free(want);
        want = strdup_printf("%s: the folder %s is writable by others (mode 0777): run chmod o-w %s", link,
                             dir, dir);
        ASSERT_UPK_ERR(path_check_trusted(link, false, &e), &e, -EPERM, UPK_ERR_CONFIG, want);
        ASSERT_OK(chmod("d", 01777));
        if (geteuid() == 0) /* root's sticky folder is fine, like /tmp */
                ASSERT_OK_E(path_check_trusted(inner, false, &e), &e);
        ASSERT_OK(chmod("d", 0755));
        ASSERT_OK_E(path_check_trusted(inner, false, &e), &e);

        /* another user's file or folder */
        if (geteuid() == 0) {
                ASSERT_OK(chown("d/check", 4242, 0));
                free(want);
                want = strdup_printf("%s is owned by uid 4242, not by root: run chown root %s", inner,
                                     inner);
                ASSERT_UPK_ERR(path_check_trusted(inner, false, &e), &e, -EPERM, UPK_ERR_CONFIG, want);
                ASSERT_OK(chown("d/check", 0, 0));
                ASSERT_OK(chown("d", 4242, 0));
                ASSERT_UPK_ERR(path_check_trusted(inner, false, &e), &e, -EPERM, UPK_ERR_CONFIG,
                               "is owned by uid 4242, not by root: run chown root ");
                ASSERT_OK(chown("d", 0, 0));
        }
}

/* A group may write it: fine when it is root's group or ours, refused for any other. */
TEST(trusted_refuses_what_another_group_may_write)
{
        _cleanup_free_ char *dir = test_cwd_path("d"), *f = test_cwd_path("d/check"), *want = NULL;
        gid_t other = getegid() == 4343 ? 4344 : 4343;
        UpkErr e = {};

        ASSERT_OK(mkdir("d", 0755));
        test_write_str("d/check", "x");
        ASSERT_OK(chmod("d/check", 0664));
        ASSERT_OK(chmod("d", 0775));
        ASSERT_OK_E(path_check_trusted(f, false, &e), &e); /* our own group */
        if (geteuid() != 0)
                test_skip("changing a file's group to another one needs root");
        ASSERT_OK(chown("d/check", 0, other));
        want = strdup_printf("%s is writable by the group with gid %u (mode 0664): run chmod g-w %s", f,
                             (unsigned)other, f);
        ASSERT_UPK_ERR(path_check_trusted(f, false, &e), &e, -EPERM, UPK_ERR_CONFIG, want);
        ASSERT_OK(chmod("d/check", 0644));
        ASSERT_OK_E(path_check_trusted(f, false, &e), &e);
        ASSERT_OK(chown("d", 0, other));
        free(want);
        want = strdup_printf("%s: the folder %s is writable by the group with gid %u (mode 0775): run chmod "
                             "g-w %s",
                             f, dir, (unsigned)other, dir);
        ASSERT_UPK_ERR(path_check_trusted(f, false, &e), &e, -EPERM, UPK_ERR_CONFIG, want);
        ASSERT_OK(chmod("d", 01775)); /* sticky and root's, like /tmp */
        ASSERT_OK_E(path_check_trusted(f, false, &e), &e);
        ASSERT_OK(chmod("d", 0755));
        ASSERT_OK_E(path_check_trusted(f, false, &e), &e);
        ASSERT_OK(chown("d", 0, 0));
        ASSERT_OK(chmod("d", 0775)); /* root's group */
        ASSERT_OK_E(path_check_trusted(f, false, &e), &e);
}

TEST(trusted_secret_is_not_readable_by_others)
{
        _cleanup_free_ char *f = test_cwd_path("client.key"), *want = NULL;
        UpkErr e = {};

        test_write_str("client.key", "x");
        ASSERT_OK(chmod("client.key", 0644));
        ASSERT_OK_E(path_check_trusted(f, false, &e), &e);
        want = strdup_printf("%s is readable by others (mode 0644), but holds a secret: run chmod o-r %s", f,
                             f);
        ASSERT_UPK_ERR(path_check_trusted(f, true, &e), &e, -EPERM, UPK_ERR_CONFIG, want);
        ASSERT_OK(chmod("client.key", 0640));
        ASSERT_OK_E(path_check_trusted(f, true, &e), &e);
}
