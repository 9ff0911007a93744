/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "readahead.h"
#include "tests.h"

static uint8_t *pattern(size_t size)
{
        uint8_t *p = malloc(size ?: 1);

        ASSERT_TRUE(p);
        for (size_t i = 0; i < size; i++)
                p[i] = (uint8_t)(i * 131 + i / 251);
        return p;
}

/* Waits until the read-ahead thread has read the file up to `want` (or its end): the file offset of `fd`
 * that its read() calls move. Polls, with a deadline no slow machine reaches. */
static void wait_read_up_to(int fd, off_t want)
{
        struct timespec t0, t;
        struct stat st;

        ASSERT_OK(fstat(fd, &st));
        if (want > st.st_size)
                want = st.st_size;
        ASSERT_OK(clock_gettime(CLOCK_MONOTONIC, &t0));
        for (;;) {
                off_t pos = lseek(fd, 0, SEEK_CUR);

                ASSERT_TRUE(pos >= 0);
                if (pos >= want)
                        return;
                ASSERT_OK(clock_gettime(CLOCK_MONOTONIC, &t));
                ASSERT_TRUE(t.tv_sec - t0.tv_sec < 60);
                usleep(1000);
        }
}

/* Read everything through readahead_next() into one buffer; returns the last return value. */
static ssize_t drain(ReadAhead *ra, uint8_t *out, size_t cap, size_t *ret_size)
{
        size_t size = 0;
        const void *p;
        ssize_t k;

        while ((k = readahead_next(ra, &p)) > 0) {
                ASSERT_TRUE((size_t)k <= READAHEAD_BLOCK_SIZE);
                ASSERT_TRUE(size + (size_t)k <= cap);
                memcpy(out + size, p, (size_t)k);
                size += (size_t)k;
        }
        *ret_size = size;
        return k;
}

TEST(reads_files_of_every_shape)
{
        const size_t sizes[] = { 0,
                                 1,
                                 READAHEAD_BLOCK_SIZE - 1,
                                 READAHEAD_BLOCK_SIZE,
                                 READAHEAD_BLOCK_SIZE + 1,
                                 READAHEAD_BLOCKS * READAHEAD_BLOCK_SIZE,
                                 (3 * READAHEAD_BLOCKS + 1) * READAHEAD_BLOCK_SIZE + 4321 };

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                _cleanup_free_ uint8_t *want = pattern(sizes[i]);
                _cleanup_free_ uint8_t *got = malloc(sizes[i] + 1);
                _cleanup_(readahead_freep) ReadAhead *ra = NULL;
                _cleanup_close_ int fd = -EBADF;
                const void *p;
                size_t size;

                test_write_file("f", want, sizes[i]);
                fd = open("f", O_RDONLY | O_CLOEXEC);
                ASSERT_TRUE(fd >= 0);
                ASSERT_OK(readahead_new(fd, &ra));
                ASSERT_EQ(drain(ra, got, sizes[i] + 1, &size), 0);
                ASSERT_EQ(size, sizes[i]);
                ASSERT_TRUE(memcmp(got, want, size) == 0);
                /* the end stays the end */
                ASSERT_EQ(readahead_next(ra, &p), 0);
        }
}

TEST(a_failed_read_is_reported_and_stays)
{
        _cleanup_(readahead_freep) ReadAhead *ra = NULL;
        _cleanup_close_ int fd = -EBADF;
        const void *p;

        ASSERT_OK(mkdir("d", 0755));
        fd = open("d", O_RDONLY | O_CLOEXEC | O_DIRECTORY);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(readahead_new(fd, &ra));
        ASSERT_EQ(readahead_next(ra, &p), -EISDIR);
        ASSERT_EQ(readahead_next(ra, &p), -EISDIR);
}

TEST(blocks_lent_out_stay_unchanged_until_given_back)
{
        const size_t size = 5 * READAHEAD_BLOCKS * READAHEAD_BLOCK_SIZE;
        _cleanup_free_ uint8_t *want = pattern(size);
        _cleanup_(readahead_freep) ReadAhead *ra = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t off = 0;
        const void *p;
        ssize_t k;

        test_write_file("f", want, size);
        fd = open("f", O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(readahead_new(fd, &ra));
        while ((k = readahead_next(ra, &p)) > 0) {
                /* the thread fills every free block meanwhile: the lent one must not be among them */
                wait_read_up_to(fd,
                                (off_t)(off + (size_t)k + (READAHEAD_BLOCKS - 1) * READAHEAD_BLOCK_SIZE));
                ASSERT_TRUE(memcmp(p, want + off, (size_t)k) == 0);
                off += (size_t)k;
        }
        ASSERT_EQ(k, 0);
        ASSERT_EQ(off, size);
}

TEST(freed_midway_with_the_thread_waiting_for_room)
{
        const size_t size = 3 * READAHEAD_BLOCKS * READAHEAD_BLOCK_SIZE;
        _cleanup_free_ uint8_t *want = pattern(size);
        _cleanup_close_ int fd = -EBADF;
        ReadAhead *ra = NULL;
        const void *p;

        test_write_file("f", want, size);
        fd = open("f", O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(readahead_new(fd, &ra));
        ASSERT_EQ(readahead_next(ra, &p), (ssize_t)READAHEAD_BLOCK_SIZE);
        /* every block is full now: the thread waits */
        wait_read_up_to(fd, (off_t)READAHEAD_BLOCKS * READAHEAD_BLOCK_SIZE);
        readahead_free(ra);
        /* and before it read anything */
        ASSERT_OK(readahead_new(fd, &ra));
        readahead_free(ra);
}
