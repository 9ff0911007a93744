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
};

/* fetch.c: take the fetch off the engine's multi handle and stop its retry timer. */
void fetch_detach(Fetch *f);
/* fetch.c: the current attempt ended with curl's `code` (the engine saw it finish). */
void fetch_attempt_done(Fetch *f, CURLcode code);
