/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the reader's delta mode (bundle_set_delta()): the bundle is fixed
 * (tests/fuzz/delta.upk, made by make-delta-corpus.py: format 2, a zstd payload
 * with the window on and zero blocks, a payload stored as is; opened
 * unverified), and the input is everything a delta reads that is not signed:
 * the plan, the device's slot, the fetched ranges and the chunks fetched again.
 * The payloads' true content is read once at startup with a full read of the
 * bundle; every block the delta read hands on must be exactly that content at
 * that place, and a failure must say why.
 *
 * The input, little-endian, every part optional (missing bytes read as zero):
 *   per block of all payloads (manifest order), 2 bytes: o, l. o & 3: 0 zero, 1
 * local, 2 or 3 fetch. The local block number: -1 - l when o & 0x40, INT64_MAX
 * - l when o & 0x80, else the block's place in the true slot + (int8_t)l. u16
 * n, then n pieces of fetched bytes, 5 bytes each: kind u8, len u16, adj s16.
 * The piece is at the end of the previous one (at first: the first payload's
 * start) + adj (UINT64_MAX - (u16)adj when kind & 0x10), of `len` bytes; kind &
 * 3: 0 the bundle's bytes (zeros past its end), 1 bytes from the pool, 2 an
 * error, 3 the end. After the n pieces: the bundle's bytes in 4 KiB pieces to
 * its end. u8 n, then n bytes, one a chunk fetched again (then 0): & 3: 0 the
 * bundle's bytes, 1 those with one byte flipped, 2 bytes from the pool, 3 an
 * error. u32 slot size, u32 patch offset, u16 patch length, the patch: the slot
 * is the true slot (each payload's content padded to whole blocks, one after
 * the other; zeros after it) cut to the slot size, with the patch written at
 * its offset. Reads past the slot's size are short. u8 ahead: BundleDeltaSource.ahead
 * (modulo BUNDLE_DELTA_AHEAD_MAX + 1; 0: the default). The rest: the pool. */
#include <stdio.h>
#include <stdlib.h>

#include "bundle.h"
#include "fileio.h"
#include "fuzz.h"

#define DELTA_BLOCK        4096u /* the fixed bundle's block size */
#define DELTA_SLOT_MAX     (1u << 20)
#define DELTA_PAYLOADS_MAX 4u
#define DELTA_BUNDLE_MAX   (4u << 20)

typedef struct Truth {
        char *file; /* the bundle */
        size_t file_size;
        size_t n_payloads;
        uint8_t *content[DELTA_PAYLOADS_MAX];
        uint64_t content_size[DELTA_PAYLOADS_MAX];
        uint64_t n_blocks[DELTA_PAYLOADS_MAX];
        uint64_t first_block[DELTA_PAYLOADS_MAX]; /* in the true slot */
        uint64_t total_blocks;
        uint64_t first_at; /* the first payload's bytes in the file */
        uint8_t *slot;     /* the true slot */
        size_t slot_size;
} Truth;

static Truth truth;

typedef struct MemSource {
        const char *data;
        size_t size, pos;
} MemSource;

static ssize_t mem_read(void *userdata, void *buf, size_t size)
{
        MemSource *m = userdata;
        size_t n = m->size - m->pos < size ? m->size - m->pos : size;

        memcpy(buf, m->data + m->pos, n);
        m->pos += n;
        return (ssize_t)n;
}

/* The fixed bundle, unverified, from `m`, which must outlive the bundle. */
static int open_bundle(MemSource *m, Bundle **ret)
{
        BundleOpenOptions opts = {};
        UpkErr err = {};

        *m = (MemSource){ .data = truth.file, .size = truth.file_size };
        return bundle_open_func(mem_read, m, &opts, ret, &err);
}

static void load_truth(void)
{
        const char *path = getenv("UPKEEP_FUZZ_DELTA_BUNDLE") ?: FUZZ_DELTA_BUNDLE;
        _cleanup_(bundle_freep) Bundle *b = NULL;
        const ManifestPayload *p;
        const Manifest *m;
        MemSource src;
        UpkErr err = {};
        int r;

        if (read_full_file(path, DELTA_BUNDLE_MAX, &truth.file, &truth.file_size) < 0 ||
            open_bundle(&src, &b) < 0) {
                fprintf(stderr, "fuzz-delta: cannot open %s\n", path);
                abort();
        }
        m = bundle_get_manifest(b);
        if (m->n_payloads > DELTA_PAYLOADS_MAX)
                abort();
        truth.n_payloads = m->n_payloads;
        truth.first_at = bundle_payload_offset(b, 0);
        for (size_t i = 0; i < m->n_payloads; i++) {
                p = &m->payloads[i];
                if (p->block_size != DELTA_BLOCK || p->installed_size > DELTA_SLOT_MAX)
                        abort();
                truth.content_size[i] = p->installed_size;
                truth.n_blocks[i] = (p->installed_size + p->block_size - 1) / p->block_size;
                truth.first_block[i] = truth.total_blocks;
                truth.total_blocks += truth.n_blocks[i];
                truth.content[i] = malloc(p->installed_size ?: 1);
                if (!truth.content[i])
                        abort();
        }
        truth.slot_size = truth.total_blocks * DELTA_BLOCK;
        truth.slot = calloc(truth.slot_size ?: 1, 1);
        if (!truth.slot)
                abort();
        for (size_t i = 0; (r = bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, &err)) > 0; i++) {
                uint64_t at = 0;
                const void *buf;
                size_t len;

                while ((r = bundle_read_block(b, &buf, &len, &err)) > 0) {
                        if (at + len > truth.content_size[i])
                                abort();
                        memcpy(truth.content[i] + at, buf, len);
                        at += len;
                }
                if (r < 0 || at != truth.content_size[i])
                        break;
                memcpy(truth.slot + truth.first_block[i] * DELTA_BLOCK, truth.content[i], at);
        }
        if (r < 0) {
                fprintf(stderr, "fuzz-delta: %s: %s\n", path, err.msg);
                abort();
        }
}

/* The input, cut into its parts. */
typedef struct Cursor {
        const uint8_t *data;
        size_t size, pos;
} Cursor;

static uint64_t take(Cursor *c, size_t n)
{
        uint64_t v = 0;

        for (size_t i = 0; i < n; i++, c->pos++)
                v |= (uint64_t)(c->pos < c->size ? c->data[c->pos] : 0) << (8 * i);
        return v;
}

static const uint8_t *take_bytes(Cursor *c, size_t *n)
{
        const uint8_t *p = c->data + (c->pos < c->size ? c->pos : c->size);

        if (c->pos >= c->size)
                *n = 0;
        else if (*n > c->size - c->pos)
                *n = c->size - c->pos;
        c->pos += *n;
        return p;
}

typedef struct Io {
        const uint8_t *pieces; /* 5 bytes each */
        size_t n_pieces, next_piece;
        const uint8_t *refetch;
        size_t n_refetch, next_refetch;
        uint8_t *slot;
        size_t slot_size;
        const uint8_t *pool;
        size_t pool_size, pool_pos;
        uint64_t cursor; /* where the next fetched piece starts */
        uint8_t *lent;   /* the piece handed out last, freed when the next is asked for */
} Io;

static void fill_from_pool(Io *io, uint8_t *buf, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                buf[i] = io->pool_size ? io->pool[io->pool_pos % io->pool_size] : 0x5a;
                io->pool_pos++;
        }
}

static void fill_from_file(uint8_t *buf, uint64_t offset, size_t n)
{
        for (size_t i = 0; i < n; i++)
                buf[i] = offset + i < truth.file_size && offset + i >= offset
                                 ? (uint8_t)truth.file[offset + i]
                                 : 0;
}

static ssize_t io_read_local(void *userdata, size_t payload, uint64_t block, void *buf, size_t size)
{
        Io *io = userdata;
        uint64_t at;

        if (block > io->slot_size / DELTA_BLOCK)
                return 0;
        at = block * DELTA_BLOCK;
        if (size > io->slot_size - at)
                size = io->slot_size - at; /* a short read */
        memcpy(buf, io->slot + at, size);
        return (ssize_t)size;
}

static ssize_t io_next_fetched(void *userdata, uint64_t *ret_offset, const void **ret_buf, UpkErr *err)
{
        Io *io = userdata;
        uint64_t offset;
        size_t n;
        unsigned kind;

        free(io->lent);
        io->lent = NULL;
        if (io->next_piece < io->n_pieces) {
                const uint8_t *r = io->pieces + 5 * io->next_piece++;
                uint16_t adj = (uint16_t)(r[3] | r[4] << 8);

                kind = r[0];
                n = (size_t)(r[1] | r[2] << 8);
                offset = kind & 0x10 ? UINT64_MAX - adj : io->cursor + (uint64_t)(int64_t)(int16_t)adj;
                if (!(kind & 0x10) && (int16_t)adj < 0 && (uint64_t) - (int64_t)(int16_t)adj > io->cursor)
                        offset = 0;
                kind &= 3;
        } else {
                kind = 0;
                offset = io->cursor;
                if (offset >= truth.file_size)
                        return 0;
                n = truth.file_size - offset < 4096 ? truth.file_size - offset : 4096;
        }
        if (kind == 2) {
                if (n & 1)
                        return upk_err(err, UPK_ERR_NETWORK, -ECONNRESET, "fuzz: connection reset");
                return -EIO;
        }
        if (kind == 3 || n == 0)
                return 0;
        io->lent = malloc(n);
        if (!io->lent)
                abort();
        if (kind == 0)
                fill_from_file(io->lent, offset, n);
        else
                fill_from_pool(io, io->lent, n);
        io->cursor = offset + n;
        *ret_offset = offset;
        *ret_buf = io->lent;
        return (ssize_t)n;
}

static int io_fetch_range(void *userdata, size_t payload, uint64_t offset, size_t size, void *buf,
                          UpkErr *err)
{
        Io *io = userdata;
        unsigned mode = io->next_refetch < io->n_refetch ? io->refetch[io->next_refetch++] & 3 : 0;

        /* The reader asks only for a chunk's stored bytes, which lie inside the
         * bundle. */
        if (offset < truth.first_at || offset > truth.file_size || size > truth.file_size - offset)
                abort();
        switch (mode) {
        case 0:
        case 1:
                memcpy(buf, truth.file + offset, size);
                if (mode == 1 && size > 0)
                        ((uint8_t *)buf)[size / 2] ^= 0x10;
                return 0;
        case 2:
                fill_from_pool(io, buf, size);
                return 0;
        default:
                return upk_err(err, UPK_ERR_NETWORK, -ETIMEDOUT, "fuzz: timed out");
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_free_ uint8_t *origin_all = NULL;
        _cleanup_free_ int32_t *local_all = NULL;
        _cleanup_(bundle_freep) Bundle *b = NULL;
        const uint8_t *origin[DELTA_PAYLOADS_MAX];
        const int32_t *local_at[DELTA_PAYLOADS_MAX];
        const ManifestPayload *p;
        Cursor c = { .data = data, .size = size };
        MemSource mem;
        Io io = {};
        UpkErr err = {};
        size_t n, i;
        uint64_t slot_size, patch_at;
        unsigned ahead;
        const uint8_t *patch;
        int r;

        if (!truth.file)
                load_truth();
        if (size > DELTA_SLOT_MAX)
                return 0;

        origin_all = malloc(truth.total_blocks ?: 1);
        local_all = malloc(sizeof(int32_t) * (truth.total_blocks ?: 1));
        if (!origin_all || !local_all)
                abort();
        for (uint64_t j = 0; j < truth.total_blocks; j++) {
                uint8_t o = (uint8_t)take(&c, 1), l = (uint8_t)take(&c, 1);

                origin_all[j] = (o & 3) == 0   ? BUNDLE_BLOCK_ZERO
                                : (o & 3) == 1 ? BUNDLE_BLOCK_LOCAL
                                               : BUNDLE_BLOCK_FETCH;
                if (o & 0x80)
                        local_all[j] = INT32_MAX - l;
                else if (o & 0x40)
                        local_all[j] = -1 - (int32_t)l;
                else
                        local_all[j] = (int32_t)j + (int8_t)l;
        }
        for (i = 0; i < truth.n_payloads; i++) {
                origin[i] = origin_all + truth.first_block[i];
                local_at[i] = local_all + truth.first_block[i];
        }
        n = 5 * (size_t)take(&c, 2);
        io.pieces = take_bytes(&c, &n);
        io.n_pieces = n / 5;
        n = (size_t)take(&c, 1);
        io.refetch = take_bytes(&c, &n);
        io.n_refetch = n;
        slot_size = take(&c, 4);
        patch_at = take(&c, 4);
        n = (size_t)take(&c, 2);
        patch = take_bytes(&c, &n);
        ahead = (unsigned)take(&c, 1) % (BUNDLE_DELTA_AHEAD_MAX + 1);
        io.pool = data + (c.pos < size ? c.pos : size);
        io.pool_size = size - (size_t)(io.pool - data);

        io.slot_size = (size_t)(slot_size < DELTA_SLOT_MAX ? slot_size : DELTA_SLOT_MAX);
        io.slot = calloc(io.slot_size ?: 1, 1);
        if (!io.slot)
                abort();
        memcpy(io.slot, truth.slot, io.slot_size < truth.slot_size ? io.slot_size : truth.slot_size);
        if (patch_at < io.slot_size)
                memcpy(io.slot + patch_at, patch, n < io.slot_size - patch_at ? n : io.slot_size - patch_at);
        io.cursor = truth.first_at;

        if (open_bundle(&mem, &b) < 0)
                abort();
        BundleDeltaSource src = {
                .origin = origin,
                .local_at = local_at,
                .read_local = io_read_local,
                .next_fetched = io_next_fetched,
                .fetch_range = io_fetch_range,
                .userdata = &io,
                .ahead = ahead,
        };
        r = bundle_set_delta(b, &src, &err);
        if (r < 0)
                abort();
        for (i = 0; (r = bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, &err)) > 0; i++) {
                uint64_t at = 0;
                const void *buf;
                size_t len;

                if (i >= truth.n_payloads || p->installed_size != truth.content_size[i])
                        abort();
                while ((r = bundle_read_block(b, &buf, &len, &err)) > 0) {
                        /* Only content that checked out is handed on: the true content at its
                         * place. */
                        if (len == 0 || len > truth.content_size[i] - at ||
                            memcmp(buf, truth.content[i] + at, len) != 0)
                                abort();
                        at += len;
                }
                if (r < 0)
                        break;
                if (at != truth.content_size[i])
                        abort();
        }
        if (r < 0 && (err.kind == UPK_ERR_NONE || !err.msg[0]))
                abort(); /* every failure must say why */
        if (r == 0 && i != truth.n_payloads)
                abort();
        b = bundle_free(b);
        free(io.lent);
        free(io.slot);
        return 0;
}
