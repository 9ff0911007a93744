/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bundle-test-util.h"

#include <dirent.h>

#include "chunk-index.h"

static const char template_raw[] = "{ \"format\": 1, \"compatible\": \"acme-gw\", \"version\": \"1.0.0\", "
                                   "\"build\": \"2026-11-25T10:00:00Z\",\n"
                                   "  \"payloads\": [ { \"name\": \"rootfs\", \"file\": \"rootfs.img\", "
                                   "\"handler\": \"raw\", \"slot_class\": "
                                   "\"rootfs\" } ] }\n";

static void payload_file(const char *name, size_t size, unsigned seed)
{
        _cleanup_free_ uint8_t *p = random_bytes(size, seed);
        test_write_file(name, p, size);
}

static int create(const char *manifest, const char *payload_dir, const char *out, UpkErr *err)
{
        BundleCreateOptions o = {
                .manifest_path = manifest,
                .cert_path = test_pki("signer.pem"),
                .key_path = test_pki("signer.key"),
                .chain_path = test_pki("chain.pem"),
                .payload_dir = payload_dir,
                .output_path = out,
                .format = 1, /* format 2: test-bundle-reader.c's format2_* cases */
        };
        upk_err_clear(err);
        return bundle_create(&o, err);
}

TEST(same_inputs_give_the_same_bytes)
{
        _cleanup_free_ char *a = NULL, *b = NULL;
        size_t an, bn;
        UpkErr err = {};

        payload_file("rootfs.img", 123457, 3);
        test_write_file("m.json", template_raw, strlen(template_raw));
        ASSERT_OK_E(create("m.json", NULL, "a.upk", &err), &err);
        ASSERT_OK_E(create("m.json", ".", "b.upk", &err), &err);
        a = file_contents("a.upk", &an);
        b = file_contents("b.upk", &bn);
        ASSERT_EQ(an, bn);
        ASSERT_TRUE(memcmp(a, b, an) == 0);
        ASSERT_EQ(an % 512, 0);
        /* nothing left over from the temporary file */
        ASSERT_EQ(access("a.upk.XXXXXX", F_OK), -1);
}

/* An octal number field of a ustar header; the test fails on anything else in it. */
static uint64_t tar_field(const char *header, size_t offset, size_t len)
{
        char field[16] = "", *end;
        uint64_t v;

        ASSERT_TRUE(len < sizeof(field));
        memcpy(field, header + offset, len);
        errno = 0;
        v = strtoull(field, &end, 8);
        ASSERT_TRUE(errno == 0 && end != field && (*end == 0 || *end == ' '));
        return v;
}

/* Every member's ustar header has the fixed metadata: mtime 0, owner 0/0, mode 0644. This also catches a
 * time_t that reaches libarchive in the wrong registers on 32-bit ARM (see lib/abi-time.h): there the
 * mtime came out as whatever was in the register. */
TEST(members_have_fixed_metadata)
{
        _cleanup_free_ char *a = NULL;
        size_t an, off = 0, members = 0;
        UpkErr err = {};

        payload_file("rootfs.img", 1000, 5);
        test_write_file("m.json", template_raw, strlen(template_raw));
        ASSERT_OK_E(create("m.json", NULL, "a.upk", &err), &err);
        a = file_contents("a.upk", &an);
        while (off + 512 <= an && a[off] != 0) {
                const char *h = a + off;
                uint64_t size = tar_field(h, 124, 12);

                ASSERT_TRUE(memcmp(h + 257, "ustar", 5) == 0);
                ASSERT_EQ(tar_field(h, 100, 8), 0644); /* mode */
                ASSERT_EQ(tar_field(h, 108, 8), 0);    /* uid */
                ASSERT_EQ(tar_field(h, 116, 8), 0);    /* gid */
                ASSERT_EQ(tar_field(h, 136, 12), 0);   /* mtime */
                off += 512 + (size_t)((size + 511) / 512 * 512);
                members++;
        }
        ASSERT_EQ(members, 3);
}

TEST(created_manifest_has_size_and_digest)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleOpenOptions o = { .keyring = test_pki("keyring.pem") };
        UpkErr err = {};

        payload_file("rootfs.img", 4096, 9);
        test_write_file("m.json", template_raw, strlen(template_raw));
        ASSERT_OK_E(create("m.json", NULL, "a.upk", &err), &err);
        ASSERT_OK_E(bundle_open_path("a.upk", &o, &b, &err), &err);
        ASSERT_EQ(bundle_get_manifest(b)->payloads[0].size, 4096);
        ASSERT_TRUE(bundle_get_manifest(b)->payloads[0].has_digest);
        ASSERT_OK_E(bundle_verify_rest(b, &err), &err);
}

TEST(compressed_payload_gets_its_installed_size)
{
        static const char t[] =
                "{ \"format\": 1, \"compatible\": \"acme-gw\", \"version\": \"1.0.0\", \"build\": "
                "\"2026-11-25T10:00:00Z\", \"payloads\": [ { \"name\": \"app\", \"file\": \"app.xz\", "
                "\"handler\": "
                "\"archive\", \"slot_class\": \"app\", \"compression\": \"xz\" } ] }";
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleOpenOptions o = { .keyring = test_pki("keyring.pem") };
        _cleanup_free_ uint8_t *plain = calloc(1, 77777), *z = NULL;
        size_t zsize;
        UpkErr err = {};

        z = compress_buffer(COMPRESSION_XZ, plain, 77777, &zsize);
        test_write_file("app.xz", z, zsize);
        test_write_file("m.json", t, strlen(t));
        ASSERT_OK_E(create("m.json", NULL, "a.upk", &err), &err);
        ASSERT_OK_E(bundle_open_path("a.upk", &o, &b, &err), &err);
        ASSERT_EQ(bundle_get_manifest(b)->payloads[0].installed_size, 77777);
        ASSERT_EQ(bundle_get_manifest(b)->payloads[0].size, zsize);
        ASSERT_OK_E(bundle_verify_rest(b, &err), &err);

        /* a file that is not what the template says it is */
        test_write_file("app.xz", plain, 1000);
        ASSERT_UPK_ERR(create("m.json", NULL, "c.upk", &err), &err, -EBADMSG, UPK_ERR_PAYLOAD,
                       "is not xz data");
        ASSERT_EQ(access("c.upk", F_OK), -1);
}

TEST(template_digest_must_match_the_file)
{
        static const char t[] =
                "{ \"format\": 1, \"compatible\": \"acme-gw\", \"version\": \"1.0.0\", \"build\": "
                "\"2026-11-25T10:00:00Z\", \"payloads\": [ { \"name\": \"rootfs\", \"file\": "
                "\"rootfs.img\", "
                "\"handler\": \"raw\", \"slot_class\": \"rootfs\", \"size\": 10, \"sha256\": "
                "\"0000000000000000000000000000000000000000000000000000000000000000\" } ] }";
        UpkErr err = {};

        payload_file("rootfs.img", 10, 1);
        test_write_file("m.json", t, strlen(t));
        ASSERT_UPK_ERR(create("m.json", NULL, "a.upk", &err), &err, -EBADMSG, UPK_ERR_MANIFEST,
                       "remove size and sha256");
        ASSERT_EQ(access("a.upk", F_OK), -1);
}

TEST(create_errors_name_the_file)
{
        UpkErr err = {};

        test_write_file("m.json", template_raw, strlen(template_raw));
        ASSERT_UPK_ERR(create("m.json", NULL, "a.upk", &err), &err, -ENOENT, UPK_ERR_IO, "rootfs.img");
        ASSERT_UPK_ERR(create("nope.json", NULL, "a.upk", &err), &err, -ENOENT, UPK_ERR_IO, "nope.json");
        test_write_file("bad.json", "{ \"format\": 2 }", 15);
        ASSERT_UPK_ERR(create("bad.json", NULL, "a.upk", &err), &err, -EBADMSG, UPK_ERR_MANIFEST,
                       "bad.json");
        ASSERT_EQ(mkdir("rootfs.img", 0755), 0);
        ASSERT_UPK_ERR(create("m.json", NULL, "a.upk", &err), &err, -EINVAL, UPK_ERR_IO,
                       "not a regular file");
        ASSERT_EQ(rmdir("rootfs.img"), 0);
        payload_file("rootfs.img", 10, 1);
        ASSERT_UPK_ERR(create("m.json", NULL, "nodir/a.upk", &err), &err, -ENOENT, UPK_ERR_IO,
                       "nodir/a.upk");
        ASSERT_EQ(access("a.upk", F_OK), -1);
}

/* ---- format 2 on several threads (BundleCreateOptions.jobs) ---- */

static const char template2[] = "{ \"format\": 2, \"compatible\": \"acme-gw\", \"version\": \"1.0.0\", "
                                "\"build\": \"2026-11-25T10:00:00Z\",\n"
                                "  \"payloads\": [ { \"name\": \"rootfs\", \"file\": \"rootfs.img\", "
                                "\"handler\": \"raw\", \"slot_class\": \"rootfs\", \"chunks\": { \"size\": "
                                "16384, \"compression\": \"zstd\", \"window\": 65536 } } ] }\n";

/* 150 blocks of 4 KiB in every kind a zstd payload stores (random: as is; zeros: left out; text and
 * copies: frames, some only with the prefix), then 1234 bytes: the last chunk and block are partial. */
static size_t payload2_file(const char *name)
{
        size_t size = 150 * 4096 + 1234;
        _cleanup_free_ uint8_t *p = random_bytes(size, 11);

        for (size_t j = 0; j < 150; j++) {
                uint8_t *b = p + j * 4096;
                switch (j % 6) {
                case 1:
                        memset(b, 0, 4096);
                        break;
                case 2:
                        for (size_t i = 0; i < 4096; i++)
                                b[i] = (uint8_t) "abcdefghij\n"[b[i] % 11];
                        break;
                case 3:
                        memcpy(b, b - 2 * 4096, 4096);
                        break;
                case 4:
                        if (j >= 12)
                                memcpy(b, b - 12 * 4096, 4096);
                        break;
                default:
                        break; /* random */
                }
        }
        memcpy(p + 150 * 4096, p + 2 * 4096, 1234);
        test_write_file(name, p, size);
        return size;
}

static int create2(const char *out, unsigned jobs, UpkErr *err)
{
        BundleCreateOptions o = {
                .manifest_path = "m.json",
                .cert_path = test_pki("signer.pem"), /* RSA: the signature is deterministic */
                .key_path = test_pki("signer.key"),
                .chain_path = test_pki("chain.pem"),
                .output_path = out,
                .jobs = jobs,
        };
        upk_err_clear(err);
        return bundle_create(&o, err);
}

/* Threads of this process. */
static size_t task_count(void)
{
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        size_t n = 0;

        ASSERT_TRUE(d);
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

/* Names in the current folder, sorted, joined with spaces. */
static char *folder_names(void)
{
        struct dirent **list = NULL;
        char *out = strdup("");
        int n = scandir(".", &list, NULL, alphasort);

        ASSERT_TRUE(n >= 0 && out);
        for (int i = 0; i < n; i++) {
                if (list[i]->d_name[0] != '.' || strlen(list[i]->d_name) > 2) {
                        char *s = strdup_printf("%s%s ", out, list[i]->d_name);
                        ASSERT_TRUE(s);
                        free(out);
                        out = s;
                }
                free(list[i]);
        }
        free(list);
        return out;
}

TEST(jobs_give_the_same_bytes)
{
        static const unsigned jobs[] = { 2, 3, 7, 0 };
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleOpenOptions o = {};
        _cleanup_free_ char *a = NULL;
        size_t an;
        UpkErr err = {};

        payload2_file("rootfs.img");
        test_write_file("m.json", template2, strlen(template2));
        ASSERT_OK_E(create2("1.upk", 1, &err), &err);
        a = file_contents("1.upk", &an);
        for (size_t i = 0; i < ELEMENTSOF(jobs); i++) {
                _cleanup_free_ char *name = strdup_printf("%u.upk", jobs[i]), *c = NULL;
                size_t cn;

                ASSERT_OK_E(create2(name, jobs[i], &err), &err);
                c = file_contents(name, &cn);
                ASSERT_EQ(cn, an);
                ASSERT_TRUE(memcmp(a, c, an) == 0);
        }
        o.keyring = test_pki("keyring.pem"); /* test_pki()'s result lasts four calls */
        ASSERT_OK_E(bundle_open_path("1.upk", &o, &b, &err), &err);
        ASSERT_EQ(bundle_get_manifest(b)->payloads[0].chunk_count, 38);
        ASSERT_OK_E(bundle_verify_rest(b, &err), &err);
}

/* A block whose compression fails (the test hook gives zstd no room for the frame): the run stops with
 * zstd's error for that payload, the same for every number of jobs, no thread is left and no file
 * (neither the output's temporary file nor the spill file). Block 110 is in the third batch of 3 jobs
 * (12 chunks of 4 blocks each), so the jobs are cutting the chunks around it when it fails. */
TEST(failed_block_stops_every_job)
{
        static const unsigned jobs[] = { 1, 2, 3, 7 };
        _cleanup_free_ char *before = NULL;
        char first[UPK_ERR_MSG_MAX] = "";
        size_t tasks = task_count();

        payload2_file("rootfs.img");
        test_write_file("m.json", template2, strlen(template2));
        before = folder_names();
        ASSERT_EQ(setenv("UPKEEP_TEST_ZSTD_FAIL_BLOCK", "110", 1), 0);
        for (size_t i = 0; i < ELEMENTSOF(jobs); i++) {
                _cleanup_free_ char *after = NULL;
                UpkErr err = {};

                ASSERT_UPK_ERR(create2("a.upk", jobs[i], &err), &err, -EIO, UPK_ERR_IO,
                               "payload \"rootfs\": zstd: ");
                if (i == 0)
                        snprintf(first, sizeof(first), "%s", err.msg);
                ASSERT_STREQ(err.msg, first);
                /* qemu-user runs threads of its own, which come and go: the count is the host's only. */
                if (!test_emulated())
                        ASSERT_EQ(task_count(), tasks);
                after = folder_names();
                ASSERT_STREQ(after, before);
        }
        ASSERT_EQ(unsetenv("UPKEEP_TEST_ZSTD_FAIL_BLOCK"), 0);
}

/* The kind of each block at the default level (19, with the level-1 probe): random blocks as they are,
 * zeros left out, text and copies of a random block 12 blocks before (inside the 64 KiB window: only the
 * window makes them smaller, which the probe's second look must see) as frames. */
TEST(block_kinds_at_the_default_level)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleOpenOptions o = {};
        const ChunkIndex *idx;
        UpkErr err = {};

        payload2_file("rootfs.img");
        test_write_file("m.json", template2, strlen(template2));
        ASSERT_OK_E(create2("k.upk", 1, &err), &err);
        o.keyring = test_pki("keyring.pem");
        ASSERT_OK_E(bundle_open_path("k.upk", &o, &b, &err), &err);
        idx = bundle_get_index(b);
        ASSERT_EQ(idx->n_blocks, 151u);
        for (size_t j = 0; j < 150; j++) {
                unsigned want;

                switch (j % 6) {
                case 1:
                case 3: /* a copy of the zeros two blocks before */
                        want = BLOCK_KIND_ZERO;
                        break;
                case 2:
                        want = BLOCK_KIND_ZSTD;
                        break;
                case 4:
                        want = j >= 12 ? BLOCK_KIND_ZSTD : BLOCK_KIND_STORED;
                        break;
                default:
                        want = BLOCK_KIND_STORED;
                }
                if (idx->blocks[j].kind != want)
                        test_fail("block %zu: kind %u, not %u", j, (unsigned)idx->blocks[j].kind, want);
                if (want == BLOCK_KIND_ZSTD)
                        ASSERT_TRUE(idx->blocks[j].stored_len < 4096);
        }
        ASSERT_OK_E(bundle_verify_rest(b, &err), &err);
}
