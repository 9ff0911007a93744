/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "chunk-index.h"
#include "hexdecoct.h"

#include <openssl/sha.h>
#include <zstd.h>

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Two payloads: "img" (10000 bytes in chunks of 8192 and blocks of 4096, zstd with a window of 4096: 2
 * chunks, 3 blocks) and "cfg" (4096 bytes, none: 1 chunk, 1 block); sizes as the index below stores
 * them. */
static char *manifest2(uint64_t img_size, const char *img_compression, unsigned window, uint64_t cfg_size)
{
        return strdup_printf(
                "{\"format\": 2, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                "\"2026-01-01T00:00:00Z\", \"index\": {\"size\": 288, \"sha256\": \"" SHA_A "\"},\n"
                " \"payloads\": [\n"
                "  {\"name\": \"img\", \"file\": \"img\", \"handler\": \"raw\", \"slot_class\": \"rootfs\", "
                "\"size\": %llu, \"installed_size\": 10000, \"chunks\": {\"size\": 8192, \"block\": 4096, "
                "\"count\": 2, \"compression\": \"%s\", \"window\": %u}},\n"
                "  {\"name\": \"cfg\", \"file\": \"cfg\", \"handler\": \"file\", \"target\": \"/etc/cfg\", "
                "\"size\": %llu, \"installed_size\": 4096, \"chunks\": {\"size\": 4096, \"block\": 4096, "
                "\"count\": 1, \"compression\": \"none\", \"window\": 0}}]}",
                (unsigned long long)img_size, img_compression, window, (unsigned long long)cfg_size);
}

#define IMG_SIZE   (3000 + 1808)
#define INDEX_SIZE (2 * CHUNK_ENTRY_SIZE + 3 * BLOCK_ENTRY_SIZE + CHUNK_ENTRY_SIZE + BLOCK_ENTRY_SIZE)
/* Where the entries lie in the index content. */
#define IMG_CHUNK(i) ((i)*CHUNK_ENTRY_SIZE)
#define IMG_BLOCK(j) (2 * CHUNK_ENTRY_SIZE + (j)*BLOCK_ENTRY_SIZE)
#define CFG_CHUNK    (IMG_BLOCK(3))
#define CFG_BLOCK    (CFG_CHUNK + CHUNK_ENTRY_SIZE)

static Manifest *parse2(const char *json)
{
        Manifest *m = NULL;
        UpkErr err = {};

        ASSERT_OK_E(manifest_parse(json, strlen(json), 0, &m, &err), &err);
        return m;
}

static void chunk(uint8_t *out, uint8_t stored_fill, uint8_t content_fill)
{
        ChunkEntry e = {};

        memset(e.stored_sha256, stored_fill, 32);
        memset(e.content_sha256, content_fill, 32);
        chunk_entry_serialise(&e, out);
}

static void block(uint8_t *out, uint8_t kind, uint16_t stored_len, uint8_t match_fill)
{
        BlockEntry e = { .kind = kind, .stored_len = stored_len };

        memset(e.match, match_fill, sizeof(e.match));
        block_entry_serialise(&e, out);
}

/* A valid index content for manifest2(IMG_SIZE, "zstd", 4096, 4096): img's block 0 a zstd frame of
 * 3000 bytes, block 1 zeros, block 2 (1808 bytes, its chunk alone) as is; cfg's one block as is. */
static void valid_index(uint8_t idx[INDEX_SIZE])
{
        chunk(idx + IMG_CHUNK(0), 0x11, 0x12);
        chunk(idx + IMG_CHUNK(1), 0x21, 0x21);
        block(idx + IMG_BLOCK(0), BLOCK_KIND_ZSTD, 3000, 0xa1);
        block(idx + IMG_BLOCK(1), BLOCK_KIND_ZERO, 0, 0);
        block(idx + IMG_BLOCK(2), BLOCK_KIND_STORED, 1808, 0xa3);
        chunk(idx + CFG_CHUNK, 0x41, 0x41);
        block(idx + CFG_BLOCK, BLOCK_KIND_STORED, 4096, 0xb1);
}

TEST(entry_layout)
{
        uint8_t out[CHUNK_ENTRY_SIZE];

        chunk(out, 0xaa, 0xbb);
        ASSERT_EQ(out[0], 0xaa);
        ASSERT_EQ(out[31], 0xaa);
        ASSERT_EQ(out[32], 0xbb);
        ASSERT_EQ(out[63], 0xbb);
        block(out, BLOCK_KIND_ZSTD, 0x0102, 0xcc);
        ASSERT_EQ(out[0], 1);
        ASSERT_EQ(out[1], 1);
        ASSERT_EQ(out[2], 2);
        ASSERT_EQ(out[3], 0xcc);
        ASSERT_EQ(out[7], 0xcc);
}

TEST(valid)
{
        _cleanup_free_ char *json = manifest2(IMG_SIZE, "zstd", 4096, 4096);
        _cleanup_(manifest_freep) Manifest *m = parse2(json);
        _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
        uint8_t raw[INDEX_SIZE], want[32];
        size_t need = 0;
        UpkErr err = {};

        ASSERT_EQ(m->format, 2);
        ASSERT_TRUE(m->has_index);
        ASSERT_EQ(m->payloads[0].chunk_size, 8192u);
        ASSERT_EQ(m->payloads[0].block_size, 4096u);
        ASSERT_EQ(m->payloads[0].window, 4096u);
        ASSERT_EQ(m->payloads[0].chunk_count, 2u);
        ASSERT_EQ(m->payloads[0].chunk_compression, COMPRESSION_ZSTD);
        ASSERT_EQ(m->payloads[0].compression, COMPRESSION_NONE);
        ASSERT_EQ(manifest_chunk_length(&m->payloads[0], 1), 10000u - 8192u);
        ASSERT_EQ(manifest_block_count(&m->payloads[0]), 3u);
        ASSERT_EQ(manifest_block_length(&m->payloads[0], 2), 10000u - 8192u);
        ASSERT_OK(chunk_index_content_size(m, &need, NULL));
        ASSERT_EQ(need, (size_t)INDEX_SIZE);

        valid_index(raw);
        ASSERT_OK_E(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err);
        ASSERT_EQ(idx->n_entries, 3u);
        ASSERT_EQ(idx->n_blocks, 4u);
        ASSERT_EQ(idx->first[0], 0u);
        ASSERT_EQ(idx->first[1], 2u);
        ASSERT_EQ(idx->first[2], 3u);
        ASSERT_EQ(idx->entries[0].first_block, 0u);
        ASSERT_EQ(idx->entries[0].n_blocks, 2u);
        ASSERT_EQ(idx->entries[0].stored_len, 3000u);
        ASSERT_EQ(idx->entries[1].first_block, 2u);
        ASSERT_EQ(idx->entries[1].n_blocks, 1u);
        ASSERT_EQ(idx->entries[2].first_block, 3u);
        ASSERT_EQ(idx->blocks[0].kind, BLOCK_KIND_ZSTD);
        ASSERT_EQ(idx->blocks[0].stored_len, 3000u);
        ASSERT_EQ(idx->blocks[0].match[4], 0xa1);
        ASSERT_EQ(idx->blocks[1].kind, BLOCK_KIND_ZERO);
        ASSERT_EQ(idx->entries[2].stored_sha256[0], 0x41);
        /* A payload's identity is the hash of its part of the index content. */
        SHA256(raw, CFG_CHUNK, want);
        ASSERT_EQ(memcmp(idx->identity[0], want, 32), 0);
        SHA256(raw + CFG_CHUNK, INDEX_SIZE - CFG_CHUNK, want);
        ASSERT_EQ(memcmp(idx->identity[1], want, 32), 0);
}

/* Each rule of upkeep-bundle(5), broken once. */
TEST(rules)
{
        static const struct {
                size_t offset;
                uint8_t value;
                const char *message;
        } cases[] = {
                { IMG_BLOCK(0), 3, "block 0: unknown kind 3" },
                { IMG_BLOCK(2) + 2, 0xff, "block 2: stored as is, but its stored length" },
                { IMG_BLOCK(1) + 7, 1, "block 1: zeros, but its match key is not zero" },
                { IMG_CHUNK(1) + 40, 0x00,
                  "chunk 1: stored as is, but its stored and content hashes differ" },
                { CFG_BLOCK, BLOCK_KIND_ZERO,
                  "payload \"cfg\": block 0: kind 2 in a payload whose "
                  "chunks.compression is none" },
        };
        _cleanup_free_ char *json = manifest2(IMG_SIZE, "zstd", 4096, 4096);
        _cleanup_(manifest_freep) Manifest *m = parse2(json);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
                uint8_t raw[INDEX_SIZE];
                UpkErr err = {};

                valid_index(raw);
                raw[cases[i].offset] = cases[i].value;
                ASSERT_UPK_ERR(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, cases[i].message);
                ASSERT_TRUE(!idx);
        }
}

TEST(zstd_rules)
{
        _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
        uint8_t raw[INDEX_SIZE];
        UpkErr err = {};

        /* A zstd frame as long as its content, or empty. */
        {
                _cleanup_free_ char *json = manifest2(4096 + 1808, "zstd", 4096, 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                valid_index(raw);
                block(raw + IMG_BLOCK(0), BLOCK_KIND_ZSTD, 4096, 0xa1);
                ASSERT_UPK_ERR(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "block 0: a zstd frame of 4096 bytes");
        }
        {
                _cleanup_free_ char *json = manifest2(1808, "zstd", 4096, 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                valid_index(raw);
                block(raw + IMG_BLOCK(0), BLOCK_KIND_ZSTD, 0, 0xa1);
                ASSERT_UPK_ERR(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "a zstd frame of 0 bytes");
        }
        /* A zstd frame or zeros where the payload says none. */
        {
                _cleanup_free_ char *json = manifest2(10000, "none", 0, 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                valid_index(raw);
                ASSERT_UPK_ERR(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "whose chunks.compression is none");
        }
        /* Zeros that claim stored bytes. */
        {
                _cleanup_free_ char *json = manifest2(IMG_SIZE + 5, "zstd", 4096, 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                valid_index(raw);
                block(raw + IMG_BLOCK(1), BLOCK_KIND_ZERO, 5, 0);
                ASSERT_UPK_ERR(chunk_index_parse(raw, sizeof(raw), m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "block 1: zeros, but its stored length is 5");
        }
        ASSERT_TRUE(!idx);
}

TEST(sizes)
{
        _cleanup_(chunk_index_freep) ChunkIndex *idx = NULL;
        uint8_t raw[INDEX_SIZE + CHUNK_ENTRY_SIZE];
        UpkErr err = {};

        /* The stored total differs from the payload's size. */
        {
                _cleanup_free_ char *json = manifest2(IMG_SIZE + 1, "zstd", 4096, 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                valid_index(raw);
                ASSERT_UPK_ERR(chunk_index_parse(raw, INDEX_SIZE, m, &idx, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "payload \"img\": its blocks store 4808 bytes");
        }
        /* One entry too many, one too few, a partial entry, nothing. */
        {
                _cleanup_free_ char *json = manifest2(IMG_SIZE, "zstd", 4096, 4096);
                _cleanup_(manifest_freep) Manifest *m = parse2(json);
                const size_t bad[] = { INDEX_SIZE + CHUNK_ENTRY_SIZE, INDEX_SIZE - BLOCK_ENTRY_SIZE,
                                       INDEX_SIZE - 1, 0 };

                valid_index(raw);
                for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                        ASSERT_UPK_ERR(chunk_index_parse(raw, bad[i], m, &idx, &err), &err, -EBADMSG,
                                       UPK_ERR_FORMAT, "the payloads' chunks and blocks need 224");
        }
        ASSERT_TRUE(!idx);
}

/* chunks.idx as stored: one zstd frame declaring the content size the payloads need. */
TEST(stored_index)
{
        _cleanup_free_ char *json = manifest2(IMG_SIZE, "zstd", 4096, 4096);
        _cleanup_(manifest_freep) Manifest *m = parse2(json);
        uint8_t raw[INDEX_SIZE], z[1024], two[2048];
        size_t zn, n;
        UpkErr err = {};

        valid_index(raw);
        zn = ZSTD_compress(z, sizeof(z), raw, sizeof(raw), 3);
        ASSERT_FALSE(ZSTD_isError(zn));
        {
                _cleanup_free_ void *out = NULL;
                ASSERT_OK_E(chunk_index_decompress(z, zn, m, &out, &n, &err), &err);
                ASSERT_EQ(n, sizeof(raw));
                ASSERT_EQ(memcmp(out, raw, n), 0);
        }
        /* Not zstd; two frames; a truncated frame; a frame of another size. */
        {
                _cleanup_free_ void *out = NULL;
                ASSERT_UPK_ERR(chunk_index_decompress(raw, sizeof(raw), m, &out, &n, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "chunks.idx: not one zstd frame");
                memcpy(two, z, zn);
                memcpy(two + zn, z, zn);
                ASSERT_UPK_ERR(chunk_index_decompress(two, 2 * zn, m, &out, &n, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "chunks.idx: not one zstd frame");
                ASSERT_UPK_ERR(chunk_index_decompress(z, zn - 1, m, &out, &n, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "chunks.idx: not one zstd frame");
                zn = ZSTD_compress(z, sizeof(z), raw, sizeof(raw) - 8, 3);
                ASSERT_UPK_ERR(chunk_index_decompress(z, zn, m, &out, &n, &err), &err, -EBADMSG,
                               UPK_ERR_FORMAT, "declares 216 bytes, the payloads need 224");
                ASSERT_TRUE(!out);
        }
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
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "4096, \"count\": 1, "
                          "\"compression\": \"none\", \"window\": 0}"),
                  NULL },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"sha256\": \"" SHA_A
                          "\", \"chunks\": {\"size\": 4096, \"block\": 4096, \"count\": 1, \"compression\": "
                          "\"none\", \"window\": 0}"),
                  "payloads[0].sha256: not in format 2" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"compression\": \"zstd\", \"chunks\": "
                          "{\"size\": "
                          "4096, \"block\": 4096, \"count\": 1, \"compression\": \"none\", \"window\": 0}"),
                  "payloads[0].compression: not in format 2" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5"), "missing required key \"chunks\"" },
                { PAYLOAD("\"size\": 5, \"chunks\": {\"size\": 4096, \"block\": 4096, \"count\": 1, "
                          "\"compression\": "
                          "\"none\"}"),
                  "missing required key \"installed_size\"" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4095, \"block\": "
                          "4096, \"count\": 1, "
                          "\"compression\": \"none\", \"window\": 0}"),
                  "payloads[0].chunks.size 4095: expected a power of two" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 2048, \"block\": "
                          "4096, \"count\": 1, "
                          "\"compression\": \"none\", \"window\": 0}"),
                  "payloads[0].chunks.size 2048: expected a power of two" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 2097152, \"block\": "
                          "4096, \"count\": "
                          "1, "
                          "\"compression\": \"none\", \"window\": 0}"),
                  "payloads[0].chunks.size" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "4096, \"count\": 2, "
                          "\"compression\": \"none\", \"window\": 0}"),
                  "payloads[0].chunks.count: 2, but installed_size 5 in chunks of 4096 bytes makes 1" },
                { PAYLOAD("\"size\": 4, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "4096, \"count\": 1, "
                          "\"compression\": \"none\", \"window\": 0}"),
                  "differs from installed_size 5" },
                { PAYLOAD("\"size\": 6, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "4096, \"count\": 1, "
                          "\"compression\": \"zstd\", \"window\": 0}"),
                  "is more than installed_size" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "4096, \"count\": 1, "
                          "\"compression\": \"xz\", \"window\": 0}"),
                  "expected none or zstd" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "4096, \"count\": 1, "
                          "\"compression\": \"none\", \"window\": 0, \"x\": 1}"),
                  "payloads[0].chunks" },
                { "{\"format\": 2, \"compatible\": \"gw\", \"version\": \"1.0.0\", \"build\": "
                  "\"2026-01-01T00:00:00Z\", \"payloads\": [{\"name\": \"img\", \"file\": \"img\", "
                  "\"handler\": "
                  "\"raw\", \"slot_class\": \"rootfs\", \"size\": 5, \"installed_size\": 5, \"chunks\": "
                  "{\"size\": "
                  "4096, \"block\": 4096, \"count\": 1, \"compression\": \"none\", \"window\": 0}}]}",
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
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "8192, "
                          "\"count\": 1, \"compression\": \"none\", \"window\": 0}"),
                  "payloads[0].chunks.block: 8192 is more than the chunk size 4096" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "2048, "
                          "\"count\": 1, \"compression\": \"none\", \"window\": 0}"),
                  "payloads[0].chunks.block 2048: expected a power of two from 4096 to 32768" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "4096, "
                          "\"count\": 1, \"compression\": \"none\", \"window\": 4096}"),
                  "payloads[0].chunks.window: 4096, but a payload whose blocks are not compressed has "
                  "window 0" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "4096, "
                          "\"count\": 1, \"compression\": \"zstd\", \"window\": 5000}"),
                  "payloads[0].chunks.window 5000: expected 0 or a power of two" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "4096, "
                          "\"count\": 1, \"compression\": \"zstd\", \"window\": 16777216}"),
                  "payloads[0].chunks.window" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"count\": 1, "
                          "\"compression\": \"none\", \"window\": 0}"),
                  "missing required key \"block\"" },
                { PAYLOAD("\"size\": 5, \"installed_size\": 5, \"chunks\": {\"size\": 4096, \"block\": "
                          "4096, "
                          "\"count\": 1, \"compression\": \"none\"}"),
                  "missing required key \"window\"" },
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
        _cleanup_free_ char *json = manifest2(IMG_SIZE, "zstd", 4096, 4096), *out = NULL, *out2 = NULL;
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
        ASSERT_EQ(m2->payloads[0].chunk_count, 2u);
        ASSERT_EQ(m2->payloads[0].block_size, 4096u);
        ASSERT_EQ(m2->payloads[0].window, 4096u);
        ASSERT_EQ(m2->payloads[1].chunk_compression, COMPRESSION_NONE);
        ASSERT_EQ(m2->payloads[0].installed_size, 10000u);
}
