/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "parse-util.h"

#include "time-util.h"
#include "util.h"

int parse_digits_n(const char *s, size_t n, unsigned *ret)
{
        unsigned v = 0;

        if (n > 9)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL; /* also stops at the terminating NUL */
                v = v * 10 + (unsigned)(s[i] - '0');
        }
        *ret = v;
        return 0;
}

int parse_digits(const char **p, uint64_t *ret)
{
        uint64_t v = 0;
        const char *s = *p;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
                unsigned d = (unsigned)(*s - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *p = s;
        *ret = v;
        return 0;
}

int parse_duration_usec(const char *s, uint64_t *ret)
{
        static const struct {
                char unit;
                uint64_t usec;
        } units[] = {
                { 'd', USEC_PER_DAY },
                { 'h', USEC_PER_HOUR },
                { 'm', USEC_PER_MIN },
                { 's', USEC_PER_SEC },
        };
        uint64_t total = 0, n;
        size_t next_unit = 0; /* components go from days down to seconds, each at most once */
        const char *p = s;
        int r;

        if (isempty(s))
                return -EINVAL;

        r = parse_digits(&p, &n);
        if (r < 0)
                return r;
        if (*p == 0) { /* plain seconds */
                if (n > UINT64_MAX / USEC_PER_SEC)
                        return -ERANGE;
                *ret = n * USEC_PER_SEC;
                return 0;
        }

        for (;;) {
                size_t u;

                for (u = next_unit; u < ELEMENTSOF(units); u++)
                        if (*p == units[u].unit)
                                break;
                if (u >= ELEMENTSOF(units))
                        return -EINVAL; /* unknown unit, or units out of order or repeated */
                if (n > UINT64_MAX / units[u].usec || total > UINT64_MAX - n * units[u].usec)
                        return -ERANGE;
                total += n * units[u].usec;
                next_unit = u + 1;
                p++;
                if (*p == 0)
                        break;
                r = parse_digits(&p, &n);
                if (r < 0)
                        return r;
                if (*p == 0)
                        return -EINVAL; /* "1h30": a number without its unit */
        }

        *ret = total;
        return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
        const char *p = s;
        unsigned shift = 0;
        uint64_t n;
        int r;

        if (isempty(s))
                return -EINVAL;
        r = parse_digits(&p, &n);
        if (r < 0)
                return r;
        switch (*p) {
        case 0:
                break;
        case 'K':
                shift = 10;
                break;
        case 'M':
                shift = 20;
                break;
        case 'G':
                shift = 30;
                break;
        case 'T':
                shift = 40;
                break;
        default:
                return -EINVAL;
        }
        if (*p && p[1] != 0)
                return -EINVAL;
        if (shift > 0 && n > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = n << shift;
        return 0;
}

int parse_boolean(const char *s)
{
        if (streq(s, "yes") || streq(s, "true") || streq(s, "1"))
                return 1;
        if (streq(s, "no") || streq(s, "false") || streq(s, "0"))
                return 0;
        return -EINVAL;
}
