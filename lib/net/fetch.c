/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One transfer on the engine: its curl handle and options, the response checks, the retry with backoff
 * and the resume with Range; and fetch_to_memory() over it with a private loop. */

#include "fetch.h"

#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "conf.h"
#include "fetch-internal.h"

/* Body bytes curl hands us per write callback at most (its receive buffer). */
#define FETCH_CURL_BUFFER_SIZE (128 * 1024L)
#define FETCH_USER_AGENT       "upkeep/" PACKAGE_VERSION
/* TLS 1.2 suites with forward secrecy only: ephemeral (EC)DH key exchange, authenticated, AEAD ciphers; a
 * server key stolen later does not decrypt a recorded download. Every TLS 1.3 suite has it already. In
 * OpenSSL's syntax, so used only where libcurl's TLS library is OpenSSL or one of its forks. */
#define FETCH_TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL"

static bool tls_is_openssl(void)
{
        static const char *const names[] = { "OpenSSL/", "LibreSSL/", "BoringSSL", "AWS-LC/", "quictls/" };
        const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

        for (size_t i = 0; v && v->ssl_version && i < ELEMENTSOF(names); i++)
                if (strncmp(v->ssl_version, names[i], strlen(names[i])) == 0)
                        return true;
        return false;
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

void fetch_detach(Fetch *f)
{
        if (f->in_multi) {
                curl_multi_remove_handle(f->engine->multi, f->easy);
                f->in_multi = false;
        }
        f->retry_timer = sd_event_source_disable_unref(f->retry_timer);
}

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

/* The plain http:// URL an https:// download was redirected to (and libcurl refused), or NULL. */
static const char *refused_plain_redirect(Fetch *f)
{
        const char *to = NULL;

        if (strncasecmp(f->url, "https://", 8) != 0 ||
            curl_easy_getinfo(f->easy, CURLINFO_EFFECTIVE_URL, &to) != CURLE_OK || !to ||
            strncasecmp(to, "http://", 7) != 0)
                return NULL;
        return to;
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
        f->rate_timer = sd_event_source_disable_unref(f->rate_timer);
        f->cancel_source = sd_event_source_disable_unref(f->cancel_source);
        fetch_detach(f);
        f->state = FETCH_FINISHED;
        if (f->done_cb)
                f->done_cb(f, r, err, f->userdata);
}

/* ETag and Retry-After of the final response. */
static void fetch_note_headers(Fetch *f)
{
        struct curl_header *h = NULL;
        uint64_t sec;

        f->stats.etag[0] = 0;
        f->stats.retry_after_sec = 0;
        if (curl_easy_header(f->easy, "ETag", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
            strlen(h->value) < sizeof(f->stats.etag))
                memcpy(f->stats.etag, h->value, strlen(h->value) + 1);
        if (curl_easy_header(f->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
            safe_atou64(h->value, &sec) >= 0)
                f->stats.retry_after_sec = sec > 86400 ? 86400 : (unsigned)sec;
}

const char *fetch_response_header(Fetch *f, const char *name)
{
        struct curl_header *h = NULL;

        if (curl_easy_header(f->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
                return NULL;
        return h->value;
}

/* What this answer says the file's version is, of the kind of f->validator: NULL if it says nothing. */
static const char *response_validator(Fetch *f, bool etag)
{
        const char *v = fetch_response_header(f, etag ? "ETag" : "Last-Modified");

        if (!v || !*v || strlen(v) >= sizeof(f->validator) || strpbrk(v, "\r\n"))
                return NULL;
        if (etag && strncmp(v, "W/", 2) == 0)
                return NULL; /* a weak ETag cannot make a range request conditional */
        return v;
}

/* Remember the version of the file the first answer delivers, for If-Range on a resume. */
static void fetch_note_validator(Fetch *f)
{
        const char *v;
        bool etag = true;

        f->validator[0] = 0;
        v = response_validator(f, true);
        if (!v) {
                etag = false;
                v = response_validator(f, false);
        }
        if (!v)
                return;
        memcpy(f->validator, v, strlen(v) + 1);
        f->validator_is_etag = etag;
}

/* A resume answer that names another version of the file than the first answer did: sets f->attempt_r.
 * Bytes of two versions must not be joined, and a stream cannot take back what it delivered. */
static bool fetch_changed_on_server(Fetch *f)
{
        const char *v;

        if (!f->validator[0])
                return false;
        v = response_validator(f, f->validator_is_etag);
        if (!v || streq(v, f->validator))
                return false;
        f->attempt_r = upk_err(&f->attempt_err, UPK_ERR_NETWORK, -ESTALE,
                               "%s: the file changed on the server during the download (%s %s, before %s); "
                               "the %" PRIu64 " bytes received are of the old version",
                               f->url, f->validator_is_etag ? "ETag" : "Last-Modified", v, f->validator,
                               f->attempt_offset);
        return true;
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
        fetch_note_headers(f);
        if (f->any_status && code != 206)
                code = 200; /* an answer, whatever its status: the caller looks at http_status */
        if (f->range_ops && (code == 200 || code == 206)) {
                r = f->range_ops->response(f, code, f->userdata, &f->attempt_err);
                if (r < 0)
                        f->attempt_r = r;
                return;
        }

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
                if (f->attempt_offset == 0) {
                        if (f->stats.http_status == 200)
                                fetch_note_validator(f);
                } else if (fetch_changed_on_server(f))
                        return; /* If-Range did not match: the whole new version follows */
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
                if (fetch_changed_on_server(f))
                        return; /* a server that did not look at If-Range */
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
                /* Of a range fetch, every body byte goes to the data callback, its offset counting the
                 * bytes of all responses; the range bytes it hands out are bounded by the ranges. */
                const uint64_t offset = f->range_ops ? f->stats.received : f->offset;

                if (!f->range_ops && len > f->max_length - f->offset) {
                        f->stats.received += n;
                        f->attempt_r = upk_err(&f->attempt_err, UPK_ERR_NETWORK, -EFBIG,
                                               "%s: the server sent more than the %" PRIu64
                                               " bytes allowed; cut off",
                                               f->url, f->max_length);
                        return 0;
                }
                f->in_data_cb = true;
                r = f->data_cb(f, data, len, offset, f->userdata, &f->attempt_err);
                f->in_data_cb = false;
                if (r < 0) {
                        if (f->attempt_err.kind == UPK_ERR_NONE)
                                upk_err(&f->attempt_err, UPK_ERR_IO, r,
                                        "%s: the consumer refused byte %" PRIu64, f->url, offset);
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
        if (!f->range_ops) {
                f->offset += len;
                f->stats.delivered += len;
        }
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

/* The next attempt after `usec` (0: as soon as the loop is back), from a timer rather than from inside
 * the engine's handling of the multi handle. */
static int fetch_schedule_attempt(Fetch *f, uint64_t usec, UpkErr *err)
{
        int r;

        r = sd_event_add_time_relative(f->engine->event, &f->retry_timer, CLOCK_MONOTONIC, usec, 1,
                                       on_retry_timer, f);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: cannot schedule the next request: %m", f->url);
        (void)sd_event_source_set_description(f->retry_timer, "fetch-retry");
        f->state = FETCH_WAITING;
        return 0;
}

/* The current attempt ended with curl's `code`. */
void fetch_attempt_done(Fetch *f, CURLcode code)
{
        bool retriable = false, progress;
        const char *to;
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
        } else if (code == CURLE_UNSUPPORTED_PROTOCOL && (to = refused_plain_redirect(f))) {
                r = upk_err(&e, UPK_ERR_NETWORK, -EPROTONOSUPPORT,
                            "%s: refused the redirect to %s: a download that starts on https:// stays on "
                            "https://",
                            f->url, to);
                retriable = false;
        } else if (code != CURLE_OK) {
                UpkErrKind kind;

                r = errno_of_curl(code, &retriable, &kind);
                upk_err(&e, kind, r, "%s: %s%s%s (at byte %" PRIu64 ")", f->url, curl_easy_strerror(code),
                        f->errbuf[0] ? ": " : "", f->errbuf, f->offset);
        } else if (f->range_ops) {
                r = f->range_ops->end(f, f->userdata, &retriable, &e);
                if (r == 0) {
                        /* This answer was complete, more ranges are wanted: the next request, at once. */
                        f->streak = 0;
                        r = fetch_schedule_attempt(f, 0, &e);
                        if (r < 0)
                                fetch_finish(f, r, &e);
                        return;
                }
                if (r > 0)
                        r = 0;
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
        if (retriable && f->range_ops && f->range_ops->complete(f->userdata)) {
                fetch_finish(f, 0, NULL);
                return;
        }
        if (retriable && !f->range_ops && f->stats.total != UINT64_MAX && f->offset == f->stats.total &&
            f->skip == 0) {
                fetch_finish(f, 0, NULL);
                return;
        }

        progress = f->offset > f->attempt_offset;
        f->streak = progress ? 1 : f->streak + 1;
        /* A range fetch makes one request per batch of ranges: only its retries count against the cap. */
        if (!retriable || f->no_retry || f->streak > f->retries ||
            (f->range_ops ? f->stats.retries : f->stats.attempts) >= FETCH_ATTEMPTS_MAX) {
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
        r = fetch_schedule_attempt(f, delay * 1000u, NULL);
        if (r < 0) {
                upk_err_prefix(&e, "cannot schedule a retry (%s)", strerror(-r));
                fetch_finish(f, e.code, &e);
                return;
        }
        f->stats.retries++;
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
        if (tls_is_openssl())
                SET(CURLOPT_SSL_CIPHER_LIST, FETCH_TLS12_CIPHERS);
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
        if (f->headers)
                SET(CURLOPT_HTTPHEADER, f->headers);
        if (f->method && !streq(f->method, "GET")) {
                SET(CURLOPT_POSTFIELDS, f->body ?: "");
                SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->body_size);
                if (!streq(f->method, "POST"))
                        SET(CURLOPT_CUSTOMREQUEST, f->method);
        }
#undef SET
        if (cc != CURLE_OK)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%s: libcurl refused an option: %s", f->url,
                               curl_easy_strerror(cc));
        return 0;
}

void slist_erase(struct curl_slist *l)
{
        for (; l; l = l->next)
                if (l->data)
                        explicit_bzero(l->data, strlen(l->data));
}

struct curl_slist *slist_free_erase(struct curl_slist *l)
{
        slist_erase(l);
        curl_slist_free_all(l);
        return NULL;
}

static int slist_add(struct curl_slist **list, const char *s)
{
        struct curl_slist *l = curl_slist_append(*list, s);

        if (!l)
                return -ENOMEM;
        *list = l;
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
        f->resume_headers = slist_free_erase(f->resume_headers);
        if ((f->offset > 0 || f->range_ops) && f->validator[0]) {
                /* Only the version already begun: a changed file is answered with 200 and found out. */
                char line[sizeof(f->validator) + 16];
                bool oom = false;

                snprintf(line, sizeof(line), "If-Range: %s", f->validator);
                for (struct curl_slist *i = f->headers; i && !oom; i = i->next)
                        oom = slist_add(&f->resume_headers, i->data) < 0;
                if (oom || slist_add(&f->resume_headers, line) < 0) {
                        f->resume_headers = slist_free_erase(f->resume_headers);
                        return upk_err(err, UPK_ERR_NETWORK, -ENOMEM, "%s: out of memory", f->url);
                }
        }
        (void)curl_easy_setopt(f->easy, CURLOPT_HTTPHEADER, f->resume_headers ?: f->headers);
        if (f->range_ops)
                (void)curl_easy_setopt(f->easy, CURLOPT_RANGE, f->range_ops->request(f, f->userdata));
        else if (f->offset > 0) {
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

static uint64_t monotonic_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The deadline and the minimum average rate, looked at every FETCH_RATE_CHECK_USEC. */
static int on_rate_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        Fetch *f = userdata;
        uint64_t now = monotonic_usec(), active;
        UpkErr e = {};

        if (f->paused)
                f->paused_usec += now - f->last_tick_usec;
        f->last_tick_usec = now;
        if (f->deadline_usec && now >= f->deadline_usec) {
                (void)upk_err(&e, UPK_ERR_NETWORK, -ETIMEDOUT,
                              "%s: not complete within its deadline of %" PRIu64 ".%03u s (%" PRIu64
                              " of at most %" PRIu64 " bytes received): the server is too slow",
                              f->url, f->deadline_msec / 1000, (unsigned)(f->deadline_msec % 1000),
                              f->offset, f->max_length);
                fetch_finish(f, -ETIMEDOUT, &e); /* may free f */
                return 0;
        }
        active = now - f->start_usec - f->paused_usec;
        if (f->min_rate && active >= (uint64_t)f->min_rate_grace_sec * 1000000u &&
            f->offset * 1000000u / (active ?: 1) < f->min_rate) {
                (void)upk_err(&e, UPK_ERR_NETWORK, -ETIMEDOUT,
                              "%s: %" PRIu64 " bytes in %" PRIu64 " s, below the minimum average rate of %u "
                              "bytes/s: the server is too slow",
                              f->url, f->offset, active / 1000000u, f->min_rate);
                fetch_finish(f, -ETIMEDOUT, &e);
                return 0;
        }
        (void)sd_event_source_set_time_relative(s, FETCH_RATE_CHECK_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_cancel_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        Fetch *f = userdata;
        UpkErr e = {};

        (void)upk_err(&e, UPK_ERR_NETWORK, -ECANCELED, "%s: cancelled", f->url);
        fetch_finish(f, -ECANCELED, &e);
        return 0;
}

static int fetch_setup_watch(Fetch *f, const FetchOptions *opts, UpkErr *err)
{
        int r;

        f->start_usec = f->last_tick_usec = monotonic_usec();
        f->deadline_msec = opts->deadline_msec;
        f->min_rate = opts->min_rate;
        f->min_rate_grace_sec = opts->min_rate_grace_sec ?: FETCH_MIN_RATE_GRACE_DEFAULT;
        if (f->deadline_msec)
                f->deadline_usec = f->start_usec + f->deadline_msec * 1000u;
        if (f->deadline_msec || f->min_rate) {
                r = sd_event_add_time_relative(f->engine->event, &f->rate_timer, CLOCK_MONOTONIC,
                                               FETCH_RATE_CHECK_USEC, 1000, on_rate_timer, f);
                if (r < 0)
                        return upk_err(err, UPK_ERR_IO, r, "cannot add a timer: %m");
                (void)sd_event_source_set_description(f->rate_timer, "fetch-rate");
        }
        if (opts->cancel_fd > 0) {
                r = sd_event_add_io(f->engine->event, &f->cancel_source, opts->cancel_fd, EPOLLIN,
                                    on_cancel_fd, f);
                if (r < 0)
                        return upk_err(err, UPK_ERR_IO, r, "cannot watch the cancel descriptor: %m");
                (void)sd_event_source_set_description(f->cancel_source, "fetch-cancel");
        }
        return 0;
}

static int check_readable(const char *what, const char *path, UpkErr *err)
{
        if (access(path, R_OK) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -errno, "%s %s: %m", what, path);
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

static int fetch_create(FetchEngine *e, const char *url, uint64_t max_length, const FetchOptions *opts,
                        const FetchRangeOps *ops, const char *validator, FetchDataFunc data,
                        FetchDoneFunc done, void *userdata, Fetch **ret, UpkErr *err)
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
                return upk_err_oom(err);
        f->url = strdup_or_null(url, &oom);
        f->ca_file = strdup_or_null(opts->ca_file, &oom);
        f->client_cert = strdup_or_null(opts->client_cert, &oom);
        f->client_key = strdup_or_null(opts->client_key, &oom);
        f->proxy = strdup_or_null(opts->proxy, &oom);
        f->method = strdup_or_null(opts->method, &oom);
        for (size_t i = 0; !oom && opts->headers && opts->headers[i]; i++) {
                struct curl_slist *l;

                if (i >= FETCH_HEADERS_MAX || strpbrk(opts->headers[i], "\r\n"))
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                       "%s: more than %d request headers, or one with a line break", url,
                                       FETCH_HEADERS_MAX);
                l = curl_slist_append(f->headers, opts->headers[i]);
                if (!l)
                        oom = true;
                else
                        f->headers = l;
        }
        if (!oom && opts->body_size > 0) {
                f->body = malloc(opts->body_size);
                if (f->body)
                        memcpy(f->body, opts->body, opts->body_size);
                else
                        oom = true;
        }
        if (oom)
                return upk_err_oom(err);
        f->body_size = opts->body_size;
        f->any_status = opts->any_status;
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
        f->range_ops = ops;
        if (ops) {
                f->stats.total = max_length;
                /* Only a strong ETag makes a range request conditional; a weak one is not sent. */
                if (validator && strlen(validator) < sizeof(f->validator) && !strpbrk(validator, "\r\n") &&
                    strncmp(validator, "W/", 2) != 0) {
                        memcpy(f->validator, validator, strlen(validator) + 1);
                        f->validator_is_etag = true;
                }
        }

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

        r = fetch_setup_watch(f, opts, err);
        if (r < 0)
                return r;
        r = fetch_start_attempt(f, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(f);
        return 0;
}

int fetch_new(FetchEngine *e, const char *url, uint64_t max_length, const FetchOptions *opts,
              FetchDataFunc data, FetchDoneFunc done, void *userdata, Fetch **ret, UpkErr *err)
{
        return fetch_create(e, url, max_length, opts, NULL, NULL, data, done, userdata, ret, err);
}

int fetch_new_ranged(FetchEngine *e, const char *url, uint64_t total, const char *validator,
                     const FetchOptions *opts, const FetchRangeOps *ops, FetchDataFunc data,
                     FetchDoneFunc done, void *userdata, Fetch **ret, UpkErr *err)
{
        return fetch_create(e, url, total, opts, ops, validator, data, done, userdata, ret, err);
}

Fetch *fetch_free(Fetch *f)
{
        if (!f)
                return NULL;
        f->rate_timer = sd_event_source_disable_unref(f->rate_timer);
        f->cancel_source = sd_event_source_disable_unref(f->cancel_source);
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
        slist_free_erase(f->headers);
        slist_free_erase(f->resume_headers);
        free(f->method);
        free(f->body);
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

const FetchStats *fetch_get_stats(const Fetch *f)
{
        return &f->stats;
}

const char *fetch_get_url(const Fetch *f)
{
        return f->url;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Into memory, with a private loop */

typedef struct MemoryFetch {
        char *buf;
        size_t size, allocated;
        uint64_t max;
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
                        return upk_err_oom(err);
                m->buf = n;
                m->allocated = want;
        }
        memcpy(m->buf + m->size, buf, size);
        m->size += size;
        return FETCH_DATA_CONTINUE;
}

int fetch_to_memory(const char *url, uint64_t max_length, const FetchOptions *opts, char **ret,
                    size_t *ret_size, UpkErr *err)
{
        return fetch_request(url, max_length, opts, ret, ret_size, NULL, err);
}

/* A fetch with a private event loop, run until its done callback. */
typedef struct SyncFetch {
        FetchDataFunc data;
        void *userdata;
        bool done;
        int r;
        UpkErr err;
} SyncFetch;

static int sync_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        SyncFetch *x = userdata;

        return x->data(f, buf, size, offset, x->userdata, err);
}

static void sync_done(Fetch *f, int r, const UpkErr *err, void *userdata)
{
        SyncFetch *x = userdata;

        x->done = true;
        x->r = r;
        if (r < 0 && err)
                x->err = *err;
}

int fetch_sync(const char *url, uint64_t max_length, const FetchOptions *opts, FetchDataFunc data,
               void *userdata, FetchStats *ret_stats, UpkErr *err)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(fetch_engine_freep) FetchEngine *e = NULL;
        _cleanup_(fetch_freep) Fetch *f = NULL;
        SyncFetch x = { .data = data, .userdata = userdata };
        int r;

        r = sd_event_new(&event);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot create an event loop: %m");
        r = fetch_engine_new(event, &e, err);
        if (r < 0)
                return r;
        r = fetch_new(e, url, max_length, opts, sync_data, sync_done, &x, &f, err);
        if (r < 0)
                return r;
        while (!x.done) {
                r = sd_event_run(event, UINT64_MAX);
                if (r < 0)
                        return upk_err(err, UPK_ERR_IO, r, "%s: event loop failed: %m", url);
        }
        if (ret_stats)
                *ret_stats = *fetch_get_stats(f);
        if (x.r < 0) {
                if (err && err->kind == UPK_ERR_NONE)
                        *err = x.err;
                return x.r;
        }
        return 0;
}

int fetch_request(const char *url, uint64_t max_length, const FetchOptions *opts, char **ret,
                  size_t *ret_size, FetchStats *ret_stats, UpkErr *err)
{
        MemoryFetch m = { .max = max_length };
        int r;

        if (max_length > FETCH_MEMORY_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%s: maximum length %" PRIu64 " above %u",
                               url ?: "(null)", max_length, FETCH_MEMORY_MAX);
        r = fetch_sync(url, max_length, opts, memory_data, &m, ret_stats, err);
        if (r < 0) {
                free(m.buf);
                return r;
        }
        if (!m.buf) {
                m.buf = malloc(1);
                if (!m.buf)
                        return upk_err_oom(err);
        }
        m.buf[m.size] = 0;
        *ret = m.buf;
        *ret_size = m.size;
        return 0;
}
