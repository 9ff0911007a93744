/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Calendar dates and times from outside (config, manifests, TUF metadata): strict parsers, no locale,
 * no time zone database. */

#include <stdint.h>

#define DATE_LEN 10 /* YYYY-MM-DD */

/* A strict YYYY-MM-DD calendar date (1970 or later) into days since 1970-01-01; -EINVAL otherwise. */
int date_parse_days(const char *s, int64_t *ret_days);
