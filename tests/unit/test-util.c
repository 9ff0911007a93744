#include <pthread.h>
#include <sys/resource.h>

#include "tests.h"

static void *read_nice(void *userdata)
{
        *(int *)userdata = getpriority(PRIO_PROCESS, 0);
        return NULL;
}

static void *lower_then_start(void *userdata)
{
        int *nices = userdata;
        pthread_t t;

        thread_lower_priority(5);
        nices[0] = getpriority(PRIO_PROCESS, 0);
        ASSERT_EQ(pthread_create(&t, NULL, read_nice, &nices[1]), 0);
        ASSERT_EQ(pthread_join(t, NULL), 0);
        return NULL;
}

TEST(thread_lower_priority_is_per_thread_and_inherited)
{
        int before = getpriority(PRIO_PROCESS, 0), nices[2] = { -100, -100 };
        pthread_t t;

        ASSERT_TRUE(before <= 14);
        ASSERT_EQ(pthread_create(&t, NULL, lower_then_start, nices), 0);
        ASSERT_EQ(pthread_join(t, NULL), 0);
        ASSERT_EQ(nices[0], before + 5);                 /* the thread itself */
        ASSERT_EQ(nices[1], before + 5);                 /* a thread it started */
        ASSERT_EQ(getpriority(PRIO_PROCESS, 0), before); /* not the others */
}

TEST(string_tables)
{
        static const char *const table[4] = { [0] = "zero", [1] = "one", [3] = "three" }; /* a hole at 2 */

        ASSERT_STREQ(string_table_get(table, ELEMENTSOF(table), 0), "zero");
        ASSERT_STREQ(string_table_get(table, ELEMENTSOF(table), 3), "three");
        ASSERT_TRUE(string_table_get(table, ELEMENTSOF(table), 2) == NULL);
        ASSERT_TRUE(string_table_get(table, ELEMENTSOF(table), 4) == NULL);
        ASSERT_TRUE(string_table_get(table, ELEMENTSOF(table), -EINVAL) == NULL);
        ASSERT_EQ(string_table_lookup(table, ELEMENTSOF(table), "one"), 1);
        ASSERT_EQ(string_table_lookup(table, ELEMENTSOF(table), "three"), 3);
        ASSERT_EQ(string_table_lookup(table, ELEMENTSOF(table), "two"), -EINVAL);
        ASSERT_EQ(string_table_lookup(table, ELEMENTSOF(table), "One"), -EINVAL);
        ASSERT_EQ(string_table_lookup(table, ELEMENTSOF(table), ""), -EINVAL);
        ASSERT_EQ(string_table_lookup(table, ELEMENTSOF(table), NULL), -EINVAL);
}

/* All zeros for the lengths around the 16 bytes checked one by one and around a page, at every start
 * modulo 8; and a non-zero byte found wherever it is. */
TEST(memeqzero)
{
        static const size_t lengths[] = { 0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 4095, 4096 };
        static uint8_t buf[4096 + 8];

        for (size_t s = 0; s < 8; s++)
                for (size_t i = 0; i < ELEMENTSOF(lengths); i++) {
                        size_t n = lengths[i];

                        memset(buf, 0, sizeof(buf));
                        ASSERT_TRUE(memeqzero(buf + s, n));
                        if (n == 0)
                                continue;
                        buf[s + n - 1] = 0x80; /* the last byte */
                        ASSERT_FALSE(memeqzero(buf + s, n));
                        ASSERT_TRUE(memeqzero(buf + s, n - 1));
                        buf[s + n - 1] = 0;
                        buf[s] = 1; /* the first */
                        ASSERT_FALSE(memeqzero(buf + s, n));
                        buf[s] = 0;
                        buf[s + n / 2] = 0xff; /* the middle */
                        ASSERT_FALSE(memeqzero(buf + s, n));
                        if (n > 1)
                                ASSERT_TRUE(memeqzero(buf + s, n / 2));
                        if (s > 0) {
                                buf[s + n / 2] = 0;
                                buf[s - 1] = 1; /* bytes around the range do not count */
                                buf[s + n] = 1;
                                ASSERT_TRUE(memeqzero(buf + s, n));
                                buf[s - 1] = buf[s + n] = 0;
                        }
                }

        for (size_t at = 0; at < 64; at++) {
                uint8_t b[64] = { 0 };

                b[at] = (uint8_t)(1u << (at % 8));
                ASSERT_FALSE(memeqzero(b, sizeof(b)));
                ASSERT_TRUE(memeqzero(b, at));
                if (at + 1 < sizeof(b))
                        ASSERT_TRUE(memeqzero(b + at + 1, sizeof(b) - at - 1));
        }
}
