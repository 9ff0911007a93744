/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Time units, and calendar dates and times from outside (config, manifests, TUF metadata, the support
 * facts): strict parsers, no locale, no time zone database. Every date is a proleptic Gregorian date
 * from 1970-01-01 to 9999-12-31: an earlier one is an error (no date upkeep reads may lie before the
 * epoch). */

#include <stdint.h>

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MIN  (60 * USEC_PER_SEC)
#define USEC_PER_HOUR (60 * USEC_PER_MIN)
#define USEC_PER_DAY  (24 * USEC_PER_HOUR)
#define SEC_PER_DAY   INT64_C(86400)

#define DATE_LEN 10 /* YYYY-MM-DD */

/* A strict YYYY-MM-DD calendar date (1970 or later) into days since 1970-01-01; -EINVAL otherwise. */
int date_parse_days(const char *s, int64_t *ret_days);

typedef enum TimestampFlags {
        /* Only YYYY-MM-DDTHH:MM:SSZ (TUF's "expires"): no fraction, no offset, no leap second. */
        TIMESTAMP_UTC_SECONDS = 1 << 0,
} TimestampFlags;

/* An RFC 3339 date-time, YYYY-MM-DDTHH:MM:SS[.FRACTION](Z|+HH:MM|-HH:MM) with upper-case T and Z, into
 * seconds since the epoch (the fraction dropped, the offset applied; second 60, the leap second RFC 3339
 * allows, counts as the next minute's 0). The date must be 1970 or later. -EINVAL otherwise. */
int timestamp_parse(const char *s, TimestampFlags flags, int64_t *ret_sec);

/* "HH:MM" (24-hour clock) in the first five bytes of `s` into minutes after midnight; -EINVAL otherwise.
 * What follows the five bytes is the caller's. */
int clock_parse_minutes(const char *s, unsigned *ret_min);
