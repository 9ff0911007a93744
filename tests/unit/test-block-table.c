/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "block-table.h"
#include "chunk-index.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <unistd.h>

#define B 4096u

static void fill(uint8_t *p, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)((i * 131 + seed * 7919 + (i >> 8)) ^ seed);
}

static void key_of(const uint8_t *p, size_t n, uint8_t key[BLOCK_MATCH_SIZE])
{
        uint8_t d[32];

        SHA256(p, n, d);
        memcpy(key, d, BLOCK_MATCH_SIZE);
}

/* A slot of 300 blocks and a short tail: distinct blocks, zeros, a repeated block; every block that is not
 * zeros is found at a block that holds its content, zeros are not held, an unknown key is not found. */
TEST(finds_every_block_but_zeros)
{
        const size_t n = 300, size = n * B + 100;
        _cleanup_free_ uint8_t *img = calloc(1, size);
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        uint8_t key[BLOCK_MATCH_SIZE];
        size_t zeros = 0;
        UpkErr err = {};
        int fd;

        ASSERT_TRUE(img);
        for (size_t j = 0; j < n; j++)
                if (j % 7 != 3) /* every seventh block stays zeros */
                        fill(img + j * B, B, (unsigned)(j == 200 ? 5 : j)); /* block 200 repeats block 5 */
                else
                        zeros++;
        fill(img + n * B, 100, 999);
        test_write_file("slot.img", img, size);
        fd = open("slot.img", O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK_E(block_table_compute(fd, "slot.img", size, B, NULL, NULL, &t, &err), &err);
        close(fd);
        ASSERT_EQ(block_table_size(t), n + 1 - zeros);
        ASSERT_EQ(block_table_block_size(t), B);
        for (size_t j = 0; j <= n; j++) {
                size_t len = j < n ? B : 100;
                int64_t at;

                key_of(img + j * B, len, key);
                at = block_table_find(t, key);
                if (j < n && j % 7 == 3) {
                        ASSERT_EQ(at, -ENOENT);
                        continue;
                }
                ASSERT_TRUE(at >= 0);
                ASSERT_EQ(memcmp(img + (size_t)at * B, img + j * B, len), 0);
        }
        memset(key, 0xee, sizeof(key));
        ASSERT_EQ(block_table_find(t, key), -ENOENT);
}

static bool cancel_now(void *userdata)
{
        return ++*(int *)userdata > 1;
}

/* A slot shorter than it should be, and a cancel between reads: both fail, naming the slot. */
TEST(short_slot_and_cancel)
{
        _cleanup_free_ uint8_t *img = malloc(3 * 1024 * 1024);
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        UpkErr err = {};
        int fd, calls = 0;

        ASSERT_TRUE(img);
        fill(img, 3 * 1024 * 1024, 1);
        test_write_file("slot.img", img, 3 * 1024 * 1024);
        fd = open("slot.img", O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_UPK_ERR(block_table_compute(fd, "slot A", 4 * 1024 * 1024, B, NULL, NULL, &t, &err), &err,
                       -EIO, UPK_ERR_IO, "slot A: ends at byte 3145728, expected 4194304 bytes");
        ASSERT_UPK_ERR(block_table_compute(fd, "slot A", 3 * 1024 * 1024, B, cancel_now, &calls, &t, &err),
                       &err, -ECANCELED, UPK_ERR_IO, "slot A: cancelled");
        ASSERT_EQ(calls, 2);
        ASSERT_TRUE(!t);
        close(fd);
}
