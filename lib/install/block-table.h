/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The blocks a device already has: for a slot (a file or block device), the match key of each block
 * that is not all zeros (the first BLOCK_MATCH_SIZE bytes of its content's SHA-256, as a format-2 index
 * names them, upkeep-bundle(5)), sorted for lookup. A delta update looks up each block of a bundle's
 * payload here and reads the ones it finds from the slot instead of fetching them; whatever it reads is
 * checked against the chunk's content hash, so a stale table costs bytes, never correctness. */

#include <stdint.h>

#include "error.h"

typedef struct BlockTable BlockTable;

/* Hash every `block_size` block of the first `size` bytes of `fd` (read with pread from offset 0; the
 * last block may be shorter). Blocks past 2^24 (64 GiB in 4 KiB blocks) are not in the table. A read
 * error or a short read fails with the errno and `what` named. `cancelled`, when given, is asked between
 * reads of 1 MiB and makes the computation fail with -ECANCELED; a slot of 16 MiB or more is hashed by up
 * to four threads (one per online CPU), which may all call `cancelled`. */
int block_table_compute(int fd, const char *what, uint64_t size, uint32_t block_size,
                        bool (*cancelled)(void *userdata), void *userdata, BlockTable **ret, UpkErr *err);
BlockTable *block_table_free(BlockTable *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(BlockTable *, block_table_free);

/* The number of a block whose match key is `key` (any, when several have it), or -ENOENT. */
int64_t block_table_find(const BlockTable *t, const uint8_t *key);
/* The same, but block `hint` when it is one of the blocks with that key. */
int64_t block_table_find_near(const BlockTable *t, const uint8_t *key, uint64_t hint);
/* How many blocks the table holds (blocks of zeros are not held). */
size_t block_table_size(const BlockTable *t);
uint32_t block_table_block_size(const BlockTable *t);

/* The table as a file in the data folder, so that a slot is hashed once, not at every update. `origin`
 * is what the caller computed the table over (a digest of the slot's path, size and the payload installed
 * in it, say): a table saved with another origin, block size or slot size is not used (-ESTALE). */
#define BLOCK_TABLE_ORIGIN_SIZE 32u
int block_table_serialise(const BlockTable *t, uint64_t slot_size, const uint8_t *origin, uint8_t **ret,
                          size_t *ret_size, UpkErr *err);
/* Parse a serialised table and check it: its layout, its checksum, the entries sorted and within the
 * slot; and its origin, block size and slot size against the caller's. -EBADMSG naming the rule, -ESTALE
 * for a table of something else. */
int block_table_parse(const void *data, size_t size, uint64_t slot_size, uint32_t block_size,
                      const uint8_t *origin, BlockTable **ret, UpkErr *err);
int block_table_save(const BlockTable *t, const char *dir, const char *name, uint64_t slot_size,
                     const uint8_t *origin, UpkErr *err);
/* -ENOENT (without an error message) when there is no saved table. */
int block_table_load(const char *dir, const char *name, uint64_t slot_size, uint32_t block_size,
                     const uint8_t *origin, BlockTable **ret, UpkErr *err);
