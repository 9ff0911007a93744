/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "hexdecoct.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

char hexchar(unsigned x)
{
        static const char digits[] = "0123456789abcdef";

        return digits[x & 15];
}

int unhexchar(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

void hex_encode(const void *data, size_t len, char *ret)
{
        const uint8_t *p = data;

        for (size_t i = 0; i < len; i++) {
                ret[2 * i] = hexchar(p[i] >> 4);
                ret[2 * i + 1] = hexchar(p[i]);
        }
        ret[2 * len] = 0;
}

/* n (even) digits of s into n/2 bytes; upper-case digits only when `any_case`. */
static int decode(const char *s, size_t n, bool any_case, uint8_t *ret)
{
        for (size_t i = 0; i < n; i++)
                if (!any_case && s[i] >= 'A' && s[i] <= 'F')
                        return -EINVAL;
        for (size_t i = 0; i < n / 2; i++) {
                int hi = unhexchar(s[2 * i]), lo = unhexchar(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                ret[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
}

int hex_decode(const char *s, uint8_t *ret, size_t len)
{
        if (strlen(s) != 2 * len)
                return -EINVAL;
        return decode(s, 2 * len, false, ret);
}

int hex_decode_any(const char *s, uint8_t *ret, size_t max, size_t *ret_len)
{
        size_t n = strlen(s);
        int r;

        if (n % 2 != 0)
                return -EINVAL;
        if (n / 2 > max)
                return -E2BIG;
        r = decode(s, n, true, ret);
        if (r < 0)
                return r;
        *ret_len = n / 2;
        return 0;
}
