/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/fetch without a server: Content-Range parsing, option checks, a refused connection, and the
 * FetchStream cancel path. The transfers themselves are tested against tests/httpserver.py in
 * tests/integration/test_fetch.py. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "fetch-internal.h"
#include "fetch-ranges.h"
#include "fetch.h"
#include "tests.h"

/* The lists of request headers hold the hawkBit token: slist_erase() zeroes every node's string in place
 * (what slist_free_erase() does before it frees them); both take NULL. */
TEST(header_list_erased)
{
        static const char *const lines[] = { "Authorization: TargetToken s3cr3t", "Accept: */*",
                                             "If-Range: \"abc\"" };
        struct curl_slist *l = NULL;
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                struct curl_slist *t = curl_slist_append(l, lines[i]);

                ASSERT_TRUE(t);
                l = t;
        }
        slist_erase(l);
        for (struct curl_slist *i = l; i; i = i->next, n++) {
                size_t len = strlen(lines[n]);

                for (size_t k = 0; k < len; k++)
                        ASSERT_EQ(i->data[k], 0);
                ASSERT_EQ(i->data[len], 0);
        }
        ASSERT_EQ(n, ELEMENTSOF(lines));
        ASSERT_TRUE(slist_free_erase(l) == NULL);

        l = curl_slist_append(NULL, "Authorization: GatewayToken x");
        ASSERT_TRUE(l);
        ASSERT_TRUE(slist_free_erase(l) == NULL); /* a leak here shows under ASan */
        slist_erase(NULL);
        ASSERT_TRUE(slist_free_erase(NULL) == NULL);
}

TEST(content_range)
{
        static const struct {
                const char *s;
                int r;
                uint64_t start, end, total;
        } cases[] = {
                { "bytes 0-0/1", 0, 0, 0, 1 },
                { "bytes 100-199/200", 0, 100, 199, 200 },
                { "bytes 5-9/*", 0, 5, 9, UINT64_MAX },
                { "BYTES 1-2/3", 0, 1, 2, 3 },
                { "bytes 18446744073709551613-18446744073709551613/18446744073709551614", 0,
                  18446744073709551613u, 18446744073709551613u, 18446744073709551614u },
                { "bytes 0-99999999999999999999/1", -EINVAL, 0, 0, 0 },
                { "bytes 0-1/18446744073709551615", -EINVAL, 0, 0, 0 },
                { "bytes 0-1/18446744073709551616", -EINVAL, 0, 0, 0 },
                { "bytes 10-9/20", -EINVAL, 0, 0, 0 },
                { "bytes 0-20/20", -EINVAL, 0, 0, 0 },
                { "bytes */20", -EINVAL, 0, 0, 0 },
                { "bytes 1-2/3 ", -EINVAL, 0, 0, 0 },
                { "bytes -1-2/3", -EINVAL, 0, 0, 0 },
                { "bytes 1-/3", -EINVAL, 0, 0, 0 },
                { "bytes 1-2", -EINVAL, 0, 0, 0 },
                { "items 1-2/3", -EINVAL, 0, 0, 0 },
                { "", -EINVAL, 0, 0, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t s = 7, e = 7, t = 7;
                int r = fetch_parse_content_range(cases[i].s, &s, &e, &t);

                if (r != cases[i].r)
                        test_fail("\"%s\": %d, expected %d", cases[i].s, r, cases[i].r);
                if (r == 0) {
                        ASSERT_EQ(s, cases[i].start);
                        ASSERT_EQ(e, cases[i].end);
                        ASSERT_TRUE(t == cases[i].total);
                } else
                        ASSERT_TRUE(s == 7 && e == 7 && t == 7);
        }
}

static int no_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        return FETCH_DATA_CONTINUE;
}

TEST(bad_options)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(fetch_engine_freep) FetchEngine *e = NULL;
        _cleanup_free_ char *long_url = NULL;
        FetchOptions o = { 0 };
        UpkErr err = { 0 };
        Fetch *f = NULL;

        ASSERT_OK(sd_event_new(&event));
        ASSERT_OK_E(fetch_engine_new(event, &e, &err), &err);

        ASSERT_UPK_ERR(fetch_new(e, "ftp://example.com/x", 10, NULL, no_data, NULL, NULL, &f, &err), &err,
                       -EPROTONOSUPPORT, UPK_ERR_CONFIG, "only http:// and https://");
        upk_err_clear(&err);
        ASSERT_UPK_ERR(fetch_new(e, "http://exa mple.com/", 10, NULL, no_data, NULL, NULL, &f, &err), &err,
                       -EINVAL, UPK_ERR_CONFIG, "space or control character at offset 10");
        upk_err_clear(&err);
        ASSERT_UPK_ERR(fetch_new(e, "http://example.com/", 0, NULL, no_data, NULL, NULL, &f, &err), &err,
                       -EINVAL, UPK_ERR_CONFIG, "no maximum length");
        upk_err_clear(&err);
        long_url = malloc(FETCH_URL_MAX + 2);
        ASSERT_TRUE(long_url);
        memcpy(long_url, "http://", 7);
        memset(long_url + 7, 'a', FETCH_URL_MAX - 6);
        long_url[FETCH_URL_MAX + 1] = 0;
        ASSERT_UPK_ERR(fetch_new(e, long_url, 10, NULL, no_data, NULL, NULL, &f, &err), &err, -ENAMETOOLONG,
                       UPK_ERR_CONFIG, "URL longer than");
        upk_err_clear(&err);
        o.ca_file = "missing-ca.pem";
        ASSERT_UPK_ERR(fetch_new(e, "https://example.com/", 10, &o, no_data, NULL, NULL, &f, &err), &err,
                       -ENOENT, UPK_ERR_CONFIG, "CA file missing-ca.pem");
        upk_err_clear(&err);
        o = (FetchOptions){ .client_cert = "c.pem" };
        ASSERT_UPK_ERR(fetch_new(e, "https://example.com/", 10, &o, no_data, NULL, NULL, &f, &err), &err,
                       -EINVAL, UPK_ERR_CONFIG, "needs its key");
        upk_err_clear(&err);
        ASSERT_UPK_ERR(
                fetch_to_memory("http://example.com/", FETCH_MEMORY_MAX + 1ull, NULL, NULL, NULL, &err),
                &err, -EINVAL, UPK_ERR_CONFIG, "maximum length");
        ASSERT_TRUE(f == NULL);
}

/* A port on 127.0.0.1 nobody listens on. */
static unsigned closed_port(void)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
        ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
        return ntohs(a.sin_port);
}

TEST(connection_refused_to_memory)
{
        FetchOptions o = { .retries = 2, .backoff_msec = 10 };
        _cleanup_free_ char *url = strdup_printf("http://127.0.0.1:%u/x", closed_port());
        char *buf = (char *)"untouched";
        size_t size = 77;
        UpkErr err = { 0 };

        ASSERT_UPK_ERR(fetch_to_memory(url, 100, &o, &buf, &size, &err), &err, -ECONNREFUSED,
                       UPK_ERR_NETWORK, "gave up after 3 attempts");
        ASSERT_STREQ(buf, "untouched");
        ASSERT_EQ(size, 77);
}

typedef struct Reader {
        FetchStream *s;
        ssize_t r;
        UpkErr err;
} Reader;

static void *reader(void *userdata)
{
        Reader *rd = userdata;
        char buf[16];

        rd->r = fetch_stream_read(rd->s, buf, sizeof(buf));
        fetch_stream_get_error(rd->s, &rd->err);
        return NULL;
}

static int on_cancel_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
        fetch_stream_cancel(userdata);
        return 0;
}

static int on_poll(sd_event_source *src, uint64_t usec, void *userdata)
{
        FetchStream *s = userdata;
        int r;

        if (fetch_stream_is_finished(s))
                return sd_event_exit(sd_event_source_get_event(src), 0);
        r = sd_event_source_set_time_relative(src, 1000);
        if (r >= 0)
                r = sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        return r;
}

TEST(stream_cancel_wakes_reader)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(fetch_engine_freep) FetchEngine *e = NULL;
        _cleanup_(fetch_stream_freep) FetchStream *s = NULL;
        /* Refused connections retried after 10 s: the stream just waits until cancelled. */
        FetchOptions o = { .retries = 5, .backoff_msec = 10000 };
        _cleanup_free_ char *url = strdup_printf("http://127.0.0.1:%u/x", closed_port());
        Reader rd = { 0 };
        UpkErr err = { 0 };
        pthread_t t;

        ASSERT_OK(sd_event_new(&event));
        ASSERT_OK_E(fetch_engine_new(event, &e, &err), &err);
        ASSERT_UPK_ERR(fetch_stream_new(e, url, 100, &o, 1000, &s, &err), &err, -EINVAL, UPK_ERR_CONFIG,
                       "stream buffer of 1000 bytes");
        upk_err_clear(&err);
        ASSERT_OK_E(fetch_stream_new(e, url, 100, &o, 0, &s, &err), &err);
        rd.s = s;
        ASSERT_EQ(pthread_create(&t, NULL, reader, &rd), 0);
        ASSERT_OK(
                sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, 200 * 1000, 1, on_cancel_timer, s));
        ASSERT_OK(sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, 1000, 1, on_poll, s));
        ASSERT_OK(sd_event_loop(event));
        ASSERT_EQ(pthread_join(t, NULL), 0);
        ASSERT_EQ(rd.r, -ECANCELED);
        ASSERT_EQ(rd.err.code, -ECANCELED);
        ASSERT_TRUE(fetch_stream_get_fetch(s) == NULL);
        ASSERT_EQ(fetch_stream_read(s, &rd, 1), -ECANCELED);
}

/* proxy = none ("" here) turns off a proxy named by the environment: the transfer goes to the server
 * itself (refused at its port), not to the environment's proxy (refused at another port). */
TEST(empty_proxy_ignores_the_environment)
{
        unsigned server = closed_port(), proxy = closed_port();
        _cleanup_free_ char *url = NULL, *env = NULL, *at_server = NULL, *at_proxy = NULL;
        FetchOptions o = { .retries = 1, .backoff_msec = 10 };
        char *buf = NULL;
        size_t size = 0;
        UpkErr err = { 0 };

        while (proxy == server)
                proxy = closed_port();
        url = strdup_printf("http://127.0.0.1:%u/x", server);
        env = strdup_printf("http://127.0.0.1:%u", proxy);
        at_server = strdup_printf("port %u", server);
        at_proxy = strdup_printf("port %u", proxy);
        ASSERT_OK(setenv("http_proxy", env, 1));
        ASSERT_TRUE(fetch_to_memory(url, 100, &o, &buf, &size, &err) < 0);
        ASSERT_TRUE(strstr(err.msg, at_proxy)); /* the environment's proxy is used without the option */
        err = (UpkErr){ 0 };
        o.proxy = "";
        ASSERT_TRUE(fetch_to_memory(url, 100, &o, &buf, &size, &err) < 0);
        ASSERT_TRUE(strstr(err.msg, at_server));
        ASSERT_FALSE(strstr(err.msg, at_proxy));
        ASSERT_OK(unsetenv("http_proxy"));
}

TEST(bad_ranges)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(fetch_engine_freep) FetchEngine *e = NULL;
        static const struct {
                const char *name;
                FetchRange r[2];
                size_t n;
                uint64_t total;
                const char *msg;
        } cases[] = {
                { "none", { { 0, 1 } }, 0, 10, "0 ranges to fetch" },
                { "empty", { { 0, 0 } }, 1, 10, "range 0 (0 bytes at 0) is empty" },
                { "beyond", { { 5, 6 } }, 1, 10, "range 0 (6 bytes at 5)" },
                { "overflow", { { 5, UINT64_MAX } }, 1, 10, "range 0" },
                { "overlap", { { 0, 5 }, { 4, 1 } }, 2, 10, "range 1 (1 bytes at 4)" },
                { "unsorted", { { 5, 1 }, { 0, 1 } }, 2, 10, "not after the one before" },
                { "no total", { { 0, 1 } }, 1, 0, "file size 0" },
        };
        FetchOptions rest = { .method = "POST" };
        FetchStream *s = NULL;
        void *buf = NULL;
        UpkErr err = { 0 };

        ASSERT_OK(sd_event_new(&event));
        ASSERT_OK_E(fetch_engine_new(event, &e, &err), &err);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r;

                upk_err_clear(&err);
                r = fetch_stream_new_ranges(e, "http://example.com/x", cases[i].total, NULL, cases[i].r,
                                            cases[i].n, NULL, 0, &s, &err);
                if (r != -EINVAL || err.kind != UPK_ERR_CONFIG || !strstr(err.msg, cases[i].msg))
                        test_fail("%s: %d \"%s\"", cases[i].name, r, err.msg);
        }
        upk_err_clear(&err);
        ASSERT_UPK_ERR(fetch_stream_new_ranges(e, "ftp://example.com/x", 10, NULL, cases[1].r + 0, 0, NULL,
                                               0, &s, &err),
                       &err, -EINVAL, UPK_ERR_CONFIG, "0 ranges");
        upk_err_clear(&err);
        ASSERT_UPK_ERR(fetch_stream_new_ranges(e, "ftp://example.com/x", 10, NULL, cases[2].r, 1, NULL, 0,
                                               &s, &err),
                       &err, -EINVAL, UPK_ERR_CONFIG, "beyond the file");
        upk_err_clear(&err);
        ASSERT_UPK_ERR(fetch_stream_new_ranges(e, "ftp://example.com/x", 100, NULL, cases[2].r, 1, NULL, 0,
                                               &s, &err),
                       &err, -EPROTONOSUPPORT, UPK_ERR_CONFIG, "only http:// and https://");
        upk_err_clear(&err);
        ASSERT_UPK_ERR(fetch_stream_new_ranges(e, "http://example.com/x", 100, NULL, cases[2].r, 1, &rest, 0,
                                               &s, &err),
                       &err, -EINVAL, UPK_ERR_CONFIG, "not as a REST call");
        upk_err_clear(&err);
        ASSERT_UPK_ERR(fetch_stream_new_ranges(e, "http://example.com/x", 100, NULL, cases[2].r, 1, NULL,
                                               1000, &s, &err),
                       &err, -EINVAL, UPK_ERR_CONFIG, "stream buffer");
        upk_err_clear(&err);
        ASSERT_UPK_ERR(fetch_range_to_memory("http://example.com/x", 0, FETCH_MEMORY_MAX + 1ull, NULL, &buf,
                                             NULL, NULL, NULL, NULL, &err),
                       &err, -EINVAL, UPK_ERR_CONFIG, "not 1 to");
        upk_err_clear(&err);
        ASSERT_UPK_ERR(fetch_range_to_memory("http://example.com/x", UINT64_MAX - 5, 10, NULL, &buf, NULL,
                                             NULL, NULL, NULL, &err),
                       &err, -EINVAL, UPK_ERR_CONFIG, "not 1 to");
        ASSERT_TRUE(s == NULL && buf == NULL);
}

TEST(range_connection_refused)
{
        FetchOptions o = { .retries = 2, .backoff_msec = 10 };
        _cleanup_free_ char *url = strdup_printf("http://127.0.0.1:%u/x", closed_port());
        FetchRangesStats st = { 0 };
        void *buf = NULL;
        UpkErr err = { 0 };

        ASSERT_UPK_ERR(fetch_range_to_memory(url, 10, 10, &o, &buf, NULL, NULL, NULL, &st, &err), &err,
                       -ECONNREFUSED, UPK_ERR_NETWORK, "gave up after 3 attempts");
        ASSERT_EQ(st.requests, 3);
        ASSERT_EQ(st.retries, 2);
        ASSERT_EQ(st.delivered, 0);
        ASSERT_TRUE(buf == NULL);
}
