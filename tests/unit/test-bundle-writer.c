/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bundle-test-util.h"

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
