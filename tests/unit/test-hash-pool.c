/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "hash-pool.h"

#include <openssl/sha.h>

/* Every job's digest is the SHA-256 of its buffer, for pools of 0 to 3 threads, over many rounds with
 * from 0 to 9 jobs (more jobs than threads, and fewer). */
TEST(digests_match)
{
        static uint8_t data[9][5000];

        for (size_t i = 0; i < 9; i++)
                for (size_t k = 0; k < sizeof(data[i]); k++)
                        data[i][k] = (uint8_t)(k * 31 + i * 7);
        for (unsigned threads = 0; threads <= 3; threads++) {
                HashPool *p = NULL;

                ASSERT_OK(hash_pool_new(threads, &p));
                for (unsigned round = 0; round < 200; round++) {
                        size_t n = round % 10;
                        HashJob jobs[9];

                        for (size_t i = 0; i < n; i++)
                                jobs[i] = (HashJob){ .data = data[(i + round) % 9],
                                                     .size = 1000 + (i * 577 + round) % 4000 };
                        ASSERT_OK(hash_pool_run(p, jobs, n));
                        for (size_t i = 0; i < n; i++) {
                                uint8_t want[32];

                                SHA256(jobs[i].data, jobs[i].size, want);
                                ASSERT_EQ(memcmp(jobs[i].digest, want, 32), 0);
                        }
                }
                hash_pool_free(p);
        }
        ASSERT_TRUE(hash_pool_threads_default() <= 3);
}
