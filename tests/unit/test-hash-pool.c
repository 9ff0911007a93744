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

static unsigned threads_now(void)
{
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        unsigned n = 0;
        FILE *f = fopen("/proc/self/status", "re");

        ASSERT_TRUE(f);
        while (getline(&line, &cap, f) > 0)
                if (sscanf(line, "Threads: %u", &n) == 1)
                        break;
        fclose(f);
        ASSERT_TRUE(n > 0);
        return n;
}

/* qemu-user runs threads of its own, which come and go: the count is checked on the host only. */
#define ASSERT_THREADS(n)                              \
        do {                                           \
                if (!test_emulated())                  \
                        ASSERT_EQ(threads_now(), (n)); \
        } while (0)

/* The test hook UPKEEP_TEST_HASH_POOL_FAIL: a thread that cannot be started fails the pool with EAGAIN,
 * the threads started before it are ended; "run" fails every round with -EIO. */
TEST(failures)
{
        static uint8_t data[3][1000];
        HashJob jobs[3];
        HashPool *p = (HashPool *)&data; /* not touched on failure */
        unsigned before;

        if (!HAVE_TEST_HOOKS)
                test_skip("a build without test hooks");
        /* A pool made and freed first: a sanitizer's runtime starts a thread of its own with the first. */
        ASSERT_OK(hash_pool_new(1, &p));
        hash_pool_free(p);
        p = (HashPool *)&data;
        before = threads_now();
        ASSERT_EQ(setenv("UPKEEP_TEST_HASH_POOL_FAIL", "thread:2", 1), 0);
        ASSERT_EQ(hash_pool_new(3, &p), -EAGAIN);
        ASSERT_TRUE(p == (HashPool *)&data);
        ASSERT_THREADS(before);
        ASSERT_EQ(setenv("UPKEEP_TEST_HASH_POOL_FAIL", "thread:0", 1), 0);
        ASSERT_EQ(hash_pool_new(1, &p), -EAGAIN);
        ASSERT_OK(hash_pool_new(0, &p)); /* no thread to start */
        hash_pool_free(p);

        ASSERT_EQ(setenv("UPKEEP_TEST_HASH_POOL_FAIL", "run", 1), 0);
        ASSERT_OK(hash_pool_new(2, &p));
        ASSERT_THREADS(before + 2);
        for (size_t i = 0; i < 3; i++)
                jobs[i] = (HashJob){ .data = data[i], .size = sizeof(data[i]) };
        ASSERT_EQ(hash_pool_run(p, jobs, 3), -EIO);
        hash_pool_free(p);
        ASSERT_THREADS(before);
}
