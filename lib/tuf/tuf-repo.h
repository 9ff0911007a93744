/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A TUF repository on disk, as `updatectl repo` makes and keeps it:
 *
 *   DIR/metadata/  N.root.json and root.json, N.targets.json, N.snapshot.json, timestamp.json (consistent
 *                  snapshots; what a web server publishes, with DIR/targets/)
 *   DIR/targets/   the target files as SHA256.NAME
 *   DIR/keys/      private keys (PEM, mode 0600) as ROLE-KEYID.pem: never published
 *   DIR/repo.json  the expiry period of each role, in seconds (canonical JSON)
 *   DIR/prepared/  root.json or targets.json: the next version, waiting for offline signatures (not
 *                  published)
 *
 * Every metadata file is built with json-c, signed through tuf-sign.h and checked with the client's parser
 * and threshold check (tuf-metadata.h) before it is written. Files are written atomically and in the order
 * clients read them: target files, targets, snapshot, and timestamp last, so a repository is never seen
 * half-written. The clock is the caller's (`now`), so the same inputs and clock give the same bytes with
 * Ed25519 keys. */

#include <time.h>

#include "error.h"
#include "tuf-metadata.h"
#include "tuf-sign.h"

#define TUF_REPO_KEYS_MAX 64 /* keys per role at init; key files read from DIR/keys */

/* The defaults of the expiry periods, in seconds. */
#define TUF_REPO_ROOT_PERIOD      (365 * 86400)
#define TUF_REPO_TARGETS_PERIOD   (90 * 86400)
#define TUF_REPO_SNAPSHOT_PERIOD  (7 * 86400)
#define TUF_REPO_TIMESTAMP_PERIOD (86400)

typedef struct TufRepoInitOptions {
        TufKeyScheme scheme;                    /* of the keys made */
        unsigned threshold[_TUF_ROLE_TYPE_MAX]; /* 0: 1 */
        uint64_t period[_TUF_ROLE_TYPE_MAX];    /* seconds; 0: the default */
        char **key_paths[_TUF_ROLE_TYPE_MAX];   /* existing keys per role (NULL-terminated), not copied */
        time_t now;
} TufRepoInitOptions;

typedef struct TufRepo {
        char *dir, *metadata_dir, *targets_dir, *keys_dir;
        time_t now;
        uint64_t period[_TUF_ROLE_TYPE_MAX];
        TufMetadata *md[_TUF_ROLE_TYPE_MAX]; /* the current metadata of each top-level role */
        TufSigner **signers;                 /* the keys at hand: DIR/keys and tuf_repo_add_key() */
        char **signer_paths;
        size_t n_signers;
        json_object *new_targets; /* the "signed" of the next targets version, once changed */
        char *prepared_dir;
        TufMetadata **delegated; /* the roles the top-level targets delegates to, as published */
        size_t n_delegated;
        json_object *new_delegated;            /* the "signed" of the next version of one of them, */
        const TufMetadata *new_delegated_role; /* this one, once changed */
        /* When the keys at hand fall short of the threshold of targets (tuf_repo_publish()) or of root
         * (tuf_repo_rotate()), sign with those at hand and write DIR/prepared/ROLE.json for
         * tuf_repo_sign() (returning 1) instead of failing. */
        bool prepare;
} TufRepo;

/* DIR/repo.json: {"expires": {ROLE: seconds, ...}} with every top-level role, each period from 1 second to
 * 100 years. parse: CONFIG errors naming `what`, *ret_period untouched; format: canonical JSON, what
 * parse reads back. */
int tuf_repo_conf_parse(const void *data, size_t size, const char *what,
                        uint64_t ret_period[static _TUF_ROLE_TYPE_MAX], UpkErr *err);
int tuf_repo_conf_format(const uint64_t period[static _TUF_ROLE_TYPE_MAX], char **ret, size_t *ret_size);

/* Make DIR (which must not hold metadata/ or keys/ yet) with keys, root version 1 and empty targets,
 * snapshot and timestamp. */
int tuf_repo_init(const char *dir, const TufRepoInitOptions *o, UpkErr *err);

/* Read DIR's metadata (each checked against the root) and the keys in DIR/keys. CONFIG errors for a
 * folder that is not such a repository or a key that does not load. */
int tuf_repo_open(const char *dir, time_t now, TufRepo **ret, UpkErr *err);
TufRepo *tuf_repo_free(TufRepo *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(TufRepo *, tuf_repo_free);

/* Use the private key in `path` too (an offline key). It must be a key of some role of the root:
 * -EPERM (SIGNATURE) otherwise. */
int tuf_repo_add_key(TufRepo *r, const char *path, UpkErr *err);
/* Whether the private key of `keyid` is at hand; its file in *ret_path when so. */
bool tuf_repo_has_key(const TufRepo *r, const char *keyid, const char **ret_path);

/* Copy `path` to DIR/targets/SHA256.NAME and list it as target `name` (a plain file name) with `custom`
 * (an object, referenced) in the top-level targets (`role` NULL) or in the delegated role `role`, whose
 * paths must match `name` (-EPERM otherwise). 0 when added, 1 when the same bytes are listed under that
 * name already; -EEXIST when the name is listed with other bytes. Published by tuf_repo_publish(). */
int tuf_repo_add_target(TufRepo *r, const char *role, const char *name, const char *path,
                        json_object *custom, UpkErr *err);

/* Sign and write what changed: the next targets version (when targets were added) or the next version of
 * the delegated role, then snapshot and timestamp. 1 when the targets were prepared instead (r->prepare). */
int tuf_repo_publish(TufRepo *r, UpkErr *err);

/* Re-sign the timestamp when it expires within half its period, and the snapshot when it expires within
 * half its period or before the new timestamp would (with `force`: both, always). *ret_changed says
 * whether anything was written. */
int tuf_repo_refresh_timestamp(TufRepo *r, bool force, bool *ret_changed, UpkErr *err);

/* Withdraw target `name` from the top-level targets (`role` NULL) or from the delegated role `role` (its
 * file stays in DIR/targets for clients that still read the older metadata); published by
 * tuf_repo_publish(). -ENOENT when it is not listed there. */
int tuf_repo_remove_target(TufRepo *r, const char *role, const char *name, UpkErr *err);

typedef struct TufRepoRotateOptions {
        TufKeyScheme scheme; /* of the keys made */
        unsigned threshold;  /* 0: the role's current one */
        char **key_paths;    /* existing keys to use (NULL-terminated), not copied */
} TufRepoRotateOptions;

/* Replace the keys of top-level role `type`: root version N+1 listing the new keys, signed by the
 * threshold of root keys of version N and of N+1 (so devices walk the chain), then new versions of the
 * rotated role and of those below it signed with the new keys. Key files of keys the root no longer lists
 * move to DIR/keys/retired/. 1 when the root was prepared instead (r->prepare). */
int tuf_repo_rotate(TufRepo *r, TufRoleType type, const TufRepoRotateOptions *o, UpkErr *err);

typedef struct TufRepoSignState {
        uint64_t version;                  /* of the prepared metadata */
        size_t added;                      /* signatures added now */
        size_t valid, valid_new;           /* valid signatures under the current root (and the new root) */
        uint64_t threshold, threshold_new; /* what each asks (threshold_new: 0 for targets) */
        bool published;
        UpkErr blocked; /* complete, but not published here: why (a key missing on this machine) */
} TufRepoSignState;

/* Add signatures with the keys in `key_paths` (NULL-terminated; each must be a key of the role: of the
 * current root, or for root also of the prepared root) to DIR/prepared/ROLE.json (root or targets), and
 * publish it once it meets its thresholds and the keys of what follows it are at hand (snapshot and
 * timestamp, and the new targets keys after a root that rotates them), in the order clients read.
 * Refused (nothing changed): nothing prepared (-ENOENT), a prepared version that no longer follows the
 * published one (-ESTALE), one that has expired (-EKEYEXPIRED), a key outside the role (-EPERM). */
int tuf_repo_sign(TufRepo *r, TufRoleType type, char *const *key_paths, TufRepoSignState *ret, UpkErr *err);

typedef struct TufRepoDelegateOptions {
        const char *name;    /* letters, digits, '-', '_', '.' */
        char **paths;        /* the target name patterns delegated (NULL-terminated) */
        char **key_paths;    /* the role's keys (NULL-terminated), not copied; */
        TufKeyScheme scheme; /* else `threshold` new ones of this scheme in DIR/keys as NAME-KEYID.pem */
        unsigned threshold;  /* 0: 1 */
        bool terminating;
} TufRepoDelegateOptions;

/* Delegate the targets matching `o->paths` to a new role (one level below the top-level targets, searched
 * in the order delegated): the next targets version listing it and its keys, the role's version 1 (no
 * targets) signed with its keys, then snapshot and timestamp. The targets keys must be at hand. -EEXIST
 * when the role exists. */
int tuf_repo_delegate(TufRepo *r, const TufRepoDelegateOptions *o, UpkErr *err);
