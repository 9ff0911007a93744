/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "format.h"
#include "time-util.h"

char *format_flatten(char *s)
{
        for (char *p = s; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = ' ';
        return s;
}

char *format_printable(char *buf, size_t size, const char *s)
{
        if (size == 0)
                return buf;
        snprintf(buf, size, "%s", s ?: "");
        return format_flatten(buf);
}

char *format_bytes(char *buf, size_t size, uint64_t bytes)
{
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        double v = (double)bytes;
        size_t u = 0;

        if (bytes < 1024) {
                snprintf(buf, size, "%u B", (unsigned)bytes);
                return buf;
        }
        v /= 1024;
        /* Move up while the value would round to 1024.0 or more. */
        while (v >= 1023.95 && u + 1 < ELEMENTSOF(units)) {
                v /= 1024;
                u++;
        }
        snprintf(buf, size, "%.1f %s", v, units[u]);
        return buf;
}

char *format_rate(char *buf, size_t size, uint64_t bytes_per_sec)
{
        char b[FORMAT_BYTES_MAX];

        snprintf(buf, size, "%s/s", format_bytes(b, sizeof(b), bytes_per_sec));
        return buf;
}

char *format_timespan(char *buf, size_t size, uint64_t usec)
{
        static const struct {
                const char *suffix;
                uint64_t sec;
        } units[] = {
                { "d", 86400 },
                { "h", 3600 },
                { "m", 60 },
                { "s", 1 },
        };
        uint64_t sec = usec / USEC_PER_SEC;

        for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                uint64_t n = sec / units[i].sec, rest;

                if (n == 0)
                        continue;
                rest = i + 1 < ELEMENTSOF(units) ? sec % units[i].sec / units[i + 1].sec : 0;
                if (rest > 0)
                        snprintf(buf, size, "%" PRIu64 "%s %" PRIu64 "%s", n, units[i].suffix, rest,
                                 units[i + 1].suffix);
                else
                        snprintf(buf, size, "%" PRIu64 "%s", n, units[i].suffix);
                return buf;
        }
        snprintf(buf, size, "0s");
        return buf;
}

char *format_timestamp(char *buf, size_t size, uint64_t usec)
{
        time_t t = (time_t)(usec / USEC_PER_SEC);
        struct tm tm;

        if (size == 0)
                return buf;
        if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, size, "@%" PRIu64, usec / USEC_PER_SEC);
        return buf;
}

int date_days_from(const char *date, uint64_t now_usec, int64_t *ret_days)
{
        int64_t days;
        int r = date_parse_days(date, &days);

        if (r < 0)
                return r;
        *ret_days = days - (int64_t)(now_usec / USEC_PER_SEC / SEC_PER_DAY);
        return 0;
}

char *format_progress(char *buf, size_t size, unsigned width, const char *phase, uint64_t done,
                      uint64_t total, uint64_t rate)
{
        char head[64] = "", pct[8] = "", sizes[2 * FORMAT_BYTES_MAX + 8] = "",
             speed[FORMAT_BYTES_MAX + 4] = "";
        char b1[FORMAT_BYTES_MAX], b2[FORMAT_BYTES_MAX];
        size_t pos = 0, fixed, bar = 0;
        bool with_sizes = true, with_rate = rate > 0;

        if (size == 0)
                return buf;
        if (width > FORMAT_PROGRESS_MAX - 1)
                width = FORMAT_PROGRESS_MAX - 1;
        if (width > size - 1)
                width = (unsigned)(size - 1);

        if (!isempty(phase))
                snprintf(head, sizeof(head), "%-10s", phase);
        if (total > 0) {
                double p = (double)done * 100.0 / (double)total;
                snprintf(pct, sizeof(pct), " %3u%%", p >= 100.0 ? 100u : (unsigned)p);
                snprintf(sizes, sizeof(sizes), "  %s / %s", format_bytes(b1, sizeof(b1), done),
                         format_bytes(b2, sizeof(b2), total));
        } else if (done > 0)
                snprintf(sizes, sizeof(sizes), "%s%s", head[0] ? "  " : "",
                         format_bytes(b1, sizeof(b1), done));
        if (with_rate)
                snprintf(speed, sizeof(speed), "  %s", format_rate(b1, sizeof(b1), rate));

        /* Drop parts from the right until the bar (at least 10 columns and its brackets) fits. */
        for (;;) {
                fixed = strlen(head) + (head[0] && total > 0 ? 1 : 0) + strlen(pct) +
                        (with_sizes ? strlen(sizes) : 0) + (with_rate ? strlen(speed) : 0);
                if (total == 0 || fixed + 2 + 10 <= width) {
                        if (total > 0) {
                                bar = width - fixed - 2;
                                if (bar > FORMAT_PROGRESS_BAR_MAX)
                                        bar = FORMAT_PROGRESS_BAR_MAX;
                        }
                        break;
                }
                if (with_rate)
                        with_rate = false;
                else if (with_sizes)
                        with_sizes = false;
                else
                        break; /* no bar, just the phase and the percentage */
        }

#define PUT(s)                                                       \
        do {                                                         \
                for (const char *_p = (s); *_p && pos < width; _p++) \
                        buf[pos++] = *_p;                            \
        } while (0)

        PUT(head);
        if (bar > 0) {
                size_t filled =
                        (size_t)((double)bar * (double)(done > total ? total : done) / (double)total);

                if (head[0])
                        PUT(" ");
                PUT("[");
                for (size_t i = 0; i < bar && pos < width; i++)
                        buf[pos++] = i < filled ? '#' : '-';
                PUT("]");
        }
        PUT(pct);
        if (with_sizes)
                PUT(sizes);
        if (with_rate)
                PUT(speed);
#undef PUT
        while (pos < width)
                buf[pos++] = ' ';
        buf[pos] = 0;
        return buf;
}
