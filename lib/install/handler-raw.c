/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* raw: the payload's bytes, as they are, onto a block device or into a regular file (the slot). */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "fileio.h"
#include "handler-internal.h"

/* Start writeback of what was written every so many bytes, so that the final fsync waits only for
 * the tail and the dirty page cache stays small on devices with little memory. */
#define RAW_WRITEBACK_CHUNK (8u * 1024u * 1024u)

typedef struct Raw {
        int fd;
        char *dest;
        bool regular; /* a file slot, not a block device */
        uint64_t written;
        uint64_t flushed; /* writeback started up to here */
} Raw;

static void raw_free(Raw *s)
{
        if (!s)
                return;
        safe_close(s->fd);
        free(s->dest);
        free(s);
}

static int raw_open_block(Raw *s, uint64_t size, char *msg, size_t msg_size)
{
        uint64_t dev_size;

        /* O_EXCL on a block device: refuse one that is mounted or otherwise claimed. */
        s->fd = open(s->dest, O_WRONLY | O_EXCL | O_CLOEXEC | O_NOCTTY);
        if (s->fd < 0) {
                if (errno == EBUSY)
                        return handler_msg(msg, msg_size, -EBUSY, "%s is in use (mounted?)", s->dest);
                return handler_msg(msg, msg_size, -errno, "cannot open %s: %m", s->dest);
        }
        if (ioctl(s->fd, BLKGETSIZE64, &dev_size) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot read the size of %s: %m", s->dest);
        if (size != UPKEEP_PAYLOAD_SIZE_UNKNOWN && size > dev_size)
                return handler_msg(msg, msg_size, -EFBIG,
                                   "%" PRIu64 " bytes do not fit %s (%" PRIu64 " bytes)", size, s->dest,
                                   dev_size);
        return 0;
}

static int raw_begin(const struct upkeep_payload *p, void **ret_state, char *msg, size_t msg_size)
{
        Raw *s = calloc(1, sizeof(*s));
        bool missing = false;
        struct stat st;
        int r;

        if (!s)
                return -ENOMEM;
        s->fd = -EBADF;
        s->dest = strdup(p->destination);
        if (!s->dest) {
                raw_free(s);
                return -ENOMEM;
        }

        if (stat(s->dest, &st) < 0) {
                if (errno != ENOENT) {
                        r = handler_msg(msg, msg_size, -errno, "cannot access %s: %m", s->dest);
                        raw_free(s);
                        return r;
                }
                missing = true;
        }
        if (missing || S_ISREG(st.st_mode)) {
                /* A file slot; created when missing. Truncated to the payload's length in finish(). */
                s->regular = true;
                s->fd = open(s->dest, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
                if (s->fd < 0) {
                        r = handler_msg(msg, msg_size, -errno, "cannot open %s: %m", s->dest);
                        raw_free(s);
                        return r;
                }
        } else if (S_ISBLK(st.st_mode)) {
                r = raw_open_block(s, p->size, msg, msg_size);
                if (r < 0) {
                        raw_free(s);
                        return r;
                }
        } else {
                raw_free(s);
                return handler_msg(msg, msg_size, -ENOTBLK,
                                   "%s is neither a block device nor a regular file", p->destination);
        }
        *ret_state = s;
        return 0;
}

static int raw_write(void *state, const void *buf, size_t len, char *msg, size_t msg_size)
{
        Raw *s = state;
        int r = loop_write(s->fd, buf, len);

        if (r == -ENOSPC)
                return handler_msg(msg, msg_size, r, "%s: no space left after %" PRIu64 " bytes", s->dest,
                                   s->written);
        if (r < 0)
                return handler_msg(msg, msg_size, r, "cannot write %s after %" PRIu64 " bytes: %m", s->dest,
                                   s->written);
        s->written += len;
        if (s->written - s->flushed >= RAW_WRITEBACK_CHUNK) {
                /* Only a hint to start writeback: errors show at the fsync in finish(). */
                (void)sync_file_range(s->fd, (off_t)s->flushed, (off_t)(s->written - s->flushed),
                                      SYNC_FILE_RANGE_WRITE);
                s->flushed = s->written;
        }
        return 0;
}

static int raw_finish(void *state, char *msg, size_t msg_size)
{
        Raw *s = state;

        if (s->regular && ftruncate(s->fd, (off_t)s->written) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot truncate %s to %" PRIu64 " bytes: %m",
                                   s->dest, s->written);
        if (fsync(s->fd) < 0) {
                if (errno == ENOSPC)
                        return handler_msg(msg, msg_size, -ENOSPC,
                                           "%s: no space left after %" PRIu64 " bytes", s->dest, s->written);
                return handler_msg(msg, msg_size, -errno, "cannot sync %s: %m", s->dest);
        }
        if (close(TAKE_FD(s->fd)) < 0)
                return handler_msg(msg, msg_size, -errno, "cannot close %s: %m", s->dest);
        return 0;
}

static int raw_commit(void *state, char *msg, size_t msg_size)
{
        /* The bytes are in place since finish(); the installer switches the boot slot. */
        raw_free(state);
        return 0;
}

static void raw_rollback(void *state)
{
        /* Nothing to undo: the installer marks the slot bad. */
        raw_free(state);
}

const struct upkeep_handler handler_raw_ops = {
        .abi_version = UPKEEP_HANDLER_ABI_VERSION,
        .name = "raw",
        .begin = raw_begin,
        .write = raw_write,
        .finish = raw_finish,
        .commit = raw_commit,
        .rollback = raw_rollback,
};
