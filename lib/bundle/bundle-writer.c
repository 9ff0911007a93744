/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bundle.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "abi-time.h"
#include "archive-util.h"
#include "fileio.h"
#include "hexdecoct.h"
#include "openssl-util.h"
#include "path-util.h"

#define WRITE_CHUNK (1024u * 1024u)

static int open_payload(const char *dir, const ManifestPayload *p, uint64_t *ret_size, UpkErr *err)
{
        _cleanup_free_ char *path = strdup_printf("%s/%s", dir, p->file);
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (!path)
                return upk_err_oom(err);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "payload \"%s\": cannot open %s: %m", p->name, path);
        if (fstat(fd, &st) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "payload \"%s\": cannot stat %s: %m", p->name, path);
        if (!S_ISREG(st.st_mode))
                return upk_err(err, UPK_ERR_IO, -EINVAL, "payload \"%s\": %s is not a regular file", p->name,
                               path);
        if ((uint64_t)st.st_size > MANIFEST_PAYLOAD_SIZE_MAX)
                return upk_err(err, UPK_ERR_IO, -EFBIG, "payload \"%s\": %s is larger than %llu bytes",
                               p->name, path, (unsigned long long)MANIFEST_PAYLOAD_SIZE_MAX);
        *ret_size = (uint64_t)st.st_size;
        return TAKE_FD(fd);
}

/* Hash a payload file; with `a` set, also append its bytes to the archive as they are read. */
static int stream_payload(int fd, const ManifestPayload *p, uint64_t size, struct archive *a,
                          uint8_t ret_digest[32], UpkErr *err)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        _cleanup_free_ uint8_t *buf = malloc(WRITE_CHUNK);
        uint64_t done = 0;
        unsigned n;

        if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return upk_err_oom(err);
        if (lseek(fd, 0, SEEK_SET) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "payload \"%s\": cannot seek: %m", p->name);
        for (;;) {
                ssize_t k = read(fd, buf, WRITE_CHUNK);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return upk_err(err, UPK_ERR_IO, -errno, "payload \"%s\": read error: %m", p->name);
                }
                if (k == 0)
                        break;
                if ((uint64_t)k > size - done)
                        return upk_err(err, UPK_ERR_IO, -EBUSY,
                                       "payload \"%s\": file %s grew while being read", p->name, p->file);
                if (EVP_DigestUpdate(md, buf, (size_t)k) != 1)
                        return upk_err(err, UPK_ERR_IO, -EIO, "SHA-256 update failed");
                if (a && archive_write_data(a, buf, (size_t)k) != k)
                        return upk_err(err, UPK_ERR_IO, -EIO,
                                       "cannot write payload \"%s\" to the bundle: %s", p->name,
                                       archive_error_string(a) ?: "unknown error");
                done += (uint64_t)k;
        }
        if (done != size)
                return upk_err(err, UPK_ERR_IO, -EBUSY, "payload \"%s\": file %s shrank while being read",
                               p->name, p->file);
        if (EVP_DigestFinal_ex(md, ret_digest, &n) != 1 || n != 32)
                return upk_err(err, UPK_ERR_IO, -EIO, "SHA-256 finalisation failed");
        return 0;
}

/* Decompress a payload file to learn its installed size and prove it is the declared compression. */
static int measure_decompressed(int fd, const ManifestPayload *p, uint64_t *ret_size, UpkErr *err)
{
        _cleanup_(archive_read_freep) struct archive *a = archive_read_new();
        struct archive_entry *e;
        uint64_t total = 0;
        int want, r;

        if (!a)
                return upk_err_oom(err);
        switch (p->compression) {
        case COMPRESSION_GZIP:
                r = archive_read_support_filter_gzip(a);
                want = ARCHIVE_FILTER_GZIP;
                break;
        case COMPRESSION_XZ:
                r = archive_read_support_filter_xz(a);
                want = ARCHIVE_FILTER_XZ;
                break;
        case COMPRESSION_ZSTD:
                r = archive_read_support_filter_zstd(a);
                want = ARCHIVE_FILTER_ZSTD;
                break;
        case COMPRESSION_NONE:
        case _COMPRESSION_MAX:
        case _COMPRESSION_INVALID:
        default:
                return upk_err(err, UPK_ERR_MANIFEST, -EINVAL,
                               "payload \"%s\": no decoder for compression %d", p->name,
                               (int)p->compression);
        }
        if (r != ARCHIVE_OK)
                return upk_err(err, UPK_ERR_IO, -EOPNOTSUPP, "libarchive has no built-in %s decoder",
                               compression_to_string(p->compression));
        if (lseek(fd, 0, SEEK_SET) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "payload \"%s\": cannot seek: %m", p->name);
        if (archive_read_support_format_raw(a) != ARCHIVE_OK ||
            archive_read_open_fd(a, fd, WRITE_CHUNK) != ARCHIVE_OK ||
            archive_read_next_header(a, &e) != ARCHIVE_OK || archive_filter_count(a) < 2 ||
            archive_filter_code(a, 0) != want)
                return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG, "payload \"%s\": %s is not %s data", p->name,
                               p->file, compression_to_string(p->compression));
        for (;;) {
                const void *buf;
                size_t len;
                la_int64_t off;
                r = archive_read_data_block(a, &buf, &len, &off);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_OK)
                        return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                                       "payload \"%s\": %s decompression of %s failed: %s", p->name,
                                       compression_to_string(p->compression), p->file,
                                       archive_error_string(a) ?: "unknown error");
                total += len;
                if (total > MANIFEST_PAYLOAD_SIZE_MAX)
                        return upk_err(err, UPK_ERR_PAYLOAD, -EFBIG,
                                       "payload \"%s\": decompresses to more than %llu bytes", p->name,
                                       (unsigned long long)MANIFEST_PAYLOAD_SIZE_MAX);
        }
        *ret_size = total;
        return 0;
}

static int fill_payload(const char *dir, ManifestPayload *p, UpkErr *err)
{
        _cleanup_close_ int fd = -EBADF;
        uint8_t digest[32];
        uint64_t size;
        char want[65], got[65];
        int r;

        fd = open_payload(dir, p, &size, err);
        if (fd < 0)
                return fd;
        r = stream_payload(fd, p, size, NULL, digest, err);
        if (r < 0)
                return r;
        if (p->has_digest && (p->size != size || memcmp(p->sha256, digest, 32) != 0)) {
                hex_encode(p->sha256, 32, want);
                hex_encode(digest, 32, got);
                return upk_err(err, UPK_ERR_MANIFEST, -EBADMSG,
                               "payload \"%s\": the template declares size %llu sha256 %s, but %s has size "
                               "%llu sha256 %s "
                               "(remove size and sha256 from the template to have them filled in)",
                               p->name, (unsigned long long)p->size, want, p->file, (unsigned long long)size,
                               got);
        }
        p->size = size;
        memcpy(p->sha256, digest, 32);
        p->has_digest = true;

        if (p->compression == COMPRESSION_NONE) {
                p->installed_size = size;
                p->has_installed_size = true;
                return 0;
        }
        r = measure_decompressed(fd, p, &size, err);
        if (r < 0)
                return r;
        if (p->has_installed_size && p->installed_size != size)
                return upk_err(err, UPK_ERR_MANIFEST, -EBADMSG,
                               "payload \"%s\": the template declares installed_size %llu, but %s "
                               "decompresses to %llu bytes",
                               p->name, (unsigned long long)p->installed_size, p->file,
                               (unsigned long long)size);
        p->installed_size = size;
        p->has_installed_size = true;
        return 0;
}

static int write_member(struct archive *a, const char *name, uint64_t size, UpkErr *err)
{
        struct archive_entry *e = archive_entry_new();
        int r;

        if (!e)
                return upk_err_oom(err);
        /* Fixed metadata: the same inputs give the same bytes. */
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)size);
        r = upk_archive_entry_set_mtime(e, 0);
        if (r < 0) {
                archive_entry_free(e);
                return upk_err(err, UPK_ERR_IO, r, "cannot set the time of \"%s\"", name);
        }
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        r = archive_write_header(a, e);
        archive_entry_free(e);
        if (r != ARCHIVE_OK)
                return upk_err(err, UPK_ERR_IO, -EIO, "cannot write the header of \"%s\": %s", name,
                               archive_error_string(a) ?: "unknown error");
        return 0;
}

static int write_small(struct archive *a, const char *name, const void *data, size_t size, UpkErr *err)
{
        int r = write_member(a, name, size, err);
        if (r < 0)
                return r;
        if (archive_write_data(a, data, size) != (la_ssize_t)size)
                return upk_err(err, UPK_ERR_IO, -EIO, "cannot write \"%s\": %s", name,
                               archive_error_string(a) ?: "unknown error");
        return 0;
}

static int write_bundle(int fd, const Manifest *m, const char *dir, const char *json, size_t json_size,
                        const uint8_t *sig, size_t sig_size, UpkErr *err)
{
        _cleanup_(archive_write_freep) struct archive *a = archive_write_new();
        int r;

        if (!a)
                return upk_err_oom(err);
        if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
            archive_write_add_filter_none(a) != ARCHIVE_OK || archive_write_open_fd(a, fd) != ARCHIVE_OK)
                return upk_err(err, UPK_ERR_IO, -EIO, "cannot start the tar stream: %s",
                               archive_error_string(a) ?: "unknown error");
        r = write_small(a, BUNDLE_MANIFEST_NAME, json, json_size, err);
        if (r < 0)
                return r;
        r = write_small(a, BUNDLE_SIGNATURE_NAME, sig, sig_size, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = &m->payloads[i];
                _cleanup_close_ int pfd = -EBADF;
                uint8_t digest[32];
                uint64_t size;

                pfd = open_payload(dir, p, &size, err);
                if (pfd < 0)
                        return pfd;
                if (size != p->size)
                        return upk_err(err, UPK_ERR_IO, -EBUSY,
                                       "payload \"%s\": %s changed while the bundle was made", p->name,
                                       p->file);
                r = write_member(a, p->file, p->size, err);
                if (r < 0)
                        return r;
                r = stream_payload(pfd, p, size, a, digest, err);
                if (r < 0)
                        return r;
                if (memcmp(digest, p->sha256, 32) != 0)
                        return upk_err(err, UPK_ERR_IO, -EBUSY,
                                       "payload \"%s\": %s changed while the bundle was made", p->name,
                                       p->file);
        }
        if (archive_write_close(a) != ARCHIVE_OK)
                return upk_err(err, UPK_ERR_IO, -EIO, "cannot finish the tar stream: %s",
                               archive_error_string(a) ?: "unknown error");
        return 0;
}

int bundle_create(const BundleCreateOptions *opts, UpkErr *err)
{
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_free_ char *template = NULL, *json = NULL, *dir_copy = NULL, *outdir = NULL, *tmp = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        const char *dir;
        size_t template_size, json_size, sig_size;
        int r;

        r = read_full_file(opts->manifest_path, MANIFEST_SIZE_MAX, &template, &template_size);
        if (r == -EFBIG)
                return upk_err(err, UPK_ERR_MANIFEST, r, "%s: larger than %u bytes", opts->manifest_path,
                               MANIFEST_SIZE_MAX);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: cannot read: %m", opts->manifest_path);
        r = manifest_parse(template, template_size, MANIFEST_PARSE_TEMPLATE, &m, err);
        if (r < 0)
                return upk_err_prefix(err, "%s", opts->manifest_path);

        if (opts->payload_dir)
                dir = opts->payload_dir;
        else {
                dir_copy = path_dirname(opts->manifest_path);
                if (!dir_copy)
                        return upk_err_oom(err);
                dir = dir_copy;
        }
        for (size_t i = 0; i < m->n_payloads; i++) {
                r = fill_payload(dir, &m->payloads[i], err);
                if (r < 0)
                        return r;
        }

        r = manifest_to_json(m, &json, &json_size);
        if (r < 0)
                return upk_err(err, UPK_ERR_MANIFEST, r, "cannot serialise the manifest: %m");
        /* What we sign must be what a device accepts. */
        {
                _cleanup_(manifest_freep) Manifest *check = NULL;
                r = manifest_parse(json, json_size, 0, &check, err);
                if (r < 0)
                        return upk_err_prefix(err, "the completed manifest");
        }
        r = signature_sign(json, json_size, opts->cert_path, opts->key_path, opts->chain_path, &sig,
                           &sig_size, err);
        if (r < 0)
                return upk_err_prefix(err, "signing");

        outdir = path_dirname(opts->output_path);
        if (!outdir)
                return upk_err_oom(err);
        tmp = strdup_printf("%s.XXXXXX", opts->output_path);
        if (!tmp)
                return upk_err_oom(err);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot create a temporary file: %m",
                               opts->output_path);
        r = write_bundle(fd, m, dir, json, json_size, sig, sig_size, err);
        if (r >= 0 && fchmod(fd, 0644) < 0)
                r = upk_err(err, UPK_ERR_IO, -errno, "%s: cannot set its mode: %m", tmp);
        if (r >= 0 && fsync(fd) < 0)
                r = upk_err(err, UPK_ERR_IO, -errno, "%s: cannot sync: %m", tmp);
        if (r >= 0 && rename(tmp, opts->output_path) < 0)
                r = upk_err(err, UPK_ERR_IO, -errno, "cannot rename %s to %s: %m", tmp, opts->output_path);
        if (r < 0) {
                (void)unlink(tmp);
                return r;
        }
        dfd = open(outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void)fsync(dfd);
        return 0;
}
