/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fetch.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <assert.h>

#include "conf.h"

/* Body bytes curl hands us per write callback at most (its receive buffer). */
#define FETCH_CURL_BUFFER_SIZE (128 * 1024L)
#define FETCH_USER_AGENT       "upkeep/" PACKAGE_VERSION

typedef enum FetchState {
        FETCH_RUNNING, /* an attempt is in the multi handle */
        FETCH_WAITING, /* backoff before the next attempt */
        FETCH_FINISHED,
} FetchState;

struct FetchEngine {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        Fetch *fetches; /* doubly linked through Fetch.prev/next */
};

struct Fetch {
        FetchEngine *engine;
        Fetch *prev, *next;
        CURL *easy;
        char *url;
        uint64_t max_length;
        FetchDataFunc data_cb;
        FetchDoneFunc done_cb;
        void *userdata;

        /* copied options */
        char *ca_file, *client_cert, *client_key, *proxy;
        unsigned connect_timeout_sec, low_speed_limit, low_speed_time_sec, retries;
        bool no_retry;
        uint64_t backoff_msec, backoff_max_msec;

        FetchState state;
        bool paused, in_data_cb, in_multi;
        sd_event_source *retry_timer;
        uint64_t offset; /* bytes delivered = the next byte wanted */
        unsigned streak; /* consecutive failed attempts, reset by an attempt that made progress */

        /* the current attempt */
        uint64_t attempt_offset; /* where it started */
        uint64_t skip;           /* bytes still to drop (a 200 answer to a ranged request) */
        bool checked;            /* response status and headers looked at */
        int attempt_r;           /* an error found by our callbacks, or 0 */
        bool attempt_retriable;
        UpkErr attempt_err;
        char range[32];
        char errbuf[CURL_ERROR_SIZE];

        FetchStats stats;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
        curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void fetch_options_from_config(FetchOptions *o, const Config *c)
{
        o->ca_file = c->source_ca;
        o->client_cert = c->source_client_cert;
        o->client_key = c->source_client_key;
        o->proxy = c->source_proxy;
}

int fetch_parse_content_range(const char *s, uint64_t *ret_start, uint64_t *ret_end, uint64_t *ret_total)
{
        uint64_t v[3] = { 0, 0, UINT64_MAX };
        const char *p;

        if (!s || strncasecmp(s, "bytes ", 6) != 0)
                return -EINVAL;
        p = s + 6;
        for (int i = 0; i < 3; i++) {
                const char sep = i == 0 ? '-' : i == 1 ? '/' : 0;
                uint64_t n = 0;
                const char *start = p;

                if (i == 2 && *p == '*' && p[1] == 0)
                        break;
                while (*p >= '0' && *p <= '9') {
                        const unsigned d = (unsigned)(*p - '0');

                        if (n > (UINT64_MAX - d) / 10)
                                return -EINVAL;
                        n = n * 10 + d;
                        p++;
                }
                /* UINT64_MAX stands for an unknown total: no real size is that large. */
                if (p == start || *p != sep || n == UINT64_MAX)
                        return -EINVAL;
                v[i] = n;
                if (sep)
                        p++;
        }
        if (v[0] > v[1] || (v[2] != UINT64_MAX && v[1] >= v[2]))
                return -EINVAL;
        *ret_start = v[0];
        *ret_end = v[1];
        *ret_total = v[2];
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* The engine: curl's sockets and timer on sd-event */

static void engine_check_done(FetchEngine *e);

static int on_curl_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        FetchEngine *e = userdata;
        int action = 0, running;

        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        (void)curl_multi_socket_action(e->multi, fd, action, &running);
        engine_check_done(e);
        return 0;
}

static int on_curl_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        FetchEngine *e = userdata;
        int running;

        (void)curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        engine_check_done(e);
        return 0;
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
        FetchEngine *e = userp;
        sd_event_source *src = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                /* curl forgets the socket (and its pointer) itself; this also runs from
                 * curl_multi_cleanup(), where the multi handle must not be used any more. */
                sd_event_source_disable_unref(src);
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (src) {
                if (events == 0)
                        return sd_event_source_set_enabled(src, SD_EVENT_OFF) < 0 ? -1 : 0;
                r = sd_event_source_set_io_events(src, events);
                if (r >= 0)
                        r = sd_event_source_set_enabled(src, SD_EVENT_ON);
                return r < 0 ? -1 : 0;
        }
        r = sd_event_add_io(e->event, &src, fd, events, on_curl_io, e);
        if (r < 0)
                return -1;
        (void)sd_event_source_set_description(src, "fetch-socket");
        if (events == 0)
                (void)sd_event_source_set_enabled(src, SD_EVENT_OFF);
        if (curl_multi_assign(e->multi, fd, src) != CURLM_OK) {
                sd_event_source_disable_unref(src);
                return -1;
        }
        return 0;
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
        FetchEngine *e = userp;
        uint64_t now;
        int r;

        if (timeout_ms < 0)
                return e->timer && sd_event_source_set_enabled(e->timer, SD_EVENT_OFF) < 0 ? -1 : 0;

        r = sd_event_now(e->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return -1;
        now += (uint64_t)timeout_ms * 1000u;
        if (!e->timer) {
                r = sd_event_add_time(e->event, &e->timer, CLOCK_MONOTONIC, now, 1, on_curl_timer, e);
                if (r < 0)
                        return -1;
                (void)sd_event_source_set_description(e->timer, "fetch-timer");
                return 0;
        }
        r = sd_event_source_set_time(e->timer, now);
        if (r >= 0)
                r = sd_event_source_set_enabled(e->timer, SD_EVENT_ONESHOT);
        return r < 0 ? -1 : 0;
}

int fetch_engine_new(sd_event *event, FetchEngine **ret, UpkErr *err)
{
        FetchEngine *e;

        (void)pthread_once(&curl_once, curl_init_once);
        if (curl_init_result != CURLE_OK)
                return upk_err(err, UPK_ERR_NETWORK, -EIO, "libcurl could not be initialized: %s",
                               curl_easy_strerror(curl_init_result));
        e = calloc(1, sizeof(*e));
        if (!e)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        e->multi = curl_multi_init();
        if (!e->multi) {
                free(e);
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "curl_multi_init failed");
        }
        e->event = sd_event_ref(event);
        curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
        curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
        curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
        curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
        *ret = e;
        return 0;
}

static void fetch_detach(Fetch *f)
{
        if (f->in_multi) {
                curl_multi_remove_handle(f->engine->multi, f->easy);
                f->in_multi = false;
        }
        f->retry_timer = sd_event_source_disable_unref(f->retry_timer);
}

FetchEngine *fetch_engine_free(FetchEngine *e)
{
        if (!e)
                return NULL;
        while (e->fetches) {
                Fetch *f = e->fetches;

                fetch_detach(f);
                f->state = FETCH_FINISHED;
                e->fetches = f->next;
                f->prev = f->next = NULL;
                f->engine = NULL;
        }
        /* curl_multi_cleanup() may still report sockets to close; the sources go with them. */
        curl_multi_cleanup(e->multi);
        e->timer = sd_event_source_disable_unref(e->timer);
        sd_event_unref(e->event);
        free(e);
        return NULL;
}

/* ---------------------------------------------------------------------------------------------------- */
/* One fetch */

static int errno_of_curl(CURLcode c, bool *ret_retriable, UpkErrKind *ret_kind)
{
        bool retriable = false;
        UpkErrKind kind = UPK_ERR_NETWORK;
        int r;

        switch (c) {
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                r = -ECONNRESET;
                retriable = true;
                break;
        case CURLE_SEND_ERROR:
                r = -EPIPE;
                retriable = true;
                break;
        case CURLE_OPERATION_TIMEDOUT:
                r = -ETIMEDOUT;
                retriable = true;
                break;
        case CURLE_COULDNT_CONNECT:
                r = -ECONNREFUSED;
                retriable = true;
                break;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                r = -EHOSTUNREACH;
                break;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
                r = -EPERM;
                break;
        case CURLE_SSL_CONNECT_ERROR:
                r = -EPROTO;
                break;
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CRL_BADFILE:
                r = -EINVAL;
                kind = UPK_ERR_CONFIG;
                break;
        case CURLE_TOO_MANY_REDIRECTS:
                r = -ELOOP;
                break;
        case CURLE_UNSUPPORTED_PROTOCOL:
                r = -EPROTONOSUPPORT;
                break;
        case CURLE_URL_MALFORMAT:
                r = -EINVAL;
                kind = UPK_ERR_CONFIG;
                break;
        case CURLE_FILESIZE_EXCEEDED:
                r = -EFBIG;
                break;
        case CURLE_OUT_OF_MEMORY:
                r = -ENOMEM;
                break;
        default:
                r = -EIO;
                break;
        }
        *ret_retriable = retriable;
        *ret_kind = kind;
        return r;
}

static void fetch_unlink(Fetch *f)
{
        if (!f->engine)
                return;
        if (f->prev)
                f->prev->next = f->next;
        else
                f->engine->fetches = f->next;
        if (f->next)
                f->next->prev = f->prev;
        f->prev = f->next = NULL;
}

static void fetch_finish(Fetch *f, int r, const UpkErr *err)
{
        fetch_detach(f);
        f->state = FETCH_FINISHED;
        if (f->done_cb)
                f->done_cb(f, r, err, f->userdata);
}

/* Look at the final response of the current attempt, before its first body byte (or at its end when it
 * has no body). Sets f->attempt_r on a problem. */
static void fetch_check_response(Fetch *f)
{
        curl_off_t cl = -1;
        long code = 0;
        int r;

        f->checked = true;
        (void)curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
        (void)curl_easy_getinfo(f->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        f->stats.http_status = code;

        if (code == 200) {
                uint64_t len = cl >= 0 ? (uint64_t)cl : UINT64_MAX;

                if (len != UINT64_MAX && len > f->max_length) {
                        f->attempt_r = upk_err(&f->attempt_err, UPK_ERR_NETWORK, -EFBIG,
                                               "%s: the server announces %" PRIu64
                                               " bytes (Content-Length), more than the %" PRIu64 " allowed",
                                               f->url, len, f->max_length);
                        return;
                }
                if (len != UINT64_MAX && f->stats.total != UINT64_MAX && len != f->stats.total) {
                        f->attempt_r = upk_err(&f->attempt_err, UPK_ERR_NETWORK, -ESTALE,
                                               "%s: the size changed on the server during the download "
                                               "(%" PRIu64 " bytes, before %" PRIu64 ")",
                                               f->url, len, f->stats.total);
                        return;
                }
                if (len != UINT64_MAX)
                        f->stats.total = len;
                /* A server that ignores Range sends the whole body again: drop what was delivered. */
                f->skip = f->attempt_offset;
                if (f->attempt_offset > 0)
                        f->stats.ignored_ranges++;
                return;
        }
        if (code == 206) {
                struct curl_header *h = NULL;
                uint64_t start, end, total;

                if (f->attempt_offset == 0) {
                        f->attempt_r = upk_err(&f->attempt_err, UPK_ERR_NETWORK, -EPROTO,
                                               "%s: the server answered 206 Partial Content to a request "
                                               "without Range",
                                               f->url);
                        return;
                }
                if (curl_easy_header(f->easy, "Content-Range", 0, CURLH_HEADER, -1, &h) != CURLHE_OK ||
                    fetch_parse_content_range(h->value, &start, &end, &total) < 0) {
                        f->attempt_r = upk_err(&f->attempt_err, UPK_ERR_NETWORK, -EPROTO,
                                               "%s: the 206 answer to \"Range: bytes=%" PRIu64
                                               "-\" has a missing or malformed Content-Range%s%.64s%s",
                                               f->url, f->attempt_offset, h ? " \"" : "", h ? h->value : "",
                                               h ? "\"" : "");
                        return;
                }
                if (start != f->attempt_offset) {
                        f->attempt_r = upk_err(&f->attempt_err, UPK_ERR_NETWORK, -EPROTO,
                                               "%s: asked to resume at byte %" PRIu64
                                               ", the server answered with bytes from %" PRIu64
                                               " (Content-Range \"%.64s\")",
                                               f->url, f->attempt_offset, start, h->value);
                        return;
                }
                if (total != UINT64_MAX && total > f->max_length) {
                        f->attempt_r = upk_err(&f->attempt_err, UPK_ERR_NETWORK, -EFBIG,
                                               "%s: the server announces %" PRIu64
                                               " bytes (Content-Range), more than the %" PRIu64 " allowed",
                                               f->url, total, f->max_length);
                        return;
                }
                if (total != UINT64_MAX && f->stats.total != UINT64_MAX && total != f->stats.total) {
                        f->attempt_r = upk_err(&f->attempt_err, UPK_ERR_NETWORK, -ESTALE,
                                               "%s: the size changed on the server during the download "
                                               "(%" PRIu64 " bytes, before %" PRIu64 ")",
                                               f->url, total, f->stats.total);
                        return;
                }
                if (total != UINT64_MAX)
                        f->stats.total = total;
                if (cl >= 0 && (uint64_t)cl > f->max_length - start) {
                        f->attempt_r =
                                upk_err(&f->attempt_err, UPK_ERR_NETWORK, -EFBIG,
                                        "%s: the server announces %" PRIu64 " bytes from byte %" PRIu64
                                        ", more than the %" PRIu64 " allowed",
                                        f->url, (uint64_t)cl, start, f->max_length);
                        return;
                }
                return;
        }

        if (code == 408 || code == 429 || (code >= 500 && code <= 599)) {
                r = code == 408 ? -ETIMEDOUT : code == 429 ? -EBUSY : -EIO;
                f->attempt_retriable = true;
        } else if (code == 404 || code == 410)
                r = -ENOENT;
        else if (code == 401 || code == 403)
                r = -EACCES;
        else if (code == 416)
                r = -ERANGE;
        else if (code >= 400 && code <= 499)
                r = -EIO;
        else
                r = -EPROTO;
        f->attempt_r =
                upk_err(&f->attempt_err, UPK_ERR_NETWORK, r, "%s: the server answered HTTP status %ld%s",
                        f->url, code, f->attempt_offset > 0 ? " to a resume request" : "");
}

static size_t on_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        Fetch *f = userdata;
        const char *data = ptr;
        size_t n = nmemb, len, s;
        int r;

        if (size != 1)
                return 0;
        if (!f->checked) {
                fetch_check_response(f);
                if (f->attempt_r < 0)
                        return 0;
        }
        if (f->paused)
                return CURL_WRITEFUNC_PAUSE;

        s = f->skip < n ? (size_t)f->skip : n;
        data += s;
        len = n - s;
        if (len > 0) {
                if (len > f->max_length - f->offset) {
                        f->stats.received += n;
                        f->attempt_r = upk_err(&f->attempt_err, UPK_ERR_NETWORK, -EFBIG,
                                               "%s: the server sent more than the %" PRIu64
                                               " bytes allowed; cut off",
                                               f->url, f->max_length);
                        return 0;
                }
                f->in_data_cb = true;
                r = f->data_cb(f, data, len, f->offset, f->userdata, &f->attempt_err);
                f->in_data_cb = false;
                if (r < 0) {
                        if (f->attempt_err.kind == UPK_ERR_NONE)
                                upk_err(&f->attempt_err, UPK_ERR_IO, r,
                                        "%s: the consumer refused byte %" PRIu64, f->url, f->offset);
                        f->attempt_r = r;
                        f->attempt_retriable = false;
                        return 0;
                }
                if (r == FETCH_DATA_PAUSE) {
                        f->paused = true;
                        f->stats.pauses++;
                        return CURL_WRITEFUNC_PAUSE;
                }
        }
        f->skip -= s;
        f->offset += len;
        f->stats.delivered += len;
        f->stats.received += n;
        return n;
}

static int fetch_start_attempt(Fetch *f, UpkErr *err);

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        Fetch *f = userdata;
        UpkErr e = { 0 };
        int r;

        f->retry_timer = sd_event_source_disable_unref(f->retry_timer);
        r = fetch_start_attempt(f, &e);
        if (r < 0)
                fetch_finish(f, r, &e);
        return 0;
}

/* The current attempt ended with curl's `code`. */
static void fetch_attempt_done(Fetch *f, CURLcode code)
{
        bool retriable = false, progress;
        UpkErr e = { 0 };
        uint64_t delay;
        int r = 0;

        if (f->in_multi) {
                curl_multi_remove_handle(f->engine->multi, f->easy);
                f->in_multi = false;
        }

        if (f->attempt_r >= 0 && !f->checked &&
            (code == CURLE_OK || code == CURLE_PARTIAL_FILE || code == CURLE_RECV_ERROR ||
             code == CURLE_GOT_NOTHING)) {
                long status = 0;

                (void)curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
                if (status > 0)
                        fetch_check_response(f);
        }

        if (f->attempt_r < 0) {
                r = f->attempt_r;
                retriable = f->attempt_retriable;
                e = f->attempt_err;
        } else if (code != CURLE_OK) {
                UpkErrKind kind;

                r = errno_of_curl(code, &retriable, &kind);
                upk_err(&e, kind, r, "%s: %s%s%s (at byte %" PRIu64 ")", f->url, curl_easy_strerror(code),
                        f->errbuf[0] ? ": " : "", f->errbuf, f->offset);
        } else if (f->skip > 0) {
                r = upk_err(&e, UPK_ERR_NETWORK, -ECONNRESET,
                            "%s: the body ended at byte %" PRIu64 ", before the %" PRIu64
                            " bytes already received",
                            f->url, f->attempt_offset - f->skip, f->attempt_offset);
                retriable = true;
        } else if (f->stats.total != UINT64_MAX && f->offset != f->stats.total) {
                r = upk_err(&e, UPK_ERR_NETWORK, -ECONNRESET,
                            "%s: the body ended at byte %" PRIu64 " of %" PRIu64, f->url, f->offset,
                            f->stats.total);
                retriable = true;
        }

        if (r >= 0) {
                fetch_finish(f, 0, NULL);
                return;
        }

        /* Everything is there even though the connection failed at the very end. */
        if (retriable && f->stats.total != UINT64_MAX && f->offset == f->stats.total && f->skip == 0) {
                fetch_finish(f, 0, NULL);
                return;
        }

        progress = f->offset > f->attempt_offset;
        f->streak = progress ? 1 : f->streak + 1;
        if (!retriable || f->no_retry || f->streak > f->retries || f->stats.attempts >= FETCH_ATTEMPTS_MAX) {
                if (retriable && !f->no_retry)
                        upk_err_prefix(&e, "gave up after %u attempts", f->stats.attempts);
                fetch_finish(f, r, &e);
                return;
        }

        delay = f->backoff_msec;
        for (unsigned i = 1; i < f->streak && delay < f->backoff_max_msec; i++)
                delay *= 2;
        if (delay > f->backoff_max_msec)
                delay = f->backoff_max_msec;
        r = sd_event_add_time_relative(f->engine->event, &f->retry_timer, CLOCK_MONOTONIC, delay * 1000u, 1,
                                       on_retry_timer, f);
        if (r < 0) {
                upk_err_prefix(&e, "cannot schedule a retry (%s)", strerror(-r));
                fetch_finish(f, e.code, &e);
                return;
        }
        (void)sd_event_source_set_description(f->retry_timer, "fetch-retry");
        f->state = FETCH_WAITING;
        f->stats.retries++;
}

static void engine_check_done(FetchEngine *e)
{
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(e->multi, &left))) {
                Fetch *f = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                (void)curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
                if (f && f->state == FETCH_RUNNING)
                        fetch_attempt_done(f, msg->data.result);
        }
}

static int fetch_setup_easy(Fetch *f, UpkErr *err)
{
        const bool https = strncasecmp(f->url, "https://", 8) == 0;
        CURL *c = f->easy;
        CURLcode cc = CURLE_OK;

#define SET(opt, val)                                           \
        do {                                                    \
                if (cc == CURLE_OK)                             \
                        cc = curl_easy_setopt(c, (opt), (val)); \
        } while (0)
        SET(CURLOPT_URL, f->url);
        SET(CURLOPT_PRIVATE, (char *)f);
        SET(CURLOPT_ERRORBUFFER, f->errbuf);
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_WRITEFUNCTION, on_curl_write);
        SET(CURLOPT_WRITEDATA, f);
        SET(CURLOPT_BUFFERSIZE, FETCH_CURL_BUFFER_SIZE);
        SET(CURLOPT_USERAGENT, FETCH_USER_AGENT);
        SET(CURLOPT_PROTOCOLS_STR, "http,https");
        SET(CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)FETCH_REDIRECTS_MAX);
        SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
        SET(CURLOPT_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_SSL_VERIFYHOST, 2L);
        SET(CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
        SET(CURLOPT_CONNECTTIMEOUT, (long)f->connect_timeout_sec);
        SET(CURLOPT_LOW_SPEED_LIMIT, (long)f->low_speed_limit);
        SET(CURLOPT_LOW_SPEED_TIME, (long)f->low_speed_time_sec);
        SET(CURLOPT_TCP_KEEPALIVE, 1L);
        if (f->ca_file)
                SET(CURLOPT_CAINFO, f->ca_file);
        if (f->client_cert) {
                SET(CURLOPT_SSLCERT, f->client_cert);
                SET(CURLOPT_SSLCERTTYPE, "PEM");
                SET(CURLOPT_SSLKEY, f->client_key);
                SET(CURLOPT_SSLKEYTYPE, "PEM");
        }
        if (f->proxy)
                SET(CURLOPT_PROXY, f->proxy);
#undef SET
        if (cc != CURLE_OK)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%s: libcurl refused an option: %s", f->url,
                               curl_easy_strerror(cc));
        return 0;
}

static int fetch_start_attempt(Fetch *f, UpkErr *err)
{
        CURLMcode mc;

        f->attempt_offset = f->offset;
        f->skip = 0;
        f->checked = false;
        f->attempt_r = 0;
        f->attempt_retriable = false;
        upk_err_clear(&f->attempt_err);
        f->errbuf[0] = 0;
        if (f->offset > 0) {
                snprintf(f->range, sizeof(f->range), "%" PRIu64 "-", f->offset);
                (void)curl_easy_setopt(f->easy, CURLOPT_RANGE, f->range);
                if (f->stats.n_resumes < FETCH_STATS_RESUMES_MAX)
                        f->stats.resume_offsets[f->stats.n_resumes] = f->offset;
                f->stats.n_resumes++;
        } else
                (void)curl_easy_setopt(f->easy, CURLOPT_RANGE, NULL);
        if (f->paused)
                (void)curl_easy_pause(f->easy, CURLPAUSE_CONT); /* a new transfer starts unpaused */

        mc = curl_multi_add_handle(f->engine->multi, f->easy);
        if (mc != CURLM_OK)
                return upk_err(err, UPK_ERR_NETWORK, mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO,
                               "%s: cannot start the transfer: %s", f->url, curl_multi_strerror(mc));
        f->in_multi = true;
        f->state = FETCH_RUNNING;
        f->stats.attempts++;
        return 0;
}

static int check_readable(const char *what, const char *path, UpkErr *err)
{
        if (access(path, R_OK) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -errno, "%s %s: %s", what, path, strerror(errno));
        return 0;
}

static char *strdup_or_null(const char *s, bool *oom)
{
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                *oom = true;
        return d;
}

int fetch_new(FetchEngine *e, const char *url, uint64_t max_length, const FetchOptions *opts,
              FetchDataFunc data, FetchDoneFunc done, void *userdata, Fetch **ret, UpkErr *err)
{
        static const FetchOptions no_opts = { 0 };
        _cleanup_(fetch_freep) Fetch *f = NULL;
        bool oom = false;
        size_t ulen;
        int r;

        if (!opts)
                opts = &no_opts;
        if (!url)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "no URL to fetch");
        ulen = strnlen(url, FETCH_URL_MAX + 1);
        if (ulen > FETCH_URL_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -ENAMETOOLONG, "URL longer than %d bytes",
                               FETCH_URL_MAX);
        if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0)
                return upk_err(err, UPK_ERR_CONFIG, -EPROTONOSUPPORT,
                               "%.256s: only http:// and https:// URLs can be fetched", url);
        for (size_t i = 0; i < ulen; i++)
                if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                       "%.256s: URL with a space or control character at offset %zu", url,
                                       i);
        if (max_length == 0)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%s: no maximum length given", url);
        if (!data)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%s: no data callback", url);
        if (!!opts->client_cert != !!opts->client_key)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "a client certificate needs its key and a key its certificate");
        if (opts->ca_file && (r = check_readable("CA file", opts->ca_file, err)) < 0)
                return r;
        if (opts->client_cert && (r = check_readable("client certificate", opts->client_cert, err)) < 0)
                return r;
        if (opts->client_key && (r = check_readable("client key", opts->client_key, err)) < 0)
                return r;

        f = calloc(1, sizeof(*f));
        if (!f)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        f->url = strdup_or_null(url, &oom);
        f->ca_file = strdup_or_null(opts->ca_file, &oom);
        f->client_cert = strdup_or_null(opts->client_cert, &oom);
        f->client_key = strdup_or_null(opts->client_key, &oom);
        f->proxy = strdup_or_null(opts->proxy, &oom);
        if (oom)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        f->max_length = max_length;
        f->data_cb = data;
        f->done_cb = done;
        f->userdata = userdata;
        f->connect_timeout_sec = opts->connect_timeout_sec ?: FETCH_CONNECT_TIMEOUT_DEFAULT;
        f->low_speed_limit = opts->low_speed_limit ?: FETCH_LOW_SPEED_LIMIT_DEFAULT;
        f->low_speed_time_sec = opts->low_speed_time_sec ?: FETCH_LOW_SPEED_TIME_DEFAULT;
        f->retries = opts->retries ?: FETCH_RETRIES_DEFAULT;
        f->no_retry = opts->no_retry;
        f->backoff_msec = opts->backoff_msec ?: FETCH_BACKOFF_DEFAULT_MSEC;
        f->backoff_max_msec = opts->backoff_max_msec ?: FETCH_BACKOFF_MAX_DEFAULT_MSEC;
        if (f->backoff_max_msec < f->backoff_msec)
                f->backoff_max_msec = f->backoff_msec;
        f->stats.total = UINT64_MAX;
        f->state = FETCH_FINISHED;

        f->easy = curl_easy_init();
        if (!f->easy)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "curl_easy_init failed");
        r = fetch_setup_easy(f, err);
        if (r < 0)
                return r;

        f->engine = e;
        f->next = e->fetches;
        if (e->fetches)
                e->fetches->prev = f;
        e->fetches = f;

        r = fetch_start_attempt(f, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(f);
        return 0;
}

Fetch *fetch_free(Fetch *f)
{
        if (!f)
                return NULL;
        if (f->engine) {
                fetch_detach(f);
                fetch_unlink(f);
        }
        if (f->easy)
                curl_easy_cleanup(f->easy);
        free(f->url);
        free(f->ca_file);
        free(f->client_cert);
        free(f->client_key);
        free(f->proxy);
        free(f);
        return NULL;
}

void fetch_pause(Fetch *f)
{
        if (f->paused)
                return;
        f->paused = true;
        f->stats.pauses++;
        /* Outside the data callback stop reading the socket right away; inside it the next call returns
         * CURL_WRITEFUNC_PAUSE. */
        if (!f->in_data_cb && f->in_multi)
                (void)curl_easy_pause(f->easy, CURLPAUSE_RECV);
}

void fetch_resume(Fetch *f)
{
        CURLcode cc;

        if (!f->paused)
                return;
        f->paused = false;
        if (!f->in_multi)
                return;
        cc = curl_easy_pause(f->easy, CURLPAUSE_CONT);
        if (cc != CURLE_OK && f->state == FETCH_RUNNING && f->in_multi)
                /* Delivering the held bytes failed: this attempt is over. */
                fetch_attempt_done(f, cc);
}

bool fetch_is_paused(const Fetch *f)
{
        return f->paused;
}

const FetchStats *fetch_get_stats(const Fetch *f)
{
        return &f->stats;
}

const char *fetch_get_url(const Fetch *f)
{
        return f->url;
}

void *fetch_get_userdata(const Fetch *f)
{
        return f->userdata;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Into memory, with a private loop */

typedef struct MemoryFetch {
        char *buf;
        size_t size, allocated;
        uint64_t max;
        bool done;
        int r;
        UpkErr err;
} MemoryFetch;

static int memory_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        MemoryFetch *m = userdata;

        if (m->size + size + 1 > m->allocated) {
                size_t want = m->allocated ? m->allocated : 64 * 1024;
                char *n;

                while (want < m->size + size + 1)
                        want *= 2;
                if (want > m->max + 1)
                        want = (size_t)m->max + 1;
                n = realloc(m->buf, want);
                if (!n)
                        return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
                m->buf = n;
                m->allocated = want;
        }
        memcpy(m->buf + m->size, buf, size);
        m->size += size;
        return FETCH_DATA_CONTINUE;
}

static void memory_done(Fetch *f, int r, const UpkErr *err, void *userdata)
{
        MemoryFetch *m = userdata;

        m->done = true;
        m->r = r;
        if (r < 0 && err)
                m->err = *err;
}

int fetch_to_memory(const char *url, uint64_t max_length, const FetchOptions *opts, char **ret,
                    size_t *ret_size, UpkErr *err)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(fetch_engine_freep) FetchEngine *e = NULL;
        _cleanup_(fetch_freep) Fetch *f = NULL;
        MemoryFetch m = { .max = max_length };
        int r;

        if (max_length > FETCH_MEMORY_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%s: maximum length %" PRIu64 " above %u",
                               url ?: "(null)", max_length, FETCH_MEMORY_MAX);
        r = sd_event_new(&event);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot create an event loop: %s", strerror(-r));
        r = fetch_engine_new(event, &e, err);
        if (r < 0)
                return r;
        r = fetch_new(e, url, max_length, opts, memory_data, memory_done, &m, &f, err);
        if (r < 0)
                return r;
        while (!m.done) {
                r = sd_event_run(event, UINT64_MAX);
                if (r < 0) {
                        free(m.buf);
                        return upk_err(err, UPK_ERR_IO, r, "%s: event loop failed: %s", url, strerror(-r));
                }
        }
        if (m.r < 0) {
                free(m.buf);
                if (err && err->kind == UPK_ERR_NONE)
                        *err = m.err;
                return m.r;
        }
        if (!m.buf) {
                m.buf = malloc(1);
                if (!m.buf)
                        return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        }
        m.buf[m.size] = 0;
        *ret = m.buf;
        *ret_size = m.size;
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* FetchStream: a ring buffer that the loop appends to, and that the reader thread and, when there is a
 * check, the check's thread consume in place, each at its own pace. Positions count bytes of the body;
 * the ring holds [base, in), base being where the slower consumer is. */

#define STREAM_CHECK_NICE_INCREMENT 10

struct FetchStream {
        Fetch *fetch;
        sd_event_source *wake_source;
        int wake_fd;
        FetchStreamCheckFunc check;
        void *check_userdata;
        pthread_t check_thread;
        bool check_started;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* guarded by lock */
        uint8_t *ring;
        size_t capacity;
        uint64_t in;        /* bytes the loop appended */
        uint64_t read_pos;  /* bytes the reader is done with */
        size_t held;        /* bytes after read_pos that fetch_stream_next() lent out */
        uint64_t check_pos; /* bytes the check has seen */
        bool check_ended;   /* the check saw the end, failed or stopped */
        bool full_paused;   /* the loop paused the fetch for want of space ... */
        size_t wanted;      /* ... for a block of this size */
        bool wake_pending;  /* a consumer has written to the eventfd */
        bool reader_waiting;
        size_t reader_want; /* the waiting reader is woken once this many bytes are there */
        bool check_waiting; /* the check's thread is woken once a batch is there, or at the end */
        bool finished;      /* the transfer ended (done, failed or cancelled) */
        bool cancelled, quit;
        int r; /* the transfer's or the check's failure */
        UpkErr err;
};

static uint64_t stream_base(const FetchStream *s)
{
        return s->check && s->check_pos < s->read_pos ? s->check_pos : s->read_pos;
}

/* Enough room to resume a paused transfer: the refused block, and at least half the buffer (so that the
 * loop is not woken for every block). */
static bool stream_has_room(const FetchStream *s)
{
        size_t room = s->capacity - (size_t)(s->in - stream_base(s));

        return room >= s->wanted && room >= s->capacity / 2;
}

static void stream_kick(FetchStream *s)
{
        const uint64_t one = 1;

        /* Cannot block: an eventfd counter only overflows after 2^64-2 writes. */
        if (write(s->wake_fd, &one, sizeof(one)) < 0)
                return;
}

/* With the lock held, after a consumer moved on: wake the loop (once) when a paused transfer can go
 * on, or when the check failed and the transfer must stop. Drops the lock for the write, so the
 * caller re-checks what it waits for. */
static void stream_moved_on(FetchStream *s)
{
        if (s->wake_pending || !((s->full_paused && stream_has_room(s)) || (s->r < 0 && !s->finished)))
                return;
        s->wake_pending = true;
        pthread_mutex_unlock(&s->lock);
        stream_kick(s);
        pthread_mutex_lock(&s->lock);
}

/* With the lock held: the stream fails for good with `r` and `err` (the first failure stays). */
static void stream_fail(FetchStream *s, int r, const UpkErr *err, const char *what)
{
        if (s->r < 0)
                return;
        s->r = r < 0 ? r : -EIO;
        if (err && err->kind != UPK_ERR_NONE)
                s->err = *err;
        else
                upk_err(&s->err, UPK_ERR_NETWORK, s->r, "%s failed", what);
}

static int stream_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        FetchStream *s = userdata;
        size_t tail, first;
        bool wake;

        pthread_mutex_lock(&s->lock);
        if (s->cancelled || s->r < 0) {
                /* cancelled, or the check failed: the transfer is of no use any more */
                int r = s->cancelled ? -ECANCELED : s->r;
                UpkErr e = s->err;

                pthread_mutex_unlock(&s->lock);
                if (r == -ECANCELED)
                        return upk_err(err, UPK_ERR_NETWORK, r, "%s: download cancelled", fetch_get_url(f));
                *err = e;
                return r;
        }
        if (size > s->capacity) {
                pthread_mutex_unlock(&s->lock);
                return upk_err(err, UPK_ERR_IO, -ENOBUFS,
                               "%s: a block of %zu bytes exceeds the %zu byte buffer", fetch_get_url(f),
                               size, s->capacity);
        }
        if (s->capacity - (size_t)(s->in - stream_base(s)) < size) {
                s->full_paused = true;
                s->wanted = size;
                pthread_mutex_unlock(&s->lock);
                return FETCH_DATA_PAUSE;
        }
        tail = (size_t)(s->in % s->capacity);
        pthread_mutex_unlock(&s->lock);

        /* Only this thread appends, and the consumers never touch [in, base + capacity): copy without
         * the lock. */
        first = s->capacity - tail < size ? s->capacity - tail : size;
        memcpy(s->ring + tail, buf, first);
        memcpy(s->ring, (const uint8_t *)buf + first, size - first);

        pthread_mutex_lock(&s->lock);
        s->in += size;
        /* Wake a consumer for a batch rather than for every block the network brings. */
        wake = (s->reader_waiting && s->in - s->read_pos >= s->reader_want) ||
               (s->check_waiting && s->in - s->check_pos >= s->capacity / 4);
        pthread_mutex_unlock(&s->lock);
        if (wake)
                pthread_cond_broadcast(&s->cond);
        return FETCH_DATA_CONTINUE;
}

static void stream_done(Fetch *f, int r, const UpkErr *err, void *userdata)
{
        FetchStream *s = userdata;

        pthread_mutex_lock(&s->lock);
        s->finished = true;
        if (r < 0)
                stream_fail(s, r, err, "download");
        pthread_mutex_unlock(&s->lock);
        pthread_cond_broadcast(&s->cond);
}

static int on_stream_wake(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        FetchStream *s = userdata;
        uint64_t v;
        bool stop, resume = false;

        /* Nonblocking; a spurious wake-up reads nothing, which is fine. */
        if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                return 0;
        pthread_mutex_lock(&s->lock);
        /* Cancelled, or the check failed while the transfer runs: stop it. */
        stop = s->cancelled || (s->r < 0 && !s->finished);
        s->wake_pending = false;
        if (!stop && s->full_paused && stream_has_room(s)) {
                s->full_paused = false;
                resume = true;
        }
        pthread_mutex_unlock(&s->lock);

        if (stop) {
                s->fetch = fetch_free(s->fetch);
                s->wake_source = sd_event_source_disable_unref(s->wake_source);
                pthread_mutex_lock(&s->lock);
                s->finished = true;
                pthread_mutex_unlock(&s->lock);
                pthread_cond_broadcast(&s->cond);
        } else if (resume && s->fetch)
                fetch_resume(s->fetch);
        return 0;
}

int fetch_stream_new(FetchEngine *e, const char *url, uint64_t max_length, const FetchOptions *opts,
                     size_t buffer_size, FetchStream **ret, UpkErr *err)
{
        _cleanup_(fetch_stream_freep) FetchStream *s = NULL;
        int r;

        if (buffer_size == 0)
                buffer_size = FETCH_STREAM_BUFFER_DEFAULT;
        if (buffer_size < FETCH_STREAM_BUFFER_MIN || buffer_size > FETCH_STREAM_BUFFER_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "stream buffer of %zu bytes out of [%u, %u]",
                               buffer_size, FETCH_STREAM_BUFFER_MIN, FETCH_STREAM_BUFFER_MAX);
        s = calloc(1, sizeof(*s));
        if (!s)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        s->wake_fd = -EBADF;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->capacity = buffer_size;
        s->ring = malloc(buffer_size);
        if (!s->ring)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "out of memory");
        s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->wake_fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "eventfd: %s", strerror(errno));
        r = sd_event_add_io(e->event, &s->wake_source, s->wake_fd, EPOLLIN, on_stream_wake, s);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot watch the stream's eventfd: %s", strerror(-r));
        (void)sd_event_source_set_description(s->wake_source, "fetch-stream-wake");
        r = fetch_new(e, url, max_length, opts, stream_data, stream_done, s, &s->fetch, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

FetchStream *fetch_stream_free(FetchStream *s)
{
        if (!s)
                return NULL;
        fetch_free(s->fetch);
        if (s->check_started) {
                pthread_mutex_lock(&s->lock);
                s->quit = true;
                pthread_mutex_unlock(&s->lock);
                pthread_cond_broadcast(&s->cond);
                pthread_join(s->check_thread, NULL); /* at most one check call away */
        }
        sd_event_source_disable_unref(s->wake_source);
        safe_close(s->wake_fd);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s->ring);
        free(s);
        return NULL;
}

/* The check's thread: every byte in order as the loop appends it, then the end. */
static void *stream_check_thread(void *userdata)
{
        FetchStream *s = userdata;
        UpkErr e = {};
        int r;

        /* Background work beside the event loop: yield the CPU to it. */
        thread_lower_priority(STREAM_CHECK_NICE_INCREMENT);

        pthread_mutex_lock(&s->lock);
        for (;;) {
                while (!s->quit && !s->cancelled && s->r == 0 && !s->finished &&
                       s->in - s->check_pos < s->capacity / 4) {
                        s->check_waiting = true;
                        pthread_cond_wait(&s->cond, &s->lock);
                        s->check_waiting = false;
                }
                if (s->quit || s->cancelled || s->r < 0)
                        break;
                if (s->check_pos < s->in) {
                        size_t off = (size_t)(s->check_pos % s->capacity);
                        size_t n = s->in - s->check_pos < s->capacity - off ? (size_t)(s->in - s->check_pos)
                                                                            : s->capacity - off;

                        /* [check_pos, in) stays put until check_pos moves: check without the lock. */
                        pthread_mutex_unlock(&s->lock);
                        r = s->check(s->ring + off, n, s->check_userdata, &e);
                        pthread_mutex_lock(&s->lock);
                        s->check_pos += n;
                        if (r < 0)
                                stream_fail(s, r, &e, "the download's check");
                        stream_moved_on(s);
                        continue;
                }
                /* The transfer is complete and every byte was seen: the end. */
                pthread_mutex_unlock(&s->lock);
                r = s->check(NULL, 0, s->check_userdata, &e);
                pthread_mutex_lock(&s->lock);
                if (r < 0)
                        stream_fail(s, r, &e, "the download's check");
                break;
        }
        s->check_ended = true;
        pthread_mutex_unlock(&s->lock);
        pthread_cond_broadcast(&s->cond);
        return NULL;
}

int fetch_stream_set_check(FetchStream *s, FetchStreamCheckFunc check, void *userdata, UpkErr *err)
{
        int r;

        assert(!s->check && s->in == 0);
        s->check = check;
        s->check_userdata = userdata;
        r = pthread_create(&s->check_thread, NULL, stream_check_thread, s);
        if (r != 0) {
                s->check = NULL;
                return upk_err(err, UPK_ERR_IO, -r, "cannot start the download's check thread: %s",
                               strerror(r));
        }
        s->check_started = true;
        return 0;
}

/* Reader side, with the lock held: give back what the last fetch_stream_next() lent, then wait until a
 * batch is there (rather than for every block the network brings: fewer wake-ups; a paused transfer
 * always has more than a batch), the body ended (and the check, if any, has seen the end) or the
 * stream failed or was cancelled. Returns the bytes there, or 0 at the end, or -errno. */
static ssize_t stream_wait(FetchStream *s, size_t want)
{
        s->read_pos += s->held;
        s->held = 0;
        stream_moved_on(s);
        s->reader_want = want < s->capacity / 4 ? want : s->capacity / 4;
        for (;;) {
                uint64_t avail = s->in - s->read_pos;

                if (s->cancelled)
                        return -ECANCELED;
                if (avail >= s->reader_want || (avail > 0 && (s->finished || s->r < 0)))
                        return (ssize_t)avail;
                if (avail == 0 && (s->r < 0 || (s->finished && (!s->check || s->check_ended))))
                        return s->r; /* 0 at the end */
                s->reader_waiting = true;
                pthread_cond_wait(&s->cond, &s->lock);
                s->reader_waiting = false;
        }
}

ssize_t fetch_stream_read(void *userdata, void *buf, size_t size)
{
        FetchStream *s = userdata;
        ssize_t ret;

        if (size == 0)
                return 0;
        pthread_mutex_lock(&s->lock);
        ret = stream_wait(s, size);
        if (ret > 0) {
                /* The bytes after read_pos stay put while the lock is held: the loop only appends. */
                size_t n = size < (size_t)ret ? size : (size_t)ret;
                size_t off = (size_t)(s->read_pos % s->capacity);
                size_t first = s->capacity - off < n ? s->capacity - off : n;

                memcpy(buf, s->ring + off, first);
                memcpy((uint8_t *)buf + first, s->ring, n - first);
                s->read_pos += n;
                stream_moved_on(s);
                ret = (ssize_t)n;
        }
        pthread_mutex_unlock(&s->lock);
        return ret;
}

ssize_t fetch_stream_next(void *userdata, const void **ret_buf)
{
        FetchStream *s = userdata;
        ssize_t ret;

        pthread_mutex_lock(&s->lock);
        ret = stream_wait(s, s->capacity);
        if (ret > 0) {
                /* One contiguous piece, and at most a quarter of the ring, so that the loop always has
                 * room to go on while the reader works on it. */
                size_t off = (size_t)(s->read_pos % s->capacity);
                size_t n = s->capacity - off < (size_t)ret ? s->capacity - off : (size_t)ret;

                if (n > s->capacity / 4)
                        n = s->capacity / 4;
                s->held = n;
                *ret_buf = s->ring + off;
                ret = (ssize_t)n;
        }
        pthread_mutex_unlock(&s->lock);
        return ret;
}

void fetch_stream_get_error(FetchStream *s, UpkErr *ret)
{
        pthread_mutex_lock(&s->lock);
        if (s->r < 0)
                *ret = s->err;
        else if (s->cancelled) {
                upk_err_clear(ret);
                upk_err(ret, UPK_ERR_NETWORK, -ECANCELED, "download cancelled");
        } else
                upk_err_clear(ret);
        pthread_mutex_unlock(&s->lock);
}

void fetch_stream_cancel(FetchStream *s)
{
        pthread_mutex_lock(&s->lock);
        s->cancelled = true;
        pthread_mutex_unlock(&s->lock);
        pthread_cond_broadcast(&s->cond);
        stream_kick(s);
}

Fetch *fetch_stream_get_fetch(FetchStream *s)
{
        return s->fetch;
}

bool fetch_stream_is_finished(FetchStream *s)
{
        bool r;

        pthread_mutex_lock(&s->lock);
        r = s->finished;
        pthread_mutex_unlock(&s->lock);
        return r;
}
