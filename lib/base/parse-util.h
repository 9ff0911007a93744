/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Checked parsers for values people write (upkeep.conf, updatectl arguments) and formats read from
 * outside: digits, durations, sizes, booleans. No locale, no sign, no white space, no overflow. The
 * checked decimal safe_atou64() is in util.h; dates and times are in time-util.h. */

#include <stddef.h>
#include <stdint.h>

/* Exactly `n` (at most 9) decimal digits at `s` into *ret; -EINVAL when one is not a digit (a NUL
 * among them included). For fixed-width fields such as dates. */
int parse_digits_n(const char *s, size_t n, unsigned *ret);
/* The decimal digits at *p into *ret, advancing *p past them: -EINVAL without a digit, -ERANGE above
 * UINT64_MAX. */
int parse_digits(const char **p, uint64_t *ret);

/* "6h", "30m", "45s", "1d", "1h30m" (units d, h, m, s, each at most once, largest first), or plain
 * seconds, into µs. -EINVAL for junk, -ERANGE on overflow. */
int parse_duration_usec(const char *s, uint64_t *ret);
/* Bytes: "4096", or a number with one binary suffix K, M, G or T ("64M" = 64 MiB). -EINVAL for junk,
 * -ERANGE on overflow. */
int parse_size(const char *s, uint64_t *ret);
/* yes, true, 1: 1; no, false, 0: 0; anything else (other case included): -EINVAL. */
int parse_boolean(const char *s);
