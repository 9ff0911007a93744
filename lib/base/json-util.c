/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "json-util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

static int fail(const JsonStrictOptions *o, UpkErr *err, const char *fmt, ...) _printf_(3, 4);
static int fail(const JsonStrictOptions *o, UpkErr *err, const char *fmt, ...)
{
        char msg[UPK_ERR_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return upk_err(err, o->kind, -EBADMSG, "%s: %s", o->what, msg);
}

const char *json_printable(const char *s, char *buf, size_t size)
{
        size_t n = 0;

        for (; *s && n + 4 < size; s++, n++) {
                unsigned char c = (unsigned char)*s;
                buf[n] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
        }
        if (*s) {
                memcpy(buf + n, "...", 3);
                n += 3;
        }
        buf[n] = 0;
        return buf;
}

static bool is_json_ws(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* RFC 3629: shortest form, no surrogates, at most U+10FFFF. json-c's own check lets overlong forms
 * through. Length of the well-formed sequence at p[0..n), or 0. */
static size_t utf8_sequence_len(const unsigned char *p, size_t n)
{
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                len = 2;
        else if (p[0] >= 0xe0 && p[0] <= 0xef) {
                len = 3;
                if (p[0] == 0xe0)
                        lo = 0xa0; /* overlong */
                else if (p[0] == 0xed)
                        hi = 0x9f; /* surrogates */
        } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
                len = 4;
                if (p[0] == 0xf0)
                        lo = 0x90; /* overlong */
                else if (p[0] == 0xf4)
                        hi = 0x8f; /* past U+10FFFF */
        } else
                return 0;
        if (n < len || p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (p[i] < 0x80 || p[i] > 0xbf)
                        return 0;
        return len;
}

/* ---- raw text checks json-c does not make ----
 *
 * json-c keeps the last of duplicated keys without a word, truncates keys at an escaped NUL, and in strict
 * mode still takes single-quoted strings, raw control characters inside strings and overlong UTF-8. A small
 * scan over the text (which json-c has already accepted, so its structure is sound) catches these.
 *
 * Duplicates are found by counting each object's members in the text (one ':' per member at the object's
 * own level; strings are skipped with their escapes, so a ':' or '{' inside one does not count) and
 * comparing with json-c's member count for the same object, objects being matched in document order. The
 * first object in document order that has a duplicate is the first whose counts differ: every object
 * before it was parsed faithfully, so the order still matches up to it. Only the first objects_max objects
 * are counted when the caller sets a bound. The key is named by decoding that one object's keys with json-c
 * (so escapes like \u0066ormat are compared as "format"), on the error path only; so is the object's key
 * path, rebuilt from the parent links. */

typedef struct RawObject {
        json_object *obj;
        size_t start; /* offset of its '{' */
        size_t n_keys;
} RawObject;

typedef struct Collect {
        RawObject *objs;
        size_t n, max;
} Collect;

static void collect_objects(json_object *v, Collect *c)
{
        if (c->n >= c->max)
                return;
        switch (json_object_get_type(v)) {
        case json_type_object:
                c->objs[c->n++].obj = v;
                json_object_object_foreach(v, key, val)
                {
                        (void)key;
                        collect_objects(val, c);
                }
                break;
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(v) && c->n < c->max; i++)
                        collect_objects(json_object_array_get_idx(v, i), c);
                break;
        case json_type_null:
        case json_type_boolean:
        case json_type_double:
        case json_type_int:
        case json_type_string:
                break;
        }
}

static size_t count_objects(json_object *v)
{
        size_t n = 0;

        switch (json_object_get_type(v)) {
        case json_type_object:
                n = 1;
                json_object_object_foreach(v, key, val)
                {
                        (void)key;
                        n += count_objects(val);
                }
                break;
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(v); i++)
                        n += count_objects(json_object_array_get_idx(v, i));
                break;
        case json_type_null:
        case json_type_boolean:
        case json_type_double:
        case json_type_int:
        case json_type_string:
                break;
        }
        return n;
}

/* The key path of `target` below `v` ("" for the top, "a.b[2].c"), cut at JSON_KEY_PATH_MAX - 1 bytes. */
static bool find_path(json_object *v, json_object *target, const char *path, char *ret)
{
        char sub[JSON_KEY_PATH_MAX];

        if (v == target) {
                snprintf(ret, JSON_KEY_PATH_MAX, "%s", path);
                return true;
        }
        switch (json_object_get_type(v)) {
        case json_type_object: {
                json_object_object_foreach(v, key, val)
                {
                        snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", JSON_QUOTE(key));
                        if (find_path(val, target, sub, ret))
                                return true;
                }
                break;
        }
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
                        if (find_path(json_object_array_get_idx(v, i), target, sub, ret))
                                return true;
                }
                break;
        case json_type_null:
        case json_type_boolean:
        case json_type_double:
        case json_type_int:
        case json_type_string:
                break;
        }
        return false;
}

static const char *where(const char *path, char *buf, size_t size)
{
        if (!*path)
                return "at top level";
        snprintf(buf, size, "in %s", path);
        return buf;
}

/* The string token p[0..len) (quotes included) decoded by json-c; 1 if it is already in `seen`. */
static int key_seen(const char *p, size_t len, json_object *seen, const char **ret_key,
                    json_object **ret_obj)
{
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new();
        _cleanup_(json_object_putp) json_object *k = NULL;
        const char *key;

        if (!tok)
                return -ENOMEM;
        k = json_tokener_parse_ex(tok, p, (int)len);
        if (!k || !json_object_is_type(k, json_type_string))
                return -ENOMEM; /* the text already parsed once, so only memory can fail here */
        key = json_object_get_string(k);
        if (json_object_object_get_ex(seen, key, NULL)) {
                *ret_key = key;
                *ret_obj = TAKE_PTR(k);
                return 1;
        }
        if (json_object_object_add(seen, key, NULL) < 0)
                return -ENOMEM;
        return 0;
}

/* Name the first repeated key of the object starting at p[o->start]. Only runs on the error path. */
static int report_duplicate(const JsonStrictOptions *opt, const char *p, size_t end, json_object *root,
                            const RawObject *o, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *seen = json_object_new_object();
        char path[JSON_KEY_PATH_MAX], w[JSON_KEY_PATH_MAX + 8];
        size_t depth = 0;

        if (!seen)
                return upk_err_oom(err);
        if (!find_path(root, o->obj, "", path))
                path[0] = 0;
        for (size_t i = o->start; i < end; i++) {
                if (p[i] == '"') {
                        _cleanup_(json_object_putp) json_object *k = NULL;
                        const char *key;
                        size_t s = i, j;
                        int r;

                        for (i++; i < end && p[i] != '"'; i++)
                                if (p[i] == '\\')
                                        i++;
                        for (j = i + 1; j < end && is_json_ws(p[j]); j++)
                                ;
                        if (depth != 1 || j >= end || p[j] != ':')
                                continue; /* a value, or a key of a nested object */
                        r = key_seen(p + s, i + 1 - s, seen, &key, &k);
                        if (r < 0)
                                return upk_err_oom(err); /* only memory can fail here */
                        if (r > 0)
                                return fail(opt, err, "duplicate key \"%s\" %s", JSON_QUOTE(key),
                                            where(path, w, sizeof(w)));
                } else if (p[i] == '{' || p[i] == '[')
                        depth++;
                else if ((p[i] == '}' || p[i] == ']') && --depth == 0)
                        break;
        }
        return fail(opt, err, "duplicate key %s", where(path, w, sizeof(w)));
}

typedef struct Level {
        bool object;
        size_t index; /* in objs when object and < n_objs */
} Level;

static int check_raw(const JsonStrictOptions *opt, const char *p, size_t end, json_object *root, UpkErr *err)
{
        _cleanup_free_ RawObject *objs = NULL;
        _cleanup_free_ Level *stack = NULL;
        size_t n_objs, next = 0, first_bad = SIZE_MAX, depth = 0, depth_max = (size_t)opt->depth_max + 1;
        bool in_string = false, in_key = false, expect_key = false;
        Collect c = {};

        n_objs = count_objects(root);
        if (opt->objects_max > 0 && n_objs > opt->objects_max)
                n_objs = opt->objects_max;
        objs = calloc(n_objs ?: 1, sizeof(RawObject));
        stack = calloc(depth_max, sizeof(Level));
        if (!objs || !stack)
                return upk_err_oom(err);
        c = (Collect){ .objs = objs, .max = n_objs };
        collect_objects(root, &c);

        for (size_t i = 0; i < end; i++) {
                unsigned char ch = (unsigned char)p[i];

                if (in_string) {
                        if (ch == '\\') {
                                if (in_key && i + 5 < end && memcmp(p + i + 1, "u0000", 5) == 0)
                                        return fail(opt, err,
                                                    "byte %zu: a key contains a NUL character (\\u0000)", i);
                                i++; /* the escaped character; \uXXXX digits are harmless */
                        } else if (ch == '"')
                                in_string = false;
                        else if (ch < 0x20)
                                return fail(opt, err,
                                            "not valid JSON at byte %zu: control character in a string", i);
                        else if (ch >= 0x80) {
                                size_t len = utf8_sequence_len((const unsigned char *)p + i, end - i);
                                if (len == 0)
                                        return fail(opt, err, "not valid JSON at byte %zu: invalid UTF-8",
                                                    i);
                                i += len - 1;
                        }
                        continue;
                }

                switch (ch) {
                case '"':
                        in_string = true;
                        in_key = expect_key;
                        expect_key = false;
                        break;
                case '\'':
                        return fail(opt, err, "not valid JSON at byte %zu: single-quoted string", i);
                case '{':
                case '[':
                        if (depth >= depth_max)
                                return fail(opt, err, "not valid JSON at byte %zu: nesting too deep", i);
                        stack[depth].object = ch == '{';
                        stack[depth].index = SIZE_MAX;
                        if (ch == '{') {
                                stack[depth].index = next++;
                                if (stack[depth].index < n_objs) {
                                        objs[stack[depth].index].start = i;
                                        objs[stack[depth].index].n_keys = 0;
                                }
                        }
                        expect_key = ch == '{';
                        depth++;
                        break;
                case ',':
                        expect_key = depth > 0 && stack[depth - 1].object;
                        break;
                case ':':
                        if (depth > 0 && stack[depth - 1].object && stack[depth - 1].index < n_objs)
                                objs[stack[depth - 1].index].n_keys++;
                        break;
                case '}':
                case ']':
                        if (depth == 0)
                                return fail(opt, err, "not valid JSON at byte %zu: unbalanced '%c'", i, ch);
                        depth--;
                        if (stack[depth].object && stack[depth].index < n_objs) {
                                size_t k = stack[depth].index;
                                if (objs[k].n_keys != (size_t)json_object_object_length(objs[k].obj) &&
                                    k < first_bad)
                                        first_bad = k;
                        }
                        expect_key = false;
                        break;
                default:
                        break;
                }
        }
        if (first_bad != SIZE_MAX)
                return report_duplicate(opt, p, end, root, &objs[first_bad], err);
        return 0;
}

int json_parse_strict(const void *data, size_t size, const JsonStrictOptions *o, json_object **ret,
                      UpkErr *err)
{
        _cleanup_(json_tokener_freep) json_tokener *tok = NULL;
        _cleanup_(json_object_putp) json_object *root = NULL;
        enum json_tokener_error jerr;
        const char *p = data;
        size_t i, end;
        int r;

        if ((!p && size > 0) || size > INT32_MAX)
                return upk_err(err, o->kind, -EINVAL,
                               "%s: cannot parse %zu bytes (no data, or more than 2 GiB)", o->what, size);

        /* json-c takes any value at the top; only an object is wanted. */
        for (i = 0; i < size && is_json_ws(p[i]); i++)
                ;
        if (i == size)
                return fail(o, err, "empty, expected a JSON object");
        if (p[i] != '{')
                return fail(o, err, "the top level is not a JSON object");

        tok = json_tokener_new_ex((int)o->depth_max);
        if (!tok)
                return upk_err_oom(err);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        root = json_tokener_parse_ex(tok, p, (int)size);
        jerr = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        if (jerr == json_tokener_continue)
                return fail(o, err, "not valid JSON at byte %zu: unexpected end of data", size);
        if (jerr != json_tokener_success)
                return fail(o, err, "not valid JSON at byte %zu: %s", end, json_tokener_error_desc(jerr));
        /* json-c 0.16 reports allocation failures as a NULL without an error */
        if (!root)
                return upk_err_oom(err);
        /* json-c stops after the object; strict mode rejects most trailing data, but not a NUL byte. */
        for (i = end; i < size; i++)
                if (!is_json_ws(p[i]))
                        return fail(o, err, "not valid JSON at byte %zu: data after the top-level object",
                                    i);
        if (!json_object_is_type(root, json_type_object))
                return fail(o, err, "the top level is not a JSON object");

        r = check_raw(o, p, end, root, err);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(root);
        return 0;
}

/* ---- typed access ---- */

int json_bad(const JsonCtx *c, const char *fmt, ...)
{
        char msg[UPK_ERR_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return upk_err(c->err, c->kind, -EBADMSG, "%s: %s", JSON_QUOTE(c->what), msg);
}

const char *json_key_path(char *buf, size_t size, const char *path, const char *key)
{
        snprintf(buf, size, "%s%s%s", path, *path ? "." : "", key);
        return buf;
}

int json_check_keys(const JsonCtx *c, json_object *obj, const char *path, const char *const *allowed)
{
        char w[JSON_KEY_PATH_MAX + 8];

        json_object_object_foreach(obj, key, val)
        {
                bool ok = false;
                (void)val;
                for (const char *const *a = allowed; *a && !ok; a++)
                        ok = streq(*a, key);
                if (!ok)
                        return json_bad(c, "unknown key \"%s\" %s", JSON_QUOTE(key),
                                        where(path, w, sizeof(w)));
        }
        return 0;
}

int json_get(const JsonCtx *c, json_object *obj, const char *path, const char *key, json_type type,
             bool required, json_object **ret)
{
        static const char *const type_names[] = {
                [json_type_null] = "null",        [json_type_boolean] = "a boolean",
                [json_type_double] = "a number",  [json_type_int] = "an integer",
                [json_type_object] = "an object", [json_type_array] = "an array",
                [json_type_string] = "a string",
        };
        char kp[UPK_ERR_MSG_MAX]; /* TUF paths name targets: no shorter than a message */
        json_object *v = NULL;

        if (!json_object_object_get_ex(obj, key, &v)) {
                if (!required)
                        return 0;
                if (!*path)
                        return json_bad(c, "missing required key \"%s\"", key);
                return json_bad(c, "%s: missing required key \"%s\"", path, key);
        }
        json_key_path(kp, sizeof(kp), path, key);
        if (!json_object_is_type(v, type))
                return json_bad(c, "%s: expected %s", kp, type_names[type]);
        if (type == json_type_string &&
            strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
                return json_bad(c, "%s: contains a NUL character", kp);
        *ret = v;
        return 1;
}

int json_get_string(const JsonCtx *c, json_object *obj, const char *path, const char *key, bool required,
                    size_t max, const char **ret)
{
        char kp[UPK_ERR_MSG_MAX]; /* TUF paths name targets: no shorter than a message */
        json_object *v;
        int r;

        r = json_get(c, obj, path, key, json_type_string, required, &v);
        if (r <= 0)
                return r;
        if ((size_t)json_object_get_string_len(v) > max)
                return json_bad(c, "%s: longer than %zu bytes", json_key_path(kp, sizeof(kp), path, key),
                                max);
        *ret = json_object_get_string(v);
        return 1;
}

int json_get_dup_string(const JsonCtx *c, json_object *obj, const char *path, const char *key, bool required,
                        size_t max, char **ret)
{
        const char *s;
        char *d;
        int r;

        r = json_get_string(c, obj, path, key, required, max, &s);
        if (r <= 0)
                return r;
        d = strdup(s);
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 1;
}

int json_get_uint(const JsonCtx *c, json_object *obj, const char *path, const char *key, bool required,
                  uint64_t max, uint64_t *ret)
{
        char kp[UPK_ERR_MSG_MAX]; /* TUF paths name targets: no shorter than a message */
        json_object *v;
        uint64_t u;
        int r;

        /* json-c keeps integers as int64 or, above INT64_MAX, uint64 (saturating past UINT64_MAX, which is
         * still above any maximum here); fractions and exponents make a double. */
        r = json_get(c, obj, path, key, json_type_int, required, &v);
        if (r <= 0)
                return r;
        json_key_path(kp, sizeof(kp), path, key);
        if (json_object_get_int64(v) < 0)
                return json_bad(c, "%s: must not be negative", kp);
        u = json_object_get_uint64(v);
        if (u > max)
                return json_bad(c, "%s: %" PRIu64 " is larger than the maximum %" PRIu64, kp, u, max);
        *ret = u;
        return 1;
}

int json_get_bool(const JsonCtx *c, json_object *obj, const char *path, const char *key, bool required,
                  bool *ret)
{
        json_object *v;
        int r;

        r = json_get(c, obj, path, key, json_type_boolean, required, &v);
        if (r <= 0)
                return r;
        *ret = json_object_get_boolean(v);
        return 1;
}
