/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/stat.h>

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
                ASSERT_OK_E(writer_lend(w, data + off, len, &err), &err);
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
                r = writer_lend(w, data, 256 * 1024, &err);
                if (r >= 0)
                        r = writer_release(w, &err);
        }
        if (r >= 0)
                r = writer_drain(w, &err);
        ASSERT_TRUE(r < 0);
        ASSERT_TRUE(strstr(err.msg, "quits"));
        /* the error stays, and nothing more is written */
        UpkErr again = {};
        ASSERT_EQ(writer_lend(w, data, 10, &again), r);
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
                ASSERT_OK(writer_lend(w, data, 1024 * 1024, &err));
                ASSERT_OK(writer_release(w, &err));
        }
        writer_free(w); /* drops what is queued; finishes the slot being written */
        handler_rollback(h);
}

/* writer_push() copies on the caller's thread, in order with lent blocks. */
TEST(pushed_and_lent_blocks_arrive_in_order)
{
        _cleanup_(writer_freep) Writer *w = NULL;
        _cleanup_(handler_freep) Handler *h = NULL;
        _cleanup_free_ char *got = NULL;
        size_t n = 5 * 1024 * 1024 + 3, got_size, off = 0;
        _cleanup_free_ uint8_t *data = malloc(n);
        UpkErr err = {};

        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t)(i * 7 + i / 3000);
        ASSERT_OK(writer_new(&w));
        ASSERT_OK_E(handler_open("raw", NULL, &h, &err), &err);
        _cleanup_free_ char *dir = realpath(".", NULL);
        _cleanup_free_ char *dest = strdup_printf("%s/slot.img", dir);
        struct upkeep_payload p = payload(dest, n);
        ASSERT_OK_E(handler_begin(h, &p, &err), &err);
        writer_set_handler(w, h);
        for (size_t k = 1; off < n; k++) {
                size_t len = (k * 300007) % (3 * WRITER_SLOT_SIZE) + 1;
                if (len > n - off)
                        len = n - off;
                if (k % 3 == 0) {
                        ASSERT_OK_E(writer_lend(w, data + off, len, &err), &err);
                        ASSERT_OK_E(writer_release(w, &err), &err);
                } else
                        ASSERT_OK_E(writer_push(w, data + off, len, &err), &err);
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
