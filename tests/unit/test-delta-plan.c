/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "bundle-test-util.h"
#include "delta-plan.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define B      4096u
#define BLOCKS 96u

/* The new image: block j is zeros when j % 8 == 7, a copy of the old image's block (j + 5) % BLOCKS
 * when j % 3 == 0 (moved: found anywhere in the slot), else new content. */
static bool is_zero(size_t j)
{
        return j % 8 == 7;
}
static bool is_old(size_t j)
{
        return !is_zero(j) && j % 3 == 0;
}

static BlockTable *slot_table(const uint8_t *old)
{
        BlockTable *t = NULL;
        UpkErr err = {};
        int fd;

        test_write_file("slot.img", old, BLOCKS * B);
        fd = open("slot.img", O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK_E(block_table_compute(fd, "slot.img", BLOCKS * B, B, NULL, NULL, &t, &err), &err);
        close(fd);
        return t;
}

static void make_bundle(const uint8_t *img)
{
        test_write_file("new.img", img, BLOCKS * B);
        test_write_str(
                "manifest.json",
                "{\"format\": 2, \"compatible\": \"gw\", \"version\": \"2.0.0\", \"build\": "
                "\"2026-01-01T00:00:00Z\", \"payloads\": [{\"name\": \"rootfs\", \"file\": \"new.img\", "
                "\"handler\": \"raw\", \"slot_class\": \"rootfs\", \"chunks\": {\"compression\": "
                "\"zstd\"}}]}");
        create_bundle2("manifest.json", "b.upk");
}

/* Zeros are made, blocks the slot holds (anywhere) are local, the rest fetched; the ranges hold exactly
 * the fetched blocks' stored bytes (gap 0), or those and the gaps merged in (a large gap: one range). */
TEST(plan_against_a_slot)
{
        _cleanup_free_ uint8_t *old = random_bytes(BLOCKS * B, 1), *img = random_bytes(BLOCKS * B, 2);
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_(delta_plan_freep) DeltaPlan *p = NULL, *q = NULL, *all = NULL;
        BundleOpenOptions o = { .keyring = test_pki("keyring.pem") };
        _cleanup_free_ char *file = NULL;
        uint64_t want[3] = {}, covered = 0;
        size_t file_size;
        UpkErr err = {};

        for (size_t j = 0; j < BLOCKS; j++) {
                if (is_zero(j))
                        memset(img + j * B, 0, B);
                else if (is_old(j))
                        memcpy(img + j * B, old + ((j + 5) % BLOCKS) * B, B);
                want[is_zero(j) ? DELTA_ZERO : is_old(j) ? DELTA_LOCAL : DELTA_FETCH]++;
        }
        make_bundle(img);
        t = slot_table(old);
        ASSERT_OK_E(bundle_open_path("b.upk", &o, &b, &err), &err);
        ASSERT_OK_E(delta_plan(b, 0, t, 0, &p, &err), &err);
        ASSERT_EQ(p->n_blocks, BLOCKS);
        ASSERT_EQ(p->counts[DELTA_ZERO], want[DELTA_ZERO]);
        ASSERT_EQ(p->counts[DELTA_LOCAL], want[DELTA_LOCAL]);
        ASSERT_EQ(p->counts[DELTA_FETCH], want[DELTA_FETCH]);
        ASSERT_EQ(p->range_bytes, p->fetch_bytes);
        file = file_contents("b.upk", &file_size);
        /* The member's header precedes member_at and names the payload. */
        ASSERT_EQ(memcmp(file + p->member_at - 512, "new.img", 8), 0);
        for (size_t j = 0; j < BLOCKS; j++)
                if (p->source[j] == DELTA_LOCAL)
                        ASSERT_EQ(memcmp(old + (size_t)p->local_at[j] * B, img + j * B, B), 0);
                else
                        ASSERT_EQ(p->local_at[j], -1);
        for (size_t i = 0; i < p->n_ranges; i++) {
                ASSERT_TRUE(p->ranges[i].start >= p->member_at && p->ranges[i].end <= file_size);
                ASSERT_TRUE(i == 0 || p->ranges[i].start > p->ranges[i - 1].end);
                covered += p->ranges[i].end - p->ranges[i].start;
        }
        ASSERT_EQ(covered, p->fetch_bytes);

        /* Gaps of up to 1 MiB merged: one range from the first fetched block to the last. */
        ASSERT_OK_E(delta_plan(b, 0, t, 1024 * 1024, &q, &err), &err);
        ASSERT_EQ(q->n_ranges, 1u);
        ASSERT_EQ(q->ranges[0].start, p->ranges[0].start);
        ASSERT_EQ(q->ranges[0].end, p->ranges[p->n_ranges - 1].end);
        ASSERT_EQ(q->fetch_bytes, p->fetch_bytes);
        ASSERT_TRUE(q->range_bytes >= q->fetch_bytes);

        /* Without a table everything but the zeros is fetched: the whole member, but for zeros. */
        ASSERT_OK_E(delta_plan(b, 0, NULL, 0, &all, &err), &err);
        ASSERT_EQ(all->counts[DELTA_LOCAL], 0u);
        ASSERT_EQ(all->counts[DELTA_FETCH], want[DELTA_FETCH] + want[DELTA_LOCAL]);
        ASSERT_EQ(all->fetch_bytes, bundle_get_manifest(b)->payloads[0].size);
}
