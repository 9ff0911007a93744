/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Strict JSON parsing with json-c, shared by the manifest and the TUF metadata parsers: one object at the
 * top, bounded nesting, nothing but white space after it, no duplicated keys, no NUL in keys, no raw
 * control characters, no single quotes and only well-formed UTF-8 (json-c lets each of these through). */

#include <json-c/json.h>

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
