/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Private to lib/net: the engine and the fetch objects, which fetch-engine.c (libcurl's multi handle
 * on sd-event), fetch.c (one transfer with retry and resume) and fetch-stream.c (the ring a worker
 * thread reads) share. */

#include <curl/curl.h>

#include "fetch.h"

typedef enum FetchState {
        FETCH_RUNNING, /* an attempt is in the multi handle */
        FETCH_WAITING, /* backoff before the next attempt */
        FETCH_FINISHED,
} FetchState;

/* A fetch whose every request asks for byte ranges (fetch-ranges.c). fetch.c keeps the transfer, the
 * retry with backoff, the deadline, the rate and the cancel; the ops own what the bytes mean. The data
 * callback gets each response's body bytes as they come off the wire (`offset` counts them over all
 * responses); the ops keep f->offset and f->stats.delivered at the range bytes handed out, which is the
 * progress that resets the retry budget. */
typedef struct FetchRangeOps {
        /* Before each request: the value for "Range: bytes=...", kept until the next call. */
        const char *(*request)(Fetch *f, void *userdata);
        /* A 200 or 206 answer, before its first body byte: 0 to take its body, or -errno with `err`
         * (final). Other statuses are handled as for any fetch. */
        int (*response)(Fetch *f, long status, void *userdata, UpkErr *err);
        /* The response ended without a transport error: 1 when every range was delivered, 0 when another
         * request is needed (it follows at once), or -errno with `err` and *ret_retriable. */
        int (*end)(Fetch *f, void *userdata, bool *ret_retriable, UpkErr *err);
        /* Every range was delivered (a transfer that failed at its very end is then a success). */
        bool (*complete)(void *userdata);
} FetchRangeOps;

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
        struct curl_slist *headers;
        char *method;
        void *body;
        size_t body_size;
        bool any_status;
        unsigned connect_timeout_sec, low_speed_limit, low_speed_time_sec, retries;
        bool no_retry;
        uint64_t backoff_msec, backoff_max_msec;

        FetchState state;
        bool paused, in_data_cb, in_multi;
        sd_event_source *retry_timer;
        sd_event_source *rate_timer;    /* deadline and minimum rate, when either is set */
        sd_event_source *cancel_source; /* the cancel descriptor, when given */
        uint64_t start_usec, deadline_usec, paused_usec, last_tick_usec;
        uint64_t deadline_msec;
        unsigned min_rate, min_rate_grace_sec;
        uint64_t offset; /* bytes delivered = the next byte wanted */
        unsigned streak; /* consecutive failed attempts, reset by an attempt that made progress */
        /* What identifies the file's version: the first answer's strong ETag, else its Last-Modified
         * ("" if it had neither). Sent as If-Range on a resume, and compared with later answers. */
        char validator[FETCH_ETAG_MAX];
        bool validator_is_etag;
        struct curl_slist *resume_headers; /* f->headers plus If-Range, for the current resume */

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
        const FetchRangeOps *range_ops; /* NULL for a plain fetch */
};

/* fetch.c: take the fetch off the engine's multi handle and stop its retry timer. */
void fetch_detach(Fetch *f);
/* fetch.c: the current attempt ended with curl's `code` (the engine saw it finish). */
void fetch_attempt_done(Fetch *f, CURLcode code);

/* fetch.c: a fetch of byte ranges (see FetchRangeOps); `validator` (an ETag, may be NULL or "") goes out
 * as If-Range with every request; `total` is the file's size if known, else UINT64_MAX. */
int fetch_new_ranged(FetchEngine *e, const char *url, uint64_t total, const char *validator,
                     const FetchOptions *opts, const FetchRangeOps *ops, FetchDataFunc data,
                     FetchDoneFunc done, void *userdata, Fetch **ret, UpkErr *err);
/* fetch.c: overwrite the string of each node of `l` with zeros (explicit_bzero()), for lists that hold
 * request headers, among them an "Authorization:" line with a token; and that, then
 * curl_slist_free_all(). Both accept NULL; slist_free_erase() returns NULL. Every list of request
 * headers (Fetch.headers, Fetch.resume_headers) is freed with slist_free_erase(). */
void slist_erase(struct curl_slist *l);
struct curl_slist *slist_free_erase(struct curl_slist *l);
/* fetch.c: a header of the current attempt's final response, or NULL. */
const char *fetch_response_header(Fetch *f, const char *name);

/* fetch-stream.c, for a producer other than a plain fetch (fetch-ranges.c): a stream without a fetch, to
 * which the producer attaches its fetch and its state (freed with the stream, after the fetch). */
typedef struct FetchRanges FetchRanges;
FetchRanges *fetch_ranges_free(FetchRanges *r);
int fetch_stream_alloc(FetchEngine *e, size_t buffer_size, FetchStream **ret, UpkErr *err);
void fetch_stream_attach(FetchStream *s, Fetch *f, FetchRanges *ranges);
FetchRanges *fetch_stream_get_ranges(FetchStream *s);
/* From the fetch's data callback: FETCH_DATA_CONTINUE when `size` bytes fit into the ring now (append
 * them, or fewer, with fetch_stream_append() before returning), FETCH_DATA_PAUSE when not (the fetch is
 * resumed once there is room), or -errno with `err` (cancelled, or the check failed). */
int fetch_stream_reserve(FetchStream *s, Fetch *f, size_t size, UpkErr *err);
void fetch_stream_append(FetchStream *s, const void *buf, size_t size);
/* From the fetch's done callback. */
void fetch_stream_done(FetchStream *s, int r, const UpkErr *err);
