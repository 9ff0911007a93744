/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A sample upkeep handler plugin, and the plugins the unit tests load: it writes the payload's bytes
 * to DESTINATION.part, renames that to DESTINATION on commit, and leaves a note of what happened in
 * DESTINATION.log ("begin NAME SIZE", "finish BYTES", "commit", "rollback"). Built as sample.so; with
 * -DSAMPLE_WRONG_ABI as wrong-abi.so (another ABI version), with -DSAMPLE_INCOMPLETE as incomplete.so
 * (no rollback function). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <upkeep/handler.h>

struct sample {
        int fd;
        char *dest, *part, *log;
        uint64_t bytes;
};

__attribute__((format(printf, 2, 3))) static void note(const struct sample *s, const char *fmt, ...)
{
        FILE *f = fopen(s->log, "ae");
        va_list ap;

        if (!f)
                return;
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fclose(f);
}

static void sample_free(struct sample *s)
{
        if (s->fd >= 0)
                close(s->fd);
        free(s->dest);
        free(s->part);
        free(s->log);
        free(s);
}

static char *concat(const char *a, const char *b)
{
        size_t n = strlen(a) + strlen(b) + 1;
        char *p = malloc(n);

        if (p)
                snprintf(p, n, "%s%s", a, b);
        return p;
}

static int sample_begin(const struct upkeep_payload *p, void **ret_state, char *msg, size_t msg_size)
{
        struct sample *s;

        /* Fields added by a later upkeep come after the ones this plugin knows. */
        if (p->struct_size < sizeof(*p)) {
                snprintf(msg, msg_size, "payload description too short (%u bytes)",
                         (unsigned)p->struct_size);
                return -EINVAL;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->fd = -1;
        s->dest = strdup(p->destination);
        s->part = concat(p->destination, ".part");
        s->log = concat(p->destination, ".log");
        if (!s->dest || !s->part || !s->log) {
                sample_free(s);
                return -ENOMEM;
        }
        s->fd = open(s->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (s->fd < 0) {
                int r = -errno;
                snprintf(msg, msg_size, "cannot create %s: %s", s->part, strerror(errno));
                sample_free(s);
                return r;
        }
        note(s, "begin %s %" PRIu64 "\n", p->name, p->size);
        *ret_state = s;
        return 0;
}

static int sample_write(void *state, const void *buf, size_t len, char *msg, size_t msg_size)
{
        struct sample *s = state;
        const char *b = buf;

        while (len > 0) {
                ssize_t k = write(s->fd, b, len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        snprintf(msg, msg_size, "cannot write %s after %" PRIu64 " bytes: %s", s->part,
                                 s->bytes, k < 0 ? strerror(errno) : "short write");
                        return k < 0 ? -errno : -EIO;
                }
                b += k;
                len -= (size_t)k;
                s->bytes += (uint64_t)k;
        }
        return 0;
}

static int sample_finish(void *state, char *msg, size_t msg_size)
{
        struct sample *s = state;

        if (fsync(s->fd) < 0) {
                snprintf(msg, msg_size, "cannot sync %s: %s", s->part, strerror(errno));
                return -errno;
        }
        note(s, "finish %" PRIu64 "\n", s->bytes);
        return 0;
}

static int sample_commit(void *state, char *msg, size_t msg_size)
{
        struct sample *s = state;
        int r = 0;

        if (rename(s->part, s->dest) < 0) {
                r = -errno;
                snprintf(msg, msg_size, "cannot rename %s to %s: %s", s->part, s->dest, strerror(errno));
                unlink(s->part);
        } else
                note(s, "commit\n");
        sample_free(s);
        return r;
}

#ifndef SAMPLE_INCOMPLETE
static void sample_rollback(void *state)
{
        struct sample *s = state;

        unlink(s->part);
        note(s, "rollback\n");
        sample_free(s);
}
#endif

#ifdef SAMPLE_WRONG_ABI
#define SAMPLE_ABI (UPKEEP_HANDLER_ABI_VERSION + 41u)
#else
#define SAMPLE_ABI UPKEEP_HANDLER_ABI_VERSION
#endif

__attribute__((visibility("default"))) const struct upkeep_handler upkeep_handler = {
        .abi_version = SAMPLE_ABI,
        .name = "sample",
        .begin = sample_begin,
        .write = sample_write,
        .finish = sample_finish,
        .commit = sample_commit,
#ifndef SAMPLE_INCOMPLETE
        .rollback = sample_rollback,
#endif
};
