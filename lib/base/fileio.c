/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fileio.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif

#include "util.h"

int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, alloc = 0;

        for (;;) {
                if (size >= alloc) {
                        size_t n = alloc ? alloc * 2 : 4096;
                        if (n > max + 1)
                                n = max + 1;
                        if (n <= size)
                                return -EFBIG;
                        char *p = realloc(buf, n + 1);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        alloc = n;
                }
                ssize_t k = read(fd, buf + size, alloc - size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                size += (size_t)k;
                if (size > max)
                        return -EFBIG;
        }
        if (!buf) {
                buf = malloc(1);
                if (!buf)
                        return -ENOMEM;
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
                return -EFBIG;
        return read_full_fd(fd, max, ret, ret_size);
}

int loop_write(int fd, const void *buf, size_t len)
{
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t k = write(fd, p, len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                p += k;
                len -= (size_t)k;
        }
        return 0;
}

int write_file_atomic(const char *dir, const char *name, const void *data, size_t size, mode_t mode)
{
        _cleanup_free_ char *tmp = strdup_printf("%s/.#%s.XXXXXX", dir, name);
        _cleanup_free_ char *path = strdup_printf("%s/%s", dir, name);
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        int r;

        if (!tmp || !path)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = loop_write(fd, data, size);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlink(tmp);
                return r;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (fsync(dfd) < 0)
                return -errno;
        return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* One node on the way to a trusted file: -EPERM when it is owned by another user than root or us, or
 * writable by others or by a group other than root's or ours (a folder above the file may be, when it is
 * sticky and root's, like /tmp). */
static int trusted_node(const char *node, const char *path, bool is_file, bool secret, UpkErr *err)
{
        struct stat st;
        mode_t mode;

        if (stat(node, &st) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: %m", node);
        mode = st.st_mode & 07777;
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
                if (is_file)
                        return upk_err(err, UPK_ERR_CONFIG, -EPERM,
                                       "%s is owned by uid %u, not by root: run chown root %s", path,
                                       (unsigned)st.st_uid, path);
                return upk_err(err, UPK_ERR_CONFIG, -EPERM,
                               "%s: the folder %s is owned by uid %u, not by root: run chown root %s", path,
                               node, (unsigned)st.st_uid, node);
        }
        if ((mode & S_IWOTH) && !(!is_file && (mode & S_ISVTX) && st.st_uid == 0)) {
                if (is_file)
                        return upk_err(err, UPK_ERR_CONFIG, -EPERM,
                                       "%s is writable by others (mode %04o): run chmod o-w %s", path,
                                       (unsigned)mode, path);
                return upk_err(err, UPK_ERR_CONFIG, -EPERM,
                               "%s: the folder %s is writable by others (mode %04o): run chmod o-w %s", path,
                               node, (unsigned)mode, node);
        }
        /* A group other than root's (or ours) that may write it is as many more people who could. */
        if ((mode & S_IWGRP) && st.st_gid != 0 && st.st_gid != getegid() &&
            !(!is_file && (mode & S_ISVTX) && st.st_uid == 0)) {
                if (is_file)
                        return upk_err(
                                err, UPK_ERR_CONFIG, -EPERM,
                                "%s is writable by the group with gid %u (mode %04o): run chmod g-w %s",
                                path, (unsigned)st.st_gid, (unsigned)mode, path);
                return upk_err(
                        err, UPK_ERR_CONFIG, -EPERM,
                        "%s: the folder %s is writable by the group with gid %u (mode %04o): run chmod "
                        "g-w %s",
                        path, node, (unsigned)st.st_gid, (unsigned)mode, node);
        }
        if (is_file && secret && (mode & S_IROTH))
                return upk_err(err, UPK_ERR_CONFIG, -EPERM,
                               "%s is readable by others (mode %04o), but holds a secret: run chmod o-r %s",
                               path, (unsigned)mode, path);
        return 0;
}

int path_check_trusted(const char *path, bool secret, UpkErr *err)
{
        _cleanup_free_ char *real = realpath(path, NULL);
        int r;

        if (!real)
                return upk_err(err, errno == ENOMEM ? UPK_ERR_IO : UPK_ERR_CONFIG, -errno, "%s: %m", path);
        r = trusted_node(real, path, true, secret, err);
        /* every folder above it, up to / */
        for (char *slash = strrchr(real, '/'); r >= 0 && slash; slash = strrchr(real, '/')) {
                slash[slash == real] = 0; /* "/a/b" -> "/a"; "/a" -> "/" */
                r = trusted_node(real, path, false, false, err);
                if (streq(real, "/"))
                        break;
        }
        return r;
}

int open_dir_nofollow_walk(const char *path)
{
        _cleanup_close_ int fd = -EBADF;
        const char *p = path;

        if (path[0] != '/')
                return -EINVAL;
        fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (;;) {
                char name[NAME_MAX + 1];
                size_t len;
                int nfd;

                p += strspn(p, "/");
                if (!*p)
                        return TAKE_FD(fd);
                len = strcspn(p, "/");
                if (len > NAME_MAX)
                        return -ENAMETOOLONG;
                memcpy(name, p, len);
                name[len] = 0;
                p += len;
                nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (nfd < 0) {
                        struct stat st;
                        int r = -errno;

                        /* a link to a folder: ELOOP or ENOTDIR, depending on the kernel */
                        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISLNK(st.st_mode))
                                return -ELOOP;
                        return r;
                }
                safe_close(fd);
                fd = nfd;
        }
}

int open_dir_nofollow(const char *path)
{
#if defined(SYS_openat2) && defined(RESOLVE_NO_SYMLINKS)
        struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                                .resolve = RESOLVE_NO_SYMLINKS };
        long fd;

        if (path[0] != '/')
                return -EINVAL;
        fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
        if (fd >= 0)
                return (int)fd;
        if (errno != ENOSYS && errno != EPERM) /* EPERM: a seccomp filter that does not know it */
                return -errno;
#endif
        return open_dir_nofollow_walk(path);
}
