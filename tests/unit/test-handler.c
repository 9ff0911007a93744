/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "handler.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "abi-time.h"
#include "fileio.h"
#include "tests.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char *abs_path(const char *name)
{
        char cwd[4096];
        char *p;

        ASSERT_TRUE(getcwd(cwd, sizeof(cwd)));
        p = strdup_printf("%s/%s", cwd, name);
        ASSERT_TRUE(p);
        return p;
}

static struct upkeep_payload payload(const char *handler, const char *dest, uint64_t size)
{
        return (struct upkeep_payload){
                .struct_size = sizeof(struct upkeep_payload),
                .name = "rootfs",
                .handler = handler,
                .slot_class = "rootfs",
                .slot_name = "B",
                .destination = dest,
                .size = size,
                .sha256 = SHA,
                .version = "2.1.0",
                .compatible = "acme-gw",
        };
}

static uint8_t *pattern(size_t size, unsigned seed)
{
        uint8_t *p = malloc(size ?: 1);

        ASSERT_TRUE(p);
        for (size_t i = 0; i < size; i++)
                p[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 9)) & 0xff);
        return p;
}

/* begin, write in `chunk`-byte blocks, finish. */
static int install(Handler *h, const struct upkeep_payload *p, const void *data, size_t size, size_t chunk,
                   UpkErr *err)
{
        const uint8_t *d = data;
        int r;

        upk_err_clear(err);
        r = handler_begin(h, p, err);
        for (size_t off = 0; r >= 0 && off < size; off += chunk)
                r = handler_write(h, d + off, size - off < chunk ? size - off : chunk, err);
        if (r >= 0)
                r = handler_finish(h, err);
        return r;
}

static char *contents(const char *path, size_t *ret_size)
{
        char *buf = NULL;
        int r = read_full_file(path, 64u * 1024u * 1024u, &buf, ret_size);

        if (r < 0)
                test_fail("cannot read %s: %s", path, strerror(-r));
        return buf;
}

static bool exists(const char *path)
{
        struct stat st;
        return lstat(path, &st) == 0;
}

static size_t count_prefixed(const char *dir, const char *prefix)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        ASSERT_TRUE(d);
        while ((de = readdir(d)))
                n += strneq(de->d_name, prefix, strlen(prefix));
        closedir(d);
        return n;
}

static size_t count_fds(void)
{
        return count_prefixed("/proc/self/fd", "");
}

/* ---- opening ---- */

TEST(open_builtin_and_refusals)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        UpkErr err = {};

        ASSERT_OK(handler_open("raw", ".", &h, &err));
        h = handler_free(h);
        ASSERT_OK(handler_open("archive", ".", &h, &err));
        h = handler_free(h);
        ASSERT_OK(handler_open("file", NULL, &h, &err));
        h = handler_free(h);

        ASSERT_UPK_ERR(handler_open("", ".", &h, &err), &err, -EINVAL, UPK_ERR_CONFIG, "empty handler name");
        ASSERT_UPK_ERR(handler_open("exec:", ".", &h, &err), &err, -EINVAL, UPK_ERR_CONFIG,
                       "must be a plain file name");
        ASSERT_UPK_ERR(handler_open("exec:../sh", ".", &h, &err), &err, -EINVAL, UPK_ERR_CONFIG,
                       "must be a plain file name");
        ASSERT_UPK_ERR(handler_open("exec:missing", ".", &h, &err), &err, -ENOENT, UPK_ERR_CONFIG,
                       "handler program ./missing: No such file or directory");
        test_write_file("noexec", "#!/bin/sh\n", 10);
        ASSERT_UPK_ERR(handler_open("exec:noexec", ".", &h, &err), &err, -EACCES, UPK_ERR_CONFIG,
                       "handler program ./noexec is not executable");
        ASSERT_OK(mkdir("adir", 0755));
        ASSERT_UPK_ERR(handler_open("exec:adir", ".", &h, &err), &err, -EACCES, UPK_ERR_CONFIG,
                       "handler program ./adir is not a regular file");
        /* a program, or a folder above it, that others may change is not run as root */
        ASSERT_OK(mkdir("handlers", 0755));
        test_write_file("handlers/prog", "#!/bin/sh\n", 10);
        ASSERT_OK(chmod("handlers/prog", 0777));
        ASSERT_UPK_ERR(
                handler_open("exec:prog", "handlers", &h, &err), &err, -EPERM, UPK_ERR_CONFIG,
                "handler exec:prog refused: handlers/prog is writable by others (mode 0777): run chmod "
                "o-w handlers/prog");
        ASSERT_OK(chmod("handlers/prog", 0755));
        ASSERT_OK(chmod("handlers", 0777));
        ASSERT_UPK_ERR(handler_open("exec:prog", "handlers", &h, &err), &err, -EPERM, UPK_ERR_CONFIG,
                       "handler exec:prog refused: handlers/prog: the folder ");
        ASSERT_TRUE(strstr(err.msg, "/handlers is writable by others (mode 0777): run chmod o-w "));
        test_write_file("handlers/plug.so", "not an ELF file", 15);
        ASSERT_UPK_ERR(handler_open("plug", "handlers", &h, &err), &err, -EPERM, UPK_ERR_CONFIG,
                       "handler plug refused: handlers/plug.so: the folder ");
        ASSERT_UPK_ERR(handler_open("../evil", ".", &h, &err), &err, -EINVAL, UPK_ERR_CONFIG,
                       "is not raw, archive, file, exec:NAME or a plugin name");
        ASSERT_UPK_ERR(handler_open("odd:thing", ".", &h, &err), &err, -EINVAL, UPK_ERR_CONFIG,
                       "handler \"odd:thing\" is not raw");
        ASSERT_TRUE(h == NULL);
}

/* ---- raw ---- */

TEST(raw_file_slot_gets_the_bytes)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *data = pattern(300000, 1);
        _cleanup_free_ uint8_t *old = pattern(500000, 2);
        _cleanup_free_ char *got = NULL;
        struct upkeep_payload p = payload("raw", "slot.img", 300000);
        UpkErr err = {};
        size_t n;

        test_write_file("slot.img", old, 500000); /* longer than the new image: cut to size */
        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, data, 300000, 7777, &err), &err);
        ASSERT_OK_E(handler_commit(h, &err), &err);
        got = contents("slot.img", &n);
        ASSERT_EQ(n, 300000);
        ASSERT_TRUE(memcmp(got, data, n) == 0);
}

TEST(raw_creates_a_missing_file_slot)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *got = NULL;
        struct upkeep_payload p = payload("raw", "new.img", 5);
        UpkErr err = {};
        size_t n;

        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, "hello", 5, 2, &err), &err);
        ASSERT_OK_E(handler_commit(h, &err), &err);
        got = contents("new.img", &n);
        ASSERT_EQ(n, 5);
        ASSERT_STREQ(got, "hello");
}

TEST(raw_refuses_other_destinations)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        struct upkeep_payload p = payload("raw", "/dev/null", 5);
        UpkErr err = {};

        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_UPK_ERR(
                handler_begin(h, &p, &err), &err, -ENOTBLK, UPK_ERR_IO,
                "payload \"rootfs\": handler raw: /dev/null is neither a block device nor a regular file");
        h = handler_free(h);

        ASSERT_OK(mkdir("dir", 0755));
        p.destination = "dir";
        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -ENOTBLK, UPK_ERR_IO, "dir is neither");
}

TEST(size_is_enforced_both_ways)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        struct upkeep_payload p = payload("raw", "slot.img", 4);
        UpkErr err = {};

        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_OK(handler_begin(h, &p, &err));
        ASSERT_OK(handler_write(h, "abc", 3, &err));
        ASSERT_UPK_ERR(handler_write(h, "de", 2, &err), &err, -EFBIG, UPK_ERR_IO,
                       "payload \"rootfs\": handler raw: more than the 4 bytes the manifest announces");
        /* after a failed write only rollback is left */
        ASSERT_UPK_ERR(handler_finish(h, &err), &err, -EINVAL, UPK_ERR_IO,
                       "finish() called while the payload is failed");
        handler_rollback(h);
        h = handler_free(h);

        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_OK(handler_begin(h, &p, &err));
        ASSERT_OK(handler_write(h, "abc", 3, &err));
        ASSERT_UPK_ERR(handler_finish(h, &err), &err, -EBADMSG, UPK_ERR_IO,
                       "got 3 bytes, the manifest announces 4");
        h = handler_free(h);

        /* unknown size (compressed, no installed_size): no limit from the wrapper */
        p.size = UPKEEP_PAYLOAD_SIZE_UNKNOWN;
        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, "0123456789", 10, 3, &err), &err);
        ASSERT_OK_E(handler_commit(h, &err), &err);
}

/* A private mount namespace for this (forked) test case; false where we may not have one. */
static bool private_mounts(void)
{
        if (unshare(CLONE_NEWNS) < 0)
                return false;
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return false;
        return true;
}

TEST(raw_reports_no_space)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *data = pattern(256 * 1024, 3);
        _cleanup_free_ char *slot = NULL;
        struct upkeep_payload p;
        UpkErr err = {};

        ASSERT_OK(mkdir("small", 0755));
        if (!private_mounts() || mount("tmpfs", "small", "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") < 0) {
                printf("skipped: cannot mount a small tmpfs here: %m\n");
                return;
        }
        slot = abs_path("small/slot.img");
        p = payload("raw", slot, 256 * 1024);
        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_OK(handler_begin(h, &p, &err));
        int r = 0;
        for (size_t off = 0; r >= 0 && off < 256 * 1024; off += 4096)
                r = handler_write(h, data + off, 4096, &err);
        ASSERT_EQ(r, -ENOSPC);
        ASSERT_EQ(err.kind, UPK_ERR_IO);
        if (!strstr(err.msg, ": no space left after ") || !strstr(err.msg, "small/slot.img"))
                test_fail("message: %s", err.msg);
}

/* A loop device over a file of `size` bytes that goes away when the process ends. */
static int loop_device(const char *file, uint64_t size, char *ret_path, size_t path_size, int *ret_fd)
{
        _cleanup_close_ int ctl = -EBADF, back = -EBADF;
        struct loop_config cfg = {};
        int nr, fd;

        back = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (back < 0 || ftruncate(back, (off_t)size) < 0)
                return -errno;
        ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0)
                return -errno;
        for (int tries = 0; tries < 8; tries++) {
                nr = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (nr < 0)
                        return -errno;
                snprintf(ret_path, path_size, "/dev/loop%d", nr);
                fd = open(ret_path, O_RDWR | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                cfg.fd = (uint32_t)back;
                cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
                if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
                        *ret_fd = fd;
                        return 0;
                }
                safe_close(fd);
                if (errno != EBUSY)
                        return -errno;
        }
        return -EBUSY;
}

TEST(raw_block_device_size_check)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *data = pattern(64 * 1024, 4);
        _cleanup_close_ int loop_fd = -EBADF;
        char dev[64], back[64 * 1024];
        struct upkeep_payload p;
        UpkErr err = {};
        int r;

        r = loop_device("backing.img", 1024 * 1024, dev, sizeof(dev), &loop_fd);
        if (r < 0) {
                printf("skipped: no loop devices: %s\n", strerror(-r));
                return;
        }
        p = payload("raw", dev, 2 * 1024 * 1024);
        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -EFBIG, UPK_ERR_IO,
                       "2097152 bytes do not fit /dev/loop");
        ASSERT_TRUE(strstr(err.msg, "(1048576 bytes)"));
        h = handler_free(h);

        p.size = 64 * 1024;
        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, data, 64 * 1024, 10000, &err), &err);
        ASSERT_OK_E(handler_commit(h, &err), &err);
        ASSERT_EQ(pread(loop_fd, back, sizeof(back), 0), (ssize_t)sizeof(back));
        ASSERT_TRUE(memcmp(back, data, sizeof(back)) == 0);
}

/* ---- archive ---- */

typedef struct TarEntry {
        const char *name;
        char type;        /* f file, d folder, l symlink, h hard link */
        const char *data; /* file contents, link target */
        mode_t mode;
} TarEntry;

#define TAR_MAX (1024u * 1024u)

static uint8_t *make_tar(const TarEntry *e, size_t n, bool gzip, size_t *ret_size)
{
        struct archive *a = archive_write_new();
        uint8_t *buf = malloc(TAR_MAX);
        size_t used = 0;

        ASSERT_TRUE(a && buf);
        ASSERT_EQ(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        if (gzip)
                ASSERT_EQ(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        ASSERT_EQ(archive_write_open_memory(a, buf, TAR_MAX, &used), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++) {
                struct archive_entry *x = archive_entry_new();
                archive_entry_set_pathname(x, e[i].name);
                ASSERT_OK(upk_archive_entry_set_mtime(x, 1700000000));
                archive_entry_set_uid(x, 0);
                archive_entry_set_gid(x, 0);
                switch (e[i].type) {
                case 'f':
                        archive_entry_set_filetype(x, AE_IFREG);
                        archive_entry_set_perm(x, e[i].mode ?: 0644);
                        archive_entry_set_size(x, (la_int64_t)strlen(e[i].data));
                        break;
                case 'd':
                        archive_entry_set_filetype(x, AE_IFDIR);
                        archive_entry_set_perm(x, e[i].mode ?: 0755);
                        break;
                case 'l':
                        archive_entry_set_filetype(x, AE_IFLNK);
                        archive_entry_set_perm(x, 0777);
                        archive_entry_set_symlink(x, e[i].data);
                        break;
                case 'h':
                        archive_entry_set_filetype(x, AE_IFREG);
                        archive_entry_set_perm(x, 0644);
                        archive_entry_set_hardlink(x, e[i].data);
                        break;
                default:
                        test_fail("bad type %c", e[i].type);
                }
                ASSERT_EQ(archive_write_header(a, x), ARCHIVE_OK);
                if (e[i].type == 'f')
                        ASSERT_EQ(archive_write_data(a, e[i].data, strlen(e[i].data)),
                                  (la_ssize_t)strlen(e[i].data));
                archive_entry_free(x);
        }
        ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        *ret_size = used;
        return buf;
}

static int install_tar_fs(const char *dest, const char *fstype, const TarEntry *e, size_t n, bool gzip,
                          size_t chunk, UpkErr *err)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *tar = NULL;
        struct upkeep_payload p;
        size_t size;
        int r;

        tar = make_tar(e, n, gzip, &size);
        p = payload("archive", dest, size);
        p.fstype = fstype;
        ASSERT_OK(handler_open("archive", ".", &h, err));
        r = install(h, &p, tar, size, chunk, err);
        if (r >= 0)
                r = handler_commit(h, err);
        return r;
}

static int install_tar(const char *dest, const TarEntry *e, size_t n, bool gzip, size_t chunk, UpkErr *err)
{
        return install_tar_fs(dest, NULL, e, n, gzip, chunk, err);
}

static const TarEntry tree[] = {
        { "etc", 'd' },
        { "etc/hostname", 'f', "gateway\n" },
        { "etc/secret", 'f', "s3cret\n", 0600 },
        { "usr", 'd' },
        { "usr/bin", 'd' },
        { "usr/bin/tool", 'f', "#!/bin/sh\necho tool\n", 0755 },
        { "usr/bin/alias", 'l', "tool" },
        { "bin", 'l', "usr/bin" },
        { "usr/bin/tool2", 'h', "usr/bin/tool" },
        { "abs-link", 'l', "/etc/hostname" }, /* absolute link targets are fine: never followed here */
        { "./var/", 'd' },
        { "var/empty", 'd', NULL, 0700 },
};

static void check_tree(const char *root)
{
        _cleanup_free_ char *hostname = NULL, *tool = NULL;
        _cleanup_free_ char *a = strdup_printf("%s/etc/hostname", root),
                            *b = strdup_printf("%s/usr/bin/tool", root);
        _cleanup_free_ char *c = strdup_printf("%s/usr/bin/alias", root),
                            *d = strdup_printf("%s/etc/secret", root);
        _cleanup_free_ char *e = strdup_printf("%s/usr/bin/tool2", root),
                            *f = strdup_printf("%s/var/empty", root);
        struct stat st, st2;
        char link[64] = "";

        hostname = contents(a, NULL);
        ASSERT_STREQ(hostname, "gateway\n");
        tool = contents(b, NULL);
        ASSERT_STREQ(tool, "#!/bin/sh\necho tool\n");
        ASSERT_OK(stat(b, &st));
        ASSERT_EQ(st.st_mode & 07777, 0755);
        ASSERT_EQ(st.st_mtime, 1700000000);
        ASSERT_OK(stat(d, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        ASSERT_TRUE(readlink(c, link, sizeof(link) - 1) > 0);
        ASSERT_STREQ(link, "tool");
        ASSERT_OK(stat(b, &st));
        ASSERT_OK(stat(e, &st2));
        ASSERT_EQ(st.st_ino, st2.st_ino);
        ASSERT_OK(stat(f, &st));
        ASSERT_TRUE(S_ISDIR(st.st_mode));
        ASSERT_EQ(st.st_mode & 07777, 0700);
}

TEST(archive_extracts_a_tree_and_replaces_old_contents)
{
        UpkErr err = {};

        ASSERT_OK(mkdir("slot", 0755));
        ASSERT_OK(mkdir("slot/old", 0755));
        test_write_file("slot/old/file", "x", 1);
        test_write_file("slot/stale", "x", 1);
        ASSERT_OK(symlink("/nonexistent", "slot/dangling"));
        ASSERT_OK_E(install_tar("slot", tree, ELEMENTSOF(tree), false, 777, &err), &err);
        check_tree("slot");
        ASSERT_FALSE(exists("slot/old"));
        ASSERT_FALSE(exists("slot/stale"));
        ASSERT_FALSE(exists("slot/dangling"));
}

TEST(archive_gzip_in_one_block_and_byte_by_byte)
{
        UpkErr err = {};

        ASSERT_OK(mkdir("slot", 0755));
        ASSERT_OK_E(install_tar("slot", tree, ELEMENTSOF(tree), true, TAR_MAX, &err), &err);
        check_tree("slot");
        ASSERT_OK_E(install_tar("slot", tree, ELEMENTSOF(tree), true, 1, &err), &err);
        check_tree("slot");
}

TEST(archive_folder_through_a_symlink)
{
        UpkErr err = {};

        ASSERT_OK(mkdir("real", 0755));
        ASSERT_OK(symlink("real", "slot"));
        ASSERT_OK_E(install_tar("slot", tree, ELEMENTSOF(tree), false, 4096, &err), &err);
        check_tree("real");
}

TEST(archive_refuses_dotdot)
{
        static const TarEntry bad[] = { { "ok", 'f', "fine" }, { "sub/../../x", 'f', "evil" } };
        UpkErr err = {};

        ASSERT_OK(mkdir("slot", 0755));
        ASSERT_UPK_ERR(install_tar("slot", bad, ELEMENTSOF(bad), false, 512, &err), &err, -EBADMSG,
                       UPK_ERR_IO, "archive member \"sub/../../x\" would land outside");
        ASSERT_FALSE(exists("x"));
}

TEST(archive_refuses_absolute)
{
        _cleanup_free_ char *abs = abs_path("outside");
        const TarEntry bad[] = { { abs, 'f', "evil" } };
        UpkErr err = {};

        ASSERT_OK(mkdir("slot", 0755));
        upk_err_clear(&err);
        int r = install_tar("slot", bad, ELEMENTSOF(bad), false, 512, &err);
        ASSERT_EQ(r, -EBADMSG);
        ASSERT_TRUE(strstr(err.msg, "would land outside"));
        ASSERT_FALSE(exists("outside"));
}

TEST(archive_refuses_hardlink_out)
{
        static const TarEntry bad[] = { { "h", 'h', "../../etc/passwd" } };
        UpkErr err = {};

        ASSERT_OK(mkdir("slot", 0755));
        ASSERT_UPK_ERR(install_tar("slot", bad, ELEMENTSOF(bad), false, 512, &err), &err, -EBADMSG,
                       UPK_ERR_IO, "links to \"../../etc/passwd\" outside");
}

TEST(archive_refuses_writing_through_a_symlink)
{
        _cleanup_free_ char *out = abs_path("outside");
        const TarEntry bad[] = { { "link", 'l', out }, { "link/evil", 'f', "evil" } };
        UpkErr err = {};

        ASSERT_OK(mkdir("slot", 0755));
        ASSERT_OK(mkdir("outside", 0755));
        upk_err_clear(&err);
        int r = install_tar("slot", bad, ELEMENTSOF(bad), false, 512, &err);
        if (r >= 0 || err.kind != UPK_ERR_IO ||
            !strstr(err.msg, "cannot extract \"link/evil\": Cannot extract through symlink"))
                test_fail("r=%d message: %s", r, err.msg);
        ASSERT_FALSE(exists("outside/evil"));
}

TEST(archive_emptying_the_slot_follows_no_symlink)
{
        static const TarEntry small[] = { { "new", 'f', "new" } };
        _cleanup_free_ char *out = abs_path("outside");
        UpkErr err = {};

        ASSERT_OK(mkdir("slot", 0755));
        ASSERT_OK(mkdir("slot/sub", 0755));
        ASSERT_OK(mkdir("outside", 0755));
        test_write_file("outside/keep", "keep", 4);
        ASSERT_OK(symlink(out, "slot/escape"));
        ASSERT_OK(symlink(out, "slot/sub/escape"));
        ASSERT_OK(symlink("/", "slot/root"));
        ASSERT_OK_E(install_tar("slot", small, ELEMENTSOF(small), false, 512, &err), &err);
        ASSERT_TRUE(exists("outside/keep"));
        ASSERT_FALSE(exists("slot/escape"));
        ASSERT_FALSE(exists("slot/sub"));
        ASSERT_FALSE(exists("slot/root"));
        ASSERT_TRUE(exists("slot/new"));
}

TEST(archive_refuses_garbage_and_truncation)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *junk = pattern(4096, 9), *tar = NULL;
        struct upkeep_payload p;
        UpkErr err = {};
        size_t size;

        ASSERT_OK(mkdir("slot", 0755));
        p = payload("archive", "slot", 4096);
        ASSERT_OK(handler_open("archive", ".", &h, &err));
        upk_err_clear(&err);
        int r = install(h, &p, junk, 4096, 1000, &err);
        if (r >= 0 || err.kind != UPK_ERR_IO ||
            !strstr(err.msg, "payload \"rootfs\": handler archive: cannot read the archive"))
                test_fail("r=%d message: %s", r, err.msg);
        h = handler_free(h);

        tar = make_tar(tree, ELEMENTSOF(tree), false, &size);
        p = payload("archive", "slot", 1300); /* cut inside the data of the second file */
        ASSERT_OK(handler_open("archive", ".", &h, &err));
        upk_err_clear(&err);
        r = install(h, &p, tar, 1300, 512, &err);
        if (r >= 0 || !strstr(err.msg, "handler archive: "))
                test_fail("r=%d message: %s", r, err.msg);
}

TEST(archive_rollback_mid_stream_joins)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *tar = NULL;
        struct upkeep_payload p;
        UpkErr err = {};
        size_t size;

        size_t fds = count_fds();

        ASSERT_OK(mkdir("slot", 0755));
        tar = make_tar(tree, ELEMENTSOF(tree), false, &size);
        p = payload("archive", "slot", size);
        ASSERT_OK(handler_open("archive", ".", &h, &err));
        ASSERT_OK(handler_begin(h, &p, &err));
        ASSERT_OK_E(handler_write(h, tar, size / 2, &err), &err);
        h = handler_free(h); /* rolls back: cancels and joins the thread */
        ASSERT_TRUE(h == NULL);
        ASSERT_EQ(count_fds(), fds);
}

/* Issue 12: until commit() nothing of the archive is in the slot but the staging folder (mode 0700); a
 * rollback, also after a complete extraction (the payload's sha256 failed at its end), removes it. */
TEST(archive_stages_until_commit_and_rollback_removes_it)
{
        static const TarEntry evil[] = {
                { "a.txt", 'f', "a" },
                { "evil_suid", 'f', "#!/bin/sh\nid\n", 04755 },
                { "dir", 'd', NULL, 0777 },
                { "dir/deep", 'f', "x", 02755 },
        };
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *tar = NULL;
        struct upkeep_payload p;
        struct stat st;
        UpkErr err = {};
        size_t size;

        ASSERT_OK(mkdir("slot", 0755));
        test_write_file("slot/old", "x", 1);
        tar = make_tar(evil, ELEMENTSOF(evil), false, &size);
        p = payload("archive", "slot", size);

        /* begin, every byte, no finish: the bundle found the sha256 wrong */
        ASSERT_OK(handler_open("archive", ".", &h, &err));
        ASSERT_OK_E(handler_begin(h, &p, &err), &err);
        ASSERT_OK(lstat("slot/.upkeep-staging", &st));
        ASSERT_TRUE(S_ISDIR(st.st_mode));
        ASSERT_EQ(st.st_mode & 07777, 0700);
        ASSERT_OK_E(handler_write(h, tar, size, &err), &err);
        ASSERT_EQ(count_prefixed("slot", ""), 3u); /* ".", ".." and the staging folder */
        handler_rollback(h);
        ASSERT_EQ(count_prefixed("slot", ""), 2u);
        h = handler_free(h);

        /* finished: still staged */
        ASSERT_OK(handler_open("archive", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, tar, size, 1000, &err), &err);
        ASSERT_EQ(count_prefixed("slot", ""), 3u);
        ASSERT_TRUE(exists("slot/.upkeep-staging/tree/evil_suid"));
        handler_rollback(h);
        ASSERT_EQ(count_prefixed("slot", ""), 2u);
        h = handler_free(h);

        /* committed: the tree in the slot, modes as in the archive, no staging folder */
        ASSERT_OK(handler_open("archive", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, tar, size, 1000, &err), &err);
        ASSERT_OK_E(handler_commit(h, &err), &err);
        ASSERT_FALSE(exists("slot/.upkeep-staging"));
        ASSERT_EQ(count_prefixed("slot", ""), 5u);
        ASSERT_OK(stat("slot/evil_suid", &st));
        ASSERT_EQ(st.st_mode & 07777, 04755);
        ASSERT_OK(stat("slot/dir/deep", &st));
        ASSERT_EQ(st.st_mode & 07777, 02755);
        ASSERT_OK(stat("slot", &st));
        ASSERT_EQ(st.st_mode & 07777, 0755);
}

TEST(archive_removes_a_staging_folder_a_crash_left)
{
        static const TarEntry small[] = { { "new", 'f', "new" } };
        UpkErr err = {};

        ASSERT_OK(mkdir("slot", 0755));
        ASSERT_OK(mkdir("slot/.upkeep-staging", 0700));
        ASSERT_OK(mkdir("slot/.upkeep-staging/tree", 0700));
        ASSERT_OK(mkdir("slot/.upkeep-staging/tree/sub", 0555));
        test_write_file("slot/.upkeep-staging/tree/half", "x", 1);
        ASSERT_OK_E(install_tar("slot", small, ELEMENTSOF(small), false, 512, &err), &err);
        ASSERT_EQ(count_prefixed("slot", ""), 3u);
        ASSERT_TRUE(exists("slot/new"));
}

TEST(archive_refuses_the_staging_name_and_deep_nesting)
{
        static const TarEntry bad[] = { { "ok", 'f', "fine" }, { "./.upkeep-staging/x", 'f', "x" } };
        static const TarEntry fine[] = { { "sub/.upkeep-staging", 'f', "x" },
                                         { ".upkeep-staging2", 'f', "y" } };
        char deep[2 * 300 + 8] = "";
        UpkErr err = {};

        ASSERT_OK(mkdir("slot", 0755));
        ASSERT_UPK_ERR(install_tar("slot", bad, ELEMENTSOF(bad), false, 512, &err), &err, -EBADMSG,
                       UPK_ERR_IO,
                       "archive member \"./.upkeep-staging/x\" uses the name .upkeep-staging, which upkeep "
                       "keeps for its staging folder");
        ASSERT_EQ(count_prefixed("slot", ""), 2u);
        ASSERT_OK_E(install_tar("slot", fine, ELEMENTSOF(fine), false, 512, &err), &err);
        ASSERT_TRUE(exists("slot/sub/.upkeep-staging") && exists("slot/.upkeep-staging2"));

        for (size_t i = 0; i < 300; i++)
                memcpy(deep + 2 * i, "d/", 2);
        deep[2 * 300] = 'f';
        const TarEntry too_deep[] = { { deep, 'f', "x" } };
        upk_err_clear(&err);
        ASSERT_EQ(install_tar("slot", too_deep, ELEMENTSOF(too_deep), false, 4096, &err), -ELOOP);
        ASSERT_TRUE(strstr(err.msg, "nests deeper than 254"));
        ASSERT_EQ(count_prefixed("slot", ""), 2u);
}

TEST(archive_refuses_a_plain_file)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        struct upkeep_payload p = payload("archive", "file", 10);
        UpkErr err = {};

        test_write_file("file", "x", 1);
        ASSERT_OK(handler_open("archive", ".", &h, &err));
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -ENOTDIR, UPK_ERR_IO,
                       "file is neither a folder nor a block device");
}

TEST(archive_block_device_gets_a_file_system)
{
        _cleanup_close_ int loop_fd = -EBADF;
        char dev[64];
        UpkErr err = {};
        int r;

        r = loop_device("backing.img", 16 * 1024 * 1024, dev, sizeof(dev), &loop_fd);
        if (r < 0) {
                printf("skipped: no loop devices: %s\n", strerror(-r));
                return;
        }
        if (!private_mounts()) {
                printf("skipped: no private mount namespace: %m\n");
                return;
        }
        if (access("/usr/sbin/mkfs.ext4", X_OK) < 0 && access("/sbin/mkfs.ext4", X_OK) < 0) {
                printf("skipped: mkfs.ext4 is not installed\n");
                return;
        }
        ASSERT_OK_E(install_tar(dev, tree, ELEMENTSOF(tree), true, 3000, &err), &err);
        /* unmounted again: we can mount it and look */
        ASSERT_OK(mkdir("mnt", 0755));
        ASSERT_OK(mount(dev, "mnt", "ext4", MS_RDONLY, NULL));
        check_tree("mnt");
        ASSERT_OK(umount("mnt"));

        /* [slot.*] fstype= chooses the file system */
        ASSERT_OK_E(install_tar_fs(dev, "ext2", tree, ELEMENTSOF(tree), false, 3000, &err), &err);
        ASSERT_OK(mount(dev, "mnt", "ext2", MS_RDONLY, NULL));
        check_tree("mnt");
        ASSERT_OK(umount("mnt"));
        upk_err_clear(&err);
        ASSERT_EQ(install_tar_fs(dev, "zfs", tree, ELEMENTSOF(tree), false, 3000, &err), -EOPNOTSUPP);
        ASSERT_TRUE(strstr(err.msg, "cannot make a \"zfs\" file system"));

        /* Rolled back while mounted (the payload's sha256 failed): the file system is left empty. */
        {
                _cleanup_(handler_freep) Handler *h = NULL;
                _cleanup_free_ uint8_t *tar = NULL;
                struct upkeep_payload p;
                size_t size;

                tar = make_tar(tree, ELEMENTSOF(tree), false, &size);
                p = payload("archive", dev, size);
                ASSERT_OK(handler_open("archive", ".", &h, &err));
                ASSERT_OK_E(handler_begin(h, &p, &err), &err);
                ASSERT_OK_E(handler_write(h, tar, size, &err), &err);
                handler_rollback(h);
                ASSERT_OK(mount(dev, "mnt", "ext4", MS_RDONLY, NULL));
                ASSERT_EQ(count_prefixed("mnt", ""), 2u);
                ASSERT_OK(umount("mnt"));
        }
}

/* ---- file ---- */

/* The file handler opens the target's folder with openat2(RESOLVE_NO_SYMLINKS), or, where the kernel (or
 * qemu-user) lacks it, by a walk from "/". Under qemu-user -L SYSROOT a path-opened "/" is the sysroot, so
 * that walk cannot reach a folder under /tmp: skip there (a real device runs no emulator). */
static void skip_when_emulated(void)
{
        if (test_emulated())
                test_skip("under qemu-user -L SYSROOT, \"/\" opened by path is the sysroot: the walk that "
                          "stands in for openat2 cannot reach the test's folder");
}

TEST(file_replaces_atomically_and_keeps_the_mode)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *target = abs_path("etc/app.conf"), *got = NULL;
        struct upkeep_payload p = payload("file", target, 8);
        struct stat st;
        UpkErr err = {};

        skip_when_emulated();
        p.slot_class = p.slot_name = NULL;
        ASSERT_OK(mkdir("etc", 0755));
        test_write_file("etc/app.conf", "old\n", 4);
        ASSERT_OK(chmod("etc/app.conf", 0640));
        ASSERT_OK(handler_open("file", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, "content\n", 8, 3, &err), &err);
        /* finished but not committed: the old file is still there */
        got = contents("etc/app.conf", NULL);
        ASSERT_STREQ(got, "old\n");
        free(got);
        ASSERT_EQ(count_prefixed("etc", ".#app.conf."), 1);
        ASSERT_OK_E(handler_commit(h, &err), &err);
        got = contents("etc/app.conf", NULL);
        ASSERT_STREQ(got, "content\n");
        ASSERT_OK(stat("etc/app.conf", &st));
        ASSERT_EQ(st.st_mode & 07777, 0640);
        ASSERT_EQ(count_prefixed("etc", ".#"), 0);
}

/* A power cut between the temporary file's creation and the rename leaves it behind: the next install of
 * the same target removes it (and only what has exactly the shape of its own temporary files). */
TEST(file_removes_what_a_killed_install_left)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *target = abs_path("app.conf"), *got = NULL;
        struct upkeep_payload p = payload("file", target, 3);
        struct stat st;
        UpkErr err = {};

        skip_when_emulated();
        p.slot_class = p.slot_name = NULL;
        test_write_file("app.conf", "old\n", 4);
        test_write_file(".#app.conf.Ab12Cd", "half", 4);  /* a killed run's */
        test_write_file(".#app.conf.zzzzzz", "half", 4);  /* another one */
        test_write_file(".#app.conf.toolong", "keep", 4); /* not of that shape */
        test_write_file(".#other.conf.Ab12Cd", "keep", 4);
        ASSERT_OK(mkdir(".#app.conf.dir123", 0755)); /* not a regular file */
        ASSERT_OK(symlink("app.conf", ".#app.conf.lnk123"));
        ASSERT_OK(handler_open("file", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, "new", 3, 3, &err), &err);
        ASSERT_EQ(count_prefixed(".", ".#app.conf."), 4); /* its own, .toolong, the folder, the link */
        ASSERT_EQ(access(".#app.conf.Ab12Cd", F_OK), -1);
        ASSERT_EQ(access(".#app.conf.zzzzzz", F_OK), -1);
        ASSERT_OK_E(handler_commit(h, &err), &err);
        got = contents("app.conf", NULL);
        ASSERT_STREQ(got, "new");
        ASSERT_OK(access(".#app.conf.toolong", F_OK));
        ASSERT_OK(access(".#other.conf.Ab12Cd", F_OK));
        ASSERT_OK(stat(".#app.conf.dir123", &st));
        ASSERT_OK(lstat(".#app.conf.lnk123", &st));
        ASSERT_TRUE(S_ISLNK(st.st_mode));
}

TEST(file_rollback_leaves_the_old_file)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *target = abs_path("app.conf"), *got = NULL;
        struct upkeep_payload p = payload("file", target, 3);
        UpkErr err = {};

        skip_when_emulated();
        test_write_file("app.conf", "old\n", 4);
        ASSERT_OK(handler_open("file", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, "new", 3, 3, &err), &err);
        handler_rollback(h);
        got = contents("app.conf", NULL);
        ASSERT_STREQ(got, "old\n");
        ASSERT_EQ(count_prefixed(".", ".#"), 0);
        /* and once rolled back, nothing more */
        ASSERT_UPK_ERR(handler_commit(h, &err), &err, -EINVAL, UPK_ERR_IO,
                       "commit() called while the payload is done");
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -EINVAL, UPK_ERR_IO,
                       "begin() called while the payload is done");
}

TEST(file_new_target_and_refusals)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *target = abs_path("new.conf"), *missing = abs_path("nodir/x.conf");
        struct upkeep_payload p = payload("file", target, 2);
        struct stat st;
        UpkErr err = {};

        skip_when_emulated();
        ASSERT_OK(handler_open("file", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, "hi", 2, 2, &err), &err);
        ASSERT_OK_E(handler_commit(h, &err), &err);
        ASSERT_OK(stat("new.conf", &st));
        ASSERT_EQ(st.st_mode & 07777, 0644);
        h = handler_free(h);

        p.destination = "relative.conf";
        ASSERT_OK(handler_open("file", ".", &h, &err));
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -EINVAL, UPK_ERR_IO,
                       "target relative.conf is not an absolute path to a file");
        h = handler_free(h);

        p.destination = missing;
        ASSERT_OK(handler_open("file", ".", &h, &err));
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -ENOENT, UPK_ERR_IO, "cannot open the folder ");
        h = handler_free(h);

        ASSERT_OK(mkdir("adir", 0755));
        _cleanup_free_ char *dir = abs_path("adir");
        p.destination = dir;
        ASSERT_OK(handler_open("file", ".", &h, &err));
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -EISDIR, UPK_ERR_IO, "is a folder");
}

/* The file handler writes where the manifest says: no symbolic link on the way, nothing but a regular
 * file (or nothing) replaced. */
TEST(file_refuses_links_fifos_and_linked_folders)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *link = abs_path("link.conf"), *fifo = abs_path("fifo"),
                            *via = abs_path("linked/app.conf"), *got = NULL, *want = NULL, *real = NULL;
        struct upkeep_payload p = payload("file", link, 3);
        struct stat st;
        UpkErr err = {};

        skip_when_emulated();
        p.slot_class = p.slot_name = NULL;
        test_write_file("elsewhere.conf", "old\n", 4);
        ASSERT_OK(symlink("elsewhere.conf", "link.conf"));
        ASSERT_OK(handler_open("file", ".", &h, &err));
        want = strdup_printf("target %s is a symbolic link: the file handler replaces only a regular file",
                             link);
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -ELOOP, UPK_ERR_IO, want);
        h = handler_free(h);
        ASSERT_OK(lstat("link.conf", &st));
        ASSERT_TRUE(S_ISLNK(st.st_mode));

        ASSERT_OK(mkfifo("fifo", 0600));
        p.destination = fifo;
        ASSERT_OK(handler_open("file", ".", &h, &err));
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -EINVAL, UPK_ERR_IO,
                       "fifo is not a regular file (a FIFO, socket or device)");
        h = handler_free(h);
        ASSERT_OK(lstat("fifo", &st));
        ASSERT_TRUE(S_ISFIFO(st.st_mode));

        /* a folder on the way that is a link: refused, also by the fallback without openat2 */
        ASSERT_OK(mkdir("real", 0755));
        ASSERT_OK(symlink("real", "linked"));
        p.destination = via;
        ASSERT_OK(handler_open("file", ".", &h, &err));
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -ELOOP, UPK_ERR_IO,
                       "goes through a symbolic link; name the real folder in the manifest");
        h = handler_free(h);
        ASSERT_EQ(count_prefixed("real", ".#"), 0);
        real = abs_path("real");
        ASSERT_EQ(open_dir_nofollow_walk(via), -ELOOP);
        _cleanup_free_ char *linked = abs_path("linked");
        ASSERT_EQ(open_dir_nofollow_walk(linked), -ELOOP);
        ASSERT_EQ(open_dir_nofollow(linked), -ELOOP);
        int fd = open_dir_nofollow_walk(real);
        ASSERT_TRUE(fd >= 0);
        close(fd);
        ASSERT_EQ(open_dir_nofollow("relative"), -EINVAL);

        /* the real folder works */
        free(got);
        got = abs_path("real/app.conf");
        p.destination = got;
        ASSERT_OK(handler_open("file", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, "new", 3, 3, &err), &err);
        ASSERT_OK_E(handler_commit(h, &err), &err);
}

/* ---- exec ---- */

static void script(const char *name, const char *body)
{
        _cleanup_free_ char *text = strdup_printf("#!/bin/sh\n%s", body);
        test_write_file(name, text, strlen(text));
        ASSERT_OK(chmod(name, 0755));
}

static const char copy_script[] = "echo \"$1\" >> calls.log\n"
                                  "case \"$1\" in\n"
                                  "install) env | grep -E '^(UPKEEP_|PATH=)' | sort > env.txt\n"
                                  "         cat > \"$UPKEEP_DESTINATION\" ;;\n"
                                  "commit)  echo \"$UPKEEP_PHASE\" > commit-phase.txt ;;\n"
                                  "esac\n";

TEST(exec_install_then_commit)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *data = pattern(1000000, 5);
        _cleanup_free_ char *got = NULL, *env = NULL, *calls = NULL, *phase = NULL,
                            *dest = abs_path("out.bin");
        struct upkeep_payload p = payload("exec:copy", dest, 1000000);
        UpkErr err = {};
        size_t n;

        script("copy", copy_script);
        ASSERT_OK(handler_open("exec:copy", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, data, 1000000, 100000, &err), &err);
        ASSERT_OK_E(handler_commit(h, &err), &err);
        got = contents("out.bin", &n);
        ASSERT_EQ(n, 1000000);
        ASSERT_TRUE(memcmp(got, data, n) == 0);
        calls = contents("calls.log", NULL);
        ASSERT_STREQ(calls, "install\ncommit\n");
        phase = contents("commit-phase.txt", NULL);
        ASSERT_STREQ(phase, "commit\n");
        env = contents("env.txt", NULL);
        _cleanup_free_ char *want = strdup_printf("PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                                                  "UPKEEP_COMPATIBLE=acme-gw\n"
                                                  "UPKEEP_DESTINATION=%s\n"
                                                  "UPKEEP_HANDLER=exec:copy\n"
                                                  "UPKEEP_PAYLOAD_NAME=rootfs\n"
                                                  "UPKEEP_PHASE=install\n"
                                                  "UPKEEP_SHA256=" SHA "\n"
                                                  "UPKEEP_SIZE=1000000\n"
                                                  "UPKEEP_SLOT_CLASS=rootfs\n"
                                                  "UPKEEP_SLOT_NAME=B\n"
                                                  "UPKEEP_VERSION=2.1.0\n",
                                                  dest);
        ASSERT_STREQ(env, want);
}

TEST(exec_failure_carries_its_output)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *calls = NULL;
        struct upkeep_payload p = payload("exec:fail", "/nowhere", 5);
        UpkErr err = {};

        script("fail", "echo \"$1\" >> calls.log\n"
                       "[ \"$1\" = install ] || exit 0\n"
                       "cat > /dev/null; echo progress; echo 'bad image: wrong board' >&2; exit 3\n");
        ASSERT_OK(handler_open("exec:fail", ".", &h, &err));
        ASSERT_UPK_ERR(install(h, &p, "hello", 5, 5, &err), &err, -EPROTO, UPK_ERR_IO,
                       "install exited with status 3: progress bad image: wrong board");
        ASSERT_TRUE(strstr(err.msg, "payload \"rootfs\": handler exec:fail: ./fail install"));
        h = handler_free(h); /* rolls back */
        calls = contents("calls.log", NULL);
        ASSERT_STREQ(calls, "install\nrollback\n");
}

TEST(exec_that_stops_reading_is_no_sigpipe)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *data = pattern(4 * 1024 * 1024, 6);
        struct upkeep_payload p = payload("exec:quit", "/nowhere", 4 * 1024 * 1024);
        size_t fds = count_fds();
        UpkErr err = {};

        script("quit",
               "[ \"$1\" = install ] || exit 0\nhead -c 1000 > /dev/null; echo 'no thanks' >&2; exit 4\n");
        ASSERT_OK(handler_open("exec:quit", ".", &h, &err));
        ASSERT_UPK_ERR(install(h, &p, data, 4 * 1024 * 1024, 256 * 1024, &err), &err, -EPROTO, UPK_ERR_IO,
                       "install stopped reading its input after ");
        ASSERT_TRUE(strstr(err.msg, "bytes and exited with status 4: no thanks"));
        h = handler_free(h);
        ASSERT_EQ(count_fds(), fds);
}

TEST(exec_timeout_kills)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        struct upkeep_payload p = payload("exec:slow", "/nowhere", 5);
        uint64_t t0;
        UpkErr err = {};

        ASSERT_OK(setenv("UPKEEP_TEST_HANDLER_TIMEOUT_MS", "300", 1));
        script("slow", "[ \"$1\" = install ] || exit 0\ncat > /dev/null; echo waiting; sleep 20\n");
        ASSERT_OK(handler_open("exec:slow", ".", &h, &err));
        t0 = now_usec();
        ASSERT_UPK_ERR(install(h, &p, "hello", 5, 5, &err), &err, -ETIME, UPK_ERR_IO,
                       "./slow install did not end within 300 ms and was killed: waiting");
        ASSERT_TRUE(now_usec() - t0 < 5u * 1000u * 1000u);
}

TEST(exec_rollback_kills_a_running_install)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *calls = NULL;
        struct upkeep_payload p = payload("exec:hang", "/nowhere", 10);
        uint64_t t0;
        UpkErr err = {};

        size_t fds = count_fds();

        script("hang", "echo \"$1\" >> calls.log\n[ \"$1\" = install ] || exit 0\nsleep 30\n");
        ASSERT_OK(handler_open("exec:hang", ".", &h, &err));
        ASSERT_OK(handler_begin(h, &p, &err));
        ASSERT_OK(handler_write(h, "0123456789", 10, &err));
        t0 = now_usec();
        h = handler_free(h);
        ASSERT_TRUE(now_usec() - t0 < 5u * 1000u * 1000u);
        ASSERT_EQ(count_fds(), fds);
        /* the install had begun: the log shows it unless it was killed first; rollback always runs */
        calls = contents("calls.log", NULL);
        ASSERT_TRUE(strstr(calls, "rollback\n"));
}

TEST(exec_commit_failure)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        struct upkeep_payload p = payload("exec:nocommit", "/nowhere", 2);
        UpkErr err = {};

        script("nocommit",
               "case \"$1\" in install) cat >/dev/null ;; commit) echo 'cannot switch' >&2; exit 1 ;; "
               "rollback) echo rollback > rolled-back ;; esac\n");
        ASSERT_OK(handler_open("exec:nocommit", ".", &h, &err));
        ASSERT_OK_E(install(h, &p, "ok", 2, 2, &err), &err);
        ASSERT_UPK_ERR(handler_commit(h, &err), &err, -EPROTO, UPK_ERR_IO,
                       "./nocommit commit exited with status 1: cannot switch");
        /* a failed commit ends the payload: no rollback after it */
        h = handler_free(h);
        ASSERT_FALSE(exists("rolled-back"));
}

/* ---- plugins ---- */

static const char *plugins_dir(void)
{
        const char *d = getenv("UPKEEP_TEST_PLUGINS");
        if (!d)
                test_fail("UPKEEP_TEST_PLUGINS is not set");
        return d;
}

TEST(plugin_sample_installs)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *dest = abs_path("dest.bin"), *got = NULL, *log = NULL;
        struct upkeep_payload p = payload("sample", dest, 11);
        UpkErr err = {};

        ASSERT_OK_E(handler_open("sample", plugins_dir(), &h, &err), &err);
        ASSERT_OK_E(install(h, &p, "hello world", 11, 4, &err), &err);
        ASSERT_FALSE(exists("dest.bin"));
        ASSERT_OK_E(handler_commit(h, &err), &err);
        got = contents("dest.bin", NULL);
        ASSERT_STREQ(got, "hello world");
        h = handler_free(h); /* committed: no rollback */
        log = contents("dest.bin.log", NULL);
        ASSERT_STREQ(log, "begin rootfs 11\nfinish 11\ncommit\n");
}

TEST(plugin_free_without_commit_rolls_back)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *dest = abs_path("dest.bin"), *log = NULL;
        struct upkeep_payload p = payload("sample", dest, 3);
        UpkErr err = {};

        ASSERT_OK_E(handler_open("sample", plugins_dir(), &h, &err), &err);
        ASSERT_OK_E(install(h, &p, "abc", 3, 3, &err), &err);
        ASSERT_TRUE(exists("dest.bin.part"));
        h = handler_free(h);
        ASSERT_FALSE(exists("dest.bin.part"));
        ASSERT_FALSE(exists("dest.bin"));
        log = contents("dest.bin.log", NULL);
        ASSERT_STREQ(log, "begin rootfs 3\nfinish 3\nrollback\n");
}

TEST(plugin_begin_error_is_prefixed)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *dest = abs_path("nodir/dest.bin");
        struct upkeep_payload p = payload("sample", dest, 3);
        UpkErr err = {};

        ASSERT_OK_E(handler_open("sample", plugins_dir(), &h, &err), &err);
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -ENOENT, UPK_ERR_IO,
                       "payload \"rootfs\": handler sample: cannot create ");
        /* a failed begin leaves nothing to roll back and no second begin */
        ASSERT_UPK_ERR(handler_write(h, "x", 1, &err), &err, -EINVAL, UPK_ERR_IO,
                       "write() called while the payload is done");
}

TEST(plugin_refusals)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *want =
                strdup_printf("plugin %s/wrong-abi.so has handler ABI version 42, this upkeep "
                              "needs 1",
                              plugins_dir());
        UpkErr err = {};

        ASSERT_UPK_ERR(handler_open("wrong-abi", plugins_dir(), &h, &err), &err, -ELIBBAD, UPK_ERR_CONFIG,
                       want);
        ASSERT_UPK_ERR(handler_open("incomplete", plugins_dir(), &h, &err), &err, -ELIBBAD, UPK_ERR_CONFIG,
                       "its handler table lacks begin, write, finish, commit or rollback");
        ASSERT_UPK_ERR(handler_open("nope", plugins_dir(), &h, &err), &err, -ENOENT, UPK_ERR_CONFIG,
                       "/nope.so: No such file or directory");
        test_write_file("garbage.so", "not an ELF file", 15);
        ASSERT_UPK_ERR(handler_open("garbage", ".", &h, &err), &err, -ELIBBAD, UPK_ERR_CONFIG,
                       "cannot load handler plugin ./garbage.so: ");
        ASSERT_TRUE(h == NULL);
}

/* ---- the state machine ---- */

TEST(steps_out_of_order)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        struct upkeep_payload p = payload("raw", "slot.img", 2);
        UpkErr err = {};

        ASSERT_OK(handler_open("raw", ".", &h, &err));
        ASSERT_UPK_ERR(handler_write(h, "x", 1, &err), &err, -EINVAL, UPK_ERR_IO,
                       "handler raw: write() called while the payload is not begun");
        ASSERT_UPK_ERR(handler_finish(h, &err), &err, -EINVAL, UPK_ERR_IO, "finish() called while");
        handler_rollback(h); /* nothing begun: nothing to do */
        ASSERT_OK(handler_begin(h, &p, &err));
        ASSERT_UPK_ERR(handler_begin(h, &p, &err), &err, -EINVAL, UPK_ERR_IO,
                       "begin() called while the payload is being written");
        ASSERT_UPK_ERR(handler_commit(h, &err), &err, -EINVAL, UPK_ERR_IO,
                       "commit() called while the payload is being written");
        ASSERT_OK(handler_write(h, "ab", 2, &err));
        ASSERT_OK(handler_finish(h, &err));
        ASSERT_UPK_ERR(handler_write(h, "x", 1, &err), &err, -EINVAL, UPK_ERR_IO,
                       "write() called while the payload is finished");
        ASSERT_OK(handler_commit(h, &err));
        handler_rollback(h); /* committed: no-op */
}
