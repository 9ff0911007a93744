/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "chunk-index.h"

#include <inttypes.h>
#include <stdarg.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <zstd.h>

ChunkIndex *chunk_index_free(ChunkIndex *idx)
{
        if (!idx)
                return NULL;
        free(idx->entries);
        free(idx->blocks);
        free(idx->first);
        free(idx->identity);
        free(idx);
        return NULL;
}

void chunk_entry_serialise(const ChunkEntry *e, uint8_t out[CHUNK_ENTRY_SIZE])
{
        memcpy(out, e->stored_sha256, 32);
        memcpy(out + 32, e->content_sha256, 32);
}

void block_entry_serialise(const BlockEntry *e, uint8_t out[BLOCK_ENTRY_SIZE])
{
        out[0] = e->kind;
        out[1] = (uint8_t)(e->stored_len >> 8);
        out[2] = (uint8_t)e->stored_len;
        memcpy(out + 3, e->match, BLOCK_MATCH_SIZE);
}

uint64_t chunk_index_payload_size(const ManifestPayload *p)
{
        /* Both counts are bounded by the manifest (installed_size < 2^47, sizes >= 4096): no overflow. */
        return p->chunk_count * CHUNK_ENTRY_SIZE + manifest_block_count(p) * BLOCK_ENTRY_SIZE;
}

int chunk_index_content_size(const Manifest *m, size_t *ret, UpkErr *err)
{
        uint64_t total = 0;

        if (m->format != 2)
                return upk_err(err, UPK_ERR_FORMAT, -EINVAL, "chunks.idx: the manifest is not format 2");
        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = &m->payloads[i];
                uint64_t need;

                /* The sum is checked at every step. */
                need = chunk_index_payload_size(p);
                if (need > CHUNK_INDEX_SIZE_MAX || total + need > CHUNK_INDEX_SIZE_MAX)
                        return upk_err(err, UPK_ERR_FORMAT, -EFBIG,
                                       "chunks.idx: payload \"%s\" needs more index than the %u bytes an "
                                       "index may hold: use larger blocks",
                                       p->name, CHUNK_INDEX_SIZE_MAX);
                total += need;
        }
        *ret = (size_t)total;
        return 0;
}

int chunk_index_decompress(const void *data, size_t size, const Manifest *m, void **ret, size_t *ret_size,
                           UpkErr *err)
{
        _cleanup_free_ void *out = NULL;
        unsigned long long declared;
        size_t need, n;
        int r;

        r = chunk_index_content_size(m, &need, err);
        if (r < 0)
                return r;
        declared = ZSTD_getFrameContentSize(data, size);
        if (declared == ZSTD_CONTENTSIZE_ERROR || ZSTD_findFrameCompressedSize(data, size) != size)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG, "chunks.idx: not one zstd frame");
        if (declared == ZSTD_CONTENTSIZE_UNKNOWN)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                               "chunks.idx: its zstd frame does not declare its content size");
        if (declared != need)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                               "chunks.idx: its zstd frame declares %llu bytes, the payloads need %zu",
                               declared, need);
        out = malloc(need ?: 1);
        if (!out)
                return upk_err_oom(err);
        n = ZSTD_decompress(out, need, data, size);
        if (ZSTD_isError(n) || n != need)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG, "chunks.idx: zstd: %s",
                               ZSTD_isError(n) ? ZSTD_getErrorName(n) : "it decompresses to another size");
        *ret = TAKE_PTR(out);
        *ret_size = need;
        return 0;
}

static int bad(UpkErr *err, const ManifestPayload *p, const char *what, uint64_t i, const char *fmt, ...)
        _printf_(5, 6);
static int bad(UpkErr *err, const ManifestPayload *p, const char *what, uint64_t i, const char *fmt, ...)
{
        char msg[UPK_ERR_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return upk_err(err, UPK_ERR_FORMAT, -EBADMSG, "chunks.idx: payload \"%s\": %s %" PRIu64 ": %s",
                       p->name, what, i, msg);
}

static const uint8_t no_match[BLOCK_MATCH_SIZE];

/* One payload's block entries: their rules, and each chunk's stored total. */
static int parse_blocks(const uint8_t *d, const ManifestPayload *p, ChunkEntry *chunks, BlockEntry *blocks,
                        uint64_t first_block, UpkErr *err)
{
        uint64_t n = manifest_block_count(p), per = p->chunk_size / p->block_size, stored = 0;

        for (uint64_t j = 0; j < n; j++) {
                const uint8_t *raw = d + j * BLOCK_ENTRY_SIZE;
                BlockEntry *e = &blocks[j];
                ChunkEntry *c = &chunks[j / per];
                uint32_t len = manifest_block_length(p, j);

                e->kind = raw[0];
                e->stored_len = (uint16_t)(raw[1] << 8 | raw[2]);
                memcpy(e->match, raw + 3, BLOCK_MATCH_SIZE);
                if (e->kind != BLOCK_KIND_STORED && p->chunk_compression != COMPRESSION_ZSTD)
                        return bad(err, p, "block", j,
                                   "kind %u in a payload whose chunks.compression is none", e->kind);
                switch (e->kind) {
                case BLOCK_KIND_STORED:
                        if (e->stored_len != len)
                                return bad(err, p, "block", j,
                                           "stored as is, but its stored length %u is not its content "
                                           "length %" PRIu32,
                                           e->stored_len, len);
                        break;
                case BLOCK_KIND_ZSTD:
                        if (e->stored_len == 0 || e->stored_len >= len)
                                return bad(err, p, "block", j,
                                           "a zstd frame of %u bytes: expected more than 0 and fewer than "
                                           "its content length %" PRIu32,
                                           e->stored_len, len);
                        break;
                case BLOCK_KIND_ZERO:
                        if (e->stored_len != 0)
                                return bad(err, p, "block", j, "zeros, but its stored length is %u",
                                           e->stored_len);
                        if (memcmp(e->match, no_match, BLOCK_MATCH_SIZE) != 0)
                                return bad(err, p, "block", j, "zeros, but its match key is not zero");
                        break;
                default:
                        return bad(err, p, "block", j, "unknown kind %u", e->kind);
                }
                if (c->n_blocks == 0)
                        c->first_block = first_block + j;
                c->n_blocks++;
                c->stored_len += e->stored_len;
                stored += e->stored_len;
        }
        for (uint64_t i = 0; i < p->chunk_count; i++)
                if (chunks[i].stored_len == manifest_chunk_length(p, i) &&
                    memcmp(chunks[i].stored_sha256, chunks[i].content_sha256, 32) != 0)
                        return bad(err, p, "chunk", i,
                                   "stored as is, but its stored and content hashes differ");
        if (stored != p->size)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                               "chunks.idx: payload \"%s\": its blocks store %" PRIu64
                               " bytes, the manifest declares size %" PRIu64,
                               p->name, stored, p->size);
        return 0;
}

int chunk_index_parse(const void *data, size_t size, const Manifest *m, ChunkIndex **ret, UpkErr *err)
{
        _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
        const uint8_t *d = data;
        uint64_t n_chunks = 0, n_blocks = 0;
        size_t need, off = 0;
        int r;

        r = chunk_index_content_size(m, &need, err);
        if (r < 0)
                return r;
        if (size != need)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                               "chunks.idx: %zu bytes, the payloads' chunks and blocks need %zu", size,
                               need);
        for (size_t i = 0; i < m->n_payloads; i++) {
                n_chunks += m->payloads[i].chunk_count;
                n_blocks += manifest_block_count(&m->payloads[i]);
        }

        idx = calloc(1, sizeof(*idx));
        if (!idx)
                return upk_err_oom(err);
        idx->entries = calloc(n_chunks ?: 1, sizeof(ChunkEntry));
        idx->blocks = calloc(n_blocks ?: 1, sizeof(BlockEntry));
        idx->first = calloc(m->n_payloads + 1, sizeof(size_t));
        idx->identity = calloc(m->n_payloads ?: 1, 32);
        if (!idx->entries || !idx->blocks || !idx->first || !idx->identity)
                return upk_err_oom(err);
        idx->n_entries = (size_t)n_chunks;
        idx->n_blocks = (size_t)n_blocks;
        idx->n_payloads = m->n_payloads;

        n_chunks = n_blocks = 0;
        for (size_t pi = 0; pi < m->n_payloads; pi++) {
                const ManifestPayload *p = &m->payloads[pi];
                uint64_t nb = manifest_block_count(p);
                size_t part = (size_t)(p->chunk_count * CHUNK_ENTRY_SIZE + nb * BLOCK_ENTRY_SIZE);

                idx->first[pi] = (size_t)n_chunks;
                if (!SHA256(d + off, part, idx->identity[pi]))
                        return upk_err(err, UPK_ERR_IO, -EIO, "chunks.idx: SHA-256 failed");
                for (uint64_t i = 0; i < p->chunk_count; i++) {
                        ChunkEntry *e = &idx->entries[n_chunks + i];

                        memcpy(e->stored_sha256, d + off + i * CHUNK_ENTRY_SIZE, 32);
                        memcpy(e->content_sha256, d + off + i * CHUNK_ENTRY_SIZE + 32, 32);
                }
                r = parse_blocks(d + off + p->chunk_count * CHUNK_ENTRY_SIZE, p, &idx->entries[n_chunks],
                                 &idx->blocks[n_blocks], n_blocks, err);
                if (r < 0)
                        return r;
                n_chunks += p->chunk_count;
                n_blocks += nb;
                off += part;
        }
        idx->first[m->n_payloads] = (size_t)n_chunks;
        *ret = TAKE_PTR(idx);
        return 0;
}
