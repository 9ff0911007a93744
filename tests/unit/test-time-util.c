/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "time-util.h"

static int64_t day(const char *s)
{
        int64_t d = 0;
        ASSERT_OK(date_parse_days(s, &d));
        return d;
}

TEST(date)
{
        int64_t d = -1;

        ASSERT_OK(date_parse_days("1970-01-01", &d));
        ASSERT_EQ(d, 0);
        ASSERT_OK(date_parse_days("2000-03-01", &d));
        ASSERT_EQ(d, 11017);
        ASSERT_OK(date_parse_days("2024-02-29", &d));
        ASSERT_EQ(d, 19782);
        ASSERT_EQ(day("2031-12-31") - day("2031-01-01"), 364);
        static const char *const bad[] = { "2023-02-29", "2024-13-01",  "2024-00-10", "2024-1-01",
                                           "2024/01/01", "2024-01-01 ", "1969-12-31", "",
                                           "20240101xx", "2024-04-31" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_ERR(date_parse_days(bad[i], &d), -EINVAL);
        ASSERT_ERR(date_parse_days(NULL, &d), -EINVAL);
}

TEST(date_before_1970_or_malformed)
{
        /* One strict date for the config, the manifest's support end and the support facts: a date before
         * the epoch is an error (a manifest accepted one before the date parsers became one). */
        static const char *const bad[] = { "0000-01-01", "1969-12-31", "1900-02-28",
                                           "9999-12-32", "2024-02-30", "2100-02-29",
                                           "2024-1-1",   "2024-01-0a", "2024-01-01T00:00:00Z" };
        int64_t d = 7;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_ERR(date_parse_days(bad[i], &d), -EINVAL);
        ASSERT_EQ(d, 7);
        ASSERT_OK(date_parse_days("2000-02-29", &d));
        ASSERT_OK(date_parse_days("9999-12-31", &d));
        ASSERT_EQ(d, 2932896);
}

TEST(timestamp_rfc3339)
{
        static const struct {
                const char *s;
                int64_t sec;
        } good[] = {
                { "1970-01-01T00:00:00Z", 0 },
                { "2026-01-01T00:00:00Z", 1767225600 },
                { "2026-11-25T10:00:00.123456789+01:00", 1795597200 },
                { "2026-11-25T10:00:00-00:30", 1795602600 },
                { "2026-11-25T09:00:00.5Z", 1795597200 },
                { "2016-12-31T23:59:60Z", 1483228800 }, /* the leap second: the next minute's 0 */
                { "1970-01-01T00:30:00+00:30", 0 },
                { "1970-01-01T00:00:00+01:00", -3600 }, /* the date, not the instant, is 1970 or later */
        };
        static const char *const bad[] = {
                "",
                "2026-01-01",
                "2026-01-01T00:00Z",
                "2026-01-01t00:00:00Z",
                "2026-01-01T00:00:00z",
                "2026-01-01T00:00:00",
                "2026-01-01 00:00:00Z",
                "2026-01-01T24:00:00Z",
                "2026-01-01T00:60:00Z",
                "2026-01-01T00:00:61Z",
                "2026-01-01T00:00:00.Z",
                "2026-01-01T00:00:00+1:00",
                "2026-01-01T00:00:00+24:00",
                "2026-01-01T00:00:00+01:60",
                "2026-01-01T00:00:00+0100",
                "2026-01-01T00:00:00Z ",
                "2026-02-30T00:00:00Z",
                "1969-12-31T23:59:59Z",
                "0000-01-01T00:00:00Z",
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                int64_t t = 7;
                if (timestamp_parse(good[i].s, 0, &t) < 0 || t != good[i].sec)
                        test_fail("timestamp_parse(\"%s\") = %" PRId64 ", expected %" PRId64, good[i].s, t,
                                  good[i].sec);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int64_t t = 7;
                if (timestamp_parse(bad[i], 0, &t) != -EINVAL || t != 7)
                        test_fail("timestamp_parse(\"%s\") accepted", bad[i]);
        }
        ASSERT_ERR(timestamp_parse(NULL, 0, &(int64_t){ 0 }), -EINVAL);
}

TEST(timestamp_utc_seconds)
{
        int64_t t = 7;

        /* TUF's expires: exactly YYYY-MM-DDTHH:MM:SSZ. */
        ASSERT_OK(timestamp_parse("2030-01-01T00:00:00Z", TIMESTAMP_UTC_SECONDS, &t));
        ASSERT_EQ(t, 1893456000);
        ASSERT_OK(timestamp_parse("9999-12-31T23:59:59Z", TIMESTAMP_UTC_SECONDS, &t));
        ASSERT_EQ(t, INT64_C(253402300799));
        t = 7;
        ASSERT_ERR(timestamp_parse("2030-01-01T00:00:00.5Z", TIMESTAMP_UTC_SECONDS, &t), -EINVAL);
        ASSERT_ERR(timestamp_parse("2030-01-01T00:00:00+00:00", TIMESTAMP_UTC_SECONDS, &t), -EINVAL);
        ASSERT_ERR(timestamp_parse("2016-12-31T23:59:60Z", TIMESTAMP_UTC_SECONDS, &t), -EINVAL);
        ASSERT_ERR(timestamp_parse("2030-04-31T00:00:00Z", TIMESTAMP_UTC_SECONDS, &t), -EINVAL);
        ASSERT_ERR(timestamp_parse("0000-01-01T00:00:00Z", TIMESTAMP_UTC_SECONDS, &t), -EINVAL);
        ASSERT_ERR(timestamp_parse("1969-12-31T23:59:59Z", TIMESTAMP_UTC_SECONDS, &t), -EINVAL);
        ASSERT_EQ(t, 7);
}

TEST(clock_minutes)
{
        unsigned m = 7;

        ASSERT_OK(clock_parse_minutes("00:00", &m));
        ASSERT_EQ(m, 0);
        ASSERT_OK(clock_parse_minutes("23:59", &m));
        ASSERT_EQ(m, 23 * 60 + 59);
        ASSERT_OK(clock_parse_minutes("02:30-04:00", &m)); /* the first five bytes */
        ASSERT_EQ(m, 150);
        m = 7;
        ASSERT_ERR(clock_parse_minutes("24:00", &m), -EINVAL);
        ASSERT_ERR(clock_parse_minutes("12:60", &m), -EINVAL);
        ASSERT_ERR(clock_parse_minutes("2:30", &m), -EINVAL);
        ASSERT_ERR(clock_parse_minutes("02.30", &m), -EINVAL);
        ASSERT_ERR(clock_parse_minutes("", &m), -EINVAL);
        ASSERT_EQ(m, 7);
}
