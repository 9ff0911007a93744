/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Downloads over HTTP(S) with libcurl's multi interface inside an sd-event loop: no thread per
 * download, the loop stays responsive. One FetchEngine per sd_event; any number of Fetch objects on it.
 *
 * A Fetch hands its body bytes to a data callback as they arrive, in order, each byte exactly once, and
 * reports the end once through a done callback. After a transient failure (connection reset, truncated
 * body, stalled transfer below the low-speed limit, HTTP 408/429/5xx, connection refused) it waits with
 * an exponential backoff and continues with "Range: bytes=N-" from the first byte not yet delivered:
 *   - a 206 is accepted only when its Content-Range starts at N and its total (when given) matches the
 *     size the server announced before (otherwise: -ESTALE or -EPROTO, final);
 *   - a 200 to the ranged request (a server ignoring Range) is accepted too: its first N bytes are
 *     received again but dropped, not handed out twice;
 *   - any other 4xx is final (404/410 -ENOENT, 401/403 -EACCES, others -EIO).
 * The hard cap `max_length` stops the transfer with -EFBIG as soon as a response announces more
 * (Content-Length, Content-Range total) or more bytes arrive.
 *
 * Only http:// and https:// URLs; redirects are followed (at most FETCH_REDIRECTS_MAX) to http(s) only,
 * and from an https:// URL only to https://. TLS 1.2 or newer with peer and host name verification
 * always on, against the configured CA file or the system store. Without `proxy`, libcurl's own
 * environment handling applies (http_proxy, https_proxy, no_proxy).
 *
 * Errors: UpkErr kind UPK_ERR_NETWORK (transport, TLS, HTTP status, length), UPK_ERR_CONFIG (bad
 * options: URL, CA or client certificate files), or whatever the data callback reported.
 *
 * Threads: FetchEngine and Fetch belong to the thread running their sd_event. FetchStream is the one
 * bridge to a worker thread (fetch_stream_read(), fetch_stream_cancel()). */

#include <systemd/sd-event.h>

#include "error.h"

typedef struct Config Config;

#define FETCH_URL_MAX                  8192
#define FETCH_REDIRECTS_MAX            5
#define FETCH_RETRIES_DEFAULT          6    /* consecutive failed attempts without progress */
#define FETCH_ATTEMPTS_MAX             1000 /* all attempts of one fetch, with or without progress */
#define FETCH_BACKOFF_DEFAULT_MSEC     1000
#define FETCH_BACKOFF_MAX_DEFAULT_MSEC 60000
#define FETCH_CONNECT_TIMEOUT_DEFAULT  30 /* seconds */
#define FETCH_LOW_SPEED_LIMIT_DEFAULT  1  /* bytes per second ... */
#define FETCH_LOW_SPEED_TIME_DEFAULT   60 /* ... during this many seconds: the transfer stalled */
#define FETCH_MIN_RATE_GRACE_DEFAULT   60 /* seconds before the minimum average rate applies */
#define FETCH_RATE_CHECK_USEC          (250 * 1000ULL) /* how often the deadline and rate are looked at */
#define FETCH_STATS_RESUMES_MAX        32
#define FETCH_STREAM_BUFFER_DEFAULT    (4u * 1024u * 1024u)
#define FETCH_STREAM_BUFFER_MIN        (256u * 1024u)
#define FETCH_STREAM_BUFFER_MAX        (256u * 1024u * 1024u)
#define FETCH_ETAG_MAX                 128
#define FETCH_HEADERS_MAX              16
#define FETCH_MEMORY_MAX               (256u * 1024u * 1024u) /* fetch_to_memory() max_length limit */

typedef struct FetchOptions {
        const char *ca_file;     /* PEM CA certificates; NULL: the system store */
        const char *client_cert; /* PEM client certificate, with client_key; NULL: none */
        const char *client_key;
        const char *proxy;            /* NULL: libcurl's environment variables; "": no proxy at all */
        unsigned connect_timeout_sec; /* 0: FETCH_CONNECT_TIMEOUT_DEFAULT */
        unsigned low_speed_limit;     /* bytes/s; 0: FETCH_LOW_SPEED_LIMIT_DEFAULT */
        unsigned low_speed_time_sec;  /* 0: FETCH_LOW_SPEED_TIME_DEFAULT */
        unsigned retries;             /* 0: FETCH_RETRIES_DEFAULT; see no_retry */
        bool no_retry;                /* the first failure is final */
        unsigned backoff_msec;        /* first delay; doubles per failed attempt; 0: default */
        unsigned backoff_max_msec;    /* cap of the delay; 0: FETCH_BACKOFF_MAX_DEFAULT_MSEC */
        /* Against a server that trickles (TUF's "slow retrieval"): the whole fetch, all attempts and
         * their backoff, ends within deadline_msec (0: no deadline); and once min_rate_grace_sec (0:
         * FETCH_MIN_RATE_GRACE_DEFAULT) have passed, the bytes delivered per second since the start (time
         * paused by the consumer not counted) stay at min_rate or above (0: no minimum). Either failure is
         * final: -ETIMEDOUT, UPK_ERR_NETWORK, naming the URL and the reason. */
        uint64_t deadline_msec;
        unsigned min_rate;
        unsigned min_rate_grace_sec;
        /* An eventfd (or any descriptor) that becomes readable to cancel the fetch: -ECANCELED, final.
         * 0 (the default) or negative: none. The fetch does not read it. */
        int cancel_fd;
        /* A REST call (the hawkBit source): extra request header lines ("Name: value", NULL-terminated;
         * copied, and never put into messages), the method ("GET" when NULL, "POST" or "PUT" with `body`
         * of `body_size` bytes), and `any_status`: every final HTTP status is an answer, its body delivered
         * like a 200's, and FetchStats.http_status says which (no retry on a status, no Range). */
        const char *const *headers;
        const char *method;
        const void *body;
        size_t body_size;
        bool any_status;
} FetchOptions;

/* Point `o` at [source] ca, client-cert, client-key and proxy of `c` (strings are borrowed); the other
 * fields are left as they are. */
void fetch_options_from_config(FetchOptions *o, const Config *c);

typedef struct FetchEngine FetchEngine;
typedef struct Fetch Fetch;

/* The engine takes a reference on `event`. */
int fetch_engine_new(sd_event *event, FetchEngine **ret, UpkErr *err);
/* Stops every fetch still on the engine (their done callbacks are not called; they must still be
 * freed with fetch_free()). Not from inside a fetch callback. */
FetchEngine *fetch_engine_free(FetchEngine *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(FetchEngine *, fetch_engine_free);

enum {
        FETCH_DATA_CONTINUE = 0,
        FETCH_DATA_PAUSE = 1, /* these bytes were NOT consumed: hand them again after fetch_resume() */
};

/* Bytes [offset, offset + size) of the body. Return FETCH_DATA_CONTINUE (all consumed),
 * FETCH_DATA_PAUSE (none consumed, delivery paused), or a negative errno (with `err` filled) to stop the
 * fetch: the done callback then gets that error, without retry. Must not free the fetch or the engine. */
typedef int (*FetchDataFunc)(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata,
                             UpkErr *err);
/* Called once: r = 0 when the whole body was delivered, else a negative errno with `err`. The fetch may
 * be freed from here (the engine may not). */
typedef void (*FetchDoneFunc)(Fetch *f, int r, const UpkErr *err, void *userdata);

/* Create a fetch and start it (the transfer begins when the loop runs). `max_length` > 0 is the hard
 * cap. `opts` may be NULL; its strings are copied. Fails with UPK_ERR_CONFIG for a URL that is not
 * http(s), too long, or a CA / certificate / key file that cannot be read. */
int fetch_new(FetchEngine *e, const char *url, uint64_t max_length, const FetchOptions *opts,
              FetchDataFunc data, FetchDoneFunc done, void *userdata, Fetch **ret, UpkErr *err);
/* Stop (no done callback) and free. Not from inside the data callback. NULL-safe. */
Fetch *fetch_free(Fetch *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(Fetch *, fetch_free);

/* Flow control: after fetch_pause() no bytes are handed to the data callback (nor further read from the
 * socket) until fetch_resume(). Both may be called at any time from the loop thread; fetch_pause() also
 * from inside the data callback (the current bytes count as consumed). fetch_resume() may hand buffered
 * bytes to the data callback, and even call the done callback, before it returns; not from inside the
 * data callback. A paused transfer is not subject to the low-speed limit. */
void fetch_pause(Fetch *f);
void fetch_resume(Fetch *f);

typedef struct FetchStats {
        uint64_t delivered; /* bytes handed to the data callback (and consumed) */
        uint64_t received;  /* body bytes received on all attempts (delivered + dropped + refused) */
        uint64_t total;     /* the full size from Content-Length / Content-Range, or UINT64_MAX */
        unsigned attempts;  /* requests made (1 + retries) */
        unsigned retries;
        unsigned ignored_ranges;   /* 200 answers to ranged requests */
        unsigned pauses;           /* times delivery was paused (fetch_pause(), FETCH_DATA_PAUSE) */
        long http_status;          /* of the last response, 0 if none */
        char etag[FETCH_ETAG_MAX]; /* the ETag header of the last response, "" if none (or too long) */
        unsigned retry_after_sec;  /* its Retry-After in seconds (delta form), 0 if none */
        size_t n_resumes;          /* ranged requests made; offsets of the first FETCH_STATS_RESUMES_MAX */
        uint64_t resume_offsets[FETCH_STATS_RESUMES_MAX];
} FetchStats;

const FetchStats *fetch_get_stats(const Fetch *f);
const char *fetch_get_url(const Fetch *f);

/* The whole body of `url` into memory (at most max_length <= FETCH_MEMORY_MAX bytes), with a private
 * sd_event loop: blocking, for a worker thread or a command-line tool. The buffer gets a trailing NUL
 * not counted in *ret_size. */
int fetch_to_memory(const char *url, uint64_t max_length, const FetchOptions *opts, char **ret,
                    size_t *ret_size, UpkErr *err);
/* Blocking as fetch_to_memory(), the bytes going to `data` (as with fetch_new(); FETCH_DATA_PAUSE is not
 * allowed); the fetch's statistics into *ret_stats (optional), also on failure. */
int fetch_sync(const char *url, uint64_t max_length, const FetchOptions *opts, FetchDataFunc data,
               void *userdata, FetchStats *ret_stats, UpkErr *err);
/* The same, and the fetch's statistics (http_status, etag with opts->any_status) into *ret_stats. */
int fetch_request(const char *url, uint64_t max_length, const FetchOptions *opts, char **ret,
                  size_t *ret_size, FetchStats *ret_stats, UpkErr *err);

/* FetchStream: a fetch whose bytes a worker thread pulls, e.g. the installer via
 * bundle_open_next(fetch_stream_next, stream, ...); fetch_stream_new_ranges() (fetch-ranges.h) makes one
 * of some byte ranges of a file. The loop side fills a bounded ring buffer and pauses
 * the transfer while it is full; the reader wakes the loop (an eventfd) when it has drained it enough.
 *
 *   loop thread:   fetch_stream_new(), fetch_stream_set_check() ... (worker runs) ... fetch_stream_free()
 *                  once the worker is done (it also stops the check's thread)
 *   worker thread: fetch_stream_next() or fetch_stream_read() until 0 or < 0; on < 0
 *                  fetch_stream_get_error() says why
 *   any thread:    fetch_stream_cancel(): the transfer stops, the reader gets -ECANCELED */
typedef struct FetchStream FetchStream;

/* buffer_size 0: FETCH_STREAM_BUFFER_DEFAULT; otherwise within [FETCH_STREAM_BUFFER_MIN, _MAX]. */
int fetch_stream_new(FetchEngine *e, const char *url, uint64_t max_length, const FetchOptions *opts,
                     size_t buffer_size, FetchStream **ret, UpkErr *err);
/* Cancels the transfer if still running. The worker must no longer use the stream. */
FetchStream *fetch_stream_free(FetchStream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(FetchStream *, fetch_stream_free);

/* A check that sees every byte of the body once and in order, in place, then the end (`data` NULL,
 * `size` 0) before the reader is told of it; e.g. the length and hashes a TUF target promises. It runs
 * on a thread of its own (10 nice levels below the one that set it), beside the reader: the ring's
 * bytes are given back when both are done with them. A negative return (with `err` set) fails the
 * stream for good: the transfer stops and the reader gets the error (after the bytes it has not read
 * yet). Set it before the loop runs the transfer; `userdata` must outlive the stream. */
typedef int (*FetchStreamCheckFunc)(const void *data, size_t size, void *userdata, UpkErr *err);
int fetch_stream_set_check(FetchStream *s, FetchStreamCheckFunc check, void *userdata, UpkErr *err);

/* Blocks until bytes are available and copies up to `size` of them, or the body ended and everything was
 * read (0), or the fetch failed or was cancelled (-errno; bytes received before the failure are returned
 * first). Then keeps returning the same. One reader thread at a time. */
ssize_t fetch_stream_read(void *userdata, void *buf, size_t size);
/* BundleNextFunc-compatible, the same without a copy: *ret_buf points into the ring and stays valid
 * (and unchanged) until the next call, which gives those bytes back. */
ssize_t fetch_stream_next(void *userdata, const void **ret_buf);
/* The error behind a negative fetch_stream_read(): copies it into `ret` (kind UPK_ERR_NONE if none). */
void fetch_stream_get_error(FetchStream *s, UpkErr *ret);
void fetch_stream_cancel(FetchStream *s);
/* Loop thread: the fetch behind the stream (stats, progress); NULL after a cancel. */
Fetch *fetch_stream_get_fetch(FetchStream *s);
/* Loop thread: true once the transfer has ended (done, failed or cancelled). */
bool fetch_stream_is_finished(FetchStream *s);

/* "bytes START-END/TOTAL" or "bytes START-END/ *" (no space): *ret_total = UINT64_MAX when unknown.
 * -EINVAL unless well-formed with START <= END < TOTAL. */
int fetch_parse_content_range(const char *s, uint64_t *ret_start, uint64_t *ret_end, uint64_t *ret_total);
