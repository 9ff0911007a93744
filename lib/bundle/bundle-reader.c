/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bundle.h"
#include "chunk-index.h"
#include "hash-pool.h"
#include "readahead.h"

#include "hexdecoct.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <zstd.h>

#define BUNDLE_READ_BLOCK  (512u * 1024u)
#define BUNDLE_TRAILER_MAX (1024u * 1024u)          /* zero padding after the end-of-archive blocks */
#define BUNDLE_TEE_MAX     (8u * BUNDLE_READ_BLOCK) /* stored bytes one decompressor step may pull */

#define TAR_BLOCK      512u
#define CHUNK_SPAN_MAX (1024u * 1024u) /* verified chunks handed on at once, at most */
/* hist holds the window and this many chunks after it (the window is moved back to its start when the
 * next chunk does not fit) ... */
#define HIST_CHUNKS 2u
/* ... or, for a delta, as many as it assembles ahead of the one handed out and hashes together on several
 * cores: BundleDeltaSource.ahead, at most this many. */
#define DELTA_AHEAD_MAX BUNDLE_DELTA_AHEAD_MAX

typedef enum MemberKind {
        MEMBER_MANIFEST,
        MEMBER_SIGNATURE,
        MEMBER_INDEX,
        MEMBER_PAYLOAD,
} MemberKind;

struct Bundle {
        struct archive *a;
        int fd;              /* owned, or -EBADF */
        ReadAhead *ra;       /* reads fd */
        BundleReadFunc func; /* or: */
        BundleNextFunc next;
        void *userdata;
        uint8_t *iobuf;       /* for `func` */
        int source_r;         /* -errno once the source failed */
        const uint8_t *chunk; /* the bytes of the last read ... */
        size_t chunk_len;     /* ... at position - chunk_len of the source */
        uint64_t position;

        char *manifest_raw;
        size_t manifest_size;
        uint8_t *sig_raw;
        size_t sig_size;
        Manifest *manifest;
        bool verified;
        SignatureSigner signer;

        unsigned member; /* members read so far */
        size_t next_payload;
        bool failed; /* sticky: nothing is read after an error */
        bool ended;  /* the stream ended after the last payload */

        /* the payload being read */
        const ManifestPayload *cur;
        bool cur_active;
        bool cur_outer_eof;
        bool cur_inner_eof;
        bool cur_tee;     /* stored mode of a compressed payload: decompress too, to check it */
        uint8_t *tee_buf; /* stored bytes the decompressor pulled, not yet handed out */
        size_t tee_len, tee_alloc;
        bool tee_handed;         /* tee_buf went out with the last call: start it anew */
        UpkErr first_err;        /* what made the reader stop, repeated to every later call */
        bool defer_hash;         /* see bundle_set_deferred_hashing() */
        bool skip_content_check; /* see bundle_set_content_check() */
        bool discard;            /* bundle_verify_rest(): the caller does not look at the bytes */
        EVP_MD_CTX *span_md;     /* for hash_spanning() */
        const void *pending_buf; /* the block handed out last, not hashed yet */
        size_t pending_len;
        EVP_MD_CTX *md;
        uint64_t cur_stored;
        uint64_t cur_out;
        struct archive *inner; /* decompressor, when reading decompressed */

        /* Format 2: the layout, the chunk index and the chunk being handed out. */
        uint64_t header_at[2]; /* where the manifest's and the signature's headers were */
        uint64_t next_header;  /* where the next member's header starts in the canonical layout */
        ChunkIndex *index;
        char *index_raw;
        size_t index_size;
        uint8_t *cbuf; /* one chunk's stored bytes when the source's block does not hold them whole */
        /* Zstd payloads: the content decoded so far, of which the last `window` bytes are kept as the
         * prefix of the next zstd block (upkeep-bundle(5), Blocks), followed by the chunk being decoded. */
        uint8_t *hist;
        size_t hist_len, hist_cap;
        ZSTD_DCtx *dctx;
        size_t cur_payload;
        uint64_t cur_chunk; /* the next chunk of the current payload */
        BundlePayloadMode cur_mode;
        const uint8_t *blk; /* what is left of the member's last block from libarchive */
        size_t blk_len;
        uint64_t *payload_at; /* format 2: where each payload's member data starts in the file */

        /* Delta reading (bundle_set_delta()). */
        bool delta;
        BundleDeltaSource dsrc;
        BundleDeltaStats dstats;
        uint64_t delta_stored_at; /* where the current chunk's stored bytes start in its member */
        const uint8_t *fbuf;      /* what is left of the current piece of fetched bytes ... */
        size_t flen;
        uint64_t foff; /* ... and its offset in the file */
        uint8_t *bbuf; /* one block's stored bytes, fetched */
        /* Zstd payloads: chunks of the slot's blocks (and zeros) assembled in hist after the one handed
         * out last, already hashed: ahead[i_ahead] is the current chunk while i_ahead < n_ahead. */
        struct {
                bool ok; /* read and its content hash matched */
                uint64_t local, zeros;
        } ahead[DELTA_AHEAD_MAX];
        size_t n_ahead, i_ahead, ahead_max;
        HashPool *pool;   /* created for the first batch of several chunks */
        bool pool_failed; /* no threads, or the pool failed: every batch is hashed here */
};

static bool is_format2(const Bundle *b)
{
        return b->manifest && b->manifest->format == 2;
}

static ssize_t fd_read(void *userdata, void *buf, size_t size)
{
        int fd = *(int *)userdata;

        for (;;) {
                ssize_t k = read(fd, buf, size);
                if (k >= 0)
                        return k;
                if (errno != EINTR)
                        return -errno;
        }
}

/* The source's next bytes: in place, or read into iobuf. */
static ssize_t source_pull(Bundle *b, const uint8_t **ret_buf)
{
        const void *buf = NULL;
        ssize_t k;

        if (b->next)
                k = b->next(b->userdata, &buf);
        else {
                k = b->func(b->userdata, b->iobuf, BUNDLE_READ_BLOCK);
                buf = b->iobuf;
        }
        if (k > 0) {
                b->position += (uint64_t)k;
                b->chunk = buf;
                b->chunk_len = (size_t)k;
                *ret_buf = buf;
        } else {
                /* The end or an error: the previous bytes were given back. */
                if (k < 0 && b->source_r == 0)
                        b->source_r = (int)k;
                b->chunk = NULL;
                b->chunk_len = 0;
        }
        return k;
}

static la_ssize_t outer_read_cb(struct archive *a, void *client, const void **ret_buf)
{
        Bundle *b = client;
        const uint8_t *buf = NULL;
        ssize_t k;

        /* libarchive is done with the previous block: it copies what it still needs. */
        k = source_pull(b, &buf);
        if (k < 0) {
                archive_set_error(a, (int)-k, "read error: %s", strerror((int)-k));
                return -1;
        }
        *ret_buf = buf;
        return k;
}

static int fail(Bundle *b, UpkErr *err, UpkErrKind kind, int r, const char *fmt, ...) _printf_(5, 6);
static int fail(Bundle *b, UpkErr *err, UpkErrKind kind, int r, const char *fmt, ...)
{
        char msg[UPK_ERR_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* Whatever libarchive made of it, a failed source is a read error, not a bad bundle. */
        if (b->source_r < 0) {
                kind = UPK_ERR_IO;
                r = b->source_r;
                snprintf(msg, sizeof(msg), "read error at byte %llu of the bundle: %s",
                         (unsigned long long)b->position, strerror(-r));
        }
        if (!b->failed)
                upk_err(&b->first_err, kind, r, "%s", msg);
        b->failed = true;
        return upk_err(err, kind, r, "%s", msg);
}

/* After a failure every call repeats it. */
static int failed_before(const Bundle *b, UpkErr *err)
{
        if (b->first_err.kind == UPK_ERR_NONE)
                return upk_err(err, UPK_ERR_IO, -EIO, "the bundle reader stopped at an earlier error");
        return upk_err(err, b->first_err.kind, b->first_err.code, "%s", b->first_err.msg);
}

static const char *member_name_expected(const Bundle *b, MemberKind kind)
{
        switch (kind) {
        case MEMBER_MANIFEST:
                return BUNDLE_MANIFEST_NAME;
        case MEMBER_SIGNATURE:
                return BUNDLE_SIGNATURE_NAME;
        case MEMBER_INDEX:
                return CHUNK_INDEX_NAME;
        case MEMBER_PAYLOAD:
                return b->manifest->payloads[b->next_payload].file;
        }
        return NULL;
}

static const char *entry_type_name(struct archive_entry *e)
{
        if (archive_entry_hardlink(e))
                return "a hard link";
        switch (archive_entry_filetype(e)) {
        case AE_IFREG:
                return NULL;
        case AE_IFLNK:
                return "a symbolic link";
        case AE_IFDIR:
                return "a directory";
        case AE_IFCHR:
                return "a character device";
        case AE_IFBLK:
                return "a block device";
        case AE_IFIFO:
                return "a FIFO";
        case AE_IFSOCK:
                return "a socket";
        default:
                return "not a regular file";
        }
}

/* Format 2: each member's header where the canonical layout puts it (a plain ustar header right after
 * the previous member's padded data), so that a chunk's bytes can be found in the file from the manifest
 * and the index alone. Before the manifest is parsed the positions are only noted. */
static int check_layout(Bundle *b, const char *name, la_int64_t at, UpkErr *err)
{
        if (!is_format2(b)) {
                if (b->member <= 2)
                        b->header_at[b->member - 1] = at < 0 ? UINT64_MAX : (uint64_t)at;
                return 0;
        }
        if (at < 0 || (uint64_t)at != b->next_header || archive_format(b->a) != ARCHIVE_FORMAT_TAR_USTAR)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: not canonical: member %u \"%s\" must be a plain ustar header at "
                            "byte %llu",
                            b->member, name, (unsigned long long)b->next_header);
        return 0;
}

/* Read the next tar header and check it is the member we expect here, a plain regular file. */
static int next_member(Bundle *b, MemberKind kind, uint64_t *ret_size, UpkErr *err)
{
        const char *want = member_name_expected(b, kind), *name, *type;
        struct archive_entry *e;
        int r;

        r = archive_read_next_header(b->a, &e);
        if (r == ARCHIVE_EOF)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: the bundle ends after %u member(s); member %u \"%s\" is missing",
                            b->member, b->member + 1, want);
        if (r < ARCHIVE_WARN && b->member == 0)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG, "bundle format: %s",
                            b->position == 0 ? "the file is empty, a bundle is a tar archive"
                                             : "not a tar archive (a bundle is a tar archive starting with "
                                               "manifest.json)");
        if (r < ARCHIVE_WARN)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: cannot read the header of member %u (expected \"%s\") at byte "
                            "%llu: %s",
                            b->member + 1, want, (unsigned long long)b->position,
                            archive_error_string(b->a) ?: "unknown error");
        b->member++;

        name = archive_entry_pathname(e);
        if (!name)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG, "bundle format: member %u has no name",
                            b->member);
        type = entry_type_name(e);
        if (type)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: member %u \"%s\" is %s; only regular files are allowed",
                            b->member, name, type);
        if (!filename_is_plain(name, MANIFEST_FILE_MAX))
                return fail(
                        b, err, UPK_ERR_FORMAT, -EBADMSG,
                        "bundle format: member %u name \"%s\" is not a plain file name (no '/', '..', or "
                        "control characters)",
                        b->member, name);
        if (!streq(name, want))
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: member %u is \"%s\", expected \"%s\"", b->member, name, want);
        if (archive_entry_sparse_count(e) > 0)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: member \"%s\" is a sparse file", name);
        if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG, "bundle format: member \"%s\" has no size",
                            name);

        r = check_layout(b, name, archive_read_header_position(b->a), err);
        if (r < 0)
                return r;
        b->next_header +=
                TAR_BLOCK + ((uint64_t)archive_entry_size(e) + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
        *ret_size = (uint64_t)archive_entry_size(e);
        return 0;
}

/* Read a whole small member (manifest or signature) into memory. */
static int read_small_member(Bundle *b, MemberKind kind, size_t max, char **ret, size_t *ret_size,
                             UpkErr *err)
{
        const char *name = member_name_expected(b, kind);
        _cleanup_free_ char *buf = NULL;
        uint64_t size;
        size_t got = 0;
        int r;

        r = next_member(b, kind, &size, err);
        if (r < 0)
                return r;
        if (size > max)
                return fail(b, err, UPK_ERR_FORMAT, -EFBIG,
                            "bundle format: member \"%s\" is %llu bytes, at most %zu allowed", name,
                            (unsigned long long)size, max);
        buf = malloc(size + 1);
        if (!buf)
                return fail(b, err, UPK_ERR_IO, -ENOMEM, "out of memory");
        while (got < size) {
                la_ssize_t k = archive_read_data(b->a, buf + got, size - got);
                if (k < 0)
                        return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                                    "bundle format: cannot read member \"%s\" at byte %llu: %s", name,
                                    (unsigned long long)b->position,
                                    archive_error_string(b->a) ?: "unknown error");
                if (k == 0)
                        return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                                    "bundle format: member \"%s\" ends after %zu of %llu bytes", name, got,
                                    (unsigned long long)size);
                got += (size_t)k;
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = (size_t)size;
        return 0;
}

/* Format 2: the layout so far, then chunks.idx: its size and hash checked against the signed manifest
 * before a byte of it is parsed; each payload's identity is the hash of its slice. */
static int open_index(Bundle *b, bool keep_raw, UpkErr *err)
{
        const Manifest *m = b->manifest;
        char *raw = NULL;
        UpkErr e = {};
        uint8_t digest[32];
        uint32_t chunk_max = 0, window_max = 0;
        _cleanup_free_ void *content = NULL;
        size_t size, content_size;
        bool zstd = false;
        int r;

        if (b->header_at[0] != 0 ||
            b->header_at[1] != TAR_BLOCK + (b->manifest_size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK ||
            archive_format(b->a) != ARCHIVE_FORMAT_TAR_USTAR)
                return fail(
                        b, err, UPK_ERR_FORMAT, -EBADMSG,
                        "bundle format: not canonical: manifest.json and manifest.json.sig must be plain "
                        "ustar members at bytes 0 and %llu",
                        (unsigned long long)(TAR_BLOCK +
                                             (b->manifest_size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK));
        r = read_small_member(b, MEMBER_INDEX, m->index_size, &raw, &size, err);
        if (r < 0)
                return r;
        b->index_raw = raw;
        b->index_size = size;
        if (size != m->index_size)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: member \"%s\" is %zu bytes, the manifest declares %llu",
                            CHUNK_INDEX_NAME, size, (unsigned long long)m->index_size);
        if (!SHA256((const uint8_t *)raw, size, digest))
                return fail(b, err, UPK_ERR_IO, -EIO, "%s: SHA-256 failed", CHUNK_INDEX_NAME);
        if (memcmp(digest, m->index_sha256, 32) != 0)
                return fail(b, err, UPK_ERR_PAYLOAD, -EBADMSG,
                            "%s: sha256 mismatch with the manifest's index.sha256", CHUNK_INDEX_NAME);
        r = chunk_index_decompress(raw, size, m, &content, &content_size, &e);
        if (r >= 0)
                r = chunk_index_parse(content, content_size, m, &b->index, &e);
        if (r < 0)
                return fail(b, err, e.kind, r, "%s", e.msg);
        if (!keep_raw) {
                free(b->index_raw);
                b->index_raw = NULL;
                b->index_size = 0;
        }
        for (size_t i = 0; i < m->n_payloads; i++) {
                ManifestPayload *p = &b->manifest->payloads[i];
                memcpy(p->sha256, b->index->identity[i], 32);
                p->has_digest = true;
                if (p->chunk_size > chunk_max)
                        chunk_max = p->chunk_size;
                if (p->chunk_compression == COMPRESSION_ZSTD) {
                        zstd = true;
                        if (p->window > window_max)
                                window_max = p->window;
                }
        }
        /* The canonical layout: each payload's header right after the previous member's padded data. */
        b->payload_at = calloc(m->n_payloads ?: 1, sizeof(uint64_t));
        if (!b->payload_at)
                return fail(b, err, UPK_ERR_IO, -ENOMEM, "out of memory");
        for (size_t i = 0, at = b->next_header; i < m->n_payloads; i++) {
                b->payload_at[i] = at + TAR_BLOCK;
                at += TAR_BLOCK + (m->payloads[i].size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
        }
        b->cbuf = malloc(chunk_max ?: 1);
        if (zstd) {
                b->hist_cap = (size_t)window_max + HIST_CHUNKS * (size_t)chunk_max;
                b->hist = malloc(b->hist_cap);
                b->dctx = ZSTD_createDCtx();
        }
        if (!b->cbuf || (zstd && (!b->hist || !b->dctx)))
                return fail(b, err, UPK_ERR_IO, -ENOMEM, "out of memory");
        return 0;
}

static int bundle_open_internal(Bundle *b, const BundleOpenOptions *opts, UpkErr *err)
{
        int r;

        if (!b->next)
                b->iobuf = malloc(BUNDLE_READ_BLOCK);
        b->a = archive_read_new();
        if ((!b->next && !b->iobuf) || !b->a)
                return upk_err_oom(err);
        if (archive_read_support_format_tar(b->a) != ARCHIVE_OK)
                return upk_err(err, UPK_ERR_IO, -EIO, "libarchive: %s", archive_error_string(b->a));
        r = archive_read_open(b->a, b, NULL, outer_read_cb, NULL);
        if (r != ARCHIVE_OK)
                return fail(
                        b, err, UPK_ERR_FORMAT, -EBADMSG, "bundle format: %s (%s)",
                        b->position == 0
                                ? "the file is empty, a bundle is a tar archive"
                                : "not a tar archive, a bundle is a tar archive starting with manifest.json",
                        archive_error_string(b->a) ?: "unknown error");

        r = read_small_member(b, MEMBER_MANIFEST, MANIFEST_SIZE_MAX, &b->manifest_raw, &b->manifest_size,
                              err);
        if (r < 0)
                return r;
        r = read_small_member(b, MEMBER_SIGNATURE, SIGNATURE_SIZE_MAX, (char **)&b->sig_raw, &b->sig_size,
                              err);
        if (r < 0)
                return r;

        /* Nothing in the manifest is looked at before its signature checked out. */
        if (opts && opts->keyring) {
                r = signature_verify(b->manifest_raw, b->manifest_size, b->sig_raw, b->sig_size,
                                     opts->keyring, opts->crl,
                                     opts->allow_any_eku ? SIGNATURE_ALLOW_ANY_EKU : 0, &b->signer, err);
                if (r < 0) {
                        b->failed = true;
                        return upk_err_prefix(err, "signature");
                }
                b->verified = true;
        }

        r = manifest_parse(b->manifest_raw, b->manifest_size, 0, &b->manifest, err);
        if (r < 0) {
                b->failed = true;
                return r;
        }
        if (is_format2(b)) {
                if (opts && opts->on_head_size)
                        opts->on_head_size(opts->head_userdata,
                                           b->next_header + TAR_BLOCK +
                                                   (b->manifest->index_size + TAR_BLOCK - 1) / TAR_BLOCK *
                                                           TAR_BLOCK);
                return open_index(b, opts && opts->keep_raw_index, err);
        }
        return 0;
}

static int bundle_open_source(BundleReadFunc func, BundleNextFunc next, void *userdata,
                              const BundleOpenOptions *opts, Bundle **ret, UpkErr *err)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return upk_err_oom(err);
        b->fd = -EBADF;
        b->func = func;
        b->next = next;
        b->userdata = userdata;
        r = bundle_open_internal(b, opts, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(b);
        return 0;
}

int bundle_open_func(BundleReadFunc func, void *userdata, const BundleOpenOptions *opts, Bundle **ret,
                     UpkErr *err)
{
        return bundle_open_source(func, NULL, userdata, opts, ret, err);
}

int bundle_open_next(BundleNextFunc next, void *userdata, const BundleOpenOptions *opts, Bundle **ret,
                     UpkErr *err)
{
        return bundle_open_source(NULL, next, userdata, opts, ret, err);
}

int bundle_open_fd(int fd, const BundleOpenOptions *opts, Bundle **ret, UpkErr *err)
{
        _cleanup_(bundle_freep) Bundle *b = NULL;
        struct stat st;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return upk_err_oom(err);
        b->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (b->fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot duplicate file descriptor: %m");
        if (fstat(b->fd, &st) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot stat the bundle: %m");
        if (S_ISREG(st.st_mode)) {
                /* The reads run in a thread of their own, ahead of the hashing. (Only from a file: a
                 * read there always returns, so the thread can always be stopped.) */
                r = readahead_new(b->fd, &b->ra);
                if (r < 0)
                        return upk_err(err, UPK_ERR_IO, r, "cannot start the read-ahead thread: %m");
                b->next = readahead_next;
                b->userdata = b->ra;
        } else {
                b->func = fd_read;
                b->userdata = &b->fd;
        }
        r = bundle_open_internal(b, opts, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(b);
        return 0;
}

int bundle_open_path(const char *path, const BundleOpenOptions *opts, Bundle **ret, UpkErr *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot open the bundle: %m");
        if (fstat(fd, &st) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot stat the bundle: %m");
        if (S_ISDIR(st.st_mode))
                return upk_err(err, UPK_ERR_IO, -EISDIR, "is a directory, not a bundle");
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        return bundle_open_fd(fd, opts, ret, err);
}

static void payload_reset(Bundle *b)
{
        if (b->inner) {
                archive_read_free(b->inner);
                b->inner = NULL;
        }
        EVP_MD_CTX_free(b->md);
        b->md = NULL;
        b->cur = NULL;
        b->cur_active = false;
        b->cur_outer_eof = false;
        b->cur_inner_eof = false;
        b->cur_tee = false;
        b->pending_buf = NULL;
        b->pending_len = 0;
        b->tee_len = 0;
        b->tee_handed = false;
        b->cur_stored = 0;
        b->cur_out = 0;
        b->cur_chunk = 0;
        b->blk = NULL;
        b->blk_len = 0;
        b->hist_len = 0;
        b->delta_stored_at = 0;
        b->n_ahead = b->i_ahead = 0;
}

Bundle *bundle_free(Bundle *b)
{
        if (!b)
                return NULL;
        payload_reset(b);
        if (b->a)
                archive_read_free(b->a);
        readahead_free(b->ra); /* before its fd */
        safe_close(b->fd);
        free(b->iobuf);
        free(b->tee_buf);
        free(b->manifest_raw);
        free(b->sig_raw);
        chunk_index_free(b->index);
        free(b->index_raw);
        free(b->cbuf);
        free(b->bbuf);
        hash_pool_free(b->pool);
        EVP_MD_CTX_free(b->span_md);
        free(b->payload_at);
        free(b->hist);
        ZSTD_freeDCtx(b->dctx);
        manifest_free(b->manifest);
        signature_signer_done(&b->signer);
        free(b);
        return NULL;
}

const Manifest *bundle_get_manifest(const Bundle *b)
{
        return b->manifest;
}

bool bundle_is_verified(const Bundle *b)
{
        return b->verified;
}

const SignatureSigner *bundle_get_signer(const Bundle *b)
{
        return b->verified ? &b->signer : NULL;
}

void bundle_get_raw(const Bundle *b, const void **ret_manifest, size_t *ret_manifest_size,
                    const void **ret_sig, size_t *ret_sig_size)
{
        if (ret_manifest)
                *ret_manifest = b->manifest_raw;
        if (ret_manifest_size)
                *ret_manifest_size = b->manifest_size;
        if (ret_sig)
                *ret_sig = b->sig_raw;
        if (ret_sig_size)
                *ret_sig_size = b->sig_size;
}

void bundle_get_raw_index(const Bundle *b, const void **ret, size_t *ret_size)
{
        *ret = b->index_raw;
        *ret_size = b->index_size;
}

const ChunkIndex *bundle_get_index(const Bundle *b)
{
        return b->index;
}

uint64_t bundle_get_position(const Bundle *b)
{
        return b->position;
}

static int chunk_fail_at(Bundle *b, uint64_t chunk, UpkErr *err, const char *what)
{
        const ManifestPayload *p = b->cur;
        uint64_t start = chunk * p->chunk_size;

        return fail(b, err, UPK_ERR_PAYLOAD, -EBADMSG, "payload \"%s\": chunk %llu (bytes %llu..%llu): %s",
                    p->name, (unsigned long long)chunk, (unsigned long long)start,
                    (unsigned long long)(start + manifest_chunk_length(p, chunk) - 1), what);
}

static int chunk_fail(Bundle *b, UpkErr *err, const char *what)
{
        return chunk_fail_at(b, b->cur_chunk, err, what);
}

/* Format 2: the content hash of a zstd chunk. */
static int check_content(Bundle *b, const uint8_t *content, size_t len, const uint8_t *want, uint64_t chunk,
                         UpkErr *err)
{
        uint8_t digest[32];

        if (!SHA256(content, len, digest))
                return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 failed", b->cur->name);
        if (memcmp(digest, want, 32) != 0)
                return chunk_fail_at(b, chunk, err, "content sha256 mismatch");
        return 0;
}

/* The next block of stored bytes of the current member, hashed and counted; 0 at its end. */
int bundle_hash_pending(Bundle *b, UpkErr *err)
{
        if (!b->pending_buf)
                return 0;
        if (EVP_DigestUpdate(b->md, b->pending_buf, b->pending_len) != 1)
                return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 update failed", b->cur->name);
        b->pending_buf = NULL;
        b->pending_len = 0;
        return 0;
}

bool bundle_has_pending_hash(const Bundle *b)
{
        return b->pending_buf != NULL;
}

void bundle_set_content_check(Bundle *b, bool check)
{
        b->skip_content_check = !check;
}

void bundle_set_deferred_hashing(Bundle *b, bool defer)
{
        b->defer_hash = defer;
}

static int outer_block(Bundle *b, const void **ret_buf, size_t *ret_len, UpkErr *err)
{
        const void *buf;
        size_t len;
        la_int64_t offset;
        int r;

        /* The block handed out last is hashed before its buffer can go. */
        r = bundle_hash_pending(b, err);
        if (r < 0)
                return r;
        if (b->cur_outer_eof)
                return 0;
        r = archive_read_data_block(b->a, &buf, &len, &offset);
        if (r == ARCHIVE_EOF) {
                b->cur_outer_eof = true;
                return 0;
        }
        if (r < ARCHIVE_OK)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: cannot read member \"%s\" after %llu of %llu bytes: %s",
                            b->cur->file, (unsigned long long)b->cur_stored,
                            (unsigned long long)b->cur->size, archive_error_string(b->a) ?: "unknown error");
        if (offset < 0 || (uint64_t)offset != b->cur_stored)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: member \"%s\" has a hole at byte %llu", b->cur->file,
                            (unsigned long long)b->cur_stored);
        if (len > b->cur->size - b->cur_stored)
                return fail(b, err, UPK_ERR_PAYLOAD, -EBADMSG,
                            "payload \"%s\": more than the %llu bytes the manifest declares", b->cur->name,
                            (unsigned long long)b->cur->size);
        if (!b->md)
                ; /* format 2: each chunk is checked on its own */
        else if (b->defer_hash && !b->inner) {
                b->pending_buf = buf;
                b->pending_len = len;
        } else if (EVP_DigestUpdate(b->md, buf, len) != 1)
                return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 update failed", b->cur->name);
        b->cur_stored += len;
        *ret_buf = buf;
        *ret_len = len;
        return 1;
}

/* The stored stream has ended: it must have exactly the declared size and digest. */
static int check_stored_digest(Bundle *b, UpkErr *err)
{
        uint8_t digest[EVP_MAX_MD_SIZE];
        char want[65], got[65];
        unsigned n = 0;
        int r;

        r = bundle_hash_pending(b, err);
        if (r < 0)
                return r;

        if (b->cur_stored != b->cur->size)
                return fail(b, err, UPK_ERR_PAYLOAD, -EBADMSG,
                            "payload \"%s\": %llu bytes read, the manifest declares %llu", b->cur->name,
                            (unsigned long long)b->cur_stored, (unsigned long long)b->cur->size);
        if (EVP_DigestFinal_ex(b->md, digest, &n) != 1 || n != 32)
                return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 finalisation failed",
                            b->cur->name);
        if (memcmp(digest, b->cur->sha256, 32) != 0) {
                hex_encode(b->cur->sha256, 32, want);
                hex_encode(digest, 32, got);
                return fail(b, err, UPK_ERR_PAYLOAD, -EBADMSG,
                            "payload \"%s\": sha256 mismatch (manifest %s, content %s)", b->cur->name, want,
                            got);
        }
        return 0;
}

static la_ssize_t inner_read_cb(struct archive *inner, void *client, const void **ret_buf)
{
        Bundle *b = client;
        const void *buf;
        size_t len = 0;
        int r;

        r = outer_block(b, &buf, &len, NULL);
        if (r < 0) {
                archive_set_error(inner, EIO, "%s", b->first_err.msg);
                return -1;
        }
        if (r == 0)
                return 0;
        if (b->cur_tee) {
                /* Keep a copy of what the decompressor consumed, to hand it out as stored bytes. */
                if (len > BUNDLE_TEE_MAX - b->tee_len) {
                        fail(b, NULL, UPK_ERR_IO, -ENOBUFS,
                             "payload \"%s\": the decompressor read too far ahead", b->cur->name);
                        archive_set_error(inner, ENOBUFS, "%s", b->first_err.msg);
                        return -1;
                }
                if (b->tee_len + len > b->tee_alloc) {
                        size_t n = b->tee_len + len;
                        uint8_t *p = realloc(b->tee_buf, n);
                        if (!p) {
                                fail(b, NULL, UPK_ERR_IO, -ENOMEM, "out of memory");
                                archive_set_error(inner, ENOMEM, "out of memory");
                                return -1;
                        }
                        b->tee_buf = p;
                        b->tee_alloc = n;
                }
                memcpy(b->tee_buf + b->tee_len, buf, len);
                b->tee_len += len;
        }
        *ret_buf = buf;
        return (la_ssize_t)len;
}

static int inner_failure(Bundle *b, UpkErr *err, int code, const char *msg);

static int inner_open(Bundle *b, UpkErr *err)
{
        char msg[UPK_ERR_MSG_MAX];
        const ManifestPayload *p = b->cur;
        struct archive_entry *e;
        int want_code, r;

        b->inner = archive_read_new();
        if (!b->inner)
                return fail(b, err, UPK_ERR_IO, -ENOMEM, "out of memory");
        switch (p->compression) {
        case COMPRESSION_GZIP:
                r = archive_read_support_filter_gzip(b->inner);
                want_code = ARCHIVE_FILTER_GZIP;
                break;
        case COMPRESSION_XZ:
                r = archive_read_support_filter_xz(b->inner);
                want_code = ARCHIVE_FILTER_XZ;
                break;
        case COMPRESSION_ZSTD:
                r = archive_read_support_filter_zstd(b->inner);
                want_code = ARCHIVE_FILTER_ZSTD;
                break;
        case COMPRESSION_NONE:
        case _COMPRESSION_MAX:
        case _COMPRESSION_INVALID:
        default:
                return fail(b, err, UPK_ERR_IO, -EINVAL, "payload \"%s\": no decompressor for this payload",
                            p->name);
        }
        /* ARCHIVE_WARN would mean an external helper program: refuse, we want it in-process. */
        if (r != ARCHIVE_OK)
                return fail(b, err, UPK_ERR_IO, -EOPNOTSUPP,
                            "payload \"%s\": libarchive has no built-in %s decoder", p->name,
                            compression_to_string(p->compression));
        if (archive_read_support_format_raw(b->inner) != ARCHIVE_OK ||
            archive_read_open(b->inner, b, NULL, inner_read_cb, NULL) != ARCHIVE_OK ||
            archive_read_next_header(b->inner, &e) != ARCHIVE_OK) {
                snprintf(msg, sizeof(msg), "payload \"%s\": cannot start %s decompression: %s", p->name,
                         compression_to_string(p->compression),
                         archive_error_string(b->inner) ?: "unknown error");
                return inner_failure(b, err, -EBADMSG, msg);
        }
        if (archive_filter_count(b->inner) < 2 || archive_filter_code(b->inner, 0) != want_code) {
                snprintf(msg, sizeof(msg), "payload \"%s\": stored bytes are not %s data", p->name,
                         compression_to_string(p->compression));
                return inner_failure(b, err, -EBADMSG, msg);
        }
        return 0;
}

/* After the end-of-archive blocks only zero padding may follow: nothing hides behind the end. */
static int check_trailer(Bundle *b, UpkErr *err)
{
        la_int64_t consumed = archive_filter_bytes(b->a, -1);
        uint64_t chunk_start = b->position - b->chunk_len, zeros = 0;

        if (consumed >= 0 && (uint64_t)consumed >= chunk_start && (uint64_t)consumed <= b->position) {
                size_t off = (size_t)((uint64_t)consumed - chunk_start);
                if (!memeqzero(b->chunk + off, b->chunk_len - off))
                        return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                                    "bundle format: data follows the end of the tar archive at byte %llu",
                                    (unsigned long long)consumed);
        }
        for (;;) {
                uint64_t at = b->position;
                const uint8_t *buf;
                ssize_t k = source_pull(b, &buf);

                if (k < 0)
                        return fail(b, err, UPK_ERR_IO, (int)k,
                                    "read error after the end of the tar archive: %s", strerror((int)-k));
                if (k == 0)
                        return 0;
                if (!memeqzero(buf, (size_t)k) || (zeros += (uint64_t)k) > BUNDLE_TRAILER_MAX)
                        return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                                    "bundle format: data follows the end of the tar archive at byte %llu",
                                    (unsigned long long)at);
        }
}

int bundle_next_payload(Bundle *b, BundlePayloadMode mode, const ManifestPayload **ret, UpkErr *err)
{
        const ManifestPayload *p;
        struct archive_entry *e;
        uint64_t size;
        int r;

        if (b->failed)
                return failed_before(b, err);
        if (b->cur_active) {
                const void *buf;
                size_t len;
                while ((r = bundle_read_block(b, &buf, &len, err)) > 0)
                        ;
                if (r < 0)
                        return r;
        }
        if (b->ended)
                return 0;

        if (b->delta) {
                /* The members are where the canonical layout puts them; their headers and the
                 * archive's end were not fetched. */
                if (b->next_payload >= b->manifest->n_payloads) {
                        b->ended = true;
                        return 0;
                }
                if (mode != BUNDLE_PAYLOAD_DECOMPRESSED)
                        return fail(b, err, UPK_ERR_IO, -EINVAL, "a delta reads payloads decompressed only");
                p = &b->manifest->payloads[b->next_payload];
                payload_reset(b);
                b->cur = p;
                b->cur_active = true;
                b->cur_payload = b->next_payload++;
                b->cur_mode = mode;
                if (ret)
                        *ret = p;
                return 1;
        }

        if (b->next_payload >= b->manifest->n_payloads) {
                r = archive_read_next_header(b->a, &e);
                if (r == ARCHIVE_EOF && is_format2(b) &&
                    archive_read_header_position(b->a) != (la_int64_t)b->next_header)
                        return fail(
                                b, err, UPK_ERR_FORMAT, -EBADMSG,
                                "bundle format: not canonical: the end-of-archive blocks must start at byte "
                                "%llu",
                                (unsigned long long)b->next_header);
                if (r == ARCHIVE_EOF) {
                        r = check_trailer(b, err);
                        if (r < 0)
                                return r;
                        b->ended = true;
                        return 0;
                }
                if (r < ARCHIVE_WARN)
                        return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                                    "bundle format: unreadable data after the last payload at byte %llu: %s",
                                    (unsigned long long)b->position,
                                    archive_error_string(b->a) ?: "unknown error");
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: extra member %u \"%s\" after the last payload", b->member + 1,
                            archive_entry_pathname(e) ?: "(no name)");
        }

        p = &b->manifest->payloads[b->next_payload];
        r = next_member(b, MEMBER_PAYLOAD, &size, err);
        if (r < 0)
                return r;
        if (size != p->size)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: member \"%s\" is %llu bytes, the manifest declares %llu for "
                            "payload \"%s\"",
                            p->file, (unsigned long long)size, (unsigned long long)p->size, p->name);

        payload_reset(b);
        b->cur = p;
        b->cur_active = true;
        b->cur_payload = b->next_payload++;
        b->cur_mode = mode;
        if (is_format2(b)) {
                if (ret)
                        *ret = p;
                return 1;
        }
        b->md = EVP_MD_CTX_new();
        if (!b->md || EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1)
                return fail(b, err, UPK_ERR_IO, -ENOMEM, "cannot set up SHA-256");
        if (p->compression != COMPRESSION_NONE) {
                /* Stored mode checks the compressed stream too, handing out the bytes it consumed. */
                b->cur_tee = mode == BUNDLE_PAYLOAD_STORED;
                r = inner_open(b, err);
                if (r < 0)
                        return r;
        }
        if (ret)
                *ret = p;
        return 1;
}

/* The decompressor failed or disagreed with the manifest. If the stored bytes do not match their
 * digest that is the real reason (a damaged bundle); otherwise the signed payload itself is bad. */
static int inner_failure(Bundle *b, UpkErr *err, int code, const char *msg)
{
        const void *buf;
        size_t len;
        int r;

        if (b->failed)
                return failed_before(b, err);
        while ((r = outer_block(b, &buf, &len, err)) > 0)
                ;
        if (r < 0)
                return r;
        r = check_stored_digest(b, err);
        if (r < 0)
                return r;
        return fail(b, err, UPK_ERR_PAYLOAD, code, "%s", msg);
}

/* One step of the decompressor: 1 with a block, 0 at its end with installed_size met. */
static int inner_step(Bundle *b, const void **ret_buf, size_t *ret_len, UpkErr *err)
{
        const ManifestPayload *p = b->cur;
        char msg[UPK_ERR_MSG_MAX];
        const void *buf;
        size_t len;
        la_int64_t offset;
        int r;

        for (;;) {
                r = archive_read_data_block(b->inner, &buf, &len, &offset);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_OK) {
                        snprintf(msg, sizeof(msg),
                                 "payload \"%s\": %s decompression failed after %llu bytes: %s", p->name,
                                 compression_to_string(p->compression), (unsigned long long)b->cur_out,
                                 archive_error_string(b->inner) ?: "unknown error");
                        return inner_failure(b, err, -EBADMSG, msg);
                }
                if (len == 0)
                        continue;
                if (len > p->installed_size - b->cur_out) {
                        snprintf(msg, sizeof(msg),
                                 "payload \"%s\": decompresses to more than installed_size %llu bytes",
                                 p->name, (unsigned long long)p->installed_size);
                        return inner_failure(b, err, -EFBIG, msg);
                }
                b->cur_out += len;
                *ret_buf = buf;
                *ret_len = len;
                return 1;
        }
        if (b->cur_out != p->installed_size) {
                snprintf(msg, sizeof(msg),
                         "payload \"%s\": decompresses to %llu bytes, the manifest declares installed_size "
                         "%llu",
                         p->name, (unsigned long long)b->cur_out, (unsigned long long)p->installed_size);
                return inner_failure(b, err, -EBADMSG, msg);
        }
        b->cur_inner_eof = true;
        return 0;
}

/* Decompressed mode: the decompressor's blocks; then whatever follows the compressed stream in the
 * member is still read and hashed. */
static int decompressed_block(Bundle *b, const void **ret_buf, size_t *ret_len, UpkErr *err)
{
        const void *buf;
        size_t len;
        int r;

        if (!b->cur_inner_eof) {
                r = inner_step(b, ret_buf, ret_len, err);
                if (r != 0)
                        return r;
        }
        while ((r = outer_block(b, &buf, &len, err)) > 0)
                ;
        return r;
}

/* Stored mode of a compressed payload: run the decompressor (discarding its output) and hand out
 * the stored bytes it consumed; after its end, the rest of the member as it is. */
static int tee_block(Bundle *b, const void **ret_buf, size_t *ret_len, UpkErr *err)
{
        const void *buf;
        size_t len;
        int r;

        if (b->tee_handed) {
                b->tee_len = 0;
                b->tee_handed = false;
        }
        /* Opening the decompressor already consumed the first bytes. */
        while (b->tee_len == 0 && !b->cur_inner_eof) {
                r = inner_step(b, &buf, &len, err);
                if (r < 0)
                        return r;
        }
        if (b->tee_len > 0) {
                *ret_buf = b->tee_buf;
                *ret_len = b->tee_len;
                b->tee_handed = true;
                return 1;
        }
        b->cur_tee = false; /* the rest is read directly */
        return outer_block(b, ret_buf, ret_len, err);
}

/* Format 2: the member's next block from the source into blk and blk_len (the current one used up): 0,
 * or -EBADMSG when the member ends first, inside the current chunk. */
static int member_next_block(Bundle *b, UpkErr *err)
{
        const void *buf;
        int r;

        r = outer_block(b, &buf, &b->blk_len, err);
        if (r < 0)
                return r;
        if (r == 0)
                return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                            "bundle format: member \"%s\" ends inside chunk %llu", b->cur->file,
                            (unsigned long long)b->cur_chunk);
        b->blk = buf;
        return 0;
}

/* Format 2: the next `n` stored bytes of the member in one piece: in place when the source's block
 * holds them whole (valid until the next read), else copied into cbuf. */
static int gather(Bundle *b, size_t n, const uint8_t **ret, UpkErr *err)
{
        size_t have = 0;
        int r;

        if (b->blk_len >= n) {
                *ret = b->blk;
                b->blk += n;
                b->blk_len -= n;
                return 0;
        }
        while (have < n) {
                size_t k;

                if (b->blk_len == 0) {
                        r = member_next_block(b, err);
                        if (r < 0)
                                return r;
                        if (have == 0 && b->blk_len >= n)
                                return gather(b, n, ret, err);
                }
                k = n - have < b->blk_len ? n - have : b->blk_len;
                memcpy(b->cbuf + have, b->blk, k);
                have += k;
                b->blk += k;
                b->blk_len -= k;
        }
        *ret = b->cbuf;
        return 0;
}

/* Format 2, bytes nobody looks at: the SHA-256 of the next `n` stored bytes of the member, hashed
 * across the source's blocks as they come. */
static int hash_spanning(Bundle *b, size_t n, uint8_t digest[32], UpkErr *err)
{
        if (!b->span_md && !(b->span_md = EVP_MD_CTX_new()))
                return fail(b, err, UPK_ERR_IO, -ENOMEM, "out of memory");
        if (EVP_DigestInit_ex(b->span_md, EVP_sha256(), NULL) != 1)
                return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 failed", b->cur->name);
        while (n > 0) {
                size_t k;

                if (b->blk_len == 0) {
                        int r = member_next_block(b, err);

                        if (r < 0)
                                return r;
                }
                k = n < b->blk_len ? n : b->blk_len;
                if (EVP_DigestUpdate(b->span_md, b->blk, k) != 1)
                        return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 failed",
                                    b->cur->name);
                b->blk += k;
                b->blk_len -= k;
                n -= k;
        }
        if (EVP_DigestFinal_ex(b->span_md, digest, NULL) != 1)
                return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 failed", b->cur->name);
        return 0;
}

/* Format 2: a chunk stored as is was verified in place, in the source's block; the chunks after it that
 * are stored as is and lie whole in the same block are verified too and handed on with it as one span
 * (up to CHUNK_SPAN_MAX), so that the caller's cost per block is not paid for every small chunk. A chunk
 * that fails ends the reading: nothing of the span is handed on. */
static int extend_span(Bundle *b, size_t *ret_len, UpkErr *err)
{
        const ManifestPayload *p = b->cur;
        uint8_t digest[32];

        while (b->cur_chunk < p->chunk_count && *ret_len < CHUNK_SPAN_MAX) {
                const ChunkEntry *e = &b->index->entries[b->index->first[b->cur_payload] + b->cur_chunk];

                if (e->stored_len != manifest_chunk_length(p, b->cur_chunk) || b->blk_len < e->stored_len ||
                    *ret_len + e->stored_len > CHUNK_SPAN_MAX)
                        break;
                if (!SHA256(b->blk, e->stored_len, digest))
                        return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 failed", p->name);
                if (memcmp(digest, e->stored_sha256, 32) != 0)
                        return chunk_fail(b, err, "sha256 mismatch");
                b->blk += e->stored_len;
                b->blk_len -= e->stored_len;
                *ret_len += e->stored_len;
                b->cur_out += e->stored_len;
                b->cur_chunk++;
        }
        return 1;
}

/* Format 2, zstd payloads: make room for one more chunk of content after the window's prefix. */
static void hist_make_room(Bundle *b, uint32_t len)
{
        size_t keep = b->cur->window < b->hist_len ? b->cur->window : b->hist_len;

        if (b->hist_len + len <= b->hist_cap)
                return;
        memmove(b->hist, b->hist + b->hist_len - keep, keep);
        b->hist_len = keep;
}

/* Format 2: decode block `j` of the current payload (its entry `be`, its stored bytes at `stored`) to
 * `out`, which follows the content before it in hist for a zstd block; 0, or -EBADMSG for a frame that is
 * not one frame declaring the block's length or does not decode to exactly that. */
static int decode_block(Bundle *b, const BlockEntry *be, uint64_t j, const uint8_t *stored, uint8_t *out)
{
        const ManifestPayload *p = b->cur;
        uint32_t len = manifest_block_length(p, j);
        size_t n;

        switch (be->kind) {
        case BLOCK_KIND_STORED:
                memcpy(out, stored, len);
                return 0;
        case BLOCK_KIND_ZERO:
                memset(out, 0, len);
                return 0;
        case BLOCK_KIND_ZSTD: {
                size_t before = (size_t)(out - b->hist), plen = p->window < before ? p->window : before;

                if (ZSTD_getFrameContentSize(stored, be->stored_len) != len ||
                    ZSTD_findFrameCompressedSize(stored, be->stored_len) != be->stored_len)
                        return -EBADMSG;
                if (ZSTD_isError(ZSTD_DCtx_refPrefix(b->dctx, plen ? out - plen : NULL, plen)))
                        return -ENOMEM;
                n = ZSTD_decompressDCtx(b->dctx, out, len, stored, be->stored_len);
                if (ZSTD_isError(n) || n != len)
                        return -EPROTO;
                return 0;
        }
        default: /* the index parser refuses any other kind */
                return -EBADMSG;
        }
}

static int decode_failed(Bundle *b, int r, UpkErr *err)
{
        if (r == -ENOMEM)
                return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": zstd: cannot set the prefix",
                            b->cur->name);
        return chunk_fail(b, err,
                          r == -EPROTO ? "a zstd block does not decompress to its length"
                                       : "a block is not one zstd frame declaring its length");
}

/* Format 2, zstd payloads: decode the blocks of a chunk whose stored bytes checked out, to the end of
 * hist; each zstd frame with the prefix of the content before it. */
static int decode_blocks(Bundle *b, const ChunkEntry *e, const uint8_t *stored, UpkErr *err)
{
        const ManifestPayload *p = b->cur;
        const BlockEntry *blocks = b->index->blocks;

        for (uint32_t k = 0; k < e->n_blocks; k++) {
                const BlockEntry *be = &blocks[e->first_block + k];
                uint64_t j = b->cur_chunk * (p->chunk_size / p->block_size) + k;
                int r = decode_block(b, be, j, stored, b->hist + b->hist_len);

                if (r < 0)
                        return decode_failed(b, r, err);
                stored += be->stored_len;
                b->hist_len += manifest_block_length(p, j);
        }
        return 0;
}

/* Delta: `n` fetched bytes at file offset `at` into `dst`; the pieces' bytes before `at` are gaps. */
static int delta_take(Bundle *b, uint64_t at, uint8_t *dst, size_t n, UpkErr *err)
{
        while (n > 0) {
                size_t k;

                if (b->flen == 0 || b->foff + b->flen <= at) {
                        /* The end of the last piece: the next may not start before it. */
                        uint64_t end = b->foff + b->flen, off = 0;
                        const void *buf;
                        UpkErr e = {};
                        ssize_t got = b->dsrc.next_fetched(b->dsrc.userdata, &off, &buf, &e);

                        b->flen = 0;
                        if (got < 0)
                                return fail(b, err, e.kind != UPK_ERR_NONE ? e.kind : UPK_ERR_NETWORK,
                                            (int)got, "%s", e.msg[0] ? e.msg : strerror((int)-got));
                        if (got == 0)
                                return fail(b, err, UPK_ERR_NETWORK, -EPROTO,
                                            "payload \"%s\": the fetched ranges end before byte %llu of the "
                                            "bundle",
                                            b->cur->name, (unsigned long long)at);
                        if (off < end)
                                return fail(b, err, UPK_ERR_NETWORK, -EPROTO,
                                            "payload \"%s\": the fetched ranges go back to byte %llu after "
                                            "byte %llu of the bundle",
                                            b->cur->name, (unsigned long long)off, (unsigned long long)end);
                        if ((uint64_t)got > UINT64_MAX - off)
                                return fail(b, err, UPK_ERR_NETWORK, -EPROTO,
                                            "payload \"%s\": a fetched piece at byte %llu of the bundle "
                                            "ends past the largest offset",
                                            b->cur->name, (unsigned long long)off);
                        b->foff = off;
                        b->fbuf = buf;
                        b->flen = (size_t)got;
                        continue;
                }
                if (b->foff > at)
                        return fail(b, err, UPK_ERR_NETWORK, -EPROTO,
                                    "payload \"%s\": the fetched ranges skip byte %llu of the bundle",
                                    b->cur->name, (unsigned long long)at);
                b->fbuf += at - b->foff;
                b->flen -= (size_t)(at - b->foff);
                b->foff = at;
                k = n < b->flen ? n : b->flen;
                memcpy(dst, b->fbuf, k);
                b->fbuf += k;
                b->flen -= k;
                b->foff += k;
                dst += k;
                at += k;
                n -= k;
                b->dstats.fetched_bytes += k;
        }
        return 0;
}

static int check_stored(Bundle *b, const ChunkEntry *e, const uint8_t *stored, bool *ret_ok, UpkErr *err)
{
        uint8_t digest[32];

        if (!SHA256(stored, e->stored_len, digest))
                return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 failed", b->cur->name);
        *ret_ok = memcmp(digest, e->stored_sha256, 32) == 0;
        return 0;
}

/* Delta: the chunk's content, from the slot's blocks, zeros and fetched blocks, at `out` (in hist after
 * the content before it for zstd payloads, cbuf otherwise); false when a local block could not be read
 * or a fetched zstd block did not decode: the chunk is then fetched whole. */
static int delta_assemble(Bundle *b, const ChunkEntry *e, const uint8_t *origin, const int32_t *local_at,
                          uint64_t j0, uint64_t at, uint8_t *out, bool *ret_ok, UpkErr *err)
{
        const ManifestPayload *p = b->cur;
        int r;

        *ret_ok = true;
        for (uint32_t k = 0; k < e->n_blocks; k++) {
                const BlockEntry *be = &b->index->blocks[e->first_block + k];
                uint64_t j = j0 + k;
                size_t len = manifest_block_length(p, j);

                switch (origin[j]) {
                case BUNDLE_BLOCK_LOCAL: {
                        uint32_t n = 1;

                        /* A run of blocks that lie one after the other in the slot too: one read. */
                        while (k + n < e->n_blocks && origin[j + n] == BUNDLE_BLOCK_LOCAL &&
                               local_at[j] >= 0 && local_at[j + n] >= 0 &&
                               (uint64_t)local_at[j + n] - (uint64_t)local_at[j] == n) {
                                at += b->index->blocks[e->first_block + k + n - 1].stored_len;
                                len += manifest_block_length(p, j + n);
                                n++;
                        }
                        if (local_at[j] < 0 ||
                            b->dsrc.read_local(b->dsrc.userdata, b->cur_payload, (uint64_t)local_at[j], out,
                                               len) != (ssize_t)len)
                                *ret_ok = false;
                        k += n - 1;
                        be = &b->index->blocks[e->first_block + k];
                        break;
                }
                case BUNDLE_BLOCK_FETCH:
                        r = delta_take(b, at, b->bbuf, be->stored_len, err);
                        if (r < 0)
                                return r;
                        if (*ret_ok && decode_block(b, be, j, b->bbuf, out) < 0)
                                *ret_ok = false;
                        break;
                default:
                        memset(out, 0, len);
                        break;
                }
                at += be->stored_len;
                out += len;
        }
        return 0;
}

/* Delta: how the blocks of chunk `c` of the current payload come: bytes from the slot and zeros. */
static void delta_count(Bundle *b, uint64_t c, bool *ret_all_fetched, uint64_t *ret_local,
                        uint64_t *ret_zeros)
{
        const ManifestPayload *p = b->cur;
        const ChunkEntry *e = &b->index->entries[b->index->first[b->cur_payload] + c];
        const uint8_t *origin = b->dsrc.origin[b->cur_payload];
        uint64_t j0 = c * (p->chunk_size / p->block_size), local = 0, zeros = 0;
        bool all_fetched = true;

        for (uint32_t k = 0; k < e->n_blocks; k++) {
                uint32_t blen = manifest_block_length(p, j0 + k);

                if (origin[j0 + k] == BUNDLE_BLOCK_LOCAL) {
                        all_fetched = false;
                        local += blen;
                } else if (origin[j0 + k] == BUNDLE_BLOCK_ZERO)
                        zeros += blen;
        }
        *ret_all_fetched = all_fetched;
        *ret_local = local;
        *ret_zeros = zeros;
}

/* Whether chunk `c` is made of the slot's blocks and zeros only, at least one from the slot: its content
 * does not depend on the content before it, nor on fetched bytes. */
static bool delta_slot_only(Bundle *b, uint64_t c)
{
        bool all_fetched;
        uint64_t local, zeros;

        delta_count(b, c, &all_fetched, &local, &zeros);
        return !all_fetched && local + zeros == manifest_chunk_length(b->cur, c);
}

/* Delta, zstd payloads: the current chunk and up to DELTA_AHEAD_MAX - 1 after it that are made of the
 * slot's blocks, read one after the other into hist and their content hashes checked on several cores.
 * They are handed out from there in order; one whose blocks did not match is fetched whole then, in its
 * place (the chunks after it do not depend on its content). */
static int delta_prepare(Bundle *b, UpkErr *err)
{
        const ManifestPayload *p = b->cur;
        const uint8_t *origin = b->dsrc.origin[b->cur_payload];
        const int32_t *local_at = b->dsrc.local_at[b->cur_payload];
        uint64_t per = p->chunk_size / p->block_size,
                 at = b->payload_at[b->cur_payload] + b->delta_stored_at;
        HashJob jobs[DELTA_AHEAD_MAX];
        size_t n = 0, total = 0, slot_of[DELTA_AHEAD_MAX], n_jobs = 0;
        uint8_t *out;
        int r;

        while (n < b->ahead_max && b->cur_chunk + n < p->chunk_count &&
               delta_slot_only(b, b->cur_chunk + n)) {
                total += manifest_chunk_length(p, b->cur_chunk + n);
                n++;
        }
        hist_make_room(b, (uint32_t)total); /* room for ahead_max chunks after the window */
        out = b->hist + b->hist_len;
        for (size_t i = 0; i < n; i++) {
                uint64_t c = b->cur_chunk + i;
                const ChunkEntry *e = &b->index->entries[b->index->first[b->cur_payload] + c];
                uint32_t len = manifest_chunk_length(p, c);
                bool all_fetched, ok;

                delta_count(b, c, &all_fetched, &b->ahead[i].local, &b->ahead[i].zeros);
                r = delta_assemble(b, e, origin, local_at, c * per, at, out, &ok, err);
                if (r < 0)
                        return r;
                b->ahead[i].ok = ok;
                if (ok) {
                        jobs[n_jobs] = (HashJob){ .data = out, .size = len };
                        slot_of[n_jobs++] = i;
                }
                at += e->stored_len;
                out += len;
        }
        if (n_jobs > 1 && !b->pool && !b->pool_failed)
                b->pool_failed = hash_pool_new(hash_pool_threads_default(), &b->pool) < 0;
        r = b->pool ? hash_pool_run(b->pool, jobs, n_jobs) : -EAGAIN;
        if (r < 0 && b->pool) {
                /* A job failed on the pool: it is not used again, and this batch is hashed here. */
                b->pool = hash_pool_free(b->pool);
                b->pool_failed = true;
        }
        if (r < 0) {
                /* No pool (none needed, or no thread could be started): the same digests, one by one. */
                r = 0;
                for (size_t i = 0; i < n_jobs && r >= 0; i++)
                        if (!SHA256(jobs[i].data, jobs[i].size, jobs[i].digest))
                                r = -EIO;
        }
        if (r < 0)
                return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 failed", p->name);
        for (size_t i = 0; i < n_jobs; i++) {
                const ChunkEntry *e =
                        &b->index->entries[b->index->first[b->cur_payload] + b->cur_chunk + slot_of[i]];

                b->ahead[slot_of[i]].ok = memcmp(jobs[i].digest, e->content_sha256, 32) == 0;
        }
        b->n_ahead = n;
        b->i_ahead = 0;
        return 0;
}

/* Delta: the next chunk (see bundle_set_delta()). */
static int delta_chunk(Bundle *b, const void **ret_buf, size_t *ret_len, UpkErr *err)
{
        const ManifestPayload *p = b->cur;
        const ChunkEntry *e = &b->index->entries[b->index->first[b->cur_payload] + b->cur_chunk];
        const uint8_t *origin = b->dsrc.origin[b->cur_payload];
        const int32_t *local_at = b->dsrc.local_at[b->cur_payload];
        uint64_t j0 = b->cur_chunk * (p->chunk_size / p->block_size);
        uint64_t at = b->payload_at[b->cur_payload] + b->delta_stored_at;
        uint32_t len = manifest_chunk_length(p, b->cur_chunk);
        bool zstd = p->chunk_compression == COMPRESSION_ZSTD, all_fetched, ok = false;
        uint64_t local, zeros;
        uint8_t *content;
        uint8_t digest[32];
        int r;

        if (zstd && b->i_ahead == b->n_ahead && delta_slot_only(b, b->cur_chunk)) {
                r = delta_prepare(b, err);
                if (r < 0)
                        return r;
        }
        if (b->i_ahead < b->n_ahead) {
                /* Assembled and hashed by delta_prepare(), in place in hist. */
                content = b->hist + b->hist_len;
                ok = b->ahead[b->i_ahead].ok;
                local = b->ahead[b->i_ahead].local;
                zeros = b->ahead[b->i_ahead].zeros;
                b->i_ahead++;
                if (ok) {
                        b->dstats.local_bytes += local;
                        b->dstats.zero_bytes += zeros;
                        goto done;
                }
                goto refetch;
        }
        if (zstd)
                hist_make_room(b, len);
        content = zstd ? b->hist + b->hist_len : b->cbuf;
        delta_count(b, b->cur_chunk, &all_fetched, &local, &zeros);
        if (all_fetched) {
                /* Every stored byte of the chunk was fetched (zero blocks store none): checked as stored
                 * bytes before anything decodes them, as in a full read. */
                r = delta_take(b, at, b->cbuf, e->stored_len, err);
                if (r < 0)
                        return r;
                r = check_stored(b, e, b->cbuf, &ok, err);
                if (r < 0)
                        return r;
        } else {
                r = delta_assemble(b, e, origin, local_at, j0, at, content, &ok, err);
                if (r < 0)
                        return r;
                if (ok) {
                        if (!SHA256(content, len, digest))
                                return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 failed",
                                            p->name);
                        ok = memcmp(digest, e->content_sha256, 32) == 0;
                }
                if (ok) {
                        b->dstats.local_bytes += local;
                        b->dstats.zero_bytes += zeros;
                        goto done;
                }
        }
refetch:
        if (!ok) {
                /* The slot's blocks were not what the index says, or the fetched bytes were wrong: the
                 * chunk's stored bytes, fetched whole and checked. */
                UpkErr e2 = {};

                r = b->dsrc.fetch_range(b->dsrc.userdata, b->cur_payload, at, e->stored_len, b->cbuf, &e2);
                if (r < 0)
                        return fail(b, err, e2.kind != UPK_ERR_NONE ? e2.kind : UPK_ERR_NETWORK, r, "%s",
                                    e2.msg[0] ? e2.msg : strerror(-r));
                b->dstats.refetched_chunks++;
                b->dstats.refetched_bytes += e->stored_len;
                r = check_stored(b, e, b->cbuf, &ok, err);
                if (r < 0)
                        return r;
                if (!ok)
                        return chunk_fail(b, err, "sha256 mismatch");
        }
        b->dstats.zero_bytes += zeros;
        if (zstd) {
                /* from cbuf's checked stored bytes to the end of hist; otherwise cbuf is the content */
                r = decode_blocks(b, e, b->cbuf, err);
                if (r < 0)
                        return r;
        }
        goto handed;
done:
        if (zstd)
                b->hist_len += len;
handed:
        *ret_buf = content;
        *ret_len = len;
        b->delta_stored_at += e->stored_len;
        b->cur_out += len;
        b->cur_chunk++;
        return 1;
}

int bundle_set_delta(Bundle *b, const BundleDeltaSource *src, UpkErr *err)
{
        uint32_t block_max = 0, chunk_max = 0, window_max = 0;

        if (!is_format2(b) || !b->index)
                return upk_err(err, UPK_ERR_FORMAT, -EINVAL, "a delta needs a bundle of format 2");
        if (b->failed)
                return failed_before(b, err);
        if (b->next_payload > 0 || b->cur_active)
                return upk_err(err, UPK_ERR_IO, -EBUSY, "a delta must be set before the first payload");
        for (size_t i = 0; i < b->manifest->n_payloads; i++) {
                const ManifestPayload *p = &b->manifest->payloads[i];

                if (p->block_size > block_max)
                        block_max = p->block_size;
                if (p->chunk_size > chunk_max)
                        chunk_max = p->chunk_size;
                if (p->chunk_compression == COMPRESSION_ZSTD && p->window > window_max)
                        window_max = p->window;
        }
        b->ahead_max = src->ahead ?: hash_pool_threads_default() + 1;
        if (b->ahead_max > DELTA_AHEAD_MAX)
                b->ahead_max = DELTA_AHEAD_MAX;
        if (b->hist && b->ahead_max > HIST_CHUNKS) {
                size_t cap = (size_t)window_max + b->ahead_max * (size_t)chunk_max;
                uint8_t *h = realloc(b->hist, cap);

                if (!h)
                        return upk_err_oom(err);
                b->hist = h;
                b->hist_cap = cap;
        }
        b->bbuf = malloc(block_max ?: 1);
        if (!b->bbuf)
                return upk_err_oom(err);
        b->dsrc = *src;
        b->delta = true;
        return 0;
}

void bundle_get_delta_stats(const Bundle *b, BundleDeltaStats *ret)
{
        *ret = b->dstats;
}

uint64_t bundle_payload_offset(const Bundle *b, size_t i)
{
        return b->payload_at && i < b->manifest->n_payloads ? b->payload_at[i] : 0;
}

/* Format 2: the next chunk, its stored bytes checked against the index before anything else looks at
 * them, then its blocks decoded (zstd frames to exactly their content length) and its content checked. */
static int chunk_block(Bundle *b, const void **ret_buf, size_t *ret_len, UpkErr *err)
{
        const ManifestPayload *p = b->cur;
        const ChunkEntry *e;
        const uint8_t *stored = NULL, *content;
        uint8_t digest[32];
        uint32_t len;
        int r;

        /* The content handed out last is checked before its buffer is used again. */
        r = bundle_hash_pending(b, err);
        if (r < 0)
                return r;
        if (b->delta)
                return b->cur_chunk < p->chunk_count ? delta_chunk(b, ret_buf, ret_len, err) : 0;
        if (b->cur_chunk >= p->chunk_count) {
                const void *buf;
                size_t n;

                /* The blocks' stored lengths add up to the member's size: nothing may be left. */
                r = b->blk_len > 0 ? 1 : outer_block(b, &buf, &n, err);
                if (r < 0)
                        return r;
                if (r > 0)
                        return fail(b, err, UPK_ERR_FORMAT, -EBADMSG,
                                    "bundle format: member \"%s\" is longer than its chunks", p->file);
                return 0;
        }
        e = &b->index->entries[b->index->first[b->cur_payload] + b->cur_chunk];
        len = manifest_chunk_length(p, b->cur_chunk);
        if (b->discard && p->chunk_compression != COMPRESSION_ZSTD && b->blk_len < e->stored_len) {
                /* Nobody looks at the bytes (bundle_verify_rest()): a chunk across the source's blocks is
                 * hashed where it lies, not copied together first. */
                r = hash_spanning(b, e->stored_len, digest, err);
                if (r < 0)
                        return r;
        } else {
                r = gather(b, e->stored_len, &stored, err);
                if (r < 0)
                        return r;
                if (!SHA256(stored, e->stored_len, digest))
                        return fail(b, err, UPK_ERR_IO, -EIO, "payload \"%s\": SHA-256 failed", p->name);
        }
        if (memcmp(digest, e->stored_sha256, 32) != 0)
                return chunk_fail(b, err, "sha256 mismatch");
        *ret_buf = stored;
        *ret_len = e->stored_len;
        if (p->chunk_compression == COMPRESSION_ZSTD) {
                hist_make_room(b, len);
                content = b->hist + b->hist_len;
                r = decode_blocks(b, e, stored, err);
                if (r < 0)
                        return r;
                /* The stored bytes, checked above, fix the content (the prefix is content decoded from
                 * bytes checked before, and zstd decodes deterministically): an installer does not
                 * hash it again (bundle_set_content_check()). */
                if (!b->skip_content_check) {
                        r = check_content(b, content, len, e->content_sha256, b->cur_chunk, err);
                        if (r < 0)
                                return r;
                }
                if (b->cur_mode == BUNDLE_PAYLOAD_DECOMPRESSED) {
                        *ret_buf = content;
                        *ret_len = len;
                }
                b->cur_out += len;
                b->cur_chunk++;
                return 1;
        }
        /* Stored as is: the stored hash is the content hash. */
        b->cur_out += len;
        b->cur_chunk++;
        if (stored != b->cbuf)
                return extend_span(b, ret_len, err);
        return 1;
}

int bundle_read_block(Bundle *b, const void **ret_buf, size_t *ret_len, UpkErr *err)
{
        int r;

        if (b->failed)
                return failed_before(b, err);
        if (!b->cur_active)
                return 0;
        if (is_format2(b)) {
                r = chunk_block(b, ret_buf, ret_len, err);
                if (r == 0)
                        b->cur_active = false;
                return r;
        }
        if (!b->inner)
                r = outer_block(b, ret_buf, ret_len, err);
        else if (b->cur_tee)
                r = tee_block(b, ret_buf, ret_len, err);
        else
                r = decompressed_block(b, ret_buf, ret_len, err);
        if (r != 0)
                return r;

        r = check_stored_digest(b, err);
        b->cur_active = false;
        return r;
}

int bundle_verify_rest(Bundle *b, UpkErr *err)
{
        const ManifestPayload *p;
        const void *buf;
        size_t len;
        int r;

        b->discard = true;
        while ((r = bundle_next_payload(b, BUNDLE_PAYLOAD_DECOMPRESSED, &p, err)) > 0) {
                while ((r = bundle_read_block(b, &buf, &len, err)) > 0)
                        ;
                if (r < 0)
                        return r;
        }
        return r;
}
