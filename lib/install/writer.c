/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "writer.h"

#include <assert.h>
#include <pthread.h>
#include <signal.h>

struct Writer {
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* the block lent by the caller, not yet (fully) copied */
        const uint8_t *lent;
        size_t lent_len, lent_off;
        /* the queue of copies, written in order */
        uint8_t *buf[WRITER_SLOTS];
        size_t len[WRITER_SLOTS];
        unsigned head, tail, count;
        bool busy;    /* writing the slot at tail */
        bool copying; /* copying from the lent block, without the lock */
        bool quit;
        Handler *h;
        int error;
        UpkErr err;
        uint64_t written;
        bool crash;
        uint64_t crash_at;
};

static void write_slot(Writer *w)
{
        unsigned slot = w->tail;
        size_t len = w->len[slot];
        bool write = w->error == 0;
        Handler *h = w->h;
        uint64_t before = w->written;
        UpkErr e = {};
        int r = 0;

        w->busy = true;
        pthread_mutex_unlock(&w->lock);
        if (write) {
                if (w->crash && before + len >= w->crash_at) {
                        (void)handler_write(h, w->buf[slot], (size_t)(w->crash_at - before), NULL);
                        raise(SIGKILL);
                }
                r = handler_write(h, w->buf[slot], len, &e);
        }
        pthread_mutex_lock(&w->lock);
        w->busy = false;
        if (r < 0 && w->error == 0) {
                w->error = r;
                w->err = e;
        } else if (r >= 0 && write)
                w->written += len;
        w->tail = (w->tail + 1) % WRITER_SLOTS;
        w->count--;
}

static void copy_lent(Writer *w)
{
        unsigned slot = w->head;
        size_t n = w->lent_len - w->lent_off;
        const uint8_t *src = w->lent + w->lent_off;

        if (n > WRITER_SLOT_SIZE)
                n = WRITER_SLOT_SIZE;
        /* The slot is free and the lent bytes stay put until released: copy without the lock. */
        w->copying = true;
        pthread_mutex_unlock(&w->lock);
        memcpy(w->buf[slot], src, n);
        pthread_mutex_lock(&w->lock);
        w->copying = false;
        w->len[slot] = n;
        w->head = (w->head + 1) % WRITER_SLOTS;
        w->count++;
        w->lent_off += n;
        if (w->lent_off == w->lent_len)
                w->lent = NULL;
}

static void *writer_thread(void *userdata)
{
        Writer *w = userdata;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!(w->lent && w->count < WRITER_SLOTS) && w->count == 0 && !w->quit)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->lent && w->error != 0)
                        w->lent = NULL; /* nothing more is written: give the block back at once */
                else if (w->lent && w->count < WRITER_SLOTS && !w->quit)
                        copy_lent(w); /* first: it lets the caller go on */
                else if (w->count > 0 && !w->quit)
                        write_slot(w);
                else
                        break;
                pthread_cond_broadcast(&w->cond);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int writer_new(Writer **ret)
{
        _cleanup_(writer_freep) Writer *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        for (unsigned i = 0; i < WRITER_SLOTS; i++) {
                w->buf[i] = malloc(WRITER_SLOT_SIZE);
                if (!w->buf[i])
                        return -ENOMEM;
        }
        r = pthread_create(&w->thread, NULL, writer_thread, w);
        if (r != 0)
                return -r;
        w->started = true;
        *ret = TAKE_PTR(w);
        return 0;
}

Writer *writer_free(Writer *w)
{
        if (!w)
                return NULL;
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->quit = true;
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
                pthread_join(w->thread, NULL);
        }
        for (unsigned i = 0; i < WRITER_SLOTS; i++)
                free(w->buf[i]);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

void writer_set_handler(Writer *w, Handler *h)
{
        pthread_mutex_lock(&w->lock);
        w->h = h;
        pthread_mutex_unlock(&w->lock);
}

static int failed(Writer *w, UpkErr *err)
{
        return upk_err(err, w->err.kind != UPK_ERR_NONE ? w->err.kind : UPK_ERR_IO, w->error, "%s",
                       w->err.msg[0] ? w->err.msg : strerror(-w->error));
}

int writer_lend(Writer *w, const void *buf, size_t len, UpkErr *err)
{
        int r = 0;

        pthread_mutex_lock(&w->lock);
        while (w->lent && w->error == 0)
                pthread_cond_wait(&w->cond, &w->lock);
        if (w->error != 0)
                r = failed(w, err);
        else if (len > 0) {
                w->lent = buf;
                w->lent_len = len;
                w->lent_off = 0;
                pthread_cond_broadcast(&w->cond);
        }
        pthread_mutex_unlock(&w->lock);
        return r;
}

int writer_push(Writer *w, const void *buf, size_t len, UpkErr *err)
{
        const uint8_t *src = buf;
        size_t off = 0;
        int r = 0;

        pthread_mutex_lock(&w->lock);
        assert(!w->lent);
        while (off < len) {
                unsigned slot;
                size_t n;

                while (w->count == WRITER_SLOTS && w->error == 0)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->error != 0)
                        break;
                slot = w->head;
                n = len - off < WRITER_SLOT_SIZE ? len - off : WRITER_SLOT_SIZE;
                /* The slot at head is this thread's until it is counted. */
                pthread_mutex_unlock(&w->lock);
                memcpy(w->buf[slot], src + off, n);
                pthread_mutex_lock(&w->lock);
                off += n;
                w->len[slot] = n;
                w->head = (w->head + 1) % WRITER_SLOTS;
                w->count++;
                pthread_cond_broadcast(&w->cond);
        }
        if (w->error != 0)
                r = failed(w, err);
        pthread_mutex_unlock(&w->lock);
        return r;
}

int writer_release(Writer *w, UpkErr *err)
{
        int r = 0;

        pthread_mutex_lock(&w->lock);
        while (w->lent || w->copying)
                pthread_cond_wait(&w->cond, &w->lock);
        if (w->error != 0)
                r = failed(w, err);
        pthread_mutex_unlock(&w->lock);
        return r;
}

int writer_drain(Writer *w, UpkErr *err)
{
        int r = 0;

        pthread_mutex_lock(&w->lock);
        while (w->lent || w->copying || w->count > 0 || w->busy)
                pthread_cond_wait(&w->cond, &w->lock);
        if (w->error != 0)
                r = failed(w, err);
        pthread_mutex_unlock(&w->lock);
        return r;
}

uint64_t writer_written(Writer *w)
{
        uint64_t n;

        pthread_mutex_lock(&w->lock);
        n = w->written;
        pthread_mutex_unlock(&w->lock);
        return n;
}

void writer_crash_after(Writer *w, uint64_t n)
{
        pthread_mutex_lock(&w->lock);
        w->crash = true;
        w->crash_at = n;
        pthread_mutex_unlock(&w->lock);
}
