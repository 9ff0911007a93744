/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* upkeep-fetch: drives lib/fetch from the command line for the integration tests and the benchmark.
 *
 *   upkeep-fetch URL OUT [--max-length N] [--ca F] [--client-cert F --client-key F] [--proxy P]
 *                [--retries N] [--no-retry] [--backoff-ms N] [--connect-timeout S]
 *                [--low-speed-time S] [--low-speed-limit B] [--slow-consumer] [--stream]
 *                [--stream-copy] [--stream-buffer N] [--check-sha256 HEX [--check-fail-after N]]
 *                [--memory] [--ranges A-B,C-D,... --total N [--validator ETAG]] [--range-memory OFF,LEN]
 *
 * Default mode: a Fetch on an sd_event loop writes the body to OUT from its data callback.
 * --slow-consumer: the consumer pauses delivery after each block and resumes it 2 ms later (half the
 *   time by returning FETCH_DATA_PAUSE, half by calling fetch_pause() after consuming).
 * --stream: through a FetchStream and a reader thread calling fetch_stream_next() (in place), as the
 *   installer does; --stream-copy: fetch_stream_read() into a 1 MiB buffer instead. With
 *   --slow-consumer the reader sleeps 2 ms per block.
 * --check-sha256 HEX (with a stream): the stream's check hashes the body as it arrives and fails the
 *   stream at the end unless its SHA-256 is HEX ("check: ..." messages). --check-fail-after N: it fails
 *   once it has seen N bytes or more.
 * --memory: fetch_to_memory() (no loop of our own), then write OUT.
 * --ranges A-B,C-D,...: the byte ranges A to B, C to D ... (inclusive positions, as in HTTP's Range) of a
 *   file of --total N bytes through fetch_stream_new_ranges() and a reader thread as with --stream (the
 *   same --stream-copy, --stream-buffer, --slow-consumer and --check-sha256), their bytes one after the
 *   other into OUT; --validator ETAG is sent as If-Range. --cancel-after N: the reader cancels the stream
 *   once it has read N bytes or more.
 * --range-memory OFF,LEN: fetch_range_to_memory() for LEN bytes at OFF, then write OUT; with --up-to-end,
 *   a file that ends inside them gives its bytes up to its end.
 *
 * Prints one JSON line on stdout: {"ok":..., "bytes":..., "received":..., "attempts":..., "retries":...,
 * "resumed_from":[...], "ignored_ranges":..., "http_status":..., "pauses":..., "total":..., and on failure
 * "error",
 * "code", "kind"}; with --ranges and --range-memory {"ok":..., "bytes":..., "requests":..., "retries":...,
 * "wire_bytes":..., "delivered":..., "multipart":..., "single_range":..., and "total", "etag" for
 * --range-memory}. Exit status 0 on success, 1 on a failed fetch, 2 on bad usage. */

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#include <openssl/evp.h>

#include "fetch-ranges.h"
#include "fetch.h"
#include "fileio.h"
#include "hexdecoct.h"

#define SLOW_DELAY_USEC 2000u
#define READ_BLOCK      (1024u * 1024u) /* as the bundle reader */
#define TOOL_RANGES_MAX 100000

typedef struct Tool {
        sd_event *event;
        Fetch *fetch;
        int out_fd;
        bool slow;
        bool pause_by_return; /* alternates */
        sd_event_source *resume_timer;
        int r;
        UpkErr err;
        /* stream mode */
        FetchStream *stream;
        int done_fd;
        bool copy;
        uint64_t read_bytes;
        int read_r;
        UpkErr read_err;
        /* --check-sha256 */
        EVP_MD_CTX *md;
        const char *want_sha256;
        uint64_t checked;
        uint64_t check_fail_after; /* 0: never */
        uint64_t cancel_after;     /* 0: never */
} Tool;

static int check_sha256(const void *data, size_t size, void *userdata, UpkErr *err)
{
        Tool *t = userdata;
        uint8_t digest[32];
        char hex[65];
        unsigned n = 0;

        if (data) {
                t->checked += size;
                if (t->check_fail_after && t->checked >= t->check_fail_after)
                        return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                                       "check: refused after %" PRIu64 " bytes", t->checked);
                if (EVP_DigestUpdate(t->md, data, size) != 1)
                        return upk_err(err, UPK_ERR_IO, -EIO, "check: SHA-256 update failed");
                return 0;
        }
        if (EVP_DigestFinal_ex(t->md, digest, &n) != 1 || n != 32)
                return upk_err(err, UPK_ERR_IO, -EIO, "check: SHA-256 finalisation failed");
        hex_encode(digest, 32, hex);
        if (strcmp(hex, t->want_sha256) != 0)
                return upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                               "check: sha256 mismatch after %" PRIu64 " bytes (got %s)", t->checked, hex);
        return 0;
}

static int on_resume(sd_event_source *s, uint64_t usec, void *userdata)
{
        Tool *t = userdata;

        t->resume_timer = sd_event_source_disable_unref(t->resume_timer);
        fetch_resume(t->fetch);
        return 0;
}

static int schedule_resume(Tool *t)
{
        return sd_event_add_time_relative(t->event, &t->resume_timer, CLOCK_MONOTONIC, SLOW_DELAY_USEC, 1,
                                          on_resume, t);
}

static int on_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        Tool *t = userdata;
        int r;

        if (t->slow && !t->resume_timer) {
                t->pause_by_return = !t->pause_by_return;
                if (t->pause_by_return) {
                        r = schedule_resume(t);
                        if (r < 0)
                                return upk_err(err, UPK_ERR_IO, r, "timer: %s", strerror(-r));
                        return FETCH_DATA_PAUSE;
                }
        }
        r = loop_write(t->out_fd, buf, size);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "writing at byte %" PRIu64 ": %s", offset, strerror(-r));
        if (t->slow && !t->resume_timer) {
                fetch_pause(f);
                r = schedule_resume(t);
                if (r < 0)
                        return upk_err(err, UPK_ERR_IO, r, "timer: %s", strerror(-r));
        }
        return FETCH_DATA_CONTINUE;
}

static void on_done(Fetch *f, int r, const UpkErr *err, void *userdata)
{
        Tool *t = userdata;

        t->r = r;
        if (r < 0 && err)
                t->err = *err;
        t->resume_timer = sd_event_source_disable_unref(t->resume_timer);
        sd_event_exit(t->event, 0);
}

static void *reader_thread(void *userdata)
{
        Tool *t = userdata;
        const uint64_t one = 1;
        _cleanup_free_ uint8_t *buf = malloc(READ_BLOCK);
        const void *p;
        ssize_t n;

        if (!buf) {
                t->read_r = upk_err(&t->read_err, UPK_ERR_IO, -ENOMEM, "out of memory");
                goto out;
        }
        for (;;) {
                if (t->copy) {
                        n = fetch_stream_read(t->stream, buf, READ_BLOCK);
                        p = buf;
                } else
                        n = fetch_stream_next(t->stream, &p);
                if (n == 0)
                        break;
                if (n < 0) {
                        t->read_r = (int)n;
                        fetch_stream_get_error(t->stream, &t->read_err);
                        break;
                }
                t->read_bytes += (uint64_t)n;
                if (t->cancel_after && t->read_bytes >= t->cancel_after)
                        fetch_stream_cancel(t->stream);
                if (loop_write(t->out_fd, p, (size_t)n) < 0) {
                        t->read_r = upk_err(&t->read_err, UPK_ERR_IO, -errno, "write: %s", strerror(errno));
                        fetch_stream_cancel(t->stream);
                        break;
                }
                if (t->slow) {
                        struct timespec ts = { 0, SLOW_DELAY_USEC * 1000 };

                        nanosleep(&ts, NULL);
                }
        }
out:
        if (write(t->done_fd, &one, sizeof(one)) < 0)
                abort();
        return NULL;
}

static int on_reader_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        Tool *t = userdata;

        sd_event_exit(t->event, 0);
        return 0;
}

static void print_string(const char *s)
{
        putchar('"');
        for (const char *p = s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        printf("\\%c", *p);
                else if ((unsigned char)*p < 0x20)
                        printf("\\u%04x", (unsigned char)*p);
                else
                        putchar(*p);
        }
        putchar('"');
}

static void print_error_end(int r, const UpkErr *err)
{
        if (r < 0) {
                printf(", \"code\": %d, \"kind\": \"%s\", \"error\": ", r,
                       upk_err_kind_to_string(err->kind) ?: "?");
                print_string(err->msg);
        }
        printf("}\n");
        fflush(stdout);
}

static void print_ranges_summary(const FetchRangesStats *st, uint64_t bytes, int r, const UpkErr *err)
{
        printf("{\"ok\": %s, \"bytes\": %" PRIu64
               ", \"requests\": %u, \"retries\": %u, \"wire_bytes\": %" PRIu64 ", \"delivered\": %" PRIu64
               ", \"multipart\": %s, \"single_range\": %s",
               r >= 0 ? "true" : "false", bytes, st->requests, st->retries, st->wire_bytes, st->delivered,
               st->multipart ? "true" : "false", st->single_range ? "true" : "false");
}

/* "A-B,C-D,..." into a new array; -EINVAL on anything else. */
static int parse_ranges(const char *s, FetchRange **ret, size_t *ret_n)
{
        _cleanup_free_ FetchRange *v = NULL;
        size_t n = 0;

        v = calloc(TOOL_RANGES_MAX, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (const char *p = s; *p;) {
                char num[32];
                uint64_t a, b;
                size_t k = strcspn(p, "-");

                if (n >= TOOL_RANGES_MAX || k == 0 || k >= sizeof(num) || p[k] != '-')
                        return -EINVAL;
                memcpy(num, p, k);
                num[k] = 0;
                if (safe_atou64(num, &a) < 0)
                        return -EINVAL;
                p += k + 1;
                k = strcspn(p, ",");
                if (k == 0 || k >= sizeof(num))
                        return -EINVAL;
                memcpy(num, p, k);
                num[k] = 0;
                if (safe_atou64(num, &b) < 0 || b < a || b == UINT64_MAX)
                        return -EINVAL;
                v[n++] = (FetchRange){ a, b - a + 1 };
                p += k;
                if (*p == ',')
                        p++;
        }
        if (n == 0)
                return -EINVAL;
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static void print_summary(const FetchStats *st, uint64_t bytes, int r, const UpkErr *err)
{
        printf("{\"ok\": %s, \"bytes\": %" PRIu64, r >= 0 ? "true" : "false", bytes);
        if (st) {
                printf(", \"received\": %" PRIu64
                       ", \"attempts\": %u, \"retries\": %u, \"ignored_ranges\": %u, "
                       "\"http_status\": %ld, \"pauses\": %u, \"resumed_from\": [",
                       st->received, st->attempts, st->retries, st->ignored_ranges, st->http_status,
                       st->pauses);
                for (size_t i = 0; i < st->n_resumes && i < FETCH_STATS_RESUMES_MAX; i++)
                        printf("%s%" PRIu64, i ? ", " : "", st->resume_offsets[i]);
                printf("]");
                if (st->total != UINT64_MAX)
                        printf(", \"total\": %" PRIu64, st->total);
        }
        print_error_end(r, err);
}

static int parse_u(const char *s, const char *opt, uint64_t max, uint64_t *ret)
{
        uint64_t v;

        if (safe_atou64(s, &v) < 0 || v > max) {
                fprintf(stderr, "upkeep-fetch: %s: bad number \"%s\"\n", opt, s);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

int main(int argc, char **argv)
{
        enum {
                ARG_MAX_LENGTH = 0x100,
                ARG_CA,
                ARG_CLIENT_CERT,
                ARG_CLIENT_KEY,
                ARG_PROXY,
                ARG_RETRIES,
                ARG_NO_RETRY,
                ARG_BACKOFF_MS,
                ARG_CONNECT_TIMEOUT,
                ARG_LOW_SPEED_TIME,
                ARG_LOW_SPEED_LIMIT,
                ARG_SLOW,
                ARG_STREAM,
                ARG_STREAM_COPY,
                ARG_STREAM_BUFFER,
                ARG_CHECK_SHA256,
                ARG_CHECK_FAIL_AFTER,
                ARG_MEMORY,
                ARG_RANGES,
                ARG_TOTAL,
                ARG_VALIDATOR,
                ARG_RANGE_MEMORY,
                ARG_UP_TO_END,
                ARG_CANCEL_AFTER,
        };
        static const struct option options[] = {
                { "max-length", required_argument, NULL, ARG_MAX_LENGTH },
                { "ca", required_argument, NULL, ARG_CA },
                { "client-cert", required_argument, NULL, ARG_CLIENT_CERT },
                { "client-key", required_argument, NULL, ARG_CLIENT_KEY },
                { "proxy", required_argument, NULL, ARG_PROXY },
                { "retries", required_argument, NULL, ARG_RETRIES },
                { "no-retry", no_argument, NULL, ARG_NO_RETRY },
                { "backoff-ms", required_argument, NULL, ARG_BACKOFF_MS },
                { "connect-timeout", required_argument, NULL, ARG_CONNECT_TIMEOUT },
                { "low-speed-time", required_argument, NULL, ARG_LOW_SPEED_TIME },
                { "low-speed-limit", required_argument, NULL, ARG_LOW_SPEED_LIMIT },
                { "slow-consumer", no_argument, NULL, ARG_SLOW },
                { "stream", no_argument, NULL, ARG_STREAM },
                { "stream-copy", no_argument, NULL, ARG_STREAM_COPY },
                { "stream-buffer", required_argument, NULL, ARG_STREAM_BUFFER },
                { "check-sha256", required_argument, NULL, ARG_CHECK_SHA256 },
                { "check-fail-after", required_argument, NULL, ARG_CHECK_FAIL_AFTER },
                { "memory", no_argument, NULL, ARG_MEMORY },
                { "ranges", required_argument, NULL, ARG_RANGES },
                { "total", required_argument, NULL, ARG_TOTAL },
                { "validator", required_argument, NULL, ARG_VALIDATOR },
                { "range-memory", required_argument, NULL, ARG_RANGE_MEMORY },
                { "up-to-end", no_argument, NULL, ARG_UP_TO_END },
                { "cancel-after", required_argument, NULL, ARG_CANCEL_AFTER },
                {},
        };
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(fetch_engine_freep) FetchEngine *engine = NULL;
        _cleanup_close_ int out_fd = -EBADF, done_fd = -EBADF;
        FetchOptions opts = { 0 };
        uint64_t max_length = UINT64_MAX / 2, v, stream_buffer = 0;
        bool stream = false, memory = false, range_memory = false, range_up_to_end = false;
        _cleanup_free_ FetchRange *ranges = NULL;
        size_t n_ranges = 0;
        uint64_t total = 0, range_off = 0, range_len = 0;
        const char *validator = NULL;
        Tool t = { .done_fd = -EBADF };
        UpkErr err = { 0 };
        const char *url, *out;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case ARG_MAX_LENGTH:
                        if (parse_u(optarg, "--max-length", UINT64_MAX, &max_length) < 0)
                                return 2;
                        break;
                case ARG_CA:
                        opts.ca_file = optarg;
                        break;
                case ARG_CLIENT_CERT:
                        opts.client_cert = optarg;
                        break;
                case ARG_CLIENT_KEY:
                        opts.client_key = optarg;
                        break;
                case ARG_PROXY:
                        opts.proxy = optarg;
                        break;
                case ARG_RETRIES:
                        if (parse_u(optarg, "--retries", 1000, &v) < 0)
                                return 2;
                        opts.retries = (unsigned)v;
                        opts.no_retry = v == 0;
                        break;
                case ARG_NO_RETRY:
                        opts.no_retry = true;
                        break;
                case ARG_BACKOFF_MS:
                        if (parse_u(optarg, "--backoff-ms", 3600000, &v) < 0)
                                return 2;
                        opts.backoff_msec = (unsigned)v;
                        break;
                case ARG_CONNECT_TIMEOUT:
                        if (parse_u(optarg, "--connect-timeout", 3600, &v) < 0)
                                return 2;
                        opts.connect_timeout_sec = (unsigned)v;
                        break;
                case ARG_LOW_SPEED_TIME:
                        if (parse_u(optarg, "--low-speed-time", 3600, &v) < 0)
                                return 2;
                        opts.low_speed_time_sec = (unsigned)v;
                        break;
                case ARG_LOW_SPEED_LIMIT:
                        if (parse_u(optarg, "--low-speed-limit", 1u << 30, &v) < 0)
                                return 2;
                        opts.low_speed_limit = (unsigned)v;
                        break;
                case ARG_SLOW:
                        t.slow = true;
                        break;
                case ARG_STREAM:
                        stream = true;
                        break;
                case ARG_STREAM_COPY:
                        stream = true;
                        t.copy = true;
                        break;
                case ARG_CHECK_SHA256:
                        if (strlen(optarg) != 64) {
                                fprintf(stderr, "upkeep-fetch: --check-sha256: 64 hex digits\n");
                                return 2;
                        }
                        t.want_sha256 = optarg;
                        break;
                case ARG_CHECK_FAIL_AFTER:
                        if (parse_u(optarg, "--check-fail-after", UINT64_MAX, &t.check_fail_after) < 0 ||
                            t.check_fail_after == 0)
                                return 2;
                        break;
                case ARG_STREAM_BUFFER:
                        if (parse_u(optarg, "--stream-buffer", FETCH_STREAM_BUFFER_MAX, &stream_buffer) < 0)
                                return 2;
                        break;
                case ARG_MEMORY:
                        memory = true;
                        break;
                case ARG_RANGES:
                        free(ranges);
                        ranges = NULL;
                        if (parse_ranges(optarg, &ranges, &n_ranges) < 0) {
                                fprintf(stderr, "upkeep-fetch: --ranges: bad list \"%s\"\n", optarg);
                                return 2;
                        }
                        stream = true;
                        break;
                case ARG_TOTAL:
                        if (parse_u(optarg, "--total", UINT64_MAX, &total) < 0)
                                return 2;
                        break;
                case ARG_VALIDATOR:
                        validator = optarg;
                        break;
                case ARG_RANGE_MEMORY: {
                        const char *comma = strchr(optarg, ',');
                        char num[32];

                        if (!comma || (size_t)(comma - optarg) >= sizeof(num)) {
                                fprintf(stderr, "upkeep-fetch: --range-memory: OFF,LEN\n");
                                return 2;
                        }
                        memcpy(num, optarg, (size_t)(comma - optarg));
                        num[comma - optarg] = 0;
                        if (parse_u(num, "--range-memory", UINT64_MAX, &range_off) < 0 ||
                            parse_u(comma + 1, "--range-memory", UINT64_MAX, &range_len) < 0)
                                return 2;
                        range_memory = true;
                        break;
                }
                case ARG_UP_TO_END:
                        range_up_to_end = true;
                        break;
                case ARG_CANCEL_AFTER:
                        if (parse_u(optarg, "--cancel-after", UINT64_MAX, &t.cancel_after) < 0)
                                return 2;
                        break;
                default:
                        return 2;
                }
        }
        if (argc - optind != 2) {
                fprintf(stderr, "usage: upkeep-fetch URL OUT [options]\n");
                return 2;
        }
        url = argv[optind];
        out = argv[optind + 1];

        out_fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out_fd < 0) {
                fprintf(stderr, "upkeep-fetch: %s: %m\n", out);
                return 1;
        }
        t.out_fd = out_fd;

        if (range_memory) {
                _cleanup_free_ void *buf = NULL;
                FetchRangesStats st = { 0 };
                char etag[FETCH_ETAG_MAX] = "";
                uint64_t file_total = 0;

                r = fetch_range_to_memory(url, range_off, range_len, &opts, &buf,
                                          range_up_to_end ? &range_len : NULL, &file_total, etag, &st, &err);
                if (r >= 0)
                        r = loop_write(out_fd, buf, (size_t)range_len);
                print_ranges_summary(&st, r >= 0 ? range_len : 0, r, &err);
                if (r >= 0) {
                        printf(", \"total\": %" PRIu64 ", \"etag\": ", file_total);
                        print_string(etag);
                }
                print_error_end(r, &err);
                if (r < 0)
                        fprintf(stderr, "upkeep-fetch: %s\n", err.msg);
                return r < 0 ? 1 : 0;
        }

        if (memory) {
                _cleanup_free_ char *buf = NULL;
                size_t size = 0;

                r = fetch_to_memory(url, max_length == UINT64_MAX / 2 ? FETCH_MEMORY_MAX : max_length, &opts,
                                    &buf, &size, &err);
                if (r >= 0)
                        r = loop_write(out_fd, buf, size);
                print_summary(NULL, r >= 0 ? size : 0, r, &err);
                if (r < 0)
                        fprintf(stderr, "upkeep-fetch: %s\n", err.msg);
                return r < 0 ? 1 : 0;
        }

        r = sd_event_new(&event);
        if (r < 0) {
                fprintf(stderr, "upkeep-fetch: sd_event_new: %s\n", strerror(-r));
                return 1;
        }
        t.event = event;
        r = fetch_engine_new(event, &engine, &err);
        if (r < 0)
                goto fail;

        if (stream) {
                pthread_t thread;

                done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (done_fd < 0) {
                        r = upk_err(&err, UPK_ERR_IO, -errno, "eventfd: %m");
                        goto fail;
                }
                t.done_fd = done_fd;
                r = sd_event_add_io(event, NULL, done_fd, EPOLLIN, on_reader_done, &t);
                if (r < 0) {
                        upk_err(&err, UPK_ERR_IO, r, "sd_event_add_io: %s", strerror(-r));
                        goto fail;
                }
                if (ranges)
                        r = fetch_stream_new_ranges(engine, url, total, validator, ranges, n_ranges, &opts,
                                                    (size_t)stream_buffer, &t.stream, &err);
                else
                        r = fetch_stream_new(engine, url, max_length, &opts, (size_t)stream_buffer,
                                             &t.stream, &err);
                if (r < 0)
                        goto fail;
                if (t.want_sha256) {
                        t.md = EVP_MD_CTX_new();
                        if (!t.md || EVP_DigestInit_ex(t.md, EVP_sha256(), NULL) != 1) {
                                r = upk_err(&err, UPK_ERR_IO, -ENOMEM, "out of memory");
                                goto fail;
                        }
                        r = fetch_stream_set_check(t.stream, check_sha256, &t, &err);
                        if (r < 0)
                                goto fail;
                }
                r = pthread_create(&thread, NULL, reader_thread, &t);
                if (r != 0) {
                        r = upk_err(&err, UPK_ERR_IO, -r, "pthread_create: %s", strerror(r));
                        t.stream = fetch_stream_free(t.stream);
                        goto fail;
                }
                r = sd_event_loop(event);
                pthread_join(thread, NULL);
                if (r >= 0)
                        r = t.read_r;
                if (r < 0 && t.read_err.kind != UPK_ERR_NONE)
                        err = t.read_err;
                if (ranges) {
                        FetchRangesStats st;

                        fetch_stream_get_ranges_stats(t.stream, &st);
                        print_ranges_summary(&st, t.read_bytes, r, &err);
                        print_error_end(r, &err);
                } else {
                        Fetch *f = fetch_stream_get_fetch(t.stream);

                        print_summary(f ? fetch_get_stats(f) : NULL, t.read_bytes, r, &err);
                }
                t.stream = fetch_stream_free(t.stream);
                EVP_MD_CTX_free(t.md);
                if (r < 0)
                        fprintf(stderr, "upkeep-fetch: %s\n", err.msg);
                return r < 0 ? 1 : 0;
        }

        r = fetch_new(engine, url, max_length, &opts, on_data, on_done, &t, &t.fetch, &err);
        if (r < 0)
                goto fail;
        r = sd_event_loop(event);
        if (r >= 0)
                r = t.r;
        if (r < 0 && t.err.kind != UPK_ERR_NONE)
                err = t.err;
        {
                const FetchStats *st = fetch_get_stats(t.fetch);

                print_summary(st, st->delivered, r, &err);
        }
        t.fetch = fetch_free(t.fetch);
        if (r < 0)
                fprintf(stderr, "upkeep-fetch: %s\n", err.msg);
        return r < 0 ? 1 : 0;
fail:
        EVP_MD_CTX_free(t.md);
        print_summary(NULL, 0, r, &err);
        fprintf(stderr, "upkeep-fetch: %s\n", err.msg);
        return 1;
}
