/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The input is a format-2 manifest, a NUL byte, then a chunk index for it. Whatever index parses must
 * keep every rule of upkeep-bundle(5): one entry per chunk, stored lengths adding up to each payload's
 * size, kind 0 chunks stored as is, kind 1 only where the payload allows zstd. Any breach aborts. */
#include <stdio.h>

#include "chunk-index.h"
#include "fuzz.h"

static void check_rules(const Manifest *m, const ChunkIndex *idx)
{
        size_t k = 0;

        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = &m->payloads[i];
                uint64_t stored = 0;

                if (idx->first[i] != k)
                        abort();
                for (uint64_t c = 0; c < p->chunk_count; c++, k++) {
                        const ChunkEntry *e = &idx->entries[k];
                        uint32_t len = manifest_chunk_length(p, c);

                        if (len == 0 || len > p->chunk_size)
                                abort();
                        if (e->kind == CHUNK_KIND_STORED) {
                                if (e->stored_len != len ||
                                    memcmp(e->stored_sha256, e->content_sha256, 32) != 0)
                                        abort();
                        } else if (e->kind != CHUNK_KIND_ZSTD || p->chunk_compression != COMPRESSION_ZSTD ||
                                   e->stored_len == 0 || e->stored_len >= len)
                                abort();
                        stored += e->stored_len;
                }
                if (stored != p->size)
                        abort();
        }
        if (k != idx->n_entries || idx->first[m->n_payloads] != k)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
        const uint8_t *nul = memchr(data, 0, size);
        UpkErr err = {};
        size_t n;
        int r;

        if (!nul)
                return 0;
        n = (size_t)(nul - data);
        if (manifest_parse(data, n, 0, &m, NULL) < 0 || m->format != 2)
                return 0;
        r = chunk_index_parse(nul + 1, size - n - 1, m, &idx, &err);
        if (r < 0) {
                if (r != -ENOMEM && ((r != -EBADMSG && r != -EFBIG) || err.kind != UPK_ERR_FORMAT ||
                                     !strneq(err.msg, "chunks.idx: ", 12)))
                        abort();
                return 0;
        }
        check_rules(m, idx);
        return 0;
}
