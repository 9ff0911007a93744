/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "hawkbit-ddi.h"
#include "tests.h"

#define S(x) x, strlen(x)

TEST(poll_links_and_sleep)
{
        DdiPoll p = {};
        UpkErr e = {};

        ASSERT_OK_E(
                ddi_parse_poll(S("{\"config\":{\"polling\":{\"sleep\":\"00:05:30\"}},\"_links\":{"
                                 "\"deploymentBase\":{\"href\":\"http://h/t/controller/v1/d/deploymentBase/"
                                 "5?c=1\"},"
                                 "\"configData\":{\"href\":\"http://h/c\"},\"unknown\":{\"href\":\"x\"}},"
                                 "\"extra\":1}"),
                               &p, &e),
                &e);
        ASSERT_EQ(p.sleep_sec, 330u);
        ASSERT_STREQ(p.deployment_href, "http://h/t/controller/v1/d/deploymentBase/5?c=1");
        ASSERT_STREQ(p.config_data_href, "http://h/c");
        ASSERT_TRUE(!p.cancel_href && !p.confirmation_href && !p.installed_href);
        ddi_poll_done(&p);

        /* A malformed or missing sleep is no error (the configured interval applies); no links neither. */
        ASSERT_OK_E(ddi_parse_poll(S("{\"config\":{\"polling\":{\"sleep\":\"5 minutes\"}}}"), &p, &e), &e);
        ASSERT_EQ(p.sleep_sec, 0u);
        ddi_poll_done(&p);
        ASSERT_OK_E(ddi_parse_poll(S("{\"config\":7}"), &p, &e), &e);
        ddi_poll_done(&p);
}

TEST(poll_refusals)
{
        DdiPoll p = {};
        UpkErr e = {};

        ASSERT_UPK_ERR(ddi_parse_poll(S("{\"config\":"), &p, &e), &e, -EBADMSG, UPK_ERR_NETWORK,
                       "poll answer");
        ASSERT_UPK_ERR(ddi_parse_poll("", 0, &p, &e), &e, -EBADMSG, UPK_ERR_NETWORK, "empty answer");
        ASSERT_UPK_ERR(ddi_parse_poll(S("{\"_links\":{\"deploymentBase\":\"x\"}}"), &p, &e), &e, -EBADMSG,
                       UPK_ERR_NETWORK, "_links.deploymentBase");
        ASSERT_UPK_ERR(ddi_parse_poll(S("{\"_links\":{\"cancelAction\":{}}}"), &p, &e), &e, -EBADMSG,
                       UPK_ERR_NETWORK, "_links.cancelAction");
        char *big = malloc(DDI_RESPONSE_MAX + 2);
        ASSERT_TRUE(big);
        memset(big, ' ', DDI_RESPONSE_MAX + 1);
        big[0] = '{';
        big[DDI_RESPONSE_MAX] = '}';
        ASSERT_UPK_ERR(ddi_parse_poll(big, DDI_RESPONSE_MAX + 1, &p, &e), &e, -EBADMSG, UPK_ERR_NETWORK,
                       "more than");
        free(big);
}

TEST(sleep_values)
{
        uint64_t v;

        ASSERT_OK(ddi_parse_sleep("00:00:30", &v));
        ASSERT_EQ(v, 30u);
        ASSERT_OK(ddi_parse_sleep("23:59:59", &v));
        ASSERT_EQ(v, 86399u);
        ASSERT_ERR(ddi_parse_sleep("24:00:00", &v), -EINVAL);
        ASSERT_ERR(ddi_parse_sleep("00:60:00", &v), -EINVAL);
        ASSERT_ERR(ddi_parse_sleep("0:05:00", &v), -EINVAL);
        ASSERT_ERR(ddi_parse_sleep("00:05:00~10%", &v), -EINVAL);
        ASSERT_ERR(ddi_parse_sleep(NULL, &v), -EINVAL);
}

static const char deployment[] =
        "{\"id\":\"8\",\"deployment\":{\"download\":\"forced\",\"update\":\"attempt\","
        "\"maintenanceWindow\":\"unavailable\",\"chunks\":["
        "{\"part\":\"os\",\"version\":\"1.1.0\",\"name\":\"fw\",\"artifacts\":["
        "{\"filename\":\"b.upk\",\"hashes\":{\"sha1\":\"x\",\"sha256\":"
        "\"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\"},\"size\":13,"
        "\"_links\":{\"download-http\":{\"href\":\"http://h/b.upk\"},\"download\":{\"href\":\"https://h/"
        "b.upk\"}}}]},"
        "{\"part\":\"app\",\"artifacts\":[{\"filename\":\"notes.txt\",\"_links\":{\"download-http\":{"
        "\"href\":\"http://h/n\"}}},"
        "{\"filename\":\"nolink.bin\",\"size\":1}]},{\"part\":\"empty\"}]}}";

TEST(deployment_every_chunk_and_artifact)
{
        DdiDeployment d = {};
        UpkErr e = {};

        ASSERT_OK_E(ddi_parse_deployment(S(deployment), "deployment", &d, &e), &e);
        ASSERT_STREQ(d.id, "8");
        ASSERT_EQ(d.download, DDI_FORCED);
        ASSERT_EQ(d.update, DDI_ATTEMPT);
        ASSERT_EQ(d.window, DDI_WINDOW_UNAVAILABLE);
        ASSERT_EQ(d.n_artifacts, 3u);
        ASSERT_STREQ(d.artifacts[0].filename, "b.upk");
        ASSERT_STREQ(d.artifacts[0].chunk_version, "1.1.0");
        ASSERT_STREQ(d.artifacts[0].sha256,
                     "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
        ASSERT_STREQ(d.artifacts[0].href, "https://h/b.upk"); /* "download" before "download-http" */
        ASSERT_TRUE(d.artifacts[0].has_size && d.artifacts[0].size == 13);
        ASSERT_STREQ(d.artifacts[1].href, "http://h/n");
        ASSERT_TRUE(!d.artifacts[1].sha256 && !d.artifacts[1].has_size);
        ASSERT_TRUE(d.artifacts[2].href == NULL);
        ddi_deployment_done(&d);
        /* The confirmation resource has the same object under another key. */
        ASSERT_UPK_ERR(ddi_parse_deployment(S(deployment), "confirmation", &d, &e), &e, -EBADMSG,
                       UPK_ERR_NETWORK, "confirmation");
}

TEST(deployment_refusals)
{
        static const struct {
                const char *doc, *msg;
        } cases[] = {
                { "{\"deployment\":{}}", "id" },
                { "{\"id\":8,\"deployment\":{}}", "id" },
                { "{\"id\":\"8\",\"deployment\":{\"download\":\"maybe\",\"update\":\"forced\",\"chunks\":[]}"
                  "}",
                  "is not skip, attempt or forced" },
                { "{\"id\":\"8\",\"deployment\":{\"download\":\"forced\",\"update\":\"forced\","
                  "\"maintenanceWindow\":\"open\",\"chunks\":[]}}",
                  "maintenanceWindow" },
                { "{\"id\":\"8\",\"deployment\":{\"download\":\"forced\",\"update\":\"forced\",\"chunks\":["
                  "1]}}",
                  "chunks[0]" },
                { "{\"id\":\"8\",\"deployment\":{\"download\":\"forced\",\"update\":\"forced\",\"chunks\":"
                  "[{\"artifacts\":[{\"filename\":\"../x\"}]}]}}",
                  "not a file name" },
                { "{\"id\":\"8\",\"deployment\":{\"download\":\"forced\",\"update\":\"forced\",\"chunks\":"
                  "[{\"artifacts\":[{\"filename\":\"a\",\"hashes\":{\"sha256\":\"12\"}}]}]}}",
                  "not a SHA-256" },
                { "{\"id\":\"8\",\"deployment\":{\"download\":\"forced\",\"update\":\"forced\",\"chunks\":"
                  "[{\"artifacts\":[{\"filename\":\"a\",\"size\":-1}]}]}}",
                  "size" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                DdiDeployment d = {};
                UpkErr e = {};

                ASSERT_UPK_ERR(ddi_parse_deployment(S(cases[i].doc), "deployment", &d, &e), &e, -EBADMSG,
                               UPK_ERR_NETWORK, cases[i].msg);
                ASSERT_TRUE(d.id == NULL && d.n_artifacts == 0);
        }
}

TEST(cancel_order)
{
        char *stop = NULL;
        UpkErr e = {};

        ASSERT_OK_E(ddi_parse_cancel(S("{\"id\":\"11\",\"cancelAction\":{\"stopId\":\"11\"}}"), &stop, &e),
                    &e);
        ASSERT_STREQ(stop, "11");
        free(stop);
        stop = NULL;
        ASSERT_UPK_ERR(ddi_parse_cancel(S("{\"id\":\"11\",\"cancelAction\":{}}"), &stop, &e), &e, -EBADMSG,
                       UPK_ERR_NETWORK, "stopId");
        ASSERT_TRUE(stop == NULL);
}

TEST(feedback_is_escaped_and_bounded)
{
        const char *details[DDI_DETAILS_MAX + 3] = { "a \"quoted\"\nline\\", NULL };
        json_object *o, *status, *v;
        char *s;

        s = ddi_feedback_json("8", "proceeding", "none", 3, 10, details);
        ASSERT_TRUE(s);
        o = json_tokener_parse(s);
        ASSERT_TRUE(o);
        ASSERT_TRUE(json_object_object_get_ex(o, "id", &v));
        ASSERT_STREQ(json_object_get_string(v), "8");
        ASSERT_FALSE(json_object_object_get_ex(o, "timestamp", &v));
        ASSERT_TRUE(json_object_object_get_ex(o, "status", &status));
        ASSERT_TRUE(json_object_object_get_ex(status, "details", &v));
        ASSERT_STREQ(json_object_get_string(json_object_array_get_idx(v, 0)), "a \"quoted\" line\\");
        ASSERT_TRUE(strstr(s, "\"progress\":{\"cnt\":3,\"of\":10}"));
        json_object_put(o);
        free(s);

        for (size_t i = 0; i < DDI_DETAILS_MAX + 2; i++)
                details[i] = "x";
        s = ddi_feedback_json("8", "closed", "success", 0, 0, details);
        o = json_tokener_parse(s);
        ASSERT_TRUE(json_object_object_get_ex(o, "status", &status));
        ASSERT_TRUE(json_object_object_get_ex(status, "details", &v));
        ASSERT_EQ(json_object_array_length(v), (size_t)DDI_DETAILS_MAX);
        ASSERT_FALSE(strstr(s, "progress"));
        json_object_put(o);
        free(s);
}

TEST(config_data_leaves_out_what_hawkbit_refuses)
{
        char long_value[DDI_ATTRIBUTE_MAX + 2];
        memset(long_value, 'v', sizeof(long_value) - 1);
        long_value[sizeof(long_value) - 1] = 0;
        const char *pairs[] = { "compatible", "acme-gw",   "bad\tkey", "x",     "long", long_value,
                                "",           "empty key", "version",  "1.1.0", NULL };
        char *s = ddi_config_data_json(pairs);

        ASSERT_STREQ(s, "{\"data\":{\"compatible\":\"acme-gw\",\"version\":\"1.1.0\"},\"mode\":\"merge\"}");
        free(s);
}
