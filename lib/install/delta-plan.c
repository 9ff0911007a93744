/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "delta-plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define TAR_BLOCK 512u

static uint64_t padded(uint64_t size)
{
        return (size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

void delta_member_offsets(const Manifest *m, size_t manifest_size, size_t sig_size, uint64_t *ret)
{
        uint64_t header = 0;

        /* Member k's header at H_k, its data at H_k + 512; H_(k+1) = H_k + 512 + its padded size. */
        ret[0] = header + TAR_BLOCK;
        header += TAR_BLOCK + padded(manifest_size);
        ret[1] = header + TAR_BLOCK;
        header += TAR_BLOCK + padded(sig_size);
        ret[2] = header + TAR_BLOCK;
        header += TAR_BLOCK + padded(m->index_size);
        for (size_t i = 0; i < m->n_payloads; i++) {
                ret[3 + i] = header + TAR_BLOCK;
                header += TAR_BLOCK + padded(m->payloads[i].size);
        }
}

DeltaPlan *delta_plan_free(DeltaPlan *p)
{
        if (!p)
                return NULL;
        free(p->source);
        free(p->local_at);
        free(p->ranges);
        free(p);
        return NULL;
}

static int add_range(DeltaPlan *p, uint64_t start, uint64_t end, uint32_t gap, size_t *cap, UpkErr *err)
{
        if (p->n_ranges > 0 && p->ranges[p->n_ranges - 1].end + gap >= start) {
                p->range_bytes += end - p->ranges[p->n_ranges - 1].end;
                p->ranges[p->n_ranges - 1].end = end;
                return 0;
        }
        if (p->n_ranges == *cap) {
                size_t n = *cap ? 2 * *cap : 64;
                DeltaRange *r = realloc(p->ranges, n * sizeof(*r));
                if (!r)
                        return upk_err_oom(err);
                p->ranges = r;
                *cap = n;
        }
        p->ranges[p->n_ranges++] = (DeltaRange){ start, end };
        p->range_bytes += end - start;
        return 0;
}

int delta_plan(const Bundle *b, size_t payload, const BlockTable *t, uint32_t gap, DeltaPlan **ret,
               UpkErr *err)
{
        _cleanup_(delta_plan_freep) DeltaPlan *p = NULL;
        _cleanup_free_ uint64_t *offsets = NULL;
        const Manifest *m = bundle_get_manifest(b);
        const ChunkIndex *idx = bundle_get_index(b);
        const ManifestPayload *mp;
        size_t manifest_size, sig_size, cap = 0;
        uint64_t at, j = 0;

        if (!idx || payload >= m->n_payloads)
                return upk_err(err, UPK_ERR_FORMAT, -EINVAL, "delta: the bundle has no format-2 payload %zu",
                               payload);
        mp = &m->payloads[payload];
        if (t && block_table_block_size(t) != mp->block_size)
                t = NULL; /* a table of other blocks finds nothing */
        bundle_get_raw(b, NULL, &manifest_size, NULL, &sig_size);
        offsets = calloc(3 + m->n_payloads, sizeof(uint64_t));
        p = calloc(1, sizeof(*p));
        if (!offsets || !p)
                return upk_err_oom(err);
        delta_member_offsets(m, manifest_size, sig_size, offsets);
        p->member_at = at = offsets[3 + payload];
        p->n_blocks = manifest_block_count(mp);
        p->source = malloc(p->n_blocks ?: 1);
        p->local_at = malloc((p->n_blocks ?: 1) * sizeof(int32_t));
        if (!p->source || !p->local_at)
                return upk_err_oom(err);
        for (size_t c = idx->first[payload]; c < idx->first[payload + 1]; c++)
                for (uint32_t k = 0; k < idx->entries[c].n_blocks; k++, j++) {
                        const BlockEntry *e = &idx->blocks[idx->entries[c].first_block + k];
                        int64_t local = -ENOENT;
                        int r;

                        /* Of several blocks with the content, the one after the block before (or at the
                         * same place): runs of blocks are read from the slot at once. */
                        if (e->kind != BLOCK_KIND_ZERO && t)
                                local = block_table_find_near(t, e->match,
                                                              j > 0 && p->local_at[j - 1] >= 0
                                                                      ? (uint64_t)p->local_at[j - 1] + 1
                                                                      : j);
                        p->local_at[j] = local >= 0 ? (int32_t)local : -1;
                        p->source[j] = e->kind == BLOCK_KIND_ZERO ? DELTA_ZERO
                                       : local >= 0               ? DELTA_LOCAL
                                                                  : DELTA_FETCH;
                        p->counts[p->source[j]]++;
                        if (p->source[j] == DELTA_FETCH) {
                                r = add_range(p, at, at + e->stored_len, gap, &cap, err);
                                if (r < 0)
                                        return r;
                                p->fetch_bytes += e->stored_len;
                        }
                        at += e->stored_len;
                }
        *ret = TAKE_PTR(p);
        return 0;
}
