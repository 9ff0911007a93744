/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "time-util.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "parse-util.h"
#include "util.h"

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static bool is_leap(unsigned y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "YYYY-MM-DD" in the first ten bytes of s (what follows is the caller's). */
static int date_prefix_parse(const char *s, int64_t *ret_days)
{
        static const unsigned mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        unsigned y, m, d;

        if (parse_digits_n(s, 4, &y) < 0 || s[4] != '-' || parse_digits_n(s + 5, 2, &m) < 0 || s[7] != '-' ||
            parse_digits_n(s + 8, 2, &d) < 0)
                return -EINVAL;
        if (y < 1970 || m < 1 || m > 12 || d < 1)
                return -EINVAL;
        if (d > mdays[m - 1] + (m == 2 && is_leap(y)))
                return -EINVAL;
        *ret_days = days_from_civil(y, m, d);
        return 0;
}

int date_parse_days(const char *s, int64_t *ret_days)
{
        if (!s || strlen(s) != DATE_LEN)
                return -EINVAL;
        return date_prefix_parse(s, ret_days);
}

/* "HH:MM:SS" in the first eight bytes of s into seconds after midnight, up to 23:59:60. */
static int time_prefix_parse(const char *s, bool leap_second, int64_t *ret_sec)
{
        unsigned h, m, sec;

        if (parse_digits_n(s, 2, &h) < 0 || s[2] != ':' || parse_digits_n(s + 3, 2, &m) < 0 || s[5] != ':' ||
            parse_digits_n(s + 6, 2, &sec) < 0)
                return -EINVAL;
        if (h > 23 || m > 59 || sec > (leap_second ? 60u : 59u))
                return -EINVAL;
        *ret_sec = (int64_t)h * 3600 + m * 60 + sec;
        return 0;
}

int timestamp_parse(const char *s, TimestampFlags flags, int64_t *ret_sec)
{
        bool utc_seconds = flags & TIMESTAMP_UTC_SECONDS;
        int64_t days, sec, offset = 0;
        const char *p;

        if (!s || strnlen(s, DATE_LEN + 1) <= DATE_LEN || s[DATE_LEN] != 'T')
                return -EINVAL;
        if (date_prefix_parse(s, &days) < 0)
                return -EINVAL;
        p = s + DATE_LEN + 1;
        if (strnlen(p, 8) < 8 || time_prefix_parse(p, !utc_seconds, &sec) < 0)
                return -EINVAL;
        p += 8;
        if (*p == '.' && !utc_seconds) {
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                while (*p >= '0' && *p <= '9')
                        p++;
        }
        if ((*p == '+' || *p == '-') && !utc_seconds) {
                unsigned oh, om;

                if (parse_digits_n(p + 1, 2, &oh) < 0 || p[3] != ':' || parse_digits_n(p + 4, 2, &om) < 0 ||
                    p[6] != 0 || oh > 23 || om > 59)
                        return -EINVAL;
                offset = (*p == '+' ? 1 : -1) * ((int64_t)oh * 3600 + om * 60);
        } else if (!streq(p, "Z"))
                return -EINVAL;
        *ret_sec = days * SEC_PER_DAY + sec - offset;
        return 0;
}

int clock_parse_minutes(const char *s, unsigned *ret_min)
{
        unsigned h, m;

        if (parse_digits_n(s, 2, &h) < 0 || s[2] != ':' || parse_digits_n(s + 3, 2, &m) < 0)
                return -EINVAL;
        if (h > 23 || m > 59)
                return -EINVAL;
        *ret_min = h * 60 + m;
        return 0;
}
