/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A delta install (upkeep-bundle(5), Deltas): the bundle's head read in ranges, the booted slot's block
 * table (cached in the data folder), a plan per payload, and the reader fed from the slot, zeros and
 * the fetched ranges; then the same install as from a whole bundle. */
#include "install-internal.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block-table.h"
#include "chunk-index.h"
#include "delta-plan.h"
#include "fileio.h"
#include "hexdecoct.h"
#include "log.h"
#include "signature.h"
#include "util.h"

#define HEAD_FIRST   (64u * 1024u)          /* the first request: manifest and signature, usually */
#define HEAD_MAX     (128u * 1024u * 1024u) /* the head is bounded by the signed manifest anyway */
#define DELTA_GAP    512u                   /* about a multipart part's own headers */
#define BATCH_RANGES 128u
#define BATCH_BYTES  (1024u * 1024u) /* held whole in memory */
/* A chunk whose blocks from the booted slot did not check out is fetched whole, one request per chunk.
 * A few are expected (a match key shared by two blocks of other content); many mean that the slot's
 * cached table no longer describes the slot (a block device changed under it, which its key does not
 * see): past this part of the bundle file's size refetched, the delta is given up (the stale table
 * removed) for the whole download. A quarter bounds what a delta can cost over the whole download to
 * the planned ranges and a quarter, while a handful of collisions stay far below it (in a bundle of a
 * few chunks one chunk may pass it: the whole download is small then too). */
#define REFETCH_MAX_DIVISOR 4u

/* What bounds the head in fact: the manifest's and its signature's limits, the index size a manifest may
 * declare, and their three tar headers (the canonical layout has no others). HEAD_MAX is the guard of
 * head_read() should that change. */
_Static_assert(MANIFEST_SIZE_MAX + SIGNATURE_SIZE_MAX + MANIFEST_INDEX_SIZE_MAX + 3u * 512u <= HEAD_MAX,
               "a bundle's head may be larger than HEAD_MAX");

typedef struct Head {
        const InstallDeltaIo *io;
        uint8_t *buf;
        size_t len;
        uint64_t pos;
        uint64_t want; /* the head's size, once the manifest said */
        uint64_t total;
        int r;
        UpkErr err;
} Head;

static void on_head_size(void *userdata, uint64_t size)
{
        Head *h = userdata;
        h->want = size;
}

static ssize_t head_read(void *userdata, void *buf, size_t size)
{
        Head *h = userdata;
        size_t n;

        if (h->r < 0)
                return h->r;
        if (h->pos == h->len) {
                uint64_t end = h->want ? h->want : h->len ? 2 * (uint64_t)h->len : HEAD_FIRST;
                uint8_t *b;
                int r;

                if (h->total != UINT64_MAX && end > h->total)
                        end = h->total;
                if (end <= h->len)
                        return 0;
                if (end > HEAD_MAX) {
                        h->r = upk_err(&h->err, UPK_ERR_FORMAT, -EFBIG,
                                       "the bundle's head is more than %u bytes", HEAD_MAX);
                        return h->r;
                }
                b = realloc(h->buf, end);
                if (!b)
                        return (h->r = upk_err_oom(&h->err));
                h->buf = b;
                r = h->io->read_range(h->io->userdata, h->len, (size_t)(end - h->len), h->buf + h->len,
                                      h->len == 0 ? &h->total : NULL, &h->err);
                if (r < 0)
                        return (h->r = r);
                if (h->len == 0 && h->total < end) /* a bundle smaller than the first request */
                        end = h->total;
                h->len = (size_t)end;
        }
        n = size < h->len - h->pos ? size : (size_t)(h->len - h->pos);
        memcpy(buf, h->buf + h->pos, n);
        h->pos += n;
        return (ssize_t)n;
}

typedef struct Delta {
        const InstallDeltaIo *io;
        size_t n_payloads;
        DeltaPlan *plans[MANIFEST_PAYLOADS_MAX];
        const uint8_t *origin[MANIFEST_PAYLOADS_MAX];
        const int32_t *local_at[MANIFEST_PAYLOADS_MAX];
        /* per payload, the booted slot of its class it reuses blocks of (or NULL and -EBADF), open */
        const SlotConfig *local[MANIFEST_PAYLOADS_MAX];
        int local_fd[MANIFEST_PAYLOADS_MAX];
        uint32_t block_size[MANIFEST_PAYLOADS_MAX]; /* the payload's, its slot's table's */
        /* the fetched ranges, all payloads' in file order: the next one to fetch ... */
        size_t payload, range;
        uint64_t range_done; /* bytes of ranges[range] already in a batch */
        /* ... and the batch handed out */
        DeltaRange batch[BATCH_RANGES];
        size_t batch_n, batch_i;
        uint64_t batch_off;
        uint8_t *buf;
        uint64_t fetch_total, fetched;
        /* chunks fetched whole again (d_fetch_range()): in all, their bytes, per payload */
        uint64_t refetched_chunks, refetched, refetched_max, file_size;
        uint64_t refetched_of[MANIFEST_PAYLOADS_MAX];
        const Config *c;
        const InstallOptions *o;
        /* a bundle that the first request brought whole (smaller than HEAD_FIRST): its ranges come from
         * here, not from the server again */
        uint8_t *whole;
} Delta;

static void delta_done(Delta *d)
{
        for (size_t i = 0; i < MANIFEST_PAYLOADS_MAX; i++) {
                delta_plan_free(d->plans[i]);
                safe_close(d->local_fd[i]);
        }
        free(d->buf);
        free(d->whole);
}

static ssize_t d_read_local(void *userdata, size_t payload, uint64_t block, void *buf, size_t size)
{
        Delta *d = userdata;
        uint32_t bs;

        if (payload >= d->n_payloads || d->local_fd[payload] < 0)
                return -EBADF;
        bs = d->block_size[payload];
        return pread(d->local_fd[payload], buf, size, (off_t)(block * bs));
}

/* The next batch: up to BATCH_RANGES ranges and BATCH_BYTES bytes, a long range in pieces. */
static int next_batch(Delta *d, UpkErr *err)
{
        uint64_t bytes = 0;
        int r;

        d->batch_n = d->batch_i = 0;
        d->batch_off = 0;
        while (d->payload < d->n_payloads && d->batch_n < BATCH_RANGES && bytes < BATCH_BYTES) {
                const DeltaPlan *p = d->plans[d->payload];
                const DeltaRange *rg;
                uint64_t start, len;

                if (!p || d->range >= p->n_ranges) {
                        d->payload++;
                        d->range = 0;
                        continue;
                }
                rg = &p->ranges[d->range];
                start = rg->start + d->range_done;
                len = rg->end - start;
                if (len > BATCH_BYTES - bytes)
                        len = BATCH_BYTES - bytes;
                d->batch[d->batch_n++] = (DeltaRange){ start, start + len };
                bytes += len;
                d->range_done += len;
                if (start + len == rg->end) {
                        d->range++;
                        d->range_done = 0;
                }
        }
        if (d->batch_n == 0)
                return 0;
        if (d->whole) {
                for (size_t i = 0, at = 0; i < d->batch_n; i++) {
                        const DeltaRange *rg = &d->batch[i];

                        if (rg->end > d->file_size)
                                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                                               "delta: bytes %" PRIu64 "-%" PRIu64
                                               " are past the bundle's end (%" PRIu64 " bytes)",
                                               rg->start, rg->end - 1, d->file_size);
                        memcpy(d->buf + at, d->whole + rg->start, (size_t)(rg->end - rg->start));
                        at += (size_t)(rg->end - rg->start);
                }
                return 1;
        }
        r = d->io->read_ranges(d->io->userdata, d->batch, d->batch_n, d->buf, (size_t)bytes, err);
        if (r < 0)
                return r;
        return 1;
}

static ssize_t d_next_fetched(void *userdata, uint64_t *ret_offset, const void **ret_buf, UpkErr *err)
{
        Delta *d = userdata;
        const DeltaRange *rg;
        size_t n;
        int r;

        if (d->batch_i == d->batch_n) {
                r = next_batch(d, err);
                if (r <= 0)
                        return r;
        }
        rg = &d->batch[d->batch_i++];
        n = (size_t)(rg->end - rg->start);
        *ret_offset = rg->start;
        *ret_buf = d->buf + d->batch_off;
        d->batch_off += n;
        d->fetched += n;
        return (ssize_t)n;
}

static int d_fetch_range(void *userdata, size_t payload, uint64_t offset, size_t size, void *buf,
                         UpkErr *err)
{
        Delta *d = userdata;

        if (payload >= d->n_payloads)
                return upk_err(err, UPK_ERR_IO, -EINVAL, "delta: no payload %zu", payload);
        if (d->refetched + size > d->refetched_max) {
                const SlotConfig *s = d->local[payload];
                char what[128];

                /* The tables of the slots whose blocks failed would mislead the next delta too. */
                for (size_t i = 0; i < d->n_payloads; i++)
                        if (d->local[i] && (d->refetched_of[i] > 0 || i == payload))
                                install_delta_forget_slot(d->c, d->local[i]);
                if (s)
                        snprintf(what, sizeof(what), "slot %s (%s.%s)", s->name, s->class, s->name);
                else
                        snprintf(what, sizeof(what), "payload %zu", payload);
                return upk_err(err, UPK_ERR_IO, -ESTALE,
                               "%s: %" PRIu64 " chunks (%" PRIu64
                               " bytes) fetched again after their blocks did not check out against the "
                               "bundle's index; one more would pass a quarter of the bundle's %" PRIu64
                               " bytes%s",
                               what, d->refetched_chunks, d->refetched, d->file_size,
                               s ? ": the slot's block table is out of date (removed)" : "");
        }
        d->refetched += size;
        d->refetched_of[payload] += size;
        d->refetched_chunks++;
        if (d->whole) {
                if (offset > d->file_size || size > d->file_size - offset)
                        return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                                       "delta: bytes %" PRIu64 "+%zu are past the bundle's end", offset,
                                       size);
                memcpy(buf, d->whole + offset, size);
                return 0;
        }
        return d->io->read_range(d->io->userdata, offset, size, buf, NULL, err);
}

/* Progress in bytes to transfer, not in bytes installed. */
static void d_progress(void *userdata, InstallPhase phase, uint64_t done, uint64_t total)
{
        Delta *d = userdata;

        if (d->o && d->o->progress)
                d->o->progress(d->o->userdata, phase, total > 0 ? d->fetched : done,
                               total > 0 ? d->fetch_total : total);
}

static bool d_cancelled(void *userdata)
{
        Delta *d = userdata;
        return d->o && d->o->cancelled && d->o->cancelled(d->o->userdata);
}

static int device_size(int fd, uint64_t *ret)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISBLK(st.st_mode))
                return ioctl(fd, BLKGETSIZE64, ret) < 0 ? -errno : 0;
        if (!S_ISREG(st.st_mode))
                return -ENOTBLK;
        *ret = (uint64_t)st.st_size;
        return 0;
}

char *install_delta_table_name(const SlotConfig *s)
{
        return strdup_printf("blocks-%s-%s.table", s->class, s->name);
}

void install_delta_forget_slot(const Config *c, const SlotConfig *s)
{
        _cleanup_free_ char *name = install_delta_table_name(s), *path = NULL;

        if (name && (path = strdup_printf("%s/%s", c->data_dir, name)) && unlink(path) < 0 &&
            errno != ENOENT)
                upk_log(LOG_LEVEL_WARNING, "cannot remove %s: %m", path);
}

/* The slot's block table, from the data folder when it was made over the same slot (its path, size, and
 * for a file its inode and modification time; a block device's change is not seen that way, so an install
 * into a slot removes its table first: install_delta_forget_slot()), else computed and saved. */
int install_delta_slot_table(const Config *c, const SlotConfig *s, int fd, uint64_t size,
                             uint32_t block_size, bool (*cancelled)(void *userdata), void *userdata,
                             BlockTable **ret, bool *ret_computed, UpkErr *save_err, UpkErr *err)
{
        _cleanup_free_ char *name = NULL, *what = NULL;
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        uint8_t origin[BLOCK_TABLE_ORIGIN_SIZE];
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot stat %s: %m", s->device);
        what = strdup_printf("%s\n%" PRIu64 "\n%" PRIu64 "\n%lld.%09ld\n", s->device, size,
                             S_ISREG(st.st_mode) ? (uint64_t)st.st_ino : 0,
                             S_ISREG(st.st_mode) ? (long long)st.st_mtim.tv_sec : 0LL,
                             S_ISREG(st.st_mode) ? st.st_mtim.tv_nsec : 0L);
        name = install_delta_table_name(s);
        if (!what || !name)
                return upk_err_oom(err);
        if (!SHA256((const uint8_t *)what, strlen(what), origin))
                return upk_err(err, UPK_ERR_IO, -EIO, "SHA-256 failed");
        if (block_table_load(c->data_dir, name, size, block_size, origin, &t, NULL) >= 0) {
                *ret = TAKE_PTR(t);
                *ret_computed = false;
                return 0;
        }
        r = block_table_compute(fd, s->device, size, block_size, cancelled, userdata, &t, err);
        if (r < 0)
                return r;
        /* Only a cache; the data folder may not exist yet before a device's first install. */
        r = mkdir_p(c->data_dir, 0755);
        if (r < 0)
                (void)upk_err(save_err, UPK_ERR_IO, r, "cannot create %s: %m", c->data_dir);
        else
                (void)block_table_save(t, c->data_dir, name, size, origin, save_err);
        *ret = TAKE_PTR(t);
        *ret_computed = true;
        return 0;
}

int install_delta_open_slot(const SlotConfig *s, int *ret_fd, uint64_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;
        uint64_t size;
        int r;

        /* O_NONBLOCK: a FIFO given as a slot must not wait for a writer (it is then refused as neither a
         * file nor a block device); reads of those two do not heed it. */
        fd = open(s->device, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        r = device_size(fd, &size);
        if (r < 0)
                return r;
        if (size == 0)
                return -ENODATA;
        *ret_fd = TAKE_FD(fd);
        *ret_size = size;
        return 0;
}

/* The booted slot of class `class` that a payload into that class can reuse blocks of (NULL when there
 * is none), open in *ret_fd, with its size. A slot that cannot be opened or is empty is none. */
static const SlotConfig *booted_slot_of(const Config *c, const char *class, const char *booted, int *ret_fd,
                                        uint64_t *ret_size)
{
        for (size_t k = 0; k < c->n_slots; k++) {
                const SlotConfig *s = &c->slots[k];

                if (!streq(s->class, class) || !streq(s->bootname, booted))
                        continue;
                return install_delta_open_slot(s, ret_fd, ret_size) >= 0 ? s : NULL;
        }
        return NULL;
}

/* Plan every payload; each one that goes raw into an A/B slot class against the block table of the
 * booted slot of its class (its own table, cached per class and slot). Payloads without one are planned
 * to be fetched whole, in ranges. A delta needs at least one payload with blocks to reuse. */
static int plan_payloads(const Config *c, Bundle *b, Delta *d, const InstallOptions *o,
                         InstallDeltaStats *st, UpkErr *err)
{
        _cleanup_(boot_backend_freep) BootBackend *boot = NULL;
        _cleanup_free_ char *booted = NULL;
        const Manifest *m = bundle_get_manifest(b);
        const SlotConfig *first = NULL;
        bool one_name = true;
        int r;

        r = install_open_boot(c, &boot, err);
        if (r >= 0)
                r = install_find_booted(c, boot, &booted, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_payloads; i++) {
                _cleanup_(block_table_freep) BlockTable *t = NULL;
                const ManifestPayload *p = &m->payloads[i];
                const SlotConfig *s = NULL;
                uint64_t size;

                if (p->slot_class && streq(p->handler, "raw"))
                        s = booted_slot_of(c, p->slot_class, booted, &d->local_fd[i], &size);
                if (s) {
                        UpkErr e = {};

                        bool computed;

                        r = install_delta_slot_table(c, s, d->local_fd[i], size, p->block_size,
                                                     o ? o->cancelled : NULL, o ? o->userdata : NULL, &t,
                                                     &computed, NULL, &e);
                        if (r == -ECANCELED) {
                                *err = e;
                                return r;
                        }
                        if (r < 0) /* a slot that cannot be read whole: nothing to reuse */
                                return upk_err(err, UPK_ERR_IO, -EOPNOTSUPP, "%s", e.msg);
                        d->local[i] = s;
                        d->block_size[i] = p->block_size;
                        if (computed)
                                st->tables_computed++;
                        else
                                st->tables_cached++;
                }
                r = delta_plan(b, i, t, DELTA_GAP, &d->plans[i], err);
                if (r < 0)
                        return r;
                d->origin[i] = d->plans[i]->source;
                d->local_at[i] = d->plans[i]->local_at;
                d->fetch_total += d->plans[i]->range_bytes;
                st->payload_bytes += p->installed_size;
                st->planned_local_blocks += d->plans[i]->counts[DELTA_LOCAL];
                if (s && d->plans[i]->counts[DELTA_LOCAL] > 0) {
                        if (!first)
                                first = s;
                        else if (!streq(s->name, first->name))
                                one_name = false;
                        install_delta_stats_add_slot(st, s);
                }
                if (s && d->plans[i]->counts[DELTA_LOCAL] == 0) /* nothing to read there */
                        d->local_fd[i] = safe_close(d->local_fd[i]);
        }
        if (!first) {
                for (size_t i = 0; i < m->n_payloads && !first; i++)
                        first = d->local[i];
                if (!first)
                        return upk_err(err, UPK_ERR_IO, -EOPNOTSUPP,
                                       "no payload goes raw into an A/B slot whose booted slot can be read");
                return upk_err(err, UPK_ERR_IO, -EOPNOTSUPP, "slot %s holds none of the bundle's blocks",
                               first->name);
        }
        /* The slots the blocks came from: one name, or the slots' common bootname. */
        snprintf(st->slot, sizeof(st->slot), "%s", one_name ? first->name : booted);
        return 0;
}

bool install_delta_possible(const Config *c, const char *booted)
{
        if (!c->delta || !booted)
                return false;
        for (size_t k = 0; k < c->n_slots; k++) {
                const SlotConfig *s = &c->slots[k];
                _cleanup_close_ int fd = -EBADF;
                uint64_t size;

                if (!streq(s->bootname, booted))
                        continue;
                fd = open(s->device, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (fd >= 0 && device_size(fd, &size) >= 0 && size > 0)
                        return true;
        }
        return false;
}

int install_bundle_delta(const Config *c, const InstallDeltaIo *io, const InstallOptions *o,
                         InstallResult *ret, InstallDeltaStats *ret_stats, UpkErr *err)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        Head h = { .io = io, .total = UINT64_MAX };
        BundleOpenOptions opts = { .keyring = c->keyring,
                                   .crl = c->crl,
                                   .allow_any_eku = c->allow_any_eku,
                                   .on_head_size = on_head_size,
                                   .head_userdata = &h };
        Delta d = { .io = io, .c = c, .o = o };
        InstallOptions wrapped = {};
        InstallDeltaStats st = {};
        BundleDeltaStats bs;
        uint8_t digest[32];
        const void *raw;
        size_t raw_size;
        int r;

        for (size_t i = 0; i < MANIFEST_PAYLOADS_MAX; i++)
                d.local_fd[i] = -EBADF;
        if (o && o->progress)
                o->progress(o->userdata, INSTALL_PHASE_VERIFYING, 0, 0);
        r = bundle_open_func(head_read, &h, &opts, &b, err);
        st.head_bytes = h.len;
        st.file_size = h.total;
        if (r >= 0 && h.total != UINT64_MAX && h.len == h.total)
                d.whole = TAKE_PTR(h.buf);
        free(h.buf);
        if (r < 0) {
                /* The source's own error (a server that ignores Range, say) says more. */
                if (h.r < 0) {
                        *err = h.err;
                        r = h.r;
                }
                goto out;
        }
        if (bundle_get_manifest(b)->format < 2) {
                r = upk_err(err, UPK_ERR_IO, -EOPNOTSUPP, "a bundle of format 1 has no chunk index");
                goto out;
        }
        if (io->manifest_sha256) {
                /* TUF: the repository signed this manifest's digest; the partial download hangs on it. */
                bundle_get_raw(b, &raw, &raw_size, NULL, NULL);
                SHA256(raw, raw_size, digest);
                if (memcmp(digest, io->manifest_sha256, 32) != 0) {
                        char have[65], want[65];

                        hex_encode(digest, 32, have);
                        hex_encode(io->manifest_sha256, 32, want);
                        r = upk_err(
                                err, UPK_ERR_PAYLOAD, -EBADMSG,
                                "target %s: the bundle's manifest.json has sha256 %s, but the repository's "
                                "custom.manifest_sha256 says %s",
                                io->name ?: "(unnamed)", have, want);
                        goto out;
                }
        }
        d.n_payloads = bundle_get_manifest(b)->n_payloads;
        r = plan_payloads(c, b, &d, o, &st, err);
        if (r < 0)
                goto out;
        d.buf = malloc(BATCH_BYTES);
        if (!d.buf) {
                r = upk_err_oom(err);
                goto out;
        }
        r = bundle_set_delta(b,
                             &(BundleDeltaSource){ .origin = d.origin,
                                                   .local_at = d.local_at,
                                                   .read_local = d_read_local,
                                                   .next_fetched = d_next_fetched,
                                                   .fetch_range = d_fetch_range,
                                                   .userdata = &d },
                             err);
        if (r < 0)
                goto out;
        if (o)
                wrapped = *o;
        wrapped.progress = d_progress;
        wrapped.cancelled = d_cancelled;
        wrapped.userdata = &d;
        wrapped.retried = install_delta_falls_back; /* the whole install's entry stands for both */
        st.fetch_planned = d.fetch_total;
        d.file_size = h.total;
        d.refetched_max = h.total == UINT64_MAX ? UINT64_MAX : h.total / REFETCH_MAX_DIVISOR;
        r = install_bundle_opened(c, b, &wrapped, ret, err);
        st.reached_install = true;
        bundle_get_delta_stats(b, &bs);
        st.local_bytes = bs.local_bytes;
        st.fetched_bytes = bs.fetched_bytes;
        st.zero_bytes = bs.zero_bytes;
        st.refetched_chunks = bs.refetched_chunks;
        st.refetched_bytes = bs.refetched_bytes;
out:
        if (r < 0 && !st.reached_install && !install_delta_falls_back(r, err))
                install_history_record_install(c, o, b ? bundle_get_manifest(b)->version_str : NULL, NULL,
                                               false, err->msg);
        delta_done(&d);
        if (ret_stats)
                *ret_stats = st;
        return r;
}

/* A fall back after the install began writing is safe: the target slot was marked bad before the first
 * write, the whole install writes it again from its start and marks it bad again, and nothing activates
 * it before all of it is written and checked. What never falls back is a cancel and bytes that failed
 * their check (the bundle on the server is damaged: downloading it whole would not mend that). */
bool install_delta_falls_back(int r, const UpkErr *err)
{
        return r != -ECANCELED &&
               (r == -EOPNOTSUPP || r == -ESTALE || (err && err->kind == UPK_ERR_NETWORK));
}
