/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fetch.h"

#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "fetch-internal.h"

/* FetchStream: a ring buffer that the loop appends to, and that the reader thread and, when there is a
 * check, the check's thread consume in place, each at its own pace. Positions count bytes of the body;
 * the ring holds [base, in), base being where the slower consumer is. */

#define STREAM_CHECK_NICE_INCREMENT 10

struct FetchStream {
        Fetch *fetch;
        FetchRanges *ranges; /* the producer's state, for a stream of byte ranges */
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

int fetch_stream_reserve(FetchStream *s, Fetch *f, size_t size, UpkErr *err)
{
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
        pthread_mutex_unlock(&s->lock);
        return FETCH_DATA_CONTINUE;
}

void fetch_stream_append(FetchStream *s, const void *buf, size_t size)
{
        size_t tail, first;
        bool wake;

        pthread_mutex_lock(&s->lock);
        assert(s->capacity - (size_t)(s->in - stream_base(s)) >= size);
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
}

static int stream_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        FetchStream *s = userdata;
        int r = fetch_stream_reserve(s, f, size, err);

        if (r != FETCH_DATA_CONTINUE)
                return r;
        fetch_stream_append(s, buf, size);
        return FETCH_DATA_CONTINUE;
}

void fetch_stream_done(FetchStream *s, int r, const UpkErr *err)
{
        pthread_mutex_lock(&s->lock);
        s->finished = true;
        if (r < 0)
                stream_fail(s, r, err, "download");
        pthread_mutex_unlock(&s->lock);
        pthread_cond_broadcast(&s->cond);
}

static void stream_done(Fetch *f, int r, const UpkErr *err, void *userdata)
{
        fetch_stream_done(userdata, r, err);
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

int fetch_stream_alloc(FetchEngine *e, size_t buffer_size, FetchStream **ret, UpkErr *err)
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
                return upk_err_oom(err);
        s->wake_fd = -EBADF;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->capacity = buffer_size;
        s->ring = malloc(buffer_size);
        if (!s->ring)
                return upk_err_oom(err);
        s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->wake_fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "eventfd: %m");
        r = sd_event_add_io(e->event, &s->wake_source, s->wake_fd, EPOLLIN, on_stream_wake, s);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot watch the stream's eventfd: %m");
        (void)sd_event_source_set_description(s->wake_source, "fetch-stream-wake");
        *ret = TAKE_PTR(s);
        return 0;
}

void fetch_stream_attach(FetchStream *s, Fetch *f, FetchRanges *ranges)
{
        s->fetch = f;
        s->ranges = ranges;
}

FetchRanges *fetch_stream_get_ranges(FetchStream *s)
{
        return s->ranges;
}

int fetch_stream_new(FetchEngine *e, const char *url, uint64_t max_length, const FetchOptions *opts,
                     size_t buffer_size, FetchStream **ret, UpkErr *err)
{
        _cleanup_(fetch_stream_freep) FetchStream *s = NULL;
        int r;

        r = fetch_stream_alloc(e, buffer_size, &s, err);
        if (r < 0)
                return r;
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
        fetch_ranges_free(s->ranges);
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
                return upk_err(err, UPK_ERR_IO, -r, "cannot start the download's check thread: %m");
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
