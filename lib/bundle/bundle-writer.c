/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bundle.h"
#include "chunk-index.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "abi-time.h"
#include "archive-util.h"
#include "fileio.h"
#include "hexdecoct.h"
#include "openssl-util.h"
#include "path-util.h"
#include "util.h"

#define WRITE_CHUNK (1024u * 1024u)
#define TAR_BLOCK   512u

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

/* ---- format 2 ---- */

/* A payload's content: its input file as it is, or decompressed per the template's `compression`. */
typedef struct Content {
        int fd;
        struct archive *a;
        const ManifestPayload *p;
} Content;

static void content_done(Content *c)
{
        if (c->a)
                archive_read_free(c->a);
        c->a = NULL;
}

static int content_open(Content *c, int fd, const ManifestPayload *p, UpkErr *err)
{
        struct archive_entry *e;

        *c = (Content){ .fd = fd, .p = p };
        if (lseek(fd, 0, SEEK_SET) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "payload \"%s\": cannot seek: %m", p->name);
        if (p->compression == COMPRESSION_NONE)
                return 0;
        c->a = archive_read_new();
        if (!c->a)
                return upk_err_oom(err);
        /* fill_payload() already proved it is this compression. */
        if (archive_read_support_filter_all(c->a) != ARCHIVE_OK ||
            archive_read_support_format_raw(c->a) != ARCHIVE_OK ||
            archive_read_open_fd(c->a, fd, WRITE_CHUNK) != ARCHIVE_OK ||
            archive_read_next_header(c->a, &e) != ARCHIVE_OK)
                return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG, "payload \"%s\": cannot decompress %s: %s",
                               p->name, p->file, archive_error_string(c->a) ?: "unknown error");
        return 0;
}

/* Exactly `n` content bytes, fewer only at the end. */
static ssize_t content_read(Content *c, uint8_t *buf, size_t n, UpkErr *err)
{
        size_t got = 0;

        while (got < n) {
                ssize_t k;

                if (c->a)
                        k = archive_read_data(c->a, buf + got, n - got);
                else
                        k = read(c->fd, buf + got, n - got);
                if (k < 0 && !c->a && errno == EINTR)
                        continue;
                if (k < 0)
                        return upk_err(err, UPK_ERR_IO, c->a ? -EBADMSG : -errno,
                                       "payload \"%s\": cannot read %s: %s", c->p->name, c->p->file,
                                       c->a ? archive_error_string(c->a) ?: "unknown error"
                                            : strerror(errno));
                if (k == 0)
                        break;
                got += (size_t)k;
        }
        return (ssize_t)got;
}

static int changed(const ManifestPayload *p, UpkErr *err)
{
        return upk_err(err, UPK_ERR_IO, -EBUSY, "payload \"%s\": %s changed while the bundle was made",
                       p->name, p->file);
}

/* Format 2 on several threads (BundleCreateOptions.jobs). A block's stored bytes depend only on the
 * content before it, so the work splits freely. The main thread reads the payload's content in batches of
 * chunks, each batch in its own buffer after the window's prefix (the last `window` bytes of content
 * before it, so that every block has its prefix right before it, as with one thread). With jobs > 1,
 * `jobs` workers, each with its own ZSTD_CCtx of the same parameters, take the chunks of the batches read
 * in chunk order (the oldest batch first), each writing its chunk's entry and block entries into the index
 * content and its stored bytes into the chunk's slot of the batch. The main thread writes a batch to the
 * spill file once all its chunks are cut, in batch order, and meanwhile reads batches ahead into the
 * free buffers: BATCHES of them, so the workers go on with the next batch while the last chunks of one
 * are still being cut. With one job the main thread does it all, a batch after the other. So the output
 * is the same for every number of jobs, and so is the error of a failed run: the one reported is the
 * error of the lowest chunk that failed (chunks are taken in order, so every chunk before it was cut);
 * a read that failed is reported after the chunks before it are cut and written.
 *
 * Memory: a batch is BATCH_CHUNKS_PER_JOB chunks per job, at most BATCH_SIZE_MAX bytes but at least
 * one chunk per job. Each of the BATCHES buffers holds a window and a batch of content, and a batch of
 * stored bytes: 3 x window + 6 x batch in all, plus each job's zstd state. With the default chunks and
 * window (256 KiB each), that is 3 MiB per job and 768 KiB. */
#define BATCH_CHUNKS_PER_JOB 2
#define BATCHES              3
#define BATCH_SIZE_MAX       (32u * 1024u * 1024u)

typedef struct Chunker Chunker;

/* From this level on, a block is first compressed at level 1 (with the same prefix): content that level 1
 * cannot make smaller (already compressed, random) is stored as it is without the slow level's attempt,
 * which costs 25 times as long for such a block at level 19 and would almost never save a byte. */
#define PROBE_FROM_LEVEL 6

/* One job's own state; with one job, the main thread's. */
typedef struct Cutter {
        Chunker *k;
        ZSTD_CCtx *cctx;
        ZSTD_CCtx *probe; /* level 1, from PROBE_FROM_LEVEL on (else NULL) */
        uint8_t *frame;
        size_t frame_cap;
        UpkErr err;
        pthread_t thread;
        bool started;
} Cutter;

/* Chunks of a payload as read: the prefix (the last `window` bytes of content before them, fewer at
 * the payload's start), then their content; and what the jobs made of them. */
typedef struct Batch {
        uint8_t *buf;
        size_t prefix_len, len; /* len: the prefix and the content */
        uint64_t first;         /* the payload's chunk number of the first */
        size_t n;               /* chunks read whole */
        int r;                  /* 0, or the error of the read after those chunks, in err */
        UpkErr err;
        size_t taken, done; /* chunks taken by a job, chunks cut (guarded by the lock) */
        uint8_t *stored;    /* the stored bytes of each chunk, chunk_max apart */
        size_t *stored_len;
} Batch;

struct Chunker {
        uint32_t chunk_max;
        size_t batch_chunks;  /* chunks per batch */
        Batch batch[BATCHES]; /* a ring; batch[0].buf is also pass 2's buffer of one chunk */
        Cutter *cutters;      /* the jobs' (with one job, the main thread's) */
        size_t n_cutters;
        bool threaded;       /* workers cut, the main thread reads and writes */
        uint64_t fail_block; /* test hook: the block of each zstd payload whose frame does not fit */

        pthread_mutex_t lock;
        /* work: to the workers, a batch was read; done: to the main thread, a chunk was cut */
        pthread_cond_t work, done;
        bool lock_init;
        /* Guarded by lock: */
        bool quit;
        size_t head, count; /* the batches read and not yet written: count from batch[head] on */
        size_t in_flight;   /* chunks being cut */
        bool stop;          /* a chunk failed: take no more */
        uint64_t err_at;    /* the lowest chunk that failed; its error in err */
        UpkErr err;
        /* The payload being cut (set while no chunk is in flight). */
        const ManifestPayload *p;
        uint8_t *chunks, *blocks; /* its chunk entries and block entries in the index content */

        int spill; /* stored bytes of zstd payloads, unlinked at once */
        uint64_t spilled;
        uint8_t *index; /* the index content as it grows */
        size_t index_size, index_cap;
        uint8_t *zindex; /* chunks.idx as stored: the index content as one zstd frame */
        size_t zindex_size;
        uint64_t *spill_at; /* per payload: where its stored bytes start in the spill file */
        size_t *index_at;   /* per payload: where its chunk entries start in the index content */
};

/* Stop the workers: they wait for work, so each is at most a wake-up away. */
static void cutters_stop(Chunker *k)
{
        if (!k->lock_init)
                return;
        pthread_mutex_lock(&k->lock);
        k->quit = true;
        pthread_cond_broadcast(&k->work);
        pthread_mutex_unlock(&k->lock);
        for (size_t i = 0; i < k->n_cutters; i++)
                if (k->cutters[i].started) {
                        pthread_join(k->cutters[i].thread, NULL);
                        k->cutters[i].started = false;
                }
}

static void chunker_done(Chunker *k)
{
        cutters_stop(k);
        if (k->lock_init) {
                pthread_cond_destroy(&k->done);
                pthread_cond_destroy(&k->work);
                pthread_mutex_destroy(&k->lock);
        }
        for (size_t i = 0; i < k->n_cutters; i++) {
                ZSTD_freeCCtx(k->cutters[i].cctx);
                ZSTD_freeCCtx(k->cutters[i].probe);
                free(k->cutters[i].frame);
        }
        free(k->cutters);
        for (size_t i = 0; i < BATCHES; i++) {
                free(k->batch[i].buf);
                free(k->batch[i].stored);
                free(k->batch[i].stored_len);
        }
        safe_close(k->spill);
        free(k->index);
        free(k->zindex);
        free(k->spill_at);
        free(k->index_at);
}

/* Room for `n` more bytes of index content (the payloads' total was checked against the limit). */
static uint8_t *index_grow(Chunker *k, size_t n, UpkErr *err)
{
        uint8_t *at;

        if (!k->index || k->index_size + n > k->index_cap) {
                size_t cap = k->index_cap ? k->index_cap : 4096;
                uint8_t *p;

                while (cap < k->index_size + n)
                        cap *= 2;
                p = realloc(k->index, cap);
                if (!p) {
                        upk_err_oom(err);
                        return NULL;
                }
                k->index = p;
                k->index_cap = cap;
        }
        at = k->index + k->index_size;
        k->index_size += n;
        return at;
}

/* A block's frame into c->frame (at most `cap` bytes) with `cctx`, after the `plen` bytes at `prefix`. */
static int block_frame(Cutter *c, ZSTD_CCtx *cctx, const ManifestPayload *p, const uint8_t *prefix,
                       size_t plen, const uint8_t *content, uint32_t len, size_t cap, size_t *ret,
                       UpkErr *err)
{
        size_t z;

        if (plen > 0 && ZSTD_isError(ZSTD_CCtx_refPrefix(cctx, prefix, plen)))
                return upk_err(err, UPK_ERR_IO, -EIO, "payload \"%s\": zstd: cannot set the prefix",
                               p->name);
        z = ZSTD_compress2(cctx, c->frame, cap, content, len);
        if (ZSTD_isError(z))
                return upk_err(err, UPK_ERR_IO, -EIO, "payload \"%s\": zstd: %s", p->name,
                               ZSTD_getErrorName(z));
        *ret = z;
        return 0;
}

/* Block `j` of a zstd payload, whose content lies at `content` in a buffer that starts at `start`, with
 * the prefix before it: zeros are not stored, a frame smaller than the content is, else the content as
 * is. Its stored bytes go to `stored` at `*stored_len`. */
static int cut_zstd_block(Cutter *c, const ManifestPayload *p, const uint8_t *start, const uint8_t *content,
                          uint32_t len, uint64_t j, BlockEntry *be, uint8_t *stored, size_t *stored_len,
                          UpkErr *err)
{
        size_t before = (size_t)(content - start), plen = p->window < before ? p->window : before, z = 0;
        size_t cap = j == c->k->fail_block ? 0 : c->frame_cap;
        int r;

        if (memeqzero(content, len)) {
                be->kind = BLOCK_KIND_ZERO;
                be->stored_len = 0;
                memset(be->match, 0, sizeof(be->match));
                return 0;
        }
        /* The probe: level 1 on the block alone (microseconds); a block it cannot shrink gets a second
         * look with the window (it may repeat content before it); one that level 1 cannot shrink either
         * way is stored as it is without the level's attempt. */
        if (c->probe) {
                r = block_frame(c, c->probe, p, NULL, 0, content, len, cap, &z, err);
                if (r >= 0 && z >= len && plen > 0)
                        r = block_frame(c, c->probe, p, content - plen, plen, content, len, cap, &z, err);
                if (r < 0)
                        return r;
        }
        if (!c->probe || z < len) {
                r = block_frame(c, c->cctx, p, content - plen, plen, content, len, cap, &z, err);
                if (r < 0)
                        return r;
        }
        /* A frame no smaller than its content is of no use: the block is stored as is. */
        if (z < len) {
                be->kind = BLOCK_KIND_ZSTD;
                be->stored_len = (uint16_t)z;
                memcpy(stored + *stored_len, c->frame, z);
        } else {
                be->kind = BLOCK_KIND_STORED;
                be->stored_len = (uint16_t)len;
                memcpy(stored + *stored_len, content, len);
        }
        *stored_len += be->stored_len;
        return 0;
}

/* Chunk `slot` of batch `b`: its entry and its block entries into the index content, its stored bytes
 * (zstd payloads) into its slot. Any job may cut it; no other chunk touches what it writes. */
static int cut_chunk(Cutter *c, const Batch *b, size_t slot, UpkErr *err)
{
        Chunker *k = c->k;
        const ManifestPayload *p = k->p;
        uint64_t i = b->first + slot, nb = manifest_block_count(p), per = p->chunk_size / p->block_size;
        uint32_t len = manifest_chunk_length(p, i);
        const uint8_t *content = b->buf + b->prefix_len + slot * (size_t)p->chunk_size;
        uint8_t *stored = b->stored + slot * (size_t)k->chunk_max;
        size_t stored_len = 0;
        ChunkEntry e = {};
        int r = 0;

        SHA256(content, len, e.content_sha256);
        for (uint64_t j = i * per; r >= 0 && j < nb && j < (i + 1) * per; j++) {
                const uint8_t *bp = content + (size_t)(j - i * per) * p->block_size;
                uint32_t blen = manifest_block_length(p, j);
                BlockEntry be = { .kind = BLOCK_KIND_STORED, .stored_len = (uint16_t)blen };
                uint8_t digest[32];

                SHA256(bp, blen, digest);
                memcpy(be.match, digest, BLOCK_MATCH_SIZE);
                if (p->chunk_compression == COMPRESSION_ZSTD)
                        r = cut_zstd_block(c, p, b->buf, bp, blen, j, &be, stored, &stored_len, err);
                block_entry_serialise(&be, k->blocks + j * BLOCK_ENTRY_SIZE);
        }
        if (r < 0)
                return r;
        if (p->chunk_compression == COMPRESSION_ZSTD)
                SHA256(stored, stored_len, e.stored_sha256);
        else {
                stored_len = len;
                memcpy(e.stored_sha256, e.content_sha256, 32);
        }
        chunk_entry_serialise(&e, k->chunks + i * CHUNK_ENTRY_SIZE);
        b->stored_len[slot] = stored_len;
        return 0;
}

/* The oldest chunk that no job took yet: its batch (and slot), or NULL. With the lock held. */
static Batch *take_chunk(Chunker *k, size_t *ret_slot)
{
        if (k->stop)
                return NULL;
        for (size_t i = 0; i < k->count; i++) {
                Batch *b = &k->batch[(k->head + i) % BATCHES];

                if (b->taken < b->n) {
                        *ret_slot = b->taken++;
                        return b;
                }
        }
        return NULL;
}

static void *cutter_thread(void *userdata)
{
        Cutter *c = userdata;
        Chunker *k = c->k;

        pthread_mutex_lock(&k->lock);
        while (!k->quit) {
                size_t slot;
                Batch *b = take_chunk(k, &slot);
                int r;

                if (!b) {
                        pthread_cond_wait(&k->work, &k->lock);
                        continue;
                }
                k->in_flight++;
                pthread_mutex_unlock(&k->lock);
                upk_err_clear(&c->err);
                r = cut_chunk(c, b, slot, &c->err);
                pthread_mutex_lock(&k->lock);
                k->in_flight--;
                b->done++;
                if (r < 0) {
                        if (!k->stop || b->first + slot < k->err_at) {
                                k->err_at = b->first + slot;
                                k->err = c->err;
                        }
                        k->stop = true;
                }
                pthread_cond_signal(&k->done);
        }
        pthread_mutex_unlock(&k->lock);
        return NULL;
}

/* Read the chunks from `first` on into `b`, at most a batch, after the last `window` bytes of content
 * of `prev` (NULL at the payload's start). A read that fails or comes short is kept in `b`, after the
 * chunks read whole before it, to be reported once those are cut (as one job would). Past the last
 * chunk, it checks that the content ends there. */
static void batch_read(Chunker *k, Content *c, const ManifestPayload *p, const Batch *prev, Batch *b,
                       uint64_t first)
{
        size_t keep = prev ? (p->window < prev->len ? p->window : prev->len) : 0;

        if (keep > 0)
                memcpy(b->buf, prev->buf + prev->len - keep, keep);
        b->prefix_len = b->len = keep;
        b->first = first;
        b->n = b->taken = b->done = 0;
        b->r = 0;
        upk_err_clear(&b->err);
        if (first == p->chunk_count) {
                if (content_read(c, b->buf + b->len, 1, &b->err) != 0)
                        b->r = changed(p, &b->err);
                return;
        }
        while (b->n < k->batch_chunks && first + b->n < p->chunk_count) {
                uint32_t len = manifest_chunk_length(p, first + b->n);
                ssize_t n = content_read(c, b->buf + b->len, len, &b->err);

                if (n < 0) {
                        b->r = (int)n;
                        return;
                }
                if ((size_t)n != len) {
                        b->r = changed(p, &b->err);
                        return;
                }
                b->len += len;
                b->n++;
        }
}

/* A batch whose chunks are all cut: the stored bytes to the spill file (zstd payloads), in order; then
 * the error of its read, if it failed. */
static int batch_write(Chunker *k, const Batch *b, const ManifestPayload *p, uint64_t *stored, UpkErr *err)
{
        for (size_t s = 0; s < b->n; s++) {
                if (p->chunk_compression == COMPRESSION_ZSTD) {
                        int r = loop_write(k->spill, b->stored + s * (size_t)k->chunk_max, b->stored_len[s]);
                        if (r < 0)
                                return upk_err(err, UPK_ERR_IO, r,
                                               "cannot write the temporary chunk file: %m");
                        k->spilled += b->stored_len[s];
                }
                *stored += b->stored_len[s];
        }
        if (b->r < 0)
                return upk_err(err, b->err.kind, b->err.code, "%s", b->err.msg);
        return 0;
}

/* One job: the main thread reads, cuts and writes one batch after the other. */
static int cut_alone(Chunker *k, Content *c, const ManifestPayload *p, uint64_t *stored, UpkErr *err)
{
        Batch *prev = NULL;
        int r = 0;

        for (uint64_t first = 0, i = 0;; i++) {
                Batch *b = &k->batch[i % 2];

                batch_read(k, c, p, prev, b, first);
                for (size_t s = 0; r >= 0 && s < b->n; s++)
                        r = cut_chunk(&k->cutters[0], b, s, err);
                if (r >= 0)
                        r = batch_write(k, b, p, stored, err);
                if (r < 0 || b->n == 0)
                        return r;
                first += b->n;
                prev = b;
        }
}

/* Several jobs: the main thread reads batches ahead while the workers cut them, and writes each batch
 * once it is cut. */
static int cut_together(Chunker *k, Content *c, const ManifestPayload *p, uint64_t *stored, UpkErr *err)
{
        uint64_t first = 0;
        bool read_all = false; /* the last batch is read (one of no chunk, or whose read failed) */
        int r = 0;

        pthread_mutex_lock(&k->lock);
        k->stop = false;
        k->err_at = UINT64_MAX;
        for (;;) {
                Batch *head = &k->batch[k->head];

                if (k->stop) {
                        while (k->in_flight > 0)
                                pthread_cond_wait(&k->done, &k->lock);
                        r = upk_err(err, k->err.kind, k->err.code, "%s", k->err.msg);
                        break;
                }
                if (k->count > 0 && head->done == head->n) {
                        pthread_mutex_unlock(&k->lock);
                        r = batch_write(k, head, p, stored, err);
                        pthread_mutex_lock(&k->lock);
                        if (r < 0) {
                                k->stop = true;
                                while (k->in_flight > 0)
                                        pthread_cond_wait(&k->done, &k->lock);
                                break;
                        }
                        /* Its buffer stays as it is until the next batch is read into another one: the
                         * next batch's prefix may come from it. */
                        k->head = (k->head + 1) % BATCHES;
                        if (--k->count == 0 && read_all)
                                break;
                        continue;
                }
                if (!read_all && k->count < BATCHES) {
                        Batch *b = &k->batch[(k->head + k->count) % BATCHES];
                        const Batch *prev =
                                first > 0 ? &k->batch[(k->head + k->count + BATCHES - 1) % BATCHES] : NULL;

                        /* A free buffer belongs to this thread alone; the others only read prev. */
                        pthread_mutex_unlock(&k->lock);
                        batch_read(k, c, p, prev, b, first);
                        pthread_mutex_lock(&k->lock);
                        first += b->n;
                        read_all = b->r < 0 || b->n == 0;
                        k->count++;
                        pthread_cond_broadcast(&k->work);
                        continue;
                }
                pthread_cond_wait(&k->done, &k->lock);
        }
        pthread_mutex_unlock(&k->lock);
        return r;
}

/* Pass 1 for one payload: cut its content into chunks and blocks, compress each block (zstd payloads,
 * into the spill file), and append its chunk entries and block entries to the index content; fills
 * size. */
static int chunk_payload(Chunker *k, int fd, size_t pi, ManifestPayload *p, UpkErr *err)
{
        uint64_t nb = manifest_block_count(p), stored = 0;
        uint8_t *chunks;
        Content c = {};
        int r;

        k->index_at[pi] = k->index_size;
        chunks = index_grow(k, (size_t)(p->chunk_count * CHUNK_ENTRY_SIZE + nb * BLOCK_ENTRY_SIZE), err);
        if (!chunks)
                return -ENOMEM;
        /* No chunk is in flight between payloads: the workers see these once they take one. */
        pthread_mutex_lock(&k->lock);
        k->p = p;
        k->chunks = chunks;
        k->blocks = chunks + p->chunk_count * CHUNK_ENTRY_SIZE;
        pthread_mutex_unlock(&k->lock);
        r = content_open(&c, fd, p, err);
        if (r >= 0)
                r = k->threaded ? cut_together(k, &c, p, &stored, err) : cut_alone(k, &c, p, &stored, err);
        content_done(&c);
        if (r < 0)
                return r;
        p->size = stored;
        return 0;
}

static bool power_of_two_in(uint64_t v, uint64_t lo, uint64_t hi)
{
        return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

/* The chunking of one payload: what its template gives, else the options, else the defaults. */
static int chunking(const BundleCreateOptions *opts, ManifestPayload *p, UpkErr *err)
{
        bool given = p->has_chunks;

        if (!given || p->chunk_size == 0)
                p->chunk_size = opts->chunk_size ?: CHUNK_SIZE_DEFAULT;
        if (!power_of_two_in(p->chunk_size, MANIFEST_CHUNK_SIZE_MIN, MANIFEST_CHUNK_SIZE_MAX))
                return upk_err(err, UPK_ERR_MANIFEST, -EINVAL,
                               "payload \"%s\": chunk size %" PRIu32 " is not a power of two from %u to %u",
                               p->name, p->chunk_size, MANIFEST_CHUNK_SIZE_MIN, MANIFEST_CHUNK_SIZE_MAX);
        if (!given || p->block_size == 0)
                p->block_size = opts->block_size ?: BLOCK_SIZE_DEFAULT;
        if (!power_of_two_in(p->block_size, MANIFEST_BLOCK_SIZE_MIN, MANIFEST_BLOCK_SIZE_MAX) ||
            p->block_size > p->chunk_size)
                return upk_err(err, UPK_ERR_MANIFEST, -EINVAL,
                               "payload \"%s\": block size %" PRIu32
                               " is not a power of two from %u to %u and at most the chunk size %" PRIu32,
                               p->name, p->block_size, MANIFEST_BLOCK_SIZE_MIN, MANIFEST_BLOCK_SIZE_MAX,
                               p->chunk_size);
        if (p->chunk_compression == _COMPRESSION_INVALID || !given)
                p->chunk_compression = opts->compression_set ? opts->compression : COMPRESSION_ZSTD;
        if (p->chunk_compression != COMPRESSION_NONE && p->chunk_compression != COMPRESSION_ZSTD)
                return upk_err(err, UPK_ERR_MANIFEST, -EINVAL,
                               "payload \"%s\": chunks are stored as none or zstd", p->name);
        if (p->chunk_compression == COMPRESSION_NONE)
                p->window = 0;
        else if (!given || p->window == MANIFEST_WINDOW_UNSET)
                p->window = opts->window_set ? opts->window : WINDOW_DEFAULT;
        if (p->window != 0 && !power_of_two_in(p->window, MANIFEST_WINDOW_MIN, MANIFEST_WINDOW_MAX))
                return upk_err(err, UPK_ERR_MANIFEST, -EINVAL,
                               "payload \"%s\": window %" PRIu32 " is not 0 or a power of two from %u to %u",
                               p->name, p->window, MANIFEST_WINDOW_MIN, MANIFEST_WINDOW_MAX);
        p->has_chunks = true;
        p->chunk_count = p->installed_size / p->chunk_size + (p->installed_size % p->chunk_size != 0);
        return 0;
}

/* Whether the index of the `n` payloads `ps` (their chunking set) fits in an index: -EFBIG
 * (UPK_ERR_MANIFEST) if not, naming what each payload needs and what to change. */
static int check_index_size(const ManifestPayload *ps, size_t n, UpkErr *err)
{
        char list[640] = "";
        size_t at = 0;
        uint64_t total = 0;

        for (size_t i = 0; i < n; i++)
                total += chunk_index_payload_size(&ps[i]); /* each < 2^44 (64 TiB / 4096 * 72) */
        if (total <= CHUNK_INDEX_SIZE_MAX)
                return 0;
        for (size_t i = 0; i < n && at < sizeof(list); i++) {
                const ManifestPayload *p = &ps[i];
                int k;

                if (chunk_index_payload_size(p) == 0)
                        continue;
                k = snprintf(list + at, sizeof(list) - at,
                             "%spayload \"%s\" (%" PRIu64 " bytes in %" PRIu32 "-byte blocks and %" PRIu32
                             "-byte chunks) needs %" PRIu64 " bytes",
                             at > 0 ? ", " : "", p->name, p->installed_size, p->block_size, p->chunk_size,
                             chunk_index_payload_size(p));
                if (k < 0 || (size_t)k >= sizeof(list) - at) {
                        /* No room for all: the list ends with "..." */
                        memcpy(list + sizeof(list) - 4, "...", 4);
                        break;
                }
                at += (size_t)k;
        }
        return upk_err(err, UPK_ERR_MANIFEST, -EFBIG,
                       "the payloads' chunk index (%s) would be %" PRIu64
                       " bytes, more than the %u bytes an index may hold: %s; use a larger --block-size or "
                       "--chunk-size (or chunks.block and chunks.size in the template)",
                       CHUNK_INDEX_NAME, total, CHUNK_INDEX_SIZE_MAX, list);
}

/* Format 2: whether the index fits, from what is known before a payload is read (the size of each file
 * given as it is; a compressed one counts once it is decompressed, in chunk_all()): a payload too large
 * for its blocks is refused at once, not after every payload has been hashed. */
static int precheck_index_size(const BundleCreateOptions *opts, const char *dir, const Manifest *m,
                               UpkErr *err)
{
        _cleanup_free_ ManifestPayload *ps = calloc(m->n_payloads ?: 1, sizeof(*ps));
        int r;

        if (!ps)
                return upk_err_oom(err);
        for (size_t i = 0; i < m->n_payloads; i++) {
                ps[i] = m->payloads[i]; /* a shallow copy: only its sizes and chunking change */
                ps[i].installed_size = 0;
                if (ps[i].compression == COMPRESSION_NONE) {
                        _cleanup_close_ int fd = open_payload(dir, &ps[i], &ps[i].installed_size, err);

                        if (fd < 0)
                                return fd;
                }
                r = chunking(opts, &ps[i], err);
                if (r < 0)
                        return r;
        }
        return check_index_size(ps, m->n_payloads, err);
}

/* A job's zstd context, with the parameters that make the frames what upkeep-bundle(5) says. */
static int cutter_init(Chunker *k, Cutter *c, int level, UpkErr *err)
{
        c->k = k;
        c->frame_cap = ZSTD_compressBound(MANIFEST_BLOCK_SIZE_MAX);
        c->frame = malloc(c->frame_cap);
        c->cctx = ZSTD_createCCtx();
        if (!c->frame || !c->cctx)
                return upk_err_oom(err);
        if (level >= PROBE_FROM_LEVEL && !(c->probe = ZSTD_createCCtx()))
                return upk_err_oom(err);
        for (ZSTD_CCtx *cctx = c->cctx; cctx; cctx = cctx == c->cctx ? c->probe : NULL)
                if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel,
                                                        cctx == c->cctx ? level : 1)) ||
                    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0)) ||
                    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_dictIDFlag, 0)) ||
                    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)))
                        return upk_err(err, UPK_ERR_IO, -EINVAL, "zstd level %d is not supported", level);
        return 0;
}

/* How many jobs: the option, else the online CPUs; at most BUNDLE_JOBS_MAX, and no more than there are
 * chunks. */
static size_t jobs_for(const BundleCreateOptions *opts, uint64_t chunks)
{
        uint64_t jobs = opts->jobs;

        if (jobs == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                jobs = n > 0 ? (uint64_t)n : 1;
        }
        if (jobs > BUNDLE_JOBS_MAX)
                jobs = BUNDLE_JOBS_MAX;
        if (jobs > chunks)
                jobs = chunks;
        return jobs > 0 ? (size_t)jobs : 1;
}

static int chunk_all(const BundleCreateOptions *opts, const char *dir, const char *outdir, Manifest *m,
                     Chunker *k, UpkErr *err)
{
        _cleanup_free_ char *tmp = strdup_printf("%s/.upkeep-chunks.XXXXXX", outdir);
        uint32_t window_max = 0;
        uint64_t chunks = 0;
        size_t bound, z, jobs, buf_size;
        int level = opts->zstd_level ?: BUNDLE_ZSTD_LEVEL_DEFAULT, r;

        if (!tmp)
                return upk_err_oom(err);
        k->spill_at = calloc(m->n_payloads ?: 1, sizeof(uint64_t));
        k->index_at = calloc(m->n_payloads ?: 1, sizeof(size_t));
        if (!k->spill_at || !k->index_at)
                return upk_err_oom(err);
        m->format = 2;
        for (size_t i = 0; i < m->n_payloads; i++) {
                ManifestPayload *p = &m->payloads[i];

                r = chunking(opts, p, err);
                if (r < 0)
                        return r;
                if (p->chunk_size > k->chunk_max)
                        k->chunk_max = p->chunk_size;
                if (p->window > window_max)
                        window_max = p->window;
                chunks += p->chunk_count;
        }
        r = check_index_size(m->payloads, m->n_payloads, err);
        if (r < 0)
                return r;
        jobs = jobs_for(opts, chunks);
        k->batch_chunks = jobs * BATCH_CHUNKS_PER_JOB;
        if (k->batch_chunks * k->chunk_max > BATCH_SIZE_MAX)
                k->batch_chunks =
                        BATCH_SIZE_MAX / k->chunk_max > jobs ? BATCH_SIZE_MAX / k->chunk_max : jobs;
        buf_size = (size_t)window_max + k->batch_chunks * k->chunk_max;
        for (size_t i = 0; i < BATCHES; i++) {
                Batch *b = &k->batch[i];

                b->buf = malloc(buf_size);
                b->stored = malloc(k->batch_chunks * k->chunk_max);
                b->stored_len = calloc(k->batch_chunks, sizeof(size_t));
                if (!b->buf || !b->stored || !b->stored_len)
                        return upk_err_oom(err);
        }
        k->cutters = calloc(jobs, sizeof(Cutter));
        if (!k->cutters)
                return upk_err_oom(err);
        k->fail_block = UINT64_MAX;
#if HAVE_TEST_HOOKS
        {
                const char *s = secure_getenv("UPKEEP_TEST_ZSTD_FAIL_BLOCK");
                if (s && safe_atou64(s, &k->fail_block) < 0)
                        k->fail_block = UINT64_MAX;
        }
#endif
        k->n_cutters = jobs;
        for (size_t i = 0; i < jobs; i++) {
                r = cutter_init(k, &k->cutters[i], level, err);
                if (r < 0)
                        return r;
        }
        pthread_mutex_init(&k->lock, NULL);
        pthread_cond_init(&k->work, NULL);
        pthread_cond_init(&k->done, NULL);
        k->lock_init = true;
        /* With more than one job, a worker for each; one that cannot be started leaves its share to the
         * others, and with none the main thread cuts alone: the output is the same. */
        for (size_t i = 0; jobs > 1 && i < jobs; i++) {
                k->cutters[i].started =
                        pthread_create(&k->cutters[i].thread, NULL, cutter_thread, &k->cutters[i]) == 0;
                k->threaded = k->threaded || k->cutters[i].started;
        }
        k->spill = mkostemp(tmp, O_CLOEXEC);
        if (k->spill < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot create a temporary file: %m",
                               opts->output_path);
        (void)unlink(tmp); /* gone on every path */

        for (size_t i = 0; i < m->n_payloads; i++) {
                _cleanup_close_ int fd = -EBADF;
                uint64_t size;

                fd = open_payload(dir, &m->payloads[i], &size, err);
                if (fd < 0)
                        return fd;
                k->spill_at[i] = k->spilled;
                r = chunk_payload(k, fd, i, &m->payloads[i], err);
                if (r < 0)
                        return r;
        }
        cutters_stop(k);
        /* chunks.idx: the index content as one zstd frame that declares its size. */
        bound = ZSTD_compressBound(k->index_size);
        k->zindex = malloc(bound);
        if (!k->zindex)
                return upk_err_oom(err);
        z = ZSTD_compress(k->zindex, bound, k->index ?: (const void *)"", k->index_size,
                          CHUNK_INDEX_ZSTD_LEVEL);
        if (ZSTD_isError(z))
                return upk_err(err, UPK_ERR_IO, -EIO, "chunks.idx: zstd: %s", ZSTD_getErrorName(z));
        if (z > CHUNK_INDEX_SIZE_MAX)
                return upk_err(err, UPK_ERR_MANIFEST, -EFBIG,
                               "%s: the payloads' index compresses to %zu bytes, more than the %u bytes an "
                               "index may hold; use a larger --block-size or --chunk-size",
                               CHUNK_INDEX_NAME, z, CHUNK_INDEX_SIZE_MAX);
        k->zindex_size = z;
        m->has_index = true;
        m->index_size = k->zindex_size;
        SHA256(k->zindex, k->zindex_size, m->index_sha256);
        return 0;
}

/* A plain ustar header (mtime 0, uid and gid 0, mode 0644); a size beyond 11 octal digits in base 256. */
static void ustar_header(uint8_t h[TAR_BLOCK], const char *name, uint64_t size)
{
        unsigned sum = 0;

        memset(h, 0, TAR_BLOCK);
        memcpy(h, name, strlen(name)); /* at most MANIFEST_FILE_MAX = 100 */
        memcpy(h + 100, "0000644", 8);
        memcpy(h + 108, "0000000", 8);
        memcpy(h + 116, "0000000", 8);
        if (size < (UINT64_C(1) << 33))
                snprintf((char *)h + 124, 12, "%011" PRIo64, size);
        else {
                h[124] = 0x80;
                for (int i = 11; i >= 4; i--, size >>= 8)
                        h[124 + i] = (uint8_t)size;
        }
        memcpy(h + 136, "00000000000", 12);
        memset(h + 148, ' ', 8);
        h[156] = '0';
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        for (size_t i = 0; i < TAR_BLOCK; i++)
                sum += h[i];
        snprintf((char *)h + 148, 8, "%06o", sum);
}

static int out_write(int fd, const void *buf, size_t len, UpkErr *err)
{
        int r = loop_write(fd, buf, len);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot write the bundle: %m");
        return 0;
}

static int out_member(int fd, const char *name, uint64_t size, UpkErr *err)
{
        uint8_t h[TAR_BLOCK];

        ustar_header(h, name, size);
        return out_write(fd, h, sizeof(h), err);
}

static int out_pad(int fd, uint64_t size, UpkErr *err)
{
        static const uint8_t zero[TAR_BLOCK];

        return size % TAR_BLOCK ? out_write(fd, zero, TAR_BLOCK - size % TAR_BLOCK, err) : 0;
}

static int out_small(int fd, const char *name, const void *data, size_t size, UpkErr *err)
{
        int r = out_member(fd, name, size, err);
        if (r >= 0)
                r = out_write(fd, data, size, err);
        if (r >= 0)
                r = out_pad(fd, size, err);
        return r;
}

/* Pass 2 for one payload: the stored bytes, from the spill file (zstd) or the content read anew and
 * checked against the index (none). */
static int out_payload(int fd, Chunker *k, size_t pi, const uint8_t *entries, int pfd,
                       const ManifestPayload *p, UpkErr *err)
{
        _cleanup_free_ uint8_t *buf = malloc(WRITE_CHUNK);
        Content c = {};
        int r;

        if (!buf)
                return upk_err_oom(err);
        if (p->chunk_compression == COMPRESSION_ZSTD) {
                uint64_t at = k->spill_at[pi], left = p->size;
                while (left > 0) {
                        size_t n = left < WRITE_CHUNK ? (size_t)left : WRITE_CHUNK;
                        ssize_t got = pread(k->spill, buf, n, (off_t)at);
                        if (got < 0 && errno == EINTR)
                                continue;
                        if (got <= 0)
                                return upk_err(err, UPK_ERR_IO, got < 0 ? -errno : -EIO,
                                               "cannot read the temporary chunk file: %s",
                                               got < 0 ? strerror(errno) : "it is short");
                        r = out_write(fd, buf, (size_t)got, err);
                        if (r < 0)
                                return r;
                        at += (uint64_t)got;
                        left -= (uint64_t)got;
                }
                return 0;
        }
        r = content_open(&c, pfd, p, err);
        for (uint64_t i = 0; r >= 0 && i < p->chunk_count; i++) {
                uint32_t len = manifest_chunk_length(p, i);
                uint8_t digest[32];
                ssize_t n = content_read(&c, k->batch[0].buf, len, err);

                if (n < 0)
                        r = (int)n;
                else if ((size_t)n != len)
                        r = changed(p, err);
                else if (!SHA256(k->batch[0].buf, len, digest) ||
                         memcmp(digest, entries + i * CHUNK_ENTRY_SIZE + 32, 32) != 0)
                        r = changed(p, err);
                else
                        r = out_write(fd, k->batch[0].buf, len, err);
        }
        content_done(&c);
        return r;
}

static int write_bundle2(int fd, const Manifest *m, const char *dir, Chunker *k, const char *json,
                         size_t json_size, const uint8_t *sig, size_t sig_size, UpkErr *err)
{
        static const uint8_t end[2 * TAR_BLOCK];
        int r;

        r = out_small(fd, BUNDLE_MANIFEST_NAME, json, json_size, err);
        if (r >= 0)
                r = out_small(fd, BUNDLE_SIGNATURE_NAME, sig, sig_size, err);
        if (r >= 0)
                r = out_small(fd, CHUNK_INDEX_NAME, k->zindex, k->zindex_size, err);
        for (size_t i = 0; r >= 0 && i < m->n_payloads; i++) {
                const ManifestPayload *p = &m->payloads[i];
                _cleanup_close_ int pfd = -EBADF;
                uint64_t size;

                if (p->chunk_compression == COMPRESSION_NONE) {
                        pfd = open_payload(dir, p, &size, err);
                        if (pfd < 0)
                                return pfd;
                }
                r = out_member(fd, p->file, p->size, err);
                if (r >= 0)
                        r = out_payload(fd, k, i, k->index + k->index_at[i], pfd, p, err);
                if (r >= 0)
                        r = out_pad(fd, p->size, err);
        }
        if (r >= 0)
                r = out_write(fd, end, sizeof(end), err);
        return r;
}

int bundle_create(const BundleCreateOptions *opts, UpkErr *err)
{
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_free_ char *template = NULL, *json = NULL, *dir_copy = NULL, *outdir = NULL, *tmp = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        _cleanup_(chunker_done) Chunker k = { .spill = -EBADF };
        int format = opts->format ?: BUNDLE_FORMAT_DEFAULT;
        const char *dir;
        size_t template_size, json_size, sig_size;
        int r;

        if (format != 1 && format != 2)
                return upk_err(err, UPK_ERR_MANIFEST, -EINVAL, "bundle format %d: expected 1 or 2", format);

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
        outdir = path_dirname(opts->output_path);
        if (!outdir)
                return upk_err_oom(err);
        if (format == 2) {
                r = precheck_index_size(opts, dir, m, err);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < m->n_payloads; i++) {
                if (format == 1 && m->payloads[i].has_chunks)
                        return upk_err(err, UPK_ERR_MANIFEST, -EINVAL,
                                       "%s: payloads[%zu].chunks: only for format 2", opts->manifest_path,
                                       i);
                r = fill_payload(dir, &m->payloads[i], err);
                if (r < 0)
                        return r;
        }
        m->format = format;
        m->has_index = false;
        if (format == 2) {
                r = chunk_all(opts, dir, outdir, m, &k, err);
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

        tmp = strdup_printf("%s.XXXXXX", opts->output_path);
        if (!tmp)
                return upk_err_oom(err);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot create a temporary file: %m",
                               opts->output_path);
        if (format == 2)
                r = write_bundle2(fd, m, dir, &k, json, json_size, sig, sig_size, err);
        else
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
