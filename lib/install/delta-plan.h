/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What a delta update of one format-2 payload takes from where (upkeep-bundle(5), Deltas): for each
 * block, zeros (made), local (a block of the device's slot with the same match key, from its block
 * table) or fetched (its stored bytes, from the bundle file); and the byte ranges of the bundle file to
 * fetch, neighbours merged. Nothing is trusted on the plan's word: every chunk is checked against its
 * content hash before it is used, and a chunk that fails is fetched whole. */

#include <stdint.h>

#include "block-table.h"
#include "bundle.h"
#include "chunk-index.h"
#include "error.h"

/* The plan's sources are the reader's block origins (bundle_set_delta()). */
typedef BundleBlockOrigin DeltaSource;
#define DELTA_ZERO  BUNDLE_BLOCK_ZERO
#define DELTA_LOCAL BUNDLE_BLOCK_LOCAL
#define DELTA_FETCH BUNDLE_BLOCK_FETCH

typedef struct DeltaRange {
        uint64_t start, end; /* bytes [start, end) of the bundle file */
} DeltaRange;

typedef struct DeltaPlan {
        uint64_t n_blocks;
        uint8_t *source;    /* per block: a DeltaSource */
        int32_t *local_at;  /* per block: the slot's block number when local (< 2^24), else -1 */
        uint64_t member_at; /* where the payload's member data starts in the bundle file */
        DeltaRange *ranges;
        size_t n_ranges;
        uint64_t fetch_bytes; /* the stored bytes of the fetched blocks */
        uint64_t range_bytes; /* what the ranges hold: fetch_bytes and the gaps merged in */
        uint64_t counts[3];   /* blocks per DeltaSource */
} DeltaPlan;

/* Where each member's data starts in a bundle of the canonical format-2 layout: the index (member 2) and
 * the payloads (3...), from the sizes of the manifest, the signature and the index. `ret` has room for
 * 3 + n_payloads offsets. */
void delta_member_offsets(const Manifest *m, size_t manifest_size, size_t sig_size, uint64_t *ret);

/* Plan payload number `payload` of an opened (and verified) format-2 bundle `b` against the block table
 * `t` of the slot it replaces (NULL: nothing is local). Ranges less than `gap` bytes apart are merged. */
int delta_plan(const Bundle *b, size_t payload, const BlockTable *t, uint32_t gap, DeltaPlan **ret,
               UpkErr *err);
DeltaPlan *delta_plan_free(DeltaPlan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(DeltaPlan *, delta_plan_free);
