/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The bundle (.upk): a POSIX tar stream read strictly in order in one pass with libarchive:
 * manifest.json, manifest.json.sig, (format 2:) chunks.idx, then the payloads in manifest order and
 * nothing else. The reader verifies the signature before it parses a byte of the manifest as trusted.
 * Format 1: it hashes every payload as it streams and checks it at the payload's end. Format 2: it
 * checks chunks.idx against the manifest, then each chunk against the index before it hands a byte of
 * the chunk on. The writer produces the same bytes for the same inputs. */

#include "error.h"
#include "manifest.h"
#include "signature.h"

#define BUNDLE_MANIFEST_NAME  "manifest.json"
#define BUNDLE_SIGNATURE_NAME "manifest.json.sig"

typedef struct Bundle Bundle;

/* Where the bundle's bytes come from: a read function returning bytes read, 0 at the end, or -errno. */
typedef ssize_t (*BundleReadFunc)(void *userdata, void *buf, size_t size);
/* Or, without a copy: the next bytes in place (*ret_buf), valid and unchanged until the following call,
 * which gives them back; returns their count, 0 at the end, or -errno. */
typedef ssize_t (*BundleNextFunc)(void *userdata, const void **ret_buf);

typedef struct BundleOpenOptions {
        const char *keyring; /* trusted CAs (PEM); NULL opens UNVERIFIED (only `bundle info` may) */
        const char *crl;     /* optional */
        bool allow_any_eku;  /* SIGNATURE_ALLOW_ANY_EKU: a signer without codeSigning (weaker) */
        /* Format 2, optional: told, once the manifest is parsed and before the index is read, how many
         * bytes from the start of the file hold the manifest, the signature and the index (padded): all
         * that a delta reader (bundle_set_delta()) takes from the source. */
        void (*on_head_size)(void *userdata, uint64_t size);
        void *head_userdata;
        /* Format 2: keep chunks.idx's stored bytes for bundle_get_raw_index() (`bundle extract`); else
         * they are freed once the index is parsed (a 1 GiB payload's are about half a MiB). */
        bool keep_raw_index;
} BundleOpenOptions;

/* Read and check manifest.json and manifest.json.sig; verify the signature (when a keyring is given),
 * then parse the manifest. Nothing else is read yet. */
int bundle_open_fd(int fd, const BundleOpenOptions *opts, Bundle **ret, UpkErr *err);
int bundle_open_path(const char *path, const BundleOpenOptions *opts, Bundle **ret, UpkErr *err);
int bundle_open_func(BundleReadFunc func, void *userdata, const BundleOpenOptions *opts, Bundle **ret,
                     UpkErr *err);
int bundle_open_next(BundleNextFunc next, void *userdata, const BundleOpenOptions *opts, Bundle **ret,
                     UpkErr *err);
Bundle *bundle_free(Bundle *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(Bundle *, bundle_free);

const Manifest *bundle_get_manifest(const Bundle *b);
bool bundle_is_verified(const Bundle *b);
const SignatureSigner *bundle_get_signer(const Bundle *b); /* NULL when unverified */
/* The exact manifest and signature bytes as stored. */
void bundle_get_raw(const Bundle *b, const void **ret_manifest, size_t *ret_manifest_size,
                    const void **ret_sig, size_t *ret_sig_size);

/* Format 2: the bytes of chunks.idx as stored (checked against the manifest), when the bundle was opened
 * with keep_raw_index; else, and in format 1, NULL, 0. */
void bundle_get_raw_index(const Bundle *b, const void **ret, size_t *ret_size);
/* Format 2: the parsed chunk index (NULL in format 1). */
typedef struct ChunkIndex ChunkIndex;
const ChunkIndex *bundle_get_index(const Bundle *b);

typedef enum BundlePayloadMode {
        BUNDLE_PAYLOAD_STORED,       /* the bytes as stored in the bundle */
        BUNDLE_PAYLOAD_DECOMPRESSED, /* decompressed per `compression`, capped at installed_size */
} BundlePayloadMode;

/* Advance to the next payload: returns 1 and its manifest entry, or 0 when every payload has been read
 * and the tar stream ended right after the last one. Fails on a missing, extra, misnamed, misordered or
 * non-regular member, or a member whose size differs from the manifest's. A previous payload that was
 * not read to its end is read (and checked) first. */
int bundle_next_payload(Bundle *b, BundlePayloadMode mode, const ManifestPayload **ret, UpkErr *err);

/* The next block of the current payload: returns 1 with a pointer valid until the next call, or 0 at
 * the payload's end after its size and sha256 (and, decompressed, its installed_size) have checked out.
 * Format 2: each block is one chunk, its stored bytes verified before it is returned (and a zstd chunk
 * decompressed, its content hash checked too unless deferred, below); the first chunk that fails ends
 * the reading, and nothing of it is returned. */
int bundle_read_block(Bundle *b, const void **ret_buf, size_t *ret_len, UpkErr *err);

/* Deferred hashing, for a caller that overlaps hashing with its own use of a block: each stored block
 * of an uncompressed payload is hashed not inside bundle_read_block() but by bundle_hash_pending(),
 * which the caller may call while it works on the block in another thread (the buffer is only read
 * on both sides), and which the next read and the end-of-payload check call anyway. Format 2: a chunk's
 * stored bytes are always verified before it is handed out, so nothing is deferred. */
void bundle_set_deferred_hashing(Bundle *b, bool defer);
int bundle_hash_pending(Bundle *b, UpkErr *err);

/* Format 2: whether the content of a zstd chunk whose stored bytes were verified is hashed and
 * compared with its content hash as well (the default). The stored bytes fix the content (upkeep-bundle(5),
 * Verification), so only a signer's inconsistent index fails this check; an installer turns it off, as
 * it would double the hashing. */
void bundle_set_content_check(Bundle *b, bool check);

/* Whether bundle_hash_pending() has work for the block just returned. */
bool bundle_has_pending_hash(const Bundle *b);

/* Delta updates (format 2; upkeep-bundle(5), Deltas): after bundle_open_*() has read the head (see
 * on_head_size), the payloads' bytes come not from the source but block by block from where the caller's
 * plan says: zeros, the device's own slot (read_local), or the bundle file's bytes that the caller fetches
 * (next_fetched). The verification does not trust the plan: a chunk whose stored bytes all came from the
 * file is checked against its stored hash before it is decoded, as always; a chunk with blocks from the
 * device is assembled, decoded and checked against its content hash before any of it is handed on, and
 * when that fails (the slot changed, a match key collided, a read failed) the chunk is fetched whole with
 * fetch_range and checked as stored bytes. Only BUNDLE_PAYLOAD_DECOMPRESSED reads; nothing after the
 * last payload is read or checked (the trailer was not fetched). */
typedef enum BundleBlockOrigin {
        BUNDLE_BLOCK_ZERO,  /* a block of zeros (kind 2) */
        BUNDLE_BLOCK_LOCAL, /* from the device's slot */
        BUNDLE_BLOCK_FETCH, /* its stored bytes from the fetched ranges */
} BundleBlockOrigin;

typedef struct BundleDeltaSource {
        /* Per payload (manifest order), per block: a BundleBlockOrigin, and for local ones the slot's
         * block number in local_at (below 2^31; others ignored). Both owned by the caller, alive while
         * reading. */
        const uint8_t *const *origin;
        const int32_t *const *local_at;
        /* Read `size` bytes from the start of block `block` of the slot that payload `payload` (manifest
         * order) reuses on into `buf` (the slot's block size is the payload's block_size; a run of blocks
         * that follow each other in the slot as in the payload is read at once). A failure (or a short
         * read: fewer bytes returned) only makes the chunk be fetched. */
        ssize_t (*read_local)(void *userdata, size_t payload, uint64_t block, void *buf, size_t size);
        /* The next piece of fetched bytes: its offset in the bundle file, in place (valid until the next
         * call); pieces come in ascending order and cover at least the stored bytes of every block marked
         * BUNDLE_BLOCK_FETCH, gaps allowed (a piece that starts before the previous one's end, or skips
         * a byte that is needed, fails the read). Returns the size, 0 at the end, or -errno with `err`. */
        ssize_t (*next_fetched)(void *userdata, uint64_t *ret_offset, const void **ret_buf, UpkErr *err);
        /* Fetch bytes [offset, offset + size) of the bundle file, a chunk of payload `payload` whose
         * assembled content did not check out, into `buf` now: 0 or -errno with `err` (the reading fails
         * with it). */
        int (*fetch_range)(void *userdata, size_t payload, uint64_t offset, size_t size, void *buf,
                           UpkErr *err);
        void *userdata;
        /* Zstd payloads: how many chunks made only of the slot's blocks (and zeros) are assembled at once
         * and their content hashes computed together, 1 to BUNDLE_DELTA_AHEAD_MAX; each costs a chunk of
         * memory. 0: one for each thread of the hash pool and one for the reader's own (2 on two CPUs). */
        unsigned ahead;
} BundleDeltaSource;

#define BUNDLE_DELTA_AHEAD_MAX 4u

typedef struct BundleDeltaStats {
        uint64_t local_bytes;      /* content from the device's slot, in chunks that checked out */
        uint64_t fetched_bytes;    /* stored bytes taken from next_fetched */
        uint64_t zero_bytes;       /* content of zero blocks */
        uint64_t refetched_chunks; /* chunks fetched whole after a failed content check */
        uint64_t refetched_bytes;
} BundleDeltaStats;

/* Switch an opened format-2 bundle, before its first payload, to delta reading. `src` is copied. */
int bundle_set_delta(Bundle *b, const BundleDeltaSource *src, UpkErr *err);
void bundle_get_delta_stats(const Bundle *b, BundleDeltaStats *ret);
/* Where payload `i`'s member data starts in the bundle file (format 2's canonical layout). */
uint64_t bundle_payload_offset(const Bundle *b, size_t i);

/* Read and check everything that is left (all payloads, end of stream). */
int bundle_verify_rest(Bundle *b, UpkErr *err);

/* Bytes of the bundle consumed so far (for progress). */
uint64_t bundle_get_position(const Bundle *b);

#define BUNDLE_FORMAT_DEFAULT     2
#define BUNDLE_ZSTD_LEVEL_DEFAULT 19
#define BUNDLE_JOBS_MAX           64

typedef struct BundleCreateOptions {
        const char *manifest_path; /* template: size and sha256 are filled in */
        const char *cert_path;
        const char *key_path;
        const char *chain_path;  /* optional */
        const char *payload_dir; /* where payload files are found; default: the manifest's folder */
        const char *output_path;
        int format; /* 1 or 2; 0: BUNDLE_FORMAT_DEFAULT */
        /* Format 2, for payloads whose template has no `chunks` of its own: the chunk size (0: 256 KiB)
         * and how chunks are stored (COMPRESSION_NONE or _ZSTD; _COMPRESSION_INVALID (the default when
         * `compression_set` is false): zstd when the input file is compressed, else none). */
        uint32_t chunk_size;
        uint32_t block_size; /* 0: 4 KiB */
        bool compression_set;
        Compression compression;
        int zstd_level; /* 0: BUNDLE_ZSTD_LEVEL_DEFAULT */
        /* The window of zstd blocks' prefixes (`window_set` false: 256 KiB; 0: none, each block alone). */
        bool window_set;
        uint32_t window;
        /* Format 2: how many threads cut the payloads into blocks, the caller's included (1: no other
         * thread); 0: the number of online CPUs. At most BUNDLE_JOBS_MAX (more count as that). The
         * output is the same for every number. */
        unsigned jobs;
} BundleCreateOptions;

/* Write a signed bundle; the output is written to a temporary file in the output's folder and renamed
 * into place only when complete. */
int bundle_create(const BundleCreateOptions *opts, UpkErr *err);

/* Verify the rest of an opened bundle while writing manifest.json, manifest.json.sig, (format 2)
 * chunks.idx and each payload's stored bytes into `dir` (created when missing; existing files are never
 * replaced, nothing is written outside it). On any failure everything it wrote, and `dir` if it made it, is
 * removed. */
int bundle_extract(Bundle *b, const char *dir, UpkErr *err) _nonnull_(1, 2);
