/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers for the bundle tests: write arbitrary tar streams (to build malformed bundles the writer
 * would refuse to make), compress buffers with libarchive's filters, and make signed bundles. */

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "bundle.h"
#include "fileio.h"
#include "tests.h"

typedef struct TarMember {
        const char *name;
        const void *data;
        size_t size;
        mode_t type;          /* AE_IFREG when 0 */
        const char *linkname; /* for symlinks and hard links */
        bool hardlink;
} TarMember;

static inline void write_tar(const char *path, const TarMember *members, size_t n)
{
        struct archive *a = archive_write_new();

        ASSERT_TRUE(a);
        ASSERT_EQ(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        ASSERT_EQ(archive_write_open_filename(a, path), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++) {
                const TarMember *m = &members[i];
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, m->name);
                archive_entry_set_filetype(e, m->type ?: AE_IFREG);
                archive_entry_set_perm(e, 0644);
                if (m->hardlink)
                        archive_entry_set_hardlink(e, m->linkname);
                else if (m->linkname)
                        archive_entry_set_symlink(e, m->linkname);
                archive_entry_set_size(
                        e, (m->type ?: AE_IFREG) == AE_IFREG && !m->hardlink ? (la_int64_t)m->size : 0);
                ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK);
                if ((m->type ?: AE_IFREG) == AE_IFREG && !m->hardlink && m->size > 0)
                        ASSERT_EQ(archive_write_data(a, m->data, m->size), (la_ssize_t)m->size);
                archive_entry_free(e);
        }
        ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
}

/* Compress `data` with a libarchive write filter; returns a malloc'd buffer. */
static inline uint8_t *compress_buffer(Compression c, const void *data, size_t size, size_t *ret_size)
{
        struct archive *a = archive_write_new();
        struct archive_entry *e = archive_entry_new();
        size_t cap = size + 65536, used = 0;
        uint8_t *out = malloc(cap);

        ASSERT_TRUE(a && e && out);
        ASSERT_EQ(archive_write_set_format_raw(a), ARCHIVE_OK);
        switch (c) {
        case COMPRESSION_GZIP:
                ASSERT_EQ(archive_write_add_filter_gzip(a), ARCHIVE_OK);
                break;
        case COMPRESSION_XZ:
                ASSERT_EQ(archive_write_add_filter_xz(a), ARCHIVE_OK);
                break;
        case COMPRESSION_ZSTD:
                ASSERT_EQ(archive_write_add_filter_zstd(a), ARCHIVE_OK);
                break;
        default:
                test_fail("no such compression");
        }
        ASSERT_EQ(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
        ASSERT_EQ(archive_write_open_memory(a, out, cap, &used), ARCHIVE_OK);
        archive_entry_set_pathname(e, "data");
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, (la_int64_t)size);
        ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK);
        ASSERT_EQ(archive_write_data(a, data, size), (la_ssize_t)size);
        ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        archive_entry_free(e);
        *ret_size = used;
        return out;
}

static inline uint8_t *random_bytes(size_t size, unsigned seed)
{
        uint8_t *p = malloc(size ?: 1);
        uint32_t x = seed * 2654435761u + 1;

        ASSERT_TRUE(p);
        for (size_t i = 0; i < size; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p[i] = (uint8_t)x;
        }
        return p;
}

static inline void sign_file(const void *data, size_t size, uint8_t **ret_der, size_t *ret_size)
{
        UpkErr err = {};
        ASSERT_OK_E(signature_sign(data, size, test_pki("signer.pem"), test_pki("signer.key"),
                                   test_pki("chain.pem"), ret_der, ret_size, &err),
                    &err);
}

/* Format 1 (what most reader tests take apart); create_bundle2() makes format 2. */
static inline void create_bundle_format(const char *manifest_path, const char *out, int format)
{
        UpkErr err = {};
        BundleCreateOptions o = {
                .manifest_path = manifest_path,
                .cert_path = test_pki("signer.pem"),
                .key_path = test_pki("signer.key"),
                .chain_path = test_pki("chain.pem"),
                .output_path = out,
                .format = format,
                .chunk_size = format == 2 ? 65536 : 0, /* the tests count in chunks of 64 KiB */
        };
        ASSERT_OK_E(bundle_create(&o, &err), &err);
}

static inline void create_bundle(const char *manifest_path, const char *out)
{
        create_bundle_format(manifest_path, out, 1);
}

static inline void create_bundle2(const char *manifest_path, const char *out)
{
        create_bundle_format(manifest_path, out, 2);
}

static inline char *file_contents(const char *path, size_t *ret_size)
{
        char *data = NULL;
        ASSERT_OK(read_full_file(path, SIZE_MAX / 2, &data, ret_size));
        return data;
}
