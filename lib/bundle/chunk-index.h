/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* chunks.idx, the chunk index of a format-2 bundle (upkeep-bundle(5)): one zstd frame whose content is,
 * for each payload in manifest order, one 64-byte entry per chunk (SHA-256 of the chunk's stored bytes
 * and of its content), then one 8-byte entry per block (kind, stored length, match key). The bundle
 * reader checks the stored index's size and hash against the signed manifest before it decompresses a
 * byte of it, and then every chunk against its entry before it hands a byte of it on. */

#include "error.h"
#include "manifest.h"

#define CHUNK_INDEX_NAME       "chunks.idx"
#define CHUNK_ENTRY_SIZE       64u
#define BLOCK_ENTRY_SIZE       8u
#define BLOCK_MATCH_SIZE       5u
#define CHUNK_SIZE_DEFAULT     262144u
#define BLOCK_SIZE_DEFAULT     4096u
#define WINDOW_DEFAULT         262144u
#define CHUNK_INDEX_SIZE_MAX   MANIFEST_INDEX_SIZE_MAX
#define CHUNK_INDEX_ZSTD_LEVEL 19 /* the index is small and fetched by every delta */

typedef enum BlockKind {
        BLOCK_KIND_STORED = 0, /* the content as is */
        BLOCK_KIND_ZSTD = 1,   /* one zstd frame, decoded with the window's prefix */
        BLOCK_KIND_ZERO = 2,   /* zeros, not stored */
        _BLOCK_KIND_MAX,
} BlockKind;

typedef struct ChunkEntry {
        uint8_t stored_sha256[32];
        uint8_t content_sha256[32];
        uint64_t first_block; /* index into ChunkIndex.blocks */
        uint32_t n_blocks;
        uint32_t stored_len; /* the sum of its blocks' stored lengths */
} ChunkEntry;

typedef struct BlockEntry {
        uint8_t kind;
        uint16_t stored_len;
        uint8_t match[BLOCK_MATCH_SIZE];
} BlockEntry;

typedef struct ChunkIndex {
        ChunkEntry *entries; /* every payload's chunks, in manifest order */
        size_t n_entries;
        BlockEntry *blocks; /* every payload's blocks, in manifest order */
        size_t n_blocks;
        size_t n_payloads;
        size_t *first;           /* n_payloads + 1: payload i owns entries[first[i] .. first[i + 1]) */
        uint8_t (*identity)[32]; /* per payload: SHA-256 of its part of the index content */
} ChunkIndex;

/* The bytes of index content payload `p` needs, from its installed size and chunking: one entry per chunk
 * and one per block. */
uint64_t chunk_index_payload_size(const ManifestPayload *p);

/* The number of bytes of the index content that the (format 2) manifest's payloads need, or -EFBIG
 * (UPK_ERR_FORMAT) when that is more than an index may hold. */
int chunk_index_content_size(const Manifest *m, size_t *ret, UpkErr *err);

/* Decompress `size` bytes of chunks.idx as stored (one zstd frame declaring its content size), whose
 * size and SHA-256 the caller has checked against the manifest, into the index content. */
int chunk_index_decompress(const void *data, size_t size, const Manifest *m, void **ret, size_t *ret_size,
                           UpkErr *err);

/* Parse `size` bytes of the index content for the (format 2) manifest `m` and check every rule that
 * does not need the blocks' bytes: the size, each block's kind and stored length against its payload,
 * and each payload's stored total against its size. -EBADMSG (UPK_ERR_FORMAT) naming the payload, the
 * chunk or block and the rule. */
int chunk_index_parse(const void *data, size_t size, const Manifest *m, ChunkIndex **ret, UpkErr *err);
ChunkIndex *chunk_index_free(ChunkIndex *idx);
DEFINE_TRIVIAL_CLEANUP_FUNC(ChunkIndex *, chunk_index_free);

/* The bytes of one entry, as in the index content. */
void chunk_entry_serialise(const ChunkEntry *e, uint8_t out[CHUNK_ENTRY_SIZE]);
void block_entry_serialise(const BlockEntry *e, uint8_t out[BLOCK_ENTRY_SIZE]);
