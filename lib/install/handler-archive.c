/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* archive: a tar stream (compressed or not; libarchive recognises the filter) unpacked into the slot.
 * A folder slot is emptied, the archive is unpacked into a staging folder inside it (mode 0700, so
 * nothing of a payload that may yet fail its sha256 is reachable), and commit() moves the tree into the
 * slot; rollback() removes the staging folder. A block device slot gets a fresh file system, mounted
 * nosuid,nodev on a private folder while it is filled.
 *
 * libarchive pulls its input while the handler is pushed blocks by write(), so the extraction runs in a
 * thread: write() hands its block over and waits until the thread's read callback has copied all of
 * it. Errors from either side reach the other; finish() and rollback() always join the thread. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "handler-internal.h"
#include "process.h"

#define ARCHIVE_BLOCK_SIZE     (64u * 1024u)
#define ARCHIVE_DEPTH_MAX      256u  /* folder nesting when the old contents are removed */
#define ARCHIVE_MEMBER_MAX     4096u /* bytes of a member's path */
#define ARCHIVE_DEFAULT_FSTYPE "ext4"
/* The staging folder in a folder slot, and the folder in it that the archive is unpacked into (its
 * mode may come from the archive's "." member; the staging folder's 0700 stays). */
#define ARCHIVE_STAGING      ".upkeep-staging"
#define ARCHIVE_STAGING_TREE "tree"
/* Components of a member's path: the slot, the staging folder and its tree folder hold it, and the
 * whole of it must stay removable (remove_contents() descends ARCHIVE_DEPTH_MAX folders). */
#define ARCHIVE_MEMBER_DEPTH_MAX (ARCHIVE_DEPTH_MAX - 2u)

/* The file systems archive can make on a block slot, with the mkfs options that make it quietly
 * over whatever was there. */
static const struct {
        const char *fstype;
        const char *force, *quiet;
} mkfs_table[] = {
        { "ext2", "-F", "-q" }, { "ext3", "-F", "-q" },  { "ext4", "-F", "-q" },
        { "xfs", "-f", "-q" },  { "btrfs", "-f", "-q" }, { "vfat", NULL, NULL },
};

typedef struct Archive {
        char *dest;      /* the folder extracted into: the staging tree of a folder slot, or the mount
                          * point of a device slot */
        char *slot;      /* a folder slot's resolved path, else NULL */
        int slot_fd;     /* a folder slot, else -EBADF */
        int staging_fd;  /* its staging folder while it exists, else -EBADF */
        char *device;    /* a device slot's block device, else NULL */
        char *mount_dir; /* our mount point, NULL when nothing is mounted */
        size_t fs;       /* index into mkfs_table */

        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool thread_started;
        /* Guarded by lock: */
        const uint8_t *in; /* the block write() hands over */
        size_t in_len;
        bool eof, cancel, done;
        int result;
        char result_msg[HANDLER_MSG_MAX];

        uint8_t buf[ARCHIVE_BLOCK_SIZE]; /* owned by the thread */
} Archive;

static int remove_contents(int dfd, dev_t dev, unsigned depth, const char *where, char *msg, size_t msg_size)
{
        DIR *d;
        struct dirent *de;
        int fd, r = 0;

        fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return handler_msg(msg, msg_size, -errno, "cannot empty %s: %m", where);
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                safe_close(fd);
                return handler_msg(msg, msg_size, r, "cannot read the folder %s: %m", where);
        }
        while (r >= 0) {
                struct stat st;
                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                r = handler_msg(msg, msg_size, -errno, "cannot read the folder %s: %m",
                                                where);
                        break;
                }
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                /* Never follow a link: a symbolic link is removed, not what it points to. */
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = handler_msg(msg, msg_size, -errno, "cannot access %s in %s: %m", de->d_name,
                                        where);
                        break;
                }
                if (S_ISDIR(st.st_mode)) {
                        if (st.st_dev != dev) {
                                r = handler_msg(msg, msg_size, -EBUSY,
                                                "%s in %s is a mount point; unmount it before an install",
                                                de->d_name, where);
                                break;
                        }
                        if (depth >= ARCHIVE_DEPTH_MAX) {
                                r = handler_msg(msg, msg_size, -ELOOP, "folders in %s nest deeper than %u",
                                                where, ARCHIVE_DEPTH_MAX);
                                break;
                        }
                        int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0) {
                                r = handler_msg(msg, msg_size, -errno, "cannot open %s in %s: %m",
                                                de->d_name, where);
                                break;
                        }
                        r = remove_contents(sub, dev, depth + 1, where, msg, msg_size);
                        safe_close(sub);
                        if (r < 0)
                                break;
                }
                if (unlinkat(dfd, de->d_name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
                        r = handler_msg(msg, msg_size, -errno, "cannot remove %s in %s: %m", de->d_name,
                                        where);
        }
        closedir(d);
        return r;
}

/* The staging folder and all in it, by file descriptor, following no link (after the extraction
 * stopped). */
static int remove_staging(Archive *s, char *msg, size_t msg_size)
{
        struct stat st;
        int r;

        if (s->staging_fd < 0)
                return 0;
        if (fstat(s->staging_fd, &st) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot access %s/%s: %m", s->slot,
                                   ARCHIVE_STAGING);
        r = remove_contents(s->staging_fd, st.st_dev, 0, s->dest ?: ARCHIVE_STAGING, msg, msg_size);
        if (r < 0)
                return r;
        s->staging_fd = safe_close(s->staging_fd);
        if (unlinkat(s->slot_fd, ARCHIVE_STAGING, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return handler_msg(msg, msg_size, -errno, "cannot remove %s/%s: %m", s->slot,
                                   ARCHIVE_STAGING);
        return 0;
}

/* A member path stays inside the slot: relative, no ".." component. */
static bool member_path_ok(const char *p)
{
        if (isempty(p) || p[0] == '/' || strlen(p) > ARCHIVE_MEMBER_MAX)
                return false;
        for (const char *c = p; *c;) {
                size_t n = strcspn(c, "/");
                if (n == 2 && c[0] == '.' && c[1] == '.')
                        return false;
                c += n;
                c += strspn(c, "/");
        }
        return true;
}

/* The number of components of a member path other than ".", and whether the first of them is the
 * staging folder's name (which the member would take in the slot). */
static size_t member_depth(const char *p, bool *ret_staging)
{
        size_t depth = 0;

        *ret_staging = false;
        for (const char *c = p; *c;) {
                size_t n = strcspn(c, "/");
                if (n > 0 && !(n == 1 && c[0] == '.')) {
                        if (depth == 0)
                                *ret_staging = n == strlen(ARCHIVE_STAGING) && strneq(c, ARCHIVE_STAGING, n);
                        depth++;
                }
                c += n;
                c += strspn(c, "/");
        }
        return depth;
}

static la_ssize_t feed_read(struct archive *a, void *userdata, const void **ret_buf)
{
        Archive *s = userdata;
        size_t n;

        pthread_mutex_lock(&s->lock);
        while (s->in_len == 0 && !s->eof && !s->cancel)
                pthread_cond_wait(&s->cond, &s->lock);
        if (s->cancel) {
                pthread_mutex_unlock(&s->lock);
                archive_set_error(a, ECANCELED, "the install was cancelled");
                return -1;
        }
        /* in_len == 0 here means eof: return 0 */
        n = s->in_len < sizeof(s->buf) ? s->in_len : sizeof(s->buf);
        if (n > 0) {
                memcpy(s->buf, s->in, n);
                s->in += n;
                s->in_len -= n;
                if (s->in_len == 0)
                        pthread_cond_broadcast(&s->cond);
        }
        pthread_mutex_unlock(&s->lock);
        *ret_buf = s->buf;
        return (la_ssize_t)n;
}

/* "WHAT: libarchive's reason", with libarchive's errno where it has one. */
static int archive_fail(struct archive *a, int fallback, char *msg, size_t msg_size, const char *what)
{
        int e = archive_errno(a);

        return handler_msg(msg, msg_size, e > 0 ? -e : fallback, "%s: %s", what,
                           archive_error_string(a) ?: "unknown error");
}

/* Not archive_read_extract2(): it turns a refused header into a warning. */
static int extract_entry(struct archive *a, struct archive *disk, struct archive_entry *entry,
                         const char *name, char *msg, size_t msg_size)
{
        char what[256];
        int r;

        snprintf(what, sizeof(what), "cannot extract \"%.200s\"", name);
        r = archive_write_header(disk, entry);
        if (r < ARCHIVE_WARN) /* also the refusal to extract through a symbolic link */
                return archive_fail(disk, -EPERM, msg, msg_size, what);
        for (;;) {
                const void *block;
                size_t len;
                la_int64_t offset;

                r = archive_read_data_block(a, &block, &len, &offset);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN)
                        return archive_fail(a, -EBADMSG, msg, msg_size, what);
                if (archive_write_data_block(disk, block, len, offset) < ARCHIVE_WARN)
                        return archive_fail(disk, -EIO, msg, msg_size, what);
        }
        if (archive_write_finish_entry(disk) < ARCHIVE_WARN)
                return archive_fail(disk, -EIO, msg, msg_size, what);
        return 0;
}

static int prefix_path(const char *dest, const char *member, char **ret)
{
        char *p = strdup_printf("%s/%s", dest, member);

        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int extract(Archive *s, char *msg, size_t msg_size)
{
        struct archive *a = archive_read_new(), *disk = archive_write_disk_new();
        struct archive_entry *entry;
        int flags, r = 0;

        if (!a || !disk) {
                r = -ENOMEM;
                goto out;
        }
        flags = ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_PERM |
                ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR;
        if (geteuid() == 0)
                flags |= ARCHIVE_EXTRACT_OWNER; /* numeric ids: no lookup in this system's user database */
        archive_write_disk_set_options(disk, flags);
        archive_read_support_filter_all(a);
        archive_read_support_format_tar(a);
        if (archive_read_open(a, s, NULL, feed_read, NULL) != ARCHIVE_OK) {
                r = archive_fail(a, -EBADMSG, msg, msg_size, "cannot read the archive");
                goto out;
        }

        for (;;) {
                _cleanup_free_ char *name = NULL, *full = NULL, *link = NULL;
                const char *hl;
                bool staging;

                r = archive_read_next_header(a, &entry);
                if (r == ARCHIVE_EOF) {
                        r = 0;
                        break;
                }
                if (r < ARCHIVE_WARN) {
                        r = archive_fail(a, -EBADMSG, msg, msg_size, "cannot read the archive");
                        goto out;
                }
                name = strdup(archive_entry_pathname(entry) ?: "");
                if (!name) {
                        r = -ENOMEM;
                        goto out;
                }
                if (!member_path_ok(name)) {
                        r = handler_msg(msg, msg_size, -EBADMSG,
                                        "archive member \"%.200s\" would land outside %s", name,
                                        s->slot ?: s->dest);
                        goto out;
                }
                if (member_depth(name, &staging) > ARCHIVE_MEMBER_DEPTH_MAX) {
                        r = handler_msg(msg, msg_size, -ELOOP,
                                        "archive member \"%.200s\" nests deeper than %u", name,
                                        ARCHIVE_MEMBER_DEPTH_MAX);
                        goto out;
                }
                if (staging && s->slot) {
                        r = handler_msg(
                                msg, msg_size, -EBADMSG,
                                "archive member \"%.200s\" uses the name %s, which upkeep keeps for its "
                                "staging folder",
                                name, ARCHIVE_STAGING);
                        goto out;
                }
                hl = archive_entry_hardlink(entry);
                if (hl) {
                        if (!member_path_ok(hl)) {
                                r = handler_msg(msg, msg_size, -EBADMSG,
                                                "archive member \"%.200s\" links to \"%.200s\" outside %s",
                                                name, hl, s->slot ?: s->dest);
                                goto out;
                        }
                        r = prefix_path(s->dest, hl, &link);
                        if (r < 0)
                                goto out;
                        archive_entry_copy_hardlink(entry, link);
                }
                r = prefix_path(s->dest, name, &full);
                if (r < 0)
                        goto out;
                archive_entry_copy_pathname(entry, full);
                r = extract_entry(a, disk, entry, name, msg, msg_size);
                if (r < 0)
                        goto out;
        }
        /* Folder modes and times are set last. */
        if (archive_write_close(disk) != ARCHIVE_OK)
                r = archive_fail(disk, -EIO, msg, msg_size, "cannot complete the extraction");
out:
        archive_read_free(a);
        archive_write_free(disk);
        return r;
}

static void *extract_thread(void *userdata)
{
        Archive *s = userdata;
        char msg[HANDLER_MSG_MAX] = "";
        int r = extract(s, msg, sizeof(msg));

        pthread_mutex_lock(&s->lock);
        s->result = r;
        memcpy(s->result_msg, msg, sizeof(msg));
        s->done = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

static void stop_thread(Archive *s)
{
        if (!s->thread_started)
                return;
        pthread_mutex_lock(&s->lock);
        s->cancel = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        s->thread_started = false;
}

static void archive_state_free(Archive *s)
{
        char msg[HANDLER_MSG_MAX];

        if (!s)
                return;
        stop_thread(s);
        (void)remove_staging(s, msg, sizeof(msg));
        safe_close(s->staging_fd);
        safe_close(s->slot_fd);
        if (s->mount_dir) {
                /* Still mounted: the install failed before finish(), nothing in it is verified. */
                _cleanup_close_ int fd = open(s->mount_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                struct stat st;
                if (fd >= 0 && fstat(fd, &st) >= 0)
                        (void)remove_contents(fd, st.st_dev, 0, s->mount_dir, msg, sizeof(msg));
                (void)umount2(s->mount_dir, MNT_DETACH);
                (void)rmdir(s->mount_dir);
        }
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s->mount_dir);
        free(s->device);
        free(s->slot);
        free(s->dest);
        free(s);
}

/* mkfs.FSTYPE in the usual places; `buf` holds the path. */
static const char *find_mkfs(const char *fstype, char *buf, size_t size)
{
        static const char *const dirs[] = { "/usr/sbin", "/sbin" };

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                snprintf(buf, size, "%s/mkfs.%s", dirs[i], fstype);
                if (access(buf, X_OK) == 0)
                        return buf;
        }
        return NULL;
}

/* A device slot: a fresh file system, mounted on a private folder that becomes dest. */
static int prepare_device(Archive *s, char *msg, size_t msg_size)
{
        char *envp[] = { (char *)HANDLER_PATH_ENV, NULL };
        _cleanup_free_ char *out = NULL, *errtext = NULL;
        const char *fstype = mkfs_table[s->fs].fstype, *base;
        char mkfs_path[64];
        const char *mkfs = find_mkfs(fstype, mkfs_path, sizeof(mkfs_path));
        UpkErr e = {};
        int r;

        if (!mkfs)
                return handler_msg(msg, msg_size, -ENOENT, "mkfs.%s is not installed; it is needed for %s",
                                   fstype, s->device);
        const char *argv[5];
        size_t n = 0;
        argv[n++] = mkfs;
        if (mkfs_table[s->fs].force)
                argv[n++] = mkfs_table[s->fs].force;
        if (mkfs_table[s->fs].quiet)
                argv[n++] = mkfs_table[s->fs].quiet;
        argv[n++] = s->device;
        argv[n] = NULL;
        r = process_run(&(ProcessRun){ .argv = argv,
                                       .envp = envp,
                                       .output_max = HANDLER_STEP_OUTPUT_MAX,
                                       .timeout_usec = handler_timeout_ms() * 1000u,
                                       .what = mkfs },
                        &out, &errtext, &e);
        if (r < 0)
                return handler_msg(msg, msg_size, r, "%s", e.msg);
        if (r != 0)
                return handler_msg(
                        msg, msg_size, -EIO, "%s %s exited with status %d: %s", mkfs, s->device, r,
                        !isempty(errtext) ? process_output_summary(errtext) : process_output_summary(out));

        base = secure_getenv("RUNTIME_DIRECTORY");
        if (isempty(base) || strchr(base, ':'))
                base = "/tmp";
        s->dest = strdup_printf("%s/upkeep-slot.XXXXXX", base);
        if (!s->dest)
                return -ENOMEM;
        if (!mkdtemp(s->dest))
                return handler_msg(msg, msg_size, -errno, "cannot create a mount point in %s: %m", base);
        if (mount(s->device, s->dest, fstype, MS_NOSUID | MS_NODEV, NULL) < 0) {
                r = handler_msg(msg, msg_size, -errno, "cannot mount %s on %s: %m", s->device, s->dest);
                (void)rmdir(s->dest);
                return r;
        }
        s->mount_dir = strdup(s->dest);
        if (!s->mount_dir) {
                (void)umount2(s->dest, MNT_DETACH);
                (void)rmdir(s->dest);
                return -ENOMEM;
        }
        return 0;
}

/* A folder slot: emptied (also of a staging folder a crash left), then an empty staging folder. */
static int prepare_folder(Archive *s, const char *destination, char *msg, size_t msg_size)
{
        struct stat st;
        int r;

        /* No link in the path to dest: libarchive refuses to extract through one. */
        s->slot = realpath(destination, NULL);
        if (!s->slot)
                return handler_msg(msg, msg_size, -errno, "cannot resolve %s: %m", destination);
        s->slot_fd = open(s->slot, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s->slot_fd < 0 || fstat(s->slot_fd, &st) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot open the folder %s: %m", s->slot);
        r = remove_contents(s->slot_fd, st.st_dev, 0, s->slot, msg, msg_size);
        if (r < 0)
                return r;

        if (mkdirat(s->slot_fd, ARCHIVE_STAGING, 0700) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot create %s/%s: %m", s->slot,
                                   ARCHIVE_STAGING);
        s->staging_fd = openat(s->slot_fd, ARCHIVE_STAGING, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s->staging_fd < 0)
                return handler_msg(msg, msg_size, -errno, "cannot open %s/%s: %m", s->slot, ARCHIVE_STAGING);
        s->dest = strdup_printf("%s/%s/%s", streq(s->slot, "/") ? "" : s->slot, ARCHIVE_STAGING,
                                ARCHIVE_STAGING_TREE);
        if (!s->dest)
                return -ENOMEM;
        if (fchmod(s->staging_fd, 0700) < 0 || mkdirat(s->staging_fd, ARCHIVE_STAGING_TREE, 0700) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot create %s: %m", s->dest);
        return 0;
}

static int archive_begin_state(Archive *s, const struct upkeep_payload *p, const char *destination,
                               char *msg, size_t msg_size)
{
        sigset_t all, old;
        struct stat st;
        int r;

        if (stat(destination, &st) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot access %s: %m", destination);
        if (S_ISDIR(st.st_mode)) {
                r = prepare_folder(s, destination, msg, msg_size);
                if (r < 0)
                        return r;
        } else if (S_ISBLK(st.st_mode)) {
                const char *fstype =
                        p->struct_size >= offsetof(struct upkeep_payload, fstype) + sizeof(p->fstype) &&
                                        p->fstype
                                ? p->fstype
                                : ARCHIVE_DEFAULT_FSTYPE;
                for (s->fs = 0; s->fs < ELEMENTSOF(mkfs_table); s->fs++)
                        if (streq(mkfs_table[s->fs].fstype, fstype))
                                break;
                if (s->fs == ELEMENTSOF(mkfs_table))
                        return handler_msg(
                                msg, msg_size, -EOPNOTSUPP,
                                "cannot make a \"%s\" file system on %s (ext2, ext3, ext4, xfs, btrfs or "
                                "vfat)",
                                fstype, destination);
                s->device = strdup(destination);
                if (!s->device)
                        return -ENOMEM;
                r = prepare_device(s, msg, msg_size);
                if (r < 0)
                        return r;
        } else
                return handler_msg(msg, msg_size, -ENOTDIR, "%s is neither a folder nor a block device",
                                   destination);

        /* The thread takes no signals: they stay with the threads that expect them. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = -pthread_create(&s->thread, NULL, extract_thread, s);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0)
                return handler_msg(msg, msg_size, r, "cannot start the extraction: %m");
        s->thread_started = true;
        return 0;
}

static int archive_begin(const struct upkeep_payload *p, void **ret_state, char *msg, size_t msg_size)
{
        Archive *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->slot_fd = s->staging_fd = -EBADF;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        r = archive_begin_state(s, p, p->destination, msg, msg_size);
        if (r < 0) {
                archive_state_free(s);
                return r;
        }
        *ret_state = s;
        return 0;
}

static int thread_result(Archive *s, char *msg, size_t msg_size)
{
        if (s->result >= 0)
                return 0;
        return handler_msg(msg, msg_size, s->result, "%s",
                           s->result_msg[0] ? s->result_msg : strerror(-s->result));
}

static int archive_write(void *state, const void *buf, size_t len, char *msg, size_t msg_size)
{
        Archive *s = state;
        int r = 0;

        pthread_mutex_lock(&s->lock);
        if (!s->done) {
                s->in = buf;
                s->in_len = len;
                pthread_cond_broadcast(&s->cond);
                while (s->in_len > 0 && !s->done)
                        pthread_cond_wait(&s->cond, &s->lock);
                s->in = NULL;
                s->in_len = 0;
        }
        /* Done early: an error, or the end of the archive (the bytes after it are padding). */
        if (s->done)
                r = thread_result(s, msg, msg_size);
        pthread_mutex_unlock(&s->lock);
        return r;
}

static int archive_finish(void *state, char *msg, size_t msg_size)
{
        Archive *s = state;
        _cleanup_close_ int fd = -EBADF;
        int r;

        pthread_mutex_lock(&s->lock);
        s->eof = true;
        pthread_cond_broadcast(&s->cond);
        while (!s->done)
                pthread_cond_wait(&s->cond, &s->lock);
        r = thread_result(s, msg, msg_size);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        s->thread_started = false;
        if (r < 0)
                return r;

        fd = open(s->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return handler_msg(msg, msg_size, -errno, "cannot open %s: %m", s->dest);
        if (syncfs(fd) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot sync %s: %m", s->dest);
        fd = safe_close(fd);
        if (s->mount_dir) {
                if (umount(s->mount_dir) < 0)
                        return handler_msg(msg, msg_size, -errno, "cannot unmount %s from %s: %m", s->device,
                                           s->mount_dir);
                (void)rmdir(s->mount_dir);
                free(s->mount_dir);
                s->mount_dir = NULL;
        }
        return 0;
}

/* One pass over the staging tree, moving what it holds into the slot; *ret_moved counts the entries. */
static int move_pass(Archive *s, DIR *d, size_t *ret_moved, char *msg, size_t msg_size)
{
        struct dirent *de;

        *ret_moved = 0;
        rewinddir(d);
        for (;;) {
                errno = 0;
                de = readdir(d);
                if (!de)
                        return errno != 0 ? handler_msg(msg, msg_size, -errno,
                                                        "cannot read the folder %s: %m", s->dest)
                                          : 0;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                /* Never over something: the slot was emptied at begin(). */
                if (renameat2(dirfd(d), de->d_name, s->slot_fd, de->d_name, RENAME_NOREPLACE) < 0)
                        return handler_msg(msg, msg_size, -errno, "cannot move %s from %s into %s: %m",
                                           de->d_name, s->dest, s->slot);
                (*ret_moved)++;
        }
}

/* A folder slot: the verified tree goes live, entry by entry (a power cut in between leaves a slot
 * that is marked bad and emptied by the next install). */
static int move_into_slot(Archive *s, char *msg, size_t msg_size)
{
        int fd =
                openat(s->staging_fd, ARCHIVE_STAGING_TREE, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        size_t moved;
        DIR *d;
        int r;

        if (fd < 0)
                return handler_msg(msg, msg_size, -errno, "cannot open %s: %m", s->dest);
        d = fdopendir(fd);
        if (!d) {
                r = handler_msg(msg, msg_size, -errno, "cannot read the folder %s: %m", s->dest);
                safe_close(fd);
                return r;
        }
        /* Again until a pass finds nothing: readdir() need not return every entry while others go. */
        do
                r = move_pass(s, d, &moved, msg, msg_size);
        while (r >= 0 && moved > 0);
        closedir(d);
        if (r < 0)
                return r;
        if (unlinkat(s->staging_fd, ARCHIVE_STAGING_TREE, AT_REMOVEDIR) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot remove %s: %m", s->dest);
        r = remove_staging(s, msg, msg_size);
        if (r < 0)
                return r;
        if (fsync(s->slot_fd) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot sync the folder %s: %m", s->slot);
        return 0;
}

static int archive_commit(void *state, char *msg, size_t msg_size)
{
        Archive *s = state;
        struct stat st;
        char ignore[HANDLER_MSG_MAX];
        int r = 0;

        /* A device slot is complete since finish(); the installer switches the boot slot. */
        if (s->slot_fd >= 0) {
                r = move_into_slot(s, msg, msg_size);
                /* Failed halfway: nothing of the payload stays in the slot. */
                if (r < 0 && fstat(s->slot_fd, &st) >= 0) {
                        (void)remove_staging(s, ignore, sizeof(ignore));
                        (void)remove_contents(s->slot_fd, st.st_dev, 0, s->slot, ignore, sizeof(ignore));
                }
        }
        archive_state_free(s);
        return r;
}

static void archive_rollback(void *state)
{
        /* Stop and join the extraction, remove the staging folder and what it holds, unmount; the
         * installer marks the slot bad. */
        archive_state_free(state);
}

const struct upkeep_handler handler_archive_ops = {
        .abi_version = UPKEEP_HANDLER_ABI_VERSION,
        .name = "archive",
        .begin = archive_begin,
        .write = archive_write,
        .finish = archive_finish,
        .commit = archive_commit,
        .rollback = archive_rollback,
};
