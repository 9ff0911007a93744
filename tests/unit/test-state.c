/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/stat.h>

#include "fileio.h"
#include "state.h"
#include "tests.h"

TEST(missing_state_gives_defaults)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ char *warning = NULL;

        ASSERT_EQ(state_load("data", &s, &warning), 0);
        ASSERT_TRUE(warning == NULL);
        ASSERT_FALSE(s->pending);
        ASSERT_TRUE(s->auto_update);
        ASSERT_TRUE(s->version_floor == NULL);
}

TEST(state_round_trips)
{
        _cleanup_(state_freep) UpkState *s = NULL, *t = NULL;
        _cleanup_free_ char *warning = NULL;
        UpkErr err = {};

        ASSERT_EQ(state_load("data", &s, NULL), 0);
        s->version_floor = strdup("1.2.0");
        ASSERT_OK(state_set_slot_version(s, "A", "1.0.0"));
        ASSERT_OK(state_set_slot_version(s, "B", "1.2.0"));
        ASSERT_OK(state_set_slot_version(s, "A", "1.1.0"));
        s->pending = true;
        s->pending_version = strdup("1.2.0");
        s->pending_slot = strdup("B");
        s->pending_from_slot = strdup("A");
        s->pending_since = 1234567;
        s->boot_attempts = 2;
        s->auto_update = false;
        s->last_check = 99;
        s->support_end = strdup("2031-01-01");
        ASSERT_OK_E(state_save("data/nested", s, &err), &err);

        ASSERT_EQ(state_load("data/nested", &t, &warning), 0);
        ASSERT_STREQ(t->version_floor, "1.2.0");
        ASSERT_STREQ(state_slot_version(t, "A"), "1.1.0");
        ASSERT_STREQ(state_slot_version(t, "B"), "1.2.0");
        ASSERT_TRUE(state_slot_version(t, "C") == NULL);
        ASSERT_TRUE(t->pending);
        ASSERT_STREQ(t->pending_version, "1.2.0");
        ASSERT_STREQ(t->pending_slot, "B");
        ASSERT_STREQ(t->pending_from_slot, "A");
        ASSERT_EQ(t->pending_since, 1234567);
        ASSERT_EQ(t->boot_attempts, 2);
        ASSERT_FALSE(t->auto_update);
        ASSERT_EQ(t->last_check, 99);
        ASSERT_STREQ(t->support_end, "2031-01-01");

        state_clear_pending(t);
        ASSERT_OK(state_save("data/nested", t, &err));
        state_free(TAKE_PTR(s));
        ASSERT_EQ(state_load("data/nested", &s, NULL), 0);
        ASSERT_FALSE(s->pending);
}

static void corrupt_case(const char *content)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ char *warning = NULL;

        mkdir("d", 0755);
        test_write_file("d/state.json", content, strlen(content));
        ASSERT_EQ(state_load("d", &s, &warning), 1);
        ASSERT_TRUE(warning && strstr(warning, "d/state.json: corrupt"));
        ASSERT_FALSE(s->pending);
        /* kept aside for a person, and the next write works */
        ASSERT_EQ(access("d/state.json.corrupt", F_OK), 0);
        ASSERT_EQ(access("d/state.json", F_OK), -1);
        ASSERT_OK(state_save("d", s, NULL));
        unlink("d/state.json.corrupt");
}

TEST(corrupt_state_is_recovered_from)
{
        corrupt_case("");
        corrupt_case("{");
        corrupt_case("[1,2]");
        corrupt_case("{\"version_floor\": 7}");
        corrupt_case("{\"version_floor\": \"not-a-version\"}");
        corrupt_case("{\"pending\": {\"slot\": \"B\"}}");
        corrupt_case("{\"slots\": {\"A\": 1}}");
        corrupt_case("{\"last_check\": -5}");
        corrupt_case("{} trailing");
        {
                /* a NUL inside */
                mkdir("d", 0755);
                test_write_file("d/state.json", "{}\0{}", 5);
                _cleanup_(state_freep) UpkState *s = NULL;
                _cleanup_free_ char *warning = NULL;
                ASSERT_EQ(state_load("d", &s, &warning), 1);
        }
}

TEST(oversized_state_is_recovered_from)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ char *warning = NULL, *big = malloc(STATE_FILE_SIZE_MAX + 10);

        memset(big, ' ', STATE_FILE_SIZE_MAX + 10);
        big[0] = '{';
        big[STATE_FILE_SIZE_MAX + 9] = '}';
        mkdir("d", 0755);
        test_write_file("d/state.json", big, STATE_FILE_SIZE_MAX + 10);
        ASSERT_EQ(state_load("d", &s, &warning), 1);
        ASSERT_TRUE(strstr(warning, "too large") || strstr(warning, "File too large"));
}

TEST(rollback_round_trips_and_is_cut)
{
        _cleanup_(state_freep) UpkState *s = NULL, *t = NULL;
        _cleanup_free_ char *warning = NULL, *long_reason = malloc(STATE_REASON_MAX + 2);
        UpkErr err = {};

        ASSERT_EQ(state_load("data", &s, NULL), 0);
        ASSERT_FALSE(s->rollback.set);
        /* 1022 ASCII bytes, then a 3-byte character across the limit: cut before it */
        ASSERT_TRUE(long_reason);
        memset(long_reason, 'r', STATE_REASON_MAX - 2);
        memcpy(long_reason + STATE_REASON_MAX - 2, "\xe2\x82\xac", 4);
        ASSERT_OK(state_set_rollback(s, "1.2.0", "A", long_reason, 77));
        ASSERT_EQ(strlen(s->rollback.reason), STATE_REASON_MAX - 2);
        ASSERT_OK(state_set_rollback(s, NULL, "B", "came back up on slot A", 78));
        s->rollback.acknowledged = true;
        ASSERT_OK_E(state_save("data", s, &err), &err);
        ASSERT_EQ(state_load("data", &t, &warning), 0);
        ASSERT_TRUE(warning == NULL);
        ASSERT_TRUE(t->rollback.set && t->rollback.acknowledged);
        ASSERT_TRUE(t->rollback.version == NULL);
        ASSERT_STREQ(t->rollback.slot, "B");
        ASSERT_STREQ(t->rollback.reason, "came back up on slot A");
        ASSERT_EQ(t->rollback.time, 78);
        state_clear_rollback(t);
        ASSERT_FALSE(t->rollback.set);
}

/* A damaged rollback record goes alone: the rest stays, the file as it was is kept, the warning once. */
TEST(damaged_rollback_record_is_dropped_alone)
{
        static const char *const cases[][2] = {
                { "[1]", "not an object" },
                { "{\"slot\":\"A\",\"reason\":\"x\",\"time\":-1}", "a field has the wrong type" },
                { "{\"slot\":\"\",\"reason\":\"x\"}", "its slot is missing or not a slot name" },
                { "{\"reason\":\"x\"}", "its slot is missing or not a slot name" },
                { "{\"slot\":\"A\",\"version\":\"v1\",\"reason\":\"x\"}", "its version is not a version" },
                { "{\"slot\":\"A\",\"version\":\"1.0.0\"}", "its reason is missing" },
        };

        ASSERT_OK(mkdir("data", 0755));
        for (size_t i = 0; i <= ELEMENTSOF(cases); i++) {
                _cleanup_(state_freep) UpkState *s = NULL, *again = NULL;
                _cleanup_free_ char *warning = NULL, *warning2 = NULL, *text = NULL, *kept = NULL,
                                    *reason = NULL, *want = NULL;
                size_t size;

                if (i < ELEMENTSOF(cases))
                        text = strdup_printf("{\"version_floor\":\"1.1.0\",\"auto_update\":false,"
                                             "\"rollback\":%s}",
                                             cases[i][0]);
                else {
                        reason = malloc(STATE_REASON_MAX + 2);
                        ASSERT_TRUE(reason);
                        memset(reason, 'r', STATE_REASON_MAX + 1);
                        reason[STATE_REASON_MAX + 1] = 0;
                        text = strdup_printf("{\"version_floor\":\"1.1.0\",\"auto_update\":false,"
                                             "\"rollback\":{\"slot\":\"A\",\"reason\":\"%s\"}}",
                                             reason);
                }
                ASSERT_TRUE(text);
                test_write_str("data/state.json", text);
                ASSERT_EQ(state_load("data", &s, &warning), 0);
                want = strdup_printf(
                        "data/state.json: the record of the rolled-back update is damaged (%s): "
                        "dropped, the rest of the state is kept (the file as it was is kept as "
                        "data/state.json.corrupt)",
                        i < ELEMENTSOF(cases) ? cases[i][1] : "its reason is longer than 1024 bytes");
                ASSERT_STREQ(warning, want);
                ASSERT_FALSE(s->rollback.set);
                ASSERT_STREQ(s->version_floor, "1.1.0");
                ASSERT_FALSE(s->auto_update);
                ASSERT_OK(read_full_file("data/state.json.corrupt", STATE_FILE_SIZE_MAX, &kept, &size));
                ASSERT_STREQ(kept, text);
                /* written back without it: the next load is clean */
                ASSERT_EQ(state_load("data", &again, &warning2), 0);
                ASSERT_TRUE(warning2 == NULL);
                ASSERT_STREQ(again->version_floor, "1.1.0");
        }
}

TEST(history_is_bounded_and_ordered)
{
        HistoryEntry *h = NULL;
        size_t n = 0;
        UpkErr err = {};

        for (unsigned i = 0; i < HISTORY_MAX + 7; i++) {
                char v[32];
                snprintf(v, sizeof(v), "1.0.%u", i);
                HistoryEntry e = {
                        .time = i,
                        .operation = (char *)"install",
                        .version = v,
                        .slot = (char *)"B",
                        .ok = i % 2,
                        .reason = i % 2 ? NULL : (char *)"payload \"rootfs\": sha256 mismatch",
                };
                ASSERT_OK_E(history_append("data", &e, &err), &err);
        }
        ASSERT_EQ(history_load("data", &h, &n, NULL), 0);
        ASSERT_EQ(n, HISTORY_MAX);
        ASSERT_EQ(h[0].time, 7);
        ASSERT_EQ(h[n - 1].time, HISTORY_MAX + 6);
        ASSERT_STREQ(h[n - 1].version, "1.0.106");
        ASSERT_TRUE(h[n - 1].reason && strstr(h[n - 1].reason, "sha256 mismatch"));
        ASSERT_TRUE(h[n - 2].reason == NULL);
        ASSERT_TRUE(h[n - 1].ok == false && h[n - 2].ok == true);
        history_free(h, n);
}

TEST(corrupt_history_starts_anew)
{
        HistoryEntry *h = NULL;
        size_t n = 7;
        _cleanup_free_ char *warning = NULL;
        HistoryEntry e = { .time = 1, .operation = (char *)"install", .ok = true };

        mkdir("data", 0755);
        test_write_file("data/history.json", "[{\"time\": \"x\"}]", 15);
        ASSERT_EQ(history_load("data", &h, &n, &warning), 1);
        ASSERT_EQ(n, 0);
        ASSERT_TRUE(warning && strstr(warning, "corrupt"));
        ASSERT_OK(history_append("data", &e, NULL));
        ASSERT_EQ(history_load("data", &h, &n, NULL), 0);
        ASSERT_EQ(n, 1);
        history_free(h, n);
}

TEST(atomic_write_leaves_no_temporary_files)
{
        _cleanup_free_ char *data = NULL;
        size_t size;

        mkdir("d", 0755);
        ASSERT_OK(write_file_atomic("d", "f", "one", 3, 0600));
        ASSERT_OK(write_file_atomic("d", "f", "second", 6, 0600));
        ASSERT_OK(read_full_file("d/f", 100, &data, &size));
        ASSERT_STREQ(data, "second");
        ASSERT_ERR(write_file_atomic("missing-dir", "f", "x", 1, 0600), -ENOENT);
        struct stat st;
        ASSERT_EQ(stat("d/f", &st), 0);
        ASSERT_EQ(st.st_mode & 0777, 0600);
}
