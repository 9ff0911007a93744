/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "time-util.h"

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

int date_parse_days(const char *s, int64_t *ret_days)
{
        static const unsigned mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        unsigned v[3] = {}, widths[3] = { 4, 2, 2 };
        const char *p = s;

        if (!s || strlen(s) != DATE_LEN)
                return -EINVAL;
        for (size_t i = 0; i < 3; i++) {
                for (unsigned k = 0; k < widths[i]; k++, p++) {
                        if (*p < '0' || *p > '9')
                                return -EINVAL;
                        v[i] = v[i] * 10 + (unsigned)(*p - '0');
                }
                if (i < 2 && *p++ != '-')
                        return -EINVAL;
        }
        if (v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1)
                return -EINVAL;
        if (v[2] > mdays[v[1] - 1] + (v[1] == 2 && is_leap(v[0])))
                return -EINVAL;
        *ret_days = days_from_civil(v[0], v[1], v[2]);
        return 0;
}

