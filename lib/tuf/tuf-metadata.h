/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* TUF metadata (specification 1.0): the signed envelope, the four top-level roles and delegated targets
 * roles, parsed strictly from JSON into structures, and signature thresholds checked over the canonical
 * JSON of "signed". Unknown keys are allowed (the specification asks to keep them: they are signed). */

#include <json-c/json.h>
#include <time.h>

#include "error.h"
#include "tuf-keys.h"

#define TUF_ROLE_NAME_MAX   255  /* bytes of a delegated role name */
#define TUF_TARGET_PATH_MAX 4096 /* bytes of a target path */
#define TUF_KEYS_MAX        1024 /* keys in one "keys" object */
#define TUF_KEYIDS_MAX      1024 /* keyids of one role */
#define TUF_SIGNATURES_MAX  1024
#define TUF_DELEGATIONS_MAX 1024 /* delegated roles in one targets role */
#define TUF_PATTERNS_MAX    1024 /* paths or path_hash_prefixes of one delegation */
#define TUF_HASHES_MAX      16
#define TUF_HASH_HEX_MAX    256
#define TUF_THRESHOLD_MAX   1024
#define TUF_DEPTH_MAX       32                  /* JSON nesting of metadata (custom fields included) */
#define TUF_LENGTH_MAX      (UINT64_C(1) << 46) /* 64 TiB: any length above is an attack */
#define TUF_VERSION_MAX     (UINT64_C(1) << 53)

typedef enum TufRoleType {
        TUF_ROLE_ROOT,
        TUF_ROLE_TIMESTAMP,
        TUF_ROLE_SNAPSHOT,
        TUF_ROLE_TARGETS,
        _TUF_ROLE_TYPE_MAX,
        _TUF_ROLE_TYPE_INVALID = -EINVAL,
} TufRoleType;

const char *tuf_role_type_to_string(TufRoleType t);

typedef struct TufHash {
        char *algorithm; /* "sha256", "sha512", ... */
        char *hex;
} TufHash;

typedef struct TufRole {
        char *name;
        char **keyids;
        size_t n_keyids;
        uint64_t threshold;
        /* delegations only */
        bool terminating;
        char **paths; /* exactly one of paths and prefixes is non-NULL for a delegation */
        size_t n_paths;
        char **prefixes;
        size_t n_prefixes;
} TufRole;

typedef struct TufMetaFile {
        char *name; /* "snapshot.json", "targets.json", "ROLE.json" */
        uint64_t version;
        uint64_t length; /* 0 when absent */
        bool has_length;
        TufHash *hashes;
        size_t n_hashes;
} TufMetaFile;

typedef struct TufTargetFile {
        char *path;
        uint64_t length;
        TufHash *hashes;
        size_t n_hashes;
        json_object *custom; /* borrowed from the document; NULL when absent */
} TufTargetFile;

typedef struct TufSignature {
        char *keyid;
        char *sig; /* hex */
} TufSignature;

typedef struct TufMetadata {
        TufRoleType type;
        char *role_name; /* "root", "timestamp", "snapshot", "targets" or the delegated name */
        json_object *doc;
        char *signed_bytes; /* canonical JSON of "signed" */
        size_t signed_size;
        TufSignature *signatures;
        size_t n_signatures;
        uint64_t version;
        time_t expires;
        char expires_str[32];

        /* root; and the delegations' keys and roles of a targets role */
        TufKey **keys;
        size_t n_keys;
        TufRole *roles;
        size_t n_roles;
        bool consistent_snapshot;
        bool has_delegations;

        /* timestamp and snapshot */
        TufMetaFile *meta;
        size_t n_meta;

        /* targets */
        TufTargetFile *targets;
        size_t n_targets;
} TufMetadata;

/* Parse data[0..size) as metadata of `type` for role `role_name` (NULL: the type's name). FORMAT errors,
 * "ROLE: reason". */
int tuf_metadata_parse(const void *data, size_t size, TufRoleType type, const char *role_name,
                       TufMetadata **ret, UpkErr *err);
TufMetadata *tuf_metadata_free(TufMetadata *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(TufMetadata *, tuf_metadata_free);

/* The role `name` as delegated by `delegator` (a root: a top-level role; a targets role: a delegation). */
const TufRole *tuf_metadata_find_role(const TufMetadata *delegator, const char *name);
const TufMetaFile *tuf_metadata_find_meta(const TufMetadata *m, const char *name);
const TufTargetFile *tuf_metadata_find_target(const TufMetadata *m, const char *path);

/* How many distinct keys of the role `delegator` gives `md->role_name` have a valid signature on `md`, and
 * the role's threshold. -ENOENT when the delegator has no such role. */
int tuf_metadata_count_valid(const TufMetadata *delegator, const TufMetadata *md, size_t *ret_valid,
                             uint64_t *ret_threshold);
/* Check that `md` carries valid signatures of at least the threshold of distinct keys that `delegator`
 * gives role `md->role_name`. 0, or -EPERM with a SIGNATURE error "ROLE: signature threshold not met: N of
 * T valid signatures"; -ENOENT (SIGNATURE) when the delegator has no such role. */
int tuf_metadata_verify(const TufMetadata *delegator, const TufMetadata *md, UpkErr *err);

bool tuf_metadata_expired(const TufMetadata *m, time_t now);

/* Whether `path` is in the delegation's paths (python-tuf's segment-wise fnmatch) or hash prefixes. */
bool tuf_role_matches_path(const TufRole *r, const char *path);
