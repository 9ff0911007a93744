/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "block-table.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk-index.h"
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

static bool all_zero(const uint8_t *p, size_t n)
{
        return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int block_table_compute(int fd, const char *what, uint64_t size, uint32_t block_size,
                        bool (*cancelled)(void *userdata), void *userdata, BlockTable **ret, UpkErr *err)
{
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t nblocks, at = 0, blockno = 0;
        size_t per_read;

        if (block_size == 0 || block_size > READ_SIZE || READ_SIZE % block_size != 0)
                return upk_err(err, UPK_ERR_IO, -EINVAL, "%s: block size %" PRIu32 " is not supported", what,
                               block_size);
        nblocks = size / block_size + (size % block_size != 0);
        if (nblocks > BLOCKNO_MAX + 1)
                nblocks = BLOCKNO_MAX + 1;
        t = calloc(1, sizeof(*t));
        buf = malloc(READ_SIZE);
        if (!t || !buf)
                return upk_err_oom(err);
        t->block_size = block_size;
        t->entries = malloc((size_t)(nblocks ?: 1) * sizeof(uint64_t));
        if (!t->entries)
                return upk_err_oom(err);
        per_read = READ_SIZE;
        while (blockno < nblocks) {
                size_t want = size - at < per_read ? (size_t)(size - at) : per_read, got = 0;

                if (cancelled && cancelled(userdata))
                        return upk_err(err, UPK_ERR_IO, -ECANCELED, "%s: cancelled", what);
                while (got < want) {
                        ssize_t k = pread(fd, buf + got, want - got, (off_t)(at + got));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0)
                                return upk_err(err, UPK_ERR_IO, -errno,
                                               "%s: cannot read at byte %" PRIu64 ": %m", what, at + got);
                        if (k == 0)
                                return upk_err(err, UPK_ERR_IO, -EIO,
                                               "%s: ends at byte %" PRIu64 ", expected %" PRIu64 " bytes",
                                               what, at + got, size);
                        got += (size_t)k;
                }
                for (size_t off = 0; off < want && blockno < nblocks; off += block_size, blockno++) {
                        size_t len = want - off < block_size ? want - off : block_size;
                        uint8_t digest[32];

                        if (all_zero(buf + off, len))
                                continue;
                        if (!SHA256(buf + off, len, digest))
                                return upk_err(err, UPK_ERR_IO, -EIO, "%s: SHA-256 failed", what);
                        t->entries[t->n++] = key40(digest) << 24 | blockno;
                }
                at += want;
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

size_t block_table_size(const BlockTable *t)
{
        return t->n;
}

uint32_t block_table_block_size(const BlockTable *t)
{
        return t->block_size;
}
