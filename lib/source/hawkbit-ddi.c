/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "hawkbit-ddi.h"

#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "util.h"

static const char *const handling_table[_DDI_HANDLING_MAX] = {
        [DDI_SKIP] = "skip",
        [DDI_ATTEMPT] = "attempt",
        [DDI_FORCED] = "forced",
};

DEFINE_STRING_TABLE(ddi_handling, DdiHandling, handling_table)

void ddi_poll_done(DdiPoll *p)
{
        free(p->deployment_href);
        free(p->cancel_href);
        free(p->confirmation_href);
        free(p->installed_href);
        free(p->config_data_href);
        *p = (DdiPoll){};
}

void ddi_deployment_done(DdiDeployment *d)
{
        for (size_t i = 0; i < d->n_artifacts; i++) {
                DdiArtifact *a = &d->artifacts[i];

                free(a->filename);
                free(a->chunk_part);
                free(a->chunk_name);
                free(a->chunk_version);
                free(a->sha256);
                free(a->href);
        }
        free(d->artifacts);
        free(d->id);
        *d = (DdiDeployment){};
}

static int parse(const void *data, size_t size, const char *what, json_object **ret, UpkErr *err)
{
        if (size > DDI_RESPONSE_MAX)
                return upk_err(err, UPK_ERR_NETWORK, -EBADMSG, "hawkBit %s: %zu bytes, more than %u", what,
                               size, DDI_RESPONSE_MAX);
        if (size == 0)
                return upk_err(err, UPK_ERR_NETWORK, -EBADMSG, "hawkBit %s: empty answer", what);
        return json_parse_strict(
                data, size,
                &(JsonStrictOptions){ .what = what, .kind = UPK_ERR_NETWORK, .depth_max = DDI_DEPTH_MAX },
                ret, err);
}

int ddi_parse_exception(const void *data, size_t size, char **ret)
{
        _cleanup_(json_object_putp) json_object *root = NULL;
        char code[DDI_REASON_MAX + 4], msg[DDI_REASON_MAX + 4];
        const char *c = NULL, *m = NULL;
        json_object *v;
        UpkErr err = {};

        *ret = NULL;
        if (size == 0 || size > DDI_RESPONSE_MAX || parse(data, size, "error answer", &root, &err) < 0 ||
            !json_object_is_type(root, json_type_object))
                return 0;
        if (json_object_object_get_ex(root, "errorCode", &v) && json_object_is_type(v, json_type_string))
                c = json_printable(json_object_get_string(v), code, sizeof(code));
        if (json_object_object_get_ex(root, "message", &v) && json_object_is_type(v, json_type_string))
                m = json_printable(json_object_get_string(v), msg, sizeof(msg));
        if (c && !*c)
                c = NULL;
        if (m && !*m)
                m = NULL;
        if (!c && !m)
                return 0;
        *ret = strdup_printf("%.*s%s%.*s", DDI_REASON_MAX / 2, c ?: "", c && m ? ": " : "",
                             DDI_REASON_MAX / 2, m ?: "");
        return *ret ? 0 : -ENOMEM;
}

int ddi_parse_sleep(const char *s, uint64_t *ret)
{
        unsigned v[3];

        if (!s || strlen(s) != 8 || s[2] != ':' || s[5] != ':')
                return -EINVAL;
        for (int i = 0; i < 3; i++) {
                const char *p = s + 3 * i;

                if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
                        return -EINVAL;
                v[i] = (unsigned)(p[0] - '0') * 10u + (unsigned)(p[1] - '0');
        }
        if (v[0] > 23 || v[1] > 59 || v[2] > 59)
                return -EINVAL;
        *ret = (uint64_t)v[0] * 3600u + v[1] * 60u + v[2];
        return 0;
}

/* links.REL.href, when present: a string of at most DDI_HREF_MAX bytes. */
static int get_href(const JsonCtx *c, json_object *links, const char *path, const char *rel, char **ret)
{
        char kp[JSON_KEY_PATH_MAX];
        json_object *l;
        int r;

        if (!links)
                return 0;
        r = json_get(c, links, path, rel, json_type_object, false, &l);
        if (r <= 0)
                return r;
        return json_get_dup_string(c, l, json_key_path(kp, sizeof(kp), path, rel), "href", true,
                                   DDI_HREF_MAX, ret);
}

int ddi_parse_poll(const void *data, size_t size, DdiPoll *ret, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *root = NULL;
        JsonCtx c = { .what = "poll answer", .kind = UPK_ERR_NETWORK, .err = err };
        json_object *config = NULL, *polling = NULL, *links = NULL;
        DdiPoll p = {};
        const char *sleep = NULL;
        int r;

        r = parse(data, size, c.what, &root, err);
        if (r < 0)
                return r;
        /* A missing or malformed sleep is not fatal: the configured poll interval applies. */
        if (json_get(&c, root, "", "config", json_type_object, false, &config) > 0 &&
            json_get(&c, config, "config", "polling", json_type_object, false, &polling) > 0 &&
            json_get_string(&c, polling, "config.polling", "sleep", false, 16, &sleep) > 0 &&
            ddi_parse_sleep(sleep, &p.sleep_sec) < 0)
                p.sleep_sec = 0;
        upk_err_clear(err);
        r = json_get(&c, root, "", "_links", json_type_object, false, &links);
        if (r < 0)
                return r;
        r = get_href(&c, links, "_links", "deploymentBase", &p.deployment_href);
        r = r < 0 ? r : get_href(&c, links, "_links", "cancelAction", &p.cancel_href);
        r = r < 0 ? r : get_href(&c, links, "_links", "confirmationBase", &p.confirmation_href);
        r = r < 0 ? r : get_href(&c, links, "_links", "installedBase", &p.installed_href);
        r = r < 0 ? r : get_href(&c, links, "_links", "configData", &p.config_data_href);
        if (r < 0) {
                ddi_poll_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}

int ddi_parse_auto_confirm(const void *data, size_t size, DdiAutoConfirm *ret, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *root = NULL;
        JsonCtx c = { .what = "confirmationBase", .kind = UPK_ERR_NETWORK, .err = err };
        json_object *ac = NULL, *links = NULL;
        DdiAutoConfirm a = {};
        int r;

        r = parse(data, size, c.what, &root, err);
        if (r < 0)
                return r;
        r = json_get(&c, root, "", "autoConfirm", json_type_object, true, &ac);
        r = r < 0 ? r : json_get_bool(&c, ac, "autoConfirm", "active", true, &a.active);
        r = r < 0 ? r : json_get(&c, root, "", "_links", json_type_object, false, &links);
        r = r < 0 ? r : get_href(&c, links, "_links", "activateAutoConfirm", &a.activate_href);
        r = r < 0 ? r : get_href(&c, links, "_links", "deactivateAutoConfirm", &a.deactivate_href);
        if (r < 0) {
                ddi_auto_confirm_done(&a);
                return r;
        }
        *ret = a;
        return 0;
}

void ddi_auto_confirm_done(DdiAutoConfirm *a)
{
        free(a->activate_href);
        free(a->deactivate_href);
        *a = (DdiAutoConfirm){};
}

static int get_handling(const JsonCtx *c, json_object *o, const char *path, const char *key,
                        DdiHandling *ret)
{
        const char *s;
        int r;

        r = json_get_string(c, o, path, key, true, 16, &s);
        if (r < 0)
                return r;
        *ret = ddi_handling_from_string(s);
        if (*ret < 0)
                return json_bad(c, "%s.%s: \"%s\" is not skip, attempt or forced", path, key, JSON_QUOTE(s));
        return 0;
}

static int parse_artifact(const JsonCtx *c, json_object *a, const char *path, json_object *chunk,
                          const char *cpath, DdiArtifact *ret)
{
        char kp[JSON_KEY_PATH_MAX];
        json_object *hashes = NULL, *links = NULL;
        const char *sha256 = NULL;
        int r;

        r = json_get_dup_string(c, a, path, "filename", true, DDI_NAME_MAX, &ret->filename);
        if (r < 0)
                return r;
        if (!ret->filename[0] || strchr(ret->filename, '/'))
                return json_bad(c, "%s.filename: \"%s\" is not a file name", path,
                                JSON_QUOTE(ret->filename));
        r = json_get_dup_string(c, chunk, cpath, "part", false, DDI_NAME_MAX, &ret->chunk_part);
        r = r < 0 ? r : json_get_dup_string(c, chunk, cpath, "name", false, DDI_NAME_MAX, &ret->chunk_name);
        r = r < 0 ? r
                  : json_get_dup_string(c, chunk, cpath, "version", false, DDI_NAME_MAX,
                                        &ret->chunk_version);
        r = r < 0 ? r : json_get_bool(c, chunk, cpath, "encrypted", false, &ret->encrypted);
        r = r < 0 ? r : json_get_uint(c, a, path, "size", false, INT64_MAX, &ret->size);
        if (r < 0)
                return r;
        ret->has_size = r > 0;
        r = json_get(c, a, path, "hashes", json_type_object, false, &hashes);
        if (r > 0)
                r = json_get_string(c, hashes, json_key_path(kp, sizeof(kp), path, "hashes"), "sha256",
                                    false, 64, &sha256);
        if (r < 0)
                return r;
        if (sha256) {
                if (strlen(sha256) != 64 || strspn(sha256, "0123456789abcdefABCDEF") != 64)
                        return json_bad(c, "%s.hashes.sha256: \"%s\" is not a SHA-256 (64 hex digits)", path,
                                        JSON_QUOTE(sha256));
                ret->sha256 = strdup(sha256);
                if (!ret->sha256)
                        return upk_err_oom(c->err);
                for (char *p = ret->sha256; *p; p++)
                        if (*p >= 'A' && *p <= 'F')
                                *p = (char)(*p - 'A' + 'a');
        }
        r = json_get(c, a, path, "_links", json_type_object, false, &links);
        if (r < 0)
                return r;
        /* "download" (https when the server is set up for it) first, then "download-http". */
        json_key_path(kp, sizeof(kp), path, "_links");
        r = get_href(c, links, kp, "download", &ret->href);
        if (r == 0)
                r = get_href(c, links, kp, "download-http", &ret->href);
        return r < 0 ? r : 0;
}

int ddi_parse_deployment(const void *data, size_t size, const char *key, DdiDeployment *ret, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *root = NULL;
        JsonCtx c = { .what = "deployment", .kind = UPK_ERR_NETWORK, .err = err };
        json_object *dep, *chunks;
        const char *window = NULL;
        DdiDeployment d = {};
        size_t n_chunks;
        int r;

        r = parse(data, size, c.what, &root, err);
        if (r < 0)
                return r;
        r = json_get_dup_string(&c, root, "", "id", true, DDI_ID_MAX, &d.id);
        r = r < 0 ? r : json_get(&c, root, "", key, json_type_object, true, &dep);
        r = r < 0 ? r : get_handling(&c, dep, key, "download", &d.download);
        r = r < 0 ? r : get_handling(&c, dep, key, "update", &d.update);
        r = r < 0 ? r : json_get_string(&c, dep, key, "maintenanceWindow", false, 16, &window);
        if (r >= 0 && window) {
                if (streq(window, "available"))
                        d.window = DDI_WINDOW_AVAILABLE;
                else if (streq(window, "unavailable"))
                        d.window = DDI_WINDOW_UNAVAILABLE;
                else
                        r = json_bad(&c, "%s.maintenanceWindow: \"%s\" is not available or unavailable", key,
                                     JSON_QUOTE(window));
        }
        r = r < 0 ? r : json_get(&c, dep, key, "chunks", json_type_array, true, &chunks);
        if (r < 0)
                goto fail;
        n_chunks = json_object_array_length(chunks);
        if (n_chunks > DDI_CHUNKS_MAX) {
                r = json_bad(&c, "%s.chunks: %zu chunks, more than %d", key, n_chunks, DDI_CHUNKS_MAX);
                goto fail;
        }
        for (size_t i = 0; i < n_chunks; i++) {
                json_object *chunk = json_object_array_get_idx(chunks, i), *arts;
                char cpath[JSON_KEY_PATH_MAX];
                size_t n;

                snprintf(cpath, sizeof(cpath), "%s.chunks[%zu]", key, i);
                if (!json_object_is_type(chunk, json_type_object)) {
                        r = json_bad(&c, "%s: expected an object", cpath);
                        goto fail;
                }
                r = json_get(&c, chunk, cpath, "artifacts", json_type_array, false, &arts);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        continue;
                n = json_object_array_length(arts);
                if (n > DDI_ARTIFACTS_MAX - d.n_artifacts) {
                        r = json_bad(&c, "%s: more than %d artifacts in all", cpath, DDI_ARTIFACTS_MAX);
                        goto fail;
                }
                if (n == 0)
                        continue;
                DdiArtifact *p = reallocarray(d.artifacts, d.n_artifacts + n, sizeof(DdiArtifact));
                if (!p) {
                        r = upk_err_oom(err);
                        goto fail;
                }
                d.artifacts = p;
                for (size_t j = 0; j < n; j++) {
                        json_object *a = json_object_array_get_idx(arts, j);
                        char apath[2 * JSON_KEY_PATH_MAX];

                        d.artifacts[d.n_artifacts] = (DdiArtifact){};
                        d.n_artifacts++;
                        snprintf(apath, sizeof(apath), "%s.artifacts[%zu]", cpath, j);
                        if (!json_object_is_type(a, json_type_object)) {
                                r = json_bad(&c, "%s: expected an object", apath);
                                goto fail;
                        }
                        r = parse_artifact(&c, a, apath, chunk, cpath, &d.artifacts[d.n_artifacts - 1]);
                        if (r < 0)
                                goto fail;
                }
        }
        *ret = d;
        return 0;
fail:
        ddi_deployment_done(&d);
        return r;
}

int ddi_parse_cancel(const void *data, size_t size, char **ret_stop_id, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *root = NULL;
        JsonCtx c = { .what = "cancel order", .kind = UPK_ERR_NETWORK, .err = err };
        json_object *ca;
        int r;

        r = parse(data, size, c.what, &root, err);
        if (r < 0)
                return r;
        r = json_get(&c, root, "", "cancelAction", json_type_object, true, &ca);
        if (r < 0)
                return r;
        return json_get_dup_string(&c, ca, "cancelAction", "stopId", true, DDI_ID_MAX, ret_stop_id) < 0
                       ? -EBADMSG
                       : 0;
}

/* Printable ASCII with the newlines and tabs turned into spaces: a detail line for the operator. */
static char *detail_line(const char *s)
{
        size_t n = strnlen(s, DDI_DETAIL_MAX);
        char *d = strndup(s, n);

        if (!d)
                return NULL;
        for (char *p = d; *p; p++)
                if ((unsigned char)*p < ' ' || *p == 0x7f)
                        *p = ' ';
        return d;
}

static int put(json_object *o, const char *key, json_object *v)
{
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static char *to_string(json_object *o)
{
        const char *s =
                json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        return s ? strdup(s) : NULL;
}

char *ddi_feedback_json(const char *action_id, const char *execution, const char *finished, uint64_t cnt,
                        uint64_t of, const char *const *details)
{
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *status = json_object_new_object(), *result = json_object_new_object(),
                    *lines = json_object_new_array();
        int r = 0;

        if (!root || !status || !result || !lines) {
                json_object_put(status);
                json_object_put(result);
                json_object_put(lines);
                return NULL;
        }
        r = put(root, "status", status);
        r = r < 0 ? r : put(status, "result", result);
        r = r < 0 ? r : put(status, "details", lines);
        if (r < 0) {
                json_object_put(result);
                json_object_put(lines);
                return NULL;
        }
        r = put(root, "id", json_object_new_string(action_id));
        r = r < 0 ? r : put(status, "execution", json_object_new_string(execution));
        r = r < 0 ? r : put(result, "finished", json_object_new_string(finished));
        if (r >= 0 && of > 0) {
                json_object *p = json_object_new_object();

                r = put(result, "progress", p);
                r = r < 0 ? r
                          : put(p, "cnt",
                                json_object_new_int64((int64_t)(cnt > INT64_MAX ? INT64_MAX : cnt)));
                r = r < 0 ? r
                          : put(p, "of", json_object_new_int64((int64_t)(of > INT64_MAX ? INT64_MAX : of)));
        }
        for (size_t i = 0; r >= 0 && details && details[i] && i < DDI_DETAILS_MAX; i++) {
                _cleanup_free_ char *line = detail_line(details[i]);

                if (!line || json_object_array_add(lines, json_object_new_string(line)) < 0)
                        r = -ENOMEM;
        }
        return r < 0 ? NULL : to_string(root);
}

char *ddi_confirmation_json(bool confirmed, const char *const *details)
{
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *lines = json_object_new_array();
        int r;

        if (!root || !lines) {
                json_object_put(lines);
                return NULL;
        }
        r = put(root, "details", lines);
        if (r < 0) {
                json_object_put(lines);
                return NULL;
        }
        r = put(root, "confirmation", json_object_new_string(confirmed ? "confirmed" : "denied"));
        for (size_t i = 0; r >= 0 && details && details[i] && i < DDI_DETAILS_MAX; i++) {
                _cleanup_free_ char *line = detail_line(details[i]);

                if (!line || json_object_array_add(lines, json_object_new_string(line)) < 0)
                        r = -ENOMEM;
        }
        return r < 0 ? NULL : to_string(root);
}

/* hawkBit's attribute rules: at most 128 bytes, letters, digits, white space and some punctuation. */
static bool attribute_ok(const char *s)
{
        static const char allowed[] = "_-!@#$%^&*()+=[]{}|;:'\",.<>/\\? ";

        if (strlen(s) > DDI_ATTRIBUTE_MAX)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr(allowed, *p)))
                        return false;
        return true;
}

char *ddi_config_data_json(const char *const *pairs)
{
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *data = json_object_new_object();
        size_t n = 0;
        int r;

        if (!root || !data) {
                json_object_put(data);
                return NULL;
        }
        r = put(root, "data", data);
        r = r < 0 ? r : put(root, "mode", json_object_new_string("merge"));
        for (size_t i = 0; r >= 0 && pairs && pairs[i] && pairs[i + 1]; i += 2) {
                if (!pairs[i][0] || !attribute_ok(pairs[i]) || !attribute_ok(pairs[i + 1]) ||
                    n >= DDI_ATTRIBUTES_MAX)
                        continue;
                r = put(data, pairs[i], json_object_new_string(pairs[i + 1]));
                n++;
        }
        return r < 0 ? NULL : to_string(root);
}
