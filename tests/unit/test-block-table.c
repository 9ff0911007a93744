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

/* A slot of n blocks and a short tail: distinct blocks, zeros, a repeated block; every block that is not
 * zeros is found at a block that holds its content, zeros are not held, an unknown key is not found. */
static void check_finds(size_t n)
{
        const size_t size = n * B + 100;
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
        /* Blocks 5 and 200 hold the same: the one asked for, when it is one of them. */
        key_of(img + 5 * B, B, key);
        ASSERT_EQ(block_table_find_near(t, key, 200), 200);
        ASSERT_EQ(block_table_find_near(t, key, 5), 5);
        for (uint64_t hint = 6; hint <= 7; hint++) {
                int64_t at = block_table_find_near(t, key, hint == 6 ? 6 : UINT64_MAX);

                ASSERT_TRUE(at >= 0);
                ASSERT_EQ(memcmp(img + (size_t)at * B, img + 5 * B, B), 0);
        }
        memset(key, 0xee, sizeof(key));
        ASSERT_EQ(block_table_find(t, key), -ENOENT);
        ASSERT_EQ(block_table_find_near(t, key, 5), -ENOENT);
}

TEST(finds_every_block_but_zeros)
{
        check_finds(300);
}

/* 20 MiB: hashed in parts by several threads where there are several CPUs; the same table. */
TEST(finds_every_block_but_zeros_in_parts)
{
        check_finds(5000);
}

/* A slot that ends inside the second of two parts: that part's error, naming where the slot ends. */
TEST(short_slot_in_parts)
{
        const size_t size = 20u * 1024 * 1024;
        _cleanup_free_ uint8_t *img = malloc(size);
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        UpkErr err = {};
        int fd;

        ASSERT_TRUE(img);
        fill(img, size, 3);
        test_write_file("slot.img", img, size);
        fd = open("slot.img", O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_UPK_ERR(block_table_compute(fd, "slot A", 24u * 1024 * 1024, B, NULL, NULL, &t, &err), &err,
                       -EIO, UPK_ERR_IO, "slot A: ends at byte 20971520, expected 25165824 bytes");
        ASSERT_TRUE(!t);
        close(fd);
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

static BlockTable *table_of(const uint8_t *img, size_t size)
{
        BlockTable *t = NULL;
        UpkErr err = {};
        int fd;

        test_write_file("slot.img", img, size);
        fd = open("slot.img", O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK_E(block_table_compute(fd, "slot.img", size, B, NULL, NULL, &t, &err), &err);
        close(fd);
        return t;
}

/* Saved and loaded: the same lookups; another origin, block size or slot size is -ESTALE; every rule of
 * the file broken once is -EBADMSG; no file is -ENOENT. */
TEST(saved_and_loaded)
{
        const size_t size = 40 * B;
        _cleanup_free_ uint8_t *img = calloc(1, size), *d = NULL;
        _cleanup_(block_table_freep) BlockTable *t = NULL, *u = NULL;
        uint8_t origin[BLOCK_TABLE_ORIGIN_SIZE], other[BLOCK_TABLE_ORIGIN_SIZE], key[BLOCK_MATCH_SIZE];
        _cleanup_free_ char *cwd = test_cwd_path(".");
        size_t n;
        UpkErr err = {};

        ASSERT_TRUE(img);
        for (size_t j = 0; j < 40; j += 2)
                fill(img + j * B, B, (unsigned)j);
        t = table_of(img, size);
        memset(origin, 0x5a, sizeof(origin));
        memset(other, 0xa5, sizeof(other));
        ASSERT_EQ(block_table_load(cwd, "t.tbl", size, B, origin, &u, &err), -ENOENT);
        ASSERT_OK_E(block_table_save(t, cwd, "t.tbl", size, origin, &err), &err);
        ASSERT_OK_E(block_table_load(cwd, "t.tbl", size, B, origin, &u, &err), &err);
        ASSERT_EQ(block_table_size(u), 20u);
        for (size_t j = 0; j < 40; j += 2) {
                key_of(img + j * B, B, key);
                ASSERT_EQ(block_table_find(u, key), (int64_t)j);
        }
        block_table_free(u);
        u = NULL;
        ASSERT_UPK_ERR(block_table_load(cwd, "t.tbl", size, B, other, &u, &err), &err, -ESTALE,
                       UPK_ERR_FORMAT, "another slot content");
        ASSERT_UPK_ERR(block_table_load(cwd, "t.tbl", size + 1, B, origin, &u, &err), &err, -ESTALE,
                       UPK_ERR_FORMAT, "another slot content");
        ASSERT_UPK_ERR(block_table_load(cwd, "t.tbl", size, 2 * B, origin, &u, &err), &err, -ESTALE,
                       UPK_ERR_FORMAT, "another slot content");

        ASSERT_OK_E(block_table_serialise(t, size, origin, &d, &n, &err), &err);
        {
                static const struct {
                        size_t at;
                        const char *message;
                } cases[] = {
                        { 0, "not a block table file" },
                        { 20 + BLOCK_TABLE_ORIGIN_SIZE + 7, "its length does not match its entry count" },
                        { 60 + 3, "checksum mismatch" }, /* an entry's key */
                };
                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        d[cases[i].at] ^= 1;
                        ASSERT_UPK_ERR(block_table_parse(d, n, size, B, origin, &u, &err), &err, -EBADMSG,
                                       UPK_ERR_FORMAT, cases[i].message);
                        d[cases[i].at] ^= 1;
                }
                ASSERT_UPK_ERR(block_table_parse(d, n - 1, size, B, origin, &u, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "its length does not match");
        }
        /* A table whose entries are out of order or past the slot, with a right checksum: refused. */
        {
                uint8_t tmp[8];

                memcpy(tmp, d + 60, 8);
                memcpy(d + 60, d + 68, 8);
                memcpy(d + 68, tmp, 8);
                SHA256(d, n - 32, d + n - 32);
                ASSERT_UPK_ERR(block_table_parse(d, n, size, B, origin, &u, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "entries out of order");
                ASSERT_UPK_ERR(block_table_parse(d, n, 8 * B, B, origin, &u, &err), &err, -ESTALE,
                               UPK_ERR_FORMAT, "another slot content");
        }
        /* The last entry (the largest key) names block 2^24 - 1, past the slot's 40 blocks. */
        {
                block_table_free(t);
                t = table_of(img, size);
                free(d);
                d = NULL;
                ASSERT_OK_E(block_table_serialise(t, size, origin, &d, &n, &err), &err);
                d[n - 32 - 3] = d[n - 32 - 2] = d[n - 32 - 1] = 0xff;
                SHA256(d, n - 32, d + n - 32);
                ASSERT_UPK_ERR(block_table_parse(d, n, size, B, origin, &u, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "an entry names a block past the slot's end");
        }
        ASSERT_TRUE(!u);
}
