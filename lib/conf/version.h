/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Semantic versions (semver.org 2.0.0): MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], no leading zeros in
 * numeric parts, precedence as the specification defines it (build metadata ignored). */

#include "util.h"

#define VERSION_STRING_MAX 128

typedef struct Version {
        uint64_t major, minor, patch;
        char prerelease[VERSION_STRING_MAX]; /* "" when none */
        char build[VERSION_STRING_MAX];      /* "" when none */
} Version;

/* -EINVAL for anything that is not a semantic version, -E2BIG past VERSION_STRING_MAX. */
int version_parse(const char *s, Version *ret);
/* <0, 0, >0 by semver precedence. */
int version_compare(const Version *a, const Version *b);
/* Parse both, then compare; -EINVAL in *ret_r when either is bad. Convenience for tests and callers. */
int version_compare_strings(const char *a, const char *b, int *ret_cmp);
