/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "version.h"

TEST(parse_valid)
{
        static const struct {
                const char *s;
                uint64_t major, minor, patch;
                const char *pre, *build;
        } cases[] = {
                { "0.0.0", 0, 0, 0, "", "" },
                { "1.2.3", 1, 2, 3, "", "" },
                { "10.20.30", 10, 20, 30, "", "" },
                { "1.0.0-alpha", 1, 0, 0, "alpha", "" },
                { "1.0.0-alpha.1", 1, 0, 0, "alpha.1", "" },
                { "1.0.0-0.3.7", 1, 0, 0, "0.3.7", "" },
                { "1.0.0-x.7.z.92", 1, 0, 0, "x.7.z.92", "" },
                { "1.0.0-x-y-z.--", 1, 0, 0, "x-y-z.--", "" },
                { "1.0.0-0a", 1, 0, 0, "0a", "" }, /* alphanumeric: a leading zero is fine */
                { "1.0.0--", 1, 0, 0, "-", "" },
                { "1.0.0-alpha+001", 1, 0, 0, "alpha", "001" },
                { "1.0.0+20130313144700", 1, 0, 0, "", "20130313144700" },
                { "1.0.0-beta+exp.sha.5114f85", 1, 0, 0, "beta", "exp.sha.5114f85" },
                { "1.0.0+21AF26D3----117B344092BD", 1, 0, 0, "", "21AF26D3----117B344092BD" },
                { "1.0.0-rc.1+build.1-2", 1, 0, 0, "rc.1", "build.1-2" },
                { "18446744073709551615.0.18446744073709551615", UINT64_MAX, 0, UINT64_MAX, "", "" },
                { "1.0.0-99999999999999999999999", 1, 0, 0, "99999999999999999999999", "" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Version v;
                memset(&v, 0xaa, sizeof(v));
                if (version_parse(cases[i].s, &v) < 0)
                        test_fail("version_parse(\"%s\") failed", cases[i].s);
                ASSERT_TRUE(v.major == cases[i].major);
                ASSERT_TRUE(v.minor == cases[i].minor);
                ASSERT_TRUE(v.patch == cases[i].patch);
                ASSERT_STREQ(v.prerelease, cases[i].pre);
                ASSERT_STREQ(v.build, cases[i].build);
        }
}

TEST(parse_invalid)
{
        static const char *const cases[] = {
                "",
                "1",
                "1.2",
                "1.2.3.4",
                "v1.2.3",
                "V1.2.3",
                " 1.2.3",
                "1.2.3 ",
                "1.2.3\n",
                "01.2.3",
                "1.02.3",
                "1.2.03",
                "00.0.0",
                "-1.2.3",
                "+1.2.3",
                "1.-2.3",
                "1..3",
                ".1.2.3",
                "1.2.",
                "1.2.3.",
                "a.b.c",
                "1.2.3-",
                "1.2.3+",
                "1.2.3-+build",
                "1.2.3-alpha.",
                "1.2.3-.alpha",
                "1.2.3-alpha..1",
                "1.2.3-01",
                "1.2.3-alpha.01",
                "1.2.3-00",
                "1.2.3-al_pha",
                "1.2.3-alpha!",
                "1.2.3-é",
                "1.2.3+build.",
                "1.2.3+.build",
                "1.2.3+build..1",
                "1.2.3+build+2",
                "1.2.3+bu ild",
                "1.2.3-alpha+build_1",
                "18446744073709551616.0.0",    /* UINT64_MAX + 1 */
                "0.99999999999999999999999.0", /* far past uint64 */
                "1.2.3-rc.1+",
                "1,2,3",
                "1.2.3\xff",
        };
        Version v = {};

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                v.major = 4242;
                int r = version_parse(cases[i], &v);
                if (r != -EINVAL)
                        test_fail("version_parse(\"%s\") = %d, expected -EINVAL", cases[i], r);
                ASSERT_TRUE(v.major == 4242); /* untouched on failure */
        }
        ASSERT_ERR(version_parse(NULL, &v), -EINVAL);
}

TEST(parse_length)
{
        char s[VERSION_STRING_MAX + 16];
        Version v;

        /* "1.0.0-" then 'a' up to exactly VERSION_STRING_MAX - 1 bytes: the longest accepted. */
        memset(s, 'a', sizeof(s));
        memcpy(s, "1.0.0-", 6);
        s[VERSION_STRING_MAX - 1] = 0;
        ASSERT_OK(version_parse(s, &v));
        ASSERT_EQ(strlen(v.prerelease), VERSION_STRING_MAX - 1 - 6);

        /* One more byte is too long, whether or not it would be valid. */
        memset(s, 'a', sizeof(s));
        memcpy(s, "1.0.0-", 6);
        s[VERSION_STRING_MAX] = 0;
        ASSERT_ERR(version_parse(s, &v), -E2BIG);
        s[sizeof(s) - 1] = 0;
        ASSERT_ERR(version_parse(s, &v), -E2BIG);

        /* Long build metadata too. */
        memset(s, 'b', sizeof(s));
        memcpy(s, "1.0.0+", 6);
        s[VERSION_STRING_MAX - 1] = 0;
        ASSERT_OK(version_parse(s, &v));
        ASSERT_EQ(strlen(v.build), VERSION_STRING_MAX - 1 - 6);
        ASSERT_STREQ(v.prerelease, "");
}

static int cmp(const char *a, const char *b)
{
        int c = 99;
        int r = version_compare_strings(a, b, &c);
        if (r < 0)
                test_fail("version_compare_strings(\"%s\", \"%s\") = %d", a, b, r);
        return c;
}

TEST(precedence_chain)
{
        /* From semver.org, section 11, plus the core ordering. Every earlier entry is lower than every
         * later one, and each equals itself. */
        static const char *const chain[] = {
                "0.0.0-0",
                "0.0.0",
                "0.0.1",
                "0.1.0",
                "0.9.99",
                "0.10.0",
                "1.0.0-0",
                "1.0.0-1",
                "1.0.0-2",
                "1.0.0-10",
                "1.0.0-99999999999999999999",
                "1.0.0-100000000000000000000",
                "1.0.0-A",
                "1.0.0-Z",
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-beta.11.0",
                "1.0.0-beta.a",
                "1.0.0-rc.1",
                "1.0.0",
                "1.0.1",
                "1.1.0",
                "2.0.0",
                "2.1.0",
                "2.1.1",
                "10.0.0",
                "18446744073709551615.0.0",
        };

        for (size_t i = 0; i < ELEMENTSOF(chain); i++)
                for (size_t j = 0; j < ELEMENTSOF(chain); j++) {
                        int want = (i > j) - (i < j), got = cmp(chain[i], chain[j]);
                        if ((got > 0) - (got < 0) != want)
                                test_fail("compare(\"%s\", \"%s\") = %d, expected sign %d", chain[i],
                                          chain[j], got, want);
                }
}

TEST(build_metadata_ignored)
{
        static const char *const pairs[][2] = {
                { "1.0.0+a", "1.0.0+b" },
                { "1.0.0", "1.0.0+20260101" },
                { "1.0.0-rc.1+x", "1.0.0-rc.1+y.z" },
                { "1.0.0-alpha+001", "1.0.0-alpha" },
        };

        for (size_t i = 0; i < ELEMENTSOF(pairs); i++) {
                ASSERT_EQ(cmp(pairs[i][0], pairs[i][1]), 0);
                ASSERT_EQ(cmp(pairs[i][1], pairs[i][0]), 0);
        }
        /* Build metadata does not make a pre-release a release. */
        ASSERT_TRUE(cmp("1.0.0-rc.1+build", "1.0.0") < 0);
}

TEST(compare_strings_errors)
{
        char long_s[VERSION_STRING_MAX + 1];
        int c = 1234;

        memset(long_s, '1', sizeof(long_s));
        long_s[sizeof(long_s) - 1] = 0;

        ASSERT_ERR(version_compare_strings("1.2", "1.2.3", &c), -EINVAL);
        ASSERT_ERR(version_compare_strings("1.2.3", "v1.2.3", &c), -EINVAL);
        ASSERT_ERR(version_compare_strings(long_s, "1.2.3", &c), -E2BIG);
        ASSERT_ERR(version_compare_strings("1.2.3", NULL, &c), -EINVAL);
        ASSERT_EQ(c, 1234); /* untouched on failure */
        ASSERT_OK(version_compare_strings("1.2.3", "1.2.4", &c));
        ASSERT_TRUE(c < 0);
}
