/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "chunk-index.h"

#include <inttypes.h>
#include <stdarg.h>
#include <openssl/sha.h>
#include <stdio.h>

ChunkIndex *chunk_index_free(ChunkIndex *idx)
{
        if (!idx)
                return NULL;
        free(idx->entries);
        free(idx->first);
        free(idx->identity);
        free(idx);
        return NULL;
}

static uint32_t be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void chunk_entry_serialise(const ChunkEntry *e, uint8_t out[CHUNK_ENTRY_SIZE])
{
        memset(out, 0, 8);
        out[0] = e->kind;
        out[4] = (uint8_t)(e->stored_len >> 24);
        out[5] = (uint8_t)(e->stored_len >> 16);
        out[6] = (uint8_t)(e->stored_len >> 8);
        out[7] = (uint8_t)e->stored_len;
        memcpy(out + 8, e->stored_sha256, 32);
        memcpy(out + 40, e->content_sha256, 32);
}

static int bad(UpkErr *err, const ManifestPayload *p, uint64_t i, const char *fmt, ...) _printf_(4, 5);
static int bad(UpkErr *err, const ManifestPayload *p, uint64_t i, const char *fmt, ...)
{
        char msg[UPK_ERR_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return upk_err(err, UPK_ERR_FORMAT, -EBADMSG, "chunks.idx: payload \"%s\": chunk %" PRIu64 ": %s",
                       p->name, i, msg);
}

int chunk_index_parse(const void *data, size_t size, const Manifest *m, ChunkIndex **ret, UpkErr *err)
{
        _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
        const uint8_t *d = data;
        uint64_t total = 0;
        size_t k = 0;

        if (m->format != 2)
                return upk_err(err, UPK_ERR_FORMAT, -EINVAL, "chunks.idx: the manifest is not format 2");
        for (size_t i = 0; i < m->n_payloads; i++) {
                if (m->payloads[i].chunk_count > CHUNK_INDEX_SIZE_MAX / CHUNK_ENTRY_SIZE)
                        return upk_err(err, UPK_ERR_FORMAT, -EFBIG,
                                       "chunks.idx: payload \"%s\" has more chunks than an index may hold",
                                       m->payloads[i].name);
                total += m->payloads[i].chunk_count;
        }
        if (total > CHUNK_INDEX_SIZE_MAX / CHUNK_ENTRY_SIZE)
                return upk_err(err, UPK_ERR_FORMAT, -EFBIG,
                               "chunks.idx: the payloads have %" PRIu64
                               " chunks, more than an index of %u bytes holds",
                               total, CHUNK_INDEX_SIZE_MAX);
        if (size != total * CHUNK_ENTRY_SIZE)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                               "chunks.idx: %zu bytes, the payloads' %" PRIu64 " chunks need %" PRIu64, size,
                               total, total * CHUNK_ENTRY_SIZE);

        idx = calloc(1, sizeof(*idx));
        if (!idx)
                return upk_err_oom(err);
        idx->entries = calloc(total ?: 1, sizeof(ChunkEntry));
        idx->first = calloc(m->n_payloads + 1, sizeof(size_t));
        idx->identity = calloc(m->n_payloads ?: 1, 32);
        if (!idx->entries || !idx->first || !idx->identity)
                return upk_err_oom(err);
        idx->n_entries = (size_t)total;
        idx->n_payloads = m->n_payloads;

        for (size_t pi = 0; pi < m->n_payloads; pi++) {
                const ManifestPayload *p = &m->payloads[pi];
                uint64_t stored = 0;

                idx->first[pi] = k;
                if (!SHA256(d + k * CHUNK_ENTRY_SIZE, (size_t)p->chunk_count * CHUNK_ENTRY_SIZE,
                            idx->identity[pi]))
                        return upk_err(err, UPK_ERR_IO, -EIO, "chunks.idx: SHA-256 failed");
                for (uint64_t i = 0; i < p->chunk_count; i++, k++) {
                        const uint8_t *raw = d + k * CHUNK_ENTRY_SIZE;
                        ChunkEntry *e = &idx->entries[k];
                        uint32_t len = manifest_chunk_length(p, i);

                        if (raw[1] || raw[2] || raw[3])
                                return bad(err, p, i, "reserved bytes are not zero");
                        e->kind = raw[0];
                        e->stored_len = be32(raw + 4);
                        memcpy(e->stored_sha256, raw + 8, 32);
                        memcpy(e->content_sha256, raw + 40, 32);
                        switch (e->kind) {
                        case CHUNK_KIND_STORED:
                                if (e->stored_len != len)
                                        return bad(err, p, i,
                                                   "stored as is, but its stored length %" PRIu32
                                                   " is not its content length %" PRIu32,
                                                   e->stored_len, len);
                                if (memcmp(e->stored_sha256, e->content_sha256, 32) != 0)
                                        return bad(err, p, i,
                                                   "stored as is, but its stored and content hashes differ");
                                break;
                        case CHUNK_KIND_ZSTD:
                                if (p->chunk_compression != COMPRESSION_ZSTD)
                                        return bad(
                                                err, p, i,
                                                "a zstd frame in a payload whose chunks.compression is %s",
                                                compression_to_string(p->chunk_compression));
                                if (e->stored_len == 0 || e->stored_len >= len)
                                        return bad(err, p, i,
                                                   "a zstd frame of %" PRIu32
                                                   " bytes: expected more than 0 and fewer than its content "
                                                   "length %" PRIu32,
                                                   e->stored_len, len);
                                break;
                        default:
                                return bad(err, p, i, "unknown kind %u", e->kind);
                        }
                        stored += e->stored_len;
                }
                if (stored != p->size)
                        return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                                       "chunks.idx: payload \"%s\": its chunks store %" PRIu64
                                       " bytes, the manifest declares size %" PRIu64,
                                       p->name, stored, p->size);
        }
        idx->first[m->n_payloads] = k;
        *ret = TAKE_PTR(idx);
        return 0;
}
