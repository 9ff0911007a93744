/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "block-table.h"

#include <errno.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk-index.h"
#include "fileio.h"
#include "util.h"

#define READ_SIZE   (1024u * 1024u)
#define BLOCKNO_MAX ((UINT64_C(1) << 24) - 1)

/* Each entry: the 40-bit match key in the high bits, the block number in the low 24. */
struct BlockTable {
        uint64_t *entries;
        size_t n;
        uint32_t block_size;
};

BlockTable *block_table_free(BlockTable *t)
{
        if (!t)
                return NULL;
        free(t->entries);
        free(t);
        return NULL;
}

static uint64_t key40(const uint8_t *key)
{
        uint64_t k = 0;

        for (size_t i = 0; i < BLOCK_MATCH_SIZE; i++)
                k = k << 8 | key[i];
        return k;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

/* One part of the slot, hashed by one thread: blocks [first, end) into entries from `first` on. */
typedef struct TablePart {
        int fd;
        const char *what;
        uint64_t size, first, end;
        uint32_t block_size;
        bool (*cancelled)(void *userdata);
        void *userdata;
        atomic_bool *stop; /* set by the part that fails: the others end at their next read */
        uint64_t *entries;
        size_t n; /* entries written, from entries[first] on */
        int r;
        UpkErr err;
} TablePart;

static uint64_t min_u64(uint64_t a, uint64_t b)
{
        return a < b ? a : b;
}

static int part_fail(TablePart *p, int r)
{
        atomic_store(p->stop, true);
        p->r = r;
        return r;
}

static void *part_run(void *userdata)
{
        TablePart *p = userdata;
        _cleanup_free_ uint8_t *buf = malloc(READ_SIZE);
        uint64_t blockno = p->first, at = p->first * p->block_size;

        if (!buf) {
                part_fail(p, upk_err_oom(&p->err));
                return NULL;
        }
        while (blockno < p->end) {
                uint64_t span = (p->end - blockno) * p->block_size;
                size_t want = (size_t)min_u64(min_u64(READ_SIZE, span), p->size - at), got = 0;

                if (atomic_load(p->stop))
                        return NULL;
                if (p->cancelled && p->cancelled(p->userdata)) {
                        part_fail(p, upk_err(&p->err, UPK_ERR_IO, -ECANCELED, "%s: cancelled", p->what));
                        return NULL;
                }
                while (got < want) {
                        ssize_t k = pread(p->fd, buf + got, want - got, (off_t)(at + got));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0) {
                                part_fail(p, upk_err(&p->err, UPK_ERR_IO, -errno,
                                                     "%s: cannot read at byte %" PRIu64 ": %m", p->what,
                                                     at + got));
                                return NULL;
                        }
                        if (k == 0) {
                                part_fail(p,
                                          upk_err(&p->err, UPK_ERR_IO, -EIO,
                                                  "%s: ends at byte %" PRIu64 ", expected %" PRIu64 " bytes",
                                                  p->what, at + got, p->size));
                                return NULL;
                        }
                        got += (size_t)k;
                }
                for (size_t off = 0; off < want && blockno < p->end; off += p->block_size, blockno++) {
                        size_t len = want - off < p->block_size ? want - off : p->block_size;
                        uint8_t digest[32];

                        if (memeqzero(buf + off, len))
                                continue;
                        if (!SHA256(buf + off, len, digest)) {
                                part_fail(p,
                                          upk_err(&p->err, UPK_ERR_IO, -EIO, "%s: SHA-256 failed", p->what));
                                return NULL;
                        }
                        p->entries[p->first + p->n++] = key40(digest) << 24 | blockno;
                }
                at += want;
        }
        return NULL;
}

/* Slots from this size on are hashed by several threads, in parts of equal size. */
#define PARALLEL_MIN (16u * READ_SIZE)
#define PARTS_MAX    4u

int block_table_compute(int fd, const char *what, uint64_t size, uint32_t block_size,
                        bool (*cancelled)(void *userdata), void *userdata, BlockTable **ret, UpkErr *err)
{
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        TablePart parts[PARTS_MAX] = {};
        pthread_t threads[PARTS_MAX];
        atomic_bool stop = false;
        uint64_t nblocks, per;
        unsigned n_parts = 1, started = 1;
        long cpus;

        if (block_size == 0 || block_size > READ_SIZE || READ_SIZE % block_size != 0)
                return upk_err(err, UPK_ERR_IO, -EINVAL, "%s: block size %" PRIu32 " is not supported", what,
                               block_size);
        nblocks = size / block_size + (size % block_size != 0);
        if (nblocks > BLOCKNO_MAX + 1)
                nblocks = BLOCKNO_MAX + 1;
        t = calloc(1, sizeof(*t));
        if (!t)
                return upk_err_oom(err);
        t->block_size = block_size;
        t->entries = malloc((size_t)(nblocks ?: 1) * sizeof(uint64_t));
        if (!t->entries)
                return upk_err_oom(err);
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        if (size >= PARALLEL_MIN && cpus > 1)
                n_parts = cpus < (long)PARTS_MAX ? (unsigned)cpus : PARTS_MAX;
        /* Parts of whole reads, so that a part's reads are those of a single thread. */
        per = (nblocks / n_parts + READ_SIZE / block_size - 1) / (READ_SIZE / block_size) *
              (READ_SIZE / block_size);
        for (unsigned i = 0; i < n_parts; i++)
                parts[i] = (TablePart){ .fd = fd,
                                        .what = what,
                                        .size = size,
                                        .first = min_u64(i * per, nblocks),
                                        .end = i + 1 == n_parts ? nblocks : min_u64((i + 1) * per, nblocks),
                                        .block_size = block_size,
                                        .cancelled = cancelled,
                                        .userdata = userdata,
                                        .stop = &stop,
                                        .entries = t->entries };
        for (; started < n_parts; started++)
                if (pthread_create(&threads[started], NULL, part_run, &parts[started]) != 0)
                        break; /* the parts not started are hashed here, after part 0 */
        for (unsigned i = 0; i < n_parts; i++) {
                if (i == 0 || i >= started)
                        part_run(&parts[i]);
                else
                        pthread_join(threads[i], NULL);
        }
        /* The first part that failed says why (a cancel, or the lowest read error). */
        for (unsigned i = 0; i < n_parts; i++)
                if (parts[i].r < 0) {
                        if (err && err->kind == UPK_ERR_NONE) /* the first error stays, as upk_err() does */
                                *err = parts[i].err;
                        return parts[i].r;
                }
        for (unsigned i = 0; i < n_parts; i++) {
                memmove(t->entries + t->n, t->entries + parts[i].first, parts[i].n * sizeof(uint64_t));
                t->n += parts[i].n;
        }
        qsort(t->entries, t->n, sizeof(uint64_t), cmp_u64);
        *ret = TAKE_PTR(t);
        return 0;
}

int64_t block_table_find(const BlockTable *t, const uint8_t *key)
{
        uint64_t k = key40(key);
        size_t lo = 0, hi = t->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                uint64_t m = t->entries[mid] >> 24;

                if (m < k)
                        lo = mid + 1;
                else if (m > k)
                        hi = mid;
                else
                        return (int64_t)(t->entries[mid] & BLOCKNO_MAX);
        }
        return -ENOENT;
}

int64_t block_table_find_near(const BlockTable *t, const uint8_t *key, uint64_t hint)
{
        uint64_t want = key40(key) << 24 | hint;
        size_t lo = 0, hi = t->n;

        if (hint > BLOCKNO_MAX)
                return block_table_find(t, key);
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (t->entries[mid] < want)
                        lo = mid + 1;
                else if (t->entries[mid] > want)
                        hi = mid;
                else
                        return (int64_t)hint;
        }
        return block_table_find(t, key);
}

size_t block_table_size(const BlockTable *t)
{
        return t->n;
}

uint32_t block_table_block_size(const BlockTable *t)
{
        return t->block_size;
}

/* The file: "UPKBLKT1", block size (u32), slot size (u64), the origin (32 bytes), the entry count (u64),
 * the entries (u64 each, sorted), then the SHA-256 of everything before it; integers big-endian. */
#define FILE_MAGIC     "UPKBLKT1"
#define FILE_HEAD_SIZE (8u + 4u + 8u + BLOCK_TABLE_ORIGIN_SIZE + 8u)
#define FILE_SIZE_MAX  (FILE_HEAD_SIZE + (size_t)(BLOCKNO_MAX + 1) * 8u + 32u)

static void put_be(uint8_t *p, uint64_t v, unsigned bytes)
{
        for (unsigned i = 0; i < bytes; i++)
                p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, unsigned bytes)
{
        uint64_t v = 0;

        for (unsigned i = 0; i < bytes; i++)
                v = v << 8 | p[i];
        return v;
}

int block_table_serialise(const BlockTable *t, uint64_t slot_size, const uint8_t *origin, uint8_t **ret,
                          size_t *ret_size, UpkErr *err)
{
        size_t size = FILE_HEAD_SIZE + t->n * 8 + 32;
        uint8_t *d = malloc(size), *p;

        if (!d)
                return upk_err_oom(err);
        memcpy(d, FILE_MAGIC, 8);
        put_be(d + 8, t->block_size, 4);
        put_be(d + 12, slot_size, 8);
        memcpy(d + 20, origin, BLOCK_TABLE_ORIGIN_SIZE);
        put_be(d + 20 + BLOCK_TABLE_ORIGIN_SIZE, t->n, 8);
        p = d + FILE_HEAD_SIZE;
        for (size_t i = 0; i < t->n; i++, p += 8)
                put_be(p, t->entries[i], 8);
        SHA256(d, size - 32, p);
        *ret = d;
        *ret_size = size;
        return 0;
}

static int bad_table(UpkErr *err, const char *what)
{
        return upk_err(err, UPK_ERR_FORMAT, -EBADMSG, "block table: %s", what);
}

int block_table_parse(const void *data, size_t size, uint64_t slot_size, uint32_t block_size,
                      const uint8_t *origin, BlockTable **ret, UpkErr *err)
{
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        const uint8_t *d = data;
        uint64_t n, nblocks, prev = 0;
        uint8_t digest[32];

        if (size < FILE_HEAD_SIZE + 32 || memcmp(d, FILE_MAGIC, 8) != 0)
                return bad_table(err, "not a block table file");
        n = get_be(d + 20 + BLOCK_TABLE_ORIGIN_SIZE, 8);
        if (n > BLOCKNO_MAX + 1 || size != FILE_HEAD_SIZE + n * 8 + 32)
                return bad_table(err, "its length does not match its entry count");
        if (!SHA256(d, size - 32, digest) || memcmp(digest, d + size - 32, 32) != 0)
                return bad_table(err, "checksum mismatch");
        if (get_be(d + 8, 4) != block_size || get_be(d + 12, 8) != slot_size ||
            memcmp(d + 20, origin, BLOCK_TABLE_ORIGIN_SIZE) != 0)
                return upk_err(err, UPK_ERR_FORMAT, -ESTALE,
                               "block table: made for another slot content or block size");
        if (block_size == 0)
                return bad_table(err, "block size 0");
        nblocks = slot_size / block_size + (slot_size % block_size != 0);
        t = calloc(1, sizeof(*t));
        if (!t)
                return upk_err_oom(err);
        t->block_size = block_size;
        t->entries = malloc((size_t)(n ?: 1) * sizeof(uint64_t));
        if (!t->entries)
                return upk_err_oom(err);
        for (uint64_t i = 0; i < n; i++) {
                uint64_t e = get_be(d + FILE_HEAD_SIZE + i * 8, 8);

                if (i > 0 && e <= prev)
                        return bad_table(err, "entries out of order");
                if ((e & BLOCKNO_MAX) >= nblocks)
                        return bad_table(err, "an entry names a block past the slot's end");
                t->entries[i] = prev = e;
        }
        t->n = (size_t)n;
        *ret = TAKE_PTR(t);
        return 0;
}

int block_table_save(const BlockTable *t, const char *dir, const char *name, uint64_t slot_size,
                     const uint8_t *origin, UpkErr *err)
{
        _cleanup_free_ uint8_t *d = NULL;
        size_t size;
        int r;

        r = block_table_serialise(t, slot_size, origin, &d, &size, err);
        if (r < 0)
                return r;
        r = write_file_atomic(dir, name, d, size, 0600);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s/%s: cannot write: %m", dir, name);
        return 0;
}

int block_table_load(const char *dir, const char *name, uint64_t slot_size, uint32_t block_size,
                     const uint8_t *origin, BlockTable **ret, UpkErr *err)
{
        _cleanup_free_ char *path = strdup_printf("%s/%s", dir, name), *data = NULL;
        size_t size;
        int r;

        if (!path)
                return upk_err_oom(err);
        r = read_full_file(path, FILE_SIZE_MAX, &data, &size);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: cannot read: %m", path);
        r = block_table_parse(data, size, slot_size, block_size, origin, ret, err);
        if (r < 0)
                return upk_err_prefix(err, "%s", path);
        return 0;
}
