/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* updatectl repo init|add|remove|rotate|sign|delegate|timestamp|status: the vendor's side of TUF, a static
 * repository that [source] type = tuf reads (lib/tuf/tuf-repo.h). */
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "cli.h"
#include "hexdecoct.h"
#include "parse-util.h"
#include "path-util.h"
#include "time-util.h"
#include "tuf-repo.h"

/* `repo timestamp`: nothing needed re-signing. */
#define EXIT_UNCHANGED 3
#define WARN_WITHIN    (7 * 86400)

enum {
        ARG_KEY = 0x100,
        ARG_KEY_TYPE,
        ARG_THRESHOLD,
        ARG_EXPIRES,
        ARG_KEYRING,
        ARG_CRL,
        ARG_ALLOW_ANY_EKU,
        ARG_FORCE,
        ARG_NEW_KEY,
        ARG_OFFLINE,
        ARG_PATHS,
        ARG_ROLE,
        ARG_TERMINATING,
};

typedef struct RepoArgs {
        char **keys; /* --key values as given */
        const char *key_type, *keyring, *crl, *role;
        char **thresholds, **expires, **new_keys, **paths;
        bool allow_any_eku, force, offline, terminating;
        char **pos;
        int n_pos;
} RepoArgs;

static int oom(void)
{
        fprintf(stderr, "%s: out of memory\n", program_name);
        return EXIT_FAIL;
}

typedef char **RolePaths[_TUF_ROLE_TYPE_MAX];

static void role_paths_done(RolePaths *p)
{
        for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++)
                strv_free((*p)[t]);
}

static void repo_args_done(RepoArgs *a)
{
        strv_free(a->keys);
        strv_free(a->thresholds);
        strv_free(a->expires);
        strv_free(a->new_keys);
        strv_free(a->paths);
}

static int strv_push_dup(char ***l, const char *s)
{
        size_t n = strv_length(*l);
        char **v = reallocarray(*l, n + 2, sizeof(char *));

        if (!v)
                return -ENOMEM;
        *l = v;
        v[n] = strdup(s);
        v[n + 1] = NULL;
        return v[n] ? 0 : -ENOMEM;
}

static int parse_args(const char *verb, int argc, char *argv[], const int *allowed, RepoArgs *a)
{
        static const struct option options[] = {
                { "key", required_argument, NULL, ARG_KEY },
                { "key-type", required_argument, NULL, ARG_KEY_TYPE },
                { "threshold", required_argument, NULL, ARG_THRESHOLD },
                { "expires", required_argument, NULL, ARG_EXPIRES },
                { "keyring", required_argument, NULL, ARG_KEYRING },
                { "crl", required_argument, NULL, ARG_CRL },
                { "allow-any-eku", no_argument, NULL, ARG_ALLOW_ANY_EKU },
                { "force", no_argument, NULL, ARG_FORCE },
                { "new-key", required_argument, NULL, ARG_NEW_KEY },
                { "offline", no_argument, NULL, ARG_OFFLINE },
                { "paths", required_argument, NULL, ARG_PATHS },
                { "role", required_argument, NULL, ARG_ROLE },
                { "terminating", no_argument, NULL, ARG_TERMINATING },
                {},
        };
        int c;

        optind = 0;
        opterr = 0;
        /* Options and operands may mix ("timestamp DIR --force"); "--" ends the options. */
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                bool ok = false;
                int r = 0;

                if (c == '?' || c == ':')
                        return cli_usage_error("repo %s: unknown option or missing value: %s", verb,
                                               argv[optind - 1]);
                for (const int *p = allowed; *p; p++)
                        ok = ok || *p == c;
                if (!ok)
                        return cli_usage_error("repo %s: option %s does not apply here", verb,
                                               argv[optind - 1]);
                switch (c) {
                case ARG_KEY:
                        r = strv_push_dup(&a->keys, optarg);
                        break;
                case ARG_KEY_TYPE:
                        a->key_type = optarg;
                        break;
                case ARG_THRESHOLD:
                        r = strv_push_dup(&a->thresholds, optarg);
                        break;
                case ARG_EXPIRES:
                        r = strv_push_dup(&a->expires, optarg);
                        break;
                case ARG_KEYRING:
                        a->keyring = optarg;
                        break;
                case ARG_CRL:
                        a->crl = optarg;
                        break;
                case ARG_ALLOW_ANY_EKU:
                        a->allow_any_eku = true;
                        break;
                case ARG_FORCE:
                        a->force = true;
                        break;
                case ARG_NEW_KEY:
                        r = strv_push_dup(&a->new_keys, optarg);
                        break;
                case ARG_OFFLINE:
                        a->offline = true;
                        break;
                case ARG_PATHS:
                        r = strv_push_dup(&a->paths, optarg);
                        break;
                case ARG_ROLE:
                        a->role = optarg;
                        break;
                case ARG_TERMINATING:
                        a->terminating = true;
                        break;
                default:
                        return cli_usage_error("repo %s: unexpected option", verb);
                }
                if (r < 0)
                        return oom();
        }
        a->pos = argv + optind;
        a->n_pos = argc - optind;
        return 0;
}

/* The clock: SOURCE_DATE_EPOCH when set (reproducible output), else the system's. */
static int repo_now(time_t *ret)
{
        const char *e = getenv("SOURCE_DATE_EPOCH");
        uint64_t v;

        if (isempty(e)) {
                *ret = time(NULL);
                return 0;
        }
        if (safe_atou64(e, &v) < 0 || v > (uint64_t)INT64_C(253402300799))
                return cli_usage_error("SOURCE_DATE_EPOCH=\"%s\": expected seconds since 1970 (up to 9999)",
                                       e);
        *ret = (time_t)v;
        return 0;
}

/* "ROLE=VALUE" with ROLE a top-level role. */
static int split_role(const char *opt, const char *s, TufRoleType *ret_role, const char **ret_value)
{
        const char *eq = strchr(s, '=');

        if (eq) {
                for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++) {
                        const char *name = tuf_role_type_to_string(t);
                        if ((size_t)(eq - s) == strlen(name) && strneq(s, name, strlen(name))) {
                                *ret_role = t;
                                *ret_value = eq + 1;
                                return 0;
                        }
                }
        }
        return cli_usage_error("repo init: %s \"%s\": expected ROLE=VALUE with ROLE root, targets, snapshot "
                               "or timestamp",
                               opt, s);
}

/* A period: DURATION as for postpone (1d12h, 30m), or a number of weeks (2w) or years of 365 days (1y). */
static int parse_period(const char *s, uint64_t *ret_sec)
{
        size_t n = strlen(s);
        uint64_t v, usec;

        if (n >= 2 && (s[n - 1] == 'w' || s[n - 1] == 'y')) {
                _cleanup_free_ char *num = strndup(s, n - 1);
                if (!num || safe_atou64(num, &v) < 0 || v == 0 || v > 100)
                        return -EINVAL;
                *ret_sec = v * (s[n - 1] == 'w' ? 7 : 365) * 86400;
                return 0;
        }
        if (parse_duration_usec(s, &usec) < 0 || usec < USEC_PER_SEC ||
            usec / USEC_PER_SEC > 100 * 365 * 86400ULL)
                return -EINVAL;
        *ret_sec = usec / USEC_PER_SEC;
        return 0;
}

/* --key-type and --threshold N of the keys a verb makes. */
static int parse_new_keys(const char *verb, const RepoArgs *a, TufKeyScheme *scheme, unsigned *threshold)
{
        if (a->key_type && tuf_signer_scheme_from_string(a->key_type, scheme) < 0)
                return cli_usage_error("repo %s: --key-type \"%s\": expected ed25519, ecdsa or rsa", verb,
                                       a->key_type);
        for (char **t = a->thresholds; t && *t; t++) {
                uint64_t n;
                if (safe_atou64(*t, &n) < 0 || n < 1 || n > TUF_REPO_KEYS_MAX)
                        return cli_usage_error("repo %s: --threshold \"%s\": expected a number from 1 to %d",
                                               verb, *t, TUF_REPO_KEYS_MAX);
                *threshold = (unsigned)n;
        }
        return 0;
}

static int verb_init(int argc, char *argv[])
{
        static const int allowed[] = { ARG_KEY, ARG_KEY_TYPE, ARG_THRESHOLD, ARG_EXPIRES, 0 };
        _cleanup_(repo_args_done) RepoArgs a = {};
        TufRepoInitOptions o = { .scheme = TUF_SCHEME_ED25519 };
        UpkErr err = {};
        int r;

        r = parse_args("init", argc, argv, allowed, &a);
        if (r != 0)
                return r;
        if (a.n_pos != 1)
                return cli_usage_error("repo init takes one folder");
        if (a.key_type && tuf_signer_scheme_from_string(a.key_type, &o.scheme) < 0)
                return cli_usage_error("repo init: --key-type \"%s\": expected ed25519, ecdsa or rsa",
                                       a.key_type);
        for (char **s = a.thresholds; s && *s; s++) {
                TufRoleType t;
                const char *v;
                uint64_t n;
                r = split_role("--threshold", *s, &t, &v);
                if (r != 0)
                        return r;
                if (safe_atou64(v, &n) < 0 || n < 1 || n > TUF_REPO_KEYS_MAX)
                        return cli_usage_error(
                                "repo init: --threshold \"%s\": expected a number from 1 to %d", *s,
                                TUF_REPO_KEYS_MAX);
                o.threshold[t] = (unsigned)n;
        }
        for (char **s = a.expires; s && *s; s++) {
                TufRoleType t;
                const char *v;
                r = split_role("--expires", *s, &t, &v);
                if (r != 0)
                        return r;
                if (parse_period(v, &o.period[t]) < 0)
                        return cli_usage_error(
                                "repo init: --expires \"%s\": expected a duration such as 1y, "
                                "12w, 7d or 12h",
                                *s);
        }
        _cleanup_(role_paths_done) RolePaths paths = {};
        for (char **s = a.keys; s && *s; s++) {
                TufRoleType t;
                const char *v;
                r = split_role("--key", *s, &t, &v);
                if (r != 0)
                        return r;
                if (strv_push_dup(&paths[t], v) < 0)
                        return oom();
        }
        for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++)
                o.key_paths[t] = paths[t];
        r = repo_now(&o.now);
        if (r != 0)
                return r;

        r = tuf_repo_init(a.pos[0], &o, &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        printf("%s: initialised; give devices %s/metadata/1.root.json as their root, publish %s/metadata "
               "and %s/targets, keep %s/keys secret\n",
               a.pos[0], a.pos[0], a.pos[0], a.pos[0], a.pos[0]);
        return EXIT_OK;
}

static int open_repo(const char *dir, char **keys, TufRepo **ret)
{
        UpkErr err = {};
        time_t now;
        int r;

        r = repo_now(&now);
        if (r != 0)
                return r;
        r = tuf_repo_open(dir, now, ret, &err);
        if (r < 0)
                return cli_report(dir, &err);
        for (char **k = keys; k && *k; k++) {
                r = tuf_repo_add_key(*ret, *k, &err);
                if (r < 0)
                        return cli_report(NULL, &err);
        }
        return 0;
}

/* The versions tuf_repo_publish() wrote: of the top-level targets (`role` NULL) or of the delegated role. */
static void print_published(const TufRepo *repo, const char *role)
{
        printf("%s: %s version %" PRIu64 ", snapshot %" PRIu64 ", timestamp %" PRIu64 "\n", repo->dir,
               role ?: "targets",
               (role ? repo->new_delegated_role->version : repo->md[TUF_ROLE_TARGETS]->version) + 1,
               repo->md[TUF_ROLE_SNAPSHOT]->version + 1, repo->md[TUF_ROLE_TIMESTAMP]->version + 1);
}

/* After --offline left the new version of `role` for signing. */
static int print_prepared(const TufRepo *repo, const char *role)
{
        printf("%s: the keys at hand do not meet the %s threshold; the new %s version waits in "
               "%s/%s.json: sign it with updatectl repo sign %s %s --key PEM (published once complete)\n",
               repo->dir, role, role, repo->prepared_dir, role, repo->dir, role);
        return EXIT_OK;
}

static int verb_sign(int argc, char *argv[])
{
        static const int allowed[] = { ARG_KEY, 0 };
        _cleanup_(repo_args_done) RepoArgs a = {};
        _cleanup_(tuf_repo_freep) TufRepo *repo = NULL;
        TufRoleType type = _TUF_ROLE_TYPE_INVALID;
        TufRepoSignState st = {};
        UpkErr err = {};
        uint64_t root_version;
        time_t now;
        int r;

        r = parse_args("sign", argc, argv, allowed, &a);
        if (r != 0)
                return r;
        if (a.n_pos != 2)
                return cli_usage_error("repo sign takes a folder and a role");
        if (streq(a.pos[1], "root"))
                type = TUF_ROLE_ROOT;
        else if (streq(a.pos[1], "targets"))
                type = TUF_ROLE_TARGETS;
        else
                return cli_usage_error("repo sign: role \"%s\": expected root or targets (the roles whose "
                                       "keys may be offline)",
                                       a.pos[1]);
        r = repo_now(&now);
        if (r != 0)
                return r;
        /* The keys are checked against the role by tuf_repo_sign(), not against the root as --key is. */
        r = tuf_repo_open(a.pos[0], now, &repo, &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        root_version = repo->md[TUF_ROLE_ROOT]->version;
        r = tuf_repo_sign(repo, type, a.keys, &st, &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        printf("%s: %s version %" PRIu64 ": %zu signature(s) added; %zu of %" PRIu64 " valid", a.pos[0],
               a.pos[1], st.version, st.added, st.valid, st.threshold);
        if (type == TUF_ROLE_ROOT)
                printf(" under root version %" PRIu64 ", %zu of %" PRIu64 " under the new root",
                       root_version, st.valid_new, st.threshold_new);
        printf("\n");
        if (st.published)
                printf("%s: published %s version %" PRIu64 "; upload %s/metadata\n", a.pos[0], a.pos[1],
                       st.version, a.pos[0]);
        else if (st.valid >= st.threshold && st.valid_new >= st.threshold_new)
                printf("%s: complete, but not published here (%s): run updatectl repo sign %s %s where "
                       "those keys are\n",
                       a.pos[0], st.blocked.msg, a.pos[0], a.pos[1]);
        else
                printf("%s: waits for more signatures in %s/%s.json\n", a.pos[0], repo->prepared_dir,
                       a.pos[1]);
        return EXIT_OK;
}

/* The target's custom: compatible, version, security (the type) and the manifest's SHA-256. */
static json_object *bundle_custom(const Bundle *b)
{
        const Manifest *m = bundle_get_manifest(b);
        json_object *o = json_object_new_object();
        uint8_t digest[SHA256_DIGEST_LENGTH];
        char hex[2 * SHA256_DIGEST_LENGTH + 1];
        const void *raw;
        size_t raw_size;

        if (!o)
                return NULL;
        bundle_get_raw(b, &raw, &raw_size, NULL, NULL);
        SHA256(raw, raw_size, digest);
        hex_encode(digest, sizeof(digest), hex);
        json_object_object_add(o, "compatible", json_object_new_string(m->compatible));
        json_object_object_add(o, "version", json_object_new_string(m->version_str));
        if (m->has_security)
                json_object_object_add(o, "security",
                                       json_object_new_string(security_type_to_string(m->security_type)));
        json_object_object_add(o, "manifest_sha256", json_object_new_string(hex));
        return o;
}

static int verb_add(int argc, char *argv[])
{
        static const int allowed[] = { ARG_KEY,     ARG_KEYRING, ARG_CRL, ARG_ALLOW_ANY_EKU,
                                       ARG_OFFLINE, ARG_ROLE,    0 };
        _cleanup_(repo_args_done) RepoArgs a = {};
        _cleanup_(tuf_repo_freep) TufRepo *repo = NULL;
        _cleanup_free_ json_object **customs = NULL;
        UpkErr err = {};
        int r, status = EXIT_OK;
        bool changed = false;

        r = parse_args("add", argc, argv, allowed, &a);
        if (r != 0)
                return r;
        if (a.n_pos < 2)
                return cli_usage_error("repo add takes a folder and at least one bundle");
        if (!a.keyring)
                return cli_usage_error("repo add needs --keyring (the CA certificates devices trust)");
        if (a.crl && !a.keyring)
                return cli_usage_error("repo add: --crl needs --keyring");
        if (a.role && a.offline)
                return cli_usage_error("repo add: --offline applies to the top-level targets, not --role");
        r = open_repo(a.pos[0], a.keys, &repo);
        if (r != 0)
                return r;
        repo->prepare = a.offline;

        /* Every bundle verified, as the devices will, before anything is copied. */
        customs = calloc((size_t)a.n_pos, sizeof(json_object *));
        if (!customs)
                return oom();
        for (int i = 1; i < a.n_pos && status == EXIT_OK; i++) {
                _cleanup_(bundle_freep) Bundle *b = NULL;
                BundleOpenOptions opts = { .keyring = a.keyring,
                                           .crl = a.crl,
                                           .allow_any_eku = a.allow_any_eku };

                r = bundle_open_path(a.pos[i], &opts, &b, &err);
                if (r >= 0)
                        r = bundle_verify_rest(b, &err);
                if (r < 0) {
                        status = cli_report(a.pos[i], &err);
                        fprintf(stderr, "%s: %s: nothing published\n", program_name, a.pos[0]);
                        break;
                }
                customs[i] = bundle_custom(b);
                if (!customs[i])
                        status = oom();
        }
        for (int i = 1; i < a.n_pos && status == EXIT_OK; i++) {
                const char *name = path_basename(a.pos[i]);
                r = tuf_repo_add_target(repo, a.role, name, a.pos[i], customs[i], &err);
                if (r < 0) {
                        status = cli_report(a.pos[i], &err);
                        fprintf(stderr, "%s: %s: nothing published\n", program_name, a.pos[0]);
                } else if (r > 0)
                        printf("%s: published already as %s\n", a.pos[i], name);
                else
                        changed = true;
        }
        for (int i = 1; i < a.n_pos; i++)
                if (customs[i])
                        json_object_put(customs[i]);
        if (status != EXIT_OK)
                return status;
        if (!changed)
                return EXIT_OK;
        r = tuf_repo_publish(repo, &err);
        if (r < 0) {
                status = cli_report(a.pos[0], &err);
                fprintf(stderr, "%s: %s: nothing published\n", program_name, a.pos[0]);
                return status;
        }
        if (r > 0)
                return print_prepared(repo, "targets");
        for (int i = 1; i < a.n_pos; i++)
                printf("%s: published as %s\n", a.pos[i], path_basename(a.pos[i]));
        print_published(repo, a.role);
        return EXIT_OK;
}

static int verb_delegate(int argc, char *argv[])
{
        static const int allowed[] = { ARG_KEY, ARG_KEY_TYPE, ARG_THRESHOLD, ARG_PATHS, ARG_TERMINATING, 0 };
        _cleanup_(repo_args_done) RepoArgs a = {};
        _cleanup_(tuf_repo_freep) TufRepo *repo = NULL;
        _cleanup_strv_free_ char **role_keys = NULL;
        TufRepoDelegateOptions o = { .scheme = TUF_SCHEME_ED25519 };
        UpkErr err = {};
        time_t now;
        int r;

        r = parse_args("delegate", argc, argv, allowed, &a);
        if (r != 0)
                return r;
        if (a.n_pos != 2)
                return cli_usage_error("repo delegate takes a folder and a role name");
        if (!a.paths)
                return cli_usage_error(
                        "repo delegate needs --paths PATTERN (the target names the role signs)");
        r = parse_new_keys("delegate", &a, &o.scheme, &o.threshold);
        if (r != 0)
                return r;
        r = repo_now(&now);
        if (r != 0)
                return r;
        r = tuf_repo_open(a.pos[0], now, &repo, &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        /* --key: the new role's keys; a key of the root's roles (an offline targets key) signs instead. */
        for (char **k = a.keys; k && *k; k++) {
                _cleanup_(tuf_signer_freep) TufSigner *s = NULL;
                const TufMetadata *root = repo->md[TUF_ROLE_ROOT];
                bool of_root = false;

                r = tuf_signer_load(*k, &s, &err);
                if (r < 0)
                        return cli_report(NULL, &err);
                for (size_t i = 0; i < root->n_roles && !of_root; i++)
                        of_root = strv_contains(root->roles[i].keyids, s->keyid);
                r = of_root ? tuf_repo_add_key(repo, *k, &err) : strv_push_dup(&role_keys, *k);
                if (r == -ENOMEM)
                        return oom();
                if (r < 0)
                        return cli_report(NULL, &err);
        }
        o.name = a.pos[1];
        o.paths = a.paths;
        o.key_paths = role_keys;
        o.terminating = a.terminating;
        r = tuf_repo_delegate(repo, &o, &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        printf("%s: targets matching", a.pos[0]);
        for (char **p = a.paths; *p; p++)
                printf(" %s", *p);
        printf(" delegated to role %s%s; add them with updatectl repo add %s --role %s\n", a.pos[1],
               a.terminating ? " (terminating)" : "", a.pos[0], a.pos[1]);
        printf("%s: targets version %" PRIu64 ", %s version 1, snapshot %" PRIu64 ", timestamp %" PRIu64
               "\n",
               a.pos[0], repo->md[TUF_ROLE_TARGETS]->version + 1, a.pos[1],
               repo->md[TUF_ROLE_SNAPSHOT]->version + 1, repo->md[TUF_ROLE_TIMESTAMP]->version + 1);
        return EXIT_OK;
}

static int verb_timestamp(int argc, char *argv[])
{
        static const int allowed[] = { ARG_KEY, ARG_FORCE, 0 };
        _cleanup_(repo_args_done) RepoArgs a = {};
        _cleanup_(tuf_repo_freep) TufRepo *repo = NULL;
        UpkErr err = {};
        bool changed = false;
        int r;

        r = parse_args("timestamp", argc, argv, allowed, &a);
        if (r != 0)
                return r;
        if (a.n_pos != 1)
                return cli_usage_error("repo timestamp takes one folder");
        r = open_repo(a.pos[0], a.keys, &repo);
        if (r != 0)
                return r;
        r = tuf_repo_refresh_timestamp(repo, a.force, &changed, &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        if (!changed) {
                printf("%s: timestamp and snapshot are current; nothing re-signed\n", a.pos[0]);
                return EXIT_UNCHANGED;
        }
        printf("%s: re-signed; upload %s/metadata\n", a.pos[0], a.pos[0]);
        return EXIT_OK;
}

static int verb_remove(int argc, char *argv[])
{
        static const int allowed[] = { ARG_KEY, ARG_OFFLINE, ARG_ROLE, 0 };
        _cleanup_(repo_args_done) RepoArgs a = {};
        _cleanup_(tuf_repo_freep) TufRepo *repo = NULL;
        UpkErr err = {};
        int r;

        r = parse_args("remove", argc, argv, allowed, &a);
        if (r != 0)
                return r;
        if (a.n_pos < 2)
                return cli_usage_error("repo remove takes a folder and at least one target name");
        if (a.role && a.offline)
                return cli_usage_error(
                        "repo remove: --offline applies to the top-level targets, not --role");
        r = open_repo(a.pos[0], a.keys, &repo);
        if (r != 0)
                return r;
        repo->prepare = a.offline;
        for (int i = 1; i < a.n_pos; i++) {
                r = tuf_repo_remove_target(repo, a.role, a.pos[i], &err);
                if (r < 0) {
                        r = cli_report(a.pos[0], &err);
                        fprintf(stderr, "%s: %s: nothing published\n", program_name, a.pos[0]);
                        return r;
                }
        }
        r = tuf_repo_publish(repo, &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        if (r > 0)
                return print_prepared(repo, "targets");
        for (int i = 1; i < a.n_pos; i++)
                printf("%s: withdrawn\n", a.pos[i]);
        print_published(repo, a.role);
        return EXIT_OK;
}

static int verb_rotate(int argc, char *argv[])
{
        static const int allowed[] = { ARG_KEY, ARG_KEY_TYPE, ARG_THRESHOLD, ARG_NEW_KEY, ARG_OFFLINE, 0 };
        _cleanup_(repo_args_done) RepoArgs a = {};
        _cleanup_(tuf_repo_freep) TufRepo *repo = NULL;
        TufRepoRotateOptions o = { .scheme = TUF_SCHEME_ED25519 };
        TufRoleType type = _TUF_ROLE_TYPE_INVALID;
        UpkErr err = {};
        uint64_t root_version;
        int r;

        r = parse_args("rotate", argc, argv, allowed, &a);
        if (r != 0)
                return r;
        if (a.n_pos != 2)
                return cli_usage_error("repo rotate takes a folder and a role");
        for (int t = 0; t < _TUF_ROLE_TYPE_MAX; t++)
                if (streq(a.pos[1], tuf_role_type_to_string(t)))
                        type = t;
        if (type < 0)
                return cli_usage_error(
                        "repo rotate: role \"%s\": expected root, targets, snapshot or timestamp", a.pos[1]);
        r = parse_new_keys("rotate", &a, &o.scheme, &o.threshold);
        if (r != 0)
                return r;
        o.key_paths = a.new_keys;
        r = open_repo(a.pos[0], a.keys, &repo);
        if (r != 0)
                return r;
        repo->prepare = a.offline;
        root_version = repo->md[TUF_ROLE_ROOT]->version;
        r = tuf_repo_rotate(repo, type, &o, &err);
        if (r < 0)
                return cli_report(a.pos[0], &err);
        if (r > 0)
                return print_prepared(repo, "root");
        printf("%s: %s has new keys; root version %" PRIu64 " signed by the keys of version %" PRIu64
               " and its own\n",
               a.pos[0], a.pos[1], repo->md[TUF_ROLE_ROOT]->version, root_version);
        return EXIT_OK;
}

static void print_left(time_t expires, time_t now)
{
        int64_t left = (int64_t)expires - (int64_t)now;

        if (left <= 0)
                printf(" (EXPIRED)\n");
        else if (left >= 2 * 86400)
                printf(" (in %" PRId64 " days)\n", left / 86400);
        else
                printf(" (in %" PRId64 "h %" PRId64 "m)\n", left / 3600, left % 3600 / 60);
}

static int verb_status(int argc, char *argv[])
{
        static const TufRoleType order[] = { TUF_ROLE_ROOT, TUF_ROLE_TARGETS, TUF_ROLE_SNAPSHOT,
                                             TUF_ROLE_TIMESTAMP };
        static const int allowed[] = { ARG_KEY, 0 };
        _cleanup_(repo_args_done) RepoArgs a = {};
        _cleanup_(tuf_repo_freep) TufRepo *repo = NULL;
        int r;

        r = parse_args("status", argc, argv, allowed, &a);
        if (r != 0)
                return r;
        if (a.n_pos != 1)
                return cli_usage_error("repo status takes one folder");
        r = open_repo(a.pos[0], a.keys, &repo);
        if (r != 0)
                return r;

        const TufMetadata *root = repo->md[TUF_ROLE_ROOT];
        printf("Repository: %s (consistent snapshots)\n", a.pos[0]);
        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                const char *name = tuf_role_type_to_string(order[i]);
                const TufMetadata *m = repo->md[order[i]];
                const TufRole *role = tuf_metadata_find_role(root, name);

                printf("%-10s version %" PRIu64 ", expires %s", name, m->version, m->expires_str);
                print_left(m->expires, repo->now);
                printf("           threshold %" PRIu64 " of %zu key(s), re-signed for %" PRIu64 " days\n",
                       role->threshold, role->n_keyids, repo->period[order[i]] / 86400);
                for (size_t k = 0; k < role->n_keyids; k++) {
                        const char *path = NULL;
                        const char *type = "?";
                        for (size_t j = 0; j < root->n_keys; j++)
                                if (streq(root->keys[j]->keyid, role->keyids[k]))
                                        type = root->keys[j]->scheme;
                        printf("           key %.16s %s, %s\n", role->keyids[k], type,
                               tuf_repo_has_key(repo, role->keyids[k], &path) ? path : "offline");
                }
                /* Within a week; for the roles `repo timestamp` renews, once it should have run. */
                uint64_t warn =
                        repo->period[order[i]] / 2 < WARN_WITHIN ? repo->period[order[i]] / 2 : WARN_WITHIN;
                if (m->expires <= repo->now)
                        printf("           warning: %s has expired; devices refuse the repository\n", name);
                else if ((uint64_t)(m->expires - repo->now) < warn)
                        printf("           warning: %s expires within %s%s\n", name,
                               warn == WARN_WITHIN ? "a week" : "half its period",
                               order[i] == TUF_ROLE_SNAPSHOT || order[i] == TUF_ROLE_TIMESTAMP
                                       ? ": run updatectl repo timestamp"
                                       : "");
        }
        for (size_t i = 0; i < repo->n_delegated; i++) {
                const TufMetadata *m = repo->delegated[i];
                const TufRole *d = tuf_metadata_find_role(repo->md[TUF_ROLE_TARGETS], m->role_name);
                printf("delegated  %s version %" PRIu64 ", expires %s", m->role_name, m->version,
                       m->expires_str);
                print_left(m->expires, repo->now);
                printf("           threshold %" PRIu64 " of %zu key(s), %zu target(s), paths", d->threshold,
                       d->n_keyids, m->n_targets);
                for (size_t k = 0; k < d->n_paths; k++)
                        printf(" %s", d->paths[k]);
                printf("%s\n", d->terminating ? " (terminating)" : "");
        }
        for (int i = 0; i < 2; i++) {
                const char *role = i == 0 ? "root" : "targets";
                _cleanup_free_ char *p = strdup_printf("%s/%s.json", repo->prepared_dir, role);
                if (!p)
                        return oom();
                if (access(p, F_OK) == 0)
                        printf("prepared   %s waits for signatures: updatectl repo sign %s %s --key PEM\n",
                               p, a.pos[0], role);
        }
        const TufMetadata *t = repo->md[TUF_ROLE_TARGETS];
        printf("Targets:   %zu\n", t->n_targets);
        for (size_t i = 0; i < t->n_targets; i++) {
                json_object *c = t->targets[i].custom, *v = NULL, *compat = NULL;
                if (c && json_object_is_type(c, json_type_object)) {
                        json_object_object_get_ex(c, "version", &v);
                        json_object_object_get_ex(c, "compatible", &compat);
                }
                printf("  %s  %s %s, %" PRIu64 " bytes\n", t->targets[i].path,
                       compat ? json_object_get_string(compat) : "-", v ? json_object_get_string(v) : "-",
                       t->targets[i].length);
        }
        return EXIT_OK;
}

int repo_main(int argc, char *argv[])
{
        static const struct {
                const char *name;
                int (*func)(int argc, char *argv[]);
        } verbs[] = {
                { "init", verb_init },     { "add", verb_add },           { "timestamp", verb_timestamp },
                { "status", verb_status }, { "remove", verb_remove },     { "rotate", verb_rotate },
                { "sign", verb_sign },     { "delegate", verb_delegate },
        };

        if (argc < 2)
                return cli_usage_error("repo: no subcommand given (init, add, remove, rotate, sign, "
                                       "delegate, timestamp, status)");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[1], verbs[i].name))
                        return verbs[i].func(argc - 1, argv + 1);
        return cli_usage_error("repo: unknown subcommand \"%s\" (init, add, remove, rotate, sign, delegate, "
                               "timestamp, status)",
                               argv[1]);
}
