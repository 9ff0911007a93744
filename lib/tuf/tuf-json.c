/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tuf-json.h"

#include <inttypes.h>
#include <stdio.h>

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void put_string(FILE *f, const char *s, size_t n, bool escape_control)
{
        fputc('"', f);
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (escape_control && c < 0x20) {
                        if (c == '\n')
                                fputs("\\n", f);
                        else
                                fprintf(f, "\\u%04x", c);
                        continue;
                }
                if (c == '"' || c == '\\')
                        fputc('\\', f);
                fputc(c, f);
        }
        fputc('"', f);
}

static int encode(FILE *f, json_object *v, bool escape_control, unsigned depth)
{
        int r;

        if (depth > TUF_CANONICAL_DEPTH_MAX)
                return -ELOOP;
        switch (json_object_get_type(v)) {
        case json_type_null:
                fputs("null", f);
                return 0;
        case json_type_boolean:
                fputs(json_object_get_boolean(v) ? "true" : "false", f);
                return 0;
        case json_type_double:
                return -EDOM;
        case json_type_int: {
                /* json-c keeps what does not fit an int64 as a uint64 */
                int64_t i = json_object_get_int64(v);
                if (i == INT64_MAX)
                        fprintf(f, "%" PRIu64, json_object_get_uint64(v));
                else
                        fprintf(f, "%" PRId64, i);
                return 0;
        }
        case json_type_string:
                put_string(f, json_object_get_string(v), (size_t)json_object_get_string_len(v),
                           escape_control);
                return 0;
        case json_type_array:
                fputc('[', f);
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        if (i > 0)
                                fputc(',', f);
                        r = encode(f, json_object_array_get_idx(v, i), escape_control, depth + 1);
                        if (r < 0)
                                return r;
                }
                fputc(']', f);
                return 0;
        case json_type_object: {
                size_t n = (size_t)json_object_object_length(v), k = 0;
                _cleanup_free_ const char **keys = calloc(n ?: 1, sizeof(char *));

                if (!keys)
                        return -ENOMEM;
                json_object_object_foreach(v, key, val)
                {
                        (void)val;
                        keys[k++] = key;
                }
                qsort(keys, n, sizeof(char *), cmp_str);
                fputc('{', f);
                for (size_t i = 0; i < n; i++) {
                        if (i > 0)
                                fputc(',', f);
                        put_string(f, keys[i], strlen(keys[i]), escape_control);
                        fputc(':', f);
                        r = encode(f, json_object_object_get(v, keys[i]), escape_control, depth + 1);
                        if (r < 0)
                                return r;
                }
                fputc('}', f);
                return 0;
        }
        }
        return -EINVAL;
}

static int encode_to(json_object *v, bool escape_control, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        int r;

        {
                _cleanup_(fclosep) FILE *f = open_memstream(&buf, &size);
                if (!f)
                        return -ENOMEM;
                r = encode(f, v, escape_control, 0);
                if (r < 0)
                        return r;
                if (fflush(f) != 0 || ferror(f))
                        return -ENOMEM;
        }
        if (!buf)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int tuf_canonical_json(json_object *v, char **ret, size_t *ret_size)
{
        return encode_to(v, false, ret, ret_size);
}

int tuf_sorted_json(json_object *v, char **ret, size_t *ret_size)
{
        return encode_to(v, true, ret, ret_size);
}
