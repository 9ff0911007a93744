/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tuf.h"

#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fileio.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "openssl-util.h"
#include "path-util.h"
#include "strv.h"
#include "tuf-metadata.h"
#include "version.h"

#define ROLES_LOADED_MAX (TUF_MAX_DELEGATIONS * 8) /* top-level targets and delegated roles kept */
#define OFFER_PATHS_MAX  100000                    /* distinct target paths looked at for an offer */

struct TufClient {
        char *metadata_dir, *metadata_url, *targets_url, *bootstrap_root;
        TufFetchFunc fetch;
        void *userdata;
        time_t fixed_now;
        unsigned max_root_rotations, max_delegations;
        uint64_t root_max, timestamp_max, snapshot_max, targets_max;

        /* the trusted set of the current refresh */
        time_t now;
        bool ready; /* refresh succeeded: targets may be searched */
        TufMetadata *root, *timestamp, *snapshot;
        TufMetadata **roles; /* "targets" first, then delegated roles as loaded */
        size_t n_roles;
};

/* ---- small helpers ---- */

char *tuf_quote(const char *s)
{
        static const char hexdig[] = "0123456789ABCDEF";
        size_t n = strlen(s);
        char *q = malloc(3 * n + 1), *p = q;

        if (!q)
                return NULL;
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    strchr("_.-~", c))
                        *p++ = (char)c;
                else {
                        *p++ = '%';
                        *p++ = hexdig[c >> 4];
                        *p++ = hexdig[c & 15];
                }
        }
        *p = 0;
        return q;
}

static void format_time(time_t t, char *buf, size_t size)
{
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "%" PRId64, (int64_t)t);
}

static int expired(const TufMetadata *m, time_t now, UpkErr *err)
{
        char n[32];

        if (!tuf_metadata_expired(m, now))
                return 0;
        format_time(now, n, sizeof(n));
        return upk_err(err, UPK_ERR_SIGNATURE, -EKEYEXPIRED, "%s: metadata expired at %s (now %s)",
                       JSON_QUOTE(m->role_name), m->expires_str, n);
}

static void set_free(TufClient *c)
{
        c->ready = false;
        c->root = tuf_metadata_free(c->root);
        c->timestamp = tuf_metadata_free(c->timestamp);
        c->snapshot = tuf_metadata_free(c->snapshot);
        for (size_t i = 0; i < c->n_roles; i++)
                tuf_metadata_free(c->roles[i]);
        c->n_roles = 0;
}

TufClient *tuf_client_free(TufClient *c)
{
        if (!c)
                return NULL;
        set_free(c);
        free(c->roles);
        free(c->metadata_dir);
        free(c->metadata_url);
        free(c->targets_url);
        free(c->bootstrap_root);
        free(c);
        return NULL;
}

int tuf_client_new(const TufOptions *o, TufClient **ret, UpkErr *err)
{
        _cleanup_(tuf_client_freep) TufClient *c = NULL;

        if (!o->metadata_dir || !o->metadata_url || !o->fetch)
                return upk_err(
                        err, UPK_ERR_CONFIG, -EINVAL,
                        "TUF client: metadata directory, metadata URL and fetch function are required");
        c = calloc(1, sizeof(TufClient));
        if (!c)
                return upk_err_oom(err);
        c->metadata_dir = strdup(o->metadata_dir);
        c->metadata_url = strdup(o->metadata_url);
        c->targets_url = o->targets_url ? strdup(o->targets_url) : NULL;
        c->bootstrap_root = o->bootstrap_root ? strdup(o->bootstrap_root) : NULL;
        c->roles = calloc(ROLES_LOADED_MAX, sizeof(TufMetadata *));
        if (!c->metadata_dir || !c->metadata_url || (o->targets_url && !c->targets_url) ||
            (o->bootstrap_root && !c->bootstrap_root) || !c->roles)
                return upk_err_oom(err);
        c->fetch = o->fetch;
        c->userdata = o->userdata;
        c->fixed_now = o->now;
        c->max_root_rotations = o->max_root_rotations ?: TUF_MAX_ROOT_ROTATIONS;
        c->max_delegations = o->max_delegations ?: TUF_MAX_DELEGATIONS;
        c->root_max = o->root_max_length ?: TUF_ROOT_MAX_LENGTH;
        c->timestamp_max = o->timestamp_max_length ?: TUF_TIMESTAMP_MAX_LENGTH;
        c->snapshot_max = o->snapshot_max_length ?: TUF_SNAPSHOT_MAX_LENGTH;
        c->targets_max = o->targets_max_length ?: TUF_TARGETS_MAX_LENGTH;
        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- files and downloads ---- */

static char *role_file_name(const char *role)
{
        _cleanup_free_ char *q = tuf_quote(role);

        return q ? strdup_printf("%s.json", q) : NULL;
}

/* The trusted copy of `role` from metadata_dir; -ENOENT when there is none. */
static int load_local(TufClient *c, const char *role, uint64_t max, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *name = role_file_name(role), *path = NULL;

        if (!name)
                return -ENOMEM;
        path = strdup_printf("%s/%s", c->metadata_dir, name);
        if (!path)
                return -ENOMEM;
        return read_full_file(path, max > SIZE_MAX ? SIZE_MAX : (size_t)max, ret, ret_size);
}

static int persist(TufClient *c, const char *role, const void *data, size_t size, UpkErr *err)
{
        _cleanup_free_ char *name = role_file_name(role);
        int r;

        if (!name)
                return upk_err_oom(err);
        r = mkdir_p(c->metadata_dir, 0755);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: cannot create %s: %m", JSON_QUOTE(role),
                               c->metadata_dir);
        r = write_file_atomic(c->metadata_dir, name, data, size, 0644);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: cannot write %s/%s: %m", JSON_QUOTE(role),
                               c->metadata_dir, name);
        return 0;
}

static int remove_local(TufClient *c, const char *role, UpkErr *err)
{
        _cleanup_free_ char *name = role_file_name(role), *path = NULL;

        if (!name)
                return upk_err_oom(err);
        path = strdup_printf("%s/%s", c->metadata_dir, name);
        if (!path)
                return upk_err_oom(err);
        if (unlink(path) < 0 && errno != ENOENT)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot remove %s: %m", path);
        return 0;
}

/* Download metadata `role` (as VERSION.ROLE.json when version > 0), at most `max` bytes. */
static int download_metadata(TufClient *c, const char *role, uint64_t version, uint64_t max, uint8_t **ret,
                             size_t *ret_size, UpkErr *err)
{
        _cleanup_free_ char *q = tuf_quote(role), *name = NULL, *url = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r;

        if (!q)
                return upk_err_oom(err);
        name = version > 0 ? strdup_printf("%" PRIu64 ".%s.json", version, q) : strdup_printf("%s.json", q);
        if (!name)
                return upk_err_oom(err);
        url = path_join(c->metadata_url, name);
        if (!url)
                return upk_err_oom(err);
        r = c->fetch(c->userdata, url, max, &data, &size, err);
        if (r == -ENOENT)
                return upk_err(err, UPK_ERR_IO, r, "%s: %s was not found", JSON_QUOTE(role), url);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: downloading %s failed: %m", JSON_QUOTE(role), url);
        if (size > max)
                return upk_err(err, UPK_ERR_IO, -EFBIG, "%s: %s is larger than %" PRIu64 " bytes",
                               JSON_QUOTE(role), url, max);
        *ret = TAKE_PTR(data);
        *ret_size = size;
        return 0;
}

/* ---- hashes ---- */

static const EVP_MD *hash_md(const char *algorithm)
{
        static const struct {
                const char *tuf, *openssl;
        } table[] = {
                { "sha224", "SHA224" }, { "sha256", "SHA256" },       { "sha384", "SHA384" },
                { "sha512", "SHA512" }, { "blake2b", "BLAKE2B-512" }, { "blake2s", "BLAKE2S-256" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(table[i].tuf, algorithm))
                        return EVP_get_digestbyname(table[i].openssl);
        return NULL;
}

/* Length (when known) and every hash of a metadata file against the meta entry that describes it. */
static int check_meta_file(const TufMetaFile *f, const char *role, const uint8_t *data, size_t size,
                           UpkErr *err)
{
        if (f->has_length && f->length != size)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG, "%s: %zu bytes, the listed length is %" PRIu64,
                               JSON_QUOTE(role), size, f->length);
        for (size_t i = 0; i < f->n_hashes; i++) {
                const EVP_MD *md = hash_md(f->hashes[i].algorithm);
                uint8_t digest[EVP_MAX_MD_SIZE];
                char hex[2 * EVP_MAX_MD_SIZE + 1];
                unsigned n = 0;

                if (!md)
                        return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                                       "%s: unsupported hash algorithm \"%s\"", JSON_QUOTE(role),
                                       JSON_QUOTE(f->hashes[i].algorithm));
                if (EVP_Digest(data, size, digest, &n, md, NULL) != 1)
                        return upk_err_oom(err);
                hex_encode(digest, n, hex);
                if (!streq(hex, f->hashes[i].hex))
                        return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                                       "%s: %s hash %s differs from the listed %s", JSON_QUOTE(role),
                                       JSON_QUOTE(f->hashes[i].algorithm), hex,
                                       JSON_QUOTE(f->hashes[i].hex));
        }
        return 0;
}

/* ---- 5.2, 5.3: root ---- */

static int load_trusted_root(TufClient *c, UpkErr *err)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *root = NULL;
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        bool bootstrap = false;
        int r;

        r = load_local(c, "root", c->root_max, &data, &size);
        if (r == -ENOENT && c->bootstrap_root) {
                bootstrap = true;
                r = read_full_file(c->bootstrap_root, c->root_max, &data, &size);
                if (r < 0)
                        return upk_err(err, UPK_ERR_IO, r, "root: cannot read the trusted root %s: %m",
                                       c->bootstrap_root);
        } else if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "root: cannot read the trusted %s/root.json: %m",
                               c->metadata_dir);

        r = tuf_metadata_parse(data, size, TUF_ROLE_ROOT, NULL, &root, err);
        if (r < 0)
                return upk_err_prefix(err, "trusted root");
        r = tuf_metadata_verify(root, root, err);
        if (r < 0)
                return upk_err_prefix(err, "trusted root");
        if (bootstrap) {
                r = persist(c, "root", data, size, err);
                if (r < 0)
                        return r;
        }
        c->root = TAKE_PTR(root);
        return 0;
}

/* Whether the keys of `role` differ between two roots. */
static bool role_keys_rotated(const TufMetadata *a, const TufMetadata *b, const char *role)
{
        const TufRole *ra = tuf_metadata_find_role(a, role), *rb = tuf_metadata_find_role(b, role);

        if (!ra || !rb || ra->n_keyids != rb->n_keyids)
                return true;
        for (size_t i = 0; i < ra->n_keyids; i++) {
                bool found = false;
                for (size_t j = 0; j < rb->n_keyids && !found; j++)
                        found = streq(ra->keyids[i], rb->keyids[j]);
                if (!found)
                        return true;
        }
        return false;
}

static int update_root(TufClient *c, UpkErr *err)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *start = NULL;
        _cleanup_free_ char *start_data = NULL;
        size_t start_size = 0;
        int r;

        /* Keep the starting root's roles for 5.3.11. */
        r = load_local(c, "root", c->root_max, &start_data, &start_size);
        if (r >= 0)
                (void)tuf_metadata_parse(start_data, start_size, TUF_ROLE_ROOT, NULL, &start, NULL);

        /* 5.3.1-5.3.9: walk up the chain of roots, one version at a time, at most max_root_rotations. */
        for (unsigned i = 0; i < c->max_root_rotations; i++) {
                _cleanup_(tuf_metadata_freep) TufMetadata *next = NULL;
                _cleanup_free_ uint8_t *data = NULL;
                uint64_t n = c->root->version; /* 5.3.2 */
                size_t size = 0;

                /* 5.3.3: N+1, up to root_max bytes; not available: go on with 5.3.10. */
                r = download_metadata(c, "root", n + 1, c->root_max, &data, &size, err);
                if (r == -ENOENT) {
                        upk_err_clear(err);
                        break;
                }
                if (r < 0)
                        return r;
                r = tuf_metadata_parse(data, size, TUF_ROLE_ROOT, NULL, &next, err);
                if (r < 0)
                        return upk_err_prefix(err, "root version %" PRIu64, n + 1);

                /* 5.3.4: signed by a threshold of the trusted root's root keys and of its own. */
                r = tuf_metadata_verify(c->root, next, err);
                if (r < 0)
                        return upk_err_prefix(err, "root version %" PRIu64 " (keys of version %" PRIu64 ")",
                                              n + 1, n);
                r = tuf_metadata_verify(next, next, err);
                if (r < 0)
                        return upk_err_prefix(err, "root version %" PRIu64 " (its own keys)", n + 1);

                /* 5.3.5: exactly N+1. */
                if (next->version != n + 1)
                        return upk_err(err, next->version < n + 1 ? UPK_ERR_DOWNGRADE : UPK_ERR_FORMAT,
                                       -EBADMSG, "root: %" PRIu64 ".root.json holds version %" PRIu64, n + 1,
                                       next->version);

                /* 5.3.6: its expiry does not matter yet. 5.3.7, 5.3.8: trust it and persist it. */
                r = persist(c, "root", data, size, err);
                if (r < 0)
                        return r;
                tuf_metadata_free(c->root);
                c->root = TAKE_PTR(next);
                /* 5.3.9: repeat. */
        }

        /* 5.3.10: the final root must not be expired. */
        r = expired(c->root, c->now, err);
        if (r < 0)
                return r;

        /* 5.3.11: new timestamp or snapshot keys: forget the trusted timestamp and snapshot (recovery from a
         * fast-forward attack). */
        if (start && start->version != c->root->version &&
            (role_keys_rotated(start, c->root, "timestamp") ||
             role_keys_rotated(start, c->root, "snapshot"))) {
                r = remove_local(c, "timestamp", err);
                if (r < 0)
                        return r;
                r = remove_local(c, "snapshot", err);
                if (r < 0)
                        return r;
        }

        /* 5.3.12: consistent snapshots as the trusted root says (c->root->consistent_snapshot). */
        return 0;
}

/* A local copy of `role` that is signed by the current delegator, or NULL (anything wrong with it only
 * means it is not used). */
static TufMetadata *load_local_verified(TufClient *c, const char *role, TufRoleType type,
                                        const TufMetadata *delegator, uint64_t max, char **ret_data,
                                        size_t *ret_size)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *md = NULL;
        _cleanup_free_ char *data = NULL;
        size_t size = 0;

        if (load_local(c, role, max, &data, &size) < 0)
                return NULL;
        if (tuf_metadata_parse(data, size, type, role, &md, NULL) < 0)
                return NULL;
        if (tuf_metadata_verify(delegator, md, NULL) < 0)
                return NULL;
        if (ret_data) {
                *ret_data = TAKE_PTR(data);
                *ret_size = size;
        }
        return TAKE_PTR(md);
}

/* ---- 5.4: timestamp ---- */

static int update_timestamp(TufClient *c, UpkErr *err)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *trusted = NULL, *ts = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r;

        trusted = load_local_verified(c, "timestamp", TUF_ROLE_TIMESTAMP, c->root, c->timestamp_max, NULL,
                                      NULL);

        /* 5.4.1 */
        r = download_metadata(c, "timestamp", 0, c->timestamp_max, &data, &size, err);
        if (r < 0)
                return r;
        r = tuf_metadata_parse(data, size, TUF_ROLE_TIMESTAMP, NULL, &ts, err);
        if (r < 0)
                return r;
        /* 5.4.2 */
        r = tuf_metadata_verify(c->root, ts, err);
        if (r < 0)
                return r;

        /* 5.4.3 */
        if (trusted) {
                const TufMetaFile *old = tuf_metadata_find_meta(trusted, "snapshot.json"),
                                  *new = tuf_metadata_find_meta(ts, "snapshot.json");

                /* 5.4.3.1 */
                if (ts->version < trusted->version)
                        return upk_err(err, UPK_ERR_DOWNGRADE, -ESTALE,
                                       "timestamp: version %" PRIu64 " is older than the trusted %" PRIu64,
                                       ts->version, trusted->version);
                if (ts->version == trusted->version) {
                        /* Nothing changed: keep the trusted timestamp (still subject to 5.4.4); the rest of
                         * the cycle then finds the trusted snapshot and targets valid and fetches nothing.
                         */
                        r = expired(trusted, c->now, err);
                        if (r < 0)
                                return r;
                        c->timestamp = TAKE_PTR(trusted);
                        return 0;
                }
                /* 5.4.3.2 */
                if (new->version < old->version)
                        return upk_err(err, UPK_ERR_DOWNGRADE, -ESTALE,
                                       "timestamp: snapshot version %" PRIu64
                                       " is older than the trusted %" PRIu64,
                                       new->version, old->version);
        }

        /* 5.4.4 */
        r = expired(ts, c->now, err);
        if (r < 0)
                return r;
        /* 5.4.5 */
        r = persist(c, "timestamp", data, size, err);
        if (r < 0)
                return r;
        c->timestamp = TAKE_PTR(ts);
        return 0;
}

/* ---- 5.5: snapshot ---- */

static int update_snapshot(TufClient *c, UpkErr *err)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *trusted = NULL, *snap = NULL;
        const TufMetaFile *meta = tuf_metadata_find_meta(c->timestamp, "snapshot.json");
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r;

        /* The trusted snapshot: used as it is when it is the one the timestamp names and still valid (then
         * nothing is downloaded), and otherwise as the reference for the rollback checks. */
        trusted =
                load_local_verified(c, "snapshot", TUF_ROLE_SNAPSHOT, c->root, c->snapshot_max, NULL, NULL);
        if (trusted && trusted->version == meta->version && !tuf_metadata_expired(trusted, c->now)) {
                c->snapshot = TAKE_PTR(trusted);
                return 0;
        }

        /* 5.5.1 */
        r = download_metadata(c, "snapshot", c->root->consistent_snapshot ? meta->version : 0,
                              meta->has_length ? meta->length : c->snapshot_max, &data, &size, err);
        if (r < 0)
                return r;
        /* 5.5.2 */
        r = check_meta_file(meta, "snapshot", data, size, err);
        if (r < 0)
                return r;
        r = tuf_metadata_parse(data, size, TUF_ROLE_SNAPSHOT, NULL, &snap, err);
        if (r < 0)
                return r;
        /* 5.5.3 */
        r = tuf_metadata_verify(c->root, snap, err);
        if (r < 0)
                return r;
        /* 5.5.4 */
        if (snap->version != meta->version)
                return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                               "snapshot: version %" PRIu64 " is not the version %" PRIu64
                               " the timestamp lists",
                               snap->version, meta->version);
        /* 5.5.5 */
        if (trusted)
                for (size_t i = 0; i < trusted->n_meta; i++) {
                        const TufMetaFile *o = &trusted->meta[i], *n = tuf_metadata_find_meta(snap, o->name);
                        if (!n)
                                return upk_err(err, UPK_ERR_DOWNGRADE, -ESTALE,
                                               "snapshot: %s is no longer listed", JSON_QUOTE(o->name));
                        if (n->version < o->version)
                                return upk_err(err, UPK_ERR_DOWNGRADE, -ESTALE,
                                               "snapshot: %s version %" PRIu64
                                               " is older than the trusted %" PRIu64,
                                               JSON_QUOTE(o->name), n->version, o->version);
                }
        /* 5.5.6 */
        r = expired(snap, c->now, err);
        if (r < 0)
                return r;
        /* 5.5.7 */
        r = persist(c, "snapshot", data, size, err);
        if (r < 0)
                return r;
        c->snapshot = TAKE_PTR(snap);
        return 0;
}

/* ---- 5.6: targets (top-level and delegated) ---- */

static TufMetadata *loaded_role(TufClient *c, const char *role)
{
        for (size_t i = 0; i < c->n_roles; i++)
                if (streq(c->roles[i]->role_name, role))
                        return c->roles[i];
        return NULL;
}

/* The metadata of a targets `role` delegated by `delegator`: the trusted copy when it is the version the
 * snapshot lists (same length and hashes), signed and not expired; downloaded and checked otherwise. */
static int load_targets(TufClient *c, const char *role, const TufMetadata *delegator, TufMetadata **ret,
                        UpkErr *err)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *md = NULL;
        _cleanup_free_ char *local = NULL, *fname = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        const TufMetaFile *meta;
        size_t size = 0, local_size = 0;
        int r;

        md = loaded_role(c, role);
        if (md) {
                *ret = TAKE_PTR(md); /* borrowed */
                return 0;
        }
        if (c->n_roles >= ROLES_LOADED_MAX)
                return upk_err(err, UPK_ERR_FORMAT, -E2BIG, "%s: more than %d targets roles",
                               JSON_QUOTE(role), ROLES_LOADED_MAX);
        fname = strdup_printf("%s.json", role);
        if (!fname)
                return upk_err_oom(err);
        meta = tuf_metadata_find_meta(c->snapshot, fname);
        if (!meta)
                return upk_err(err, UPK_ERR_FORMAT, -ENOENT, "%s: the snapshot does not list %s.json",
                               JSON_QUOTE(role), JSON_QUOTE(role));

        md = load_local_verified(c, role, TUF_ROLE_TARGETS, delegator,
                                 meta->has_length ? meta->length : c->targets_max, &local, &local_size);
        if (md && (md->version != meta->version || tuf_metadata_expired(md, c->now) ||
                   check_meta_file(meta, role, (const uint8_t *)local, local_size, NULL) < 0))
                md = tuf_metadata_free(md);

        if (!md) {
                /* 5.6.1 */
                r = download_metadata(c, role, c->root->consistent_snapshot ? meta->version : 0,
                                      meta->has_length ? meta->length : c->targets_max, &data, &size, err);
                if (r < 0)
                        return r;
                /* 5.6.2 */
                r = check_meta_file(meta, role, data, size, err);
                if (r < 0)
                        return r;
                r = tuf_metadata_parse(data, size, TUF_ROLE_TARGETS, role, &md, err);
                if (r < 0)
                        return r;
                /* 5.6.3 */
                r = tuf_metadata_verify(delegator, md, err);
                if (r < 0)
                        return r;
                /* 5.6.4 */
                if (md->version != meta->version)
                        return upk_err(err, UPK_ERR_FORMAT, -EBADMSG,
                                       "%s: version %" PRIu64 " is not the version %" PRIu64
                                       " the snapshot lists",
                                       JSON_QUOTE(role), md->version, meta->version);
                /* 5.6.5 */
                r = expired(md, c->now, err);
                if (r < 0)
                        return r;
                /* 5.6.6 */
                r = persist(c, role, data, size, err);
                if (r < 0)
                        return r;
        }
        c->roles[c->n_roles++] = md;
        *ret = TAKE_PTR(md);
        return 0;
}

int tuf_refresh(TufClient *c, UpkErr *err)
{
        TufMetadata *targets = NULL;
        int r;

        set_free(c);

        /* 5.1: the fixed update start time. */
        c->now = c->fixed_now ?: time(NULL);

        /* 5.2 */
        r = load_trusted_root(c, err);
        if (r < 0)
                return r;
        /* 5.3 */
        r = update_root(c, err);
        if (r < 0)
                goto fail;
        /* 5.4 */
        r = update_timestamp(c, err);
        if (r < 0)
                goto fail;
        /* 5.5 */
        r = update_snapshot(c, err);
        if (r < 0)
                goto fail;
        /* 5.6.1-5.6.6 */
        r = load_targets(c, "targets", c->root, &targets, err);
        if (r < 0)
                goto fail;
        c->ready = true;
        return 0;
fail:
        set_free(c);
        return r;
}

/* ---- 5.6.7: searching the delegations ---- */

TufTarget *tuf_target_free(TufTarget *t)
{
        if (!t)
                return NULL;
        free(t->path);
        free(t->role);
        free(t->url);
        for (size_t i = 0; i < t->n_hashes; i++) {
                free(t->hashes[i].algorithm);
                free(t->hashes[i].hex);
        }
        free(t->hashes);
        free(t->custom);
        free(t->compatible);
        free(t->version);
        free(t->manifest_sha256);
        free(t);
        return NULL;
}

static char *custom_string(json_object *custom, const char *key)
{
        json_object *v;

        if (!custom || !json_object_is_type(custom, json_type_object) ||
            !json_object_object_get_ex(custom, key, &v) || !json_object_is_type(v, json_type_string) ||
            strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
                return NULL;
        return strdup(json_object_get_string(v));
}

static int make_target(TufClient *c, const TufMetadata *role, const TufTargetFile *f, TufTarget **ret)
{
        _cleanup_(tuf_target_freep) TufTarget *t = calloc(1, sizeof(TufTarget));
        const char *prefix = NULL;

        if (!t)
                return -ENOMEM;
        t->path = strdup(f->path);
        t->role = strdup(role->role_name);
        t->hashes = calloc(f->n_hashes, sizeof(TufTargetHash));
        if (!t->path || !t->role || !t->hashes)
                return -ENOMEM;
        t->length = f->length;
        for (size_t i = 0; i < f->n_hashes; i++) {
                t->hashes[i].algorithm = strdup(f->hashes[i].algorithm);
                t->hashes[i].hex = strdup(f->hashes[i].hex);
                t->n_hashes++;
                if (!t->hashes[i].algorithm || !t->hashes[i].hex)
                        return -ENOMEM;
                if (!prefix &&
                    (streq(f->hashes[i].algorithm, "sha256") || streq(f->hashes[i].algorithm, "sha512")))
                        prefix = f->hashes[i].hex;
        }
        if (!prefix)
                prefix = f->hashes[0].hex;
        if (f->custom) {
                const char *s = json_object_to_json_string_ext(f->custom, JSON_C_TO_STRING_PLAIN);
                t->custom = s ? strdup(s) : NULL;
                if (!t->custom)
                        return -ENOMEM;
                t->compatible = custom_string(f->custom, "compatible");
                t->version = custom_string(f->custom, "version");
                t->has_manifest_sha256 = json_object_is_type(f->custom, json_type_object) &&
                                         json_object_object_get_ex(f->custom, "manifest_sha256", NULL);
                t->manifest_sha256 = custom_string(f->custom, "manifest_sha256");
        }
        if (c->targets_url) {
                /* 5.7.3: HASH.FILENAME under consistent snapshots, in the target's own directory. */
                const char *base = path_basename(f->path);
                _cleanup_free_ char *name = NULL;
                if (c->root->consistent_snapshot)
                        name = strdup_printf("%.*s%s.%s", (int)(base - f->path), f->path, prefix, base);
                else
                        name = strdup(f->path);
                if (!name)
                        return -ENOMEM;
                t->url = path_join(c->targets_url, name);
                if (!t->url)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

typedef struct Pending {
        const char *role; /* owned by the delegator's metadata, which stays loaded */
        const TufMetadata *parent;
} Pending;

int tuf_get_target_info(TufClient *c, const char *target_path, TufTarget **ret, UpkErr *err)
{
        Pending stack[2 * TUF_DELEGATIONS_MAX];
        const char *visited[ELEMENTSOF(stack)];
        size_t n_stack = 0, n_visited = 0;
        int r;

        if (!c->ready)
                return upk_err(err, UPK_ERR_IO, -ESTALE, "TUF: no successful refresh to search targets in");
        if (strlen(target_path) > TUF_TARGET_PATH_MAX)
                return upk_err(err, UPK_ERR_FORMAT, -ENAMETOOLONG, "target path longer than %d bytes",
                               TUF_TARGET_PATH_MAX);

        /* 5.6.7: pre-order depth-first, beginning with the top-level targets role. */
        stack[n_stack++] = (Pending){ .role = "targets", .parent = c->root };
        while (n_stack > 0 && n_visited <= c->max_delegations && n_visited < ELEMENTSOF(visited)) {
                Pending p = stack[--n_stack];
                const TufTargetFile *f;
                TufMetadata *md = NULL;
                Pending children[TUF_DELEGATIONS_MAX];
                bool seen = false;
                size_t n_children = 0;

                /* 5.6.7.1: skip a role visited before (cycles). */
                for (size_t i = 0; i < n_visited && !seen; i++)
                        seen = streq(visited[i], p.role);
                if (seen)
                        continue;
                r = load_targets(c, p.role, p.parent, &md, err);
                if (r < 0)
                        return upk_err_prefix(err, "searching for target \"%s\"", JSON_QUOTE(target_path));
                f = tuf_metadata_find_target(md, target_path);
                if (f)
                        return make_target(c, md, f, ret);
                visited[n_visited++] = md->role_name;

                /* 5.6.7.2: the delegations in order; a terminating one that matches ends the backtracking.
                 */
                for (size_t i = 0; i < md->n_roles && n_children < ELEMENTSOF(children); i++) {
                        const TufRole *d = &md->roles[i];
                        if (!tuf_role_matches_path(d, target_path))
                                continue;
                        children[n_children++] = (Pending){ .role = d->name, .parent = md };
                        if (d->terminating) {
                                n_stack = 0;
                                break;
                        }
                }
                /* pushed in reverse, so the first delegation is searched first */
                while (n_children > 0 && n_stack < ELEMENTSOF(stack))
                        stack[n_stack++] = children[--n_children];
        }
        /* 5.7.2: no role has it. */
        *ret = NULL;
        return 0;
}

/* ---- the offer ---- */

int tuf_find_offer(TufClient *c, const char *compatible, const char *installed_version, TufTarget **ret,
                   UpkErr *err)
{
        _cleanup_(tuf_target_freep) TufTarget *best = NULL;
        Pending stack[2 * TUF_DELEGATIONS_MAX];
        const char *visited[TUF_MAX_DELEGATIONS + 1];
        size_t n_stack = 0, n_visited = 0, n_paths = 0;
        Version installed = {}, best_version = {};
        _cleanup_strv_free_ char **paths = NULL;
        int r = 0;

        if (!c->ready)
                return upk_err(err, UPK_ERR_IO, -ESTALE, "TUF: no successful refresh to search targets in");
        if (installed_version && version_parse(installed_version, &installed) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "installed version \"%s\" is not a semantic version",
                               JSON_QUOTE(installed_version));
        paths = calloc(OFFER_PATHS_MAX + 1, sizeof(char *));
        if (!paths)
                return upk_err_oom(err);

        /* Every target path of every role reachable from the top-level targets role, in pre-order. */
        stack[n_stack++] = (Pending){ .role = "targets", .parent = c->root };
        while (n_stack > 0 && n_visited < c->max_delegations && n_visited < ELEMENTSOF(visited)) {
                Pending p = stack[--n_stack];
                TufMetadata *md = NULL;
                bool seen = false;

                for (size_t i = 0; i < n_visited && !seen; i++)
                        seen = streq(visited[i], p.role);
                if (seen)
                        continue;
                r = load_targets(c, p.role, p.parent, &md, err);
                if (r < 0)
                        return r;
                visited[n_visited++] = md->role_name;
                for (size_t i = 0; i < md->n_targets && n_paths < OFFER_PATHS_MAX; i++)
                        if (!strv_contains(paths, md->targets[i].path)) {
                                paths[n_paths] = strdup(md->targets[i].path);
                                if (!paths[n_paths])
                                        return upk_err_oom(err);
                                n_paths++;
                        }
                for (size_t i = md->n_roles; i > 0 && n_stack < ELEMENTSOF(stack); i--)
                        stack[n_stack++] = (Pending){ .role = md->roles[i - 1].name, .parent = md };
        }

        /* Each path as the most trusted role for it says (priorities, terminating delegations, paths). */
        for (size_t i = 0; i < n_paths; i++) {
                _cleanup_(tuf_target_freep) TufTarget *t = NULL;
                Version v;

                r = tuf_get_target_info(c, paths[i], &t, err);
                if (r < 0)
                        return r;
                if (!t || !t->compatible || !t->version || !streq(t->compatible, compatible))
                        continue;
                if (version_parse(t->version, &v) < 0)
                        continue;
                if (installed_version && version_compare(&v, &installed) <= 0)
                        continue;
                if (best && version_compare(&v, &best_version) <= 0)
                        continue;
                tuf_target_free(best);
                best = TAKE_PTR(t);
                best_version = v;
        }
        *ret = TAKE_PTR(best);
        return 0;
}

/* ---- 5.7.3: the target's bytes ---- */

struct TufHasher {
        uint64_t length, seen;
        const TufTarget *target;
        EVP_MD_CTX **ctx;
        size_t n;
        bool unsupported; /* an algorithm this build does not have */
        char *unsupported_name;
};

TufHasher *tuf_hasher_free(TufHasher *h)
{
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n; i++)
                EVP_MD_CTX_free(h->ctx[i]);
        free(h->ctx);
        free(h->unsupported_name);
        free(h);
        return NULL;
}

int tuf_hasher_new(const TufTarget *t, TufHasher **ret, UpkErr *err)
{
        _cleanup_(tuf_hasher_freep) TufHasher *h = calloc(1, sizeof(TufHasher));

        if (!h)
                return upk_err_oom(err);
        h->target = t;
        h->length = t->length;
        h->ctx = calloc(t->n_hashes ?: 1, sizeof(EVP_MD_CTX *));
        if (!h->ctx)
                return upk_err_oom(err);
        for (size_t i = 0; i < t->n_hashes; i++) {
                const EVP_MD *md = hash_md(t->hashes[i].algorithm);
                if (!md) {
                        h->unsupported = true;
                        h->unsupported_name = strdup(t->hashes[i].algorithm);
                        if (!h->unsupported_name)
                                return upk_err_oom(err);
                        break;
                }
                h->ctx[h->n] = EVP_MD_CTX_new();
                if (!h->ctx[h->n])
                        return upk_err_oom(err);
                h->n++;
                if (EVP_DigestInit_ex(h->ctx[h->n - 1], md, NULL) != 1)
                        return upk_err(err, UPK_ERR_PAYLOAD, -ENOMEM, "target %s: cannot start a %s digest",
                                       JSON_QUOTE(t->path), JSON_QUOTE(t->hashes[i].algorithm));
        }
        *ret = TAKE_PTR(h);
        return 0;
}

int tuf_hasher_update(TufHasher *h, const void *data, size_t size, UpkErr *err)
{
        if (size > h->length - h->seen)
                return upk_err(err, UPK_ERR_PAYLOAD, -EFBIG,
                               "target %s: more than the %" PRIu64 " bytes the metadata allows",
                               JSON_QUOTE(h->target->path), h->length);
        h->seen += size;
        for (size_t i = 0; i < h->n; i++)
                if (EVP_DigestUpdate(h->ctx[i], data, size) != 1)
                        return upk_err_oom(err);
        return 0;
}

int tuf_hasher_finish(TufHasher *h, UpkErr *err)
{
        if (h->unsupported)
                return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                               "target %s: hash algorithm \"%s\" is not supported, cannot verify it",
                               JSON_QUOTE(h->target->path), JSON_QUOTE(h->unsupported_name));
        if (h->seen != h->length)
                return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                               "target %s: %" PRIu64 " bytes, the metadata says %" PRIu64,
                               JSON_QUOTE(h->target->path), h->seen, h->length);
        for (size_t i = 0; i < h->n; i++) {
                uint8_t digest[EVP_MAX_MD_SIZE];
                char hex[2 * EVP_MAX_MD_SIZE + 1];
                unsigned n = 0;

                if (EVP_DigestFinal_ex(h->ctx[i], digest, &n) != 1)
                        return upk_err_oom(err);
                hex_encode(digest, n, hex);
                if (!streq(hex, h->target->hashes[i].hex))
                        return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                                       "target %s: %s hash %s differs from the metadata's %s",
                                       JSON_QUOTE(h->target->path),
                                       JSON_QUOTE(h->target->hashes[i].algorithm), hex,
                                       JSON_QUOTE(h->target->hashes[i].hex));
        }
        return 0;
}

int tuf_target_verify(const TufTarget *t, const void *data, size_t size, UpkErr *err)
{
        _cleanup_(tuf_hasher_freep) TufHasher *h = NULL;
        int r;

        r = tuf_hasher_new(t, &h, err);
        if (r < 0)
                return r;
        r = tuf_hasher_update(h, data, size, err);
        if (r < 0)
                return r;
        return tuf_hasher_finish(h, err);
}
