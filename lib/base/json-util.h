/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Strict JSON parsing with json-c, shared by the manifest and the TUF metadata parsers: one object at the
 * top, bounded nesting, nothing but white space after it, no duplicated keys, no NUL in keys, no raw
 * control characters, no single quotes and only well-formed UTF-8 (json-c lets each of these through). */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define JSON_QUOTE_MAX    48  /* bytes of a value repeated in a message */
#define JSON_KEY_PATH_MAX 128 /* "payloads[63].installed_size", "signed.targets.\"a/b\"" and the like */

typedef struct JsonStrictOptions {
        const char *what;   /* message prefix: "manifest", "timestamp" */
        UpkErrKind kind;    /* of every error reported */
        unsigned depth_max; /* nesting of objects and arrays */
        size_t objects_max; /* objects checked for duplicated keys (in document order); 0 for all */
} JsonStrictOptions;

/* Parse data[0..size) into an object. Errors are -EBADMSG (with "WHAT: reason" in `err`) or -ENOMEM. */
int json_parse_strict(const void *data, size_t size, const JsonStrictOptions *o, json_object **ret,
                      UpkErr *err);

/* A value from a document, made safe to repeat in a message: printable ASCII only (others and quotes
 * become '?'), bounded, "..." when cut. */
const char *json_printable(const char *s, char *buf, size_t size);
#define JSON_QUOTE(s) json_printable((s), (char[JSON_QUOTE_MAX + 4]){}, JSON_QUOTE_MAX + 4)

/* Typed access to a parsed document, shared by the manifest and the TUF metadata parsers. Every error is
 * -EBADMSG of the context's kind with the message "WHAT: KEYPATH: reason", where KEYPATH is
 * "payloads[1].name", "signed.expires" and the like (PATH.KEY, or KEY when PATH is ""). Getters return 1
 * with the value, 0 when the key is absent and not required (*ret untouched), or the error. */
typedef struct JsonCtx {
        const char *what; /* message prefix: "manifest", a TUF role name (quoted by JSON_QUOTE) */
        UpkErrKind kind;
        UpkErr *err;
} JsonCtx;

int json_bad(const JsonCtx *c, const char *fmt, ...) _printf_(2, 3);
/* "PATH.KEY", or "KEY" when PATH is "". */
const char *json_key_path(char *buf, size_t size, const char *path, const char *key);
/* Every key of `obj` is one of `allowed` (NULL-terminated): else "unknown key "K" in PATH". */
int json_check_keys(const JsonCtx *c, json_object *obj, const char *path, const char *const *allowed);
/* The value of `key` in `obj`, of json type `type` ("expected a string"; "missing required key"); a string
 * must hold no NUL character. */
int json_get(const JsonCtx *c, json_object *obj, const char *path, const char *key, json_type type,
             bool required, json_object **ret);
/* A string of at most `max` bytes; *ret points into the document. */
int json_get_string(const JsonCtx *c, json_object *obj, const char *path, const char *key, bool required,
                    size_t max, const char **ret);
/* json_get_string() into a copy (-ENOMEM). */
int json_get_dup_string(const JsonCtx *c, json_object *obj, const char *path, const char *key, bool required,
                        size_t max, char **ret);
/* A non-negative integer of at most `max`. */
int json_get_uint(const JsonCtx *c, json_object *obj, const char *path, const char *key, bool required,
                  uint64_t max, uint64_t *ret);
int json_get_bool(const JsonCtx *c, json_object *obj, const char *path, const char *key, bool required,
                  bool *ret);

static inline void json_object_putp(json_object **p)
{
        if (*p)
                json_object_put(*p);
}

static inline void json_tokener_freep(json_tokener **p)
{
        if (*p)
                json_tokener_free(*p);
}
