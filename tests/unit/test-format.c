/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <time.h>

#include "format.h"
#include "tests.h"

/* 2026-11-25 10:00:00 UTC */
#define NOW_USEC (UINT64_C(1795600800) * USEC_PER_SEC)

TEST(printable)
{
        char buf[8], line[] = "a\x1b[2J\r\nb\x7f";

        ASSERT_STREQ(format_flatten(line), "a [2J  b ");
        ASSERT_STREQ(format_printable(buf, sizeof(buf), "x\ty\nzzzzzz"), "x y zzz");
        ASSERT_STREQ(format_printable(buf, sizeof(buf), NULL), "");
        ASSERT_STREQ(format_value("\x1b]0;owned\x07"), " ]0;owned ");
        ASSERT_EQ(strlen(format_value(
                          "0123456789012345678901234567890123456789012345678901234567890123456789")),
                  FORMAT_VALUE_MAX);
}

TEST(bytes)
{
        static const struct {
                uint64_t in;
                const char *out;
        } cases[] = {
                { 0, "0 B" },
                { 1, "1 B" },
                { 1023, "1023 B" },
                { 1024, "1.0 KiB" },
                { 1536, "1.5 KiB" },
                { 1024 * 1024 - 1, "1.0 MiB" }, /* 1023.999 KiB would round to 1024.0 KiB */
                { 1024 * 1024, "1.0 MiB" },
                { 12897484, "12.3 MiB" },
                { UINT64_C(4) << 30, "4.0 GiB" },
                { UINT64_C(3) << 40, "3.0 TiB" },
                { UINT64_MAX, "16.0 EiB" },
        };
        char buf[FORMAT_BYTES_MAX];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                ASSERT_STREQ(format_bytes(buf, sizeof(buf), cases[i].in), cases[i].out);
        ASSERT_STREQ(format_rate(buf, sizeof(buf), 3355443), "3.2 MiB/s");
        ASSERT_STREQ(format_rate(buf, sizeof(buf), 0), "0 B/s");
        /* A short buffer cuts the text and stays terminated. */
        ASSERT_STREQ(format_bytes(buf, 4, 1536), "1.5");
}

TEST(timespan)
{
        static const struct {
                uint64_t sec;
                const char *out;
        } cases[] = {
                { 0, "0s" },          { 45, "45s" },
                { 60, "1m" },         { 250, "4m 10s" },
                { 3600, "1h" },       { 3600 * 3 + 5 * 60 + 59, "3h 5m" },
                { 86400 * 2, "2d" },  { 86400 * 2 + 3600 * 4 + 1, "2d 4h" },
                { 86400 + 59, "1d" },
        };
        char buf[FORMAT_TIMESPAN_MAX];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                ASSERT_STREQ(format_timespan(buf, sizeof(buf), cases[i].sec * USEC_PER_SEC), cases[i].out);
        ASSERT_STREQ(format_timespan(buf, sizeof(buf), 999999), "0s");
        ASSERT_STREQ(format_timespan(buf, sizeof(buf), UINT64_MAX), "213503982d 8h");
}

TEST(timestamp)
{
        char buf[FORMAT_TIMESTAMP_MAX];

        ASSERT_OK(setenv("TZ", "UTC", 1));
        tzset();
        ASSERT_STREQ(format_timestamp(buf, sizeof(buf), NOW_USEC + 999999), "2026-11-25 10:00:00 UTC");
        ASSERT_OK(setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1));
        tzset();
        ASSERT_STREQ(format_timestamp(buf, sizeof(buf), NOW_USEC), "2026-11-25 11:00:00 CET");
}

TEST(date_days)
{
        int64_t d = 99;

        ASSERT_OK(date_days_from("2026-11-25", NOW_USEC, &d));
        ASSERT_EQ(d, 0);
        /* Still the same UTC day a second before midnight. */
        ASSERT_OK(date_days_from("2026-11-25", NOW_USEC + 14 * 3600 * USEC_PER_SEC - 1, &d));
        ASSERT_EQ(d, 0);
        ASSERT_OK(date_days_from("2026-11-25", NOW_USEC + 14 * 3600 * USEC_PER_SEC, &d));
        ASSERT_EQ(d, -1);
        ASSERT_OK(date_days_from("2026-12-31", NOW_USEC, &d));
        ASSERT_EQ(d, 36);
        ASSERT_OK(date_days_from("2031-12-31", NOW_USEC, &d));
        ASSERT_EQ(d, 36 + 365 * 5 + 1); /* 2028 is a leap year */
        ASSERT_OK(date_days_from("2024-02-29", NOW_USEC, &d));
        ASSERT_EQ(d, -(366 - 59 + 365 + 328)); /* to 2025-02-28, then to 2026-11-25 */
        ASSERT_OK(date_days_from("1970-01-01", 0, &d));
        ASSERT_EQ(d, 0);

        d = 99;
        ASSERT_ERR(date_days_from("2025-02-29", NOW_USEC, &d), -EINVAL);
        ASSERT_ERR(date_days_from("2026-13-01", NOW_USEC, &d), -EINVAL);
        ASSERT_ERR(date_days_from("2026-00-10", NOW_USEC, &d), -EINVAL);
        ASSERT_ERR(date_days_from("2026-04-31", NOW_USEC, &d), -EINVAL);
        ASSERT_ERR(date_days_from("2026-4-30", NOW_USEC, &d), -EINVAL);
        ASSERT_ERR(date_days_from("2026-04-30x", NOW_USEC, &d), -EINVAL);
        ASSERT_ERR(date_days_from("2026/04/30", NOW_USEC, &d), -EINVAL);
        ASSERT_ERR(date_days_from("+026-04-30", NOW_USEC, &d), -EINVAL);
        ASSERT_ERR(date_days_from("", NOW_USEC, &d), -EINVAL);
        ASSERT_ERR(date_days_from(NULL, NOW_USEC, &d), -EINVAL);
        ASSERT_EQ(d, 99); /* untouched on failure */
}

TEST(progress_full)
{
        char buf[FORMAT_PROGRESS_MAX];

        /* 80 columns: the bar takes what the text leaves. */
        format_progress(buf, sizeof(buf), 80, "writing", 12897484, 28311552, 3355443);
        ASSERT_EQ(strlen(buf), 80);
        ASSERT_STREQ(buf,
                     "writing    [#############-----------------]  45%  12.3 MiB / 27.0 MiB  3.2 MiB/s");
}

TEST(progress_widths)
{
        char buf[FORMAT_PROGRESS_MAX];

        /* Wide terminals: the bar stops at its maximum, the line is padded to the width. */
        format_progress(buf, sizeof(buf), 200, "writing", 50, 100, 0);
        ASSERT_EQ(strlen(buf), 200);
        ASSERT_TRUE(strneq(
                buf, "writing    [#########################-------------------------]  50%  50 B / 100 B ",
                83));
        ASSERT_EQ(strspn(buf + 82, " "), 200 - 82);

        /* Narrower: the rate goes first, then the sizes, then the bar. */
        format_progress(buf, sizeof(buf), 60, "writing", 50, 100, 1024);
        ASSERT_STREQ(buf, "writing    [########---------]  50%  50 B / 100 B  1.0 KiB/s");
        format_progress(buf, sizeof(buf), 50, "writing", 50, 100, 1024);
        ASSERT_STREQ(buf, "writing    [#########---------]  50%  50 B / 100 B");
        format_progress(buf, sizeof(buf), 40, "writing", 50, 100, 1024);
        ASSERT_STREQ(buf, "writing    [###########-----------]  50%");
        format_progress(buf, sizeof(buf), 25, "writing", 50, 100, 1024);
        ASSERT_STREQ(buf, "writing     50%          ");
        format_progress(buf, sizeof(buf), 8, "writing", 50, 100, 1024);
        ASSERT_STREQ(buf, "writing ");

        /* The width is capped to the buffer. */
        char small[16];
        format_progress(small, sizeof(small), 80, "writing", 50, 100, 0);
        ASSERT_EQ(strlen(small), 15);
}

TEST(progress_edges)
{
        char buf[FORMAT_PROGRESS_MAX];

        /* No phase, nothing done, complete, past the total. */
        format_progress(buf, sizeof(buf), 30, "", 0, 100, 0);
        ASSERT_STREQ(buf, "[----------]   0%  0 B / 100 B");
        format_progress(buf, sizeof(buf), 40, "done", 100, 100, 0);
        ASSERT_STREQ(buf, "done       [######################] 100%");
        format_progress(buf, sizeof(buf), 30, "", 200, 100, 0);
        ASSERT_STREQ(buf, "[#######################] 100%");
        /* Unknown total: no bar and no percentage. */
        format_progress(buf, sizeof(buf), 40, "verifying", 2048, 0, 1024);
        ASSERT_STREQ(buf, "verifying   2.0 KiB  1.0 KiB/s          ");
        format_progress(buf, sizeof(buf), 20, "", 0, 0, 0);
        ASSERT_STREQ(buf, "                    ");
        format_progress(buf, sizeof(buf), 20, "verifying", 0, 0, 0);
        ASSERT_STREQ(buf, "verifying           ");
}
