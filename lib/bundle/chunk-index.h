/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* chunks.idx, the chunk index of a format-2 bundle (upkeep-bundle(5)): for each payload in manifest
 * order, one 72-byte entry per chunk (kind, stored length, SHA-256 of the stored bytes and of the content
 * bytes). The bundle reader checks the index's size and hash against the signed manifest before it
 * parses a byte of it, and then every chunk against its entry before it hands a byte of it on. */

#include "error.h"
#include "manifest.h"

#define CHUNK_INDEX_NAME     "chunks.idx"
#define CHUNK_ENTRY_SIZE     72u
#define CHUNK_SIZE_DEFAULT   65536u
#define CHUNK_INDEX_SIZE_MAX MANIFEST_INDEX_SIZE_MAX

typedef enum ChunkKind {
        CHUNK_KIND_STORED = 0, /* the content as is */
        CHUNK_KIND_ZSTD = 1,   /* one zstd frame */
} ChunkKind;

typedef struct ChunkEntry {
        uint8_t kind;
        uint32_t stored_len;
        uint8_t stored_sha256[32];
        uint8_t content_sha256[32];
} ChunkEntry;

typedef struct ChunkIndex {
        ChunkEntry *entries; /* every payload's, in manifest order */
        size_t n_entries;
        size_t n_payloads;
        size_t *first;           /* n_payloads + 1: payload i owns entries[first[i] .. first[i + 1]) */
        uint8_t (*identity)[32]; /* per payload: SHA-256 of its slice of the index */
} ChunkIndex;

/* Parse `size` bytes of chunks.idx for the (format 2) manifest `m` and check every rule that does not
 * need the chunks' bytes: the size, the reserved bytes, each entry's kind and stored length against its
 * payload, and each payload's stored total against its size. -EBADMSG (UPK_ERR_FORMAT) naming the
 * payload, the chunk and the rule. */
int chunk_index_parse(const void *data, size_t size, const Manifest *m, ChunkIndex **ret, UpkErr *err);
ChunkIndex *chunk_index_free(ChunkIndex *idx);
DEFINE_TRIVIAL_CLEANUP_FUNC(ChunkIndex *, chunk_index_free);

/* The 72 bytes of one entry, as in chunks.idx. */
void chunk_entry_serialise(const ChunkEntry *e, uint8_t out[CHUNK_ENTRY_SIZE]);
