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

/* Reading a payload as a delta (bundle_set_delta()) from a plan: the slot's file, the bundle file's
 * fetched ranges (handed out in uneven pieces, gaps included), and whole chunks fetched again. */
typedef struct DeltaIo {
        const DeltaPlan *plan;
        const uint8_t *file;
        size_t file_size;
        int slot_fd;
        size_t range, off; /* the next fetched byte: plan->ranges[range].start + off */
        size_t piece;      /* piece size cycle */
        uint64_t flip_at;  /* a byte of the fetched stream to flip (UINT64_MAX: none) */
        bool refetch_wrong;
        unsigned refetches;
        unsigned ahead; /* BundleDeltaSource.ahead */
        uint8_t piece_buf[5000];
} DeltaIo;

static ssize_t io_read_local(void *userdata, size_t payload, uint64_t block, void *buf, size_t size)
{
        DeltaIo *io = userdata;
        return pread(io->slot_fd, buf, size, (off_t)(block * B));
}

static ssize_t io_next_fetched(void *userdata, uint64_t *ret_offset, const void **ret_buf, UpkErr *err)
{
        DeltaIo *io = userdata;
        const DeltaRange *r;
        uint64_t at;
        size_t n;

        if (io->range == io->plan->n_ranges)
                return 0;
        r = &io->plan->ranges[io->range];
        at = r->start + io->off;
        n = 1 + (io->piece++ * 1237) % 4999;
        if (n > r->end - at)
                n = (size_t)(r->end - at);
        memcpy(io->piece_buf, io->file + at, n);
        if (io->flip_at >= at && io->flip_at < at + n)
                io->piece_buf[io->flip_at - at] ^= 0x40;
        *ret_offset = at;
        *ret_buf = io->piece_buf;
        io->off += n;
        if (at + n == r->end) {
                io->range++;
                io->off = 0;
        }
        return (ssize_t)n;
}

static int io_fetch_range(void *userdata, size_t payload, uint64_t offset, size_t size, void *buf,
                          UpkErr *err)
{
        DeltaIo *io = userdata;

        ASSERT_TRUE(offset + size <= io->file_size);
        memcpy(buf, io->file + offset, size);
        if (io->refetch_wrong)
                ((uint8_t *)buf)[size / 2] ^= 1;
        io->refetches++;
        return 0;
}

/* The new image for the delta reads: chunk 1 (blocks 16..31) all new, elsewhere the pattern above. */
static void delta_image(const uint8_t *old, uint8_t *img)
{
        for (size_t j = 0; j < BLOCKS; j++) {
                if (j / 16 == 1)
                        continue;
                if (is_zero(j))
                        memset(img + j * B, 0, B);
                else if (is_old(j))
                        memcpy(img + j * B, old + ((j + 5) % BLOCKS) * B, B);
        }
}

static int delta_read(DeltaIo *io, Bundle *b, uint8_t **ret, size_t *ret_size, UpkErr *err)
{
        const DeltaPlan *plan = io->plan;
        const uint8_t *origin[1] = { plan->source };
        const int32_t *local_at[1] = { plan->local_at };
        BundleDeltaSource src = {
                .origin = origin,
                .local_at = local_at,
                .read_local = io_read_local,
                .next_fetched = io_next_fetched,
                .fetch_range = io_fetch_range,
                .userdata = io,
                .ahead = io->ahead,
        };
        const ManifestPayload *p;
        int r;

        r = bundle_set_delta(b, &src, err);
        if (r < 0)
                return r;
        *ret = malloc(BLOCKS * B);
        *ret_size = 0;
        while ((r = bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, err)) > 0) {
                const void *buf;
                size_t len;

                while ((r = bundle_read_block(b, &buf, &len, err)) > 0) {
                        ASSERT_TRUE(*ret_size + len <= BLOCKS * B);
                        memcpy(*ret + *ret_size, buf, len);
                        *ret_size += len;
                }
                if (r < 0)
                        return r;
        }
        return r;
}

TEST(delta_read_gives_the_new_image)
{
        _cleanup_free_ uint8_t *old = random_bytes(BLOCKS * B, 1), *img = random_bytes(BLOCKS * B, 2);
        BundleOpenOptions o = { .keyring = test_pki("keyring.pem") };
        _cleanup_free_ char *file = NULL;
        size_t file_size;

        delta_image(old, img);
        make_bundle(img);
        file = file_contents("b.upk", &file_size);

        for (unsigned round = 0; round < 3; round++) {
                _cleanup_(block_table_freep) BlockTable *t = slot_table(old);
                _cleanup_(bundle_freep) Bundle *b = NULL;
                _cleanup_(delta_plan_freep) DeltaPlan *p = NULL;
                _cleanup_free_ uint8_t *got = NULL;
                uint8_t junk[B];
                BundleDeltaStats st;
                size_t got_size;
                UpkErr err = {};
                DeltaIo io = { .file = (const uint8_t *)file,
                               .file_size = file_size,
                               .flip_at = UINT64_MAX };
                int fd;

                /* round 1: the slot's block that chunk 3's block 48 comes from changed after the table
                 * was made; round 2: a byte of the fetched chunk 1 is wrong. Each chunk is fetched again
                 * whole. Gaps: none, then 64 KiB merged in. */
                if (round == 1) {
                        memset(junk, 0x5a, sizeof(junk));
                        fd = open("slot.img", O_WRONLY | O_CLOEXEC);
                        ASSERT_EQ(pwrite(fd, junk, B, (off_t)((48 + 5) % BLOCKS) * B), (ssize_t)B);
                        close(fd);
                }
                ASSERT_OK_E(bundle_open_path("b.upk", &o, &b, &err), &err);
                ASSERT_OK_E(delta_plan(b, 0, t, round == 2 ? 65536 : 0, &p, &err), &err);
                ASSERT_TRUE(p->counts[DELTA_LOCAL] > 0 && p->counts[DELTA_ZERO] > 0 &&
                            p->counts[DELTA_FETCH] > 0);
                if (round == 2)
                        io.flip_at = bundle_payload_offset(b, 0) + 70000; /* in chunk 1: all fetched */
                io.plan = p;
                io.slot_fd = open("slot.img", O_RDONLY | O_CLOEXEC);
                ASSERT_TRUE(io.slot_fd >= 0);
                ASSERT_OK_E(delta_read(&io, b, &got, &got_size, &err), &err);
                close(io.slot_fd);
                ASSERT_EQ(got_size, (size_t)BLOCKS * B);
                ASSERT_TRUE(memcmp(got, img, got_size) == 0);
                bundle_get_delta_stats(b, &st);
                ASSERT_EQ(st.refetched_chunks, round == 0 ? 0u : 1u);
                ASSERT_EQ(io.refetches, st.refetched_chunks);
                ASSERT_EQ(st.zero_bytes, p->counts[DELTA_ZERO] * B);
                /* every fetched block's stored bytes were taken exactly once */
                ASSERT_EQ(st.fetched_bytes, p->fetch_bytes);
                /* the local blocks of the chunks that checked out */
                if (round != 1)
                        ASSERT_EQ(st.local_bytes, p->counts[DELTA_LOCAL] * B);
                else
                        ASSERT_TRUE(st.local_bytes < p->counts[DELTA_LOCAL] * B);
        }
}

/* A chunk that fails again after it was fetched whole fails the read, naming it; nothing of it is
 * handed on. */
TEST(delta_read_fails_when_the_fetched_chunk_is_wrong)
{
        _cleanup_free_ uint8_t *old = random_bytes(BLOCKS * B, 1), *img = random_bytes(BLOCKS * B, 2);
        BundleOpenOptions o = { .keyring = test_pki("keyring.pem") };
        _cleanup_(block_table_freep) BlockTable *t = NULL;
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_(delta_plan_freep) DeltaPlan *p = NULL;
        _cleanup_free_ uint8_t *got = NULL;
        _cleanup_free_ char *file = NULL;
        size_t file_size, got_size = 0;
        UpkErr err = {};
        DeltaIo io = {};

        delta_image(old, img);
        make_bundle(img);
        file = file_contents("b.upk", &file_size);
        t = slot_table(old);
        ASSERT_OK_E(bundle_open_path("b.upk", &o, &b, &err), &err);
        ASSERT_OK_E(delta_plan(b, 0, t, 0, &p, &err), &err);
        io = (DeltaIo){
                .plan = p, .file = (const uint8_t *)file, .file_size = file_size, .refetch_wrong = true
        };
        io.flip_at = bundle_payload_offset(b, 0) + 70000;
        io.slot_fd = open("slot.img", O_RDONLY | O_CLOEXEC);
        ASSERT_UPK_ERR(delta_read(&io, b, &got, &got_size, &err), &err, -EBADMSG, UPK_ERR_PAYLOAD,
                       "payload \"rootfs\": chunk 1 (bytes 65536..131071): sha256 mismatch");
        close(io.slot_fd);
        ASSERT_EQ(got_size, 65536u); /* chunk 0 only */
        ASSERT_TRUE(memcmp(got, img, got_size) == 0);
}

/* Text that zstd compresses by reference to the blocks before it; each block its own (its number). */
static void text_block(uint8_t *p, size_t j, unsigned version)
{
        size_t n = 0;

        while (n < B) {
                char line[96];
                int k = snprintf(line, sizeof(line), "v%u block %zu line %zu: a gateway keeps its slots\n",
                                 version, j, n / 48);
                size_t take = (size_t)k < B - n ? (size_t)k : B - n;

                memcpy(p + n, line, take);
                n += take;
        }
}

/* Chunks made of the slot's blocks are read and hashed ahead in batches (several cores): 16 KiB chunks,
 * text in zstd frames with a window. Chunks 0-3 from the slot (a batch of four), chunk 4 from the slot
 * but its block 17 (fetched: its frame refers to the chunks before it), chunks 5-6 from the slot with a
 * zero block, chunks 7-9 new. Round 1: the slot's block 9 (chunk 2, inside the batch) changed after
 * the table was made: chunk 2 alone is fetched again, in its place, and block 17 still decodes against
 * the right content. With `hash_pool_fail` set (UPKEEP_TEST_HASH_POOL_FAIL), the batches are hashed
 * without the pool's threads, with the same result. */
static void slot_chunks_ahead(const char *hash_pool_fail)
{
        const size_t n = 40, size = n * B;
        _cleanup_free_ uint8_t *old = calloc(1, size), *img = calloc(1, size);
        BundleOpenOptions o = { .keyring = test_pki("keyring.pem") };
        _cleanup_free_ char *file = NULL;
        size_t file_size;

        ASSERT_TRUE(old && img);
        for (size_t j = 0; j < n; j++) {
                if (j == 21)
                        continue; /* zeros in both */
                text_block(old + j * B, j, 1);
                text_block(img + j * B, j, j == 17 || j >= 28 ? 2 : 1);
        }
        test_write_file("new.img", img, size);
        test_write_str(
                "manifest.json",
                "{\"format\": 2, \"compatible\": \"gw\", \"version\": \"2.0.0\", \"build\": "
                "\"2026-01-01T00:00:00Z\", \"payloads\": [{\"name\": \"rootfs\", \"file\": \"new.img\", "
                "\"handler\": \"raw\", \"slot_class\": \"rootfs\", \"chunks\": {\"size\": 16384, "
                "\"compression\": \"zstd\"}}]}");
        create_bundle2("manifest.json", "b.upk");
        file = file_contents("b.upk", &file_size);

        if (hash_pool_fail)
                ASSERT_EQ(setenv("UPKEEP_TEST_HASH_POOL_FAIL", hash_pool_fail, 1), 0);
        /* Batches of every size (0: the default for this machine's CPUs), with a slot block changed under
         * the table in the second round. */
        for (unsigned k = 0; k < 2 * (BUNDLE_DELTA_AHEAD_MAX + 1); k++) {
                unsigned round = k % 2, ahead = k / 2;
                _cleanup_(block_table_freep) BlockTable *t = NULL;
                _cleanup_(bundle_freep) Bundle *b = NULL;
                _cleanup_(delta_plan_freep) DeltaPlan *p = NULL;
                _cleanup_free_ uint8_t *got = NULL;
                uint8_t junk[B];
                BundleDeltaStats st;
                size_t got_size;
                UpkErr err = {};
                DeltaIo io = { .file = (const uint8_t *)file,
                               .file_size = file_size,
                               .flip_at = UINT64_MAX,
                               .ahead = ahead };
                int fd;

                test_write_file("slot.img", old, size);
                fd = open("slot.img", O_RDONLY | O_CLOEXEC);
                ASSERT_TRUE(fd >= 0);
                ASSERT_OK_E(block_table_compute(fd, "slot.img", size, B, NULL, NULL, &t, &err), &err);
                close(fd);
                if (round == 1) {
                        memset(junk, 0x5a, sizeof(junk));
                        fd = open("slot.img", O_WRONLY | O_CLOEXEC);
                        ASSERT_EQ(pwrite(fd, junk, B, (off_t)9 * B), (ssize_t)B);
                        close(fd);
                }
                ASSERT_OK_E(bundle_open_path("b.upk", &o, &b, &err), &err);
                ASSERT_OK_E(delta_plan(b, 0, t, 0, &p, &err), &err);
                ASSERT_EQ(p->counts[DELTA_FETCH], 13u); /* block 17 and chunks 7-9 */
                ASSERT_EQ(p->counts[DELTA_ZERO], 1u);
                io.plan = p;
                io.slot_fd = open("slot.img", O_RDONLY | O_CLOEXEC);
                ASSERT_TRUE(io.slot_fd >= 0);
                ASSERT_OK_E(delta_read(&io, b, &got, &got_size, &err), &err);
                close(io.slot_fd);
                ASSERT_EQ(got_size, size);
                ASSERT_TRUE(memcmp(got, img, size) == 0);
                bundle_get_delta_stats(b, &st);
                ASSERT_EQ(st.refetched_chunks, round);
                ASSERT_EQ(io.refetches, round);
                ASSERT_EQ(st.local_bytes, (26u - 4u * round) * B);
                ASSERT_EQ(st.zero_bytes, (uint64_t)B);
        }
        ASSERT_EQ(unsetenv("UPKEEP_TEST_HASH_POOL_FAIL"), 0);
}

TEST(delta_read_slot_chunks_ahead)
{
        slot_chunks_ahead(NULL);
}

/* The pool's thread cannot be started (the reader hashes every batch itself), or the pool fails on a
 * batch (that batch and the ones after it are hashed by the reader): the same bytes, the same chunks
 * taken from the slot and the same chunk fetched again. */
TEST(delta_read_slot_chunks_ahead_without_the_pool)
{
        if (!HAVE_TEST_HOOKS)
                test_skip("a build without test hooks");
        slot_chunks_ahead("thread:0");
        slot_chunks_ahead("run");
}
