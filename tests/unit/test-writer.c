/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/stat.h>

#include <openssl/sha.h>

#include "fileio.h"
#include "tests.h"
#include "writer.h"

static struct upkeep_payload payload(const char *dest, uint64_t size)
{
        return (struct upkeep_payload){
                .struct_size = sizeof(struct upkeep_payload),
                .name = "p",
                .handler = "raw",
                .slot_class = "rootfs",
                .slot_name = "B",
                .destination = dest,
                .size = size,
                .sha256 = "00",
                .version = "1.0.0",
                .compatible = "x",
        };
}

TEST(blocks_arrive_in_order_and_whole)
{
        _cleanup_(writer_freep) Writer *w = NULL;
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *got = NULL;
        size_t n = 3 * 1024 * 1024 + 17, got_size;
        _cleanup_free_ uint8_t *data = malloc(n);
        UpkErr err = {};

        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t)(i * 31 + i / 4096);
        ASSERT_OK(writer_new(&w));
        ASSERT_OK_E(handler_open("raw", NULL, &h, &err), &err);
        _cleanup_free_ char *dir = realpath(".", NULL);
        _cleanup_free_ char *dest = strdup_printf("%s/slot.img", dir);
        struct upkeep_payload p = payload(dest, n);
        ASSERT_OK_E(handler_begin(h, &p, &err), &err);
        writer_set_handler(w, h);
        /* uneven pieces, each lent to the thread and waited for */
        for (size_t off = 0, k = 1; off < n; k = k * 7 % 1000003) {
                size_t len = (k * 4099) % (1024 * 1024) + 1;
                if (len > n - off)
                        len = n - off;
                ASSERT_OK_E(writer_lend(w, data + off, len, NULL, &err), &err);
                ASSERT_OK_E(writer_release(w, &err), &err);
                off += len;
        }
        ASSERT_OK_E(writer_drain(w, &err), &err);
        ASSERT_EQ(writer_written(w), n);
        ASSERT_OK_E(handler_finish(h, &err), &err);
        ASSERT_OK_E(handler_commit(h, &err), &err);
        ASSERT_OK(read_full_file("slot.img", n, &got, &got_size));
        ASSERT_EQ(got_size, n);
        ASSERT_TRUE(memcmp(got, data, n) == 0);
}

TEST(a_handler_error_reaches_the_pusher)
{
        _cleanup_(writer_freep) Writer *w = NULL;
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *data = calloc(1, 256 * 1024);
        _cleanup_free_ char *dir = realpath(".", NULL);
        UpkErr err = {};
        int r = 0;

        /* an exec handler that stops reading at once */
        ASSERT_EQ(mkdir("handlers", 0755), 0);
        test_write_file("handlers/quits", "#!/bin/sh\nexit 0\n", 17);
        ASSERT_EQ(chmod("handlers/quits", 0755), 0);
        _cleanup_free_ char *hdir = strdup_printf("%s/handlers", dir);
        ASSERT_OK_E(handler_open("exec:quits", hdir, &h, &err), &err);
        struct upkeep_payload p = payload("/nonexistent", UPKEEP_PAYLOAD_SIZE_UNKNOWN);
        p.handler = "exec:quits";
        ASSERT_OK_E(handler_begin(h, &p, &err), &err);
        ASSERT_OK(writer_new(&w));
        writer_set_handler(w, h);
        for (unsigned i = 0; i < 4096 && r >= 0; i++) {
                r = writer_lend(w, data, 256 * 1024, NULL, &err);
                if (r >= 0)
                        r = writer_release(w, &err);
        }
        if (r >= 0)
                r = writer_drain(w, &err);
        ASSERT_TRUE(r < 0);
        ASSERT_TRUE(strstr(err.msg, "quits"));
        /* the error stays, and nothing more is written */
        UpkErr again = {};
        ASSERT_EQ(writer_lend(w, data, 10, NULL, &again), r);
        ASSERT_EQ(writer_drain(w, &again), r);
}

TEST(free_with_queued_blocks_does_not_hang)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ uint8_t *data = calloc(1, 1024 * 1024);
        _cleanup_free_ char *dir = realpath(".", NULL);
        _cleanup_free_ char *dest = strdup_printf("%s/slot.img", dir);
        Writer *w = NULL;
        UpkErr err = {};

        ASSERT_OK_E(handler_open("raw", NULL, &h, &err), &err);
        struct upkeep_payload p = payload(dest, UPKEEP_PAYLOAD_SIZE_UNKNOWN);
        ASSERT_OK_E(handler_begin(h, &p, &err), &err);
        ASSERT_OK(writer_new(&w));
        writer_set_handler(w, h);
        for (unsigned i = 0; i < WRITER_SLOTS + 2; i++) {
                ASSERT_OK(writer_lend(w, data, 1024 * 1024, NULL, &err));
                ASSERT_OK(writer_release(w, &err));
        }
        writer_free(w); /* drops what is queued; finishes the slot being written */
        handler_rollback(h);
}

static void sha256_of(const void *buf, size_t len, uint8_t ret[32])
{
        ASSERT_TRUE(SHA256(buf, len, ret) != NULL);
}

/* A block lent with a content check is written only when its hash matches; a mismatch writes nothing of
 * it nor anything after it (what is queued before it may be dropped too, as after any error), and its
 * message is the writer's error. */
TEST(checked_blocks_are_written_only_when_they_match)
{
        _cleanup_(writer_freep) Writer *w = NULL;
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *dir = realpath(".", NULL);
        _cleanup_free_ char *dest = strdup_printf("%s/slot.img", dir);
        _cleanup_free_ char *got = NULL;
        size_t n = 4 * WRITER_CHECKED_MAX, off = 0, good, got_size;
        _cleanup_free_ uint8_t *data = malloc(n);
        /* sizes: whole slots, a block of the most a check may cover, odd pieces, unchecked ones */
        static const size_t sizes[] = { WRITER_SLOT_SIZE,     WRITER_CHECKED_MAX,       1,     4096,
                                        WRITER_SLOT_SIZE + 1, 2 * WRITER_SLOT_SIZE - 3, 77777, 65536 };
        BundleContentCheck check = {};
        UpkErr err = {};
        int r;

        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t)(i * 13 + i / 1000);
        ASSERT_OK_E(handler_open("raw", NULL, &h, &err), &err);
        struct upkeep_payload p = payload(dest, UPKEEP_PAYLOAD_SIZE_UNKNOWN);
        ASSERT_OK_E(handler_begin(h, &p, &err), &err);
        ASSERT_OK(writer_new(&w));
        writer_set_handler(w, h);

        /* too large to check in the queue */
        ASSERT_UPK_ERR(writer_lend(w, data, WRITER_CHECKED_MAX + 1, &check, &err), &err, -E2BIG, UPK_ERR_IO,
                       "checked block");
        upk_err_clear(&err);

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                bool checked = i % 4 != 3;

                sha256_of(data + off, sizes[i], check.sha256);
                snprintf(check.message, sizeof(check.message), "block %zu does not match", i);
                ASSERT_OK_E(writer_lend(w, data + off, sizes[i], checked ? &check : NULL, &err), &err);
                ASSERT_OK_E(writer_release(w, &err), &err);
                off += sizes[i];
        }
        ASSERT_OK_E(writer_drain(w, &err), &err);
        good = off;
        ASSERT_EQ(writer_written(w), good);

        /* a good block queued, then one whose hash is wrong, then more: only the first is written */
        sha256_of(data + off, 1000, check.sha256);
        ASSERT_OK_E(writer_lend(w, data + off, 1000, &check, &err), &err);
        ASSERT_OK_E(writer_release(w, &err), &err);
        off += 1000;
        good = off;
        sha256_of(data + off, WRITER_SLOT_SIZE + 5, check.sha256);
        check.sha256[31] ^= 1;
        snprintf(check.message, sizeof(check.message), "chunk 7: content sha256 mismatch");
        r = writer_lend(w, data + off, WRITER_SLOT_SIZE + 5, &check, &err);
        if (r >= 0)
                r = writer_release(w, &err);
        for (unsigned i = 0; i < 3 && r >= 0; i++) {
                off += WRITER_SLOT_SIZE + 5;
                r = writer_lend(w, data + off, 1000, NULL, &err);
                if (r >= 0)
                        r = writer_release(w, &err);
        }
        if (r >= 0)
                r = writer_drain(w, &err);
        ASSERT_EQ(r, -EBADMSG);
        ASSERT_EQ(err.kind, UPK_ERR_PAYLOAD);
        ASSERT_TRUE(strstr(err.msg, "chunk 7: content sha256 mismatch"));
        /* the good block queued before it may have been dropped with the error */
        ASSERT_TRUE(writer_written(w) == good || writer_written(w) == good - 1000);
        ASSERT_OK(read_full_file("slot.img", n, &got, &got_size));
        ASSERT_EQ(got_size, writer_written(w));
        ASSERT_TRUE(memcmp(got, data, got_size) == 0);
        handler_rollback(h);
}
