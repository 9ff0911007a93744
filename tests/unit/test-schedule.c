/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "schedule.h"
#include "tests.h"

#define MIN  (60 * USEC_PER_SEC)
#define HOUR (60 * MIN)

TEST(first_check_is_soon)
{
        Schedule s;

        schedule_init(&s, 6 * HOUR, 30 * MIN);
        ASSERT_EQ(schedule_first_delay(&s, 0), 10 * USEC_PER_SEC);
        ASSERT_EQ(schedule_first_delay(&s, 50 * USEC_PER_SEC), 60 * USEC_PER_SEC);
        ASSERT_EQ(schedule_first_delay(&s, 50 * USEC_PER_SEC + 1), 10 * USEC_PER_SEC);
        for (uint64_t r = 1; r < 1000000000000ULL; r = r * 7 + 3) {
                uint64_t d = schedule_first_delay(&s, r);
                ASSERT_TRUE(d >= 10 * USEC_PER_SEC && d <= 60 * USEC_PER_SEC);
        }
        ASSERT_TRUE(schedule_first_delay(&s, UINT64_MAX) <= 60 * USEC_PER_SEC);
}

TEST(interval_plus_jitter)
{
        Schedule s;

        schedule_init(&s, 6 * HOUR, 30 * MIN);
        ASSERT_EQ(schedule_after_check(&s, true, 0), 6 * HOUR);
        ASSERT_EQ(schedule_after_check(&s, true, 30 * MIN), 6 * HOUR + 30 * MIN);
        ASSERT_EQ(schedule_after_check(&s, true, 30 * MIN + 1), 6 * HOUR);
        for (uint64_t r = 1; r < UINT64_MAX / 16; r = r * 5 + 1) {
                uint64_t d = schedule_after_check(&s, true, r);
                ASSERT_TRUE(d >= 6 * HOUR && d <= 6 * HOUR + 30 * MIN);
        }
        /* No jitter: exactly the interval. */
        schedule_init(&s, 2 * HOUR, 0);
        ASSERT_EQ(schedule_after_check(&s, true, 12345), 2 * HOUR);
        /* Jitter above the interval is capped at it. */
        schedule_init(&s, HOUR, 5 * HOUR);
        ASSERT_EQ(s.jitter_usec, HOUR);
}

TEST(backoff_doubles_up_to_the_interval_and_resets)
{
        Schedule s;
        static const uint64_t want[] = { 1 * MIN,  2 * MIN,   4 * MIN,   8 * MIN,  16 * MIN, 32 * MIN,
                                         64 * MIN, 128 * MIN, 256 * MIN, 6 * HOUR, 6 * HOUR };

        schedule_init(&s, 6 * HOUR, 30 * MIN);
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                ASSERT_EQ(schedule_after_check(&s, false, 999), want[i]);
                ASSERT_EQ(s.failures, i + 1);
        }
        /* A success resets: the next failure starts over at a minute. */
        ASSERT_EQ(schedule_after_check(&s, true, 0), 6 * HOUR);
        ASSERT_EQ(s.failures, 0);
        ASSERT_EQ(schedule_after_check(&s, false, 0), 1 * MIN);

        /* Many failures do not overflow. */
        s.failures = UINT32_MAX - 1;
        ASSERT_EQ(schedule_after_check(&s, false, 0), 6 * HOUR);
        ASSERT_EQ(schedule_after_check(&s, false, 0), 6 * HOUR);

        /* A short interval caps the first backoff too. */
        schedule_init(&s, 30 * USEC_PER_SEC, 0);
        ASSERT_EQ(schedule_after_check(&s, false, 0), 30 * USEC_PER_SEC);
}

TEST(window_plain)
{
        /* 02:00-04:00 */
        ASSERT_FALSE(window_contains(120, 240, 119));
        ASSERT_TRUE(window_contains(120, 240, 120));
        ASSERT_TRUE(window_contains(120, 240, 239));
        ASSERT_FALSE(window_contains(120, 240, 240));
        ASSERT_FALSE(window_contains(120, 240, 0));
        ASSERT_EQ(window_minutes_until_open(120, 240, 119), 1);
        ASSERT_EQ(window_minutes_until_open(120, 240, 130), 0);
        ASSERT_EQ(window_minutes_until_open(120, 240, 240), 22 * 60);
        ASSERT_EQ(window_minutes_until_open(120, 240, 0), 120);
        ASSERT_EQ(window_minutes_until_open(120, 240, 1439), 121);
}

TEST(window_wraps_midnight)
{
        /* 23:00-01:30 */
        ASSERT_TRUE(window_contains(1380, 90, 1380));
        ASSERT_TRUE(window_contains(1380, 90, 1439));
        ASSERT_TRUE(window_contains(1380, 90, 0));
        ASSERT_TRUE(window_contains(1380, 90, 89));
        ASSERT_FALSE(window_contains(1380, 90, 90));
        ASSERT_FALSE(window_contains(1380, 90, 1379));
        ASSERT_FALSE(window_contains(1380, 90, 720));
        ASSERT_EQ(window_minutes_until_open(1380, 90, 90), 1290);
        ASSERT_EQ(window_minutes_until_open(1380, 90, 1379), 1);
        ASSERT_EQ(window_minutes_until_open(1380, 90, 0), 0);
        /* Minutes beyond a day are taken modulo the day. */
        ASSERT_TRUE(window_contains(1380, 90, 1440 + 10));
}

static AutoInputs inputs(AutoInstall policy)
{
        return (AutoInputs){
                .policy = policy,
                .auto_update = true,
                .now_usec = 1000 * USEC_PER_SEC,
                .now_min = 600,
        };
}

TEST(decide_by_policy)
{
        AutoInputs in = inputs(AUTO_INSTALL_ALL);
        uint64_t retry = 77;

        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_INSTALL);
        ASSERT_EQ(retry, 0);
        in.policy = AUTO_INSTALL_NONE;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_HOLD_POLICY);
        ASSERT_EQ(retry, 0);

        /* security: only security and mixed bundles; unknown means no. */
        in.policy = AUTO_INSTALL_SECURITY;
        ASSERT_EQ(auto_decide(&in, NULL), AUTO_DECISION_HOLD_POLICY);
        in.has_security = true;
        in.security = SECURITY_TYPE_SECURITY;
        ASSERT_EQ(auto_decide(&in, NULL), AUTO_DECISION_INSTALL);
        in.security = SECURITY_TYPE_MIXED;
        ASSERT_EQ(auto_decide(&in, NULL), AUTO_DECISION_INSTALL);
        in.security = SECURITY_TYPE_FEATURE;
        ASSERT_EQ(auto_decide(&in, NULL), AUTO_DECISION_HOLD_POLICY);

        /* The owner's switch off is like none, whatever the policy. */
        in = inputs(AUTO_INSTALL_ALL);
        in.auto_update = false;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_HOLD_DISABLED);
        ASSERT_EQ(retry, 0);
        ASSERT_STREQ(auto_decision_to_string(AUTO_DECISION_HOLD_DISABLED),
                     "held: automatic updates are switched off");
        ASSERT_TRUE(auto_decision_to_string(_AUTO_DECISION_MAX) == NULL);
}

/* The version rolled back here, or an older one, is not installed by itself; a security update too. */
TEST(decide_rolled_back)
{
        AutoInputs in = inputs(AUTO_INSTALL_SECURITY);
        uint64_t retry = 77;

        in.has_security = true;
        in.security = SECURITY_TYPE_SECURITY;
        in.rolled_back = true;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_HOLD_ROLLED_BACK);
        ASSERT_EQ(retry, 0);
        ASSERT_STREQ(auto_decision_to_string(AUTO_DECISION_HOLD_ROLLED_BACK),
                     "held: it is not newer than the update that was rolled back here");
        in.rolled_back = false; /* a newer one */
        ASSERT_EQ(auto_decide(&in, NULL), AUTO_DECISION_INSTALL);
        /* the owner's switch and the policy are named first */
        in.rolled_back = true;
        in.auto_update = false;
        ASSERT_EQ(auto_decide(&in, NULL), AUTO_DECISION_HOLD_DISABLED);
}

TEST(decide_postpone)
{
        AutoInputs in = inputs(AUTO_INSTALL_ALL);
        uint64_t retry = 0;

        in.postpone_until = in.now_usec + 3600 * USEC_PER_SEC;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_HOLD_POSTPONED);
        ASSERT_EQ(retry, 3600 * USEC_PER_SEC);
        /* A postponement in the past is over. */
        in.postpone_until = in.now_usec - 1;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_INSTALL);
        in.postpone_until = in.now_usec;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_INSTALL);
        /* A policy hold is not reported as postponed. */
        in.policy = AUTO_INSTALL_NONE;
        in.postpone_until = in.now_usec + 10;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_HOLD_POLICY);
}

TEST(decide_window)
{
        AutoInputs in = inputs(AUTO_INSTALL_ALL);
        uint64_t retry = 0;

        in.has_window = true;
        in.window_start_min = 120; /* 02:00-04:00 */
        in.window_end_min = 240;
        in.now_min = 119; /* 01:59:30 */
        in.now_sec = 30;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_HOLD_WINDOW);
        ASSERT_EQ(retry, 30 * USEC_PER_SEC);
        in.now_min = 600; /* 10:00:00 */
        in.now_sec = 0;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_HOLD_WINDOW);
        ASSERT_EQ(retry, 16 * 3600 * USEC_PER_SEC);
        in.now_min = 150;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_INSTALL);
        ASSERT_EQ(retry, 0);
        /* Postponed and outside the window: postponed first (the window is asked again after it). */
        in.now_min = 600;
        in.postpone_until = in.now_usec + 60 * USEC_PER_SEC;
        ASSERT_EQ(auto_decide(&in, &retry), AUTO_DECISION_HOLD_POSTPONED);
        ASSERT_EQ(retry, 60 * USEC_PER_SEC);
}

TEST(local_time)
{
        AutoInputs in = {};

        setenv("TZ", "UTC", 1);
        tzset();
        auto_inputs_set_local_time(&in, 1764066645); /* 2025-11-25 10:30:45 UTC */
        ASSERT_EQ(in.now_min, 10 * 60 + 30);
        ASSERT_EQ(in.now_sec, 45);
}
