/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A few threads that compute the SHA-256 of several buffers at once, with the caller's thread: a delta
 * update checks every chunk it assembles from the booted slot against the chunk's content hash, and
 * SHA-256 of one buffer runs on one core only. The threads wait between calls; hash_pool_free() ends
 * them. One caller at a time. */

#include <stddef.h>
#include <stdint.h>

typedef struct HashJob {
        const void *data;
        size_t size;
        uint8_t digest[32]; /* filled by hash_pool_run() */
} HashJob;

typedef struct HashPool HashPool;

/* A pool of `threads` threads besides the caller's (0: the caller hashes everything). -errno when a
 * thread cannot be started (the ones started are ended). */
int hash_pool_new(unsigned threads, HashPool **ret);
HashPool *hash_pool_free(HashPool *p);
/* The threads a pool should have here: one less than the online CPUs, at most 3. */
unsigned hash_pool_threads_default(void);

/* The digest of each of the `n` jobs, computed by the pool's threads and the caller's; returns when all
 * are done. 0, or -EIO when OpenSSL failed on one of them. */
int hash_pool_run(HashPool *p, HashJob *jobs, size_t n);
