/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tuf-metadata.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>

#include "hexdecoct.h"
#include "json-util.h"
#include "strv.h"
#include "time-util.h"
#include "tuf-json.h"

#define PATH_MAX_LEN JSON_KEY_PATH_MAX

static const char *const role_type_table[_TUF_ROLE_TYPE_MAX] = {
        [TUF_ROLE_ROOT] = "root",
        [TUF_ROLE_TIMESTAMP] = "timestamp",
        [TUF_ROLE_SNAPSHOT] = "snapshot",
        [TUF_ROLE_TARGETS] = "targets",
};

DEFINE_STRING_TABLE_TO_STRING(tuf_role_type, TufRoleType, role_type_table)

/* ---- freeing ---- */

static void hashes_free(TufHash *h, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(h[i].algorithm);
                free(h[i].hex);
        }
        free(h);
}

static void role_done(TufRole *r)
{
        free(r->name);
        strv_free(r->keyids);
        strv_free(r->paths);
        strv_free(r->prefixes);
}

TufMetadata *tuf_metadata_free(TufMetadata *m)
{
        if (!m)
                return NULL;
        free(m->role_name);
        free(m->signed_bytes);
        for (size_t i = 0; i < m->n_signatures; i++) {
                free(m->signatures[i].keyid);
                free(m->signatures[i].sig);
        }
        free(m->signatures);
        for (size_t i = 0; i < m->n_keys; i++)
                tuf_key_free(m->keys[i]);
        free(m->keys);
        for (size_t i = 0; i < m->n_roles; i++)
                role_done(&m->roles[i]);
        free(m->roles);
        for (size_t i = 0; i < m->n_meta; i++) {
                free(m->meta[i].name);
                hashes_free(m->meta[i].hashes, m->meta[i].n_hashes);
        }
        free(m->meta);
        for (size_t i = 0; i < m->n_targets; i++) {
                free(m->targets[i].path);
                hashes_free(m->targets[i].hashes, m->targets[i].n_hashes);
        }
        free(m->targets);
        if (m->doc)
                json_object_put(m->doc);
        free(m);
        return NULL;
}

/* ---- typed access (json-util.h) ---- */

static int dup_strv(const JsonCtx *c, json_object *arr, const char *path, size_t max, size_t len_max,
                    char ***ret, size_t *ret_n)
{
        size_t n = json_object_array_length(arr);
        char **v;

        if (n > max)
                return json_bad(c, "%s: more than %zu entries", path, max);
        v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(arr, i);
                const char *s;
                if (!json_object_is_type(e, json_type_string) ||
                    strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e)) {
                        strv_free(v);
                        return json_bad(c, "%s[%zu]: expected a string", path, i);
                }
                s = json_object_get_string(e);
                if (strlen(s) > len_max) {
                        strv_free(v);
                        return json_bad(c, "%s[%zu]: longer than %zu bytes", path, i, len_max);
                }
                v[i] = strdup(s);
                if (!v[i]) {
                        strv_free(v);
                        return -ENOMEM;
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* ---- common fields ---- */

/* Semver-like "1.0.31" or "1.0": all digits, major 1 (python-tuf accepts X.Y and X.Y.Z). */
static bool spec_version_ok(const char *s)
{
        size_t parts = 0;
        const char *p = s;

        for (;;) {
                size_t n = strspn(p, "0123456789");
                if (n == 0)
                        return false;
                parts++;
                p += n;
                if (*p == 0)
                        break;
                if (*p != '.')
                        return false;
                p++;
        }
        return (parts == 2 || parts == 3) && strspn(s, "0123456789") == 1 && s[0] == '1';
}

static int parse_hashes(const JsonCtx *c, json_object *o, const char *path, TufHash **ret, size_t *ret_n)
{
        size_t n = (size_t)json_object_object_length(o), i = 0;
        TufHash *h;

        if (n == 0)
                return json_bad(c, "%s: must not be empty", path);
        if (n > TUF_HASHES_MAX)
                return json_bad(c, "%s: more than %d hashes", path, TUF_HASHES_MAX);
        h = calloc(n, sizeof(TufHash));
        if (!h)
                return -ENOMEM;
        json_object_object_foreach(o, algo, v)
        {
                if (!json_object_is_type(v, json_type_string) ||
                    (size_t)json_object_get_string_len(v) > TUF_HASH_HEX_MAX ||
                    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
                        hashes_free(h, i);
                        return json_bad(c, "%s.%s: expected a hex string", path, JSON_QUOTE(algo));
                }
                h[i].algorithm = strdup(algo);
                h[i].hex = strdup(json_object_get_string(v));
                i++;
                if (!h[i - 1].algorithm || !h[i - 1].hex) {
                        hashes_free(h, i);
                        return -ENOMEM;
                }
        }
        *ret = h;
        *ret_n = n;
        return 0;
}

static int parse_keys(const JsonCtx *c, json_object *o, const char *path, TufMetadata *m)
{
        size_t n = (size_t)json_object_object_length(o);
        char kp[PATH_MAX_LEN];

        if (n > TUF_KEYS_MAX)
                return json_bad(c, "%s: more than %d keys", path, TUF_KEYS_MAX);
        m->keys = calloc(n ?: 1, sizeof(TufKey *));
        if (!m->keys)
                return -ENOMEM;
        json_object_object_foreach(o, keyid, v)
        {
                int r;
                snprintf(kp, sizeof(kp), "%s: %s.%s", JSON_QUOTE(c->what), path, JSON_QUOTE(keyid));
                r = tuf_key_from_json(keyid, v, kp, &m->keys[m->n_keys], c->err);
                if (r < 0)
                        return r;
                m->n_keys++;
        }
        return 0;
}

static int parse_role_keys(const JsonCtx *c, json_object *o, const char *path, TufRole *role)
{
        json_object *keyids = NULL;
        uint64_t threshold = 0;
        char kp[PATH_MAX_LEN];
        int r;

        r = json_get(c, o, path, "keyids", json_type_array, true, &keyids);
        if (r < 0)
                return r;
        snprintf(kp, sizeof(kp), "%s.keyids", path);
        r = dup_strv(c, keyids, kp, TUF_KEYIDS_MAX, TUF_KEYID_MAX, &role->keyids, &role->n_keyids);
        if (r < 0)
                return r;
        for (size_t i = 0; i < role->n_keyids; i++)
                for (size_t j = 0; j < i; j++)
                        if (streq(role->keyids[i], role->keyids[j]))
                                return json_bad(c, "%s: keyid %s is listed twice", kp,
                                                JSON_QUOTE(role->keyids[i]));
        r = json_get_uint(c, o, path, "threshold", true, TUF_THRESHOLD_MAX, &threshold);
        if (r < 0)
                return r;
        if (threshold < 1)
                return json_bad(c, "%s.threshold: must be at least 1", path);
        role->threshold = threshold;
        return 0;
}

/* ---- the roles ---- */

static int parse_root(const JsonCtx *c, json_object *s, TufMetadata *m)
{
        static const char *const top[] = { "root", "timestamp", "snapshot", "targets" };
        json_object *keys = NULL, *roles = NULL, *cs = NULL;
        char kp[PATH_MAX_LEN];
        int r;

        r = json_get(c, s, "signed", "consistent_snapshot", json_type_boolean, false, &cs);
        if (r < 0)
                return r;
        m->consistent_snapshot = r > 0 && json_object_get_boolean(cs);
        r = json_get(c, s, "signed", "keys", json_type_object, true, &keys);
        if (r < 0)
                return r;
        r = parse_keys(c, keys, "signed.keys", m);
        if (r < 0)
                return r;
        r = json_get(c, s, "signed", "roles", json_type_object, true, &roles);
        if (r < 0)
                return r;
        m->roles = calloc(ELEMENTSOF(top), sizeof(TufRole));
        if (!m->roles)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(top); i++) {
                json_object *ro = NULL;
                r = json_get(c, roles, "signed.roles", top[i], json_type_object, true, &ro);
                if (r < 0)
                        return r;
                m->roles[i].name = strdup(top[i]);
                m->n_roles++;
                if (!m->roles[i].name)
                        return -ENOMEM;
                snprintf(kp, sizeof(kp), "signed.roles.%s", top[i]);
                r = parse_role_keys(c, ro, kp, &m->roles[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_meta(const JsonCtx *c, json_object *s, TufMetadata *m)
{
        json_object *meta = NULL;
        char kp[PATH_MAX_LEN];
        size_t n;
        int r;

        r = json_get(c, s, "signed", "meta", json_type_object, true, &meta);
        if (r < 0)
                return r;
        n = (size_t)json_object_object_length(meta);
        m->meta = calloc(n ?: 1, sizeof(TufMetaFile));
        if (!m->meta)
                return -ENOMEM;
        json_object_object_foreach(meta, name, v)
        {
                TufMetaFile *f = &m->meta[m->n_meta++];
                json_object *hashes = NULL;

                snprintf(kp, sizeof(kp), "signed.meta.%s", JSON_QUOTE(name));
                f->name = strdup(name);
                if (!f->name)
                        return -ENOMEM;
                if (!json_object_is_type(v, json_type_object))
                        return json_bad(c, "%s: expected an object", kp);
                r = json_get_uint(c, v, kp, "version", true, TUF_VERSION_MAX, &f->version);
                if (r < 0)
                        return r;
                if (f->version < 1)
                        return json_bad(c, "%s.version: must be at least 1", kp);
                r = json_get_uint(c, v, kp, "length", false, TUF_LENGTH_MAX, &f->length);
                if (r < 0)
                        return r;
                f->has_length = r > 0;
                r = json_get(c, v, kp, "hashes", json_type_object, false, &hashes);
                if (r < 0)
                        return r;
                if (r > 0) {
                        snprintf(kp, sizeof(kp), "signed.meta.%s.hashes", JSON_QUOTE(name));
                        r = parse_hashes(c, hashes, kp, &f->hashes, &f->n_hashes);
                        if (r < 0)
                                return r;
                }
        }
        if (m->type == TUF_ROLE_TIMESTAMP && !tuf_metadata_find_meta(m, "snapshot.json"))
                return json_bad(c, "signed.meta: no entry for snapshot.json");
        return 0;
}

static bool hex_prefix_ok(const char *s)
{
        return *s && strspn(s, "0123456789abcdef") == strlen(s) && strlen(s) <= 64;
}

static int parse_delegations(const JsonCtx *c, json_object *d, TufMetadata *m)
{
        json_object *keys = NULL, *roles = NULL;
        char kp[PATH_MAX_LEN];
        size_t n;
        int r;

        m->has_delegations = true;
        r = json_get(c, d, "signed.delegations", "keys", json_type_object, true, &keys);
        if (r < 0)
                return r;
        r = parse_keys(c, keys, "signed.delegations.keys", m);
        if (r < 0)
                return r;
        if (json_object_object_get_ex(d, "succinct_roles", NULL))
                return json_bad(c, "signed.delegations.succinct_roles: not supported (TAP 15)");
        r = json_get(c, d, "signed.delegations", "roles", json_type_array, true, &roles);
        if (r < 0)
                return r;
        n = json_object_array_length(roles);
        if (n > TUF_DELEGATIONS_MAX)
                return json_bad(c, "signed.delegations.roles: more than %d roles", TUF_DELEGATIONS_MAX);
        m->roles = calloc(n ?: 1, sizeof(TufRole));
        if (!m->roles)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(roles, i), *name = NULL, *term = NULL,
                            *paths = NULL, *prefixes = NULL;
                TufRole *role = &m->roles[m->n_roles++];
                const char *nm;

                snprintf(kp, sizeof(kp), "signed.delegations.roles[%zu]", i);
                if (!json_object_is_type(o, json_type_object))
                        return json_bad(c, "%s: expected an object", kp);
                r = json_get(c, o, kp, "name", json_type_string, true, &name);
                if (r < 0)
                        return r;
                nm = json_object_get_string(name);
                if (!*nm || strlen(nm) > TUF_ROLE_NAME_MAX)
                        return json_bad(c, "%s.name: must have 1 to %d bytes", kp, TUF_ROLE_NAME_MAX);
                for (size_t t = 0; t < _TUF_ROLE_TYPE_MAX; t++)
                        if (streq(nm, role_type_table[t]))
                                return json_bad(c, "%s.name: \"%s\" is a top-level role", kp, nm);
                for (size_t j = 0; j + 1 < m->n_roles; j++)
                        if (streq(m->roles[j].name, nm))
                                return json_bad(c, "%s.name: \"%s\" is delegated twice", kp, JSON_QUOTE(nm));
                role->name = strdup(nm);
                if (!role->name)
                        return -ENOMEM;
                r = parse_role_keys(c, o, kp, role);
                if (r < 0)
                        return r;
                r = json_get(c, o, kp, "terminating", json_type_boolean, true, &term);
                if (r < 0)
                        return r;
                role->terminating = json_object_get_boolean(term);
                r = json_get(c, o, kp, "paths", json_type_array, false, &paths);
                if (r < 0)
                        return r;
                r = json_get(c, o, kp, "path_hash_prefixes", json_type_array, false, &prefixes);
                if (r < 0)
                        return r;
                if (!!paths == !!prefixes)
                        return json_bad(c, "%s: exactly one of paths and path_hash_prefixes must be given",
                                        kp);
                if (paths) {
                        char pp[PATH_MAX_LEN + 32];
                        snprintf(pp, sizeof(pp), "%s.paths", kp);
                        r = dup_strv(c, paths, pp, TUF_PATTERNS_MAX, TUF_TARGET_PATH_MAX, &role->paths,
                                     &role->n_paths);
                } else {
                        char pp[PATH_MAX_LEN + 32];
                        snprintf(pp, sizeof(pp), "%s.path_hash_prefixes", kp);
                        r = dup_strv(c, prefixes, pp, TUF_PATTERNS_MAX, 64, &role->prefixes,
                                     &role->n_prefixes);
                        for (size_t j = 0; r >= 0 && j < role->n_prefixes; j++)
                                if (!hex_prefix_ok(role->prefixes[j]))
                                        r = json_bad(c, "%s[%zu]: expected lower-case hex digits", pp, j);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_targets(const JsonCtx *c, json_object *s, TufMetadata *m)
{
        json_object *targets = NULL, *deleg = NULL;
        char kp[PATH_MAX_LEN];
        size_t n;
        int r;

        r = json_get(c, s, "signed", "targets", json_type_object, true, &targets);
        if (r < 0)
                return r;
        n = (size_t)json_object_object_length(targets);
        m->targets = calloc(n ?: 1, sizeof(TufTargetFile));
        if (!m->targets)
                return -ENOMEM;
        json_object_object_foreach(targets, path, v)
        {
                TufTargetFile *t = &m->targets[m->n_targets++];
                json_object *hashes = NULL, *custom = NULL;

                snprintf(kp, sizeof(kp), "signed.targets.%s", JSON_QUOTE(path));
                t->path = strdup(path);
                if (!t->path)
                        return -ENOMEM;
                if (strlen(path) > TUF_TARGET_PATH_MAX)
                        return json_bad(c, "%s: the path is longer than %d bytes", kp, TUF_TARGET_PATH_MAX);
                if (!json_object_is_type(v, json_type_object))
                        return json_bad(c, "%s: expected an object", kp);
                r = json_get_uint(c, v, kp, "length", true, TUF_LENGTH_MAX, &t->length);
                if (r < 0)
                        return r;
                r = json_get(c, v, kp, "hashes", json_type_object, true, &hashes);
                if (r < 0)
                        return r;
                snprintf(kp, sizeof(kp), "signed.targets.%s.hashes", JSON_QUOTE(path));
                r = parse_hashes(c, hashes, kp, &t->hashes, &t->n_hashes);
                if (r < 0)
                        return r;
                if (json_object_object_get_ex(v, "custom", &custom))
                        t->custom = custom;
        }
        r = json_get(c, s, "signed", "delegations", json_type_object, false, &deleg);
        if (r < 0)
                return r;
        if (r > 0)
                return parse_delegations(c, deleg, m);
        return 0;
}

int tuf_metadata_parse(const void *data, size_t size, TufRoleType type, const char *role_name,
                       TufMetadata **ret, UpkErr *err)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *m = NULL;
        json_object *sigs = NULL, *s = NULL, *v = NULL;
        const char *name = role_name ?: tuf_role_type_to_string(type);
        JsonStrictOptions jo = {
                .what = name,
                .kind = UPK_ERR_FORMAT,
                .depth_max = TUF_DEPTH_MAX,
        };
        JsonCtx c = { .what = name, .kind = UPK_ERR_FORMAT, .err = err };
        int64_t expires;
        size_t n;
        int r;

        m = calloc(1, sizeof(TufMetadata));
        if (!m)
                return upk_err_oom(err);
        m->type = type;
        m->role_name = strdup(name);
        if (!m->role_name)
                return upk_err_oom(err);
        r = json_parse_strict(data, size, &jo, &m->doc, err);
        if (r < 0)
                return r;

        r = json_get(&c, m->doc, "metadata", "signed", json_type_object, true, &s);
        if (r < 0)
                return r;
        r = json_get(&c, m->doc, "metadata", "signatures", json_type_array, true, &sigs);
        if (r < 0)
                return r;
        n = json_object_array_length(sigs);
        if (n > TUF_SIGNATURES_MAX)
                return json_bad(&c, "signatures: more than %d", TUF_SIGNATURES_MAX);
        m->signatures = calloc(n ?: 1, sizeof(TufSignature));
        if (!m->signatures)
                return upk_err_oom(err);
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(sigs, i), *keyid = NULL, *sig = NULL;
                char kp[PATH_MAX_LEN];

                snprintf(kp, sizeof(kp), "signatures[%zu]", i);
                if (!json_object_is_type(o, json_type_object))
                        return json_bad(&c, "%s: expected an object", kp);
                r = json_get(&c, o, kp, "keyid", json_type_string, true, &keyid);
                if (r < 0)
                        return r;
                r = json_get(&c, o, kp, "sig", json_type_string, true, &sig);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < m->n_signatures; j++)
                        if (streq(m->signatures[j].keyid, json_object_get_string(keyid)))
                                return upk_err(err, UPK_ERR_SIGNATURE, -EPERM,
                                               "%s: more than one signature with keyid %s", JSON_QUOTE(name),
                                               JSON_QUOTE(json_object_get_string(keyid)));
                m->signatures[i].keyid = strdup(json_object_get_string(keyid));
                m->signatures[i].sig = strdup(json_object_get_string(sig));
                m->n_signatures++;
                if (!m->signatures[i].keyid || !m->signatures[i].sig)
                        return upk_err_oom(err);
        }

        r = tuf_canonical_json(s, &m->signed_bytes, &m->signed_size);
        if (r == -EDOM || r == -ELOOP)
                return json_bad(&c, "signed: has no canonical form (a number that is not an integer)");
        if (r < 0)
                return r;

        r = json_get(&c, s, "signed", "_type", json_type_string, true, &v);
        if (r < 0)
                return r;
        if (!streq(json_object_get_string(v), tuf_role_type_to_string(type)))
                return json_bad(&c, "signed._type: expected \"%s\", got \"%s\"",
                                tuf_role_type_to_string(type), JSON_QUOTE(json_object_get_string(v)));
        r = json_get(&c, s, "signed", "spec_version", json_type_string, true, &v);
        if (r < 0)
                return r;
        if (!spec_version_ok(json_object_get_string(v)))
                return json_bad(&c, "signed.spec_version: \"%s\" is not a supported 1.x version",
                                JSON_QUOTE(json_object_get_string(v)));
        r = json_get_uint(&c, s, "signed", "version", true, TUF_VERSION_MAX, &m->version);
        if (r < 0)
                return r;
        if (m->version < 1)
                return json_bad(&c, "signed.version: must be at least 1");
        r = json_get(&c, s, "signed", "expires", json_type_string, true, &v);
        if (r < 0)
                return r;
        if (timestamp_parse(json_object_get_string(v), TIMESTAMP_UTC_SECONDS, &expires) < 0)
                return json_bad(
                        &c, "signed.expires: \"%s\" is not of the form YYYY-MM-DDTHH:MM:SSZ (1970 or later)",
                        JSON_QUOTE(json_object_get_string(v)));
        m->expires = (time_t)expires;
        snprintf(m->expires_str, sizeof(m->expires_str), "%s", json_object_get_string(v));

        switch (type) {
        case TUF_ROLE_ROOT:
                r = parse_root(&c, s, m);
                break;
        case TUF_ROLE_TIMESTAMP:
        case TUF_ROLE_SNAPSHOT:
                r = parse_meta(&c, s, m);
                break;
        case TUF_ROLE_TARGETS:
                r = parse_targets(&c, s, m);
                break;
        case _TUF_ROLE_TYPE_MAX:
        case _TUF_ROLE_TYPE_INVALID:
                return upk_err(err, UPK_ERR_FORMAT, -EINVAL, "%s: role type %d is none of TUF's roles",
                               name ?: "metadata", (int)type);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* ---- lookups ---- */

const TufRole *tuf_metadata_find_role(const TufMetadata *delegator, const char *name)
{
        for (size_t i = 0; i < delegator->n_roles; i++)
                if (streq(delegator->roles[i].name, name))
                        return &delegator->roles[i];
        return NULL;
}

static const TufKey *tuf_metadata_find_key(const TufMetadata *delegator, const char *keyid)
{
        for (size_t i = 0; i < delegator->n_keys; i++)
                if (streq(delegator->keys[i]->keyid, keyid))
                        return delegator->keys[i];
        return NULL;
}

const TufMetaFile *tuf_metadata_find_meta(const TufMetadata *m, const char *name)
{
        for (size_t i = 0; i < m->n_meta; i++)
                if (streq(m->meta[i].name, name))
                        return &m->meta[i];
        return NULL;
}

const TufTargetFile *tuf_metadata_find_target(const TufMetadata *m, const char *path)
{
        for (size_t i = 0; i < m->n_targets; i++)
                if (streq(m->targets[i].path, path))
                        return &m->targets[i];
        return NULL;
}

/* ---- signatures ---- */

int tuf_metadata_count_valid(const TufMetadata *delegator, const TufMetadata *md, size_t *ret_valid,
                             uint64_t *ret_threshold)
{
        const TufRole *role = tuf_metadata_find_role(delegator, md->role_name);
        size_t valid = 0;

        if (!role)
                return -ENOENT;
        /* Each keyid of the role counts once, with the first signature that carries it (keyids in a role
         * and in "signatures" are unique already). */
        for (size_t i = 0; i < role->n_keyids; i++) {
                const TufKey *k = tuf_metadata_find_key(delegator, role->keyids[i]);
                if (!k)
                        continue;
                for (size_t j = 0; j < md->n_signatures; j++) {
                        int r;
                        if (!streq(md->signatures[j].keyid, role->keyids[i]))
                                continue;
                        r = tuf_key_verify(k, md->signatures[j].sig, md->signed_bytes, md->signed_size);
                        if (r < 0)
                                return r;
                        if (r > 0) {
                                valid++;
                                break;
                        }
                }
        }
        *ret_valid = valid;
        *ret_threshold = role->threshold;
        return 0;
}

int tuf_metadata_verify(const TufMetadata *delegator, const TufMetadata *md, UpkErr *err)
{
        uint64_t threshold = 0;
        size_t valid = 0;
        int r;

        r = tuf_metadata_count_valid(delegator, md, &valid, &threshold);
        if (r == -ENOENT)
                return upk_err(err, UPK_ERR_SIGNATURE, -ENOENT, "%s: not a role delegated by %s",
                               JSON_QUOTE(md->role_name), JSON_QUOTE(delegator->role_name));
        if (r < 0)
                return r;
        if (valid < threshold)
                return upk_err(err, UPK_ERR_SIGNATURE, -EPERM,
                               "%s: signature threshold not met: %zu of %" PRIu64 " valid signatures",
                               JSON_QUOTE(md->role_name), valid, threshold);
        return 0;
}

bool tuf_metadata_expired(const TufMetadata *m, time_t now)
{
        return now >= m->expires;
}

/* ---- delegated paths ---- */

/* One segment of a pattern against one segment of a path: fnmatch(3) without FNM_PATHNAME semantics
 * beyond the segment, '*', '?', and [...] sets. */
static bool tuf_path_pattern_match(const char *pattern, const char *path)
{
        return fnmatch(pattern, path, FNM_NOESCAPE) == 0;
}

static size_t count_segments(const char *s)
{
        size_t n = 1;

        for (; *s; s++)
                n += *s == '/';
        return n;
}

/* python-tuf's rule: as many segments in the pattern as in the path, each matched by fnmatch, so a '*'
 * never reaches over a '/'. */
static bool path_in_pattern(const char *path, const char *pattern)
{
        if (count_segments(path) != count_segments(pattern))
                return false;
        while (true) {
                size_t lp = strcspn(path, "/"), lq = strcspn(pattern, "/");
                char seg[TUF_TARGET_PATH_MAX + 1], pat[TUF_TARGET_PATH_MAX + 1];

                if (lp > TUF_TARGET_PATH_MAX || lq > TUF_TARGET_PATH_MAX)
                        return false;
                memcpy(seg, path, lp);
                seg[lp] = 0;
                memcpy(pat, pattern, lq);
                pat[lq] = 0;
                if (!tuf_path_pattern_match(pat, seg))
                        return false;
                if (!path[lp])
                        return true;
                path += lp + 1;
                pattern += lq + 1;
        }
}

bool tuf_role_matches_path(const TufRole *r, const char *path)
{
        if (r->paths) {
                for (size_t i = 0; i < r->n_paths; i++)
                        if (path_in_pattern(path, r->paths[i]))
                                return true;
                return false;
        }
        if (r->prefixes) {
                uint8_t digest[SHA256_DIGEST_LENGTH];
                char hex[2 * SHA256_DIGEST_LENGTH + 1];

                SHA256((const uint8_t *)path, strlen(path), digest);
                hex_encode(digest, sizeof(digest), hex);
                for (size_t i = 0; i < r->n_prefixes; i++)
                        if (strneq(hex, r->prefixes[i], strlen(r->prefixes[i])))
                                return true;
        }
        return false;
}
