/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* file: atomic replacement of one file. The bytes go to a temporary file next to the target; commit()
 * renames it over the target and syncs the folder, so the target always holds the old or the new
 * content, never a mix. The folder is opened without following a symbolic link anywhere on its path, and
 * the target must be a regular file or missing: a link, FIFO, socket or device there is refused, so the
 * handler writes exactly where the manifest says and nowhere a link would lead it. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fileio.h"
#include "handler-internal.h"
#include "path-util.h"

typedef struct File {
        int fd, dfd;
        char *target; /* as given, for messages */
        char *dir;
        char *base;
        char *tmp; /* the temporary file's name in dir */
} File;

static void file_free(File *s)
{
        if (!s)
                return;
        safe_close(s->fd);
        safe_close(s->dfd);
        free(s->target);
        free(s->dir);
        free(s->base);
        free(s->tmp);
        free(s);
}

/* A temporary file of an earlier run that was killed (a power cut, SIGKILL) between mkostemp() and the
 * rename: ".#BASE." and mkostemp()'s six characters, a regular file. It is removed before a new one is
 * made, so a cut never leaves more than one behind and the next install of the target clears it. */
static bool is_stale_temp(const char *name, const char *base)
{
        size_t n = strlen(base);

        if (!strneq(name, ".#", 2) || !strneq(name + 2, base, n) || name[2 + n] != '.')
                return false;
        name += 3 + n;
        if (strlen(name) != 6)
                return false;
        for (; *name; name++)
                if (!isalnum((unsigned char)*name))
                        return false;
        return true;
}

static void remove_stale_temps(File *s)
{
        struct dirent *de;
        DIR *d;
        int fd;

        fd = fcntl(s->dfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return;
        }
        while ((de = readdir(d))) {
                struct stat st;

                if (!is_stale_temp(de->d_name, s->base))
                        continue;
                if (fstatat(s->dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                (void)unlinkat(s->dfd, de->d_name, 0);
        }
        closedir(d);
}

static int file_begin_state(File *s, const char *target, char *msg, size_t msg_size)
{
        _cleanup_free_ char *tmp_path = NULL;
        const char *base;
        bool keep_owner = false;
        mode_t mode = 0644;
        struct stat st;

        s->target = strdup(target);
        if (!s->target)
                return -ENOMEM;
        base = path_basename(target);
        if (target[0] != '/' || !filename_is_plain(base, 255))
                return handler_msg(msg, msg_size, -EINVAL, "target %s is not an absolute path to a file",
                                   target);
        s->dir = path_dirname(target);
        s->base = strdup(base);
        if (!s->dir || !s->base)
                return -ENOMEM;

        s->dfd = open_dir_nofollow(s->dir);
        if (s->dfd == -ELOOP)
                return handler_msg(msg, msg_size, -ELOOP,
                                   "target %s: the path to its folder %s goes through a symbolic link; name "
                                   "the real folder in the manifest",
                                   target, s->dir);
        if (s->dfd < 0)
                return handler_msg(msg, msg_size, s->dfd, "cannot open the folder %s: %m", s->dir);
        if (fstatat(s->dfd, s->base, &st, AT_SYMLINK_NOFOLLOW) >= 0) {
                if (S_ISDIR(st.st_mode))
                        return handler_msg(msg, msg_size, -EISDIR, "target %s is a folder", target);
                if (S_ISLNK(st.st_mode))
                        return handler_msg(msg, msg_size, -ELOOP,
                                           "target %s is a symbolic link: the file handler replaces only a "
                                           "regular file",
                                           target);
                if (!S_ISREG(st.st_mode))
                        return handler_msg(msg, msg_size, -EINVAL,
                                           "target %s is not a regular file (a FIFO, socket or device): the "
                                           "file handler replaces only a regular file",
                                           target);
                mode = st.st_mode & 07777;
                keep_owner = geteuid() == 0;
        } else if (errno != ENOENT)
                return handler_msg(msg, msg_size, -errno, "cannot access %s: %m", target);

        remove_stale_temps(s);
        tmp_path = strdup_printf("%s/.#%s.XXXXXX", streq(s->dir, "/") ? "" : s->dir, s->base);
        if (!tmp_path)
                return -ENOMEM;
        s->fd = mkostemp(tmp_path, O_CLOEXEC);
        if (s->fd < 0)
                return handler_msg(msg, msg_size, -errno, "cannot create a temporary file in %s: %m",
                                   s->dir);
        s->tmp = strdup(path_basename(tmp_path));
        if (!s->tmp) {
                (void)unlink(tmp_path);
                return -ENOMEM;
        }
        /* The old file's owner and mode carry over (owner only where we may set it). */
        if (keep_owner && fchown(s->fd, st.st_uid, st.st_gid) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot set the owner of %s: %m", tmp_path);
        if (fchmod(s->fd, mode) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot set the mode of %s: %m", tmp_path);
        return 0;
}

static void file_rollback(void *state)
{
        File *s = state;

        if (!s)
                return;
        if (s->tmp && s->dfd >= 0)
                (void)unlinkat(s->dfd, s->tmp, 0);
        file_free(s);
}

static int file_begin(const struct upkeep_payload *p, void **ret_state, char *msg, size_t msg_size)
{
        File *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->fd = s->dfd = -EBADF;
        r = file_begin_state(s, p->destination, msg, msg_size);
        if (r < 0) {
                file_rollback(s);
                return r;
        }
        *ret_state = s;
        return 0;
}

static int file_write(void *state, const void *buf, size_t len, char *msg, size_t msg_size)
{
        File *s = state;
        int r = loop_write(s->fd, buf, len);

        if (r < 0)
                return handler_msg(msg, msg_size, r, "cannot write %s/%s: %m", s->dir, s->tmp);
        return 0;
}

static int file_finish(void *state, char *msg, size_t msg_size)
{
        File *s = state;

        if (fsync(s->fd) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot sync %s/%s: %m", s->dir, s->tmp);
        if (close(TAKE_FD(s->fd)) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot close %s/%s: %m", s->dir, s->tmp);
        return 0;
}

static int file_commit(void *state, char *msg, size_t msg_size)
{
        File *s = state;
        int r;

        if (renameat(s->dfd, s->tmp, s->dfd, s->base) < 0) {
                r = handler_msg(msg, msg_size, -errno, "cannot rename %s/%s to %s: %m", s->dir, s->tmp,
                                s->target);
                file_rollback(s);
                return r;
        }
        free(s->tmp);
        s->tmp = NULL;
        r = 0;
        if (fsync(s->dfd) < 0)
                r = handler_msg(msg, msg_size, -errno, "cannot sync the folder %s: %m", s->dir);
        file_free(s);
        return r;
}

const struct upkeep_handler handler_file_ops = {
        .abi_version = UPKEEP_HANDLER_ABI_VERSION,
        .name = "file",
        .begin = file_begin,
        .write = file_write,
        .finish = file_finish,
        .commit = file_commit,
        .rollback = file_rollback,
};
