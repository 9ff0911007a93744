/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -EBADF;
}

int safe_atou64(const char *s, uint64_t *ret)
{
        uint64_t v = 0;

        if (isempty(s))
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                unsigned d = (unsigned)(*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

char *strdup_printf(const char *fmt, ...)
{
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

bool filename_is_plain(const char *s, size_t max)
{
        size_t n;

        if (isempty(s))
                return false;
        n = strlen(s);
        if (n > max)
                return false;
        if (streq(s, ".") || streq(s, ".."))
                return false;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p == '/' || *p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

bool memeqzero(const void *data, size_t n)
{
        const uint8_t *p = data;
        size_t head = n < 16 ? n : 16;

        for (size_t i = 0; i < head; i++)
                if (p[i])
                        return false;
        /* p[i] == p[i + 16] for every i, and the first 16 are zero: so is every byte. */
        return n <= 16 || memcmp(p, p + 16, n - 16) == 0;
}

uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void thread_lower_priority(int increment)
{
        int now;

        errno = 0;
        now = getpriority(PRIO_PROCESS, 0);
        if (errno == 0)
                (void)setpriority(PRIO_PROCESS, 0, now + increment);
}

const char *string_table_get(const char *const *table, size_t n, int i)
{
        return i >= 0 && (size_t)i < n ? table[i] : NULL;
}

int string_table_lookup(const char *const *table, size_t n, const char *s)
{
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (table[i] && streq(table[i], s))
                        return (int)i;
        return -EINVAL;
}
