/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The client side of The Update Framework 1.0 ("Detailed client workflow", steps 5.1 to 5.7): a trusted
 * root (from the data dir, or the configured bootstrap root), root rotation, timestamp, snapshot and
 * top-level targets with thresholds, rollback and freeze checks, hashes and lengths; delegated targets
 * searched on demand; consistent snapshots. Trusted metadata lives in `metadata_dir` as ROLE.json (a
 * delegated role's name percent-encoded like Python's urllib.parse.quote(name, "")), each file replaced
 * atomically, and only once it has passed every check: a failed refresh keeps what was trusted and the
 * next refresh starts over from it.
 *
 * Errors: SIGNATURE for signatures, thresholds and expiry ("timestamp: signature threshold not met: 1 of 2
 * valid signatures", "targets: expired at 2026-01-01T00:00:00Z"); DOWNGRADE for rollbacks ("snapshot:
 * version 3 is older than the trusted 5"); FORMAT for malformed metadata, mismatched versions, lengths and
 * hashes of metadata; IO for downloads and files; PAYLOAD for a target whose bytes do not match.
 *
 * Nothing here blocks on anything but the fetch callback, which the caller provides (a blocking download
 * bounded by max_length, called from the caller's worker thread). */

#include <time.h>

#include "error.h"

#define TUF_MAX_ROOT_ROTATIONS   32
#define TUF_MAX_DELEGATIONS      32
#define TUF_ROOT_MAX_LENGTH      512000u
#define TUF_TIMESTAMP_MAX_LENGTH 16384u
#define TUF_SNAPSHOT_MAX_LENGTH  2000000u /* when the timestamp gives no length */
#define TUF_TARGETS_MAX_LENGTH   5000000u /* when the snapshot gives no length */
#define TUF_URL_MAX              8192

/* Download `url`, at most `max_length` bytes (abort beyond: -EFBIG). 0 with a malloc()ed buffer in
 * *ret_data (the caller frees it), -ENOENT when the server says 404 (or 403), another -errno with `err`
 * filled (UPK_ERR_IO) otherwise. */
typedef int (*TufFetchFunc)(void *userdata, const char *url, uint64_t max_length, uint8_t **ret_data,
                            size_t *ret_size, UpkErr *err);

typedef struct TufOptions {
        const char *metadata_dir;   /* trusted metadata; created when missing */
        const char *metadata_url;   /* ".../metadata" (a trailing '/' is optional) */
        const char *targets_url;    /* ".../targets" */
        const char *bootstrap_root; /* a root.json used when metadata_dir has none; may be NULL */
        TufFetchFunc fetch;
        void *userdata;
        time_t now;                  /* the fixed update start time; 0: the clock at each refresh */
        unsigned max_root_rotations; /* 0: TUF_MAX_ROOT_ROTATIONS */
        unsigned max_delegations;    /* roles visited in one search; 0: TUF_MAX_DELEGATIONS */
        uint64_t root_max_length, timestamp_max_length, snapshot_max_length,
                targets_max_length; /* 0: defaults */
} TufOptions;

typedef struct TufTargetHash {
        char *algorithm;
        char *hex;
} TufTargetHash;

typedef struct TufTarget {
        char *path; /* the target path */
        char *role; /* the role that listed it */
        char *url;  /* where to download it (with the hash prefix under consistent snapshots) */
        uint64_t length;
        TufTargetHash *hashes;
        size_t n_hashes;
        char *custom;     /* the "custom" object as JSON text, NULL when none */
        char *compatible; /* custom.compatible, NULL when absent or not a string */
        char *version;    /* custom.version, likewise */
        /* custom.manifest_sha256: the SHA-256 (hex) of the bundle's manifest.json bytes, which the
         * client checks before it installs; `has_manifest_sha256` when the key is there at all (then a
         * NULL value was not a string: nothing can match it). */
        bool has_manifest_sha256;
        char *manifest_sha256;
} TufTarget;

typedef struct TufClient TufClient;

int tuf_client_new(const TufOptions *o, TufClient **ret, UpkErr *err);
TufClient *tuf_client_free(TufClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(TufClient *, tuf_client_free);

/* Steps 5.1 to 5.6.6: root, timestamp, snapshot and top-level targets. */
int tuf_refresh(TufClient *c, UpkErr *err);

/* Step 5.6.7 and 5.7.1-2: the target's information from the most trusted role that has it (pre-order
 * depth-first through the delegations, terminating ones honoured, at most max_delegations roles). 0 with
 * *ret NULL when no role has it. Needs a successful tuf_refresh(). */
int tuf_get_target_info(TufClient *c, const char *target_path, TufTarget **ret, UpkErr *err);

/* The newest target (by semantic version) whose custom.compatible equals `compatible` and whose
 * custom.version is above `installed_version` (NULL: any version), among the targets of the top-level
 * role and of every delegated role reachable from it (each path resolved by tuf_get_target_info(), so
 * delegation priorities and paths apply). 0 with *ret NULL when there is none. */
int tuf_find_offer(TufClient *c, const char *compatible, const char *installed_version, TufTarget **ret,
                   UpkErr *err);

TufTarget *tuf_target_free(TufTarget *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(TufTarget *, tuf_target_free);

/* Step 5.7.3 while the bytes stream: feed them all, then finish. More bytes than the target's length fail
 * at once (-EFBIG), so the caller can cut the transfer off; a short stream or a hash that differs fails
 * in finish (-EBADMSG). Errors are UPK_ERR_PAYLOAD. A hash algorithm this build does not know is a
 * mismatch (the target cannot be verified). */
typedef struct TufHasher TufHasher;
int tuf_hasher_new(const TufTarget *t, TufHasher **ret, UpkErr *err);
int tuf_hasher_update(TufHasher *h, const void *data, size_t size, UpkErr *err);
int tuf_hasher_finish(TufHasher *h, UpkErr *err);
TufHasher *tuf_hasher_free(TufHasher *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(TufHasher *, tuf_hasher_free);

/* The whole target in memory against its length and hashes: 0 or -EBADMSG/-EFBIG (UPK_ERR_PAYLOAD). */
int tuf_target_verify(const TufTarget *t, const void *data, size_t size, UpkErr *err);

/* Python's urllib.parse.quote(s, safe=""): the file and URL name of a role. NULL on OOM. */
char *tuf_quote(const char *s);
