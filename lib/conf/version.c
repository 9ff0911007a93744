/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "version.h"

/* Semantic Versioning 2.0.0, read strictly:
 *
 *   version    = core [ "-" prerelease ] [ "+" build ]
 *   core       = number "." number "." number        (each fits uint64, no leading zero)
 *   prerelease = ident *( "." ident )                (numeric idents without leading zero)
 *   build      = ident *( "." ident )                (leading zeros allowed)
 *   ident      = 1*[0-9A-Za-z-]
 *
 * Everything that is not of this form is -EINVAL, whatever the reason (also an overflowing number);
 * a string of VERSION_STRING_MAX bytes or more is -E2BIG. */

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static bool is_ident_char(char c)
{
        return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* One numeric core part starting at *p; advances *p past it. */
static int parse_number(const char **p, uint64_t *ret)
{
        const char *s = *p;
        uint64_t v = 0;
        size_t n = 0;

        while (is_digit(s[n])) {
                unsigned d = (unsigned)(s[n] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL; /* does not fit: not a version we can represent */
                v = v * 10 + d;
                n++;
        }
        if (n == 0 || (n > 1 && s[0] == '0'))
                return -EINVAL;
        *p = s + n;
        *ret = v;
        return 0;
}

/* Dot-separated identifiers from `s` up to (excluding) `end`; `strict_numeric` rejects numeric identifiers
 * with leading zeros (pre-release), build metadata allows them. */
static bool identifiers_valid(const char *s, const char *end, bool strict_numeric)
{
        const char *p = s;

        if (p == end)
                return false;
        for (;;) {
                const char *q = p;
                bool numeric = true;

                while (q < end && *q != '.') {
                        if (!is_ident_char(*q))
                                return false;
                        if (!is_digit(*q))
                                numeric = false;
                        q++;
                }
                if (q == p)
                        return false; /* empty identifier */
                if (strict_numeric && numeric && q - p > 1 && *p == '0')
                        return false;
                if (q == end)
                        return true;
                p = q + 1; /* skip '.'; a trailing '.' leaves an empty identifier above */
        }
}

int version_parse(const char *s, Version *ret)
{
        Version v = {};
        const char *p, *pre = NULL, *build = NULL, *end;

        if (!s)
                return -EINVAL;
        if (strnlen(s, VERSION_STRING_MAX) >= VERSION_STRING_MAX)
                return -E2BIG;

        p = s;
        if (parse_number(&p, &v.major) < 0 || *p++ != '.')
                return -EINVAL;
        if (parse_number(&p, &v.minor) < 0 || *p++ != '.')
                return -EINVAL;
        if (parse_number(&p, &v.patch) < 0)
                return -EINVAL;

        end = p + strlen(p);
        if (*p == '-') {
                pre = p + 1;
                p = strchr(pre, '+') ?: end;
                if (!identifiers_valid(pre, p, true))
                        return -EINVAL;
                memcpy(v.prerelease, pre, (size_t)(p - pre));
                v.prerelease[p - pre] = 0;
        }
        if (*p == '+') {
                build = p + 1;
                if (!identifiers_valid(build, end, false))
                        return -EINVAL;
                memcpy(v.build, build, (size_t)(end - build));
                v.build[end - build] = 0;
                p = end;
        }
        if (*p != 0)
                return -EINVAL;

        *ret = v;
        return 0;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
        return (a > b) - (a < b);
}

static bool all_digits(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!is_digit(s[i]))
                        return false;
        return true;
}

/* Compare two pre-release identifiers of lengths na and nb (not NUL-terminated). */
static int cmp_identifier(const char *a, size_t na, const char *b, size_t nb)
{
        bool da = all_digits(a, na), db = all_digits(b, nb);
        int c;

        if (da && db) {
                /* No leading zeros, so a longer number is a larger one; equal lengths compare as text.
                 * This is exact for numbers of any size. */
                if (na != nb)
                        return na < nb ? -1 : 1;
                c = memcmp(a, b, na);
                return (c > 0) - (c < 0);
        }
        if (da != db)
                return da ? -1 : 1; /* numeric identifiers have lower precedence */
        c = memcmp(a, b, na < nb ? na : nb);
        if (c != 0)
                return (c > 0) - (c < 0);
        return cmp_u64(na, nb);
}

static int cmp_prerelease(const char *a, const char *b)
{
        /* A version without pre-release has higher precedence than one with. */
        if (!*a || !*b)
                return (!*a) - (!*b);

        for (;;) {
                size_t na = strcspn(a, "."), nb = strcspn(b, ".");
                int c = cmp_identifier(a, na, b, nb);

                if (c != 0)
                        return c;
                a += na;
                b += nb;
                if (!*a || !*b)
                        return (*a != 0) - (*b != 0); /* the longer set of identifiers wins */
                a++;
                b++;
        }
}

int version_compare(const Version *a, const Version *b)
{
        int c;

        c = cmp_u64(a->major, b->major);
        if (c != 0)
                return c;
        c = cmp_u64(a->minor, b->minor);
        if (c != 0)
                return c;
        c = cmp_u64(a->patch, b->patch);
        if (c != 0)
                return c;
        return cmp_prerelease(a->prerelease, b->prerelease);
}

int version_compare_strings(const char *a, const char *b, int *ret_cmp)
{
        Version va, vb;
        int r;

        r = version_parse(a, &va);
        if (r < 0)
                return r;
        r = version_parse(b, &vb);
        if (r < 0)
                return r;
        *ret_cmp = version_compare(&va, &vb);
        return 0;
}
