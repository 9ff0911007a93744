/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "strv.h"
#include "tests.h"

static char **make(size_t n, const char *const *words)
{
        char **l = calloc(n + 1, sizeof(char *));

        ASSERT_TRUE(l);
        for (size_t i = 0; i < n; i++)
                ASSERT_TRUE(l[i] = strdup(words[i]));
        return l;
}

TEST(length_and_contains)
{
        static const char *const words[] = { "a", "bc", "" };
        _cleanup_strv_free_ char **l = make(3, words);

        ASSERT_EQ(strv_length(l), 3);
        ASSERT_TRUE(strv_contains(l, "a"));
        ASSERT_TRUE(strv_contains(l, "bc"));
        ASSERT_TRUE(strv_contains(l, ""));
        ASSERT_FALSE(strv_contains(l, "b"));
        ASSERT_FALSE(strv_contains(l, "bcd"));
}

TEST(null_and_empty)
{
        _cleanup_strv_free_ char **empty = make(0, NULL);

        ASSERT_EQ(strv_length(NULL), 0);
        ASSERT_FALSE(strv_contains(NULL, "a"));
        ASSERT_EQ(strv_length(empty), 0);
        ASSERT_FALSE(strv_contains(empty, ""));
        ASSERT_TRUE(strv_free(NULL) == NULL);
}

TEST(free_a_partly_filled_array)
{
        /* As a parser leaves it when it stops half way: allocated for 4, 2 filled. */
        char **l = calloc(5, sizeof(char *));

        ASSERT_TRUE(l);
        ASSERT_TRUE(l[0] = strdup("x"));
        ASSERT_TRUE(l[1] = strdup("y"));
        ASSERT_EQ(strv_length(l), 2);
        ASSERT_TRUE(strv_free(l) == NULL);
}

TEST(copy_and_free_erase)
{
        static const char *const words[] = { "Authorization: TargetToken t0k", "b", NULL };
        _cleanup_strv_free_erase_ char **copy = NULL;
        char **none = (char **)1;

        ASSERT_EQ(strv_copy(words, &copy), 0);
        ASSERT_EQ(strv_length(copy), 2);
        ASSERT_TRUE(copy[0] != words[0]);
        ASSERT_STREQ(copy[0], words[0]);
        ASSERT_STREQ(copy[1], "b");
        ASSERT_TRUE(copy[2] == NULL);
        ASSERT_EQ(strv_copy(NULL, &none), 0);
        ASSERT_TRUE(none == NULL);
        ASSERT_TRUE(strv_free_erase(NULL) == NULL);
}
