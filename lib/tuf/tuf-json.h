/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Canonical JSON (the OLPC dialect, as securesystemslib writes it): object keys sorted by their bytes, no
 * white space, strings with only '"' and '\\' escaped and every other byte as is, integers only (a
 * fraction or exponent is -EDOM), true, false and null. TUF signatures are made over these bytes. */

#include <json-c/json.h>

#include "util.h"

#define TUF_CANONICAL_DEPTH_MAX 64

/* A malloc()ed, NUL-terminated encoding of `v` in *ret and its length in *ret_size. */
int tuf_canonical_json(json_object *v, char **ret, size_t *ret_size);

/* The same encoding, except that control characters in strings are escaped (\n, \u00XX), so the result is
 * also strict JSON (RFC 8259): how metadata files are written. A PEM public key holds newlines, which
 * canonical JSON keeps as raw bytes. */
int tuf_sorted_json(json_object *v, char **ret, size_t *ret_size);
