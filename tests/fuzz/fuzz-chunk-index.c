/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The input is a format-2 manifest, a NUL byte, then a chunk index for it: its content (what
 * chunk_index_parse() reads), which is also tried as the stored index (one zstd frame, what
 * chunk_index_decompress() reads). Whatever index parses must keep every rule of upkeep-bundle(5): one
 * chunk entry per chunk and one block entry per block, the blocks' stored lengths adding up to each
 * payload's size, kinds 1 and 2 only where the payload allows zstd, zeros not stored. Any breach
 * aborts; a refusal must be a format error naming chunks.idx. */
#include <stdio.h>

#include "chunk-index.h"
#include "fuzz.h"

static void check_rules(const Manifest *m, const ChunkIndex *idx)
{
        size_t k = 0, b = 0;

        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = &m->payloads[i];
                uint64_t stored = 0, j = 0;

                if (idx->first[i] != k)
                        abort();
                for (uint64_t c = 0; c < p->chunk_count; c++, k++) {
                        const ChunkEntry *e = &idx->entries[k];
                        uint32_t len = manifest_chunk_length(p, c), sum = 0;

                        if (len == 0 || len > p->chunk_size || e->first_block != b || e->n_blocks == 0)
                                abort();
                        for (uint32_t x = 0; x < e->n_blocks; x++, b++, j++) {
                                const BlockEntry *be = &idx->blocks[b];
                                uint32_t blen = manifest_block_length(p, j);

                                if (blen == 0 || be->kind >= _BLOCK_KIND_MAX)
                                        abort();
                                if (be->kind != BLOCK_KIND_STORED &&
                                    p->chunk_compression != COMPRESSION_ZSTD)
                                        abort();
                                if ((be->kind == BLOCK_KIND_STORED && be->stored_len != blen) ||
                                    (be->kind == BLOCK_KIND_ZSTD &&
                                     (be->stored_len == 0 || be->stored_len >= blen)) ||
                                    (be->kind == BLOCK_KIND_ZERO && be->stored_len != 0))
                                        abort();
                                sum += be->stored_len;
                        }
                        if (sum != e->stored_len)
                                abort();
                        if (e->stored_len == len && memcmp(e->stored_sha256, e->content_sha256, 32) != 0)
                                abort();
                        stored += e->stored_len;
                }
                if (stored != p->size || j != manifest_block_count(p))
                        abort();
        }
        if (k != idx->n_entries || idx->first[m->n_payloads] != k || b != idx->n_blocks)
                abort();
}

static void refused(int r, const UpkErr *err)
{
        if (r != -ENOMEM && ((r != -EBADMSG && r != -EFBIG) || err->kind != UPK_ERR_FORMAT ||
                             !strneq(err->msg, "chunks.idx: ", 12)))
                abort();
}

static void parse(const Manifest *m, const uint8_t *data, size_t size)
{
        _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
        UpkErr err = {};
        int r;

        r = chunk_index_parse(data, size, m, &idx, &err);
        if (r < 0)
                refused(r, &err);
        else
                check_rules(m, idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_free_ void *content = NULL;
        const uint8_t *nul = memchr(data, 0, size);
        size_t n, content_size;
        UpkErr err = {};
        int r;

        if (!nul)
                return 0;
        n = (size_t)(nul - data);
        if (manifest_parse(data, n, 0, &m, NULL) < 0 || m->format != 2)
                return 0;
        parse(m, nul + 1, size - n - 1);
        r = chunk_index_decompress(nul + 1, size - n - 1, m, &content, &content_size, &err);
        if (r < 0)
                refused(r, &err);
        else
                parse(m, content, content_size);
        return 0;
}
