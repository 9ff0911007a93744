/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "support.h"
#include "tests.h"

/* A config as config_load would leave it, without a file: keyring in the current folder. */
static Config *make_config(const char *support_end)
{
        Config *c = calloc(1, sizeof(*c));

        ASSERT_TRUE(c);
        c->compatible = strdup("acme-gw");
        c->keyring = strdup("keyring.pem");
        c->support_end = support_end ? strdup(support_end) : NULL;
        c->source_type = SOURCE_NONE;
        c->auto_install = AUTO_INSTALL_ALL;
        test_write_file("keyring.pem", "x", 1);
        return c;
}

static int64_t day(const char *s)
{
        int64_t d = 0;
        ASSERT_OK(date_parse_days(s, &d));
        return d;
}

TEST(manifest_wins_over_config)
{
        _cleanup_(config_freep) Config *c = make_config("2028-01-01");
        UpkState s = { .auto_update = true, .support_end = (char *)"2030-06-30", .last_check = 42 };
        Capability cap = {};

        ASSERT_OK(support_capability(c, &s, NULL, 0, day("2030-06-20"), &cap));
        ASSERT_STREQ(cap.support_end, "2030-06-30");
        ASSERT_STREQ(support_source_to_string(cap.support_source), "manifest");
        ASSERT_TRUE(cap.has_days_left);
        ASSERT_EQ(cap.support_days_left, 10);
        ASSERT_TRUE(cap.can_receive_updates);
        ASSERT_STREQ(cap.update_mode, "automatic");
        ASSERT_STREQ(cap.update_source, "none");
        ASSERT_EQ(cap.last_check, 42);
        ASSERT_FALSE(cap.has_last_install);
        ASSERT_STREQ(cap.verification,
                     "bundles must carry a CMS signature chaining to the keyring keyring.pem; "
                     "every payload is checked against its SHA-256 before activation");
        ASSERT_TRUE(support_ended_message(&cap) == NULL);
        capability_done(&cap);
}

TEST(config_fallback_and_past_end)
{
        _cleanup_(config_freep) Config *c = make_config("2028-01-01");
        _cleanup_free_ char *msg = NULL;
        UpkState s = { .auto_update = true };
        Capability cap = {};

        ASSERT_OK(support_capability(c, &s, NULL, 0, day("2028-01-03"), &cap));
        ASSERT_STREQ(support_source_to_string(cap.support_source), "config");
        ASSERT_EQ(cap.support_days_left, -2);
        ASSERT_FALSE(cap.can_receive_updates);
        msg = support_ended_message(&cap);
        ASSERT_STREQ(msg, "security support for this device ended on 2028-01-01 (2 days ago): it no longer "
                          "receives security updates");
        capability_done(&cap);

        /* the last day itself is still supported */
        ASSERT_OK(support_capability(c, &s, NULL, 0, day("2028-01-01"), &cap));
        ASSERT_EQ(cap.support_days_left, 0);
        ASSERT_TRUE(cap.can_receive_updates);
        capability_done(&cap);
}

TEST(unknown_end_and_manual_mode)
{
        _cleanup_(config_freep) Config *c = make_config(NULL);
        UpkState s = { .auto_update = false };
        Capability cap = {};

        ASSERT_OK(support_capability(c, &s, NULL, 0, day("2030-01-01"), &cap));
        ASSERT_STREQ(cap.support_end, "");
        ASSERT_STREQ(support_source_to_string(cap.support_source), "unknown");
        ASSERT_FALSE(cap.has_days_left);
        ASSERT_TRUE(cap.can_receive_updates);
        ASSERT_STREQ(cap.update_mode, "manual");
        capability_done(&cap);

        s.auto_update = true;
        c->auto_install = AUTO_INSTALL_NONE;
        ASSERT_OK(support_capability(c, &s, NULL, 0, 0, &cap));
        ASSERT_STREQ(cap.update_mode, "manual");
        capability_done(&cap);
}

TEST(no_keyring_cannot_receive)
{
        _cleanup_(config_freep) Config *c = make_config("2040-01-01");
        UpkState s = { .auto_update = true };
        Capability cap = {};

        ASSERT_OK(unlink("keyring.pem"));
        ASSERT_OK(support_capability(c, &s, NULL, 0, day("2030-01-01"), &cap));
        ASSERT_FALSE(cap.keyring_present);
        ASSERT_FALSE(cap.can_receive_updates);
        capability_done(&cap);
}

TEST(last_install_is_the_newest_install_entry)
{
        _cleanup_(config_freep) Config *c = make_config(NULL);
        HistoryEntry h[] = {
                { .time = 10, .operation = (char *)"install", .version = (char *)"1.1.0", .ok = true },
                { .time = 20, .operation = (char *)"install", .version = NULL, .ok = false },
                { .time = 30, .operation = (char *)"confirm", .version = (char *)"1.1.0", .ok = true },
        };
        Capability cap = {};

        ASSERT_OK(support_capability(c, NULL, h, ELEMENTSOF(h), 0, &cap));
        ASSERT_TRUE(cap.has_last_install);
        ASSERT_EQ(cap.last_install_time, 20);
        ASSERT_STREQ(cap.last_install_version, "");
        ASSERT_FALSE(cap.last_install_ok);
        capability_done(&cap);

        ASSERT_OK(support_capability(c, NULL, h, 1, 0, &cap));
        ASSERT_STREQ(cap.last_install_version, "1.1.0");
        ASSERT_TRUE(cap.last_install_ok);
        capability_done(&cap);
}
