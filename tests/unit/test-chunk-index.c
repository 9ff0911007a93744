/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "chunk-index.h"
#include "hexdecoct.h"

#include <openssl/sha.h>

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Two payloads: "img" (10000 bytes in 4096-byte chunks, zstd: 3 chunks) and "cfg" (4096 bytes, none:
 * 1 chunk); sizes as the index below stores them. */
static char *manifest2(uint64_t img_size, uint64_t img_count, const char *img_compression, uint64_t cfg_size)
{
        return strdup_printf(
                "{\"format\": 2, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                "\"2026-01-01T00:00:00Z\", \"index\": {\"size\": 288, \"sha256\": \"" SHA_A "\"},\n"
                " \"payloads\": [\n"
                "  {\"name\": \"img\", \"file\": \"img\", \"handler\": \"raw\", \"slot_class\": \"rootfs\", "
                "\"size\": %llu, \"installed_size\": 10000, \"chunks\": {\"size\": 4096, \"count\": %llu, "
                "\"compression\": \"%s\"}},\n"
                "  {\"name\": \"cfg\", \"file\": \"cfg\", \"handler\": \"file\", \"target\": \"/etc/cfg\", "
                "\"size\": %llu, \"installed_size\": 4096, \"chunks\": {\"size\": 4096, \"count\": 1, "
                "\"compression\": \"none\"}}]}",
                (unsigned long long)img_size, (unsigned long long)img_count, img_compression,
                (unsigned long long)cfg_size);
}

static Manifest *parse2(const char *json)
{
        Manifest *m = NULL;
        UpkErr err = {};

        ASSERT_OK_E(manifest_parse(json, strlen(json), 0, &m, &err), &err);
        return m;
}

static void entry(uint8_t *out, uint8_t kind, uint32_t stored_len, uint8_t stored_fill, uint8_t content_fill)
{
        ChunkEntry e = { .kind = kind, .stored_len = stored_len };

        memset(e.stored_sha256, stored_fill, 32);
        memset(e.content_sha256, content_fill, 32);
        chunk_entry_serialise(&e, out);
}

/* A valid index for manifest2(3000 + 4096 + 1808, 3, "zstd", 4096). */
static void valid_index(uint8_t idx[4 * CHUNK_ENTRY_SIZE])
{
        entry(idx + 0 * CHUNK_ENTRY_SIZE, CHUNK_KIND_ZSTD, 3000, 0x11, 0x12);
        entry(idx + 1 * CHUNK_ENTRY_SIZE, CHUNK_KIND_STORED, 4096, 0x21, 0x21);
        entry(idx + 2 * CHUNK_ENTRY_SIZE, CHUNK_KIND_STORED, 1808, 0x31, 0x31);
        entry(idx + 3 * CHUNK_ENTRY_SIZE, CHUNK_KIND_STORED, 4096, 0x41, 0x41);
}

TEST(entry_layout)
{
        uint8_t out[CHUNK_ENTRY_SIZE];

        entry(out, CHUNK_KIND_ZSTD, 0x01020304, 0xaa, 0xbb);
        ASSERT_EQ(out[0], 1);
        ASSERT_EQ(out[1] | out[2] | out[3], 0);
        ASSERT_EQ(out[4], 1);
        ASSERT_EQ(out[5], 2);
        ASSERT_EQ(out[6], 3);
        ASSERT_EQ(out[7], 4);
        ASSERT_EQ(out[8], 0xaa);
        ASSERT_EQ(out[39], 0xaa);
        ASSERT_EQ(out[40], 0xbb);
        ASSERT_EQ(out[71], 0xbb);
}

TEST(valid)
{
        _cleanup_free_ char *json = manifest2(3000 + 4096 + 1808, 3, "zstd", 4096);
        _cleanup_(manifest_freep) Manifest *m = parse2(json);
        _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
        uint8_t raw[4 * CHUNK_ENTRY_SIZE], want[32];
        UpkErr err = {};

        ASSERT_EQ(m->format, 2);
        ASSERT_TRUE(m->has_index);
        ASSERT_EQ(m->index_size, 288u);
        ASSERT_EQ(m->payloads[0].chunk_size, 4096u);
        ASSERT_EQ(m->payloads[0].chunk_count, 3u);
        ASSERT_EQ(m->payloads[0].chunk_compression, COMPRESSION_ZSTD);
        ASSERT_EQ(m->payloads[0].compression, COMPRESSION_NONE);
        ASSERT_EQ(manifest_chunk_length(&m->payloads[0], 0), 4096u);
        ASSERT_EQ(manifest_chunk_length(&m->payloads[0], 2), 10000u - 8192u);

        valid_index(raw);
        ASSERT_OK_E(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err);
        ASSERT_EQ(idx->n_entries, 4u);
        ASSERT_EQ(idx->first[0], 0u);
        ASSERT_EQ(idx->first[1], 3u);
        ASSERT_EQ(idx->first[2], 4u);
        ASSERT_EQ(idx->entries[0].kind, CHUNK_KIND_ZSTD);
        ASSERT_EQ(idx->entries[0].stored_len, 3000u);
        ASSERT_EQ(idx->entries[3].stored_sha256[0], 0x41);
        /* A payload's identity is the hash of its slice of the index. */
        SHA256(raw, 3 * CHUNK_ENTRY_SIZE, want);
        ASSERT_EQ(memcmp(idx->identity[0], want, 32), 0);
        SHA256(raw + 3 * CHUNK_ENTRY_SIZE, CHUNK_ENTRY_SIZE, want);
        ASSERT_EQ(memcmp(idx->identity[1], want, 32), 0);
}

/* Each rule of upkeep-bundle(5), broken once. */
TEST(rules)
{
        static const struct {
                size_t entry;
                size_t offset;
                uint8_t value;
                const char *message;
        } cases[] = {
                { 0, 1, 1, "reserved bytes" },
                { 1, 3, 1, "reserved bytes" },
                { 0, 0, 2, "unknown kind 2" },
                { 1, 7, 0xff, "stored length" },  /* kind 0 with a wrong length */
                { 1, 40, 0x00, "hashes differ" }, /* kind 0 with two hashes */
        };
        _cleanup_free_ char *json = manifest2(3000 + 4096 + 1808, 3, "zstd", 4096);
        _cleanup_(manifest_freep) Manifest *m = parse2(json);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
                uint8_t raw[4 * CHUNK_ENTRY_SIZE];
                UpkErr err = {};

                valid_index(raw);
                raw[cases[i].entry * CHUNK_ENTRY_SIZE + cases[i].offset] = cases[i].value;
                ASSERT_UPK_ERR(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, cases[i].message);
                ASSERT_TRUE(!idx);
        }
}

TEST(zstd_rules)
{
        _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
        uint8_t raw[4 * CHUNK_ENTRY_SIZE];
        UpkErr err = {};

        /* A zstd frame as long as its content, or empty. */
        {
                _cleanup_free_ char *json = manifest2(4096 + 4096 + 1808, 3, "zstd", 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                valid_index(raw);
                entry(raw, CHUNK_KIND_ZSTD, 4096, 0x11, 0x12);
                ASSERT_UPK_ERR(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "chunk 0: a zstd frame of 4096 bytes");
        }
        {
                _cleanup_free_ char *json = manifest2(4096 + 1808, 3, "zstd", 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                valid_index(raw);
                entry(raw, CHUNK_KIND_ZSTD, 0, 0x11, 0x12);
                ASSERT_UPK_ERR(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "a zstd frame of 0 bytes");
        }
        /* A zstd frame where the payload says none. */
        {
                _cleanup_free_ char *json = manifest2(10000, 3, "none", 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                valid_index(raw);
                ASSERT_UPK_ERR(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "whose chunks.compression is none");
        }
        ASSERT_TRUE(!idx);
}

TEST(sizes)
{
        _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
        uint8_t raw[5 * CHUNK_ENTRY_SIZE];
        UpkErr err = {};

        /* The stored total differs from the payload's size. */
        {
                _cleanup_free_ char *json = manifest2(3000 + 4096 + 1808 + 1, 3, "zstd", 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                valid_index(raw);
                ASSERT_UPK_ERR(chunk_index_parse(raw, 4 * CHUNK_ENTRY_SIZE, m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "payload \"img\": its chunks store 8904 bytes");
        }
        /* One entry too many, one too few, a partial entry, nothing. */
        {
                _cleanup_free_ char *json = manifest2(3000 + 4096 + 1808, 3, "zstd", 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                const size_t bad[] = { 5 * CHUNK_ENTRY_SIZE, 3 * CHUNK_ENTRY_SIZE, 4 * CHUNK_ENTRY_SIZE - 1,
                                       0 };

                valid_index(raw);
                for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                        ASSERT_UPK_ERR(chunk_index_parse(raw, bad[i], m, &idx, &err), &err, -EBADMSG,
                                       UPK_ERR_FORMAT, "the payloads' 4 chunks need 288");
        }
        ASSERT_TRUE(!idx);
}

/* The manifest's own format-2 rules. */
TEST(manifest_format2)
{
        static const struct {
                const char *json;
                const char *message;
        } cases[] = {
#define PAYLOAD(x)                                                                    \
        "{\"format\": 2, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": " \
        "\"2026-01-01T00:00:00Z\", "                                                  \
        "\"index\": {\"size\": 72, \"sha256\": \"" SHA_A                              \
        "\"}, \"payloads\": [{\"name\": \"img\", \"file\": "                          \
        "\"img\", \"handler\": \"raw\", \"slot_class\": \"rootfs\", " x "}]}"
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"count\": 1, "
                          "\"compression\": \"none\"}"),
                  NULL },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"sha256\": \"" SHA_A
                          "\", \"chunks\": {\"size\": 4096, \"count\": 1, \"compression\": \"none\"}"),
                  "payloads[0].sha256: not in format 2" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"compression\": \"zstd\", \"chunks\": "
                          "{\"size\": "
                          "4096, \"count\": 1, \"compression\": \"none\"}"),
                  "payloads[0].compression: not in format 2" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5"), "missing required key \"chunks\"" },
                { PAYLOAD("\"size\": 5, \"chunks\": {\"size\": 4096, \"count\": 1, \"compression\": "
                          "\"none\"}"),
                  "missing required key \"installed_size\"" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4095, \"count\": 1, "
                          "\"compression\": \"none\"}"),
                  "payloads[0].chunks.size 4095: expected a power of two" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 2048, \"count\": 1, "
                          "\"compression\": \"none\"}"),
                  "payloads[0].chunks.size 2048: expected a power of two" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 2097152, \"count\": "
                          "1, "
                          "\"compression\": \"none\"}"),
                  "payloads[0].chunks.size" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"count\": 2, "
                          "\"compression\": \"none\"}"),
                  "payloads[0].chunks.count: 2, but installed_size 5 in chunks of 4096 bytes makes 1" },
                { PAYLOAD("\"size\": 4, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"count\": 1, "
                          "\"compression\": \"none\"}"),
                  "differs from installed_size 5" },
                { PAYLOAD("\"size\": 6, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"count\": 1, "
                          "\"compression\": \"zstd\"}"),
                  "is more than installed_size" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"count\": 1, "
                          "\"compression\": \"xz\"}"),
                  "expected none or zstd" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"count\": 1, "
                          "\"compression\": \"none\", \"x\": 1}"),
                  "payloads[0].chunks" },
                { "{\"format\": 2, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                  "\"2026-01-01T00:00:00Z\", \"payloads\": [{\"name\": \"img\", \"file\": \"img\", "
                  "\"handler\": "
                  "\"raw\", \"slot_class\": \"rootfs\", \"size\": 5, \"installed_size\": 5, \"chunks\": "
                  "{\"size\": "
                  "4096, \"count\": 1, \"compression\": \"none\"}}]}",
                  "missing required key \"index\"" },
                { "{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                  "\"2026-01-01T00:00:00Z\", \"index\": {\"size\": 72, \"sha256\": \"" SHA_A
                  "\"}, \"payloads\": [{\"name\": \"img\", \"file\": \"img\", \"handler\": \"raw\", "
                  "\"slot_class\": "
                  "\"rootfs\", \"size\": 5, \"sha256\": \"" SHA_A "\"}]}",
                  "index: only in format 2" },
                { "{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                  "\"2026-01-01T00:00:00Z\", \"payloads\": [{\"name\": \"img\", \"file\": \"chunks.idx\", "
                  "\"handler\": \"raw\", \"slot_class\": \"rootfs\", \"size\": 5, \"sha256\": \"" SHA_A
                  "\"}]}",
                  "is reserved" },
                { "{\"format\": 1, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                  "\"2026-01-01T00:00:00Z\", \"payloads\": [{\"name\": \"img\", \"file\": \"img\", "
                  "\"handler\": "
                  "\"raw\", \"slot_class\": \"rootfs\", \"size\": 5, \"sha256\": \"" SHA_A
                  "\", \"chunks\": {\"size\": 4096}}]}",
                  "payloads[0].chunks: only in format 2" },
#undef PAYLOAD
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(manifest_freep) Manifest *m = NULL;
                UpkErr err = {};
                int r = manifest_parse(cases[i].json, strlen(cases[i].json), 0, &m, &err);

                if (!cases[i].message) {
                        ASSERT_OK_E(r, &err);
                        continue;
                }
                if (r != -EBADMSG || !strstr(err.msg, cases[i].message))
                        test_fail("case %zu: %d \"%s\", expected \"%s\"", i, r, err.msg, cases[i].message);
        }
}

/* Parse, serialise, parse: the same manifest, and the same bytes again. */
TEST(manifest_format2_round_trip)
{
        _cleanup_free_ char *json = manifest2(3000 + 4096 + 1808, 3, "zstd", 4096), *out = NULL,
                            *out2 = NULL;
        _cleanup_(manifest_freep) Manifest *m = parse2(json), *m2 = NULL;
        size_t n, n2;

        ASSERT_OK(manifest_to_json(m, &out, &n));
        /* The index's hash is the only sha256: a payload's content is fixed by the index. */
        ASSERT_TRUE(strstr(out, "\"index\""));
        ASSERT_TRUE(strstr(out, "\"sha256\""));
        ASSERT_FALSE(strstr(strstr(out, "\"sha256\"") + 1, "\"sha256\""));
        m2 = parse2(out);
        ASSERT_OK(manifest_to_json(m2, &out2, &n2));
        ASSERT_EQ(n, n2);
        ASSERT_EQ(memcmp(out, out2, n), 0);
        ASSERT_EQ(m2->payloads[0].chunk_count, 3u);
        ASSERT_EQ(m2->payloads[1].chunk_compression, COMPRESSION_NONE);
        ASSERT_EQ(m2->payloads[0].installed_size, 10000u);
}
