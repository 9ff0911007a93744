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
 * reads of 1 MiB and makes the computation fail with -ECANCELED. */
int block_table_compute(int fd, const char *what, uint64_t size, uint32_t block_size,
                        bool (*cancelled)(void *userdata), void *userdata, BlockTable **ret, UpkErr *err);
BlockTable *block_table_free(BlockTable *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(BlockTable *, block_table_free);

/* The number of a block whose match key is `key` (any, when several have it), or -ENOENT. */
int64_t block_table_find(const BlockTable *t, const uint8_t *key);
/* How many blocks the table holds (blocks of zeros are not held). */
size_t block_table_size(const BlockTable *t);
uint32_t block_table_block_size(const BlockTable *t);
