/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/evp.h>
#include <pthread.h>

#include "bundle-test-util.h"
#include "chunk-index.h"
#include <zstd.h>
#include "fileio.h"
#include "hexdecoct.h"

#define RAW_SIZE 300001u
#define APP_SIZE 200000u

/* A valid bundle in the current folder: rootfs.img (raw) and app.tar.zst (zstd). */
typedef struct Fixture {
        uint8_t *raw, *app, *app_z;
        size_t app_z_size;
} Fixture;

static void fixture_make(Fixture *f)
{
        static const char template[] =
                "{ \"format\": 1, \"compatible\": \"acme-gw\", \"version\": \"1.1.0\",\n"
                "  \"build\": \"2026-11-25T10:00:00Z\",\n"
                "  \"payloads\": [\n"
                "    { \"name\": \"rootfs\", \"file\": \"rootfs.img\", \"handler\": \"raw\", "
                "\"slot_class\": \"rootfs\" },\n"
                "    { \"name\": \"app\", \"file\": \"app.tar.zst\", \"handler\": \"archive\", "
                "\"slot_class\": \"appfs\",\n"
                "      \"compression\": \"zstd\" } ] }\n";

        f->raw = random_bytes(RAW_SIZE, 1);
        /* compressible: repeat a short random pattern */
        f->app = malloc(APP_SIZE);
        for (size_t i = 0; i < APP_SIZE; i++)
                f->app[i] = (uint8_t)(i % 97 * 7);
        f->app_z = compress_buffer(COMPRESSION_ZSTD, f->app, APP_SIZE, &f->app_z_size);
        test_write_file("rootfs.img", f->raw, RAW_SIZE);
        test_write_file("app.tar.zst", f->app_z, f->app_z_size);
        test_write_file("manifest.json", template, strlen(template));
        create_bundle("manifest.json", "b.upk");
}

static BundleOpenOptions verified = { .keyring = NULL };

static BundleOpenOptions *keyring(void)
{
        verified.keyring = test_pki("keyring.pem");
        return &verified;
}

static void sha256_hex(const void *data, size_t size, char ret[65])
{
        uint8_t d[32];
        unsigned n;
        EVP_Digest(data, size, d, &n, EVP_sha256(), NULL);
        hex_encode(d, 32, ret);
}

/* Read a payload completely into a buffer; returns the r of the last call. */
static int read_all(Bundle *b, uint8_t **ret, size_t *ret_size, UpkErr *err)
{
        size_t size = 0;
        uint8_t *out = NULL;
        const void *buf;
        size_t len;
        int r;

        while ((r = bundle_read_block(b, &buf, &len, err)) > 0) {
                out = realloc(out, size + len);
                memcpy(out + size, buf, len);
                size += len;
        }
        *ret = out;
        *ret_size = size;
        return r;
}

TEST(open_verified_reads_every_payload)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        const ManifestPayload *p;
        _cleanup_free_ uint8_t *got = NULL;
        size_t got_size;
        UpkErr err = {};
        Fixture f;

        fixture_make(&f);
        ASSERT_OK_E(bundle_open_path("b.upk", keyring(), &b, &err), &err);
        ASSERT_TRUE(bundle_is_verified(b));
        ASSERT_TRUE(strstr(bundle_get_signer(b)->subject, "CN="));
        ASSERT_EQ(bundle_get_manifest(b)->n_payloads, 2);

        ASSERT_EQ(bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, &err), 1);
        ASSERT_STREQ(p->name, "rootfs");
        ASSERT_OK_E(read_all(b, &got, &got_size, &err), &err);
        ASSERT_EQ(got_size, RAW_SIZE);
        ASSERT_TRUE(memcmp(got, f.raw, RAW_SIZE) == 0);
        free(TAKE_PTR(got));

        ASSERT_EQ(bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, &err), 1);
        ASSERT_STREQ(p->name, "app");
        ASSERT_EQ(p->installed_size, APP_SIZE);
        ASSERT_OK_E(read_all(b, &got, &got_size, &err), &err);
        ASSERT_EQ(got_size, APP_SIZE);
        ASSERT_TRUE(memcmp(got, f.app, APP_SIZE) == 0);

        ASSERT_EQ(bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, &err), 0);
        ASSERT_TRUE(bundle_get_position(b) > RAW_SIZE);
}

TEST(stored_mode_gives_the_stored_bytes)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        const ManifestPayload *p;
        _cleanup_free_ uint8_t *got = NULL;
        size_t got_size;
        UpkErr err = {};
        Fixture f;

        fixture_make(&f);
        ASSERT_OK_E(bundle_open_path("b.upk", keyring(), &b, &err), &err);
        /* skipping a payload still reads and checks it */
        ASSERT_EQ(bundle_next_payload(b, BUNDLE_PAYLOAD_STORED, &p, &err), 1);
        ASSERT_EQ(bundle_next_payload(b, BUNDLE_PAYLOAD_STORED, &p, &err), 1);
        ASSERT_OK_E(read_all(b, &got, &got_size, &err), &err);
        ASSERT_EQ(got_size, f.app_z_size);
        ASSERT_TRUE(memcmp(got, f.app_z, got_size) == 0);
        ASSERT_EQ(bundle_next_payload(b, BUNDLE_PAYLOAD_STORED, &p, &err), 0);
}

TEST(unverified_open_parses_but_says_so)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        UpkErr err = {};
        Fixture f;

        fixture_make(&f);
        ASSERT_OK_E(bundle_open_path("b.upk", NULL, &b, &err), &err);
        ASSERT_FALSE(bundle_is_verified(b));
        ASSERT_TRUE(bundle_get_signer(b) == NULL);
        ASSERT_STREQ(bundle_get_manifest(b)->version_str, "1.1.0");
}

static int verify_file(const char *path, UpkErr *err)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        int r;

        upk_err_clear(err);
        r = bundle_open_path(path, keyring(), &b, err);
        if (r < 0)
                return r;
        return bundle_verify_rest(b, err);
}

TEST(truncated_at_every_block_is_rejected)
{
        _cleanup_free_ char *data = NULL;
        size_t size, data_end;
        UpkErr err = {};
        Fixture f;
        unsigned checked = 0;

        fixture_make(&f);
        data = file_contents("b.upk", &size);
        /* Where the end-of-archive zero blocks start: cutting there or later loses no member data. */
        data_end = size;
        while (data_end > 0 && data[data_end - 1] == 0)
                data_end--;
        data_end = (data_end + 511) / 512 * 512;

        for (size_t cut = 0; cut < size; cut += 512) {
                for (size_t delta = 0; delta < 512; delta += (cut < 4096 ? 100 : 512)) {
                        if (cut + delta >= size)
                                break;
                        test_write_file("t.upk", data, cut + delta);
                        int r = verify_file("t.upk", &err);
                        if (cut + delta >= data_end && delta == 0) {
                                ASSERT_OK_E(r, &err);
                        } else {
                                if (r != -EBADMSG || err.kind != UPK_ERR_FORMAT)
                                        test_fail("cut at %zu: r=%d kind=%s msg=%s", cut + delta, r,
                                                  upk_err_kind_to_string(err.kind), err.msg);
                        }
                        checked++;
                }
        }
        ASSERT_TRUE(checked > 500);
}

static void flip_and_expect(const char *data, size_t size, size_t offset, UpkErrKind kind,
                            const char *substr)
{
        _cleanup_free_ char *copy = malloc(size);
        UpkErr err = {};

        memcpy(copy, data, size);
        copy[offset] ^= 0x01;
        test_write_file("flip.upk", copy, size);
        ASSERT_UPK_ERR(verify_file("flip.upk", &err), &err, -EBADMSG, kind, substr);
}

TEST(flipped_bytes_are_rejected)
{
        _cleanup_free_ char *data = NULL;
        const char *manifest, *raw;
        size_t size;
        Fixture f;

        fixture_make(&f);
        data = file_contents("b.upk", &size);
        manifest = memmem(data, size, "\"compatible\"", 12);
        raw = memmem(data, size, f.raw, 4096);
        ASSERT_TRUE(manifest && raw);

        flip_and_expect(data, size, (size_t)(manifest - data) + 3, UPK_ERR_SIGNATURE, "signature");
        flip_and_expect(data, size, (size_t)(raw - data) + 17, UPK_ERR_PAYLOAD, "sha256 mismatch");
        flip_and_expect(data, size, (size_t)(raw - data) + RAW_SIZE - 1, UPK_ERR_PAYLOAD,
                        "payload \"rootfs\"");
        /* inside the compressed payload: either the decoder or the hash objects */
        {
                const char *z = memmem(data, size, f.app_z, 64);
                _cleanup_free_ char *copy = malloc(size);
                UpkErr err = {};
                memcpy(copy, data, size);
                copy[(z - data) + (ptrdiff_t)f.app_z_size / 2] ^= 0x40;
                test_write_file("flip.upk", copy, size);
                ASSERT_EQ(verify_file("flip.upk", &err), -EBADMSG);
                ASSERT_EQ(err.kind, UPK_ERR_PAYLOAD);
        }
}

TEST(flipped_signature_is_rejected)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_free_ char *data = NULL;
        const void *sig;
        size_t size, sig_size;
        UpkErr err = {};
        Fixture f;

        fixture_make(&f);
        ASSERT_OK(bundle_open_path("b.upk", NULL, &b, &err));
        bundle_get_raw(b, NULL, NULL, &sig, &sig_size);
        data = file_contents("b.upk", &size);
        const char *at = memmem(data, size, sig, sig_size);
        ASSERT_TRUE(at);
        for (size_t off = 0; off < sig_size; off += sig_size / 7 + 1)
                flip_and_expect(data, size, (size_t)(at - data) + off, UPK_ERR_SIGNATURE, "signature");
        flip_and_expect(data, size, (size_t)(at - data) + sig_size - 1, UPK_ERR_SIGNATURE, "signature");
}

/* A signed manifest naming one raw payload `file` with content `data`. */
static char *manifest_one(const char *file, const void *data, size_t size, const char *extra)
{
        char hex[65];
        sha256_hex(data, size, hex);
        return strdup_printf(
                "{ \"format\": 1, \"compatible\": \"acme-gw\", \"version\": \"2.0.0\", "
                "\"build\": \"2026-11-25T10:00:00Z\", \"payloads\": [ { \"name\": \"p\", \"file\": "
                "\"%s\", \"handler\": \"raw\", \"slot_class\": \"rootfs\", \"size\": %zu, "
                "\"sha256\": \"%s\"%s } ] }",
                file, size, hex, extra ?: "");
}

static void expect_tar_rejected(const TarMember *members, size_t n, UpkErrKind kind, const char *substr)
{
        UpkErr err = {};
        write_tar("crafted.upk", members, n);
        ASSERT_UPK_ERR(verify_file("crafted.upk", &err), &err, err.code ?: -EBADMSG, kind, substr);
        ASSERT_TRUE(err.code < 0);
}

TEST(member_structure_is_strict)
{
        static const char payload[] = "payload bytes";
        _cleanup_free_ char *m = manifest_one("p.img", payload, sizeof(payload), NULL);
        _cleanup_free_ uint8_t *sig = NULL;
        size_t sig_size;
        UpkErr err = {};

        sign_file(m, strlen(m), &sig, &sig_size);
        TarMember man = { "manifest.json", m, strlen(m) }, sg = { "manifest.json.sig", sig, sig_size },
                  pl = { "p.img", payload, sizeof(payload) };

        /* the valid arrangement passes */
        write_tar("ok.upk", (TarMember[]){ man, sg, pl }, 3);
        ASSERT_OK_E(verify_file("ok.upk", &err), &err);

        expect_tar_rejected((TarMember[]){ sg, man, pl }, 3, UPK_ERR_FORMAT,
                            "member 1 is \"manifest.json.sig\", expected \"manifest.json\"");
        expect_tar_rejected((TarMember[]){ man, pl, sg }, 3, UPK_ERR_FORMAT,
                            "expected \"manifest.json.sig\"");
        expect_tar_rejected((TarMember[]){ man, sg }, 2, UPK_ERR_FORMAT, "member 3 \"p.img\" is missing");
        expect_tar_rejected((TarMember[]){ man }, 1, UPK_ERR_FORMAT, "\"manifest.json.sig\" is missing");
        expect_tar_rejected((TarMember[]){ man, sg, pl, { "extra", "x", 1 } }, 4, UPK_ERR_FORMAT,
                            "extra member 4 \"extra\"");
        expect_tar_rejected((TarMember[]){ man, sg, { "other.img", payload, sizeof(payload) } }, 3,
                            UPK_ERR_FORMAT, "member 3 is \"other.img\", expected \"p.img\"");
        expect_tar_rejected((TarMember[]){ man, sg, { "p.img", payload, sizeof(payload) - 1 } }, 3,
                            UPK_ERR_FORMAT, "the manifest declares 14");
        expect_tar_rejected((TarMember[]){ man, sg, { "p.img", "payload bytes!!", 16 } }, 3, UPK_ERR_FORMAT,
                            "is 16 bytes");
        expect_tar_rejected((TarMember[]){ man, sg, { "p.img", NULL, 0, AE_IFLNK, "/etc/passwd" } }, 3,
                            UPK_ERR_FORMAT, "is a symbolic link");
        expect_tar_rejected((TarMember[]){ man, sg, { "p.img", NULL, 0, AE_IFREG, "manifest.json", true } },
                            3, UPK_ERR_FORMAT, "is a hard link");
        expect_tar_rejected((TarMember[]){ man, sg, { "p.img", NULL, 0, AE_IFCHR } }, 3, UPK_ERR_FORMAT,
                            "is a character device");
        expect_tar_rejected((TarMember[]){ man, sg, { "p.img", NULL, 0, AE_IFDIR } }, 3, UPK_ERR_FORMAT,
                            "is a directory");
        expect_tar_rejected((TarMember[]){ man, sg, { "p.img", NULL, 0, AE_IFIFO } }, 3, UPK_ERR_FORMAT,
                            "is a FIFO");
        expect_tar_rejected((TarMember[]){ man, sg, { "../p.img", payload, sizeof(payload) } }, 3,
                            UPK_ERR_FORMAT, "not a plain file name");
        expect_tar_rejected((TarMember[]){ man, sg, { "/p.img", payload, sizeof(payload) } }, 3,
                            UPK_ERR_FORMAT, "not a plain file name");
        expect_tar_rejected((TarMember[]){ man, sg, { "d/p.img", payload, sizeof(payload) } }, 3,
                            UPK_ERR_FORMAT, "not a plain file name");
        expect_tar_rejected((TarMember[]){ { "./manifest.json", m, strlen(m) }, sg, pl }, 3, UPK_ERR_FORMAT,
                            "not a plain file name");
}

TEST(signature_over_another_manifest_is_rejected)
{
        static const char payload[] = "payload bytes";
        _cleanup_free_ char *m = manifest_one("p.img", payload, sizeof(payload), NULL);
        _cleanup_free_ char *m2 = manifest_one("p.img", payload, sizeof(payload) - 1, NULL);
        _cleanup_free_ uint8_t *sig = NULL;
        size_t sig_size;
        UpkErr err = {};

        sign_file(m2, strlen(m2), &sig, &sig_size);
        write_tar("x.upk",
                  (TarMember[]){ { "manifest.json", m, strlen(m) },
                                 { "manifest.json.sig", sig, sig_size },
                                 { "p.img", payload, sizeof(payload) } },
                  3);
        ASSERT_UPK_ERR(verify_file("x.upk", &err), &err, -EBADMSG, UPK_ERR_SIGNATURE, "signature: ");
        write_tar("y.upk",
                  (TarMember[]){ { "manifest.json", m, strlen(m) },
                                 { "manifest.json.sig", "", 0 },
                                 { "p.img", payload, sizeof(payload) } },
                  3);
        ASSERT_UPK_ERR(verify_file("y.upk", &err), &err, -EBADMSG, UPK_ERR_SIGNATURE, "signature: ");
}

TEST(bad_manifest_is_rejected_after_the_signature)
{
        static const char payload[] = "payload bytes";
        _cleanup_free_ char *m = manifest_one("p.img", payload, sizeof(payload), ", \"colour\": \"blue\"");
        _cleanup_free_ uint8_t *sig = NULL;
        size_t sig_size;
        UpkErr err = {};

        sign_file(m, strlen(m), &sig, &sig_size);
        write_tar("x.upk",
                  (TarMember[]){ { "manifest.json", m, strlen(m) },
                                 { "manifest.json.sig", sig, sig_size },
                                 { "p.img", payload, sizeof(payload) } },
                  3);
        ASSERT_UPK_ERR(verify_file("x.upk", &err), &err, -EBADMSG, UPK_ERR_MANIFEST, "colour");
}

TEST(oversized_members_are_refused_before_reading)
{
        _cleanup_free_ char *big = calloc(1, MANIFEST_SIZE_MAX + 1);
        UpkErr err = {};

        write_tar("x.upk", (TarMember[]){ { "manifest.json", big, MANIFEST_SIZE_MAX + 1 } }, 1);
        ASSERT_UPK_ERR(verify_file("x.upk", &err), &err, -EFBIG, UPK_ERR_FORMAT, "at most 1048576");
        write_tar("y.upk",
                  (TarMember[]){ { "manifest.json", "{}", 2 },
                                 { "manifest.json.sig", big, SIGNATURE_SIZE_MAX + 1 } },
                  2);
        ASSERT_UPK_ERR(verify_file("y.upk", &err), &err, -EFBIG, UPK_ERR_FORMAT,
                       "\"manifest.json.sig\" is 65537");
}

static void compressed_case(Compression c, uint64_t declared, UpkErrKind kind, const char *substr)
{
        size_t size = 100000, zsize;
        _cleanup_free_ uint8_t *plain = calloc(1, size);
        _cleanup_free_ uint8_t *z = compress_buffer(c, plain, size, &zsize);
        _cleanup_free_ char *extra = strdup_printf(", \"compression\": \"%s\", \"installed_size\": %llu",
                                                   compression_to_string(c), (unsigned long long)declared);
        _cleanup_free_ char *m = manifest_one("p.z", z, zsize, extra);
        _cleanup_free_ uint8_t *sig = NULL;
        size_t sig_size;
        UpkErr err = {};

        sign_file(m, strlen(m), &sig, &sig_size);
        write_tar("z.upk",
                  (TarMember[]){ { "manifest.json", m, strlen(m) },
                                 { "manifest.json.sig", sig, sig_size },
                                 { "p.z", z, zsize } },
                  3);
        if (!substr)
                ASSERT_OK_E(verify_file("z.upk", &err), &err);
        else
                ASSERT_UPK_ERR(verify_file("z.upk", &err), &err, err.code, kind, substr);
}

TEST(compressed_payloads_are_capped_at_installed_size)
{
        compressed_case(COMPRESSION_ZSTD, 100000, UPK_ERR_NONE, NULL);
        compressed_case(COMPRESSION_XZ, 100000, UPK_ERR_NONE, NULL);
        compressed_case(COMPRESSION_GZIP, 100000, UPK_ERR_NONE, NULL);
        compressed_case(COMPRESSION_ZSTD, 4096, UPK_ERR_PAYLOAD, "more than installed_size 4096");
        compressed_case(COMPRESSION_GZIP, 99999, UPK_ERR_PAYLOAD, "more than installed_size 99999");
        compressed_case(COMPRESSION_XZ, 100001, UPK_ERR_PAYLOAD, "decompresses to 100000 bytes");
}

TEST(wrong_compression_is_rejected)
{
        size_t size = 5000, zsize;
        _cleanup_free_ uint8_t *plain = calloc(1, size);
        _cleanup_free_ uint8_t *z = compress_buffer(COMPRESSION_GZIP, plain, size, &zsize);
        _cleanup_free_ char *m =
                manifest_one("p.z", z, zsize, ", \"compression\": \"zstd\", \"installed_size\": 5000");
        _cleanup_free_ uint8_t *sig = NULL;
        size_t sig_size;
        UpkErr err = {};

        sign_file(m, strlen(m), &sig, &sig_size);
        write_tar("z.upk",
                  (TarMember[]){ { "manifest.json", m, strlen(m) },
                                 { "manifest.json.sig", sig, sig_size },
                                 { "p.z", z, zsize } },
                  3);
        ASSERT_UPK_ERR(verify_file("z.upk", &err), &err, -EBADMSG, UPK_ERR_PAYLOAD, "not zstd data");
}

TEST(not_a_tar_is_rejected)
{
        _cleanup_free_ uint8_t *junk = random_bytes(10000, 7);
        UpkErr err = {};

        test_write_file("junk.upk", junk, 10000);
        ASSERT_UPK_ERR(verify_file("junk.upk", &err), &err, -EBADMSG, UPK_ERR_FORMAT, "not a tar archive");
        test_write_file("empty.upk", "", 0);
        ASSERT_UPK_ERR(verify_file("empty.upk", &err), &err, -EBADMSG, UPK_ERR_FORMAT, "the file is empty");
        ASSERT_UPK_ERR(verify_file("missing.upk", &err), &err, -ENOENT, UPK_ERR_IO, "cannot open");
}

TEST(reader_stops_after_an_error)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_free_ char *data = NULL;
        const ManifestPayload *p;
        size_t size;
        UpkErr err = {};
        Fixture f;

        fixture_make(&f);
        data = file_contents("b.upk", &size);
        char *raw = memmem(data, size, f.raw, 4096);
        raw[5] ^= 1;
        test_write_file("c.upk", data, size);
        ASSERT_OK(bundle_open_path("c.upk", keyring(), &b, &err));
        ASSERT_EQ(bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, &err), 1);
        ASSERT_UPK_ERR(bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, &err), &err, -EBADMSG,
                       UPK_ERR_PAYLOAD, "sha256 mismatch");
        /* every later call repeats the first error */
        ASSERT_UPK_ERR(bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, &err), &err, -EBADMSG,
                       UPK_ERR_PAYLOAD, "sha256 mismatch");
}

TEST(extract_writes_and_cleans_up)
{
        _cleanup_free_ char *data = NULL, *got = NULL;
        size_t size, got_size;
        UpkErr err = {};
        Fixture f;

        fixture_make(&f);
        {
                _cleanup_(bundle_freep) Bundle *b = NULL;
                ASSERT_OK_E(bundle_open_path("b.upk", keyring(), &b, &err), &err);
                ASSERT_OK_E(bundle_extract(b, "out", &err), &err);
        }
        got = file_contents("out/rootfs.img", &got_size);
        ASSERT_EQ(got_size, RAW_SIZE);
        ASSERT_TRUE(memcmp(got, f.raw, RAW_SIZE) == 0);
        free(TAKE_PTR(got));
        got = file_contents("out/app.tar.zst", &got_size);
        ASSERT_EQ(got_size, f.app_z_size);
        ASSERT_EQ(access("out/manifest.json", F_OK), 0);
        ASSERT_EQ(access("out/manifest.json.sig", F_OK), 0);

        /* a damaged last payload: everything written is removed, and the folder it made */
        data = file_contents("b.upk", &size);
        char *z = memmem(data, size, f.app_z, 64);
        z[f.app_z_size - 1] ^= 1;
        test_write_file("bad.upk", data, size);
        {
                _cleanup_(bundle_freep) Bundle *b = NULL;
                ASSERT_OK(bundle_open_path("bad.upk", keyring(), &b, &err));
                ASSERT_UPK_ERR(bundle_extract(b, "out2", &err), &err, -EBADMSG, UPK_ERR_PAYLOAD,
                               "sha256 mismatch");
        }
        ASSERT_EQ(access("out2", F_OK), -1);

        /* an existing folder keeps what it had; an existing file is never replaced */
        ASSERT_EQ(mkdir("out3", 0755), 0);
        test_write_file("out3/rootfs.img", "mine", 4);
        {
                _cleanup_(bundle_freep) Bundle *b = NULL;
                ASSERT_OK(bundle_open_path("b.upk", keyring(), &b, &err));
                ASSERT_UPK_ERR(bundle_extract(b, "out3", &err), &err, -EEXIST, UPK_ERR_IO, "rootfs.img");
        }
        free(TAKE_PTR(got));
        got = file_contents("out3/rootfs.img", &got_size);
        ASSERT_EQ(got_size, 4);
        ASSERT_EQ(access("out3/manifest.json", F_OK), -1);
        ASSERT_EQ(access("out3", F_OK), 0);
}

TEST(nothing_may_follow_the_end_of_the_archive)
{
        _cleanup_free_ char *data = NULL, *more = NULL;
        size_t size;
        UpkErr err = {};
        Fixture f;

        fixture_make(&f);
        data = file_contents("b.upk", &size);
        more = malloc(size + 4096);
        memcpy(more, data, size);
        /* zero padding is what tar writers add: fine */
        memset(more + size, 0, 4096);
        test_write_file("pad.upk", more, size + 4096);
        ASSERT_OK_E(verify_file("pad.upk", &err), &err);
        /* anything else behind the end, even a whole second archive, is not */
        memcpy(more + size, data, 4096);
        test_write_file("more.upk", more, size + 4096);
        ASSERT_UPK_ERR(verify_file("more.upk", &err), &err, -EBADMSG, UPK_ERR_FORMAT,
                       "data follows the end");
        memset(more + size, 0, 4096);
        more[size + 4095] = 1;
        test_write_file("late.upk", more, size + 4096);
        ASSERT_UPK_ERR(verify_file("late.upk", &err), &err, -EBADMSG, UPK_ERR_FORMAT,
                       "data follows the end");
}

static int read_deferred(const char *path, bool explicit_hash, UpkErr *err)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        const ManifestPayload *p;
        const void *buf;
        size_t len;
        int r;

        r = bundle_open_path(path, keyring(), &b, err);
        if (r < 0)
                return r;
        bundle_set_deferred_hashing(b, true);
        while ((r = bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, err)) > 0) {
                while ((r = bundle_read_block(b, &buf, &len, err)) > 0)
                        if (explicit_hash && (r = bundle_hash_pending(b, err)) < 0)
                                return r;
                if (r < 0)
                        return r;
        }
        return r;
}

TEST(deferred_hashing_checks_the_same_bytes)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        UpkErr err = {};
        Fixture f;

        fixture_make(&f);
        ASSERT_OK_E(read_deferred("b.upk", true, &err), &err);
        ASSERT_OK_E(read_deferred("b.upk", false, &err), &err);
        data = file_contents("b.upk", &size);
        char *raw = memmem(data, size, f.raw, 4096);
        raw[RAW_SIZE / 2] ^= 1;
        test_write_file("c.upk", data, size);
        ASSERT_UPK_ERR(read_deferred("c.upk", true, &err), &err, -EBADMSG, UPK_ERR_PAYLOAD,
                       "sha256 mismatch");
        ASSERT_UPK_ERR(read_deferred("c.upk", false, &err), &err, -EBADMSG, UPK_ERR_PAYLOAD,
                       "sha256 mismatch");
}

/* A source in memory that hands out pieces of awkward sizes, in place (next) or copied (read), and can
 * fail at a given offset. In place, each piece it gave before is scribbled over when the next is asked
 * for: a reader that kept using a given-back piece would read garbage and fail its hash check. */
typedef struct Pieces {
        const uint8_t *data;
        size_t size, off;
        unsigned turn;
        size_t fail_at; /* SIZE_MAX: never */
        uint8_t *piece; /* the copy lent out last */
        size_t piece_len;
} Pieces;

static size_t piece_size(Pieces *s)
{
        static const size_t sizes[] = { 1, 511, 513, 4096, 65537, 3, 300000, 512, 17 };
        size_t n = sizes[s->turn++ % ELEMENTSOF(sizes)];

        if (n > s->size - s->off)
                n = s->size - s->off;
        if (s->fail_at != SIZE_MAX && s->off < s->fail_at && n > s->fail_at - s->off)
                n = s->fail_at - s->off;
        return n;
}

static ssize_t pieces_next(void *userdata, const void **ret_buf)
{
        Pieces *s = userdata;
        size_t n;

        if (s->piece) {
                memset(s->piece, 0xa5, s->piece_len);
                free(s->piece);
                s->piece = NULL;
        }
        if (s->off == s->fail_at)
                return -EIO;
        n = piece_size(s);
        if (n == 0)
                return 0;
        s->piece = malloc(n);
        s->piece_len = n;
        ASSERT_TRUE(s->piece);
        memcpy(s->piece, s->data + s->off, n);
        s->off += n;
        *ret_buf = s->piece;
        return (ssize_t)n;
}

static ssize_t pieces_read(void *userdata, void *buf, size_t size)
{
        Pieces *s = userdata;
        size_t n;

        if (s->off == s->fail_at)
                return -EIO;
        n = piece_size(s);
        if (n > size)
                n = size;
        memcpy(buf, s->data + s->off, n);
        s->off += n;
        return (ssize_t)n;
}

static int verify_pieces(Pieces *s, bool in_place, UpkErr *err)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        int r;

        upk_err_clear(err);
        if (in_place)
                r = bundle_open_next(pieces_next, s, keyring(), &b, err);
        else
                r = bundle_open_func(pieces_read, s, keyring(), &b, err);
        if (r >= 0) {
                bundle_set_deferred_hashing(b, true);
                r = bundle_verify_rest(b, err);
        }
        free(s->piece);
        return r;
}

TEST(sources_in_pieces_in_place_or_copied)
{
        _cleanup_free_ char *data = NULL, *more = NULL;
        char where[64];
        size_t size;
        UpkErr err = {};
        Fixture f;

        fixture_make(&f);
        data = file_contents("b.upk", &size);
        more = calloc(1, size + 4096);
        memcpy(more, data, size);
        for (int in_place = 0; in_place <= 1; in_place++) {
                Pieces s = { .data = (uint8_t *)data, .size = size, .fail_at = SIZE_MAX };

                ASSERT_OK_E(verify_pieces(&s, in_place, &err), &err);
                ASSERT_EQ(s.off, size);

                /* zero padding behind the end is read to the end; anything else is refused */
                s = (Pieces){ .data = (uint8_t *)more, .size = size + 4096, .fail_at = SIZE_MAX };
                ASSERT_OK_E(verify_pieces(&s, in_place, &err), &err);
                ASSERT_EQ(s.off, size + 4096);
                more[size + 4000] = 1;
                s = (Pieces){ .data = (uint8_t *)more, .size = size + 4096, .fail_at = SIZE_MAX };
                ASSERT_UPK_ERR(verify_pieces(&s, in_place, &err), &err, -EBADMSG, UPK_ERR_FORMAT,
                               "data follows the end");
                more[size + 4000] = 0;

                /* a source that fails, in the header, in a payload or after the end: a read error that
                 * says where, not a bad bundle */
                s = (Pieces){ .data = (uint8_t *)data, .size = size, .fail_at = 100 };
                ASSERT_UPK_ERR(verify_pieces(&s, in_place, &err), &err, -EIO, UPK_ERR_IO,
                               "read error at byte 100 of the bundle: Input/output error");
                s = (Pieces){ .data = (uint8_t *)data, .size = size, .fail_at = size / 2 };
                ASSERT_UPK_ERR(verify_pieces(&s, in_place, &err), &err, -EIO, UPK_ERR_IO,
                               "read error at byte");
                snprintf(where, sizeof(where), "byte %zu ", size / 2);
                ASSERT_TRUE(strstr(err.msg, where));
                s = (Pieces){ .data = (uint8_t *)more, .size = size + 4096, .fail_at = size + 1024 };
                ASSERT_UPK_ERR(verify_pieces(&s, in_place, &err), &err, -EIO, UPK_ERR_IO,
                               "read error at byte");
        }
}

typedef struct PipeFeed {
        int fd;
        const char *data;
        size_t size;
} PipeFeed;

static void *feed_pipe(void *userdata)
{
        PipeFeed *p = userdata;

        (void)loop_write(p->fd, p->data, p->size);
        close(p->fd);
        return NULL;
}

TEST(a_refused_bundle_on_an_open_pipe_returns_at_once)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_free_ char *data = NULL;
        UpkErr err = {};
        int fds[2];
        size_t size;
        Fixture f;

        /* The writer sends the members up to the signature, with the manifest changed, and keeps the
         * pipe open. The reader must refuse and return: nothing may wait for the rest. */
        fixture_make(&f);
        data = file_contents("b.upk", &size);
        ASSERT_TRUE(size > 65536);
        data[600] ^= 0x01; /* in manifest.json, the first member */
        ASSERT_OK(pipe2(fds, O_CLOEXEC));
        ASSERT_OK(loop_write(fds[1], data, 65536));
        alarm(10);
        ASSERT_UPK_ERR(bundle_open_fd(fds[0], keyring(), &b, &err), &err, -EBADMSG, UPK_ERR_SIGNATURE,
                       "signature");
        alarm(0);
        close(fds[0]);
        close(fds[1]);
}

TEST(open_fd_reads_a_pipe_too)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_free_ char *data = NULL;
        UpkErr err = {};
        PipeFeed feed;
        pthread_t t;
        int fds[2];
        size_t size;
        Fixture f;

        /* Not a regular file: read directly, without the read-ahead thread (whose read could wait
         * forever on a pipe). */
        fixture_make(&f);
        data = file_contents("b.upk", &size);
        ASSERT_OK(pipe2(fds, O_CLOEXEC));
        feed = (PipeFeed){ .fd = fds[1], .data = data, .size = size };
        ASSERT_EQ(pthread_create(&t, NULL, feed_pipe, &feed), 0);
        ASSERT_OK_E(bundle_open_fd(fds[0], keyring(), &b, &err), &err);
        close(fds[0]); /* bundle_open_fd() keeps its own */
        ASSERT_OK_E(bundle_verify_rest(b, &err), &err);
        ASSERT_EQ(pthread_join(t, NULL), 0);
        ASSERT_EQ(bundle_get_position(b), size);
}

/* ---- format 2 ---- */

static void fixture_make2(Fixture *f)
{
        fixture_make(f);
        create_bundle2("manifest.json", "b2.upk");
}

/* Format 2 from sources in pieces of every size, in place and copied: every block handed out is one
 * whole chunk of content, and the content is the payload's. */
TEST(format2_blocks_are_whole_verified_chunks)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        Fixture f;

        fixture_make2(&f);
        data = file_contents("b2.upk", &size);
        for (int in_place = 0; in_place <= 2; in_place++) {
                Pieces s = { .data = (uint8_t *)data, .size = size, .fail_at = SIZE_MAX };
                _cleanup_(bundle_freep) Bundle *b = NULL;
                const ManifestPayload *p;
                UpkErr err = {};
                int r;

                if (in_place == 2)
                        ASSERT_OK_E(bundle_open_path("b2.upk", keyring(), &b, &err), &err);
                else if (in_place)
                        ASSERT_OK_E(bundle_open_next(pieces_next, &s, keyring(), &b, &err), &err);
                else
                        ASSERT_OK_E(bundle_open_func(pieces_read, &s, keyring(), &b, &err), &err);
                ASSERT_EQ(bundle_get_manifest(b)->format, 2);
                bundle_set_deferred_hashing(b, true); /* format 2: defers only a zstd content hash */
                while ((r = bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, &err)) > 0) {
                        const uint8_t *want = streq(p->name, "rootfs") ? f.raw : f.app;
                        const void *buf;
                        size_t len, got = 0;

                        ASSERT_EQ(p->chunk_size, 65536u);
                        while ((r = bundle_read_block(b, &buf, &len, &err)) > 0) {
                                /* One chunk, or a span of whole chunks stored as is (at most 1 MiB). */
                                ASSERT_EQ(got % p->chunk_size, 0u);
                                ASSERT_TRUE(len == manifest_chunk_length(p, got / p->chunk_size) ||
                                            (len % p->chunk_size == 0 && len <= 1024u * 1024u) ||
                                            got + len == p->installed_size);
                                ASSERT_EQ(memcmp(buf, want + got, len), 0);
                                got += len;
                        }
                        ASSERT_OK_E(r, &err);
                        ASSERT_EQ(got, p->installed_size);
                }
                ASSERT_OK_E(r, &err);
                free(s.piece);
        }
}

/* A byte flipped anywhere in a payload member: the blocks handed out before are exactly the chunks
 * before the one holding it, the error names that chunk, and nothing more comes. */
TEST(format2_flipped_byte_stops_at_its_chunk)
{
        _cleanup_free_ char *data = NULL;
        size_t size, raw_at;
        Fixture f;

        fixture_make2(&f);
        data = file_contents("b2.upk", &size);
        /* rootfs.img is stored as is: find it by its first bytes */
        raw_at = (size_t)((char *)memmem(data, size, f.raw, 4096) - data);
        for (size_t chunk = 0; chunk < 5; chunk++) {
                size_t at = raw_at + chunk * 65536 + 1234;
                _cleanup_(bundle_freep) Bundle *b = NULL;
                const ManifestPayload *p;
                const void *buf;
                size_t len, got = 0;
                char want[128];
                UpkErr err = {};
                int r;

                data[at] ^= 0x10;
                test_write_file("bad2.upk", data, size);
                data[at] ^= 0x10;
                ASSERT_OK_E(bundle_open_path("bad2.upk", keyring(), &b, &err), &err);
                ASSERT_EQ(bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, &err), 1);
                while ((r = bundle_read_block(b, &buf, &len, &err)) > 0) {
                        ASSERT_EQ(memcmp(buf, f.raw + got, len), 0);
                        got += len;
                }
                snprintf(want, sizeof(want),
                         "payload \"rootfs\": chunk %zu (bytes %zu..%zu): sha256 mismatch", chunk,
                         chunk * 65536,
                         (chunk + 1) * 65536 < RAW_SIZE ? (chunk + 1) * 65536 - 1 : (size_t)RAW_SIZE - 1);
                ASSERT_EQ(r, -EBADMSG);
                ASSERT_TRUE(strstr(err.msg, want));
                /* Whole verified chunks before it at most (a span that holds the bad chunk goes whole). */
                ASSERT_EQ(got % 65536, 0u);
                ASSERT_TRUE(got <= chunk * 65536);
                ASSERT_EQ(bundle_read_block(b, &buf, &len, &err), -EBADMSG);
        }
}

/* extract of format 2: chunks.idx (as stored: one zstd frame of the index content) too, and the stored
 * bytes. */
TEST(format2_extract_and_info)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_free_ char *idx = NULL, *z = NULL;
        const void *raw;
        size_t n, zn, raw_size;
        UpkErr err = {};
        Fixture f;

        fixture_make2(&f);
        /* Not kept unless asked: freed once parsed, and extract refuses to write an index it has not. */
        ASSERT_OK_E(bundle_open_path("b2.upk", keyring(), &b, &err), &err);
        bundle_get_raw_index(b, &raw, &raw_size);
        ASSERT_TRUE(!raw && raw_size == 0);
        ASSERT_UPK_ERR(bundle_extract(b, "out0", &err), &err, -EINVAL, UPK_ERR_CONFIG, "keep_raw_index");
        b = bundle_free(b);
        keyring()->keep_raw_index = true;
        ASSERT_OK_E(bundle_open_path("b2.upk", keyring(), &b, &err), &err);
        keyring()->keep_raw_index = false;
        bundle_get_raw_index(b, &raw, &raw_size);
        {
                size_t need;
                ASSERT_OK(chunk_index_content_size(bundle_get_manifest(b), &need, NULL));
                /* 64-byte chunk entries and 8-byte block entries of 4 KiB blocks, for 5 + 4 chunks. */
                ASSERT_EQ(need,
                          (5u + 4u) * 64u + (manifest_block_count(&bundle_get_manifest(b)->payloads[0]) +
                                             manifest_block_count(&bundle_get_manifest(b)->payloads[1])) *
                                                    8u);
                ASSERT_EQ(ZSTD_getFrameContentSize(raw, raw_size), need);
        }
        ASSERT_OK_E(bundle_extract(b, "out", &err), &err);
        idx = file_contents("out/chunks.idx", &n);
        ASSERT_EQ(n, raw_size);
        ASSERT_EQ(memcmp(idx, raw, n), 0);
        z = file_contents("out/app.tar.zst", &zn);
        ASSERT_EQ(zn, bundle_get_manifest(b)->payloads[1].size);
        ASSERT_TRUE(zn < APP_SIZE);
        ASSERT_EQ(bundle_get_manifest(b)->payloads[1].chunk_compression, COMPRESSION_ZSTD);
}
