/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "parse-util.h"
#include "tests.h"
#include "time-util.h"

TEST(digits_fixed_width)
{
        unsigned v = 7;

        ASSERT_OK(parse_digits_n("2026", 4, &v));
        ASSERT_EQ(v, 2026);
        ASSERT_OK(parse_digits_n("0912x", 2, &v)); /* only the first n */
        ASSERT_EQ(v, 9);
        ASSERT_OK(parse_digits_n("", 0, &v));
        ASSERT_EQ(v, 0);
        ASSERT_OK(parse_digits_n("999999999", 9, &v));
        ASSERT_EQ(v, 999999999);
        v = 7;
        ASSERT_ERR(parse_digits_n("20a6", 4, &v), -EINVAL);
        ASSERT_ERR(parse_digits_n("12", 4, &v), -EINVAL); /* the NUL is not a digit */
        ASSERT_ERR(parse_digits_n("-1", 2, &v), -EINVAL);
        ASSERT_ERR(parse_digits_n(" 1", 2, &v), -EINVAL);
        ASSERT_ERR(parse_digits_n("1234567890", 10, &v), -EINVAL); /* wider than an unsigned holds */
        ASSERT_EQ(v, 7);
}

TEST(digits_advancing)
{
        const char *s = "1h30m", *p = s;
        uint64_t v = 7;

        ASSERT_OK(parse_digits(&p, &v));
        ASSERT_EQ(v, 1);
        ASSERT_EQ(p - s, 1);
        p = "18446744073709551615";
        ASSERT_OK(parse_digits(&p, &v));
        ASSERT_TRUE(v == UINT64_MAX);
        ASSERT_EQ(*p, 0);

        v = 7;
        p = s = "18446744073709551616";
        ASSERT_ERR(parse_digits(&p, &v), -ERANGE);
        ASSERT_TRUE(p == s);
        p = s = "h";
        ASSERT_ERR(parse_digits(&p, &v), -EINVAL);
        p = s = "";
        ASSERT_ERR(parse_digits(&p, &v), -EINVAL);
        ASSERT_TRUE(p == s);
        ASSERT_EQ(v, 7);
}

TEST(boolean)
{
        static const char *const yes[] = { "yes", "true", "1" }, *const no[] = { "no", "false", "0" },
                                 *const bad[] = { "",  "Yes", "TRUE", "on",   "off",
                                                  "y", "n",   "2",    " yes", "yes " };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                ASSERT_EQ(parse_boolean(yes[i]), 1);
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                ASSERT_EQ(parse_boolean(no[i]), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_ERR(parse_boolean(bad[i]), -EINVAL);
}

TEST(duration_parsing)
{
        static const struct {
                const char *s;
                int r;
                uint64_t usec;
        } cases[] = {
                { "45s", 0, 45 * 1000000ull },
                { "30m", 0, 30 * USEC_PER_MIN },
                { "6h", 0, 6 * USEC_PER_HOUR },
                { "1d", 0, USEC_PER_DAY },
                { "1h30m", 0, 90 * USEC_PER_MIN },
                { "1d2h3m4s", 0, USEC_PER_DAY + 2 * USEC_PER_HOUR + 3 * USEC_PER_MIN + 4 * 1000000ull },
                { "90", 0, 90 * 1000000ull },
                { "0", 0, 0 },
                { "0s", 0, 0 },
                { "007m", 0, 7 * USEC_PER_MIN },
                { "18446744073709s", 0, 18446744073709ull * 1000000ull },
                { "", -EINVAL, 0 },
                { "s", -EINVAL, 0 },
                { "h1", -EINVAL, 0 },
                { "1x", -EINVAL, 0 },
                { "1h30", -EINVAL, 0 },
                { "30m1h", -EINVAL, 0 },
                { "1h1h", -EINVAL, 0 },
                { "-5s", -EINVAL, 0 },
                { "+5s", -EINVAL, 0 },
                { " 5s", -EINVAL, 0 },
                { "5s ", -EINVAL, 0 },
                { "5 s", -EINVAL, 0 },
                { "1.5h", -EINVAL, 0 },
                { "5ms", -EINVAL, 0 },
                { "1H", -EINVAL, 0 },
                { "18446744073710", -ERANGE, 0 },
                { "18446744073710s", -ERANGE, 0 },
                { "213503982d8h1m49s", 0, 213503982ull * USEC_PER_DAY + 28909ull * 1000000ull },
                { "213503983d", -ERANGE, 0 },
                { "213503982d8h2m", -ERANGE, 0 },
                { "99999999999999999999", -ERANGE, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t u = 12345;
                int r = parse_duration_usec(cases[i].s, &u);
                if (r != cases[i].r)
                        test_fail("parse_duration_usec(\"%s\") = %d, expected %d", cases[i].s, r,
                                  cases[i].r);
                if (r == 0 && u != cases[i].usec)
                        test_fail("parse_duration_usec(\"%s\") = %" PRIu64 ", expected %" PRIu64, cases[i].s,
                                  u, cases[i].usec);
                if (r < 0 && u != 12345)
                        test_fail("parse_duration_usec(\"%s\") wrote its output on failure", cases[i].s);
        }
}

TEST(size_parsing)
{
        static const struct {
                const char *s;
                int r;
                uint64_t bytes;
        } cases[] = {
                { "0", 0, 0 },
                { "4096", 0, 4096 },
                { "1K", 0, 1024 },
                { "64M", 0, 64ull << 20 },
                { "2G", 0, 2ull << 30 },
                { "3T", 0, 3ull << 40 },
                { "16777215T", 0, 16777215ull << 40 },
                { "18446744073709551615", 0, UINT64_MAX },
                { "16777216T", -ERANGE, 0 },
                { "18446744073709551616", -ERANGE, 0 },
                { "", -EINVAL, 0 },
                { "M", -EINVAL, 0 },
                { "64m", -EINVAL, 0 },
                { "64MB", -EINVAL, 0 },
                { "64MiB", -EINVAL, 0 },
                { "64 M", -EINVAL, 0 },
                { "-1", -EINVAL, 0 },
                { "1.5G", -EINVAL, 0 },
                { "1P", -EINVAL, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t u = 12345;
                int r = parse_size(cases[i].s, &u);
                if (r != cases[i].r)
                        test_fail("parse_size(\"%s\") = %d, expected %d", cases[i].s, r, cases[i].r);
                if (r == 0 && u != cases[i].bytes)
                        test_fail("parse_size(\"%s\") = %" PRIu64 ", expected %" PRIu64, cases[i].s, u,
                                  cases[i].bytes);
                if (r < 0 && u != 12345)
                        test_fail("parse_size(\"%s\") wrote its output on failure", cases[i].s);
        }
}
