/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* String vectors: arrays of malloc'ed strings ending in a NULL entry. An array that also keeps a count
 * (TUF roles' key ids, the offer's target paths) is allocated one entry larger, so it ends in NULL too
 * and these helpers work on it. */

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Free every string and the array; NULL is fine. Returns NULL. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)
/* strv_free() of a vector that holds secrets (request headers with a token): every string is
 * overwritten with zeros (explicit_bzero()) before it is freed. */
char **strv_free_erase(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free_erase);
#define _cleanup_strv_free_erase_ _cleanup_(strv_free_erasep)

/* A copy of `l` (NULL-terminated; NULL gives NULL with *ret set to NULL); -ENOMEM. */
int strv_copy(const char *const *l, char ***ret);

/* The number of entries before the NULL; 0 for NULL. */
size_t strv_length(char *const *l);
/* Whether an entry equals `s`. */
bool strv_contains(char *const *l, const char *s);
