/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tuf-repo.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "openssl-util.h"
#include "path-util.h"
#include "strv.h"
#include "tuf-json.h"

#define SPEC_VERSION       "1.0.31"
#define REPO_CONF          "repo.json"
#define REPO_CONF_MAX      4096
#define METADATA_FILE_MAX  (16u * 1024u * 1024u)
#define COPY_BUFFER        (256u * 1024u)
#define TARGET_NAME_MAX    255
#define PERIOD_MAX         (UINT64_C(100) * 365 * 86400)
#define KEY_FILES_MAX      1024
#define PREPARED_DIR       "prepared"
#define DELEGATED_NAME_MAX 64

static inline void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

static const uint64_t default_period[_TUF_ROLE_TYPE_MAX] = {
        [TUF_ROLE_ROOT] = TUF_REPO_ROOT_PERIOD,
        [TUF_ROLE_TIMESTAMP] = TUF_REPO_TIMESTAMP_PERIOD,
        [TUF_ROLE_SNAPSHOT] = TUF_REPO_SNAPSHOT_PERIOD,
        [TUF_ROLE_TARGETS] = TUF_REPO_TARGETS_PERIOD,
};

static void format_expires(time_t t, char buf[static 32])
{
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, 32, "9999-12-31T23:59:59Z");
}

static json_object *new_signed(TufRoleType type, uint64_t version, time_t expires)
{
        json_object *o = json_object_new_object();
        char buf[32];

        if (!o)
                return NULL;
        format_expires(expires, buf);
        json_object_object_add(o, "_type", json_object_new_string(tuf_role_type_to_string(type)));
        json_object_object_add(o, "spec_version", json_object_new_string(SPEC_VERSION));
        json_object_object_add(o, "version", json_object_new_uint64(version));
        json_object_object_add(o, "expires", json_object_new_string(buf));
        return o;
}

static void set_version_expires(json_object *s, uint64_t version, time_t expires)
{
        char buf[32];

        format_expires(expires, buf);
        json_object_object_add(s, "version", json_object_new_uint64(version));
        json_object_object_add(s, "expires", json_object_new_string(buf));
}

/* ---- the repository object ---- */

TufRepo *tuf_repo_free(TufRepo *r)
{
        if (!r)
                return NULL;
        free(r->dir);
        free(r->metadata_dir);
        free(r->targets_dir);
        free(r->keys_dir);
        free(r->prepared_dir);
        for (size_t i = 0; i < r->n_delegated; i++)
                tuf_metadata_free(r->delegated[i]);
        free(r->delegated);
        if (r->new_delegated)
                json_object_put(r->new_delegated);
        for (size_t i = 0; i < _TUF_ROLE_TYPE_MAX; i++)
                tuf_metadata_free(r->md[i]);
        for (size_t i = 0; i < r->n_signers; i++) {
                tuf_signer_free(r->signers[i]);
                free(r->signer_paths[i]);
        }
        free(r->signers);
        free(r->signer_paths);
        if (r->new_targets)
                json_object_put(r->new_targets);
        free(r);
        return NULL;
}

static int repo_alloc(const char *dir, time_t now, TufRepo **ret)
{
        _cleanup_(tuf_repo_freep) TufRepo *r = calloc(1, sizeof(TufRepo));

        if (!r)
                return -ENOMEM;
        r->now = now;
        r->dir = strdup(dir);
        r->metadata_dir = path_join(dir, "metadata");
        r->targets_dir = path_join(dir, "targets");
        r->keys_dir = path_join(dir, "keys");
        r->prepared_dir = path_join(dir, PREPARED_DIR);
        if (!r->dir || !r->metadata_dir || !r->targets_dir || !r->keys_dir || !r->prepared_dir)
                return -ENOMEM;
        *ret = TAKE_PTR(r);
        return 0;
}

/* Take ownership of `s`. */
static int repo_keep_signer(TufRepo *r, TufSigner *s, const char *path, UpkErr *err)
{
        TufSigner **v;
        char **p;

        for (size_t i = 0; i < r->n_signers; i++)
                if (streq(r->signers[i]->keyid, s->keyid)) {
                        tuf_signer_free(s);
                        return 0;
                }
        v = reallocarray(r->signers, r->n_signers + 1, sizeof(TufSigner *));
        if (!v) {
                tuf_signer_free(s);
                return upk_err_oom(err);
        }
        r->signers = v;
        p = reallocarray(r->signer_paths, r->n_signers + 1, sizeof(char *));
        if (!p) {
                tuf_signer_free(s);
                return upk_err_oom(err);
        }
        r->signer_paths = p;
        r->signer_paths[r->n_signers] = strdup(path);
        if (!r->signer_paths[r->n_signers]) {
                tuf_signer_free(s);
                return upk_err_oom(err);
        }
        r->signers[r->n_signers++] = s;
        return 0;
}

bool tuf_repo_has_key(const TufRepo *r, const char *keyid, const char **ret_path)
{
        for (size_t i = 0; i < r->n_signers; i++)
                if (streq(r->signers[i]->keyid, keyid)) {
                        if (ret_path)
                                *ret_path = r->signer_paths[i];
                        return true;
                }
        return false;
}

static const TufSigner *find_signer(const TufRepo *r, const char *keyid)
{
        for (size_t i = 0; i < r->n_signers; i++)
                if (streq(r->signers[i]->keyid, keyid))
                        return r->signers[i];
        return NULL;
}

/* The keys at hand for `role` of the root, in the root's order: at least its threshold of them, or (with
 * `short_ok`) as many as there are. */
static int role_signers_at_hand(const TufRepo *r, const TufMetadata *root, const char *role, bool short_ok,
                                TufSigner ***ret, size_t *ret_n, UpkErr *err)
{
        const TufRole *ro = tuf_metadata_find_role(root, role);
        _cleanup_free_ TufSigner **v = NULL;
        size_t n = 0;

        if (!ro)
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT, "%s: no such role in the root", role);
        v = calloc(ro->n_keyids ?: 1, sizeof(TufSigner *));
        if (!v)
                return upk_err_oom(err);
        for (size_t i = 0; i < ro->n_keyids; i++) {
                const TufSigner *s = find_signer(r, ro->keyids[i]);
                if (s)
                        v[n++] = (TufSigner *)s;
        }
        if (n < ro->threshold && !short_ok)
                return upk_err(err, UPK_ERR_SIGNATURE, -ENOKEY,
                               "%s: %zu of the %" PRIu64 " keys needed to sign are at hand (in %s/keys or "
                               "given with --key)",
                               role, n, ro->threshold, r->dir);
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return n >= ro->threshold;
}

static int role_signers(const TufRepo *r, const TufMetadata *root, const char *role, TufSigner ***ret,
                        size_t *ret_n, UpkErr *err)
{
        int q = role_signers_at_hand(r, root, role, false, ret, ret_n, err);
        return q < 0 ? q : 0;
}

static int check_root_current(const TufRepo *r, UpkErr *err)
{
        const TufMetadata *root = r->md[TUF_ROLE_ROOT];

        if (tuf_metadata_expired(root, r->now))
                return upk_err(err, UPK_ERR_SIGNATURE, -EKEYEXPIRED,
                               "root version %" PRIu64 " expired at %s: devices refuse everything signed "
                               "under it; sign a new root first",
                               root->version, root->expires_str);
        return 0;
}

/* Sign `signed_obj` as `role` (its keys as `delegator`, a root or a targets role, gives them), parse the
 * result with the client's parser and check its threshold, so nothing is written that a device would
 * refuse. */
static int sign_as(const TufRepo *r, const TufMetadata *delegator, TufRoleType type, const char *role,
                   json_object *signed_obj, char **ret, size_t *ret_size, TufMetadata **ret_md, UpkErr *err)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *m = NULL;
        _cleanup_free_ TufSigner **signers = NULL;
        _cleanup_free_ char *bytes = NULL;
        size_t n = 0, size = 0;
        int q;

        q = role_signers(r, delegator, role, &signers, &n, err);
        if (q < 0)
                return q;
        q = tuf_sign_document(signed_obj, signers, n, &bytes, &size, err);
        if (q < 0)
                return upk_err_prefix(err, "%s", role);
        q = tuf_metadata_parse(bytes, size, type, role, &m, err);
        if (q < 0)
                return upk_err_prefix(err, "the new %s metadata", role);
        q = tuf_metadata_verify(delegator, m, err);
        if (q < 0)
                return q;
        *ret = TAKE_PTR(bytes);
        *ret_size = size;
        if (ret_md)
                *ret_md = TAKE_PTR(m);
        return 0;
}

static int sign_role(const TufRepo *r, const TufMetadata *root, TufRoleType type, json_object *signed_obj,
                     char **ret, size_t *ret_size, TufMetadata **ret_md, UpkErr *err)
{
        return sign_as(r, root, type, tuf_role_type_to_string(type), signed_obj, ret, ret_size, ret_md, err);
}

static int write_metadata(const TufRepo *r, const char *name, const char *data, size_t size, UpkErr *err)
{
        int q = write_file_atomic(r->metadata_dir, name, data, size, 0644);
        if (q < 0)
                return upk_err(err, UPK_ERR_IO, q, "%s/%s: %m", r->metadata_dir, name);
        return 0;
}

/* ---- repo.json ---- */

int tuf_repo_conf_format(const uint64_t period[static _TUF_ROLE_TYPE_MAX], char **ret, size_t *ret_size)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *e = json_object_new_object();

        if (!o || !e) {
                json_object_put(e);
                return -ENOMEM;
        }
        json_object_object_add(o, "expires", e);
        for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++)
                json_object_object_add(e, tuf_role_type_to_string(t), json_object_new_uint64(period[t]));
        return tuf_canonical_json(o, ret, ret_size);
}

static int write_conf(const TufRepo *r, UpkErr *err)
{
        _cleanup_free_ char *bytes = NULL;
        size_t size = 0;
        int q;

        q = tuf_repo_conf_format(r->period, &bytes, &size);
        if (q < 0)
                return upk_err_oom(err);
        q = write_file_atomic(r->dir, REPO_CONF, bytes, size, 0644);
        if (q < 0)
                return upk_err(err, UPK_ERR_IO, q, "%s/%s: %m", r->dir, REPO_CONF);
        return 0;
}

int tuf_repo_conf_parse(const void *data, size_t size, const char *what,
                        uint64_t ret_period[static _TUF_ROLE_TYPE_MAX], UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        JsonStrictOptions jo = { .what = what, .kind = UPK_ERR_CONFIG, .depth_max = 4 };
        JsonCtx c = { .what = what, .kind = UPK_ERR_CONFIG, .err = err };
        uint64_t period[_TUF_ROLE_TYPE_MAX];
        json_object *e = NULL;
        int q;

        if (size > REPO_CONF_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EFBIG, "%s: more than %u bytes", what, REPO_CONF_MAX);
        q = json_parse_strict(data, size, &jo, &o, err);
        if (q < 0)
                return q;
        q = json_get(&c, o, "", "expires", json_type_object, true, &e);
        if (q < 0)
                return q;
        for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++) {
                q = json_get_uint(&c, e, "expires", tuf_role_type_to_string(t), true, PERIOD_MAX,
                                  &period[t]);
                if (q < 0)
                        return q;
                if (period[t] == 0)
                        return json_bad(&c, "expires.%s: must be at least 1", tuf_role_type_to_string(t));
        }
        memcpy(ret_period, period, sizeof(period));
        return 0;
}

static int read_conf(TufRepo *r, UpkErr *err)
{
        _cleanup_free_ char *path = path_join(r->dir, REPO_CONF), *data = NULL;
        size_t size = 0;
        int q;

        if (!path)
                return upk_err_oom(err);
        q = read_full_file(path, REPO_CONF_MAX, &data, &size);
        if (q == -ENOENT)
                return upk_err(err, UPK_ERR_CONFIG, q,
                               "%s: not a repository made by updatectl repo init (no %s)", r->dir,
                               REPO_CONF);
        if (q < 0)
                return upk_err(err, UPK_ERR_IO, q, "%s: %m", path);
        return tuf_repo_conf_parse(data, size, path, r->period, err);
}

static int make_dir(const char *path, mode_t mode, UpkErr *err)
{
        if (mkdir(path, mode) < 0 && errno != EEXIST)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: %m", path);
        return 0;
}

static bool exists(const char *path)
{
        struct stat st;
        return lstat(path, &st) == 0;
}

/* Whether the keys of every role a change of targets re-signs are at hand under `root`. */
static int check_can_publish(const TufRepo *r, const TufMetadata *root, bool with_targets, UpkErr *err)
{
        for (TufRoleType role = TUF_ROLE_TIMESTAMP; role < _TUF_ROLE_TYPE_MAX; role++) {
                _cleanup_free_ TufSigner **s = NULL;
                size_t n = 0;
                int q;

                if (role == TUF_ROLE_TARGETS && !with_targets)
                        continue;
                q = role_signers(r, root, tuf_role_type_to_string(role), &s, &n, err);
                if (q < 0)
                        return q;
        }
        return 0;
}

/* ---- prepared metadata (offline signing) ---- */

static char *prepared_path(const TufRepo *r, TufRoleType type)
{
        return strdup_printf("%s/%s.json", r->prepared_dir, tuf_role_type_to_string(type));
}

/* With `prepare`, a new version of `type` must not replace one that waits for signatures. */
static int check_not_prepared(const TufRepo *r, TufRoleType type, UpkErr *err)
{
        _cleanup_free_ char *path = prepared_path(r, type);

        if (!path)
                return upk_err_oom(err);
        if (r->prepare && exists(path))
                return upk_err(err, UPK_ERR_CONFIG, -EEXIST,
                               "%s waits for signatures already: sign it (updatectl repo sign) or delete it",
                               path);
        return 0;
}

/* Sign `signed_obj` as `type` with the keys at hand (fewer than the threshold) and write it to
 * DIR/prepared/ROLE.json for tuf_repo_sign(). */
static int write_prepared(TufRepo *r, TufRoleType type, json_object *signed_obj, TufSigner *const *signers,
                          size_t n, UpkErr *err)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *m = NULL;
        _cleanup_free_ char *bytes = NULL, *name = NULL;
        size_t size = 0;
        int q;

        q = tuf_sign_document(signed_obj, signers, n, &bytes, &size, err);
        if (q < 0)
                return q;
        q = tuf_metadata_parse(bytes, size, type, NULL, &m, err);
        if (q < 0)
                return upk_err_prefix(err, "the prepared %s metadata", tuf_role_type_to_string(type));
        q = make_dir(r->prepared_dir, 0755, err);
        if (q < 0)
                return q;
        name = strdup_printf("%s.json", tuf_role_type_to_string(type));
        if (!name)
                return upk_err_oom(err);
        q = write_file_atomic(r->prepared_dir, name, bytes, size, 0644);
        if (q < 0)
                return upk_err(err, UPK_ERR_IO, q, "%s/%s: %m", r->prepared_dir, name);
        return 1;
}

/* ---- init ---- */

/* A role object {"keyids", "threshold"} of the keys `s`, whose KEY objects go to `keys`. */
static json_object *new_role(json_object *keys, TufSigner *const *s, size_t n, unsigned threshold)
{
        json_object *ro = json_object_new_object(), *ids = json_object_new_array();

        if (!ro || !ids) {
                json_object_put(ro);
                json_object_put(ids);
                return NULL;
        }
        for (size_t i = 0; i < n; i++) {
                json_object_array_add(ids, json_object_new_string(s[i]->keyid));
                json_object_object_add(keys, s[i]->keyid, json_object_get(s[i]->public));
        }
        json_object_object_add(ro, "keyids", ids);
        json_object_object_add(ro, "threshold", json_object_new_uint64(threshold));
        return ro;
}

static int add_role(json_object *roles, json_object *keys, const char *role, TufSigner *const *s, size_t n,
                    unsigned threshold)
{
        json_object *ro = new_role(keys, s, n, threshold);

        if (!ro)
                return -ENOMEM;
        json_object_object_add(roles, role, ro);
        return 0;
}

/* Write timestamp over `snapshot_bytes` (version `snapshot_version`) at `version`. */
static int build_timestamp(const TufRepo *r, uint64_t version, uint64_t snapshot_version,
                           const char *snapshot_bytes, size_t snapshot_size, char **ret, size_t *ret_size,
                           UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *s = NULL;
        json_object *meta, *f, *hashes;
        uint8_t digest[SHA256_DIGEST_LENGTH];
        char hex[2 * SHA256_DIGEST_LENGTH + 1];

        s = new_signed(TUF_ROLE_TIMESTAMP, version, r->now + (time_t)r->period[TUF_ROLE_TIMESTAMP]);
        meta = json_object_new_object();
        f = json_object_new_object();
        hashes = json_object_new_object();
        if (!s || !meta || !f || !hashes) {
                json_object_put(meta);
                json_object_put(f);
                json_object_put(hashes);
                return upk_err_oom(err);
        }
        SHA256((const uint8_t *)snapshot_bytes, snapshot_size, digest);
        hex_encode(digest, sizeof(digest), hex);
        json_object_object_add(hashes, "sha256", json_object_new_string(hex));
        json_object_object_add(f, "version", json_object_new_uint64(snapshot_version));
        json_object_object_add(f, "length", json_object_new_uint64(snapshot_size));
        json_object_object_add(f, "hashes", hashes);
        json_object_object_add(meta, "snapshot.json", f);
        json_object_object_add(s, "meta", meta);
        return sign_role(r, r->md[TUF_ROLE_ROOT], TUF_ROLE_TIMESTAMP, s, ret, ret_size, NULL, err);
}

/* The snapshot "signed" at `version`: the old one's meta (delegated roles) with targets.json at
 * `targets_version` and, when `role` is given, ROLE.json at `role_version`. */
static int build_snapshot_with(const TufRepo *r, uint64_t version, uint64_t targets_version,
                               const char *role, uint64_t role_version, char **ret, size_t *ret_size,
                               TufMetadata **ret_md, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *s = NULL;
        json_object *meta = NULL, *old_signed, *old_meta, *f;

        s = new_signed(TUF_ROLE_SNAPSHOT, version, r->now + (time_t)r->period[TUF_ROLE_SNAPSHOT]);
        if (!s)
                return upk_err_oom(err);
        if (r->md[TUF_ROLE_SNAPSHOT] &&
            json_object_object_get_ex(r->md[TUF_ROLE_SNAPSHOT]->doc, "signed", &old_signed) &&
            json_object_object_get_ex(old_signed, "meta", &old_meta)) {
                if (json_object_deep_copy(old_meta, &meta, NULL) < 0)
                        return upk_err_oom(err);
        } else
                meta = json_object_new_object();
        f = json_object_new_object();
        if (!meta || !f) {
                json_object_put(meta);
                json_object_put(f);
                return upk_err_oom(err);
        }
        json_object_object_add(f, "version", json_object_new_uint64(targets_version));
        json_object_object_add(meta, "targets.json", f);
        json_object_object_add(s, "meta", meta);
        if (role) {
                _cleanup_free_ char *name = strdup_printf("%s.json", role);
                f = json_object_new_object();
                if (!name || !f) {
                        json_object_put(f);
                        return upk_err_oom(err);
                }
                json_object_object_add(f, "version", json_object_new_uint64(role_version));
                json_object_object_add(meta, name, f);
        }
        return sign_role(r, r->md[TUF_ROLE_ROOT], TUF_ROLE_SNAPSHOT, s, ret, ret_size, ret_md, err);
}

static int build_snapshot(const TufRepo *r, uint64_t version, uint64_t targets_version, char **ret,
                          size_t *ret_size, TufMetadata **ret_md, UpkErr *err)
{
        return build_snapshot_with(r, version, targets_version, NULL, 0, ret, ret_size, ret_md, err);
}

/* The keys of a new role: those in `key_paths` (not copied), and new ones of `scheme` in DIR/keys as
 * ROLE-KEYID.pem up to `threshold`. */
static int make_keys(TufRepo *r, const char *role, TufKeyScheme scheme, unsigned threshold, char **key_paths,
                     TufSigner ***ret, size_t *ret_n, UpkErr *err)
{
        size_t given = strv_length(key_paths), n = given > threshold ? given : threshold;
        _cleanup_free_ TufSigner **v = NULL;
        int q;

        if (n > TUF_REPO_KEYS_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -E2BIG, "%s: more than %d keys", role,
                               TUF_REPO_KEYS_MAX);
        v = calloc(n, sizeof(TufSigner *));
        if (!v)
                return upk_err_oom(err);
        for (size_t i = 0; i < n; i++) {
                _cleanup_(tuf_signer_freep) TufSigner *s = NULL;
                _cleanup_free_ char *path = NULL;
                const char *src;

                if (i < given) {
                        q = tuf_signer_load(key_paths[i], &s, err);
                        if (q < 0)
                                return q;
                        src = key_paths[i];
                } else {
                        _cleanup_free_ char *name = NULL;
                        q = tuf_signer_generate(scheme, &s, err);
                        if (q < 0)
                                return q;
                        name = strdup_printf("%s-%s.pem", role, s->keyid);
                        path = name ? path_join(r->keys_dir, name) : NULL;
                        if (!path)
                                return upk_err_oom(err);
                        q = tuf_signer_save(s, path, err);
                        if (q < 0)
                                return q;
                        src = path;
                }
                for (size_t j = 0; j < i; j++)
                        if (streq(v[j]->keyid, s->keyid))
                                return upk_err(err, UPK_ERR_CONFIG, -EEXIST, "%s: key %s is given twice",
                                               role, s->keyid);
                v[i] = s;
                q = repo_keep_signer(r, TAKE_PTR(s), src, err);
                if (q < 0)
                        return q;
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static int init_role_keys(TufRepo *r, const TufRepoInitOptions *o, TufRoleType t, TufSigner ***ret,
                          size_t *ret_n, UpkErr *err)
{
        return make_keys(r, tuf_role_type_to_string(t), o->scheme, o->threshold[t] ?: 1, o->key_paths[t],
                         ret, ret_n, err);
}

int tuf_repo_init(const char *dir, const TufRepoInitOptions *o, UpkErr *err)
{
        _cleanup_(tuf_repo_freep) TufRepo *r = NULL;
        _cleanup_(json_object_putp) json_object *root = NULL, *targets = NULL;
        _cleanup_free_ char *root_bytes = NULL, *targets_bytes = NULL, *snap_bytes = NULL, *ts_bytes = NULL;
        size_t root_size = 0, targets_size = 0, snap_size = 0, ts_size = 0;
        json_object *keys, *roles;
        TufSigner **signers[_TUF_ROLE_TYPE_MAX] = {};
        size_t n_signers[_TUF_ROLE_TYPE_MAX] = {};
        static const TufRoleType order[] = { TUF_ROLE_ROOT, TUF_ROLE_TARGETS, TUF_ROLE_SNAPSHOT,
                                             TUF_ROLE_TIMESTAMP };
        int q;

        q = repo_alloc(dir, o->now, &r);
        if (q < 0)
                return upk_err_oom(err);
        for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++)
                r->period[t] = o->period[t] ?: default_period[t];
        if (exists(r->metadata_dir) || exists(r->keys_dir))
                return upk_err(err, UPK_ERR_CONFIG, -EEXIST,
                               "%s: holds a repository already (metadata/ or keys/ exists)", dir);
        q = mkdir_p(dir, 0755);
        if (q < 0)
                return upk_err(err, UPK_ERR_IO, q, "%s: %m", dir);
        q = make_dir(r->keys_dir, 0700, err);
        if (q < 0)
                return q;

        root = new_signed(TUF_ROLE_ROOT, 1, r->now + (time_t)r->period[TUF_ROLE_ROOT]);
        keys = json_object_new_object();
        roles = json_object_new_object();
        if (!root || !keys || !roles) {
                json_object_put(keys);
                json_object_put(roles);
                return upk_err_oom(err);
        }
        json_object_object_add(root, "consistent_snapshot", json_object_new_boolean(true));
        json_object_object_add(root, "keys", keys);
        json_object_object_add(root, "roles", roles);
        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                TufRoleType t = order[i];
                q = init_role_keys(r, o, t, &signers[t], &n_signers[t], err);
                if (q >= 0 && add_role(roles, keys, tuf_role_type_to_string(t), signers[t], n_signers[t],
                                       o->threshold[t] ?: 1) < 0)
                        q = upk_err_oom(err);
                if (q < 0)
                        goto finish;
        }

        /* Root, checked against itself as a client checks the first root. */
        q = tuf_sign_document(root, signers[TUF_ROLE_ROOT], n_signers[TUF_ROLE_ROOT], &root_bytes,
                              &root_size, err);
        if (q < 0)
                goto finish;
        q = tuf_metadata_parse(root_bytes, root_size, TUF_ROLE_ROOT, NULL, &r->md[TUF_ROLE_ROOT], err);
        if (q >= 0)
                q = tuf_metadata_verify(r->md[TUF_ROLE_ROOT], r->md[TUF_ROLE_ROOT], err);
        if (q < 0)
                goto finish;

        targets = new_signed(TUF_ROLE_TARGETS, 1, r->now + (time_t)r->period[TUF_ROLE_TARGETS]);
        if (!targets) {
                q = upk_err_oom(err);
                goto finish;
        }
        json_object_object_add(targets, "targets", json_object_new_object());
        q = sign_role(r, r->md[TUF_ROLE_ROOT], TUF_ROLE_TARGETS, targets, &targets_bytes, &targets_size,
                      NULL, err);
        if (q >= 0)
                q = build_snapshot(r, 1, 1, &snap_bytes, &snap_size, NULL, err);
        if (q >= 0)
                q = build_timestamp(r, 1, 1, snap_bytes, snap_size, &ts_bytes, &ts_size, err);
        if (q < 0)
                goto finish;

        /* Written in the order a client reads them, the timestamp last. */
        q = make_dir(r->metadata_dir, 0755, err);
        if (q >= 0)
                q = make_dir(r->targets_dir, 0755, err);
        if (q >= 0)
                q = write_conf(r, err);
        if (q >= 0)
                q = write_metadata(r, "1.root.json", root_bytes, root_size, err);
        if (q >= 0)
                q = write_metadata(r, "root.json", root_bytes, root_size, err);
        if (q >= 0)
                q = write_metadata(r, "1.targets.json", targets_bytes, targets_size, err);
        if (q >= 0)
                q = write_metadata(r, "1.snapshot.json", snap_bytes, snap_size, err);
        if (q >= 0)
                q = write_metadata(r, "timestamp.json", ts_bytes, ts_size, err);
finish:
        for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++)
                free(signers[t]); /* the signers themselves belong to r */
        return q;
}

/* ---- open ---- */

static int read_metadata(TufRepo *r, const char *name, TufRoleType type, TufMetadata **ret, UpkErr *err)
{
        _cleanup_free_ char *path = path_join(r->metadata_dir, name), *data = NULL;
        size_t size = 0;
        int q;

        if (!path)
                return upk_err_oom(err);
        q = read_full_file(path, METADATA_FILE_MAX, &data, &size);
        if (q < 0)
                return upk_err(err, q == -ENOENT ? UPK_ERR_CONFIG : UPK_ERR_IO, q, "%s: %m", path);
        q = tuf_metadata_parse(data, size, type, NULL, ret, err);
        if (q < 0)
                return upk_err_prefix(err, "%s", path);
        return 0;
}

static int load_keys(TufRepo *r, UpkErr *err)
{
        _cleanup_(closedirp) DIR *d = opendir(r->keys_dir);
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        int q;

        if (!d) {
                if (errno == ENOENT)
                        return 0;
                return upk_err(err, UPK_ERR_IO, -errno, "%s: %m", r->keys_dir);
        }
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                char **v;
                if (de->d_name[0] == '.' || len < 5 || !streq(de->d_name + len - 4, ".pem"))
                        continue;
                if (n >= KEY_FILES_MAX)
                        return upk_err(err, UPK_ERR_CONFIG, -E2BIG, "%s: more than %d key files",
                                       r->keys_dir, KEY_FILES_MAX);
                v = reallocarray(names, n + 2, sizeof(char *));
                if (!v)
                        return upk_err_oom(err);
                names = v;
                names[n] = strdup(de->d_name);
                names[n + 1] = NULL;
                if (!names[n])
                        return upk_err_oom(err);
                n++;
        }
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = path_join(r->keys_dir, names[i]);
                TufSigner *s = NULL;
                struct stat st;

                if (!path)
                        return upk_err_oom(err);
                if (lstat(path, &st) < 0)
                        return upk_err(err, UPK_ERR_IO, -errno, "%s: %m", path);
                if ((st.st_mode & 0077) != 0)
                        return upk_err(err, UPK_ERR_CONFIG, -EPERM,
                                       "%s: a private key readable by others (mode %04o): run chmod 0600 %s",
                                       path, (unsigned)(st.st_mode & 07777), path);
                q = tuf_signer_load(path, &s, err);
                if (q < 0)
                        return q;
                q = repo_keep_signer(r, s, path, err);
                if (q < 0)
                        return q;
        }
        return 0;
}

/* The roles the top-level targets delegates, at the versions the snapshot lists, each checked against it. */
static int load_delegated(TufRepo *r, UpkErr *err)
{
        const TufMetadata *top = r->md[TUF_ROLE_TARGETS];

        r->delegated = calloc(top->n_roles ?: 1, sizeof(TufMetadata *));
        if (!r->delegated)
                return upk_err_oom(err);
        for (size_t i = 0; i < top->n_roles; i++) {
                _cleanup_(tuf_metadata_freep) TufMetadata *m = NULL;
                _cleanup_free_ char *file = NULL, *name = NULL, *path = NULL, *data = NULL;
                const char *role = top->roles[i].name;
                const TufMetaFile *f;
                size_t size = 0;
                int q;

                file = strdup_printf("%s.json", role);
                if (!file)
                        return upk_err_oom(err);
                f = tuf_metadata_find_meta(r->md[TUF_ROLE_SNAPSHOT], file);
                if (!f)
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                       "%s: the snapshot does not list %s, which the targets delegate to",
                                       r->dir, file);
                name = strdup_printf("%" PRIu64 ".%s", f->version, file);
                path = name ? path_join(r->metadata_dir, name) : NULL;
                if (!path)
                        return upk_err_oom(err);
                q = read_full_file(path, METADATA_FILE_MAX, &data, &size);
                if (q < 0)
                        return upk_err(err, q == -ENOENT ? UPK_ERR_CONFIG : UPK_ERR_IO, q, "%s: %m", path);
                q = tuf_metadata_parse(data, size, TUF_ROLE_TARGETS, role, &m, err);
                if (q >= 0)
                        q = tuf_metadata_verify(top, m, err);
                if (q < 0)
                        return upk_err_prefix(err, "%s", path);
                r->delegated[r->n_delegated++] = TAKE_PTR(m);
        }
        return 0;
}

static TufMetadata *find_delegated(const TufRepo *r, const char *role)
{
        for (size_t i = 0; i < r->n_delegated; i++)
                if (streq(r->delegated[i]->role_name, role))
                        return r->delegated[i];
        return NULL;
}

int tuf_repo_open(const char *dir, time_t now, TufRepo **ret, UpkErr *err)
{
        _cleanup_(tuf_repo_freep) TufRepo *r = NULL;
        const TufMetaFile *f;
        char name[64];
        int q;

        q = repo_alloc(dir, now, &r);
        if (q < 0)
                return upk_err_oom(err);
        q = read_conf(r, err);
        if (q < 0)
                return q;
        q = read_metadata(r, "root.json", TUF_ROLE_ROOT, &r->md[TUF_ROLE_ROOT], err);
        if (q < 0)
                return q;
        q = tuf_metadata_verify(r->md[TUF_ROLE_ROOT], r->md[TUF_ROLE_ROOT], err);
        if (q < 0)
                return upk_err_prefix(err, "%s/root.json", r->metadata_dir);
        if (!r->md[TUF_ROLE_ROOT]->consistent_snapshot)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "%s: the root does not use consistent snapshots, which updatectl repo needs",
                               dir);

        q = read_metadata(r, "timestamp.json", TUF_ROLE_TIMESTAMP, &r->md[TUF_ROLE_TIMESTAMP], err);
        if (q < 0)
                return q;
        f = tuf_metadata_find_meta(r->md[TUF_ROLE_TIMESTAMP], "snapshot.json");
        if (!f)
                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s/timestamp.json: lists no snapshot.json",
                               r->metadata_dir);
        snprintf(name, sizeof(name), "%" PRIu64 ".snapshot.json", f->version);
        q = read_metadata(r, name, TUF_ROLE_SNAPSHOT, &r->md[TUF_ROLE_SNAPSHOT], err);
        if (q < 0)
                return q;
        f = tuf_metadata_find_meta(r->md[TUF_ROLE_SNAPSHOT], "targets.json");
        if (!f)
                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s/%s: lists no targets.json",
                               r->metadata_dir, name);
        snprintf(name, sizeof(name), "%" PRIu64 ".targets.json", f->version);
        q = read_metadata(r, name, TUF_ROLE_TARGETS, &r->md[TUF_ROLE_TARGETS], err);
        if (q < 0)
                return q;
        for (int t = TUF_ROLE_TIMESTAMP; t < _TUF_ROLE_TYPE_MAX; t++) {
                q = tuf_metadata_verify(r->md[TUF_ROLE_ROOT], r->md[t], err);
                if (q < 0)
                        return upk_err_prefix(err, "%s", dir);
        }
        q = load_delegated(r, err);
        if (q < 0)
                return q;
        q = load_keys(r, err);
        if (q < 0)
                return q;
        *ret = TAKE_PTR(r);
        return 0;
}

int tuf_repo_add_key(TufRepo *r, const char *path, UpkErr *err)
{
        const TufMetadata *root = r->md[TUF_ROLE_ROOT];
        TufSigner *s = NULL;
        bool known = false;
        int q;

        q = tuf_signer_load(path, &s, err);
        if (q < 0)
                return q;
        for (size_t i = 0; i < root->n_roles && !known; i++)
                known = strv_contains(root->roles[i].keyids, s->keyid);
        for (size_t i = 0; i < r->md[TUF_ROLE_TARGETS]->n_roles && !known; i++)
                known = strv_contains(r->md[TUF_ROLE_TARGETS]->roles[i].keyids, s->keyid);
        if (!known) {
                q = upk_err(err, UPK_ERR_SIGNATURE, -EPERM,
                            "%s: key %s is not a key of any role of root version %" PRIu64
                            " or of a delegated role",
                            path, s->keyid, root->version);
                tuf_signer_free(s);
                return q;
        }
        return repo_keep_signer(r, s, path, err);
}

/* ---- targets ---- */

/* Copy `path` into the targets folder under a temporary name, hashing it; rename it to SHA256.NAME. */
static int copy_target(const TufRepo *r, const char *name, const char *path, char hex[static 65],
                       uint64_t *ret_length, UpkErr *err)
{
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        _cleanup_free_ char *tmp = path_join(r->targets_dir, ".#target.XXXXXX"), *buf = malloc(COPY_BUFFER);
        _cleanup_free_ char *final = NULL, *final_name = NULL;
        _cleanup_close_ int in = -EBADF, out = -EBADF;
        uint8_t digest[SHA256_DIGEST_LENGTH];
        uint64_t length = 0;
        int q = 0;

        if (!ctx || !tmp || !buf)
                return upk_err_oom(err);
        in = open(path, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: %m", path);
        out = mkostemp(tmp, O_CLOEXEC);
        if (out < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: %m", r->targets_dir);
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                q = -ENOMEM;
        while (q >= 0) {
                ssize_t n = read(in, buf, COPY_BUFFER);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        q = upk_err(err, UPK_ERR_IO, -errno, "%s: %m", path);
                        break;
                }
                if (n == 0)
                        break;
                length += (uint64_t)n;
                if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
                        q = -ENOMEM;
                else if ((q = loop_write(out, buf, (size_t)n)) < 0)
                        q = upk_err(err, UPK_ERR_IO, q, "%s: %m", tmp);
        }
        if (q >= 0 && EVP_DigestFinal_ex(ctx, digest, NULL) != 1)
                q = -ENOMEM;
        if (q >= 0 && (fchmod(out, 0644) < 0 || fsync(out) < 0))
                q = upk_err(err, UPK_ERR_IO, -errno, "%s: %m", tmp);
        if (q >= 0) {
                hex_encode(digest, sizeof(digest), hex);
                final_name = strdup_printf("%s.%s", hex, name);
                final = final_name ? path_join(r->targets_dir, final_name) : NULL;
                if (!final)
                        q = -ENOMEM;
        }
        if (q >= 0 && rename(tmp, final) < 0)
                q = upk_err(err, UPK_ERR_IO, -errno, "%s: %m", final);
        if (q < 0) {
                (void)unlink(tmp);
                return q == -ENOMEM ? upk_err_oom(err) : q;
        }
        *ret_length = length;
        return 0;
}

static int ensure_new_targets(TufRepo *r, UpkErr *err)
{
        json_object *s;

        if (r->new_targets)
                return 0;
        if (!json_object_object_get_ex(r->md[TUF_ROLE_TARGETS]->doc, "signed", &s) ||
            json_object_deep_copy(s, &r->new_targets, NULL) < 0)
                return upk_err_oom(err);
        return 0;
}

/* The delegated role `role` (its metadata and its delegation), whose keys must be at hand, as must the
 * snapshot and timestamp keys. */
static int delegated_at_hand(const TufRepo *r, const char *role, const TufMetadata **ret,
                             const TufRole **ret_d, UpkErr *err)
{
        const TufRole *d = tuf_metadata_find_role(r->md[TUF_ROLE_TARGETS], role);
        const TufMetadata *m = find_delegated(r, role);
        _cleanup_free_ TufSigner **sg = NULL;
        size_t n = 0;
        int q;

        if (!d || !m)
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT,
                               "role %s: not a role the targets delegate to (see repo delegate)",
                               JSON_QUOTE(role));
        q = check_can_publish(r, r->md[TUF_ROLE_ROOT], false, err);
        if (q >= 0)
                q = role_signers(r, r->md[TUF_ROLE_TARGETS], role, &sg, &n, err);
        if (q < 0)
                return q;
        *ret = m;
        *ret_d = d;
        return 0;
}

/* The next version of delegated role `m`, started from the published one; one delegated role per run. */
static int ensure_new_delegated(TufRepo *r, const TufMetadata *m, UpkErr *err)
{
        json_object *s;

        if (r->new_delegated)
                return streq(r->new_delegated_role->role_name, m->role_name)
                               ? 0
                               : upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                         "targets of roles %s and %s: publish one delegated role at a time",
                                         r->new_delegated_role->role_name, m->role_name);
        if (!json_object_object_get_ex(m->doc, "signed", &s) ||
            json_object_deep_copy(s, &r->new_delegated, NULL) < 0)
                return upk_err_oom(err);
        r->new_delegated_role = m;
        return 0;
}

int tuf_repo_add_target(TufRepo *r, const char *role, const char *name, const char *path,
                        json_object *custom, UpkErr *err)
{
        json_object *targets, *t, *hashes, *dest;
        const TufMetadata *m = r->md[TUF_ROLE_TARGETS];
        const TufTargetFile *old;
        char hex[65];
        uint64_t length = 0;
        int q;

        if (!filename_is_plain(name, TARGET_NAME_MAX) || name[0] == '.')
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "target name \"%s\": expected a plain file name not starting with '.'",
                               JSON_QUOTE(name));
        /* Nothing is copied that could not be published. */
        q = check_root_current(r, err);
        if (q < 0)
                return q;
        if (role) {
                const TufRole *d = NULL;

                q = delegated_at_hand(r, role, &m, &d, err);
                if (q >= 0 && !tuf_role_matches_path(d, name))
                        return upk_err(err, UPK_ERR_CONFIG, -EPERM,
                                       "target %s is outside the paths delegated to role %s, where devices "
                                       "would not look for it",
                                       name, role);
        } else {
                q = check_can_publish(r, r->md[TUF_ROLE_ROOT], !r->prepare, err);
                if (q >= 0)
                        q = check_not_prepared(r, TUF_ROLE_TARGETS, err);
        }
        if (q < 0)
                return q;
        q = copy_target(r, name, path, hex, &length, err);
        if (q < 0)
                return q;
        old = tuf_metadata_find_target(m, name);
        if (old) {
                for (size_t i = 0; i < old->n_hashes; i++)
                        if (streq(old->hashes[i].algorithm, "sha256") && streq(old->hashes[i].hex, hex) &&
                            old->length == length)
                                return 1;
                {
                        /* the copy just made is listed nowhere */
                        _cleanup_free_ char *copy = strdup_printf("%s/%s.%s", r->targets_dir, hex, name);
                        if (copy)
                                (void)unlink(copy);
                }
                return upk_err(err, UPK_ERR_CONFIG, -EEXIST,
                               "target %s is published already with other bytes; give the bundle another "
                               "file name",
                               name);
        }
        q = role ? ensure_new_delegated(r, m, err) : ensure_new_targets(r, err);
        if (q < 0)
                return q;
        dest = role ? r->new_delegated : r->new_targets;
        if (!json_object_object_get_ex(dest, "targets", &targets)) {
                targets = json_object_new_object();
                if (!targets)
                        return upk_err_oom(err);
                json_object_object_add(dest, "targets", targets);
        }
        if (json_object_object_get_ex(targets, name, NULL))
                return upk_err(err, UPK_ERR_CONFIG, -EEXIST, "target %s is given twice", name);
        t = json_object_new_object();
        hashes = json_object_new_object();
        if (!t || !hashes) {
                json_object_put(t);
                json_object_put(hashes);
                return upk_err_oom(err);
        }
        json_object_object_add(hashes, "sha256", json_object_new_string(hex));
        json_object_object_add(t, "length", json_object_new_uint64(length));
        json_object_object_add(t, "hashes", hashes);
        if (custom)
                json_object_object_add(t, "custom", json_object_get(custom));
        json_object_object_add(targets, name, t);
        return 0;
}

/* Write snapshot `snap` and the timestamp over it (versions one above the current ones). */
static int publish_snapshot_timestamp(TufRepo *r, const char *snap, size_t snap_size, uint64_t snap_version,
                                      UpkErr *err)
{
        _cleanup_free_ char *ts = NULL, *name = NULL;
        size_t ts_size = 0;
        int q;

        q = build_timestamp(r, r->md[TUF_ROLE_TIMESTAMP]->version + 1, snap_version, snap, snap_size, &ts,
                            &ts_size, err);
        if (q < 0)
                return q;
        name = strdup_printf("%" PRIu64 ".snapshot.json", snap_version);
        if (!name)
                return upk_err_oom(err);
        q = write_metadata(r, name, snap, snap_size, err);
        if (q < 0)
                return q;
        return write_metadata(r, "timestamp.json", ts, ts_size, err);
}

/* Write targets `targets` (version one above the current one, checked against the root), then a snapshot
 * and a timestamp over it. */
static int publish_targets(TufRepo *r, const char *targets, size_t targets_size, UpkErr *err)
{
        _cleanup_free_ char *snap = NULL, *name = NULL;
        uint64_t tv = r->md[TUF_ROLE_TARGETS]->version + 1, sv = r->md[TUF_ROLE_SNAPSHOT]->version + 1;
        size_t snap_size = 0;
        int q;

        q = build_snapshot(r, sv, tv, &snap, &snap_size, NULL, err);
        if (q < 0)
                return q;
        name = strdup_printf("%" PRIu64 ".targets.json", tv);
        if (!name)
                return upk_err_oom(err);
        q = write_metadata(r, name, targets, targets_size, err);
        if (q < 0)
                return q;
        return publish_snapshot_timestamp(r, snap, snap_size, sv, err);
}

/* The next version of the delegated role, signed with its keys as the top-level targets lists them, then
 * a snapshot listing it and a timestamp. */
static int publish_delegated(TufRepo *r, UpkErr *err)
{
        const TufMetadata *m = r->new_delegated_role;
        _cleanup_free_ char *bytes = NULL, *snap = NULL, *name = NULL;
        uint64_t dv = m->version + 1, sv = r->md[TUF_ROLE_SNAPSHOT]->version + 1;
        size_t size = 0, snap_size = 0;
        int q;

        q = check_root_current(r, err);
        if (q < 0)
                return q;
        set_version_expires(r->new_delegated, dv, r->now + (time_t)r->period[TUF_ROLE_TARGETS]);
        q = sign_as(r, r->md[TUF_ROLE_TARGETS], TUF_ROLE_TARGETS, m->role_name, r->new_delegated, &bytes,
                    &size, NULL, err);
        if (q < 0)
                return q;
        q = build_snapshot_with(r, sv, r->md[TUF_ROLE_TARGETS]->version, m->role_name, dv, &snap, &snap_size,
                                NULL, err);
        if (q < 0)
                return q;
        name = strdup_printf("%" PRIu64 ".%s.json", dv, m->role_name);
        if (!name)
                return upk_err_oom(err);
        q = write_metadata(r, name, bytes, size, err);
        if (q < 0)
                return q;
        return publish_snapshot_timestamp(r, snap, snap_size, sv, err);
}

int tuf_repo_publish(TufRepo *r, UpkErr *err)
{
        _cleanup_free_ TufSigner **signers = NULL;
        _cleanup_free_ char *targets = NULL;
        size_t targets_size = 0, n = 0;
        uint64_t tv;
        int q;

        if (r->new_delegated)
                return publish_delegated(r, err);
        if (!r->new_targets)
                return 0;
        q = check_root_current(r, err);
        if (q < 0)
                return q;
        tv = r->md[TUF_ROLE_TARGETS]->version + 1;
        set_version_expires(r->new_targets, tv, r->now + (time_t)r->period[TUF_ROLE_TARGETS]);
        if (r->prepare) {
                q = role_signers_at_hand(r, r->md[TUF_ROLE_ROOT], "targets", true, &signers, &n, err);
                if (q < 0)
                        return q;
                if (q == 0)
                        return write_prepared(r, TUF_ROLE_TARGETS, r->new_targets, signers, n, err);
        }
        q = sign_role(r, r->md[TUF_ROLE_ROOT], TUF_ROLE_TARGETS, r->new_targets, &targets, &targets_size,
                      NULL, err);
        if (q < 0)
                return q;
        return publish_targets(r, targets, targets_size, err);
}

static bool due(const TufMetadata *m, time_t now, uint64_t period)
{
        return m->expires <= now || (uint64_t)(m->expires - now) < period / 2;
}

int tuf_repo_refresh_timestamp(TufRepo *r, bool force, bool *ret_changed, UpkErr *err)
{
        const TufMetadata *ts = r->md[TUF_ROLE_TIMESTAMP], *snap = r->md[TUF_ROLE_SNAPSHOT];
        bool snap_due = force || due(snap, r->now, r->period[TUF_ROLE_SNAPSHOT]) ||
                        snap->expires <= r->now + (time_t)r->period[TUF_ROLE_TIMESTAMP];
        bool ts_due = force || snap_due || due(ts, r->now, r->period[TUF_ROLE_TIMESTAMP]);
        _cleanup_free_ char *bytes = NULL, *name = NULL, *data = NULL;
        size_t size = 0;
        uint64_t sv;
        int q;

        *ret_changed = false;
        if (!ts_due)
                return 0;
        q = check_root_current(r, err);
        if (q < 0)
                return q;
        if (snap_due) {
                const TufMetaFile *f = tuf_metadata_find_meta(snap, "targets.json");
                sv = snap->version + 1;
                q = build_snapshot(r, sv, f->version, &bytes, &size, NULL, err);
                if (q < 0)
                        return q;
        } else {
                /* the timestamp alone: over the snapshot as published */
                sv = snap->version;
                name = strdup_printf("%s/%" PRIu64 ".snapshot.json", r->metadata_dir, sv);
                if (!name)
                        return upk_err_oom(err);
                q = read_full_file(name, METADATA_FILE_MAX, &data, &size);
                if (q < 0)
                        return upk_err(err, UPK_ERR_IO, q, "%s: %m", name);
                bytes = TAKE_PTR(data);
        }
        q = publish_snapshot_timestamp(r, bytes, size, sv, err);
        if (q < 0)
                return q;
        *ret_changed = true;
        return 0;
}

/* ---- remove, rotate ---- */

int tuf_repo_remove_target(TufRepo *r, const char *role, const char *name, UpkErr *err)
{
        const TufMetadata *m = r->md[TUF_ROLE_TARGETS];
        const TufRole *d = NULL;
        json_object *targets;
        int q;

        if (role) {
                q = delegated_at_hand(r, role, &m, &d, err);
                if (q < 0)
                        return q;
        }
        if (!tuf_metadata_find_target(m, name))
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT, "target %s is not listed%s%s", JSON_QUOTE(name),
                               role ? " by role " : "", role ? JSON_QUOTE(role) : "");
        q = check_root_current(r, err);
        if (q < 0)
                return q;
        if (role)
                q = ensure_new_delegated(r, m, err);
        else {
                q = check_can_publish(r, r->md[TUF_ROLE_ROOT], !r->prepare, err);
                if (q >= 0)
                        q = check_not_prepared(r, TUF_ROLE_TARGETS, err);
                if (q >= 0)
                        q = ensure_new_targets(r, err);
        }
        if (q < 0)
                return q;
        if (json_object_object_get_ex(role ? r->new_delegated : r->new_targets, "targets", &targets))
                json_object_object_del(targets, name);
        return 0;
}

/* Move the key files of keys the root no longer lists to DIR/keys/retired/. */
static int retire_keys(TufRepo *r, UpkErr *err)
{
        _cleanup_free_ char *retired = path_join(r->keys_dir, "retired");
        const TufMetadata *root = r->md[TUF_ROLE_ROOT];

        if (!retired)
                return upk_err_oom(err);
        for (size_t i = 0; i < r->n_signers; i++) {
                _cleanup_free_ char *to = NULL;
                bool used = false;

                for (size_t j = 0; j < root->n_roles && !used; j++)
                        used = strv_contains(root->roles[j].keyids, r->signers[i]->keyid);
                if (used || !strneq(r->signer_paths[i], r->keys_dir, strlen(r->keys_dir)) ||
                    r->signer_paths[i][strlen(r->keys_dir)] != '/')
                        continue;
                if (make_dir(retired, 0700, err) < 0)
                        return err->code;
                to = path_join(retired, path_basename(r->signer_paths[i]));
                if (!to)
                        return upk_err_oom(err);
                if (rename(r->signer_paths[i], to) < 0)
                        return upk_err(err, UPK_ERR_IO, -errno, "%s: %m", r->signer_paths[i]);
        }
        return 0;
}

/* Drop the keys no role of the root's "signed" `s` lists. */
static int prune_keys(json_object *s)
{
        json_object *keys, *roles;
        _cleanup_strv_free_ char **unused = NULL;
        size_t n = 0;

        if (!json_object_object_get_ex(s, "keys", &keys) || !json_object_object_get_ex(s, "roles", &roles))
                return -EINVAL;
        json_object_object_foreach(keys, keyid, v)
        {
                bool used = false;
                char **l;
                (void)v;
                json_object_object_foreach(roles, rn, ro)
                {
                        json_object *ids;
                        (void)rn;
                        if (!json_object_object_get_ex(ro, "keyids", &ids))
                                continue;
                        for (size_t i = 0; i < json_object_array_length(ids) && !used; i++)
                                used = streq(json_object_get_string(json_object_array_get_idx(ids, i)),
                                             keyid);
                }
                if (used)
                        continue;
                l = reallocarray(unused, n + 2, sizeof(char *));
                if (!l)
                        return -ENOMEM;
                unused = l;
                unused[n] = strdup(keyid);
                unused[n + 1] = NULL;
                if (!unused[n++])
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                json_object_object_del(keys, unused[i]);
        return 0;
}

/* Whether root `m` gives role `role` other keys or another threshold than root `old`. */
static bool role_changed(const TufMetadata *old, const TufMetadata *m, const char *role)
{
        const TufRole *a = tuf_metadata_find_role(old, role), *b = tuf_metadata_find_role(m, role);

        if (!a || !b || a->threshold != b->threshold || a->n_keyids != b->n_keyids)
                return true;
        for (size_t i = 0; i < a->n_keyids; i++)
                if (!strv_contains(b->keyids, a->keyids[i]))
                        return true;
        return false;
}

/* Write root `*m` (the next version, `bytes`), signed to the thresholds of the current root and its own,
 * then new versions of what it changes signed with the new keys (devices drop a rotated role's trusted
 * metadata): targets when the targets role changed, else snapshot and timestamp. */
static int publish_root(TufRepo *r, const char *bytes, size_t size, TufMetadata **m, UpkErr *err)
{
        _cleanup_free_ char *name = NULL;
        bool targets_changed;
        int q;

        q = tuf_metadata_verify(r->md[TUF_ROLE_ROOT], *m, err);
        if (q >= 0)
                q = tuf_metadata_verify(*m, *m, err);
        if (q < 0)
                return upk_err_prefix(err, "the new root");
        targets_changed = role_changed(r->md[TUF_ROLE_ROOT], *m, "targets");
        /* Everything the new root makes due can be signed, before anything is written. */
        q = check_can_publish(r, *m, targets_changed, err);
        if (q < 0)
                return q;

        name = strdup_printf("%" PRIu64 ".root.json", (*m)->version);
        if (!name)
                return upk_err_oom(err);
        q = write_metadata(r, name, bytes, size, err);
        if (q >= 0)
                q = write_metadata(r, "root.json", bytes, size, err);
        if (q < 0)
                return q;
        tuf_metadata_free(r->md[TUF_ROLE_ROOT]);
        r->md[TUF_ROLE_ROOT] = TAKE_PTR(*m);

        if (targets_changed) {
                q = ensure_new_targets(r, err);
                if (q >= 0)
                        q = tuf_repo_publish(r, err);
        } else {
                bool changed;
                q = tuf_repo_refresh_timestamp(r, true, &changed, err);
        }
        if (q < 0)
                return q;
        return retire_keys(r, err);
}

int tuf_repo_rotate(TufRepo *r, TufRoleType type, const TufRepoRotateOptions *o, UpkErr *err)
{
        const char *role = tuf_role_type_to_string(type);
        const TufMetadata *old = r->md[TUF_ROLE_ROOT];
        const TufRole *old_role = tuf_metadata_find_role(old, role);
        _cleanup_(json_object_putp) json_object *s = NULL;
        _cleanup_(tuf_metadata_freep) TufMetadata *m = NULL;
        _cleanup_free_ TufSigner **old_signers = NULL, **new_keys = NULL, **new_signers = NULL,
                                 **signers = NULL;
        _cleanup_free_ char *bytes = NULL;
        json_object *old_signed, *roles, *keys;
        size_t n_old = 0, n_new = 0, n_new_signers = 0, n_signers = 0, size = 0;
        unsigned threshold = o->threshold ?: (unsigned)old_role->threshold;
        TufRepoInitOptions io = { .scheme = o->scheme };
        bool complete;
        int q;

        q = check_not_prepared(r, TUF_ROLE_ROOT, err);
        if (q < 0)
                return q;
        /* The old root's threshold of root keys signs the new root (its expiry does not matter: devices
         * walk expired roots of the chain); with `prepare`, the keys at hand. */
        q = role_signers_at_hand(r, old, "root", r->prepare, &old_signers, &n_old, err);
        if (q < 0)
                return upk_err_prefix(err, "rotating %s", role);
        complete = q > 0;

        io.threshold[type] = threshold;
        io.key_paths[type] = o->key_paths;
        q = init_role_keys(r, &io, type, &new_keys, &n_new, err);
        if (q < 0)
                return q;
        for (size_t i = 0; i < n_new; i++)
                if (strv_contains(old_role->keyids, new_keys[i]->keyid))
                        return upk_err(err, UPK_ERR_CONFIG, -EEXIST,
                                       "%s: key %s is a key of the role already", role, new_keys[i]->keyid);

        if (!json_object_object_get_ex(old->doc, "signed", &old_signed) ||
            json_object_deep_copy(old_signed, &s, NULL) < 0)
                return upk_err_oom(err);
        set_version_expires(s, old->version + 1, r->now + (time_t)r->period[TUF_ROLE_ROOT]);
        if (!json_object_object_get_ex(s, "roles", &roles) || !json_object_object_get_ex(s, "keys", &keys))
                return upk_err_oom(err);
        json_object_object_del(roles, role);
        if (add_role(roles, keys, role, new_keys, n_new, threshold) < 0 || prune_keys(s) < 0)
                return upk_err_oom(err);

        /* Signed by the old root's keys and by the new one's, each to its threshold. */
        q = tuf_sign_document(s, old_signers, n_old, &bytes, &size, err);
        if (q < 0)
                return q;
        q = tuf_metadata_parse(bytes, size, TUF_ROLE_ROOT, NULL, &m, err);
        if (q < 0)
                return upk_err_prefix(err, "the new root");
        q = role_signers_at_hand(r, m, "root", r->prepare, &new_signers, &n_new_signers, err);
        if (q < 0)
                return q;
        complete = complete && q > 0;
        signers = calloc(n_old + n_new_signers, sizeof(TufSigner *));
        if (!signers)
                return upk_err_oom(err);
        for (size_t i = 0; i < n_old; i++)
                signers[n_signers++] = old_signers[i];
        for (size_t i = 0; i < n_new_signers; i++) {
                bool dup = false;
                for (size_t j = 0; j < n_old; j++)
                        dup = dup || old_signers[j] == new_signers[i];
                if (!dup)
                        signers[n_signers++] = new_signers[i];
        }
        free(bytes);
        bytes = NULL;
        m = tuf_metadata_free(m);
        q = tuf_sign_document(s, signers, n_signers, &bytes, &size, err);
        if (q < 0)
                return q;
        q = tuf_metadata_parse(bytes, size, TUF_ROLE_ROOT, NULL, &m, err);
        if (q < 0)
                return upk_err_prefix(err, "the new root");
        if (!complete) {
                /* Everything the new root makes due can be signed once it is complete. */
                q = check_can_publish(r, m, type == TUF_ROLE_TARGETS, err);
                if (q < 0)
                        return q;
                return write_prepared(r, TUF_ROLE_ROOT, s, signers, n_signers, err);
        }
        return publish_root(r, bytes, size, &m, err);
}

/* ---- delegate ---- */

static bool role_name_ok(const char *name)
{
        size_t n = strlen(name);

        if (n == 0 || n > DELEGATED_NAME_MAX || name[0] == '.' || name[0] == '-')
                return false;
        for (const char *c = name; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                      *c == '-' || *c == '_' || *c == '.'))
                        return false;
        for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++)
                if (streq(name, tuf_role_type_to_string(t)))
                        return false;
        return true;
}

/* Add role `o->name` to the "delegations" of the top-level targets' "signed" `s`. */
static int add_delegation(json_object *s, const TufRepoDelegateOptions *o, TufSigner *const *keys, size_t n)
{
        json_object *del = NULL, *dkeys = NULL, *roles = NULL, *ro, *paths;

        if (!json_object_object_get_ex(s, "delegations", &del)) {
                del = json_object_new_object();
                if (!del)
                        return -ENOMEM;
                json_object_object_add(s, "delegations", del);
        }
        if (!json_object_object_get_ex(del, "keys", &dkeys)) {
                dkeys = json_object_new_object();
                if (!dkeys)
                        return -ENOMEM;
                json_object_object_add(del, "keys", dkeys);
        }
        if (!json_object_object_get_ex(del, "roles", &roles)) {
                roles = json_object_new_array();
                if (!roles)
                        return -ENOMEM;
                json_object_object_add(del, "roles", roles);
        }
        ro = new_role(dkeys, keys, n, o->threshold ?: 1);
        paths = json_object_new_array();
        if (!ro || !paths) {
                json_object_put(ro);
                json_object_put(paths);
                return -ENOMEM;
        }
        for (char **p = o->paths; p && *p; p++)
                json_object_array_add(paths, json_object_new_string(*p));
        json_object_object_add(ro, "name", json_object_new_string(o->name));
        json_object_object_add(ro, "terminating", json_object_new_boolean(o->terminating));
        json_object_object_add(ro, "paths", paths);
        json_object_array_add(roles, ro);
        return 0;
}

int tuf_repo_delegate(TufRepo *r, const TufRepoDelegateOptions *o, UpkErr *err)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *top = NULL;
        _cleanup_(json_object_putp) json_object *ds = NULL;
        _cleanup_free_ char *targets = NULL, *role = NULL, *snap = NULL, *tname = NULL, *rname = NULL;
        _cleanup_free_ TufSigner **keys = NULL;
        size_t n = 0, targets_size = 0, role_size = 0, snap_size = 0;
        uint64_t tv = r->md[TUF_ROLE_TARGETS]->version + 1, sv = r->md[TUF_ROLE_SNAPSHOT]->version + 1;
        int q;

        if (!role_name_ok(o->name))
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "role name \"%s\": expected up to %d letters, digits, '-', '_' and '.' "
                               "(not starting with '.' or '-'), and not a top-level role's name",
                               JSON_QUOTE(o->name), DELEGATED_NAME_MAX);
        if (tuf_metadata_find_role(r->md[TUF_ROLE_TARGETS], o->name))
                return upk_err(err, UPK_ERR_CONFIG, -EEXIST, "role %s is delegated already", o->name);
        if (strv_length(o->paths) == 0)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "role %s: no paths delegated", o->name);
        for (char **p = o->paths; *p; p++)
                if (isempty(*p) || strlen(*p) > TUF_TARGET_PATH_MAX || (*p)[0] == '/')
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                       "role %s: path pattern \"%s\": expected a relative pattern such as "
                                       "acme-gw-*",
                                       o->name, JSON_QUOTE(*p));
        q = check_root_current(r, err);
        if (q >= 0)
                q = check_can_publish(r, r->md[TUF_ROLE_ROOT], true, err);
        if (q < 0)
                return q;
        q = make_keys(r, o->name, o->scheme, o->threshold ?: 1, o->key_paths, &keys, &n, err);
        if (q < 0)
                return q;

        /* The top-level targets with the delegation, then the role's first version signed by its keys. */
        q = ensure_new_targets(r, err);
        if (q < 0)
                return q;
        if (add_delegation(r->new_targets, o, keys, n) < 0)
                return upk_err_oom(err);
        set_version_expires(r->new_targets, tv, r->now + (time_t)r->period[TUF_ROLE_TARGETS]);
        q = sign_role(r, r->md[TUF_ROLE_ROOT], TUF_ROLE_TARGETS, r->new_targets, &targets, &targets_size,
                      &top, err);
        if (q < 0)
                return q;
        ds = new_signed(TUF_ROLE_TARGETS, 1, r->now + (time_t)r->period[TUF_ROLE_TARGETS]);
        if (!ds)
                return upk_err_oom(err);
        json_object_object_add(ds, "targets", json_object_new_object());
        q = sign_as(r, top, TUF_ROLE_TARGETS, o->name, ds, &role, &role_size, NULL, err);
        if (q < 0)
                return q;
        q = build_snapshot_with(r, sv, tv, o->name, 1, &snap, &snap_size, NULL, err);
        if (q < 0)
                return q;

        rname = strdup_printf("1.%s.json", o->name);
        tname = strdup_printf("%" PRIu64 ".targets.json", tv);
        if (!rname || !tname)
                return upk_err_oom(err);
        q = write_metadata(r, rname, role, role_size, err);
        if (q >= 0)
                q = write_metadata(r, tname, targets, targets_size, err);
        if (q < 0)
                return q;
        return publish_snapshot_timestamp(r, snap, snap_size, sv, err);
}

/* ---- sign ---- */

static bool role_has_key(const TufMetadata *root, const char *role, const char *keyid)
{
        const TufRole *ro = tuf_metadata_find_role(root, role);
        return ro && strv_contains(ro->keyids, keyid);
}

int tuf_repo_sign(TufRepo *r, TufRoleType type, char *const *key_paths, TufRepoSignState *ret, UpkErr *err)
{
        const char *role = tuf_role_type_to_string(type);
        const TufMetadata *root = r->md[TUF_ROLE_ROOT];
        _cleanup_(tuf_metadata_freep) TufMetadata *m = NULL, *next = NULL;
        _cleanup_free_ char *path = NULL, *data = NULL, *bytes = NULL;
        _cleanup_free_ TufSigner **use = NULL;
        size_t size = 0, n_use = 0;
        int q;

        *ret = (TufRepoSignState){};
        if (type != TUF_ROLE_ROOT && type != TUF_ROLE_TARGETS)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "%s: only root and targets metadata are prepared for offline signing", role);
        path = prepared_path(r, type);
        if (!path)
                return upk_err_oom(err);
        q = read_full_file(path, METADATA_FILE_MAX, &data, &size);
        if (q == -ENOENT)
                return upk_err(err, UPK_ERR_CONFIG, q,
                               "%s: no %s metadata waits for signatures (prepare it with --offline)", path,
                               role);
        if (q < 0)
                return upk_err(err, UPK_ERR_IO, q, "%s: %m", path);
        q = tuf_metadata_parse(data, size, type, NULL, &m, err);
        if (q < 0)
                return upk_err_prefix(err, "%s", path);
        ret->version = m->version;
        if (m->version != r->md[type]->version + 1)
                return upk_err(err, UPK_ERR_CONFIG, -ESTALE,
                               "%s: prepared %s version %" PRIu64
                               " does not follow the published version %" PRIu64 "; prepare it again",
                               path, role, m->version, r->md[type]->version);
        if (tuf_metadata_expired(m, r->now))
                return upk_err(err, UPK_ERR_SIGNATURE, -EKEYEXPIRED,
                               "%s: prepared %s version %" PRIu64 " expired at %s; prepare it again", path,
                               role, m->version, m->expires_str);
        if (type == TUF_ROLE_TARGETS) {
                q = check_root_current(r, err);
                if (q < 0)
                        return q;
        }

        /* Each key must be one of the role's: under the current root, or (root) the new one. */
        use = calloc(strv_length((char **)key_paths) ?: 1, sizeof(TufSigner *));
        if (!use)
                return upk_err_oom(err);
        for (char *const *k = key_paths; k && *k; k++) {
                TufSigner *s = NULL;
                char keyid[65];

                q = tuf_signer_load(*k, &s, err);
                if (q < 0)
                        return q;
                memcpy(keyid, s->keyid, sizeof(keyid));
                if (!role_has_key(root, role, keyid) &&
                    !(type == TUF_ROLE_ROOT && role_has_key(m, role, keyid))) {
                        tuf_signer_free(s);
                        return upk_err(err, UPK_ERR_SIGNATURE, -EPERM,
                                       "%s: key %s is not a %s key of root version %" PRIu64 "%s", *k, keyid,
                                       role, root->version,
                                       type == TUF_ROLE_ROOT ? " or of the prepared root" : "");
                }
                q = repo_keep_signer(r, s, *k, err);
                if (q < 0)
                        return q;
                use[n_use++] = (TufSigner *)find_signer(r, keyid);
        }
        q = tuf_sign_append(m->doc, use, n_use, &bytes, &size, err);
        if (q < 0)
                return upk_err_prefix(err, "%s", path);
        q = tuf_metadata_parse(bytes, size, type, NULL, &next, err);
        if (q < 0)
                return upk_err_prefix(err, "%s", path);
        ret->added = next->n_signatures - m->n_signatures;

        q = tuf_metadata_count_valid(root, next, &ret->valid, &ret->threshold);
        if (q >= 0 && type == TUF_ROLE_ROOT)
                q = tuf_metadata_count_valid(next, next, &ret->valid_new, &ret->threshold_new);
        if (q < 0)
                return upk_err(err, UPK_ERR_SIGNATURE, q, "%s: the signatures do not verify", path);
        if (ret->added > 0) {
                q = write_file_atomic(r->prepared_dir, path_basename(path), bytes, size, 0644);
                if (q < 0)
                        return upk_err(err, UPK_ERR_IO, q, "%s: %m", path);
        }
        if (ret->valid < ret->threshold || ret->valid_new < ret->threshold_new)
                return 0;

        /* Complete: published when the keys that sign what follows are at hand here. */
        q = check_can_publish(r, type == TUF_ROLE_ROOT ? next : root,
                              type == TUF_ROLE_ROOT && role_changed(root, next, "targets"), &ret->blocked);
        if (q < 0)
                return 0;
        if (type == TUF_ROLE_ROOT)
                q = publish_root(r, bytes, size, &next, err);
        else
                q = publish_targets(r, bytes, size, err);
        if (q < 0)
                return q;
        if (unlink(path) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: %m", path);
        ret->published = true;
        return 0;
}
